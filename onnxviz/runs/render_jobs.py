"""Render pictures into a run directory: each kind the CLI and the site make, with its record and command.

Each function runs the render API (``onnxviz.optvis``), writes every image as PNG + JSON with
``write_render`` and returns (or yields) what it wrote as :class:`Written`. ``model_arg`` is how
the model is spelled in the recorded command, ``meta_opts`` the metadata overrides it was loaded
with (so the command reproduces the same preprocessing).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

import numpy as np

from ..errors import ObjectiveError
from ..paths import slug
from .command import api_default, command
from .layout import RunDir
from .render_records import UNIT_KINDS, collect_renders, write_render



@dataclass
class Written:
    """One picture on disk: its PNG, the render record of its batch and its index in that batch."""

    png: Path
    record: dict
    index: int

    @property
    def activation(self) -> tuple:
        return self.record["activation_start"][self.index], self.record["activation_end"][self.index]

    @property
    def dead(self) -> bool:
        return bool(self.record["dead"][self.index])

    @property
    def warnings(self) -> list:
        return [w for w in self.record["warnings"] if w.startswith(f"image {self.index}:")]


def parse_units(text: str) -> list:
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


def _base(model, model_arg) -> dict:
    return {"model": str(model_arg), "model_name": model.meta.name or Path(str(model_arg)).stem}


def _render_kw(steps, size, seed, lr, device, progress) -> dict:
    kw = dict(steps=steps, seed=seed, lr=lr, device=device, progress=progress)
    if size:
        kw["size"] = size
    return kw


def _speed(precision: str, channels_last: bool) -> dict:
    """The command's options of the render's numeric settings, only where they are not the default."""
    return {"precision": None if precision == "fp32" else precision, "no_channels_last": not channels_last}


def param_kw(model, param: str, spectrum=None, size=None, lr: Optional[float] = None) -> dict:
    """Render keywords of a parameterization: "fft" (Lucid's) or "maco" (phase only; ``spectrum`` file
    or the shipped one), with its own default step size (``lr`` None)."""
    if param == "fft":
        from ..optvis import render

        return {"lr": api_default(render, "lr") if lr is None else lr}
    if param == "maco":
        from ..optvis.maco import LR as MACO_LR, maco_param_f

        return {"lr": MACO_LR if lr is None else lr,
                "param_f": maco_param_f(size or tuple(model.meta.input_size), spectrum=spectrum)}
    raise ObjectiveError(f"unknown parameterization {param!r}; known: fft, maco")


def _stem(kind: str, unit, param: str) -> str:
    return f"{kind}_{unit}" + ("" if param == "fft" else f"_{param}")


def _param_info(param: str) -> dict:
    """Record fields of the parameterization: ``param`` "maco" (the site shows FFT and MACO side by side);
    an FFT render keeps the render's own description there."""
    return {} if param == "fft" else {"param": param}


def _trust(model, png: Path, image, layer: str, unit, kind: str, param: str, importance, runs) -> None:
    """MACO's importance map beside the picture; the reliability check against ``runs`` (channels only)."""
    from . import trust

    fields = {}
    if param == "maco" and importance is not None:
        fields["importance"] = trust.write_importance(png, importance).name
    if fields:
        trust.update_record(png, **fields)
    if runs and kind in ("channel", "diversity") and isinstance(unit, int):
        trust.attach_reliability(model, png, image, layer, unit, runs)


def _reliability_field(kind: str, unit, runs) -> dict:
    """The ``reliability`` written with the record: why there is no check (a check replaces it after)."""
    from . import trust

    if kind not in ("channel", "diversity") or not isinstance(unit, int):
        return {"reliability": trust.not_checkable(kind)}
    return {"reliability": trust.unknown("not checked yet" if runs else trust.NO_RUN)}


def target(model, spec: str, kind: str = "channel", *, out, model_arg, steps: Optional[int] = None, size=None,
           seed: int = 0, lr: Optional[float] = None, device=None, progress: bool = True,
           meta_opts: Optional[dict] = None, param: str = "fft", spectrum=None, runs=None) -> Written:
    """One unit: ``spec`` "layer:unit" as a channel, neuron, class logit or class probability.

    ``param``: "fft" (Lucid's) or "maco" (phase only, ``spectrum`` file or the shipped one; writes
    the importance map beside the image). ``runs``: a mining run: the reliability check goes in the JSON
    (without it the JSON says the picture was not checked).
    """
    from ..optvis import objectives as obj
    from ..optvis import render

    steps = api_default(render, "steps") if steps is None else steps
    objective = obj.parse(spec, kind)
    lay = model.layer(objective.layer)
    kw = _render_kw(steps, size, seed, lr, device, progress)
    kw.update(param_kw(model, param, spectrum, size, lr))
    lr = kw["lr"]
    result = render(model, objective, **kw)
    cmd = command("render", model_arg, spec, objective=kind if kind != "channel" else None, steps=steps, size=size,
                  seed=seed, lr=lr, param=None if param == "fft" else param, spectrum=spectrum, run=runs,
                  **(meta_opts or {}))
    info = dict(_base(model, model_arg), layer=lay.name, unit=objective.unit, kind=objective.kind,
                objective=objective.name, command=cmd, **_param_info(param),
                **_reliability_field(objective.kind, objective.unit, runs))
    if objective.kind in ("class_logit", "class_prob"):
        info["label"] = model.meta.label(objective.unit)
    png = write_render(out, lay.name, _stem(objective.kind, objective.unit, param), result.images[0], result.record,
                       0, info)
    _trust(model, png, result.images[0], lay.name, objective.unit, objective.kind, param,
           None if result.importance is None else result.importance[0], runs)
    return Written(png, result.record, 0)


