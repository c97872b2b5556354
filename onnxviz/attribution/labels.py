"""Names for units and concepts from the model's own labelled head: the classes a feature promotes.

A feature (a unit, or a concept's direction) is named by what the rest of the network does with
it: every position of the layer is set to the dataset's mean activation vector plus a strong dose
of the feature (its 99th-percentile projection over the run's sampled vectors), and the change
of the logits against the mean vector alone says which classes it promotes (the class atlas's
``class_support``, through the part of the model after the layer). Only a model whose metadata
has labels for its (N, classes) output gets labels; nothing is invented without them, and a
layer that the output also reaches by another path (inside a residual block) gets none.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .head import class_support
from .core import output_layer


def promoted_classes(model, layer: str, directions: np.ndarray, vectors: np.ndarray, top: int = 3,
                     device=None) -> Optional[list]:
    """Per direction (K, C): [{"class", "label", "support"}], the ``top`` classes it promotes most;
    None when the model has no labelled head after ``layer``. ``vectors``: the layer's activation
    vectors sampled during mining (M, C), for the baseline and the dose."""
    labels = model.meta.labels
    out = output_layer(model)
    if not labels or out is None or out.units != len(labels):
        return None
    x = np.asarray(vectors, np.float32)
    d = np.asarray(directions, np.float32)
    d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
    base = x.mean(0)
    proj = x @ d.T  # (M, K)
    dose = np.maximum(np.percentile(proj, 99, axis=0) - base @ d.T, 1e-6)
    support, _ = class_support(model, layer, base[None] + dose[:, None] * d, base, device)
    if support is None:
        return None
    found = []
    for row in support:
        best = np.argsort(-row, kind="stable")[:top]
        found.append([{"class": int(c), "label": model.meta.label(int(c)), "support": round(float(row[c]), 4)}
                      for c in best])
    return found


def unit_directions(channels: int) -> np.ndarray:
    """The units of a layer as directions: the identity (C, C)."""
    return np.eye(channels, dtype=np.float32)


def caption(classes: Optional[list]) -> str:
    """A label a person reads: ``golden retriever (+2.31)``, the strongest promoted class."""
    if not classes:
        return ""
    best = classes[0]
    return f"{best['label']} ({best['support']:+.2f})"
