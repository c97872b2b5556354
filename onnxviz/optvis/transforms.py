"""Random image transforms applied before every step (robustness against adversarial noise).

Each transform is a small callable ``t(images, generator) -> images`` on (N, 3, H, W) tensors;
random draws come from the explicit ``torch.Generator`` (CPU), never from global state, so a seed
reproduces a render. One draw is shared by the whole batch (as in Lucid), so a batch of units sees
the same transforms. ``compose`` chains them; ``standard(scale)`` is Lucid's standard set, with
pixel amounts scaled for images smaller or larger than 224 px.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Sequence

import torch
import torch.nn.functional as F

Transform = Callable[[torch.Tensor, Optional[torch.Generator]], torch.Tensor]


def _choice(options: Sequence, generator: Optional[torch.Generator]):
    return options[int(torch.randint(len(options), (1,), generator=generator))]


def pad(w: int, mode: str = "constant", value: float = 0.5) -> Transform:
    """Pad every side by ``w`` pixels (constant ``value``, or "reflect"/"replicate")."""
    def inner(x, generator=None):
        if w <= 0:
            return x
        if mode == "constant":
            return F.pad(x, [w] * 4, mode="constant", value=value)
        return F.pad(x, [w] * 4, mode=mode)

    inner.__name__ = f"pad({w})"
    return inner


def jitter(d: int) -> Transform:
    """Random crop that removes ``d`` pixels in total from each dimension (a shift of 0..d)."""
    def inner(x, generator=None):
        if d <= 0:
            return x
        dx = int(torch.randint(d + 1, (1,), generator=generator))
        dy = int(torch.randint(d + 1, (1,), generator=generator))
        h, w = x.shape[-2:]
        return x[..., dy:h - d + dy, dx:w - d + dx]

    inner.__name__ = f"jitter({d})"
    return inner


def random_scale(scales: Sequence[float]) -> Transform:
    """Resize by a factor drawn from ``scales`` (bilinear)."""
    def inner(x, generator=None):
        s = float(_choice(scales, generator))
        if s == 1.0:
            return x
        h, w = x.shape[-2:]
        size = (max(1, int(round(h * s))), max(1, int(round(w * s))))
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    inner.__name__ = "random_scale"
    return inner


def random_rotate(angles: Sequence[float], units: str = "degrees") -> Transform:
    """Rotate about the center by an angle drawn from ``angles`` (bilinear, border padding)."""
    def inner(x, generator=None):
        a = float(_choice(angles, generator))
        if a == 0:
            return x
        rad = math.radians(a) if units == "degrees" else a
        c, s = math.cos(rad), math.sin(rad)
        theta = x.new_tensor([[c, -s, 0.0], [s, c, 0.0]]).unsqueeze(0).expand(x.shape[0], -1, -1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    inner.__name__ = "random_rotate"
    return inner


def resize(size: Sequence[int]) -> Transform:
    """Resize to a fixed (H, W) (models that only accept their input size)."""
    size = tuple(int(v) for v in size)

    def inner(x, generator=None):
        if tuple(x.shape[-2:]) == size:
            return x
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    inner.__name__ = f"resize({size})"
    return inner


def compose(transforms: Sequence[Transform]) -> Transform:
    """Apply ``transforms`` in order, threading the generator through."""
    transforms = list(transforms)

    def inner(x, generator=None):
        for t in transforms:
            x = t(x, generator)
        return x

    inner.__name__ = "compose"
    inner.transforms = transforms
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