def diverse(model, spec: str, n: int, kind: str = "channel", *, out, model_arg, steps: Optional[int] = None, size=None,
            seed: int = 0, lr: Optional[float] = None, device=None, progress: bool = True,
            meta_opts: Optional[dict] = None, runs=None) -> list:
    """``n`` diverse images of one unit (one batch); ``runs``: the reliability check of each in its JSON."""
    from ..optvis import objectives as obj
    from ..optvis import recipes

    if n < 2:
        raise ObjectiveError("diversity needs n >= 2 images")
    steps = api_default(recipes.diverse, "steps", recipes.render) if steps is None else steps
    lr = api_default(recipes.diverse, "lr", recipes.render) if lr is None else lr
    objective = obj.parse(spec, kind)
    lay = model.layer(objective.layer)
    result = recipes.diverse(model, objective, n=n, **_render_kw(steps, size, seed, lr, device, progress))
    cmd = command("render", model_arg, spec, objective=kind if kind != "channel" else None, diversity=n, steps=steps,
                  size=size, seed=seed, lr=lr, run=runs, **(meta_opts or {}))
    # the check reads a channel: a diversity image of a neuron or a class is not checked
    check_kind = "diversity" if objective.kind == "channel" else objective.kind
    written = []
    for i in range(n):
        info = dict(_base(model, model_arg), layer=lay.name, unit=objective.unit, kind="diversity",
                    objective=objective.name, target_kind=objective.kind, command=cmd,
                    **_reliability_field(check_kind, objective.unit, runs))
        png = write_render(out, lay.name, f"diversity_{objective.kind}_{objective.unit}_{i}", result.images[i],
                           result.record, i, info)
        _trust(model, png, result.images[i], lay.name, objective.unit, check_kind, "fft", None, runs)
        written.append(Written(png, result.record, i))
    return written


def photo(model, what: str, layer: str, image_path, *, out, model_arg, steps: Optional[int] = None, seed: int = 0,
          lr: Optional[float] = None, device=None, progress: bool = True, meta_opts: Optional[dict] = None) -> Written:
    """A DeepDream (``what`` "deepdream") or a caricature ("caricature") of a photo at ``layer``."""
    from ..optvis import recipes

    if what not in ("deepdream", "caricature"):
        raise ObjectiveError(f"unknown photo recipe {what!r}; known: deepdream, caricature")
    lay = model.layer(layer)
    recipe = recipes.deepdream if what == "deepdream" else recipes.caricature
    steps = api_default(recipe, "steps", recipes.render) if steps is None else steps
    lr = api_default(recipe, "lr", recipes.render) if lr is None else lr
    result = recipe(model, layer, image_path, steps=steps, seed=seed, lr=lr, device=device, progress=progress)
    cmd = command("render", model_arg, **{what: layer}, image=image_path, steps=steps, seed=seed, lr=lr,
                  **(meta_opts or {}))
    info = dict(_base(model, model_arg), layer=lay.name, unit=None, kind=what, objective=result.record["objective"],
                command=cmd, photo=str(image_path), **_reliability_field(what, None, None))
    png = write_render(out, lay.name, f"{what}_{slug(Path(image_path).stem)}", result.images[0], result.record, 0,
                       info)
    return Written(png, result.record, 0)


