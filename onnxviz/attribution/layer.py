"""Attribution at a layer: which positions (spatial) and which channels of layer L drive a target.

Both come from one backward pass: ``attr = a * d target / d a`` at layer L (activation times
gradient, the Building Blocks of Interpretability's attribution), an (N, C, H, W) array.

- spatial attribution: ``attr.sum(channels)`` -> (N, H, W): where in the photo L's evidence is;
- channel attribution: ``attr.sum(positions)`` -> (N, C): which of L's channels, summed over the
  photo, push the target up (positive) or down (negative). ``building_blocks`` renders the top
  channels' feature visualizations next to their attribution.

For a target that is linear in L (a logit right after global pooling and a linear layer) the
channel attributions sum to target - bias exactly; elsewhere they are the first-order terms.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from ..errors import ObjectiveError
from ..optvis.forward import Forward, as_images, nchw
from .core import parse_target


@dataclass
class LayerAttribution:
    """``attr``: (N, C, H, W) (or (N, C)) activation x gradient at ``layer``; ``acts``: the activations,
    same shape, NCHW; ``images``: the photos; ``record``: target, layer, values."""

    layer: str
    attr: np.ndarray
    acts: np.ndarray
    images: np.ndarray
    record: dict = field(default_factory=dict)

    @property
    def spatial(self) -> Optional[np.ndarray]:
        """(N, H, W): summed over channels (None for an (N, C) layer)."""
        return self.attr.sum(1) if self.attr.ndim == 4 else None

    @property
    def channels(self) -> np.ndarray:
        """(N, C): summed over positions."""
        return self.attr.reshape(self.attr.shape[0], self.attr.shape[1], -1).sum(2)

    def picture(self, k: int = 3):
        """Per photo: where in it ``layer``'s evidence lies (spatial map over the photo), captioned with
        its top ``k`` channels; PIL image, None for a layer without positions."""
        if self.spatial is None:
            return None
        from ..display import MAX_PICTURES
        from .pictures import heat_overlay, strip

        n = min(len(self.images), MAX_PICTURES)
        caps = [f"{self.layer}\ntop ch " + ", ".join(str(u) for u, _ in self.top_channels(i, k)) for i in range(n)]
        return strip([heat_overlay(self.images[i], self.spatial[i]) for i in range(n)], caps,
                     cell=max(128, min(224, self.images.shape[-1])))

    def _repr_png_(self):
        from ..display import png

        pic = self.picture()
        return None if pic is None else png(pic)

    def top_channels(self, i: int = 0, k: int = 8, sign: int = 1) -> list:
        """[(channel, attribution)] of image i, the k largest (sign=1) or most negative (sign=-1)."""
        c = self.channels[i] * sign
        order = np.argsort(-c, kind="stable")[:k]
        return [(int(u), float(self.channels[i, u])) for u in order]


def layer_attribution(model, photos, target, layer: str, device=None, view=None) -> LayerAttribution:
    """Activation x gradient of ``target`` at ``layer`` for each photo (one forward + backward).

    ``target`` must come after ``layer`` in the model ("logits:207", "block_12:3", an Objective).
    """
    target = parse_target(model, target)
    info = model.layer(layer)
    fwd = Forward(model, [layer, *target.layers], device, view)
    images = as_images(model, photos)
    deepest = max(model.layer(n).index for n in target.layers)
    if deepest < info.index:
        raise ObjectiveError(f"target {target.name} is computed before layer {info.name!r}: pick a layer that "
                             "comes before the target's layer")
    x = torch.from_numpy(images).to(fwd.device).requires_grad_(True)  # so the graph records L's activation
    T = fwd(x)
    raw = fwd.raw(T, layer)
    values = target(T)
    (grad,) = torch.autograd.grad(values.sum(), raw, allow_unused=True)
    if grad is None:
        raise ObjectiveError(f"target {target.name} does not depend on layer {info.name!r}")
    acts = nchw(raw.detach(), info.layout)
    attr = acts * nchw(grad.detach(), info.layout)
    record = {"method": "activation_x_gradient", "target": target.name, "layer": info.name,
              "value": values.detach().float().cpu().tolist(),
              "channel_sum": attr.reshape(attr.shape[0], -1).sum(1).float().cpu().tolist()}
    return LayerAttribution(info.name, attr.float().cpu().numpy(), acts.float().cpu().numpy(), images, record)


def building_blocks(model, photo, target, layer: str, k: int = 6, steps: int = 128, size: int = 96,
                    seed: int = 0, batch: int = 8, device=None, progress: bool = False) -> dict:
    """The Building Blocks view of one photo: the top-k channels of ``layer`` by attribution to
    ``target``, each with its feature visualization (rendered in one batch) and its spatial map.

    Returns {"attribution": LayerAttribution, "channels": [{"channel", "attribution", "map" (H, W),
    "image" (3, size, size)}], "record": render record}.
    """
    from ..optvis.recipes import render_layer

    la = layer_attribution(model, photo, target, layer, device=device)
    top = la.top_channels(0, k)
    units = [u for u, _ in top]
    images, record = {}, {}
    for chunk, result in render_layer(model, la.layer, units, batch_size=batch, steps=steps, size=size, seed=seed,
                                      device=device, progress=progress):
        for u, img in zip(chunk, result.images):
            images[u] = img
        record = result.record
    channels = [{"channel": u, "attribution": a, "map": la.attr[0, u] if la.attr.ndim == 4 else None,
                 "image": images[u]} for u, a in top]
    return {"attribution": la, "channels": channels,
            "record": {k2: record.get(k2) for k2 in ("steps", "size", "seed", "param", "transforms")}}
