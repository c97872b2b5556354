"""`onnxviz render`: feature visualizations as PNG + JSON in a run directory.

    onnxviz render models/mobilenet_v2.onnx "block_7:12"               # one channel
    onnxviz render model.onnx "layer:12" --neuron --steps 512 --size 128
    onnxviz render model.onnx --layer block_7 --all --out out/          # every channel, batched
    onnxviz render model.onnx "logits:207" --objective logit            # a class (also: prob)
    onnxviz render model.onnx --deepdream block_7 --image photo.jpg
    onnxviz render model.onnx --caricature block_7 --image photo.jpg
    onnxviz render model.onnx "block_7:12" --diversity 4

Files: ``<out>/<layer slug>/<kind>_<unit>.png`` and ``.json`` (fields in docs/API_CONTRACT.md),
``<out>`` defaulting to ``runs/<model name>/render``.
"""
from __future__ import annotations

import shlex
from pathlib import Path

import click

from .cli_inspect import load_with_overrides, meta_options
from .cli_mine import engine_options
from .errors import ObjectiveError
from .paths import slug
from .optvis.output import write_render

_KIND_NAMES = {"channel": "channel", "neuron": "neuron", "logit": "class_logit", "prob": "class_prob"}


def _parse_units(text: str) -> list:
    """'0,3,5-9' -> [0, 3, 5, 6, 7, 8, 9]."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                a, b = part.split("-", 1)
                out.extend(range(int(a), int(b) + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise ObjectiveError(f"--units: cannot read {part!r}; write e.g. 0,3,5-9") from None
    return out


def _command(model_path, target, opts: dict) -> str:
    """The CLI line that reproduces a render (options in a fixed order, defaults included)."""
    parts = ["onnxviz", "render", str(model_path)]
    if target:
        parts.append(target)
    for key, value in opts.items():
        if value is None or value is False:
            continue
        flag = "--" + {"labels_file": "labels"}.get(key, key).replace("_", "-")
        if value is True:
            parts.append(flag)
        elif isinstance(value, (tuple, list)):
            parts.append(flag)
            parts.extend(str(v) for v in value)
        else:
            parts.extend([flag, str(value)])
    return " ".join(shlex.quote(p) for p in parts)


def _report(png: Path, record: dict, index: int) -> None:
    s, e = record["activation_start"][index], record["activation_end"][index]
    ratio = f" ({e / s:.1f}x)" if s > 0 and e > 0 else ""
    click.echo(f"{png}  activation {s:.4g} -> {e:.4g}{ratio}")
    for w in record["warnings"]:
        if w.startswith(f"image {index}:"):
            click.echo(f"  warning: {w}", err=True)


@click.command()
@click.argument("model_path", type=click.Path())
@click.argument("target", required=False)
@click.option("--objective", "kind", type=click.Choice(["channel", "neuron", "logit", "prob"]), default="channel",
              show_default=True, help="What TARGET 'layer:unit' means: a channel's mean, the center neuron, a class "
              "logit (pre-softmax) or a class probability.")
@click.option("--neuron", is_flag=True, help="Same as --objective neuron.")
@click.option("--layer", "layer_name", help="With --all or --units: render channels of this layer in batches "
              "('all': every layer of the model).")
@click.option("--all", "all_units", is_flag=True, help="Every channel of --layer.")
@click.option("--units", help="Units of --layer, e.g. 0,3,5-9.")
@click.option("--batch-size", type=int, default=16, show_default=True, help="Units per batch with --layer.")
@click.option("--deepdream", "deepdream_layer", help="DeepDream on this layer, starting from --image.")
@click.option("--caricature", "caricature_layer", help="Caricature of --image at this layer.")
@click.option("--image", "image_path", help="The photo for --deepdream / --caricature.")
@click.option("--diversity", type=int, default=None, help="Render N diverse images of TARGET.")
@click.option("--steps", type=int, default=256, show_default=True)
@click.option("--size", type=int, default=None, help="Image size in pixels (default: the model's input size).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--lr", type=float, default=0.05, show_default=True)
@click.option("--device", default=None, help="torch device, e.g. cpu, cuda, cuda:1 (default: cuda if available).")
@click.option("--threads", type=int, default=None, help="torch CPU threads.")
@click.option("--out", "out_dir", type=click.Path(), default=None,
              help="Output folder (default runs/<model name>/render).")
@click.option("--no-progress", is_flag=True)
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True,
              help="With --engine ray: render workers (one torch model each).")
@click.option("--overwrite", is_flag=True, help="With --layer: render again the units whose PNG + JSON exist.")
@engine_options
@meta_options
def render(model_path, target, kind, neuron, layer_name, all_units, units, batch_size, deepdream_layer,
           caricature_layer, image_path, diversity, steps, size, seed, lr, device, threads, out_dir, no_progress,
           workers, overwrite, engine, address, gpus_per_worker, block_size, **meta_kwargs):
    """Feature visualization by gradient ascent: PNG + JSON per image."""
    import torch

    from .optvis import objectives as obj
    from .optvis import recipes
    from .optvis import render as render_fn

    if threads:
        torch.set_num_threads(threads)
    if neuron:
        kind = "neuron"
    modes = [bool(target) and not deepdream_layer and not caricature_layer, bool(layer_name),
             bool(deepdream_layer), bool(caricature_layer)]
    if sum(modes) != 1:
        raise click.UsageError("give exactly one of: TARGET 'layer:unit', --layer (with --all/--units), "
                               "--deepdream LAYER, --caricature LAYER")
    if (deepdream_layer or caricature_layer) and not image_path:
        raise click.UsageError("--deepdream and --caricature need --image PHOTO")
    if layer_name and not (all_units or units):
        raise click.UsageError("--layer needs --all or --units")

    model = load_with_overrides(model_path, **meta_kwargs)
    out = Path(out_dir) if out_dir else Path("runs") / (model.meta.name or Path(model_path).stem) / "render"
    progress = not no_progress
    meta_opts = {k: v for k, v in meta_kwargs.items() if v is not None}
    common = {"steps": steps, "size": size, "seed": seed, "lr": lr}
    render_kw = dict(steps=steps, seed=seed, lr=lr, device=device, progress=progress)
    if size:
        render_kw["size"] = size
    base = {"model": str(model_path), "model_name": model.meta.name or Path(model_path).stem}

    if deepdream_layer or caricature_layer:
        lay = deepdream_layer or caricature_layer
        what = "deepdream" if deepdream_layer else "caricature"
        model.layer(lay)
        render_kw.pop("size", None)
        recipe = recipes.deepdream if deepdream_layer else recipes.caricature
        if deepdream_layer:
            render_kw["lr"] = lr if lr != 0.05 else 0.02
        result = recipe(model, lay, image_path, **render_kw)
        cmd = _command(model_path, None, {what: lay, "image": image_path, **common, **meta_opts})
        stem = f"{what}_{slug(Path(image_path).stem)}"
        info = dict(base, layer=model.layer(lay).name, unit=None, kind=what, objective=result.record["objective"],
                    command=cmd, photo=str(image_path))
        _report(write_render(out, info["layer"], stem, result.images[0], result.record, 0, info), result.record, 0)
        return

    if layer_name:
        import contextlib

        names = [lay.name for lay in model.layers if lay.units] if layer_name == "all" else [layer_name]
        if engine == "ray":  # one Ray session for all layers
            from .engines.ray import session

            ctx = session(address)
        else:
            ctx = contextlib.nullcontext()
        with ctx:
            for name in names:
                _render_units(model, model_path, name, all_units, units, kind, batch_size, render_kw, common,
                              meta_opts, base, out, progress, overwrite, engine,
                              dict(workers=workers, threads=threads, gpus_per_worker=gpus_per_worker))
        return

    target_obj = obj.parse(target, kind)
    lay = model.layer(target_obj.layer)
    if diversity:
        if diversity < 2:
            raise click.UsageError("--diversity needs N >= 2 images")
        result = recipes.diverse(model, target_obj, n=diversity, **render_kw)
        cmd = _command(model_path, target, {"objective": kind if kind != "channel" else None,
                                            "diversity": diversity, **common, **meta_opts})
        for i in range(diversity):
            info = dict(base, layer=lay.name, unit=target_obj.unit, kind="diversity", objective=target_obj.name,
                        target_kind=target_obj.kind, command=cmd)
            png = write_render(out, lay.name, f"diversity_{_KIND_NAMES[kind]}_{target_obj.unit}_{i}", result.images[i],
                         result.record, i, info)
            _report(png, result.record, i)
        return
    result = render_fn(model, target_obj, **render_kw)
    cmd = _command(model_path, target, {"objective": kind if kind != "channel" else None, **common, **meta_opts})
    info = dict(base, layer=lay.name, unit=target_obj.unit, kind=target_obj.kind, objective=target_obj.name,
                command=cmd)
    if target_obj.kind in ("class_logit", "class_prob"):
        info["label"] = model.meta.label(target_obj.unit)
    png = write_render(out, lay.name, f"{target_obj.kind}_{target_obj.unit}", result.images[0], result.record, 0, info)
    _report(png, result.record, 0)


def _render_units(model, model_path, layer_name, all_units, units, kind, batch_size, render_kw, common, meta_opts,
                  base, out, progress, overwrite, engine, ray_kw) -> None:
    """Every unit (or --units) of one layer, in batches, locally or on Ray; existing pictures are kept."""
    import json

    from .optvis import objectives as obj
    from .optvis import recipes

    lay = model.layer(layer_name)
    unit_list = list(range(lay.units)) if all_units else _parse_units(units)
    obj.channel(lay.name, unit_list).check(model)
    cmd = _command(model_path, None, {"layer": layer_name, "all": bool(all_units), "units": units,
                                      "objective": kind, "batch_size": batch_size, **common, **meta_opts})
    kind_name = _KIND_NAMES.get(kind, kind)
    folder = out / slug(lay.name)
    dead = [0]

    def exists(u) -> bool:  # a picture made by this same command (resume); other settings are redone
        if overwrite or not (folder / f"{kind_name}_{u}.png").exists():
            return False
        try:
            return json.loads((folder / f"{kind_name}_{u}.json").read_text())["command"] == cmd
        except (OSError, ValueError, KeyError):
            return False

    def write(chunk, images, record) -> None:
        for i, u in enumerate(chunk):
            info = dict(base, layer=lay.name, unit=u, kind=kind_name,
                        objective=(obj.neuron if kind == "neuron" else obj.channel)(lay.name, u).name, command=cmd)
            png = write_render(out, lay.name, f"{kind_name}_{u}", images[i], record, i, info)
            dead[0] += bool(record["dead"][i])
            if not progress:
                _report(png, record, i)

    chunks = [unit_list[i:i + batch_size] for i in range(0, len(unit_list), batch_size)]
    todo = [c for c in chunks if not all(exists(u) for u in c)]
    if engine == "ray":
        from .engines import ray as ray_engine

        ray_engine.render_layer(model, lay.name, unit_list, batch_size, kind == "neuron", render_kw, write, exists,
                                progress=progress, **ray_kw)
    elif todo:
        it = recipes.render_layer(model, lay.name, [u for c in todo for u in c], batch_size=batch_size,
                                  neuron=kind == "neuron", **render_kw)
        try:
            from tqdm import tqdm

            it = tqdm(it, total=len(todo), desc=f"{lay.name}: {len(unit_list)} units", unit="batch",
                      disable=not progress)
        except ImportError:  # pragma: no cover
            pass
        for chunk, result in it:
            write(chunk, result.images, result.record)
    kept = len(unit_list) - sum(len(c) for c in todo)
    click.echo(f"{len(unit_list)} units of {lay.name} -> {out / slug(lay.name)} ({dead[0]} dead"
               + (f"; {kept} kept from an earlier run" if kept else "") + ")")


COMMANDS = [render]
