"""Input attribution: which pixels of a photo drive a target (gradient x input, integrated gradients).

Both work in image space (RGB in [0, 1], the model's preprocessing inside the gradient), so the
maps lie over the photo as a person sees it.

- ``gradient_x_input``: (x - baseline) * d target / dx, one backward pass. A first-order estimate.
- ``integrated_gradients`` (Sundararajan et al. 2017): (x - baseline) times the gradient averaged
  along the straight path from the baseline to x (trapezoid rule). Its defining property,
  *completeness*, is checked on every call: the attributions sum to target(x) - target(baseline).
  With ``tolerance`` the number of steps doubles until the relative gap is below it (or
  ``max_steps`` is reached; the record says which).
- ``smooth=n``: SmoothGrad-style smoothing: the average over n copies of the photo with Gaussian
  noise (sd ``noise``, in [0, 1] pixel units), drawn from a ``torch.Generator`` seeded with ``seed``.
  Completeness then holds against the mean target of the noisy copies, and is checked that way.

Baseline: a blurred copy of the photo by default (keeps colors, removes shapes; on MobileNetV2 its
true-class attributions point at the evidence more often than a black baseline's: see
scripts/eval_attribution.py and docs/attribution.md), or "black", "gray", a number or an array.

Returns :class:`InputAttribution`: ``maps`` (N, 3, H, W) per pixel and color, ``heat`` (N, H, W)
summed over colors, the target's values and the completeness record.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np
import torch

from ..optvis.forward import Forward, as_images
from .core import parse_target


@dataclass
class InputAttribution:
    """``maps``: (N, 3, H, W) float32; ``heat``: (N, H, W) (sum over colors); ``images``: the photos
    (N, 3, H, W) in [0, 1]; ``record``: method, target, values, completeness per image."""

    maps: np.ndarray
    images: np.ndarray
    record: dict = field(default_factory=dict)

    @property
    def heat(self) -> np.ndarray:
        return self.maps.sum(1)

    def picture(self):
        """Each photo next to its heat map over it (red: for the target, blue: against); PIL image."""
        from ..display import MAX_PICTURES
        from .pictures import heat_overlay, strip

        pics, caps = [], []
        for i in range(min(len(self.images), MAX_PICTURES // 2)):
            pics += [self.images[i], heat_overlay(self.images[i], self.heat[i])]
            caps += ["photo", f"{self.record.get('method', '')}\n{self.record.get('target', '')}"]
        return strip(pics, caps, cell=max(128, min(224, self.images.shape[-1])))

    def _repr_png_(self) -> bytes:
        from ..display import png

        return png(self.picture())


def _baseline(images: torch.Tensor, baseline) -> torch.Tensor:
    if isinstance(baseline, str):
        if baseline == "black":
            return torch.zeros_like(images)
        if baseline == "gray":
            return torch.full_like(images, 0.5)
        if baseline == "blur":  # a heavily blurred copy: keeps the colors, removes the shapes
            k = max(3, (min(images.shape[-2:]) // 8) | 1)
            pooled = torch.nn.functional.avg_pool2d(images, k, stride=1, padding=k // 2, count_include_pad=False)
            return pooled.detach()
        raise ValueError(f"baseline must be 'black', 'gray', 'blur', a number or an array, got {baseline!r}")
    b = torch.as_tensor(np.asarray(baseline, np.float32), device=images.device)
    return b.expand_as(images).clone() if b.dim() < images.dim() or b.shape[0] == 1 else b


def _values_and_grads(fwd: Forward, target, x: torch.Tensor) -> tuple:
    x = x.detach().requires_grad_(True)
    values = target(fwd(x))
    (grad,) = torch.autograd.grad(values.sum(), x)
    return values.detach(), grad.detach()


def _values(fwd: Forward, target, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return target(fwd(x)).detach()


def gradient_x_input(model, photos, target, baseline="blur", device=None, view=None) -> InputAttribution:
    """(x - baseline) * gradient of ``target`` at x, per pixel and color. One batch, one backward."""
    target = parse_target(model, target)
    fwd = Forward(model, target.layers, device, view)
    images = as_images(model, photos)
    x = torch.from_numpy(images).to(fwd.device)
    b = _baseline(x, baseline)
    values, grad = _values_and_grads(fwd, target, x)
    maps = ((x - b) * grad).float().cpu().numpy()
    record = {"method": "gradient_x_input", "target": target.name, "baseline": _baseline_name(baseline),
              "value": values.float().cpu().tolist()}
    return InputAttribution(maps, images, record)


def _ig_once(fwd: Forward, target, x: torch.Tensor, b: torch.Tensor, steps: int, batch: int) -> torch.Tensor:
    """Trapezoid-rule IG of one image x (1, 3, H, W) from b: (1, 3, H, W)."""
    alphas = torch.linspace(0.0, 1.0, steps + 1, device=x.device, dtype=x.dtype)
    weights = torch.full((steps + 1,), 1.0 / steps, device=x.device, dtype=x.dtype)
    weights[0] = weights[-1] = 0.5 / steps
    total = torch.zeros_like(x)
    for start in range(0, steps + 1, batch):
        a = alphas[start:start + batch].view(-1, 1, 1, 1)
        path = b + a * (x - b)
        _, grad = _values_and_grads(fwd, target, path)
        total += (grad * weights[start:start + batch].view(-1, 1, 1, 1)).sum(0, keepdim=True)
    return (x - b) * total


def integrated_gradients(model, photos, target, baseline="blur", steps: int = 32, tolerance: Optional[float] = 0.01,
                         max_steps: int = 512, smooth: int = 0, noise: float = 0.1, seed: int = 0,
                         batch: int = 16, device=None, view=None) -> InputAttribution:
    """Integrated gradients of ``target`` for each photo, with completeness checked (see the module doc).

    photos: paths or images (N, 3, H, W) in [0, 1]; target: "layer:unit" / class index / Objective;
    baseline: "blur" (default), "black", "gray", a number or an array; steps: trapezoid intervals
    (doubled up to ``max_steps`` while the completeness gap exceeds ``tolerance``; None: never);
    smooth: number of noisy copies averaged (0: none); batch: path points per backward pass.
    """
    target = parse_target(model, target)
    fwd = Forward(model, target.layers, device, view)
    images = as_images(model, photos)
    xs = torch.from_numpy(images).to(fwd.device)
    generator = torch.Generator().manual_seed(int(seed))
    maps, per_image = [], []
    for i in range(len(xs)):
        x0 = xs[i:i + 1]
        b = _baseline(x0, baseline)
        copies = [x0] if smooth <= 0 else [
            x0 + noise * torch.randn(x0.shape, generator=generator).to(x0.device) for _ in range(smooth)]
        n_steps = int(steps)
        while True:
            attr = torch.zeros_like(x0)
            gap_target = 0.0
            for c in copies:
                attr += _ig_once(fwd, target, c, b, n_steps, batch) / len(copies)
                gap_target += float(_values(fwd, target, c) - _values(fwd, target, b)) / len(copies)
            total = float(attr.sum())
            rel = abs(total - gap_target) / max(abs(gap_target), 1e-6)
            if tolerance is None or rel <= tolerance or n_steps * 2 > max_steps:
                break
            n_steps *= 2
        value = float(_values(fwd, target, x0))
        maps.append(attr.float().cpu().numpy()[0])
        per_image.append({"value": value, "baseline_value": float(_values(fwd, target, b)),
                          "target_difference": gap_target, "attribution_sum": total,
                          "completeness_error": rel, "steps": n_steps,
                          "complete": tolerance is None or rel <= tolerance})
    record = {"method": "integrated_gradients" + ("+smoothgrad" if smooth > 0 else ""), "target": target.name,
              "baseline": _baseline_name(baseline), "tolerance": tolerance, "max_steps": max_steps,
              "smooth": int(smooth), "noise": float(noise) if smooth > 0 else None, "seed": int(seed),
              "images": per_image,
              "completeness_note": "attribution_sum vs target_difference = target(x) - target(baseline) "
                                   "(with smoothing: averaged over the noisy copies); completeness_error is "
                                   "|sum - difference| / |difference|"}
    return InputAttribution(np.stack(maps), images, record)


def _baseline_name(baseline) -> Union[str, float]:
    if isinstance(baseline, str):
        return baseline
    if np.isscalar(baseline):
        return float(baseline)
    return "array"
