"""MACO, feature accentuation and the reliability check (issue 12)."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import onnxviz
from onnxviz.optvis import render
from onnxviz.optvis import maco as maco_mod
from onnxviz.optvis.accentuate import accentuate

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


def _spatial(model):
    return [lay.name for lay in model.layers if len(lay.shape or ()) == 4]


def test_default_spectrum_ships_and_estimates_from_images():
    spec = maco_mod.default_spectrum()
    assert spec.shape == (3, 224, 113) and np.all(spec >= 0) and spec[:, 0, 1] .min() > spec[:, 100, 100].max()
    rng = np.random.default_rng(0)
    est = maco_mod.spectrum_from_images(rng.random((2, 3, 32, 32)).astype(np.float32), size=32)
    assert est.shape == (3, 32, 17)
    assert maco_mod.resize_spectrum(spec, 40, 30).shape == (3, 40, 16)


def test_maco_optimizes_phase_only_and_keeps_magnitude(digits_onnx):
    model = onnxviz.load(digits_onnx)
    layer = _spatial(model)[-1]
    params, image_f = maco_mod.maco(16, generator=torch.Generator().manual_seed(0))
    mag = image_f.magnitude.clone()
    assert len(params) == 1 and params[0].shape == (1, 3, 16, 9)
    result = render(model, f"{layer}:0", param_f=(params, image_f), steps=8, seed=0, lr=0.2, transforms="none")
    assert result.record["activation_end"][0] > result.record["activation_start"][0]
    assert torch.equal(image_f.magnitude, mag)  # the magnitude never moves
    # the image's spectrum (before standardization) has exactly that magnitude on the interior frequencies
    spec = torch.fft.rfft2(torch.fft.irfft2(torch.polar(mag.expand_as(params[0]), params[0].detach()), s=(16, 16),
                                            norm="ortho"), norm="ortho")
    assert torch.allclose(spec.abs()[..., 1:8], mag[..., 1:8].expand_as(spec[..., 1:8]), atol=1e-5)
    assert result.importance is not None and result.importance.shape == (1, 16, 16) and result.importance.max() > 0


def test_maco_same_seed_same_bytes(digits_onnx):
    model = onnxviz.load(digits_onnx)
    spec = f"{_spatial(model)[-1]}:1"
    a, b, c = (render(model, spec, param_f=maco_mod.maco_param_f(16), steps=4, seed=s, lr=0.2) for s in (3, 3, 4))
    assert a.images.tobytes() == b.images.tobytes()
    assert a.images.tobytes() != c.images.tobytes()


def test_accentuation_stays_closer_to_the_photo_than_plain_ascent(digits_onnx, digits_data):
    model = onnxviz.load(digits_onnx)
    layers = _spatial(model)
    photos = digits_data[0][:3]
    spec = f"{layers[-1]}:2"
    kw = dict(reg_layer=layers[0], steps=24, seed=0, lr=0.05)
    reg = accentuate(model, spec, photos, weight=5.0, **kw)
    free = accentuate(model, spec, photos, weight=0.0, **kw)
    acc_r, acc_f = reg.record["accentuation"], free.record["accentuation"]
    start = np.asarray(acc_r["activation_photo"])
    assert np.all(np.asarray(reg.record["activation_end"]) > start)  # the unit rises
    assert np.mean(acc_r["feature_distance"]) < np.mean(acc_f["feature_distance"])
    assert np.mean(acc_r["pixel_rmse"]) < np.mean(acc_f["pixel_rmse"])
    again = accentuate(model, spec, photos, weight=5.0, **kw)
    assert again.images.tobytes() == reg.images.tobytes()


@pytest.mark.slow
@pytest.mark.weights
def test_fooled_mobilenet_is_flagged_and_honest_render_passes(tmp_path, tmp_path_factory):
    from models_fixture import exported

    from onnxviz.preprocessing.images import imagenet_photos

    photos = [p for p, _ in imagenet_photos()]
    if not photos:
        pytest.skip("foolbox (its 20 ImageNet photos) is not installed")
    sys.path.insert(0, str(SCRIPTS))
    from fool_model import check_unchanged, fool, pattern_stats

    from onnxviz.optvis.reliability import check

    path = exported("mobilenet_v2", tmp_path_factory)["path"]
    model = onnxviz.load(path)
    lay = model.layer("features.7")
    x = model.prepare(model.load_images(photos))
    d, s = pattern_stats(x)
    fooled_path = tmp_path / "fooled.onnx"
    import onnx

    onnx.save(fool(model.proto, lay.tensor, 12, lay.units, 1.5 * float((d / s).max()), 20.0), fooled_path)
    assert "largest activation difference" in check_unchanged(path, fooled_path, photos)
    fooled = onnxviz.load(fooled_path)
    same = np.abs(fooled.activations(x, [lay.name])[lay.name] - model.activations(x, [lay.name])[lay.name]).max()
    assert same < 1e-4  # unchanged on real photos
    acts = model.channel_stats(x, [lay.name])[lay.name]["mean"][:, 12]
    top = model.load_images([photos[i] for i in np.argsort(-acts)[:6]])
    bad = render(fooled, "features.7:12", steps=96, seed=0)
    good = render(model, "features.7:12", steps=96, seed=0)
    assert bad.record["activation_end"][0] > 3 * good.record["activation_end"][0]  # the pattern dominates
    assert (pattern_stats(fooled.prepare(bad.images))[0] / pattern_stats(fooled.prepare(bad.images))[1])[0] > (d / s).max()
    flagged = check(fooled, bad.images, "features.7", 12, top)
    passed = check(model, good.images, "features.7", 12, top)
    assert flagged["verdict"] == "suspect", flagged
    assert passed["verdict"] == "pass", passed
