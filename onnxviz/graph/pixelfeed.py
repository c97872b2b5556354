"""uint8 pixels in, the model's preprocessing as graph nodes: mining feeds bytes, not floats.

Mining decodes images to uint8 (H, W, 3). Converting a batch to the model's float input on the
host (``ModelMeta.to_model_input``: /255, channel order, range, mean/std, layout) costs about
0.5 ms per 224 px image of the loop's own thread, and the float batch is 4x the bytes to hand to
onnxruntime (and, on a GPU, to copy to it). ``add_pixel_input`` puts the same arithmetic in front
of the graph instead: the session takes the uint8 batch as it was decoded and onnxruntime does
the conversion with its own threads, or on the GPU. The nodes do the same float32 operations in
the same order as ``to_model_input`` (Transpose, Gather, Cast, Div 255, Mul, Add; grayscale as
its weighted sum), so the model sees bit-identical input (tests/test_pixelfeed.py).
"""
from __future__ import annotations

import copy
from typing import Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PIXELS = "onnxviz_pixels"
_GRAY = (0.299, 0.587, 0.114)  # as ModelMeta.to_model_input


def why_not(proto: onnx.ModelProto, input_name: str, meta) -> Optional[str]:
    """None when the model's input can be fed as uint8 pixels, else the reason it cannot."""
    inp = next((i for i in proto.graph.input if i.name == input_name), None)
    if inp is None:
        return f"no graph input {input_name!r}"
    tt = inp.type.tensor_type
    if tt.elem_type not in (TensorProto.FLOAT, TensorProto.FLOAT16):
        return f"input {input_name!r} is {TensorProto.DataType.Name(tt.elem_type)}, not float"
    dims = tt.shape.dim
    if len(dims) != 4:
        return f"input {input_name!r} has rank {len(dims)}, not 4"
    c = dims[1 if meta.layout == "NCHW" else 3]
    if c.HasField("dim_value") and c.dim_value != meta.channels:
        return f"input {input_name!r} has {c.dim_value} channels, the preprocessing gives {meta.channels}"
    return None


def add_pixel_input(proto: onnx.ModelProto, input_name: str, meta) -> onnx.ModelProto:
    """A copy of ``proto`` whose input ``input_name`` is computed from a new uint8 input ``PIXELS``
    of shape (N, H, W, 3) (RGB, as decoded), by the preprocessing of ``meta``."""
    reason = why_not(proto, input_name, meta)
    if reason:
        raise ValueError(f"cannot feed pixels: {reason}")
    out = copy.deepcopy(proto)
    g = out.graph
    old = next(i for i in g.input if i.name == input_name)
    elem = old.type.tensor_type.elem_type
    batch = old.type.tensor_type.shape.dim[0]
    h, w = (int(v) for v in meta.input_size)
    new = helper.make_tensor_value_info(PIXELS, TensorProto.UINT8,
                                        [batch.dim_value if batch.HasField("dim_value") else (batch.dim_param or "N"),
                                         h, w, 3])
    axis = 1 if meta.layout == "NCHW" else 3
    shape = [1, 1, 1, 1]
    shape[axis] = meta.channels
    lo, hi = meta.value_range
    consts = {
        "k255": np.array(255.0, np.float32),
        "scale": np.asarray([(hi - lo) / s for s in meta.std], np.float32).reshape(shape),
        "shift": np.asarray([(lo - m) / s for m, s in zip(meta.mean, meta.std)], np.float32).reshape(shape),
    }
    nodes, x = [], PIXELS

    def node(op, inputs, **attrs):
        name = f"{PIXELS}_{len(nodes)}_{op.lower()}"
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    if axis == 1:
        x = node("Transpose", [x], perm=[0, 3, 1, 2])
    if meta.channel_order == "BGR":
        consts["bgr"] = np.array([2, 1, 0], np.int64)
        x = node("Gather", [x, f"{PIXELS}_bgr"], axis=axis)
    x = node("Div", [node("Cast", [x], to=TensorProto.FLOAT), f"{PIXELS}_k255"])
    if meta.channel_order == "L":  # ((w0 * r) + (w1 * g)) + (w2 * b), as to_model_input
        parts = []
        for i, wi in enumerate(_GRAY):
            consts[f"c{i}"], consts[f"w{i}"] = np.array([i], np.int64), np.array(wi, np.float32)
            parts.append(node("Mul", [f"{PIXELS}_w{i}", node("Gather", [x, f"{PIXELS}_c{i}"], axis=axis)]))
        x = node("Add", [node("Add", parts[:2]), parts[2]])
    x = node("Add", [node("Mul", [x, f"{PIXELS}_scale"]), f"{PIXELS}_shift"])
    if elem == TensorProto.FLOAT16:
        x = node("Cast", [x], to=TensorProto.FLOAT16)
    nodes[-1].output[0] = input_name  # the last node writes the tensor the model read from its input
    g.initializer.extend(numpy_helper.from_array(v, f"{PIXELS}_{k}") for k, v in consts.items())
    keep = [i for i in g.input if i.name != input_name]
    del g.input[:]
    g.input.extend([new] + keep)
    old_nodes = list(g.node)
    del g.node[:]
    g.node.extend(nodes + old_nodes)
    return out

