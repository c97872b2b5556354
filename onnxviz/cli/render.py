"""`onnxviz render`: feature visualizations as PNG + JSON in a run directory.

    onnxviz render models/mobilenet_v2.onnx "block_7:12"               # one channel
    onnxviz render model.onnx "layer:12" --neuron --steps 512 --size 128
    onnxviz render model.onnx --layer block_7 --all --run runs/m        # every channel, batched
    onnxviz render model.onnx "logits:207" --objective class_logit      # a class (also: class_prob)
    onnxviz render model.onnx --deepdream block_7 --image photo.jpg
    onnxviz render model.onnx --caricature block_7 --image photo.jpg
    onnxviz render model.onnx "block_7:12" --diversity 4
    onnxviz render model.onnx --layer block_7 --units 0-3 --param maco --run runs/m   # + importance, reliability
    onnxviz render model.onnx --layer block_7 --units 0-3 --accentuate top --run runs/m

Files: ``<run>/render/<layer slug>/<stem>.png`` and ``.json`` (see ``onnxviz.runs``), ``<run>``
defaulting to ``runs/<model name>``; when the run holds mining results (`onnxviz mine --run`), each
channel render is checked against the unit's top examples. The work is done by ``onnxviz.runs.render_jobs``.
"""
from __future__ import annotations

from pathlib import Path

import click

from ..paths import slug
from ..runs import RunDir
from ..runs import render_jobs as runs_render
from .options import (ApiDefault, PerModeDefault, engine_options, load_model, meta_options, no_progress_option,
                      run_option, set_torch_threads, speed_options, torch_options, warn_uncertain)

_RENDER = "onnxviz.optvis.render:render"
_RECIPES = "onnxviz.optvis.recipes"

# --objective: the API's names; "logit" and "prob" are accepted for commands written before
_OBJECTIVES = {"channel": "channel", "neuron": "neuron", "class_logit": "class_logit", "class_prob": "class_prob",
               "logit": "class_logit", "prob": "class_prob"}


def _report(w) -> None:
    s, e = w.activation
    ratio = f" ({e / s:.1f}x)" if s > 0 and e > 0 else ""
    click.echo(f"{w.png}  activation {s:.4g} -> {e:.4g}{ratio}")
    for warning in w.warnings:
        click.echo(f"  warning: {warning}", err=True)


def _report_reliability(w) -> None:
    import json

    rec = json.loads(w.png.with_suffix(".json").read_text(encoding="utf-8"))
    rel = rec.get("reliability")
    if rel:
        score = f"score {rel['score']:.2f}, " if "score" in rel else ""
        ratio = f", {rel['ratio']:.2f}x the best example" if rel.get("ratio") is not None else ""
        click.echo(f"  reliability: {rel['verdict']} ({score}{rel['meaning']}{ratio})")


@click.command()
@click.argument("model_path", type=click.Path())
@click.argument("target", required=False)
@click.option("--objective", "kind", type=click.Choice(list(_OBJECTIVES)), default="channel", show_default=True,
              help="What TARGET 'layer:unit' means: a channel's mean, the center neuron, a class logit (pre-softmax) "
              "or a class probability (logit and prob are short for class_logit and class_prob).")
@click.option("--neuron", is_flag=True, help="Same as --objective neuron.")
@click.option("--layer", "layer_name", help="With --all or --units: render channels of this layer in batches "
              "('all': every layer).")
@click.option("--all", "all_units", is_flag=True, help="Every channel of --layer.")
@click.option("--units", help="Units of --layer, e.g. 0,3,5-9.")
@click.option("--batch-size", type=click.IntRange(1), default=16, show_default=True,
              help="Units per batch with --layer.")
@click.option("--deepdream", "deepdream_layer", help="DeepDream on this layer, starting from --image.")
@click.option("--caricature", "caricature_layer", help="Caricature of --image at this layer.")
@click.option("--image", "image_path", help="The photo for --deepdream / --caricature.")
@click.option("--diversity", type=int, default=None, help="Render N diverse images of TARGET.")
@click.option("--param", type=click.Choice(["fft", "maco"]), default="fft", show_default=True,
              help="Image parameterization: Lucid's FFT, or MACO (phase only, magnitude of a photo spectrum; "
              "writes <stem>_importance.png, the pixels the unit used).")
@click.option("--spectrum", type=click.Path(exists=True, dir_okay=False), default=None,
              help="With --param maco: a spectrum .npz/.npy (default: the one shipped, from real photos).")
