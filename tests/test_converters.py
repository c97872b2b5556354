"""onnxviz's own onnx2torch converters (backends/converters.py, backends/torch_ops.py) against onnxruntime,
one op at a time on small graphs, with a gradient reaching the input: ops onnx2torch 1.5.15 has no converter for."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from onnxviz.backends.converters import unconvertible_nodes
from onnxviz.backends.fx import convert

RNG = np.random.default_rng(0)


def _graph(node, x: np.ndarray, out_shape, opset: int, inits=()):
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
                              [numpy_helper.from_array(v, k) for k, v in inits])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10)


def _parity(proto, x: np.ndarray, atol=1e-5):
    assert not unconvertible_nodes(proto)
    want = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    xt = torch.from_numpy(x).requires_grad_(True)
    got = convert(proto)[0](xt)
    got = got[0] if isinstance(got, (tuple, list)) else got
    np.testing.assert_allclose(got.detach().numpy(), want, atol=atol, rtol=1e-4)
    (got.float() ** 2).sum().backward()
    assert xt.grad is not None and float(xt.grad.abs().sum()) > 0


@pytest.mark.parametrize("opset,per", [(18, "group"), (21, "channel")])
def test_group_normalization(opset, per):
    x = RNG.normal(1, 2, (2, 6, 4, 5)).astype(np.float32)
    n = 3 if per == "group" else 6
    scale, bias = RNG.normal(1, 0.3, n).astype(np.float32), RNG.normal(0, 0.3, n).astype(np.float32)
    node = helper.make_node("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=3, epsilon=1e-5)
    _parity(_graph(node, x, [2, 6, 4, 5], opset, [("s", scale), ("b", bias)]), x)


@pytest.mark.parametrize("opset,mode", [(16, "bilinear"), (16, "nearest"), (20, "linear"), (20, "cubic")])
def test_grid_sample(opset, mode):
    x = RNG.normal(0, 1, (1, 2, 6, 7)).astype(np.float32)
    grid = RNG.uniform(-0.9, 0.9, (1, 3, 4, 2)).astype(np.float32)
    node = helper.make_node("GridSample", ["x", "grid"], ["y"], mode=mode, padding_mode="border", align_corners=0)
    _parity(_graph(node, x, [1, 2, 3, 4], opset, [("grid", grid)]), x, atol=1e-4)


def test_lp_normalization_casts_trilu_and_scatter_elements():
    x = RNG.normal(0, 1, (2, 5, 5)).astype(np.float32)
    _parity(_graph(helper.make_node("LpNormalization", ["x"], ["y"], axis=1, p=2), x, [2, 5, 5], 17), x)
    like = np.zeros((1,), np.float32)
    _parity(_graph(helper.make_node("CastLike", ["x", "like"], ["y"]), x, [2, 5, 5], 17, [("like", like)]), x)
    k = np.asarray(1, np.int64)
    _parity(_graph(helper.make_node("Trilu", ["x", "k"], ["y"], upper=0), x, [2, 5, 5], 17, [("k", k)]), x)
    idx = np.asarray([[[0, 2, -1]] * 5] * 2, np.int64).transpose(0, 2, 1)  # (2, 3, 5): rows 0, 2 and -1 (4)
    upd = RNG.normal(0, 1, idx.shape).astype(np.float32)
    for reduction in ("none", "add"):
        node = helper.make_node("ScatterElements", ["x", "i", "u"], ["y"], axis=1, reduction=reduction)
        _parity(_graph(node, x, [2, 5, 5], 18, [("i", idx), ("u", upd)]), x)
