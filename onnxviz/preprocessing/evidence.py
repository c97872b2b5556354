"""Statistics that ``preprocess`` compares across candidate preprocessings, one function per kind.

Each takes what onnxruntime returned on the same real photos under one candidate and returns a number
(lower distance or higher balance is better; see ``preprocess`` for how they are combined):

- ``bn_distance``: photos' statistics at the first BatchNormalization inputs vs their running statistics
  (``bn_support``: how often one candidate stays nearer over resamples of the photos);
- ``spread_distance``: how far the output spread of the first learned layer is from 1;
- ``balance``: how often the units of the first learned layers switch on and off;
- ``head_saturation``: how certain a classification head is on photos it was not trained on, in nats.

``thin`` and ``photo_count`` bound the cost: statistics read an even grid of positions, and large
inputs run on fewer photos.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import onnx

from .normalization import constant

ACTIVATIONS = {"Relu", "Clip", "PRelu", "LeakyRelu", "HardSwish", "Elu", "Selu", "Sigmoid", "Tanh", "Mish"}
SATURATED = 12.0  # nats: a median top-2 logit gap above this on photos is saturation, not confidence


MAX_POSITIONS = 128 * 128  # per photo and channel: what the early-layer statistics below read at most
PIXEL_BUDGET = 16 * 416 * 416  # pixels per candidate run: 16 photos up to 416 px, fewer above, never under 4


def photo_count(h: int, w: int, available: int) -> int:
    """How many photos each candidate is run on: all of them up to 416x416, then as many as the pixel
    budget allows (at least 4). Every candidate costs a forward pass (of the whole net where it has a class
    head, of its first layers otherwise: the session is pruned), so a 1024 px
    detector on 16 photos x 11 candidates ran for minutes on 2 cores; its early maps hold far more
    positions than the statistics need (``thin``)."""
    return max(min(4, available), min(available, PIXEL_BUDGET // max(1, h * w)))


def thin(a: np.ndarray) -> np.ndarray:
    """An early activation (N, C, H, W) or tokens (N, L, C) on an even grid of at most ``MAX_POSITIONS``
    positions per photo. The statistics here are per-channel moments and on/off rates over positions:
    a strided grid estimates them as well as all 50k positions of a 224 px map, for a fraction of the
    time and memory (float64 moments of a VGG's first maps on 16 photos took gigabytes)."""
    a = np.asarray(a)
    if a.ndim == 4 and a.shape[2] * a.shape[3] > MAX_POSITIONS:
        s = int(np.ceil(np.sqrt(a.shape[2] * a.shape[3] / MAX_POSITIONS)))
        return np.ascontiguousarray(a[:, :, ::s, ::s])
    if a.ndim == 3 and a.shape[1] > MAX_POSITIONS:
        return np.ascontiguousarray(a[:, ::int(np.ceil(a.shape[1] / MAX_POSITIONS))])
    return a


def balance(outs: list) -> float:
    """Mean over layers and units of log(min(p, 1 - p)), p = fraction of (photo, position) > 0."""
    vals = []
    for a in outs:
        a = np.asarray(a)
        if a.ndim < 2:
            continue
        if a.ndim == 3:  # tokens (N, L, C): units last
            a = a.transpose(0, 2, 1)
        p = (a > 0).mean((0,) + tuple(range(2, a.ndim)))
        vals.append(float(np.log(np.maximum(np.minimum(p, 1 - p), 1e-3)).mean()))
    return float(np.mean(vals)) if vals else float("-inf")


def feeds_activation(proto: onnx.ModelProto, node) -> bool:
    """Is the first learned layer conv(+folded BN) -> activation? Only then is its spread about 1."""
    out = node.output[0]
    return any(u.op_type in ACTIVATIONS and out in u.input for u in proto.graph.node)


def bn_moments(proto: onnx.ModelProto, bns: list, out: dict) -> list:
    """Per BN layer: (per-photo channel means (N, C), per-photo channel mean squares, running mean,
    running var): all that the distance needs, so photos can be resampled without the activations."""
    inits = {t.name: t for t in proto.graph.initializer}
    consts: dict = {}
    found = []
    for bn in bns:
        rm = constant(bn.input[3], inits, consts)
        rv = constant(bn.input[4], inits, consts)
        a = out.get(bn.input[0])
        if rm is None or rv is None or a is None or a.ndim < 2:
            continue
        a = a.astype(np.float64)
        axes = tuple(range(2, a.ndim))
        found.append((a.mean(axes), (a * a).mean(axes), rm.reshape(-1), np.maximum(rv.reshape(-1), 1e-6)))
    return found


def bn_distance(moments: list, idx: Optional[np.ndarray] = None) -> float:
    """How far the photos' statistics at each BN input are from the BN's running statistics: the
    median over channels of 0.5 (mu - rm)^2 / rv + 0.5 log(var / rv)^2, averaged over layers
    (``idx``: a resample of the photos)."""
    dists = []
    for m1, m2, rm, rv in moments:
        if idx is not None:
            m1, m2 = m1[idx], m2[idx]
        mu = m1.mean(0)
        var = np.maximum(m2.mean(0) - mu * mu, 0.0)
        d = 0.5 * (mu - rm) ** 2 / rv + 0.5 * np.log((var + 1e-6) / rv) ** 2
        dists.append(float(np.median(d)))
    return float(np.mean(dists)) if dists else float("inf")


def bn_support(moments_a: list, moments_b: list, rng: np.random.Generator, n: int = 100) -> float:
    """Fraction of ``n`` resamples of the photos (with replacement) in which ``a`` is nearer the BN
    running statistics than ``b``: how much the photos, not the draw of photos, decide between them.

    RGB vs BGR moves the photos' channel means by about a third of a standard deviation, less than
    photos differ from each other: on PP-OCR nets and a MobileNetV2 the order that wins on 8 photos
    wins in only 49-76% of resamples (and the MobileNetV2's lean is the wrong way)."""
    count = len(moments_a[0][0])
    wins = 0
    for _ in range(n):
        idx = rng.integers(0, count, count)
        wins += bn_distance(moments_a, idx) < bn_distance(moments_b, idx)
    return wins / n


def spread_distance(a: np.ndarray) -> float:
    """Median over channels of log(std)^2 of a (N, C, ...) output: 0 when the spread is about 1."""
    a = a.astype(np.float64)
    if a.ndim == 3:  # tokens (N, L, C)
        a = a.transpose(0, 2, 1)
    axes = (0,) + tuple(range(2, a.ndim))
    std = a.std(axes)
    std = std[std > 0]
    return float(np.median(np.log(std) ** 2)) if std.size else float("inf")


# ------------------------------------------------------------------------------ classification heads
_PASS = ("Identity", "Reshape", "Flatten", "Squeeze", "Cast")


def classifier_heads(proto: onnx.ModelProto, shapes: dict) -> list:
    """[(output name, kind)] of the (N, K) outputs that score classes; kind "softmax", "sigmoid" or "logits".

    Softmax and Sigmoid outputs first; a plain Gemm/MatMul/Add output with K >= 2 counts only when the
    file has no Softmax/Sigmoid head (it may be a box regression beside a softmax, as in MTCNN).
    """
    prod = {o: n for n in proto.graph.node for o in n.output}
    probs, logits = [], []
    for out in proto.graph.output:
        shape = shapes.get(out.name, (None, None))[1]
        if not shape or len(shape) != 2:
            continue
        node = prod.get(out.name)
        while node is not None and node.op_type in _PASS:
            node = prod.get(node.input[0])
        if node is None:
            continue
        if node.op_type == "Softmax" and shape[1] != 1:
            probs.append((out.name, "softmax"))
        elif node.op_type == "Sigmoid":
            probs.append((out.name, "sigmoid"))
        elif node.op_type in ("Gemm", "MatMul", "Add") and isinstance(shape[1], int) and shape[1] >= 2:
            logits.append((out.name, "logits"))
    return probs or logits


def head_saturation(a: np.ndarray, kind: str) -> Optional[float]:
    """Median over photos of the top-2 logit gap (softmax, logits) or |logit| (sigmoid), in nats.

    A classifier trained with cross-entropy is rarely more than ~e^10 sure of anything, least of all
    of photos unlike its training data; an input scaled far beyond what it was trained on pushes every
    logit up with it (a ReLU net is nearly linear in its input scale) and the head saturates.
    Probabilities are read back as logits (float32 caps a sigmoid's at about 16.6 nats).
    """
    a = np.asarray(a, np.float64)
    if a.ndim != 2 or a.shape[0] == 0:
        return None
    if kind == "sigmoid":
        p = np.clip(a, 1e-30, 1.0)
        q = np.clip(1.0 - a, 1e-30, 1.0)
        return float(np.median(np.abs(np.log(p) - np.log(q))))
    if a.shape[1] < 2:
        return None
    z = np.log(np.clip(a, 1e-30, None)) if kind == "softmax" else a
    top = np.sort(z, axis=1)
    return float(np.median(top[:, -1] - top[:, -2]))
