"""`onnxviz attribute` and `onnxviz grid`: what in a photo drives a target, and what a layer sees where.

    onnxviz attribute model.onnx photo.jpg --target logits:207 --layer block_7     # PNG overlays + JSON
    onnxviz attribute model.onnx a.jpg b.jpg --smooth 8                           # SmoothGrad-style IG
    onnxviz grid model.onnx photo.jpg --layer block_7                             # activation grid

Files: ``<run>/attribution/<photo stem>/...`` (see ``onnxviz.attribution.output``), ``<run>`` defaulting
to ``runs/<model name>``. The target defaults to the photo's predicted class.
"""
from __future__ import annotations

import click

from ..runs import RunDir, command
from .options import (ApiDefault, hidden_alias, load_model, meta_options, no_progress_option, option_group,
                      run_option, set_torch_threads, torch_options)

_PHOTO = "onnxviz.attribution.output:attribute_photo"
_GRID = "onnxviz.attribution.grid:activation_grid"
_RUN_HELP = ("Run directory: writes RUN/attribution/<photo>/ (what `onnxviz site --run` shows). "
             "Default runs/<model name>.")
_OUT_HELP = "Old spelling: the attribution folder itself (use --run RUN, which writes into RUN/attribution)."
_run_options = option_group(run_option(_RUN_HELP, legacy=()),  # where attribute and grid write
                            click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
                                         hidden=True, help=_OUT_HELP),
                            no_progress_option)


def _where(run, out_dir) -> dict:
    """The --run (or old --out) to record in a command: as the user gave it."""
    return {"out": out_dir} if out_dir else {"run": run}


def _out(model, model_path, run, out) -> str:
    return out or str(RunDir.of(run, model, model_path).attribution)


@click.command()
@click.argument("model_path", type=click.Path())
@click.argument("photos", nargs=-1, required=True, type=click.Path())
@click.option("--target", default=None, help="LAYER:UNIT: a class logit for (N, classes) layers (e.g. logits:207), "
              "a channel's mean otherwise; a bare number is a class. Default: each photo's predicted class.")
@click.option("--layer", "layer_name", default=None, help="Also attribute at this layer: spatial map and top channels "
              "with their feature visualizations.")
@click.option("--method", type=click.Choice(["both", "ig", "gxi"]), default="both", show_default=True,
              help="Input attribution: integrated gradients, gradient x input, or both.")
@click.option("--ig-steps", default=ApiDefault(_PHOTO, "steps"), show_default=True,
              type=click.IntRange(2), help="Integrated-gradients steps (doubled until completeness holds within 1%).")
@hidden_alias("--steps", "ig_steps", type=click.IntRange(2))
@click.option("--smooth", default=ApiDefault(_PHOTO, "smooth"), show_default=True, type=click.IntRange(0),
              help="Average integrated gradients over N noisy copies (SmoothGrad).")
@click.option("--noise", default=ApiDefault(_PHOTO, "noise"), show_default=True, type=float,
              help="Noise sd for --smooth (pixels in [0, 1]).")
@click.option("--baseline", type=click.Choice(["blur", "black", "gray"]), show_default=True,
              default=ApiDefault(_PHOTO, "baseline"),
              help="Integrated gradients start from a blurred copy of the photo (default), black or gray.")
@click.option("--channels", default=ApiDefault(_PHOTO, "channels"), show_default=True, type=click.IntRange(0),
              help="Top channels of --layer to render (0: none).")
@click.option("--render-steps", default=ApiDefault(_PHOTO, "render_steps"), show_default=True,
              type=click.IntRange(1), help="Optimization steps of each top channel's feature visualization.")
@click.option("--render-size", default=ApiDefault(_PHOTO, "render_size"), show_default=True,
              type=click.IntRange(8), help="Pixels per side of each top channel's feature visualization.")
