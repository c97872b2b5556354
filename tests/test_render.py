"""Feature visualization on the real digits CNN (16x16 grayscale, channel_order "L") via torch_view."""
from __future__ import annotations

import json
import shlex

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import onnxviz
from onnxviz.errors import ImageError, ObjectiveError, UnknownNodeError
from onnxviz.optvis import objectives as obj
from onnxviz.optvis import param, recipes, render
from onnxviz.optvis.redirect import _RedirectedClamp, _SteepSidePReLU
from onnxviz.optvis.forward import Activations

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def model(digits_onnx):
    return onnxviz.load(digits_onnx)


@pytest.fixture(scope="module")
def data_max(model, digits_data):
    """Max activation of each relu_2 channel over the real digits (N, C) -> (C,)."""
    x = model.prepare(digits_data[0][:400])
    return model.channel_stats(x, ["relu_2"])["relu_2"]["max"].max(0)


def probs(model, images):
    logits = model.activations(model.prepare(images), ["fc"])["fc"]
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_class_visualization_is_classified_as_the_class(model):
    r = render(model, obj.class_prob("fc", list(range(10)), log=True), steps=64, seed=0)
    assert r.images.shape == (10, 3, 16, 16)
    p = probs(model, r.images)  # checked by onnxruntime, not by the torch module that was optimized
    assert list(p.argmax(1)) == list(range(10))
    assert p[np.arange(10), np.arange(10)].min() > 0.9
    assert np.allclose(r.images[:, 0], r.images[:, 1]) and np.allclose(r.images[:, 1], r.images[:, 2])  # gray model


def test_channel_activation_rises_many_times(model, data_max):
    live = [int(u) for u in np.argsort(-data_max)[:4]]
    r = render(model, obj.channel("relu_2", live), steps=48, seed=0)
    start, end = np.array(r.record["activation_start"]), np.array(r.record["activation_end"])
    assert (end > 5 * np.maximum(start, 0.1)).all(), (start, end)
    assert not any(r.record["dead"])
    assert len(r.record["activation_per_step"]) == 48 and len(r.record["activation_per_step"][0]) == 4


def test_negation_lowers_activation(model):
    probe = render(model, obj.channel("relu_1", list(range(16))), steps=1, seed=0)
    unit = int(np.argmax(probe.record["activation_start"]))
    r = render(model, -obj.channel("relu_1", unit), steps=32, seed=0)
    # the recorded value is the objective's, here minus the channel
    channel_start, channel_end = -r.record["activation_start"][0], -r.record["activation_end"][0]
    assert channel_start > 0 and channel_end < 0.5 * channel_start


def test_objective_algebra_combines_gradients(model):
    view = model.torch_view(["relu_1", "relu_2"])
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 16, 16, generator=g)

    def grad(objective):
        img = image.clone().requires_grad_(True)
        acts = view(model.meta.to_model_input(img))
        T = Activations(acts, img, {}, {})
        objective(T).sum().backward()
        return img.grad

    a, b, c = obj.channel("relu_2", 3), obj.neuron("relu_1", 5), obj.as_objective("relu_2:7")
    combined = a - 0.5 * b + 2 * c
    assert torch.allclose(grad(combined), grad(a) - 0.5 * grad(b) + 2 * grad(c), atol=1e-5)
    assert torch.allclose(grad(-a), -grad(a))
    assert torch.allclose(grad(sum([a, b])), grad(a) + grad(b), atol=1e-6)
    assert set(combined.layers) == {"relu_2", "relu_1"}
    assert "channel('relu_2', 3)" in combined.name and "neuron('relu_1', 5)" in combined.name


def test_diversity_makes_images_differ(model, data_max):
    unit = int(np.argmax(data_max))
    plain = render(model, obj.channel("relu_2", unit), batch=4, steps=32, seed=0)
    diverse = recipes.diverse(model, obj.channel("relu_2", unit), n=4, layer="relu_1", steps=32, seed=0)
    view = model.torch_view(["relu_1"])

    def mean_similarity(images):
        with torch.no_grad():
            acts = view(torch.from_numpy(model.prepare(images)))["relu_1"]
        sim = obj.gram_similarity(acts).numpy()
        return sim[~np.eye(4, dtype=bool)].mean()

    assert mean_similarity(diverse.images) < mean_similarity(plain.images)
    assert min(diverse.record["activation_end"]) > max(diverse.record["activation_start"])  # still on target


def test_seed_reproducible_bytes_and_different_seeds_differ(model):
    a = render(model, "relu_2:3", steps=12, seed=5)
    b = render(model, "relu_2:3", steps=12, seed=5)
    c = render(model, "relu_2:3", steps=12, seed=6)
    assert a.images.tobytes() == b.images.tobytes()
    assert a.record["activation_per_step"] == b.record["activation_per_step"]
    assert a.images.tobytes() != c.images.tobytes()


