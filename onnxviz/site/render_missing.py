"""`onnxviz site --render-missing`: render the units that have no visualization yet.

Uses the render API (``onnxviz.optvis.recipes.render_layer``, one torch view per layer, units in
batches) and writes each image as PNG + JSON into ``render/<layer_slug>/`` in the documented
run-directory format, so the site (and a later `onnxviz render`) read them like any other render.
"""
from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import OnnxVizError
from .collect import UNIT_KINDS, collect_renders


def missing_units(model, render_dir, layers: Optional[list] = None) -> dict:
    """layer name -> unit indices with no unit visualization in ``render_dir``."""
    names = [model.layer(n).name for n in layers] if layers else [l.name for l in model.layers]
    pics = collect_renders(render_dir, [l.name for l in model.layers])
    out = {}
    for name in names:
        layer = model.layer(name)
        done = {p.unit for p in pics.get(name, []) if p.unit is not None and p.kind in UNIT_KINDS}
        todo = [u for u in range(int(layer.units or 0)) if u not in done]
        if todo:
            out[name] = todo
    return out


def render_missing(model, render_dir, layers: Optional[list] = None, steps: Optional[int] = None,
                   model_arg: Optional[str] = None, seed: int = 0, batch_size: int = 16, progress: bool = True) -> int:
    """Render every missing unit of ``layers`` (default all) into ``render_dir``; returns how many."""
    try:
        from ..optvis import objectives
        from ..optvis.output import write_render
        from ..optvis.recipes import render_layer
    except ImportError as exc:
        raise OnnxVizError(f"--render-missing needs the render API (onnxviz.optvis): {exc}") from exc
    render_dir = Path(render_dir)
    model_arg = model_arg or str(model.path)
    steps = int(steps or 256)
    todo = missing_units(model, render_dir, layers)
    total = sum(len(v) for v in todo.values())
    done = 0
    for name, units in todo.items():
        for chunk, result in render_layer(model, name, units, batch_size=batch_size, steps=steps, seed=seed):
            rec = result.record
            # the units were optimized together (one batch, one seeded generator): the command that
            # reproduces these exact images renders the same batch
            cmd = (f"onnxviz render {shlex.quote(model_arg)} --layer {shlex.quote(name)} "
                   f"--units {','.join(str(u) for u in chunk)} --batch-size {batch_size} --steps {steps} "
                   f"--seed {seed} --out {shlex.quote(str(render_dir))}")
            for i, unit in enumerate(chunk):
                write_render(render_dir, name, f"channel_{unit}", np.asarray(result.images[i]), rec, i,
                             {"model": model_arg, "layer": name, "unit": unit, "kind": "channel",
                              "objective": objectives.channel(name, unit).name, "command": cmd})
            done += len(chunk)
            if progress:
                print(f"rendered {done}/{total} missing units ({name})", flush=True)
    return done
