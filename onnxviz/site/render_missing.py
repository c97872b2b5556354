"""`onnxviz site --render-missing`: render the units that have no visualization yet."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

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
                   model_arg: Optional[str] = None) -> int:
    """Render every missing unit with the render API; returns how many were rendered."""
    try:
        from ..optvis import render as R  # noqa: F401
    except ImportError as exc:
        raise OnnxVizError(f"--render-missing needs onnxviz.optvis (render API not available: {exc})") from exc
    raise OnnxVizError("--render-missing: render API adapter not wired yet")