def test_dead_unit_is_reported_not_silent(model, data_max):
    dead_units = [int(u) for u in np.where(data_max == 0)[0]]
    if not dead_units:
        pytest.skip("this training run has no dead relu_2 channel")
    r = render(model, obj.channel("relu_2", dead_units[0]), steps=24, seed=0)
    assert r.record["dead"] == [True]
    assert "dead unit" in r.record["warnings"][0]


def test_relu_gradient_redirection():
    x = torch.full((2, 4), -1.0, requires_grad=True)
    y = _RedirectedClamp.apply(x, 0.0, None)
    (-y.sum()).backward()  # the loss wants y higher: a plain ReLU gives no gradient here
    assert torch.equal(y, torch.zeros(2, 4))
    assert (x.grad < 0).all()  # redirected: descending the loss raises x
    x2 = torch.tensor([[-1.0, 2.0]], requires_grad=True)
    (-_RedirectedClamp.apply(x2, 0.0, None).sum()).backward()
    assert x2.grad.tolist() == [[0.0, -1.0]]  # an image with some gradient keeps the plain ReLU gradient


def test_negative_slope_prelu_gradient_goes_to_the_steep_side():
    x = torch.tensor([[-1.0, 2.0]], requires_grad=True)
    y = _SteepSidePReLU.apply(x, torch.tensor(-0.1))
    assert torch.allclose(y, torch.tensor([[0.1, 2.0]]))  # the forward is the PReLU's
    (-y.sum()).backward()
    assert x.grad.tolist() == [[-1.0, -1.0]]  # both positions are raised (a plain PReLU lowers the first)


def _v_unit(tmp_path, slope: float):
    """A unit that rises on both sides of zero: a 3x3 mean filter, bias -0.6, PReLU(slope) (no
    trained weights: the shape of the function is the point). At a gray start the filter gives
    -0.1: on the shallow side when the slope is negative."""
    from torch import nn

    net = nn.Sequential(nn.Conv2d(3, 1, 3), nn.PReLU(1, init=slope)).eval()
    with torch.no_grad():
        net[0].weight.fill_(1 / 27)
        net[0].bias.fill_(-0.6)
    path = tmp_path / f"v{slope}.onnx"
    torch.onnx.export(net, torch.rand(1, 3, 16, 16), path, dynamo=False, opset_version=13)
    m = onnxviz.load(path, value_range=(0, 1), mean=[0, 0, 0], std=[1, 1, 1])
    return m, next(lay.name for lay in m.layers if lay.op == "PRelu")


def test_negative_slope_objective_climbs_its_steep_side(tmp_path):
    """The V-shaped objective (MTCNN R-Net's p_re_lu_5:57 has slope -0.085) with plain gradients
    darkens the image down the shallow side; redirected for the first steps it brightens it and
    ends well above (0.14 against 0.06 in 64 steps). A positive slope is left alone."""
    m, name = _v_unit(tmp_path, -0.1)
    plain = render(m, obj.channel(name, 0), steps=64, seed=0, redirect_steps=0)
    steep = render(m, obj.channel(name, 0), steps=64, seed=0)
    assert steep.record["redirect_steps"] == 16
    assert steep.record["activation_end"][0] > 2 * plain.record["activation_end"][0]
    assert steep.images.mean() > 0.5 > plain.images.mean()
    m, name = _v_unit(tmp_path, 0.1)
    a = render(m, obj.channel(name, 0), steps=8, seed=0, redirect_steps=0)
    b = render(m, obj.channel(name, 0), steps=8, seed=0)
    assert a.record["activation_end"] == b.record["activation_end"]


def test_unit_dead_on_the_grey_start_is_redirected_until_it_rises(tmp_path):
    """A 3x3 mean filter, bias -0.74, ReLU: zero on grey (0.5) and on most of the image space. 16
    redirected steps bring the pre-activation close to zero but not across, and plain ReLU gradients
    after them leave it dead (this is what vk-captcha's 130x50 CRNN's units 1 and 3 did); redirection
    that goes on while the objective is still at its start brings it alive."""
    from torch import nn

    net = nn.Sequential(nn.Conv2d(3, 1, 3), nn.ReLU()).eval()
    with torch.no_grad():
        net[0].weight.fill_(1 / 27)
        net[0].bias.fill_(-0.74)
    path = tmp_path / "dead_on_grey.onnx"
    torch.onnx.export(net, torch.rand(1, 3, 16, 16), path, dynamo=False, opset_version=13)
    m = onnxviz.load(path, value_range=(0, 1), mean=[0, 0, 0], std=[1, 1, 1])
    name = next(lay.name for lay in m.layers if lay.op == "Relu")
    r = render(m, obj.channel(name, 0), steps=64, seed=0)
    assert r.record["activation_start"] == [0.0]
    assert 16 < r.record["redirect_steps"] <= 33  # past the first 16, never past half the steps (+1)
    assert r.record["activation_end"][0] > 0.01 and r.record["dead"] == [False]