@click.option("--accentuate", "accentuate_photos", multiple=True,
              help="Feature accentuation of TARGET in this photo (repeat for several, one batch); 'top': the "
              "unit's top dataset examples in --run.")
@click.option("--top", "top_k", type=click.IntRange(1), default=4, show_default=True,
              help="With --accentuate top: how many top examples.")
@click.option("--weight", type=float, default=ApiDefault("onnxviz.optvis.accentuate:accentuate", "weight"),
              show_default=True,
              help="With --accentuate: how strongly to stay close to the photo in earlier features (0: not at all).")
@click.option("--reg-layer", default=None, help="With --accentuate: the earlier layer to stay close in.")
@run_option("Run directory: renders go to RUN/render; when RUN holds mining results, channel renders are "
            "checked against the unit's top examples and --accentuate top uses them. Default runs/<model name>.")
@click.option("--steps", type=click.IntRange(1), show_default=True,
              default=PerModeDefault("steps", unit=_RENDER, **{"--diversity": _RENDER,
                                                               "--deepdream": f"{_RECIPES}:deepdream",
                                                               "--caricature": f"{_RECIPES}:caricature",
                                                               "--accentuate": "onnxviz.optvis.accentuate:accentuate"}),
              help="Optimization steps (the Python API's defaults).")
@click.option("--size", type=int, default=None,
              help="Image size in pixels (default: what the unit's receptive field needs, at most the model's input "
              "size; the JSON's size_choice says why).")
@click.option("--lr", type=float, show_default=True,
              default=PerModeDefault("lr", unit=_RENDER, **{"--deepdream": f"{_RECIPES}:deepdream",
                                                            "--accentuate": "onnxviz.optvis.accentuate:accentuate",
                                                            "--param maco": "onnxviz.optvis.maco:LR"}),
              help="Adam step size (the Python API's defaults).")
@torch_options()
@speed_options
@click.option("--out", "out_dir", type=click.Path(), default=None, hidden=True,
              help="Old spelling: the render folder itself (use --run RUN, which renders into RUN/render).")
@no_progress_option
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True,
              help="With --engine ray: render workers (one torch model each).")
@click.option("--overwrite", is_flag=True, help="With --layer: render again the batches whose pictures exist.")
@click.option("--preprocessing", "preprocessing_mode", type=click.Choice(["model", "candidates"]), default="model",
              show_default=True, help="candidates: render TARGET under the top three preprocessing candidates side "
              "by side (one PNG + JSON in <out>/candidates), to pick one when the inference is unsure.")
