"""Input sizes of a dynamic-size graph, found by running it (onnxviz.graph.input_sizes)."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from onnxviz.graph import input_sizes


class Runner:
    """Runs (N, C, H, W) zeros when ``ok(h, w)``; otherwise fails like onnxruntime on mismatched adds."""

    def __init__(self, ok):
        self.ok, self.seen = ok, []

    def run(self, x):
        h, w = x.shape[2:]
        self.seen.append((h, w))
        if not self.ok(h, w):
            raise RuntimeError(f"Add: left operand cannot broadcast on dim 2 LeftShape: {{1,8,{h // 8}}}")
        return [x]


def test_a_size_that_runs_by_chance_does_not_make_a_stride():
    """A face detector whose skip connections agree at sizes 16k and 16k + 4 only: 224 + 4 runs, yet
    232 (the next multiple of 4) fails with "58 vs 57"; the stride is 16, whose multiples all run."""
    ok = lambda h, w: h % 16 in (0, 4) and w % 16 in (0, 4)  # noqa: E731
    rule = input_sizes.probe(lambda: Runner(ok), 3, "NCHW", None, None)
    assert rule.size == (224, 224) and rule.stride == (16, 16), rule
    for want in (57, 100, 230, 460, 463, 640):
        h, w = rule.fit((want, want))
        assert ok(h, w), (want, h, w)


def test_any_size_gives_stride_one():
    rule = input_sizes.probe(lambda: Runner(lambda h, w: True), 3, "NCHW", None, None)
    assert rule.stride == (1, 1)


def _skip_net(levels: int = 3) -> bytes:
    """Each level: a stride-2 Conv (rounds up) plus a stride-2 MaxPool (rounds down), added: odd sizes fail."""
    rng = np.random.default_rng(0)
    nodes, inits, src = [], [], "image"
    for k in range(levels):
        w = numpy_helper.from_array(rng.normal(0, 0.3, (3, 3, 3, 3)).astype(np.float32), f"w{k}")
        inits.append(w)
        nodes += [helper.make_node("Conv", [src, f"w{k}"], [f"c{k}"], kernel_shape=[3, 3], strides=[2, 2],
                                   pads=[1, 1, 1, 1]),
                  helper.make_node("MaxPool", [src], [f"p{k}"], kernel_shape=[2, 2], strides=[2, 2]),
                  helper.make_node("Add", [f"c{k}", f"p{k}"], [f"a{k}"])]
        src = f"a{k}"
    graph = helper.make_graph(nodes, "skips", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                             ["N", 3, "H", "W"])],
                              [helper.make_tensor_value_info(src, TensorProto.FLOAT, ["N", 3, "h", "w"])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def test_a_real_graph_with_skip_connections_runs_at_every_fitted_size():
    sess = ort.InferenceSession(_skip_net(), providers=["CPUExecutionProvider"])

    class OrtRunner:
        def run(self, x):
            return sess.run(None, {"image": x})

    rule = input_sizes.probe(lambda: OrtRunner(), 3, "NCHW", None, None)
    assert rule.stride == (8, 8), rule
    for want in ((57, 57), (100, 300), (231, 117)):
        h, w = rule.fit(want)
        OrtRunner().run(np.zeros((1, 3, h, w), np.float32))


def _upsample_net(side=None) -> onnx.ModelProto:
    """YuNet's neck in small: four 2x2 max-pools, the deepest map upsampled 2x (Resize by scales) and
    added to the one above it. It runs only where that map has an even side: multiples of 16, while
    225, 226 and 227 (three consecutive sizes) all run by chance."""
    dims = [1, 3, side, side] if side else ["N", 3, "H", "W"]
    nodes = [helper.make_node("MaxPool", [f"p{k}"], [f"p{k + 1}"], kernel_shape=[2, 2], strides=[2, 2])
             for k in range(4)]
    nodes += [helper.make_node("Resize", ["p4", "", "scales"], ["up"], mode="nearest"),
              helper.make_node("Add", ["up", "p3"], ["out"])]
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    graph = helper.make_graph(nodes, "neck", [helper.make_tensor_value_info("p0", TensorProto.FLOAT, dims)],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], [scales])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_a_stride_is_checked_at_odd_sizes_of_every_level_not_at_consecutive_multiples():
    sess = ort.InferenceSession(_upsample_net().SerializeToString(), providers=["CPUExecutionProvider"])

    class OrtRunner:
        def run(self, x):
            return sess.run(None, {"p0": x})

    rule = input_sizes.probe(lambda: OrtRunner(), 3, "NCHW", None, None)
    assert rule.stride == (16, 16), rule
    for want in (437, 300, 57):  # 437 px: the YuNet render size that failed at 27 vs 26
        h, w = rule.fit((want, want))
        OrtRunner().run(np.zeros((1, 3, h, w), np.float32))


def test_a_fixed_640_neck_made_dynamic_gets_the_stride_of_its_levels():
    from onnxviz.graph import dynamic_size

    rng = np.random.default_rng(0)
    edit = dynamic_size.make_dynamic(_upsample_net(640), "p0", "NCHW",
                                     lambda h, w: rng.random((1, 3, h, w), dtype=np.float32))
    assert edit.proto is not None and edit.stride == 16, edit.reason
