"""The pieces of evidence behind inferred preprocessing, on cheap hand-made graphs and arrays.

The real files these rules were made for (orinet and its fp16/QDQ copies, the captcha CRNN) are
checked in tests/test_preprocess_wild.py (marker ``wild``).
"""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnxviz.preprocessing import evidence as E
from onnxviz.graph import floatview
from onnxviz.preprocessing.normalization import Normalization, judge_normalization


def _qdq_net(zp_dtype) -> onnx.ModelProto:
    """Conv -> QuantizeLinear/DequantizeLinear (zero point 0 of ``zp_dtype``) -> Conv, as a QDQ file has it."""
    rng = np.random.default_rng(0)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 2, 2])
    inits = [numpy_helper.from_array(rng.normal(0, 1, (4, 2, 3, 3)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(0, 1, (3, 4, 3, 3)).astype(np.float32), "w2"),
             numpy_helper.from_array(np.asarray(0.1, np.float32), "s"),
             numpy_helper.from_array(np.zeros((), zp_dtype), "zp")]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"]),
             helper.make_node("QuantizeLinear", ["c1", "s", "zp"], ["q1"]),
             helper.make_node("DequantizeLinear", ["q1", "s", "zp"], ["d1"]),
             helper.make_node("Conv", ["d1", "w2"], ["y"])]
    return helper.make_model(helper.make_graph(nodes, "qdq", [x], [y], inits), ir_version=8,
                             opset_imports=[helper.make_opsetid("", 13)])


def _run(proto, x):
    s = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {"x": x})[0]


def test_float_view_keeps_the_relu_a_quantizer_fused_into_a_zero_based_range():
    """onnxruntime's QDQ quantization drops a Conv's Relu: the uint8 range from 0 does the clipping. The
    float view must clip too (the orinet QDQ copy gave logits of 5e4 without it, against orinet's ~2)."""
    x = np.random.default_rng(1).normal(0, 1, (1, 2, 6, 6)).astype(np.float32)
    quantized = _qdq_net(np.uint8)
    view = floatview.float_view(quantized)
    assert "Relu" in {n.op_type for n in view.graph.node}
    got, want = _run(view, x), _run(quantized, x)
    assert np.abs(got - want).max() < 0.1 * np.abs(want).max()  # the rounding of the 0.1 steps, no more
    signed = floatview.float_view(_qdq_net(np.int8))  # an int8 range holds negatives: no clip implied
    assert "Relu" not in {n.op_type for n in signed.graph.node}


def test_float_view_runs_value_moving_ops_between_quantize_and_dequantize_on_floats():
    """tf2onnx's QDQ files put a Reshape between QuantizeLinear and its DequantizeLinear (Magenta's
    style predictor): the float view dropped the QuantizeLinear and left the Reshape reading nothing,
    and onnxruntime refused the view. Now the Reshape runs on the floats and the view matches the file."""
    rng = np.random.default_rng(0)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 6, 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])
    inits = [numpy_helper.from_array(rng.normal(0, 1, (4, 2, 3, 3)).astype(np.float32), "w1"),
             numpy_helper.from_array(np.asarray(0.2, np.float32), "s"),
             numpy_helper.from_array(np.zeros((), np.int8), "zp"),
             numpy_helper.from_array(np.asarray([1, 64], np.int64), "flat")]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c1"]),
             helper.make_node("QuantizeLinear", ["c1", "s", "zp"], ["q1"]),
             helper.make_node("Reshape", ["q1", "flat"], ["r1"]),
             helper.make_node("DequantizeLinear", ["r1", "s", "zp"], ["y"])]
    quantized = helper.make_model(helper.make_graph(nodes, "qdq_reshape", [x], [y], inits), ir_version=8,
                                  opset_imports=[helper.make_opsetid("", 13)])
    view = floatview.float_view(quantized)
    assert not {"QuantizeLinear", "DequantizeLinear"} & {n.op_type for n in view.graph.node}
    xin = rng.normal(0, 1, (1, 2, 6, 6)).astype(np.float32)
    got, want = _run(view, xin), _run(quantized, xin)
    assert got.shape == want.shape == (1, 64)
    assert np.abs(got - want).max() <= 0.101  # half a 0.2 step of rounding, no more


