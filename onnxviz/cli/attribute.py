"""`onnxviz attribute` and `onnxviz grid`: what in a photo drives a target, and what a layer sees where.

    onnxviz attribute model.onnx photo.jpg --target logits:207 --layer block_7     # PNG overlays + JSON
    onnxviz attribute model.onnx a.jpg b.jpg --smooth 8                           # SmoothGrad-style IG
    onnxviz grid model.onnx photo.jpg --layer block_7                             # activation grid

Files: ``<out>/<photo stem>/...`` (see ``onnxviz.attribution.output``), ``<out>`` defaulting to
``runs/<model name>/attribution``. The target defaults to the photo's predicted class.
"""
from __future__ import annotations


import click

from ..runs import command
from .options import load_model, meta_options


def _threads(threads):
    if threads:
        import torch

        torch.set_num_threads(threads)


def _default_out(model, out):
    return out or f"runs/{model.meta.name or 'model'}/attribution"


@click.command()
@click.argument("model_path", type=click.Path())
@click.argument("photos", nargs=-1, required=True, type=click.Path())
@click.option("--target", default=None, help="LAYER:UNIT: a class logit for (N, classes) layers (e.g. logits:207), "
              "a channel's mean otherwise; a bare number is a class. Default: each photo's predicted class.")
@click.option("--layer", "layer_name", default=None, help="Also attribute at this layer: spatial map and top channels "
              "with their feature visualizations.")
@click.option("--method", type=click.Choice(["both", "ig", "gxi"]), default="both", show_default=True,
              help="Input attribution: integrated gradients, gradient x input, or both.")
@click.option("--steps", default=32, show_default=True, type=click.IntRange(2),
              help="Integrated-gradients steps (doubled until completeness holds within 1%).")
@click.option("--smooth", default=0, show_default=True, type=click.IntRange(0),
              help="Average integrated gradients over N noisy copies (SmoothGrad).")
@click.option("--noise", default=0.1, show_default=True, type=float, help="Noise sd for --smooth (pixels in [0, 1]).")
@click.option("--baseline", type=click.Choice(["blur", "black", "gray"]), default="blur", show_default=True,
              help="Integrated gradients start from a blurred copy of the photo (default), black or gray.")
@click.option("--channels", default=6, show_default=True, type=click.IntRange(0),
              help="Top channels of --layer to render (0: none).")
@click.option("--render-steps", default=128, show_default=True, type=click.IntRange(1))
@click.option("--render-size", default=96, show_default=True, type=click.IntRange(8))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--device", default=None, help="torch device (default: cuda if available).")
@click.option("--threads", type=click.IntRange(1), default=None, help="torch CPU threads.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Output folder (default runs/<model name>/attribution).")
@click.option("--no-progress", is_flag=True)
@meta_options
def attribute(model_path, photos, target, layer_name, method, steps, smooth, noise, baseline, channels, render_steps,
              render_size, seed, device, threads, out_dir, no_progress, **meta_kwargs):
    """Attribution of TARGET for each photo: input (integrated gradients, gradient x input) and at --layer."""
    from ..attribution.output import attribute_photo

    _threads(threads)
    model, meta_opts = load_model(model_path, **meta_kwargs)
    if layer_name:
        model.layer(layer_name)  # a clear error before any work
    out = _default_out(model, out_dir)
    methods = ("ig", "gxi") if method == "both" else (method,)
    for photo in photos:
        cmd = command("attribute", model_path, photo, target=target, layer=layer_name, method=method, steps=steps,
                      smooth=smooth or None, noise=noise if smooth else None, baseline=baseline,
                      channels=channels if layer_name else None, render_steps=render_steps if layer_name else None,
                      render_size=render_size if layer_name else None, seed=seed, out=out, **meta_opts)
        rec = attribute_photo(model, photo, out, target, layer_name, methods, steps, smooth, noise, baseline, channels,
                              render_steps, render_size, seed, device, cmd, progress=not no_progress)
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
@click.option("--size", default=64, show_default=True, type=click.IntRange(8), help="Pixels per cell render.")
@click.option("--steps", default=128, show_default=True, type=click.IntRange(1))
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(1), help="Cells per optimization.")
@click.option("--max-cells", default=14, show_default=True, type=click.IntRange(1),
              help="Larger maps are average-pooled to at most this many cells per side.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--device", default=None)
@click.option("--threads", type=click.IntRange(1), default=None)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Output folder (default runs/<model name>/attribution).")
@click.option("--no-progress", is_flag=True)
@meta_options
def grid(model_path, photos, layer_name, size, steps, batch_size, max_cells, seed, device, threads, out_dir,
         no_progress, **meta_kwargs):
    """Activation grid: the layer's activation vector at each position rendered as a feature visualization."""
    from ..attribution.output import grid_photo

    _threads(threads)
    model, meta_opts = load_model(model_path, **meta_kwargs)
    model.layer(layer_name)
    out = _default_out(model, out_dir)
    for photo in photos:
        cmd = command("grid", model_path, photo, layer=layer_name, size=size, steps=steps, batch_size=batch_size,
                      max_cells=max_cells, seed=seed, out=out, **meta_opts)
        data = grid_photo(model, photo, out, layer_name, command=cmd, size=size, steps=steps, batch=batch_size,
                          max_cells=max_cells, seed=seed, device=device, progress=not no_progress)
        rendered = sum(1 for c in data["cells"] if c["rendered"])
        click.echo(f"{photo}: {data['rows']}x{data['cols']} cells, {rendered} rendered -> {out}")


COMMANDS = [attribute, grid]
