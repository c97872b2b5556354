"""A concept encoder appended to a layer in the graph, so onnxruntime computes concept activations.

A dictionary's encoder is ``z = relu(f(x) @ W + b)`` at every position of the layer, ``f`` the
feature map of the dictionary (the scaled activation vector, or its positive and negative parts
side by side for signed layers), optionally keeping only the ``top_k`` largest codes per position
(TopK SAE). Appended as nodes after the layer's tensor, the codes come out as one more (N, K, H, W)
map that mining treats like any layer: mining K concepts costs about what mining K units costs,
instead of a second pass over the maps on the host.
"""
from __future__ import annotations

import copy
from typing import Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def append_encoder(proto: onnx.ModelProto, tensor: str, weight: np.ndarray, bias: np.ndarray, *, scale: float = 1.0,
                   split_sign: bool = False, top_k: Optional[int] = None, layout: str = "NCHW",
                   output: str = "concepts") -> onnx.ModelProto:
    """A copy of ``proto`` with the encoder applied to ``tensor`` (N, C, H, W) (or NHWC / tokens (N, L, C)),
    written to a new graph output ``output``: (N, K, H, W) for NCHW maps, channels last otherwise.

    weight: (D, K) with D = C, or 2C when ``split_sign``; bias: (K,); ``scale``: the features are
    the activations divided by it."""
    out = copy.deepcopy(proto)
    g = out.graph
    p = output.replace("/", "_")
    nodes = []

    def init(name, value):
        g.initializer.append(numpy_helper.from_array(np.asarray(value, np.float32), p + "_" + name))
        return p + "_" + name

    x = tensor
    rank4 = layout in ("NCHW", "NHWC")
    if layout == "NCHW":
        nodes.append(helper.make_node("Transpose", [x], [p + "_nhwc"], perm=[0, 2, 3, 1]))
        x = p + "_nhwc"
    nodes.append(helper.make_node("Mul", [x, init("inv_scale", [1.0 / scale])], [p + "_scaled"]))
    x = p + "_scaled"
    if split_sign:
        nodes += [helper.make_node("Relu", [x], [p + "_pos"]), helper.make_node("Neg", [x], [p + "_negx"]),
                  helper.make_node("Relu", [p + "_negx"], [p + "_neg"]),
                  helper.make_node("Concat", [p + "_pos", p + "_neg"], [p + "_split"], axis=-1)]
        x = p + "_split"
    nodes += [helper.make_node("MatMul", [x, init("weight", weight)], [p + "_proj"]),
              helper.make_node("Add", [p + "_proj", init("bias", bias)], [p + "_pre"]),
              helper.make_node("Relu", [p + "_pre"], [p + "_codes"])]
    x = p + "_codes"
    if top_k:
        # keep the top_k largest codes of each position: threshold at the k-th largest value
        ints = {name: numpy_helper.from_array(np.asarray([v], np.int64), f"{p}_{name}")
                for name, v in (("k", top_k), ("kth_start", top_k - 1), ("kth_end", top_k), ("kth_axis", -1))}
        g.initializer.extend(ints.values())
        nodes += [helper.make_node("TopK", [x, ints["k"].name], [p + "_topv", p + "_topi"], axis=-1),
                  helper.make_node("Slice", [p + "_topv", ints["kth_start"].name, ints["kth_end"].name,
                                             ints["kth_axis"].name], [p + "_kth"]),
                  helper.make_node("Less", [x, p + "_kth"], [p + "_drop"]),  # Less+Not: any opset >= 10
                  helper.make_node("Not", [p + "_drop"], [p + "_keep"]),
                  helper.make_node("Cast", [p + "_keep"], [p + "_keepf"], to=TensorProto.FLOAT),
                  helper.make_node("Mul", [x, p + "_keepf"], [p + "_sparse"])]
        x = p + "_sparse"
    if layout == "NCHW":
        nodes.append(helper.make_node("Transpose", [x], [output], perm=[0, 3, 1, 2]))
    else:
        nodes.append(helper.make_node("Identity", [x], [output]))
    g.node.extend(nodes)
    k = int(np.asarray(weight).shape[1])
    dims = ["N", k, "H", "W"] if layout == "NCHW" else (["N", "H", "W", k] if rank4 else ["N", "L", k])
    g.output.append(helper.make_tensor_value_info(output, TensorProto.FLOAT, dims))
    return out
