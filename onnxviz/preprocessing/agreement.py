"""Whether an inferred preprocessing is right: one numeric rule, shared by the tuning and evaluation sets.

A preprocessing in ModelMeta's terms maps an image pixel p in [0, 1] to the model input of channel
k (in the model's channel order) by an affine map

    x_k = a_k * p + b_k,   a_k = (hi - lo) / std_k,   b_k = (lo - mean_k) / std_k

with ``value_range = (lo, hi)``. Two preprocessings that give the same maps feed the model the same
numbers whatever their names say: "-1..1" and ``(x - 127.5) / 128`` are the same input for a net,
and ImageNet's mean/std listed R, G, B but applied to a BGR image (the PaddleOCR habit) is within a
few percent of the same statistics reversed. So the verdict compares maps, not convention names.

The rule (``TOLERANCE`` = 0.2), for every model channel k, with the inferred map in the true model
channel order (model input channel k against model input channel k):

    |a_inf - a_true| <= 0.2 * |a_true|
    |b_inf - b_true| <= 0.2 * max(|a_true|, |b_true|)

The slope is judged relative to itself. The offset is judged relative to the size of the true map
rather than to itself, because the most common true offset is 0 (0..1, 0..255), where a relative
rule would demand an exact 0; an offset error of 20% of the span the inputs cover (or of the offset,
when that is larger) moves every input by at most that much. Under this rule 0..1 vs 0..255, 0..1 vs
ImageNet mean/std, -1..1 vs ImageNet mean/std and 0..255 minus the Caffe mean vs plain 0..255 all
disagree; -1..1 vs (x - 127.5) / 128 and ImageNet mean/std in R, G, B vs B, G, R order agree.

Channel order is a separate field: right when the inferred order equals the true one. It is counted
only for 3-channel files whose order matters (``order_matters``: false where the package feeds three
equal channels, e.g. a grayscale page copied into RGB, or where the package and the training
convention disagree so no order is the truth). Grayscale files count for scale and offset only.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

import numpy as np

TOLERANCE = 0.2
FIELDS = ("scale_offset", "channel_order", "both")


@dataclass(frozen=True)
class Preprocessing:
    """What maps an image to a model input: value range, mean/std per model channel, channel order."""

    channel_order: str
    value_range: tuple
    mean: tuple = (0.0,)
    std: tuple = (1.0,)
    order_matters: bool = True

    @property
    def channels(self) -> int:
        return 1 if self.channel_order == "L" else 3

    def pixel_map(self) -> tuple:
        """(a, b), one entry per model channel: input_k = a_k * p + b_k for a pixel p in [0, 1]."""
        n = self.channels
        mean = np.broadcast_to(np.asarray(self.mean, np.float64), (n,)) if len(self.mean) in (1, n) else None
        std = np.broadcast_to(np.asarray(self.std, np.float64), (n,)) if len(self.std) in (1, n) else None
        if mean is None or std is None:
            raise ValueError(f"mean {self.mean} and std {self.std} need 1 or {n} values for {self.channel_order}")
        lo, hi = (float(v) for v in self.value_range)
        return (hi - lo) / std, (lo - mean) / std

    @classmethod
    def of(cls, d, order_matters: Optional[bool] = None) -> "Preprocessing":
        """From a ModelMeta, a Candidate, or a dict with channel_order, value_range, mean, std."""
        get = d.get if isinstance(d, dict) else lambda k, default=None: getattr(d, k, default)
        order = get("channel_order")
        if order_matters is None:
            order_matters = bool(get("order_matters", True))
        return cls(order, tuple(float(v) for v in get("value_range")), tuple(float(v) for v in get("mean", (0.0,))),
                   tuple(float(v) for v in get("std", (1.0,))), order_matters and order != "L")


def scale_offset_agree(inferred: Preprocessing, truth: Preprocessing, tolerance: float = TOLERANCE) -> bool:
    """True when every model channel's pixel->input map of ``inferred`` is within ``tolerance`` of the truth's."""
    a_t, b_t = truth.pixel_map()
    a_i, b_i = inferred.pixel_map()
    if a_i.shape != a_t.shape:  # one gray channel against three: compare the gray map with each
        a_i, b_i = np.broadcast_to(a_i, a_t.shape), np.broadcast_to(b_i, b_t.shape)
    slope = np.abs(a_i - a_t) <= tolerance * np.abs(a_t) + 1e-12
    offset = np.abs(b_i - b_t) <= tolerance * np.maximum(np.abs(a_t), np.abs(b_t)) + 1e-12
    return bool(np.all(slope & offset))


def agreement(inferred: Preprocessing, truth: Preprocessing, tolerance: float = TOLERANCE) -> dict:
    """{"scale_offset": bool, "channel_order": bool or None (not counted), "both": bool}."""
    scale = scale_offset_agree(inferred, truth, tolerance)
    order = (inferred.channel_order == truth.channel_order) if truth.channels == 3 and truth.order_matters else None
    return {"scale_offset": scale, "channel_order": order, "both": scale and order is not False}


def describe(p: Preprocessing) -> str:
    """A short readable form: 'BGR 0..1 mean (0.485, 0.456, 0.406) std (...)'."""
    lo, hi = p.value_range
    s = f"{p.channel_order} {lo:g}..{hi:g}"
    if any(m != 0 for m in p.mean):
        s += " mean (" + ", ".join(f"{m:g}" for m in p.mean) + ")"
    if any(v != 1 for v in p.std):
        s += " std (" + ", ".join(f"{v:g}" for v in p.std) + ")"
    return s


def totals(rows: Iterable[dict]) -> dict:
    """Per field: how many rows are right out of how many count (rows carry agreement()'s keys)."""
    rows = list(rows)
    out = {}
    for f in FIELDS:
        counted = [r[f] for r in rows if r.get(f) is not None]
        out[f] = {"right": int(sum(bool(v) for v in counted)), "of": len(counted)}
    return out


def truth_of(entry: dict) -> Preprocessing:
    """The true preprocessing of a corpus manifest entry: its numeric fields (tests/eval_corpus.json)
    or the name of an inference candidate (tests/corpus.json's ``convention``)."""
    pre = entry["preprocessing"]
    if "value_range" in pre:
        return Preprocessing.of(pre)
    from .candidates import GRAY_CANDIDATES, RGB_CANDIDATES

    for c in RGB_CANDIDATES + GRAY_CANDIDATES:
        if c.name == pre["convention"]:
            return Preprocessing.of(c, order_matters=pre.get("order_matters", True))
    raise ValueError(f"{entry.get('name', '?')}: preprocessing convention {pre['convention']!r} is not an inference "
                     f"candidate; give value_range, mean, std and channel_order instead")
