"""Pieces of the site that are not page flow: what a layer and a unit page show, thumbnails, facts.

Arrays become pictures with ``onnxviz.preprocessing.images.to_pil``; files are read with a warning (never a
crash) when they cannot be.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from PIL import Image

from ..preprocessing.images import to_pil

log = logging.getLogger(__name__)


def _to_pil(obj) -> Optional[Image.Image]:
    """A PIL RGB image from a path, a PIL image or an array (see ``onnxviz.preprocessing.images.to_pil``); None if unreadable."""
    if obj is None:
        return None
    if isinstance(obj, Image.Image):
        img = obj
    elif isinstance(obj, (str, os.PathLike)):
        try:
            with Image.open(obj) as f:
                img = f.convert("RGB")
        except (OSError, ValueError) as exc:
            log.warning("cannot read image %s: %s", obj, exc)
            return None
    else:
        img = to_pil(obj)
    return img.convert("RGB") if img.mode != "RGB" else img


def _at_most(img: Image.Image, size: int) -> Image.Image:
    """The image shrunk to ``size`` on its longest side; small images stay as they are."""
    return _thumbnail(img, size) if max(img.size) > size else img


def _thumbnail(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    scale = size / max(w, h)
    if abs(scale - 1) < 1e-6:
        return img.copy()
    resample = Image.NEAREST if scale > 1 and max(w, h) <= 64 else Image.LANCZOS
    return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), resample)


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return ""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{v:.{digits}g}"


@dataclass
class UnitInfo:
    index: int
    label: str = ""
    pictures: list = field(default_factory=list)  # Picture, feature visualizations of this unit
    accentuations: list = field(default_factory=list)  # Picture of kind "accentuation" (a photo pushed to the unit)
    score: Optional[float] = None  # top activation from mining
    thumb: str = ""


@dataclass
class LayerInfo:
    layer: object  # onnxviz Layer
    slug: str
    units: list = field(default_factory=list)  # UnitInfo
    layer_pictures: list = field(default_factory=list)  # deepdream, caricature, unit-less objectives
    thumb: str = ""
    thumb_units: list = field(default_factory=list)
    mined: bool = False
    command_all: str = ""
    command_dream: str = ""
    command_caricature: str = ""
    templates: dict = field(default_factory=dict)  # what -> command with UNIT_MARK where the unit goes
    mining: object = None  # a MiningSource of its own (a concept set's), else the site's
    concept: dict = field(default_factory=dict)  # a concept set: base (LayerInfo), dictionary, metrics, top_units
    concepts: list = field(default_factory=list)  # the concept sets of this layer (LayerInfo each)

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def rendered(self) -> int:
        return sum(1 for u in self.units if u.pictures)


def model_facts(m) -> list:
    """Rows of the model page's facts table, from ``Model.describe``."""
    d = m.describe()
    facts = [("Name", m.meta.name or Path(str(m.path)).stem)]
    if m.meta.source:
        facts.append(("Weights", m.meta.source))
    facts.append(("File", Path(str(m.path)).name))
    if d["path"]:
        size = d["file_size"]
        facts.append(("File size", f"{size / 1e6:.2f} MB" if size >= 1e5 else f"{size / 1e3:.1f} kB"))
    facts.append(("Opset", ", ".join(f"{domain} {version}" for domain, version in d["opsets"].items())))
    facts.append(("IR version", str(d["ir_version"])))
    if d["producer"]:
        facts.append(("Producer", d["producer"]))
    facts.append(("Parameters", f"{d['parameters']:,}"))
    facts.append(("Nodes", f"{d['nodes']:,}"))
    shape = "×".join("N" if v is None else str(v) for v in d["input"]["shape"])
    facts.append(("Input", f"{d['input']['name']} [{shape}]"))
    outs = [f"{name} [{'×'.join('?' if v is None else str(v) for v in dims)}]"
            for name, dims in d["output_shapes"].items()]
    facts.append(("Outputs", ", ".join(outs)))
    return facts


def preprocessing(meta) -> list:
    """Rows of the model page's preprocessing table."""
    rows = [("Input size", "×".join(str(v) for v in meta.input_size) + (" (any size)" if meta.dynamic_size else "")),
            ("Layout", meta.layout), ("Channel order", meta.channel_order),
            ("Value range", f"[{_fmt(meta.value_range[0])}, {_fmt(meta.value_range[1])}]"),
            ("Mean", ", ".join(_fmt(v) for v in meta.mean)), ("Std", ", ".join(_fmt(v) for v in meta.std)),
            ("Resize", f"shorter side {meta.resize}, center crop" if meta.resize else "to input size"),
            ("Interpolation", meta.interpolation)]
    if meta.labels:
        rows.append(("Labels", f"{len(meta.labels)} classes"))
    conf = f", confidence {meta.confidence:.2f}" if meta.confidence is not None else ""
    rows.append(("Source", f"{meta.preprocessing_source}{conf}"))
    rows += [("Evidence", line) for line in meta.evidence]
    rows += [("Conflict", line) for line in meta.conflicts]
    return rows


def preprocessing_line(meta, model_arg) -> dict:
    """What every page shows under its header: the preprocessing used and its source (``prep_used``), and
    the one warning line when it is uncertain or conflicts with a source (``prep_warning``, else "")."""
    from ..preprocessing.uncertainty import notice, summary

    conf = f", confidence {meta.confidence:.2f}" if meta.confidence is not None else ""
    return {"prep_used": f"{summary(meta)}, {'x'.join(str(v) for v in meta.input_size)} "
                         f"(from {meta.preprocessing_source}{conf})",
            "prep_warning": notice(meta, str(model_arg or "MODEL")) or ""}
