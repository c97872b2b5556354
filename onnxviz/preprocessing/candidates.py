"""The preprocessing conventions real files use, as candidates for ``infer`` to score.

Each candidate is one complete map from an image (RGB, 0..1) to the model input, in ModelMeta's
terms: the value range, then (x - mean) / std per channel *in the model's channel order*. Two BGR
conventions with ImageNet's statistics exist in the wild and differ:

- "ImageNet mean/std, BGR": the statistics follow the channels (B gets 0.406 / 0.225), as a net
  trained on BGR with correctly reordered statistics expects;
- "ImageNet mean/std in R,G,B order on BGR": the list (0.485, 0.456, 0.406) applied to a cv2 BGR
  image as is (B gets 0.485 / 0.229), the PaddleOCR / OpenCV habit.

``candidates_for`` builds the set for a file: fixed fields (from metadata or a sidecar) narrow it,
and a normalization written in the graph replaces it with "0..S (normalized in the graph)".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
CENTERNET_MEAN_BGR = (0.408, 0.447, 0.470)  # CenterNet / FairMOT (DLA-34): listed for cv2's B, G, R
CENTERNET_STD_BGR = (0.289, 0.274, 0.278)


@dataclass(frozen=True)
class Candidate:
    """One preprocessing convention, in ModelMeta's terms."""

    name: str
    channel_order: str
    value_range: tuple
    mean: tuple = (0.0,)
    std: tuple = (1.0,)

    def fields(self) -> dict:
        return {"channel_order": self.channel_order, "value_range": self.value_range,
                "mean": self.mean, "std": self.std}

    @property
    def convention(self) -> str:
        """The name without its channel order: twins in RGB and BGR share it."""
        return self.name.replace("BGR", "*").replace("RGB", "*")


RGB_CANDIDATES = (
    Candidate("0..1 RGB", "RGB", (0.0, 1.0)),
    Candidate("ImageNet mean/std, RGB", "RGB", (0.0, 1.0), IMAGENET_MEAN, IMAGENET_STD),
    Candidate("-1..1 RGB", "RGB", (-1.0, 1.0)),
    Candidate("0..255 BGR minus Caffe mean", "BGR", (0.0, 255.0), CAFFE_MEAN_BGR),
    Candidate("0..255 RGB", "RGB", (0.0, 255.0)),
    Candidate("0..1 BGR", "BGR", (0.0, 1.0)),
    Candidate("ImageNet mean/std, BGR", "BGR", (0.0, 1.0), IMAGENET_MEAN[::-1], IMAGENET_STD[::-1]),
    Candidate("ImageNet mean/std in R,G,B order on BGR", "BGR", (0.0, 1.0), IMAGENET_MEAN, IMAGENET_STD),
    Candidate("-1..1 BGR", "BGR", (-1.0, 1.0)),
    Candidate("0..255 BGR", "BGR", (0.0, 255.0)),
    Candidate("CenterNet mean/std, BGR", "BGR", (0.0, 1.0), CENTERNET_MEAN_BGR, CENTERNET_STD_BGR),
)
GRAY_CANDIDATES = (
    Candidate("0..1 gray", "L", (0.0, 1.0)),
    Candidate("-1..1 gray", "L", (-1.0, 1.0)),
    Candidate("0..255 gray", "L", (0.0, 255.0)),
)
ALL = RGB_CANDIDATES + GRAY_CANDIDATES


def scale_of(c: Candidate) -> float:
    """The input units: 255 for 0..255 conventions, 1 otherwise."""
    return 255.0 if max(abs(v) for v in c.value_range) > 2 else 1.0


def by_name(name: str) -> Candidate:
    return next(c for c in ALL if c.name == name)


def _matches(c: Candidate, fixed: dict) -> bool:
    def close(a, b):
        a, b = tuple(float(v) for v in a), tuple(float(v) for v in b)
        if len(a) == 1 and len(b) > 1:
            a = a * len(b)
        if len(b) == 1 and len(a) > 1:
            b = b * len(a)
        return len(a) == len(b) and all(abs(x - y) <= 1e-3 * max(1.0, abs(y)) for x, y in zip(a, b))
    return all(close(getattr(c, k), v) if k != "channel_order" else c.channel_order == v
               for k, v in fixed.items())


def candidates_for(channels: int, fixed: Optional[dict] = None) -> list:
    """The candidates for a file with ``channels`` input channels, consistent with ``fixed``.

    ``fixed``: fields already known for sure (a subset of channel_order, value_range, mean, std, e.g.
    from a sidecar file). Known conventions that agree with them are kept; when none does (a net's own
    mean/std), the fixed fields are completed with each channel order and each input scale the
    caller left open, so that only what is unknown gets scored."""
    pool = list(GRAY_CANDIDATES if channels == 1 else RGB_CANDIDATES)
    fixed = {k: v for k, v in (fixed or {}).items() if v is not None}
    if not fixed:
        return pool
    kept = [c for c in pool if _matches(c, fixed)]
    if kept:
        return kept
    orders = [fixed["channel_order"]] if "channel_order" in fixed else (["L"] if channels == 1 else ["RGB", "BGR"])
    ranges = [tuple(fixed["value_range"])] if "value_range" in fixed else [(0.0, 1.0), (0.0, 255.0)]
    if "value_range" not in fixed and "mean" in fixed:  # means are in input units: they tell the scale
        ranges = [(0.0, 255.0)] if max(abs(float(v)) for v in fixed["mean"]) > 2 else [(0.0, 1.0)]
    out = []
    for order in orders:
        for vr in ranges:
            mean = tuple(fixed.get("mean", (0.0,)))
            std = tuple(fixed.get("std", (1.0,)))
            desc = f"0..{vr[1]:g}" if vr[0] == 0 else f"{vr[0]:g}..{vr[1]:g}"
            stats = "" if mean == (0.0,) and std == (1.0,) else f", mean {list(mean)} std {list(std)}"
            out.append(Candidate(f"{desc} {order}{stats} (given)", order, vr, mean, std))
    return out

