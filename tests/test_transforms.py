"""Render transforms: a run of geometric transforms is sampled once, exactly where no resampling is
needed, in pixel units (no shear on non-square images), and without chaining bilinear blurs."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from onnxviz.optvis import transforms as tr


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _one_by_one(ts, x, generator):
    for t in ts:
        x = t(x, generator)
    return x


def test_a_run_without_resampling_is_exact_and_draws_the_same_numbers():
    x = torch.rand(2, 3, 24, 30, generator=_gen(0))
    ts = [tr.pad(3), tr.jitter(2), tr.random_scale([1.0]), tr.random_rotate([0]), tr.jitter(1)]
    g1, g2 = _gen(1), _gen(1)
    fused, plain = tr.compose(ts)(x, g1), _one_by_one(ts, x, g2)
    assert fused.shape == plain.shape == (2, 3, 27, 33)
    assert torch.allclose(fused, plain, atol=1e-5)
    assert torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))  # same draws, same order


def test_resize_and_rotation_are_in_pixel_units():
    x = torch.rand(1, 3, 6, 10, generator=_gen(0))
    want = F.interpolate(x, size=(17, 41), mode="bilinear", align_corners=False)
    assert torch.allclose(tr.resize((17, 41))(x), want, atol=1e-5)
    assert torch.allclose(tr.random_rotate([180])(x), x.flip(2).flip(3), atol=1e-5)
    # a quarter turn of a 6x10 image turns its central 6x6 square into itself, not a sheared copy
    turned = tr.random_rotate([90])(x)[..., 2:8]
    assert min(float((turned - torch.rot90(x[..., 2:8], k, (2, 3))).abs().max()) for k in (1, 3)) < 1e-5


def test_one_resample_keeps_a_small_input_sharp():
    """Lucid's standard set at a 24x24 input (MTCNN R-Net) and the resize back to 24x24 that render
    adds for a fixed-size model: one bilinear resample keeps over twice the pixel-level detail of
    three chained ones (measured: 40% of the input's neighbour-difference energy against 12%)."""
    x = torch.rand(1, 3, 24, 24, generator=_gen(0))
    ts = tr.standard(24 / 224) + [tr.resize((24, 24))]

    def detail(y):
        return float((y[..., 1:, :] - y[..., :-1, :]).pow(2).mean() + (y[..., 1:] - y[..., :-1]).pow(2).mean())

    fused = [detail(tr.compose(ts)(x, _gen(s))) for s in range(16)]
    plain = [detail(_one_by_one(ts, x, _gen(s))) for s in range(16)]
    assert all(f >= 0.95 * p for f, p in zip(fused, plain))
    assert sum(fused) > 2 * sum(plain)
    assert tr.compose(ts)(x, _gen(0)).shape == (1, 3, 24, 24)


def test_nested_compose_is_flattened_into_one_run():
    inner = tr.compose(tr.standard(0.5))
    outer = tr.compose([inner, tr.resize((32, 32))])
    assert len(outer.transforms) == 6
    assert outer(torch.rand(1, 3, 40, 40, generator=_gen(0)), _gen(0)).shape == (1, 3, 32, 32)
