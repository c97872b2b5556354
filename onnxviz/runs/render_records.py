"""Render records in a run directory: one writer and one reader.

``write_render`` writes a picture of a render batch as ``<render dir>/<layer slug>/<stem>.png`` and
``.json`` (fields: see ``onnxviz.runs``); ``collect_renders`` reads them back for the site.
Everything read is untrusted: a run directory may come from someone else and the names in an ONNX
file are data from strangers. Records are validated field by field, image paths are reduced to a
file name inside the record's own folder, and nothing outside the render folder is opened.
"""
from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..paths import inside, slug
from ..preprocessing.images import save_image
from .layout import RunDir
from ..files import write_json

log = logging.getLogger(__name__)

# Render kinds that show one unit of a layer (feature visualizations proper).
UNIT_KINDS = ("channel", "neuron", "class_logit", "class_prob", "diversity", "objective")


_SETTINGS = ("steps", "size", "seed", "lr", "batch", "device", "param", "transforms", "regularizers",
             "redirect_steps", "fit_input", "ms_per_step", "seconds", "activation_per_step_note",
             "diversity_weight", "diversity_layer", "preprocessing", "precision", "channels_last")


def write_render(render_dir, layer: str, stem: str, image: np.ndarray, record: dict, index: int, base: dict) -> Path:
    """Write image ``index`` of a render batch into ``render_dir`` (a RunDir's ``render``, or a folder given
    instead); ``base`` holds model/layer/unit/kind/objective/command."""
    folder = RunDir.layer_folder(render_dir, layer)
    png = save_image(image, folder / f"{stem}.png")
    entry = dict(base)
    entry.update({
        "image": png.name,
        "activation_start": record["activation_start"][index],
        "activation_end": record["activation_end"][index],
        "activation_per_step": [step[index] for step in record["activation_per_step"]],
        "dead": record["dead"][index],
        "warnings": [w for w in record["warnings"] if w.startswith(f"image {index}:")],
        "batch_index": index,
    })
    for key in _SETTINGS:
        if key in record:
            entry.setdefault(key, record[key])
    write_json(folder.joinpath(f"{stem}.json"), entry)
    return png


def read_record(js: Path) -> dict:
    """A render's JSON record as a dict, or a RunDirError naming the file (damaged, partial, not a record)."""
    from ..errors import RunDirError

    try:
        rec = json.loads(Path(js).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise RunDirError(f"{js}: not a readable render record ({getattr(exc, 'strerror', None) or exc}); render "
                          "that unit again (or delete the file and its PNG)") from None
    if not isinstance(rec, dict) or not isinstance(rec.get("layer", ""), str):
        raise RunDirError(f"{js}: not a render record (a JSON object with a layer, unit and kind); render that unit "
                          "again (or delete the file and its PNG)")
    return rec


@dataclass
class Picture:
    """One rendered image and its JSON record (fields: see ``onnxviz.runs``)."""

    layer: str  # onnxviz layer name it belongs to
    unit: Optional[int]
    kind: str
    objective: str
    source: Path  # the PNG in the run directory
    command: str  # the CLI line that reproduces it
    record: dict = field(default_factory=dict)  # the whole JSON record
    image: str = ""  # site-relative path of the copied image (set by the builder)
    thumb: str = ""  # site-relative path of its thumbnail (set by the builder)

    @property
    def activation(self) -> Optional[float]:
        """The objective's final activation, when the record has a finite one."""
        value = self.record.get("activation_end")
        if isinstance(value, list):  # one value per image of a batch: this image's, else the best
            index = self.record.get("index", self.record.get("batch_index"))
            if isinstance(index, int) and not isinstance(index, bool) and 0 <= index < len(value):
                value = value[index]
            else:
                values = [v for v in map(_finite, value) if v is not None]
                value = max(values) if values else None
        return _finite(value)

    @property
    def order(self) -> tuple:
        kinds = {"channel": 0, "neuron": 1, "class_logit": 2, "class_prob": 3, "diversity": 4}
        return (kinds.get(self.kind, 9), str(self.record.get("seed", "")), self.source.name)


def _finite(value) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def collect_renders(render_dir, layer_names: list) -> dict:
    """Map layer name -> list of Picture, from ``render_dir/<layer_slug>/*.json``.

    A record is attributed to the layer its "layer" field names; a record whose field names no
    layer of the model falls back to the layer whose slug is its folder name. Records that are not
    valid JSON objects, whose image is missing, or whose files lie outside ``render_dir`` (symlinks)
    are skipped with a warning.
    """
    render_dir = Path(render_dir)
    out: dict = {name: [] for name in layer_names}
    if not render_dir.is_dir():
        return out
    by_slug = {slug(n): n for n in layer_names}
    known = set(layer_names)
    for folder in sorted(render_dir.iterdir()):
        if not folder.is_dir() or not inside(folder, render_dir):
            continue
        for js in sorted(folder.glob("*.json")):
            pic = _read_record(js, folder, render_dir, known, by_slug)
            if pic is not None:
                out[pic.layer].append(pic)
    for pics in out.values():
        pics.sort(key=lambda p: (p.unit if p.unit is not None else -1, p.order))
    return out


def _read_record(js: Path, folder: Path, render_dir: Path, known: set, by_slug) -> Optional[Picture]:
    if not inside(js, render_dir):
        log.warning("skipping %s: outside the render folder", js)
        return None
    try:
        rec = json.loads(js.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("skipping %s: %s", js, exc)
        return None
    if not isinstance(rec, dict):
        return None
    layer = rec.get("layer")
    if not isinstance(layer, str) or layer not in known:
        layer = by_slug.get(folder.name)
    if layer is None:
        log.warning("skipping %s: layer %r is not a layer of this model", js, rec.get("layer"))
        return None
    image_name = rec.get("image")
    if not isinstance(image_name, str) or not image_name:
        image_name = js.with_suffix(".png").name
    src = folder / Path(image_name.replace("\\", "/")).name  # a file name, never a path
    if not src.is_file() or not inside(src, render_dir):
        log.warning("skipping %s: image %r not found", js, image_name)
        return None
    unit = rec.get("unit")
    if isinstance(unit, bool) or not isinstance(unit, int):
        unit = None
    kind = rec.get("kind") if isinstance(rec.get("kind"), str) else "objective"
    objective = rec.get("objective") if isinstance(rec.get("objective"), str) else ""
    command = rec.get("command") if isinstance(rec.get("command"), str) else ""
    return Picture(layer=layer, unit=unit, kind=kind, objective=objective, source=src, command=command, record=rec)
