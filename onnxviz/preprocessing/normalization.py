"""Normalization written into the graph: the Sub/Div/Mul/Add by constants (or a BatchNorm on the
input, or a channel flip) between the image input and the first learned layer.

Folded into one affine map per channel, its constants are the strongest evidence of what input a
file expects (``preprocess`` evidence (a)): the scale (0..1 or 0..255) and, when the means are
ImageNet's in one order or the other, RGB or BGR.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import onnx
from onnx import numpy_helper



@dataclass
class Normalization:
    """The affine map the graph applies to its input before the first learned layer."""

    scale: np.ndarray  # per input channel: y = scale * x + shift
    shift: np.ndarray
    nodes: list = field(default_factory=list)  # ops folded, e.g. ["Sub", "Div"]
    flip: bool = False  # the graph reverses the channel order itself

    @property
    def mean(self) -> np.ndarray:  # in input units
        return -self.shift / self.scale

    @property
    def std(self) -> np.ndarray:
        return 1.0 / np.abs(self.scale)


def constant(name: str, inits: dict, consts: dict) -> Optional[np.ndarray]:
    if name in inits:
        return numpy_helper.to_array(inits[name]).astype(np.float64)
    if name in consts:
        return consts[name]
    return None


def _per_channel(v: np.ndarray, c: int, axis: int, rank: int) -> Optional[np.ndarray]:
    """A broadcastable constant as one value per channel, or None when it varies otherwise."""
    if v.size == 1:
        return np.full(c, float(v.reshape(-1)[0]))
    if v.size != c:
        return None
    shape = (1,) * (rank - v.ndim) + tuple(v.shape)
    return v.reshape(-1) if shape[axis] == c else None


def in_graph_normalization(proto: onnx.ModelProto, input_name: str, layout: str, channels: int
                           ) -> Optional[Normalization]:
    """Fold the elementwise ops between the input and the first learned op into one affine map."""
    graph = proto.graph
    inits = {t.name: t for t in graph.initializer}
    consts = {}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute:
            try:
                consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t).astype(np.float64)
            except Exception:  # noqa: BLE001 - a non-tensor Constant: not a normalization constant
                pass
    users: dict = {}
    for node in graph.node:
        for i in node.input:
            users.setdefault(i, []).append(node)
    scale, shift = np.ones(channels), np.zeros(channels)
    axis = 1 if layout == "NCHW" else 3
    tensor, folded, flip = input_name, [], False
    while True:
        nxt = [u for u in users.get(tensor, [])]
        if len(nxt) != 1:
            break
        node = nxt[0]
        op = node.op_type
        if op in ("Cast", "Identity"):
            tensor = node.output[0]
            continue
        if op == "Transpose":
            perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
            if perm is None or len(perm) != 4:
                break
            axis = perm.index(axis)
            tensor = node.output[0]
            continue
        if op in ("Sub", "Add", "Mul", "Div") and len(node.input) == 2:
            other = node.input[1] if node.input[0] == tensor else node.input[0]
            v = constant(other, inits, consts)
            v = _per_channel(v, channels, axis, 4) if v is not None else None
            if v is None:
                break
            first = node.input[0] == tensor
            if op == "Add":
                shift = shift + v
            elif op == "Sub":
                scale, shift = (scale, shift - v) if first else (-scale, v - shift)
            elif op == "Mul":
                scale, shift = scale * v, shift * v
            elif first:  # Div
                scale, shift = scale / v, shift / v
            else:
                break  # constant / x is not a normalization
            folded.append(op)
            tensor = node.output[0]
            continue
        if op == "BatchNormalization" and node.input[0] == tensor:
            vals = [constant(n, inits, consts) for n in node.input[1:5]]
            if any(v is None or v.size != channels for v in vals) or axis != 1:
                break
            gamma, beta, mu, var = (v.reshape(-1) for v in vals)
            eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
            k = gamma / np.sqrt(var + eps)
            scale, shift = scale * k, (shift - mu) * k + beta
            folded.append(op)
            tensor = node.output[0]
            continue
        if op == "Gather" and channels == 3:
            ax = next((a.i for a in node.attribute if a.name == "axis"), 0)
            idx = constant(node.input[1], inits, consts)
            if idx is None or ax % 4 != axis or idx.reshape(-1).tolist() != [2, 1, 0]:
                break
            scale, shift, flip = scale[::-1].copy(), shift[::-1].copy(), not flip
            folded.append(op)
            tensor = node.output[0]
            continue
        break
    if not folded or (np.allclose(scale, 1) and np.allclose(shift, 0)) and not flip:
        return None
    if flip:  # express it in the input's channel order: the graph's map is applied after reversing
        scale, shift = scale[::-1].copy(), shift[::-1].copy()
    return Normalization(scale=scale, shift=shift, nodes=folded, flip=flip)


PHOTO_MEANS = (0.3, 0.65)  # where the channel means of natural photos fall, as a fraction of the range


def _order_from_means(mean: np.ndarray, scale: float) -> Optional[str]:
    """ImageNet's channel means fall R > G > B; the order they are subtracted in tells RGB or BGR.

    Only means that can be photos' channel means say so: a learned input normalization (a BatchNorm
    on the input folded into Mul/Add, as in Caffe's ``data_bn``) has "means" that are not data means
    (the captcha CRNN's: 266.7, 84.2, 59.8 on 0..255), and its order says nothing."""
    if mean.size != 3 or np.ptp(mean) < 0.02 * max(np.abs(mean).max(), 1e-6):
        return None
    frac = mean / scale
    if not np.all((frac >= PHOTO_MEANS[0]) & (frac <= PHOTO_MEANS[1])):
        return None
    return "RGB" if mean[0] > mean[1] > mean[2] else "BGR" if mean[0] < mean[1] < mean[2] else None


def judge_normalization(norm: Normalization, channels: int) -> tuple:
    """(input scale 1 or 255, channel order or None, evidence line) from the folded constants."""
    mean, std = norm.mean, norm.std
    big = max(np.abs(mean).max(), std.max())
    scale = 255.0 if big > 2.5 else 1.0
    order = _order_from_means(mean, scale) if channels == 3 else None
    if norm.flip and order is not None:
        order = "BGR" if order == "RGB" else "RGB"
    why = ""
    if order:
        why = f", {order} (means in {'R>G>B' if order == 'RGB' else 'B<G<R'} order)"
    elif channels == 3 and np.ptp(mean) >= 0.02 * max(np.abs(mean).max(), 1e-6):
        why = (f" (its means are not photo channel means, {PHOTO_MEANS[0]:g}..{PHOTO_MEANS[1]:g} of the range: a "
               "learned input normalization; they do not tell the channel order)")
    desc = (f"normalization in the graph ({' -> '.join(norm.nodes)}): (x - {_fmt(mean)}) / {_fmt(std)}"
            f"{', channels reversed in the graph' if norm.flip else ''}: the file expects 0..{int(scale)} input{why}")
    return scale, order, desc


def _fmt(v: np.ndarray) -> str:
    return "[" + ", ".join(f"{x:.4g}" for x in np.asarray(v).reshape(-1)) + "]"
