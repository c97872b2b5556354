"""onnxruntime runs of a model with a second input whose batch is fixed at 1 (backends/ort.py)."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from onnxviz.backends.ort import Runner


def _siamese(batch_of_second):
    """out = conv(a) - conv(b): a siamese net whose second image input has batch ``batch_of_second``."""
    w = helper.make_tensor("W", TensorProto.FLOAT, [2, 3, 1, 1], np.arange(6, dtype=np.float32).tolist())
    nodes = [helper.make_node("Conv", ["a", "W"], ["ca"]), helper.make_node("Conv", ["b", "W"], ["cb"]),
             helper.make_node("Sub", ["ca", "cb"], ["out"])]
    graph = helper.make_graph(nodes, "siamese", [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 3, 4, 4]),
                                                 helper.make_tensor_value_info("b", TensorProto.FLOAT, [batch_of_second, 3, 4, 4])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 2, 4, 4])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_a_second_input_fixed_at_batch_one_runs_image_by_image():
    x = np.random.default_rng(0).random((5, 3, 4, 4), np.float32)
    other = np.full((1, 3, 4, 4), 0.5, np.float32)
    fixed = Runner(_siamese(1), input_name="a", extras={"b": other})
    assert fixed.one_at_a_time
    got = fixed.run(x)["out"]
    want = np.stack([Runner(_siamese(1), input_name="a", extras={"b": other}).run(x[i:i + 1])["out"][0] for i in range(5)])
    assert got.shape == (5, 2, 4, 4) and np.allclose(got, want)
    # an open batch still runs the whole batch at once
    assert not Runner(_siamese("M"), input_name="a", extras={"b": other}).one_at_a_time