def _mixed_precision_loop() -> onnx.ModelProto:
    """x (float32) -> Cast to float16 -> a Loop adding a float16 constant twice, in its body -> Cast back:
    a Keras mixed-precision LSTM's shape (its recurrence is a Loop whose carried value is float16)."""
    half = TensorProto.FLOAT16
    body = helper.make_graph(
        [helper.make_node("Add", ["v_in", "k"], ["v_out"]), helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                 helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("v_in", half, [1, 2])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", half, [1, 2])],
        [numpy_helper.from_array(np.asarray([[0.5, 0.25]], np.float16), "k")])
    nodes = [helper.make_node("Cast", ["x"], ["xh"], to=half),
             helper.make_node("Mul", ["xh", "scale"], ["xs"]),
             helper.make_node("Loop", ["trips", "cond", "xs"], ["v"], body=body),
             helper.make_node("Cast", ["v"], ["y"], to=TensorProto.FLOAT)]
    inits = [numpy_helper.from_array(np.asarray([[2.0, 3.0]], np.float16), "scale"),
             numpy_helper.from_array(np.asarray(2, np.int64), "trips"),
             numpy_helper.from_array(np.asarray(True), "cond")]
    graph = helper.make_graph(nodes, "mixed", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], inits)
    return helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 13)])


def test_float_view_reaches_into_loop_bodies():
    """mk8dx_digits (a Keras mixed-precision CRNN) computes in float16 inside its LSTM Loops: a float view
    that changed only the main graph could not be loaded (Loop carried type 1 != 10), and the preprocessing
    inference fell back to defaults."""
    mixed = _mixed_precision_loop()
    view = floatview.float_view(mixed)
    assert view is not mixed
    x = np.asarray([[1.0, -1.0]], np.float32)
    np.testing.assert_allclose(_run(view, x), _run(mixed, x), rtol=1e-3)  # 2x + 1 and 3x + 0.5
    np.testing.assert_allclose(_run(view, x), [[3.0, -2.5]])


def test_a_learned_input_normalization_does_not_tell_the_channel_order():
    """The captcha CRNN's folded input BatchNorm: 'means' of 266.7, 84.2, 59.8 are no photo's channel means."""
    mean, std = np.asarray([266.7, 84.23, 59.83]), np.asarray([70.22, 53.27, 68.27])
    scale, order, line = judge_normalization(Normalization(scale=1 / std, shift=-mean / std, nodes=["Mul", "Add"]), 3)
    assert scale == 255 and order is None and "not photo channel means" in line
    caffe = np.asarray([103.94, 116.78, 123.68])
    assert judge_normalization(Normalization(scale=np.ones(3), shift=-caffe, nodes=["Sub"]), 3)[1] == "BGR"


def test_head_saturation_reads_nats_from_probabilities_and_logits():
    logits = np.asarray([[3.0, 1.0, 0.0], [40.0, 0.0, 1.0]])
    assert E.head_saturation(logits, "logits") == pytest.approx((2.0 + 39.0) / 2)
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert E.head_saturation(probs.astype(np.float32), "softmax") == pytest.approx(20.5, rel=1e-3)
    sig = 1 / (1 + np.exp(-np.asarray([[2.0], [-2.0], [60.0]], np.float32)))
    assert E.head_saturation(sig, "sigmoid") == pytest.approx(2.0, rel=1e-3)
    assert E.head_saturation(np.zeros((2, 3, 4)), "logits") is None  # a map is no classification head


def test_classifier_heads_prefer_probabilities_over_a_box_regression():
    """MTCNN's R-Net ends in a (N, 4) box regression (Add) beside a (N, 2) softmax: only the softmax scores."""
    g = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["box"]), helper.make_node("Softmax", ["a"], ["prob"], axis=1)], "g",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("box", TensorProto.FLOAT, [1, 4]),
         helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(np.zeros((1, 4), np.float32), "b")])
    proto = helper.make_model(g, ir_version=8, opset_imports=[helper.make_opsetid("", 13)])
    shapes = {"box": (None, (8, 4)), "prob": (None, (8, 4))}
    assert E.classifier_heads(proto, shapes) == [("prob", "softmax")]
    del proto.graph.node[1], proto.graph.output[1]
    assert E.classifier_heads(proto, {"box": (None, (8, 4))}) == [("box", "logits")]


def test_statistics_cost_is_bounded_for_large_inputs():
    from onnxviz.preprocessing.evidence import MAX_POSITIONS, photo_count, thin

    rng = np.random.default_rng(0)
    a = rng.normal(size=(2, 3, 512, 300)).astype(np.float32)
    t = thin(a)
    assert t.shape[:2] == (2, 3) and t.shape[2] * t.shape[3] <= MAX_POSITIONS
    assert abs(float(t.mean()) - float(a.mean())) < 0.02 and abs(float(t.std()) - float(a.std())) < 0.02
    small = rng.normal(size=(2, 8, 64, 64))
    assert thin(small) is small or thin(small).shape == small.shape  # a 224 px net's maps are read whole
    assert thin(rng.normal(size=(2, 40000, 8))).shape[1] <= MAX_POSITIONS  # tokens
    assert photo_count(224, 224, 16) == 16 and photo_count(416, 416, 16) == 16
    assert photo_count(640, 640, 16) == 6 and photo_count(1600, 1600, 16) == 4 and photo_count(1600, 1600, 3) == 3
