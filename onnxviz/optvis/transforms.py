"""Random image transforms applied before every step (robustness against adversarial noise).

Each transform is a small callable ``t(images, generator) -> images`` on (N, 3, H, W) tensors;
random draws come from the explicit ``torch.Generator`` (CPU), never from global state, so a seed
reproduces a render. One draw is shared by the whole batch (as in Lucid), so a batch of units sees
the same transforms. ``standard(scale)`` is Lucid's standard set, with pixel amounts scaled for
images smaller or larger than 224 px.

The geometric transforms (pad, jitter, random_scale, random_rotate, resize) also carry ``warp``:
the map from their output pixels to their input pixels. ``compose`` multiplies the maps of a run
of them and samples the image ONCE (one bilinear ``grid_sample``), where applying them one by one
resamples it at every scale, rotation and resize. Each bilinear resample at a fractional offset
averages neighbouring pixels, so a chain of them is a blur: the optimizer then maximizes the unit
on a blurred image. Lucid chains two (scale, rotate); a fixed-size model adds a third (the resize
back to its input size, which ``render`` puts in the same run). ddddocr's detector head
``conv_282:2`` (416 px input) rose 3.6x in 128 steps with three resamples, 6.2x with one.
Rotation turns about the image's center in pixel units, so a non-square image is not sheared.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

Transform = Callable[[torch.Tensor, Optional[torch.Generator]], torch.Tensor]


def _choice(options: Sequence, generator: Optional[torch.Generator]):
    return options[int(torch.randint(len(options), (1,), generator=generator))]


def _affine(a=1.0, b=0.0, tx=0.0, c=0.0, d=1.0, ty=0.0) -> np.ndarray:
    return np.array([[a, b, tx], [c, d, ty], [0.0, 0.0, 1.0]], dtype=np.float64)


def warp_sample(x: torch.Tensor, matrix: np.ndarray, size: Sequence[int], fill=("border",)) -> torch.Tensor:
    """Resample ``x`` (N, C, H, W) to ``size`` (H', W') with one bilinear ``grid_sample``.

    ``matrix`` (3x3) maps an output pixel position to an input one, in continuous pixel units
    (pixel i spans [i, i + 1]). Outside the input: ``("constant", v)``, ``("reflect",)`` or
    ``("border",)`` (the edge pixel repeated).
    """
    h, w = x.shape[-2:]
    oh, ow = int(size[0]), int(size[1])
    to_norm = _affine(2.0 / w, 0.0, -1.0, 0.0, 2.0 / h, -1.0)
    from_norm = _affine(ow / 2.0, 0.0, ow / 2.0, 0.0, oh / 2.0, oh / 2.0)
    theta = torch.tensor((to_norm @ matrix @ from_norm)[:2], dtype=x.dtype, device=x.device)
    grid = F.affine_grid(theta.unsqueeze(0).expand(x.shape[0], -1, -1), [x.shape[0], x.shape[1], oh, ow],
                         align_corners=False)
    if fill[0] == "constant":
        return F.grid_sample(x - fill[1], grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill[1]
    mode = "reflection" if fill[0] == "reflect" else "border"
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=mode, align_corners=False)


def pad(w: int, mode: str = "constant", value: float = 0.5) -> Transform:
    """Pad every side by ``w`` pixels (constant ``value``, or "reflect"/"replicate")."""
    def inner(x, generator=None):
        if w <= 0:
            return x
        if mode == "constant":
            return F.pad(x, [w] * 4, mode="constant", value=value)
        return F.pad(x, [w] * 4, mode=mode)

    def warp(size, generator=None):
        p = max(0, w)
        return _affine(tx=-p, ty=-p), (size[0] + 2 * p, size[1] + 2 * p)

    inner.__name__ = f"pad({w})"
    inner.warp, inner.resamples = warp, False
    inner.fill = ("constant", value) if mode == "constant" else ("reflect",) if mode == "reflect" else ("border",)
    return inner


def jitter(d: int) -> Transform:
    """Random crop that removes ``d`` pixels in total from each dimension (a shift of 0..d)."""
    def warp(size, generator=None):
        if d <= 0:
            return _affine(), tuple(size)
        dx = int(torch.randint(d + 1, (1,), generator=generator))
        dy = int(torch.randint(d + 1, (1,), generator=generator))
        return _affine(tx=dx, ty=dy), (size[0] - d, size[1] - d)

    def inner(x, generator=None):
        if d <= 0:
            return x
        m, _ = warp(x.shape[-2:], generator)
        dx, dy = int(m[0, 2]), int(m[1, 2])
        h, w = x.shape[-2:]
        return x[..., dy:h - d + dy, dx:w - d + dx]

    inner.__name__ = f"jitter({d})"
    inner.warp, inner.resamples = warp, False
    return inner


def _resampling(name: str, warp) -> Transform:
    def inner(x, generator=None):
        m, size = warp(tuple(x.shape[-2:]), generator)
        if tuple(size) == tuple(x.shape[-2:]) and np.allclose(m, np.eye(3)):
            return x
        return warp_sample(x, m, size)

    inner.__name__ = name
    inner.warp, inner.resamples = warp, True
    return inner


def random_scale(scales: Sequence[float]) -> Transform:
    """Resize by a factor drawn from ``scales`` (bilinear)."""
    def warp(size, generator=None):
        s = float(_choice(scales, generator))
        h, w = size
        oh, ow = max(1, int(round(h * s))), max(1, int(round(w * s)))
        return _affine(w / ow, 0.0, 0.0, 0.0, h / oh, 0.0), (oh, ow)

    return _resampling("random_scale", warp)


def random_rotate(angles: Sequence[float], units: str = "degrees") -> Transform:
    """Rotate about the center by an angle drawn from ``angles`` (bilinear, border padding)."""
    def warp(size, generator=None):
        a = float(_choice(angles, generator))
        rad = math.radians(a) if units == "degrees" else a
        c, s = math.cos(rad), math.sin(rad)
        cy, cx = size[0] / 2.0, size[1] / 2.0
        return _affine(c, -s, cx - c * cx + s * cy, s, c, cy - s * cx - c * cy), tuple(size)

    return _resampling("random_rotate", warp)


def resize(size: Sequence[int]) -> Transform:
    """Resize to a fixed (H, W) (models that only accept their input size)."""
    target = tuple(int(v) for v in size)

    def warp(cur, generator=None):
        h, w = cur
        return _affine(w / target[1], 0.0, 0.0, 0.0, h / target[0], 0.0), target

    return _resampling(f"resize({target})", warp)


def _run(x: torch.Tensor, run: list, generator) -> torch.Tensor:
    """A run of geometric transforms: one resample when any of them resamples, else applied as is."""
    if len(run) == 1 or not any(t.resamples for t in run):
        for t in run:
            x = t(x, generator)
        return x
    matrix, size, fill = _affine(), tuple(x.shape[-2:]), None
    for t in run:
        m, size = t.warp(size, generator)
        matrix = matrix @ m
        fill = fill or getattr(t, "fill", None)
    return warp_sample(x, matrix, size, fill or ("border",))


def compose(transforms: Sequence[Transform]) -> Transform:
    """Apply ``transforms`` in order, threading the generator through; a run of geometric ones is
    sampled once (see the module docstring). A nested compose is flattened into this one."""
    flat = []
    for t in transforms:
        nested = getattr(t, "transforms", None) if getattr(t, "__name__", "") == "compose" else None
        flat.extend(nested if nested is not None else [t])

    def inner(x, generator=None):
        i = 0
        while i < len(flat):
            j = i
            while j < len(flat) and hasattr(flat[j], "warp"):
                j += 1
            if j == i:
                x, j = flat[i](x, generator), i + 1
            else:
                x = _run(x, flat[i:j], generator)
            i = j
        return x

    inner.__name__ = "compose"
    inner.transforms = flat
    return inner


def standard(scale: float = 1.0) -> list:
    """Lucid's standard transforms (pad 12, jitter 8, scale +-10 %, rotate +-10 deg, jitter 4).

    ``scale`` multiplies the pixel amounts (e.g. size / 224), keeping at least one pixel.
    """
    px = lambda v: max(1, int(round(v * scale)))  # noqa: E731
    return [
        pad(px(12), mode="constant", value=0.5),
        jitter(px(8)),
        random_scale([1 + (i - 5) / 50.0 for i in range(11)]),
        random_rotate(list(range(-10, 11)) + 5 * [0]),
        jitter(px(4)),
    ]


def light(scale: float = 1.0) -> list:
    """Jitter only (DeepDream and caricature start from a photo and keep its geometry)."""
    px = lambda v: max(1, int(round(v * scale)))  # noqa: E731
    return [pad(px(8), mode="reflect"), jitter(px(8)), jitter(px(4))]


def for_size(size: Sequence[int]) -> list:
    """The standard set scaled for images of ``size`` (H, W)."""
    return standard(min(size) / 224.0)
