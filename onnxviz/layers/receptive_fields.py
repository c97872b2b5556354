"""Receptive fields from the ONNX graph: which input pixels each position of a layer sees.

The receptive field of a layer is *computed from the graph*, not measured: walking the nodes
in order, each tensor carries (size, jump, start) in model-input pixels — the side of the input
window one position sees, the input distance between neighbouring positions, and the input
coordinate of the centre of position 0 — updated by every Conv / ConvTranspose / pooling node
from its kernel, stride, dilation and padding (auto_pad included). Element-wise ops keep it;
a node with several spatial inputs (Add, Concat, Mul) takes the largest window; global pools,
Flatten, Gemm and unknown ops that change the map size make it the whole image. It is the
theoretical field (an upper bound on what the unit can see), like Microscope's crops; the test
suite checks it empirically (pixels outside it never change the activation).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from onnx import helper

GLOBAL = None  # receptive field covering the whole image


@dataclass(frozen=True)
class Field:
    size: float  # window side in input pixels
    jump: float  # input pixels between neighbouring positions
    start: float  # input coordinate of the centre of position 0

    def box(self, pos: int, extent: int) -> tuple:
        """(lo, hi) input-pixel interval seen by position ``pos``, clipped to [0, extent]."""
        c = self.start + pos * self.jump
        lo, hi = c - (self.size - 1) / 2.0, c + (self.size - 1) / 2.0 + 1
        return max(0.0, math.floor(lo)), min(float(extent), math.ceil(hi))


_IDENTITY = (Field(1.0, 1.0, 0.0), Field(1.0, 1.0, 0.0))  # (y, x)
_KEEP = {"Relu", "Clip", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "HardSwish", "HardSigmoid", "Sigmoid", "Tanh",
         "Gelu", "Mish", "Softplus", "ThresholdedRelu", "BatchNormalization", "InstanceNormalization", "Add", "Sub",
         "Mul", "Div", "Sum", "Max", "Min", "Concat", "Identity", "Dropout", "Cast", "Abs", "Neg", "Exp", "Log",
         "Sqrt", "Pow", "Erf", "LRN", "Where", "Softmax", "Transpose", "Pad", "Split", "Slice", "Shape", "Gather"}
_WINDOW = {"Conv", "MaxPool", "AveragePool", "LpPool", "ConvTranspose"}
_GLOBAL = {"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "Flatten", "Gemm", "MatMul", "ReduceMean",
           "ReduceMax", "Reshape", "Squeeze"}


_GATES = {"Mul", "Add", "Div", "Sub"}
_SIZE_ONE = {"Squeeze", "Unsqueeze", "Reshape", "Flatten"}


def _only_size_one(src, dst) -> bool:
    """True when ``src`` -> ``dst`` only adds or drops dims of size 1 (both shapes known in rank)."""
    if src is None or dst is None:
        return False
    return [d for d in src if d != 1] == [d for d in dst if d != 1]


def _attrs(node) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def receptive_fields(proto, input_name: str, shapes: Optional[dict] = None, local: bool = False) -> dict:
    """tensor name -> (Field y, Field x), or None for the whole image, for every spatial tensor.

    ``shapes`` (tensor -> shape tuple, None for unknown dims): with it, a Squeeze, Unsqueeze,
    Reshape or Flatten that only adds or drops dims of size 1 keeps the field (tf2onnx's channel
    handling on a one-channel NHWC input does that before the first Conv). ``local``: a channel gate
    (Mul/Add/Div of a map by a globally pooled value, squeeze-and-excitation) keeps the map's own
    field: the field of the pattern a unit detects, what a render size needs to cover."""
    inits = {i.name: i for i in proto.graph.initializer}
    shapes = shapes or {}
    rf: dict = {input_name: _IDENTITY}
    for node in proto.graph.node:
        ins = [rf[i] for i in node.input if i in rf]
        if not ins:
            continue
        if local and node.op_type in _GATES and any(f is not GLOBAL for f in ins):
            spatial = [f for f in ins if f is not GLOBAL]
            out = _union(spatial) if len(spatial) > 1 else spatial[0]
        elif any(f is GLOBAL for f in ins):
            out = GLOBAL
        elif node.op_type in _WINDOW:
            out = _window(node, ins[0], inits)
        elif node.op_type in ("Resize", "Upsample"):
            out = _resize(node, ins[0], inits)
        elif node.op_type == "DepthToSpace":  # each output position comes from one input position
            b = float(_attrs(node).get("blocksize", 1))
            out = tuple(Field(f.size, f.jump / b, f.start) for f in ins[0])
        elif node.op_type in _KEEP:
            out = _union(ins) if len(ins) > 1 else ins[0]
        elif node.op_type in _SIZE_ONE and _only_size_one(shapes.get(node.input[0]), shapes.get(node.output[0])):
            out = ins[0]
        else:  # _GLOBAL and anything unknown
            out = GLOBAL
        for o in node.output:
            rf[o] = out
    return rf


def _union(fields: list):
    """Largest window over several inputs of the same resolution (else the whole image)."""
    if len({(f[0].jump, f[1].jump) for f in fields}) > 1:
        return GLOBAL
    out = []
    for axis in (0, 1):
        los = [f[axis].start - (f[axis].size - 1) / 2 for f in fields]
        his = [f[axis].start + (f[axis].size - 1) / 2 for f in fields]
        lo, hi = min(los), max(his)
        out.append(Field(hi - lo + 1, fields[0][axis].jump, (lo + hi) / 2))
    return tuple(out)


def _window(node, f, inits):
    a = _attrs(node)
    if node.op_type in ("Conv", "ConvTranspose"):
        w = inits.get(node.input[1]) if len(node.input) > 1 else None
        kernel = a.get("kernel_shape") or (list(w.dims[2:]) if w is not None else None)
    else:
        kernel = a.get("kernel_shape")
    if not kernel or len(kernel) != 2:
        return GLOBAL
    strides = a.get("strides") or [1, 1]
    dil = a.get("dilations") or [1, 1]
    pads = a.get("pads") or [0, 0, 0, 0]
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if node.op_type == "ConvTranspose":
        # each output position depends on input positions within kernel/stride of it
        out = []
        for i in range(2):
            k, s = dil[i] * (kernel[i] - 1) + 1, strides[i]
            out.append(Field(f[i].size + (math.ceil(k / s) - 1) * f[i].jump, f[i].jump / s, f[i].start))
        return tuple(out)
    out = []
    for i in range(2):
        k = dil[i] * (kernel[i] - 1) + 1
        s = strides[i]
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            total = max(k - s, 0)
            begin = total // 2 if auto == "SAME_UPPER" else total - total // 2
        elif auto == "VALID":
            begin = 0
        else:
            begin = pads[i]
        out.append(Field(f[i].size + (k - 1) * f[i].jump, f[i].jump * s,
                         f[i].start + ((k - 1) / 2.0 - begin) * f[i].jump))
    return tuple(out)


def _resize(node, f, inits):
    from onnx import numpy_helper

    scales = None
    for name in node.input[1:]:
        if name in inits:
            arr = numpy_helper.to_array(inits[name])
            if arr.dtype.kind == "f" and arr.size == 4:
                scales = arr
    if scales is None:
        return GLOBAL
    return tuple(Field(f[i].size, f[i].jump / float(scales[2 + i]), f[i].start) for i in range(2))


def input_box(field, pos: Optional[tuple], input_hw: tuple) -> tuple:
    """(left, top, right, bottom) in model-input pixels seen by position (y, x); whole image if unknown."""
    h, w = input_hw
    if field is GLOBAL or pos is None:
        return (0, 0, int(w), int(h))
    y0, y1 = field[0].box(pos[0], h)
    x0, x1 = field[1].box(pos[1], w)
    return (int(x0), int(y0), int(x1), int(y1))


def to_original(box: tuple, original_size: tuple, meta) -> tuple:
    """A box in model-input pixels -> the same region in the original photo's pixels."""
    from ..preprocessing.images import crop_box

    h, w = meta.input_size
    left, top, right, bottom = crop_box(tuple(original_size), (h, w), meta.resize)
    sx, sy = (right - left) / w, (bottom - top) / h
    return (left + box[0] * sx, top + box[1] * sy, left + box[2] * sx, top + box[3] * sy)