@torch_options("the SmoothGrad noise and the channel renders")
@_run_options
@meta_options
def attribute(model_path, photos, target, layer_name, method, ig_steps, smooth, noise, baseline, channels,
              render_steps, render_size, seed, device, threads, run, out_dir, no_progress, **meta_kwargs):
    """Attribution of TARGET for each photo: input (integrated gradients, gradient x input) and at --layer."""
    from ..attribution.output import attribute_photo

    set_torch_threads(threads)
    model, meta_opts = load_model(model_path, **meta_kwargs)
    if layer_name:
        model.layer(layer_name)  # a clear error before any work
    out = _out(model, model_path, run, out_dir)
    methods = ("ig", "gxi") if method == "both" else (method,)
    for photo in photos:
        cmd = command("attribute", model_path, photo, target=target, layer=layer_name, method=method, ig_steps=ig_steps,
                      smooth=smooth or None, noise=noise if smooth else None, baseline=baseline,
                      channels=channels if layer_name else None, render_steps=render_steps if layer_name else None,
                      render_size=render_size if layer_name else None, seed=seed,
                      **_where(run, out_dir), **meta_opts)
        rec = attribute_photo(model, photo, out, target, layer_name, methods, ig_steps, smooth, noise, baseline,
                              channels, render_steps, render_size, seed, device, cmd, progress=not no_progress)
        line = f"{photo}: target {rec['target']}" + (f" ({rec['label']})" if rec.get("label") else "")
        ig = rec.get("integrated_gradients")
        if ig:
            line += (f", IG sum {ig['attribution_sum']:.4g} vs difference {ig['target_difference']:.4g} "
                     f"(completeness error {100 * ig['completeness_error']:.2f}%, {ig['steps']} steps)")
        if rec.get("layer"):
            top = ", ".join(f"{c['channel']} ({c['attribution']:.3g})" for c in rec["layer"]["top_channels"][:5])
            line += f"; top channels of {rec['layer']['layer']}: {top}"
        click.echo(line)
    click.echo(f"wrote {out}")


@click.command()
@click.argument("model_path", type=click.Path())
@click.argument("photos", nargs=-1, required=True, type=click.Path())
@click.option("--layer", "layer_name", required=True, help="A layer with a spatial map.")
@click.option("--size", default=ApiDefault(_GRID, "size"), show_default=True, type=click.IntRange(8),
              help="Pixels per cell render.")
@click.option("--steps", default=ApiDefault(_GRID, "steps"), show_default=True, type=click.IntRange(1),
              help="Optimization steps of each cell's render.")
@click.option("--batch-size", default=ApiDefault(_GRID, "batch"), show_default=True, type=click.IntRange(1),
              help="Cells per optimization.")
@click.option("--max-cells", default=ApiDefault(_GRID, "max_cells"), show_default=True, type=click.IntRange(1),
              help="Larger maps are average-pooled to at most this many cells per side.")
@torch_options("the cell renders")
@_run_options
@meta_options
def grid(model_path, photos, layer_name, size, steps, batch_size, max_cells, seed, device, threads, run, out_dir,
         no_progress, **meta_kwargs):
    """Activation grid: the layer's activation vector at each position rendered as a feature visualization."""
    from ..attribution.output import grid_photo

    set_torch_threads(threads)
    model, meta_opts = load_model(model_path, **meta_kwargs)
    model.layer(layer_name)
    out = _out(model, model_path, run, out_dir)
    for photo in photos:
        cmd = command("grid", model_path, photo, layer=layer_name, size=size, steps=steps, batch_size=batch_size,
                      max_cells=max_cells, seed=seed, **_where(run, out_dir), **meta_opts)
        data = grid_photo(model, photo, out, layer_name, command=cmd, size=size, steps=steps, batch=batch_size,
                          max_cells=max_cells, seed=seed, device=device, progress=not no_progress)
        rendered = sum(1 for c in data["cells"] if c["rendered"])
        click.echo(f"{photo}: {data['rows']}x{data['cols']} cells, {rendered} rendered -> {out}")


COMMANDS = [attribute, grid]
