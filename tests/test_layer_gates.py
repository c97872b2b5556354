"""Which tensors a model lists as layers around gated activations (layers/discovery.py).

A decomposed hard-swish (x * clip(x + 3, 0, 6) / 6, Paddle's and some torch exports') and a
squeeze-excitation gate (a hard-sigmoid that multiplies the features) put bounded tensors between the
feature maps: listed, they became "middle layers" whose units start near their ceiling, where no
render can rise 5x. The product is the layer; the gate and the pre-activation are not. An unrolled
recurrent cell's steps (gated products of (N, C) vectors) listed hundreds of such tensors beside a few
convolutional ones, so the middle layer of a CRNN was a cell's hidden state.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import onnxviz


def _c(name, value):
    return numpy_helper.from_array(np.asarray(value, np.float32), name)


def _gated_net(path):
    rng = np.random.default_rng(0)
    inits = [_c("W1", rng.normal(0, .3, (8, 3, 3, 3))), _c("b1", np.zeros(8)),
             _c("scale", np.ones(8)), _c("bias", np.zeros(8)), _c("mean", np.zeros(8)), _c("var", np.ones(8)),
             _c("three", 3.0), _c("zero", 0.0), _c("six", 6.0),
             _c("Wse1", rng.normal(0, .3, (4, 8, 1, 1))), _c("Wse2", rng.normal(0, .3, (8, 4, 1, 1))),
             _c("W2", rng.normal(0, .3, (8, 8, 3, 3))), _c("W3", rng.normal(0, .3, (8, 8, 3, 3))),
             _c("Wo", rng.normal(0, .3, (8, 8))), _c("Wg", rng.normal(0, .3, (8, 8))), _c("b8", np.zeros(8)),
             _c("fcW", rng.normal(0, .3, (10, 8))), _c("fcb", np.zeros(10))]
    n = helper.make_node
    nodes = [
        n("Conv", ["image", "W1", "b1"], ["conv1"], name="conv1", pads=[1, 1, 1, 1]),
        n("BatchNormalization", ["conv1", "scale", "bias", "mean", "var"], ["bn1"], name="bn1"),
        # hard-swish, decomposed
        n("Add", ["bn1", "three"], ["plus3"], name="plus3"),
        n("Clip", ["plus3", "zero", "six"], ["clip1"], name="clip1"),
        n("Mul", ["bn1", "clip1"], ["hswish_mul"], name="hswish_mul"),
        n("Div", ["hswish_mul", "six"], ["hswish"], name="hswish"),
        # squeeze-excitation: a hard-sigmoid gate scales the channels
        n("GlobalAveragePool", ["hswish"], ["se_pool"], name="se_pool"),
        n("Conv", ["se_pool", "Wse1"], ["se_fc1"], name="se_fc1"),
        n("Relu", ["se_fc1"], ["se_relu"], name="se_relu"),
        n("Conv", ["se_relu", "Wse2"], ["se_fc2"], name="se_fc2"),
        n("HardSigmoid", ["se_fc2"], ["se_gate"], name="se_gate"),
        n("Mul", ["hswish", "se_gate"], ["se_out"], name="se_out"),
        # a ReLU6 that feeds a conv is a layer
        n("Conv", ["se_out", "W2"], ["conv2"], name="conv2", pads=[1, 1, 1, 1]),
        n("Clip", ["conv2", "zero", "six"], ["relu6"], name="relu6"),
        n("Conv", ["relu6", "W3"], ["conv3"], name="conv3", pads=[1, 1, 1, 1]),
        n("Relu", ["conv3"], ["relu3"], name="relu3"),
        n("GlobalAveragePool", ["relu3"], ["gap"], name="gap"),
        n("Flatten", ["gap"], ["flat"], name="flat"),
        # one step of an unrolled recurrent cell on (N, C) vectors: h = sigmoid(o) * tanh(g)
        n("Gemm", ["flat", "Wo", "b8"], ["o_pre"], name="o_pre", transB=1),
        n("Sigmoid", ["o_pre"], ["o"], name="o"),
        n("Gemm", ["flat", "Wg", "b8"], ["g_pre"], name="g_pre", transB=1),
        n("Tanh", ["g_pre"], ["g"], name="g"),
        n("Mul", ["o", "g"], ["h"], name="h"),
        n("Gemm", ["h", "fcW", "fcb"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(nodes, "gated", [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 32, 32])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_gates_are_not_layers_their_products_are(tmp_path):
    m = onnxviz.load(_gated_net(tmp_path / "gated.onnx"), infer=False)
    listed = {lay.tensor for lay in m.layers}
    assert {"hswish", "se_out", "relu6", "relu3"} <= listed, listed
    # the clip and the hard-sigmoid only gate; bn1 and the first Mul are pieces of the hard-swish
    assert not listed & {"clip1", "se_gate", "bn1", "plus3", "hswish_mul"}, listed
    # a recurrent step's gates and its gated (N, C) product are not feature maps either
    assert not listed & {"o", "g", "h"}, listed


def test_a_gate_stays_reachable_by_its_tensor_name(tmp_path):
    """Not listed is not hidden: a person who asks for the clip by its tensor still gets it."""
    m = onnxviz.load(_gated_net(tmp_path / "gated.onnx"), infer=False)
    assert m.layer("clip1").tensor == "clip1"
