"""What a render writes beside its PNG for trust: MACO's importance map and the reliability check.

``<stem>_importance.png``: the accumulated |gradient| of the objective w.r.t. the image (MACO's
transparency map; white = the pixels the unit used most). ``reliability`` in the render's JSON:
``onnxviz.optvis.reliability.check_with_run`` against the unit's top examples of a mining run; every
render record has the key: without a check it says why (verdict "unknown", see ``unknown``).
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import OnnxVizError
from ..preprocessing.images import save_image
from ..files import write_json
from .render_records import read_record

log = logging.getLogger(__name__)


NO_RUN = ("not checked: no mining run given (render ... --run RUN compares the picture with the unit's top "
          "dataset examples; or onnxviz check MODEL PNG --run RUN)")


def unknown(reason: str = NO_RUN) -> dict:
    """The ``reliability`` entry of a picture that was not checked, and why."""
    return {"verdict": "unknown", "meaning": reason}


def not_checkable(kind: str) -> dict:
    """``unknown`` for a picture the check does not apply to (it compares channel renders from noise)."""
    if kind == "accentuation":
        return unknown("not checked: an accentuation starts from a real photo (the check compares renders made "
                       "from noise with the unit's top dataset examples)")
    return unknown(f"not checked: the check compares channel renders with the unit's top dataset examples; "
                   f"this picture is a {kind} render")


def write_importance(png: Path, importance) -> Path:
    """Write the importance map of ``png``'s image as ``<stem>_importance.png``; returns its path."""
    from ..optvis.maco import importance_image

    out = Path(png).with_name(Path(png).stem + "_importance.png")
    save_image(importance_image(np.asarray(importance)), out)
    return out


def update_record(png: Path, **fields) -> dict:
    """Add fields to the JSON record beside ``png``; returns the record."""
    js = Path(png).with_suffix(".json")
    rec = read_record(js)
    rec.update(fields)
    write_json(js, rec)
    return rec


def attach_reliability(model, png: Path, image: np.ndarray, layer: str, unit: int, run_dir, device=None) -> dict:
    """Run the reliability check of a render against mining run ``run_dir`` and store it in its JSON.

    A run that lacks the layer or the unit's examples is reported in the record, not raised.
    """
    return attach_reliability_units(model, layer, [(png, image, unit)], run_dir, device=device)[0]


def attach_reliability_units(model, layer: str, items, run_dir, device=None, batch: int = 8) -> list:
    """``attach_reliability`` of many renders of one layer, [(png, image, unit)], checked together
    (``optvis.reliability.check_units_with_run``: shared passes of ``batch`` images); returns the reports."""
    from ..optvis.reliability import check_units_with_run

    items = list(items)
    try:
        reports = check_units_with_run(model, layer, [(unit, np.asarray(image)[None]) for _, image, unit in items],
                                       run_dir, device=device, batch=batch)
    except OnnxVizError as exc:
        reports = [exc] * len(items)
    out = []
    for (png, _, _), report in zip(items, reports):
        if isinstance(report, OnnxVizError):
            report = {"verdict": "unknown", "meaning": f"no reliability check: {report}"}
        update_record(png, reliability=report)
        out.append(report)
    return out
