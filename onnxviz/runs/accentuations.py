"""Feature accentuations into a run directory: one PNG + JSON per photo, seeded, in one batch.

Stems: ``accentuate_<unit>_<photo stem>``; the record carries the photo, the regularization layer,
the feature and pixel distance to the photo, and the command that reproduces it. Photos default
to the unit's top dataset examples of a mining run (``runs``).
"""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional, Sequence

from ..errors import ObjectiveError
from ..paths import slug
from .command import command
from .render import Written, _base
from .renders import write_render


def accentuate(model, spec: str, photos: Optional[Sequence] = None, *, out, model_arg, runs=None, k: int = 4,
               steps: int = 128, seed: int = 0, lr: Optional[float] = None, weight: float = 1.0,
               reg_layer: Optional[str] = None, device=None, progress: bool = True,
               meta_opts: Optional[dict] = None) -> list:
    """Accentuate unit ``spec`` ("layer:unit") in ``photos`` (default: its top ``k`` examples in ``runs``)."""
    from ..optvis import objectives as obj
    from ..optvis.accentuate import LR, accentuate as run_accentuate, top_example_photos

    objective = obj.parse(spec, "channel")
    lay = model.layer(objective.layer)
    from_run = not photos
    if from_run:
        if not runs:
            raise ObjectiveError("--accentuate needs photos, or --runs RUN for the unit's top dataset examples")
        from ..mining import open_results

        results = open_results(runs)
        try:
            photos = top_example_photos(results, results.name(lay.name), int(objective.unit), k=k)
        finally:
            results.close()
    photos = [Path(p) for p in photos]
    lr = LR if lr is None else lr
    result = run_accentuate(model, objective, photos, reg_layer=reg_layer, weight=weight, steps=steps, lr=lr,
                            seed=seed, device=device, progress=progress)
    acc = result.record["accentuation"]
    cmd = command("render", model_arg, spec, accentuate="top" if from_run else None, runs=runs if from_run else None,
                  top=k if from_run and k != 4 else None, steps=steps, seed=seed, lr=lr,
                  weight=weight if weight != 1.0 else None, reg_layer=reg_layer, **(meta_opts or {}))
    if not from_run:  # --accentuate is repeated, one photo each
        cmd += "".join(f" --accentuate {shlex.quote(str(p))}" for p in photos)
    written = []
    for i, photo in enumerate(photos):
        info = dict(_base(model, model_arg), layer=lay.name, unit=objective.unit, kind="accentuation",
                    objective=objective.name, command=cmd, photo=str(photo),
                    accentuation={"reg_layer": acc["reg_layer"], "weight": acc["weight"],
                                  "feature_distance": acc["feature_distance"][i], "pixel_rmse": acc["pixel_rmse"][i],
                                  "activation_photo": acc["activation_photo"][i]})
        stem = f"accentuate_{objective.unit}_{slug(photo.stem)}"
        png = write_render(out, lay.name, stem, result.images[i], result.record, i, info)
        written.append(Written(png, result.record, i))
    return written