def test_from_photo_starts_at_the_photo():
    photo = np.random.default_rng(0).uniform(0.05, 0.95, (3, 20, 24)).astype(np.float32)
    for fft in (True, False):
        _, image_f = param.from_photo(photo, fft=fft)
        assert np.abs(image_f().detach().numpy()[0] - photo).max() < 1e-3


def test_color_matrix_from_images_recovers_covariance():
    rng = np.random.default_rng(0)
    m = np.array([[0.3, 0.1, 0.0], [0.2, -0.1, 0.05], [0.25, 0.0, -0.05]])
    pixels = m @ rng.normal(size=(3, 4096))
    est = param.color_matrix_from_images(pixels.reshape(3, 1, 64, 64).transpose(1, 0, 2, 3) + 0.5)
    assert np.allclose(est @ est.T, m @ m.T, atol=5e-3)


def test_bad_input_gives_clear_errors(model, tmp_path):
    with pytest.raises(UnknownNodeError, match="relu_2"):
        render(model, "relu_9:1", steps=1)
    with pytest.raises(ObjectiveError, match="out of range"):
        render(model, "relu_2:32", steps=1)
    with pytest.raises(ObjectiveError, match="layer:unit"):
        render(model, "relu_2", steps=1)
    with pytest.raises(ObjectiveError, match="integer"):
        obj.parse("relu_2:x")
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(ImageError):
        recipes.deepdream(model, "relu_2", bad, steps=1)


def test_cli_render_writes_png_json_and_reproducible_command(digits_onnx, digits_data, tmp_path, monkeypatch):
    from onnxviz.cli import main
    from onnxviz.preprocessing.images import save_image

    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    res = runner.invoke(main, ["render", digits_onnx, "relu_2:3", "--steps", "6", "--out", "out", "--no-progress"])
    assert res.exit_code == 0, res.output
    rec = json.loads((tmp_path / "out/relu_2/channel_3.json").read_text())
    for key in ("model", "layer", "unit", "kind", "objective", "image", "command", "seed", "steps", "size",
                "activation_start", "activation_end", "activation_per_step"):
        assert key in rec
    assert rec["kind"] == "channel" and rec["unit"] == 3 and len(rec["activation_per_step"]) == 6
    first = (tmp_path / "out/relu_2/channel_3.png").read_bytes()
    # the recorded command reproduces the same PNG bytes
    args = shlex.split(rec["command"])[1:] + ["--out", "again", "--no-progress"]
    res = runner.invoke(main, args)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "again/relu_2/channel_3.png").read_bytes() == first

    res = runner.invoke(main, ["render", digits_onnx, "--layer", "relu_2", "--units", "0-2", "--steps", "3",
                               "--out", "out", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert all((tmp_path / f"out/relu_2/channel_{u}.png").exists() for u in range(3))
    res = runner.invoke(main, ["render", digits_onnx, "fc:4", "--objective", "prob", "--steps", "3", "--out", "out"])
    assert res.exit_code == 0 and json.loads((tmp_path / "out/fc/class_prob_4.json").read_text())["label"] == "4"
    photo = save_image(digits_data[0][0], tmp_path / "digit.png")
    for flag, stem in (("--deepdream", "deepdream"), ("--caricature", "caricature")):
        res = runner.invoke(main, ["render", digits_onnx, flag, "relu_2", "--image", str(photo), "--steps", "3",
                                   "--out", "out"])
        assert res.exit_code == 0, res.output
        assert json.loads((tmp_path / f"out/relu_2/{stem}_digit.json").read_text())["kind"] == stem
    res = runner.invoke(main, ["render", digits_onnx, "relu_2:3", "--diversity", "2", "--steps", "3", "--out", "out"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out/relu_2/diversity_channel_3_1.png").exists()
    res = runner.invoke(main, ["render", digits_onnx, "nope:1", "--steps", "2"])
    assert res.exit_code == 3 and "no layer named 'nope'" in res.output


def test_render_through_nhwc_bgr_input_applies_metadata(tmp_path):
    """A Keras-style file (NHWC input) with Caffe-style preprocessing (BGR, 0..255 minus mean)."""
    from onnx_traits import nhwc_input

    trait = nhwc_input(tmp_path)
    m = onnxviz.load(trait.path, channel_order="BGR", value_range=(0, 255), mean=[103.9, 116.8, 123.7])
    assert m.meta.layout == "NHWC"
    layer = m.layer(trait.tensor)
    r = render(m, obj.channel(layer.name, [0, 1]), steps=32, seed=0, size=32)
    img = torch.as_tensor(np.asarray(r.images))
    assert img.shape == (2, 3, 32, 32)
    # what render reports is what onnxruntime computes on the same image, preprocessed per the metadata
    x = m.prepare(img.numpy())
    assert x.shape == (2, 32, 32, 3)
    ort = m.activations(x, [layer.name])[layer.name].mean(axis=(2, 3))
    np.testing.assert_allclose(ort[[0, 1], [0, 1]], r.record["activation_end"], rtol=1e-3, atol=1e-4)
    assert (np.array(r.record["activation_end"]) > np.array(r.record["activation_start"])).all()