@engine_options
@meta_options
def render(model_path, target, kind, neuron, layer_name, all_units, units, batch_size, deepdream_layer,
           caricature_layer, image_path, diversity, param, spectrum, accentuate_photos, top_k, weight, reg_layer,
           run, steps, size, seed, lr, device, threads, precision, channels_last, out_dir, no_progress, workers, overwrite, preprocessing_mode,
           engine, address,
           gpus_per_worker, block_size, **meta_kwargs):
    """Feature visualization by gradient ascent: PNG + JSON per image."""
    kind = "neuron" if neuron else _OBJECTIVES[kind]
    modes = [bool(target) and not deepdream_layer and not caricature_layer, bool(layer_name),
             bool(deepdream_layer), bool(caricature_layer)]
    if sum(modes) != 1:
        raise click.UsageError("give exactly one of: TARGET 'layer:unit', --layer (with --all/--units), "
                               "--deepdream LAYER, --caricature LAYER")
    if (deepdream_layer or caricature_layer) and not image_path:
        raise click.UsageError("--deepdream and --caricature need --image PHOTO")
    if layer_name and not (all_units or units):
        raise click.UsageError("--layer needs --all or --units")
    if diversity is not None and diversity < 2:
        raise click.UsageError("--diversity needs N >= 2 images")
    if param != "fft" and (accentuate_photos or diversity or deepdream_layer or caricature_layer):
        raise click.UsageError("--param maco renders TARGET or --layer units from noise; --accentuate, --diversity, "
                               "--deepdream and --caricature start from their own parameterization")
    if (precision != "fp32" or not channels_last) and not (layer_name and not accentuate_photos):
        raise click.UsageError("--precision and --no-channels-last apply to --layer unit batches")
    set_torch_threads(threads)

    if preprocessing_mode == "candidates" and not (target and sum(modes) == 1 and modes[0] and not diversity
                                                   and not accentuate_photos):
        raise click.UsageError("--preprocessing candidates renders one TARGET 'layer:unit'")
    model, meta_opts = load_model(model_path, **meta_kwargs)
    warn_uncertain(model, model_path)
    run_dir = RunDir.of(run, model, model_path)
    out = Path(out_dir) if out_dir else run_dir.render
    runs_dir = str(run_dir) if run_dir.has_mining() else None  # the mining run: reliability, --accentuate top
    common = dict(out=out, model_arg=model_path, steps=steps, seed=seed, lr=lr, device=device, meta_opts=meta_opts)
    if preprocessing_mode == "candidates":
        from ..runs.preprocessing_candidates import render_candidates
        from .options import meta_overrides

        load_kw = {k: v for k, v in meta_overrides(**meta_kwargs).items() if k in ("input_size", "labels")}
        png, doc = render_candidates(model_path, model, target, kind, load_kw=dict(load_kw, input=meta_kwargs.get(
            "input_name")), size=size, progress=not no_progress, **common)
        click.echo(f"{png}  (candidates side by side; {doc} names each with its score and flags)")
        return
    if deepdream_layer or caricature_layer:
        what = "deepdream" if deepdream_layer else "caricature"
        _report(runs_render.photo(model, what, deepdream_layer or caricature_layer, image_path,
                                  progress=not no_progress, **common))
    elif layer_name:
        import contextlib

        from ..progress import bar

        names = [lay.name for lay in model.layers if lay.units] if layer_name == "all" else [layer_name]
        ray_kw = dict(workers=workers, threads=threads, gpus_per_worker=gpus_per_worker)
        if engine == "ray":  # one Ray session for every layer
            from ..engines.ray import session

            ctx = session(address)
        else:
            ctx = contextlib.nullcontext()
        if accentuate_photos:
            from ..runs.accentuations import layer_units

            if engine == "ray":
                raise click.UsageError("--accentuate runs locally (--engine local)")
            if kind != "channel":
                raise click.UsageError("--accentuate accentuates channels")
        with ctx:
            for name in names:
                lay = model.layer(name)
                unit_list = None if all_units else runs_render.parse_units(units)
                n = lay.units if unit_list is None else len(unit_list)
                if accentuate_photos:
                    photos = [] if list(accentuate_photos) == ["top"] else list(accentuate_photos)
                    made = 0
                    for written in layer_units(model, lay.name, list(range(n)) if unit_list is None else unit_list,
                                               photos, runs=runs_dir, k=top_k, batch_size=batch_size, weight=weight,
                                               reg_layer=reg_layer, progress=not no_progress, **common):
                        for w in written:
                            _report(w)
                        made += len(written)
                    click.echo(f"{made} accentuations of {n} units of {lay.name} -> {out / slug(lay.name)}")
                    continue
                batches = runs_render.units(model, lay.name, unit_list, neuron=kind == "neuron", batch_size=batch_size,
                                            size=size, engine=engine, keep=not overwrite, ray=ray_kw, param=param,
                                            spectrum=spectrum, runs=runs_dir, precision=precision,
                                            channels_last=channels_last, **common)
                dead = made = 0
                with bar(n, f"{lay.name}: {n} units", "unit", enabled=not no_progress) as pbar:
                    for i, written in enumerate(batches):
                        for w in written:
                            dead += w.dead
                            if no_progress:
                                _report(w)
                                if runs_dir:
                                    _report_reliability(w)
                        made += len(written)
                        pbar.update(len(written) or min(batch_size, n - i * batch_size))
                kept = f"; {n - made} kept from an earlier run" if made < n else ""
                click.echo(f"{n} units of {lay.name} -> {out / slug(lay.name)} ({dead} dead{kept})")
    elif diversity:
        for w in runs_render.diverse(model, target, diversity, kind, size=size, progress=not no_progress,
                                     runs=runs_dir, **common):
            _report(w)
            if runs_dir:
                _report_reliability(w)
    elif accentuate_photos:
        from ..runs.accentuations import accentuate

        photos = [] if list(accentuate_photos) == ["top"] else list(accentuate_photos)
        for w in accentuate(model, target, photos, runs=runs_dir, k=top_k, weight=weight, reg_layer=reg_layer,
                            progress=not no_progress, **common):
            _report(w)
    else:
        w = runs_render.target(model, target, kind, size=size, progress=not no_progress, param=param,
                               spectrum=spectrum, runs=runs_dir, **common)
        _report(w)
        if runs_dir:
            _report_reliability(w)


COMMANDS = [render]