def units(model, layer: str, unit_list: Optional[Sequence[int]] = None, neuron: bool = False, batch_size: int = 16,
          *, out, model_arg, steps: Optional[int] = None, size=None, seed: int = 0, lr: Optional[float] = None,
          device=None, meta_opts: Optional[dict] = None, command_run: Optional[str] = None, engine: str = "local",
          keep: bool = True, ray: Optional[dict] = None, param: str = "fft", spectrum=None,
          runs=None, precision: str = "fp32", channels_last: bool = True) -> Iterator[list]:
    """Channels (or center neurons) of ``layer``, ``batch_size`` per batch; yields each batch's Written list.

    The command recorded with each picture renders its batch (the same units, one seeded
    generator): the exact images. ``command_run``: a ``--run`` to put in that command
    (the run ``out`` belongs to, when no mining run ``runs`` is given).
    ``keep``: a batch whose pictures exist, made by that same command, is not rendered again
    (resume; it yields an empty list). ``engine``: "local" or "ray" (``ray``: workers, threads,
    address, gpus_per_worker for onnxviz.engines.ray.render_layer); the pictures are the same.
    ``param``: "fft" or "maco" (stems ``<kind>_<unit>_maco``, each with its importance map);
    ``runs``: a mining run, the reliability check of each channel in its JSON. ``precision``,
    ``channels_last``: the render's (``optvis.render``; recorded in the command when not the default).
    """
    import json

    from ..optvis import objectives as obj
    from ..optvis import recipes

    steps = api_default(recipes.render_layer, "steps", recipes.render) if steps is None else steps
    pkw = param_kw(model, param, spectrum, size, lr)
    lr = pkw["lr"]
    lay = model.layer(layer)
    unit_list = list(range(lay.units)) if unit_list is None else [int(u) for u in unit_list]
    kind = "neuron" if neuron else "channel"
    make = obj.neuron if neuron else obj.channel
    make(lay.name, unit_list).check(model)
    chunks = [unit_list[i:i + batch_size] for i in range(0, len(unit_list), batch_size)]
    folder = RunDir.layer_folder(out, lay.name)

    def cmd_of(chunk) -> str:
        return command("render", model_arg, layer=lay.name, units=",".join(str(u) for u in chunk),
                       objective=kind if neuron else None, batch_size=batch_size, steps=steps, size=size, seed=seed,
                       lr=lr, param=None if param == "fft" else param, spectrum=spectrum, run=runs or command_run,
                       **_speed(precision, channels_last), **(meta_opts or {}))

    def exists(chunk) -> bool:
        if not keep:
            return False
        cmd = cmd_of(chunk)
        for u in chunk:
            stem = _stem(kind, u, param)
            try:
                if not (folder / f"{stem}.png").exists() or \
                        json.loads((folder / f"{stem}.json").read_text())["command"] != cmd:
                    return False
            except (OSError, ValueError, KeyError):
                return False
        return True

    def write(chunk, images, record, importance=None) -> list:
        cmd = cmd_of(chunk)
        written = []
        for i, u in enumerate(chunk):
            info = dict(_base(model, model_arg), layer=lay.name, unit=u, kind=kind, objective=make(lay.name, u).name,
                        command=cmd, **_param_info(param), **_reliability_field(kind, u, runs))
            image = np.asarray(images[i])
            png = write_render(out, lay.name, _stem(kind, u, param), image, record, i, info)
            _trust(model, png, image, lay.name, u, kind, param, None if importance is None else importance[i], runs)
            written.append(Written(png, record, i))
        return written

    todo = [c for c in chunks if not exists(c)]
    for _ in range(len(chunks) - len(todo)):
        yield []
    if not todo:
        return
    kw = dict(_render_kw(steps, size, seed, lr, device, False), precision=precision, channels_last=channels_last,
              **pkw)
    if engine == "ray":
        from ..engines import ray as ray_engine

        done = []
        ray_engine.render_chunks(model, lay.name, todo, neuron, kw, lambda c, *r: done.append(write(c, *r)),
                                 **(ray or {}))
        yield from done
        return
    flat = [u for c in todo for u in c]  # full batches first, so the batches are the same as in one run
    for chunk, result in recipes.render_layer(model, lay.name, flat, batch_size=batch_size, neuron=neuron, **kw):
        yield write(chunk, result.images, result.record, result.importance)


def missing_units(model, render_dir, layers: Optional[list] = None) -> dict:
    """layer name -> unit indices with no unit visualization in ``render_dir``."""
    names = [model.layer(n).name for n in layers] if layers else [lay.name for lay in model.layers]
    pics = collect_renders(render_dir, [lay.name for lay in model.layers])
    out = {}
    for name in names:
        layer = model.layer(name)
        done = {p.unit for p in pics.get(name, []) if p.unit is not None and p.kind in UNIT_KINDS}
        todo = [u for u in range(int(layer.units or 0)) if u not in done]
        if todo:
            out[name] = todo
    return out


def render_missing(model, run, layers: Optional[list] = None, steps: Optional[int] = None,
                   model_arg: Optional[str] = None, seed: int = 0, batch_size: int = 16, progress: bool = True,
                   meta_opts: Optional[dict] = None) -> int:
    """Render every unit of ``layers`` (default all) that has no picture in run directory ``run``; returns how many."""
    from ..progress import bar

    render_dir = RunDir(run).render
    model_arg = model_arg or str(model.path)
    todo = missing_units(model, render_dir, layers)
    done = 0
    with bar(sum(len(v) for v in todo.values()), "rendering missing units", "unit", enabled=progress) as pbar:
        for name, unit_list in todo.items():
            for written in units(model, name, unit_list, batch_size=batch_size, out=render_dir, model_arg=model_arg,
                                 steps=steps, seed=seed, meta_opts=meta_opts, command_run=str(run)):
                done += len(written)
                pbar.update(len(written))
    return done
