"""The labelled photos that ship with onnxviz (onnxviz/data/photos): the only images preprocessing
inference looks at, so that every install, with or without other packages, gives the same answer.

Sixteen licence-clean photos (CC0, public domain, CC BY 2.0 and MIT; README.md there), twelve of
them with the set of ImageNet-1k classes a right classifier may answer (labels.json).
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

PHOTOS = Path(__file__).resolve().parents[1] / "data" / "photos"


@lru_cache(maxsize=1)
def bundled() -> tuple:
    """((path, frozenset of acceptable ImageNet class ids), ...) for every bundled photo, in a fixed
    order; an empty set marks a photo without a label (used for statistics only)."""
    entries = json.loads((PHOTOS / "labels.json").read_text())["photos"]
    return tuple((PHOTOS / name, frozenset(int(i) for i in e["imagenet"])) for name, e in sorted(entries.items()))


def labelled() -> list:
    """[(path, acceptable class ids)] of the photos with an ImageNet label."""
    return [(p, ids) for p, ids in bundled() if ids]


def paths() -> list:
    """Every bundled photo, labelled ones first (a short run takes the first few)."""
    return [p for p, _ in labelled()] + [p for p, ids in bundled() if not ids]
