"""Feature accentuations into a run directory: one PNG + JSON per photo, seeded, in one batch.

Stems: ``accentuate_<unit>_<photo stem>``; the record carries the photo, the regularization layer,
the feature and pixel distance to the photo, and the command that reproduces it. Photos default
to the unit's top dataset examples of a mining run (``runs``). ``layer_units`` does the same for
several units of a layer, a few units (their photos together) per batch.
"""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional, Sequence

from ..errors import ObjectiveError
from ..paths import slug
from .command import api_default, command
from .render_jobs import Written, _base
from .render_records import write_render
from .trust import not_checkable


def _top_photos(model, layer: str, unit_list: Sequence[int], runs, k: int) -> dict:
    """unit -> paths of its top ``k`` dataset examples in mining run ``runs``."""
    from ..mining import open_results
    from ..optvis.accentuate import top_example_photos

    if not runs:
        raise ObjectiveError("--accentuate needs photos, or --run RUN for the unit's top dataset examples")
    results = open_results(runs)
    try:
        name = results.name(model.layer(layer).name)
        return {u: [Path(p) for p in top_example_photos(results, name, int(u), k=k)] for u in unit_list}
    finally:
        results.close()


def _write(model, lay, units: list, photos: list, result, cmd: str, out, model_arg) -> list:
    """One PNG + JSON per image of an accentuation batch (image i: unit units[i] in photos[i])."""
    from ..optvis import objectives as obj

    acc = result.record["accentuation"]
    written = []
    for i, (unit, photo) in enumerate(zip(units, photos)):
        info = dict(_base(model, model_arg), layer=lay.name, unit=unit, kind="accentuation",
                    objective=obj.channel(lay.name, unit).name, command=cmd, photo=str(photo),
                    accentuation={"reg_layer": acc["reg_layer"], "weight": acc["weight"],
                                  "feature_distance": acc["feature_distance"][i], "pixel_rmse": acc["pixel_rmse"][i],
                                  "activation_photo": acc["activation_photo"][i]},
                    reliability=not_checkable("accentuation"))
        stem = f"accentuate_{unit}_{slug(photo.stem)}"
        png = write_render(out, lay.name, stem, result.images[i], result.record, i, info)
        written.append(Written(png, result.record, i))
    return written


def accentuate(model, spec: str, photos: Optional[Sequence] = None, *, out, model_arg, runs=None, k: int = 4,
               steps: Optional[int] = None, seed: int = 0, lr: Optional[float] = None, weight: float = 1.0,
               reg_layer: Optional[str] = None, device=None, progress: bool = True,
               meta_opts: Optional[dict] = None) -> list:
    """Accentuate unit ``spec`` ("layer:unit") in ``photos`` (default: its top ``k`` examples in ``runs``)."""
    from ..optvis import objectives as obj
    from ..optvis.accentuate import LR, accentuate as run_accentuate

    objective = obj.parse(spec, "channel")
    lay = model.layer(objective.layer)
    from_run = not photos
    if from_run:
        photos = _top_photos(model, lay.name, [int(objective.unit)], runs, k)[int(objective.unit)]
    photos = [Path(p) for p in photos]
    lr = LR if lr is None else lr
    steps = api_default(run_accentuate, "steps") if steps is None else steps
    result = run_accentuate(model, objective, photos, reg_layer=reg_layer, weight=weight, steps=steps, lr=lr,
                            seed=seed, device=device, progress=progress)
    cmd = command("render", model_arg, spec, accentuate="top" if from_run else None, run=runs if from_run else None,
                  top=k if from_run and k != 4 else None, steps=steps, seed=seed, lr=lr,
                  weight=weight if weight != 1.0 else None, reg_layer=reg_layer, **(meta_opts or {}))
    if not from_run:  # --accentuate is repeated, one photo each
        cmd += "".join(f" --accentuate {shlex.quote(str(p))}" for p in photos)
    return _write(model, lay, [objective.unit] * len(photos), photos, result, cmd, out, model_arg)


def layer_units(model, layer: str, unit_list: Sequence[int], photos: Optional[Sequence] = None, *, out, model_arg,
                runs=None, k: int = 4, batch_size: int = 16, steps: Optional[int] = None, seed: int = 0,
                lr: Optional[float] = None, weight: float = 1.0, reg_layer: Optional[str] = None, device=None,
                progress: bool = True, meta_opts: Optional[dict] = None):
    """Accentuate each unit of ``unit_list`` in ``photos`` (default: each unit's own top ``k`` examples in
    ``runs``); yields each batch's Written list.

    A batch holds ``max(1, batch_size // photos per unit)`` units, all their photos at once, seeded;
    the command recorded with each picture accentuates its batch (the same units): the exact images.
    """
    from ..optvis import objectives as obj
    from ..optvis.accentuate import LR, accentuate as run_accentuate

    lay = model.layer(layer)
    unit_list = [int(u) for u in unit_list]
    obj.channel(lay.name, unit_list).check(model)
    from_run = not photos
    per_unit = _top_photos(model, lay.name, unit_list, runs, k) if from_run else \
        {u: [Path(p) for p in photos] for u in unit_list}
    lr = LR if lr is None else lr
    steps = api_default(run_accentuate, "steps") if steps is None else steps
    n_photos = max(len(v) for v in per_unit.values())
    step = max(1, batch_size // max(1, n_photos))
    for i in range(0, len(unit_list), step):
        chunk = unit_list[i:i + step]
        units = [u for u in chunk for _ in per_unit[u]]
        pics = [p for u in chunk for p in per_unit[u]]
        if not pics:
            yield []
            continue
        result = run_accentuate(model, obj.channel(lay.name, units), pics, reg_layer=reg_layer, weight=weight,
                                steps=steps, lr=lr, seed=seed, device=device, progress=progress)
        cmd = command("render", model_arg, layer=lay.name, units=",".join(str(u) for u in chunk),
                      accentuate="top" if from_run else None, run=runs if from_run else None,
                      top=k if from_run and k != 4 else None, batch_size=batch_size, steps=steps, seed=seed, lr=lr,
                      weight=weight if weight != 1.0 else None, reg_layer=reg_layer, **(meta_opts or {}))
        if not from_run:
            cmd += "".join(f" --accentuate {shlex.quote(str(p))}" for p in photos)
        yield _write(model, lay, units, pics, result, cmd, out, model_arg)
