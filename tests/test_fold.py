"""Weights computed in the graph (a cast int8 tensor times a scale, a cast float16 tensor) become
initializers before onnx2torch, which reads Conv weights only from initializers (graph/fold.py)."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper

from onnxviz.backends.fx import convert
from onnxviz.graph.fold import constant_nodes, fold_constants


def _compressed_conv() -> onnx.ModelProto:
    """tinyocr's storage: an int8 weight, Cast to float, Mul by a per-tensor scale; the bias float16,
    Cast up (an fp16 file that computes in float32); a Constant node for the second conv's weight."""
    rng = np.random.default_rng(0)
    q = rng.integers(-127, 128, (4, 3, 3, 3), dtype=np.int8)
    inits = [numpy_helper.from_array(q, "w_q"), numpy_helper.from_array(np.array(0.01, np.float32), "w_scale"),
             numpy_helper.from_array(rng.normal(0, 1, 4).astype(np.float16), "b16")]
    w2 = numpy_helper.from_array(rng.normal(0, 0.2, (2, 4, 1, 1)).astype(np.float32), "w2_value")
    nodes = [helper.make_node("Cast", ["w_q"], ["w_f"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["w_f", "w_scale"], ["w"]),
             helper.make_node("Cast", ["b16"], ["b"], to=TensorProto.FLOAT),
             helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Constant", [], ["w2"], value=w2),
             helper.make_node("Conv", ["r", "w2"], ["y"], kernel_shape=[1, 1])]
    graph = helper.make_graph(nodes, "compressed", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                                  [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 16, 16])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_computed_weights_become_initializers_and_torch_matches_onnxruntime():
    model = _compressed_conv()
    assert [model.graph.node[k].op_type for k in constant_nodes(model.graph)] == ["Cast", "Mul", "Cast", "Constant"]
    folded = fold_constants(model)
    assert [n.op_type for n in folded.graph.node] == ["Conv", "Relu", "Conv"]
    inits = {t.name: numpy_helper.to_array(t) for t in folded.graph.initializer}
    assert set(inits) == {"w", "b", "w2"}  # the int8 and float16 originals are gone
    np.testing.assert_allclose(inits["w"], np.asarray(
        numpy_helper.to_array(model.graph.initializer[0]), np.float32) * 0.01, rtol=1e-6)

    x = np.random.default_rng(1).random((1, 3, 16, 16), dtype=np.float32)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    gm, _ = convert(model)  # would stop at "cannot find weight 'w'" without the fold
    with torch.no_grad():
        got = gm(torch.from_numpy(x))
    np.testing.assert_allclose(got.numpy(), want, atol=1e-5)


def test_a_graph_without_constant_nodes_is_returned_as_it_is():
    model = _compressed_conv()
    plain = fold_constants(model)
    assert fold_constants(plain) is plain


def _keras_bn(cond: bool) -> onnx.ModelProto:
    """tf2onnx's Keras BatchNormalization: If(keras_learning_phase stored as a constant, Relu branch, BN branch),
    the BN normalizing with the batch's own moments (mean and variance computed by ReduceMean in the graph)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(np.array(cond), "phase"),
             numpy_helper.from_array(rng.normal(1, 0.1, 3).astype(np.float32), "gamma"),
             numpy_helper.from_array(rng.normal(0, 0.1, 3).astype(np.float32), "beta"),
             numpy_helper.from_array(np.array([0, 2, 3], np.int64), "axes")]
    moments = [helper.make_node("ReduceMean", ["x"], ["m4"], axes=[0, 2, 3], keepdims=1),
               helper.make_node("Squeeze", ["m4", "axes"], ["mean"]),
               helper.make_node("Sub", ["x", "m4"], ["d"]), helper.make_node("Mul", ["d", "d"], ["d2"]),
               helper.make_node("ReduceMean", ["d2"], ["v4"], axes=[0, 2, 3], keepdims=1),
               helper.make_node("Squeeze", ["v4", "axes"], ["var"])]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    then = helper.make_graph([helper.make_node("Relu", ["x"], ["t"])], "then", [], [helper.make_tensor_value_info(
        "t", TensorProto.FLOAT, None)])
    other = helper.make_graph([helper.make_node("BatchNormalization", ["x", "gamma", "beta", "mean", "var"], ["e"],
                                                epsilon=0.001)], "else", [],
                              [helper.make_tensor_value_info("e", TensorProto.FLOAT, None)])
    nodes = moments + [helper.make_node("If", ["phase"], ["y"], name="bn/cond", then_branch=then, else_branch=other)]
    graph = helper.make_graph(nodes, "keras_bn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 4])],
                              [out], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)


def test_an_if_on_a_stored_phase_becomes_its_branch_and_a_computed_batchnorm_takes_gradients():
    """NudeNetClassifier v2 (tf2onnx) stopped at "no converter for If", then at a BatchNormalization whose mean
    and variance are computed in the graph (torch takes no gradient through running statistics)."""
    x = np.random.default_rng(1).normal(0, 1, (2, 3, 4, 4)).astype(np.float32)
    for cond in (False, True):
        proto = _keras_bn(cond)
        want = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        assert "If" not in [n.op_type for n in fold_constants(proto).graph.node]
        xt = torch.from_numpy(x).requires_grad_(True)
        got = convert(proto)[0](xt)
        got = got[0] if isinstance(got, (tuple, list)) else got
        np.testing.assert_allclose(got.detach().numpy(), want, rtol=1e-4, atol=1e-5)
        got.square().mean().backward()
        assert xt.grad is not None and float(xt.grad.abs().sum()) > 0
