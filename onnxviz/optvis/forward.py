"""The one image-space forward pass: images in [0, 1] -> the model's preprocessing -> a torch view -> NCHW.

Render, accentuation, the reliability check and every attribution method work on onnxviz images
(N, 3, H, W) RGB in [0, 1]; the model's own preprocessing (range, mean/std, BGR, grayscale, NHWC)
is applied differentiably in between (``ModelMeta.to_model_input``), and the activations come back
in the order objectives index (NCHW, NC, or a transformer's patch tokens as a map), whatever the
file's layout. It lives in optvis because objectives read its ``Activations``; attribution builds on
optvis objectives, so it imports this module and nothing here imports attribution.

    fwd = Forward(model, ["block_7", "logits"])       # device: CUDA when torch sees it, else the CPU
    T = fwd(images)                                     # T("block_7"): (N, C, H, W)
    fwd.raw(T, "block_7")                               # the tensor the view computed (its own layout)
    fwd.features(images)                                # {name: NCHW activation}, no gradient
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import ObjectiveError
from ..protocols import VisionModel


def resolve_device(device=None) -> torch.device:
    """The torch device to use: the one given, else CUDA when torch sees it, else the CPU."""
    if device is None:
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    return torch.device(device)


class Activations:
    """What objectives receive: ``T(layer)`` -> activation (NCHW or NC), ``T.image``, ``T.batch``."""

    def __init__(self, acts: dict, image: torch.Tensor, keys: dict, layouts: dict, infos: Optional[dict] = None):
        self._acts = acts
        self._infos = infos or {}
        self.image = image
        self.batch = image.shape[0]
        self._keys = keys
        self._layouts = layouts

    def __call__(self, name: str) -> torch.Tensor:
        key = self._keys.get(name, name)
        if key not in self._acts:
            raise ObjectiveError(f"layer {name!r} was not computed (objective layers: {sorted(self._keys)})")
        return nchw(self._acts[key], self._layouts.get(name, "NCHW"), self._infos.get(name))

    def tokens(self, name: str) -> torch.Tensor:
        """A token layer's every token, CLS included: (N, C, tokens)."""
        key = self._keys.get(name, name)
        act = self._acts[key]
        if act.dim() != 3:
            raise ObjectiveError(f"layer {name!r} is not a token layer (N, tokens, C); its shape is {tuple(act.shape)}")
        return act.transpose(1, 2)


def nchw(act: torch.Tensor, layout: str, info=None) -> torch.Tensor:
    """An activation in the NCHW order objectives index, whatever the layer's layout.

    Token layers (N, L, C) of a vision transformer whose patch grid is known become their patch
    tokens as a map (N, C, gh, gw): the CLS/distillation/register tokens are left out, so a
    channel is the mean over the image's patches and a neuron a patch. Without a grid: (N, C, L).
    """
    if layout == "NHWC" and act.dim() == 4:
        return act.permute(0, 3, 1, 2)
    if layout == "NLC" and act.dim() == 3:
        n, length, c = act.shape
        grid = getattr(info, "grid", None)
        prefix = getattr(info, "prefix_tokens", None) or 0
        if grid is not None:
            gh, gw = grid
            patches = length - prefix
            if patches != gh * gw:  # another input size: same aspect, same prefix
                side = int(round(patches ** 0.5))
                gh, gw = (side, side) if side * side == patches else (None, None)
            if gh:
                return act[:, prefix:].reshape(n, gh, gw, c).permute(0, 3, 1, 2)
        return act.transpose(1, 2)
    return act


def layer_info(model: VisionModel, names) -> tuple:
    """({name as asked: key in the view's output}, {name: layout}, {name: Layer})."""
    layers = {name: model.layer(name) for name in names}
    return ({n: lay.name for n, lay in layers.items()}, {n: lay.layout for n, lay in layers.items()}, layers)


def make_view(model: VisionModel, layers: Sequence[str], device) -> nn.Module:
    """``model.torch_view`` for the canonical names of ``layers`` on ``device``."""
    keys, _, _ = layer_info(model, layers)
    return model.torch_view(list(dict.fromkeys(keys[n] for n in layers)), device=device)


class Forward:
    """A truncated torch view for some layers, called on images in [0, 1] (the model's preprocessing inside).

    ``channels_last``: run an NCHW model's convolutions in channels-last memory order (faster on
    CPUs and GPUs alike; the same numbers up to float rounding); render and accentuation use it.
    ``view``: a view built before (``make_view``) to reuse across calls; it must compute ``layers``.
    """

    def __init__(self, model: VisionModel, layers: Sequence[str], device=None, view: Optional[nn.Module] = None,
                 channels_last: bool = False):
        self.model = model
        self.device = resolve_device(device)
        self.keys, self.layouts, self.infos = layer_info(model, list(dict.fromkeys(layers)))
        self.view = view if view is not None else make_view(model, list(self.keys), self.device)
        self.view.eval()
        self.channels_last = bool(channels_last) and model.meta.layout == "NCHW"
        if self.channels_last:
            self.view = self.view.to(memory_format=torch.channels_last)

    def __call__(self, images: torch.Tensor) -> Activations:
        x = self.model.meta.to_model_input(images)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return Activations(self.view(x), images, self.keys, self.layouts, self.infos)

    def raw(self, T: Activations, name: str) -> torch.Tensor:
        """The tensor the view computed for ``name`` (the model's own layout): the one to take gradients at."""
        return T._acts[self.keys[name]]

    def features(self, images: torch.Tensor, names: Optional[Sequence[str]] = None) -> dict:
        """{name: NCHW activation} of ``names`` (default: every layer of the view), without gradients."""
        with torch.no_grad():
            T = self(images)
            return {name: T(name).detach() for name in (names or self.keys)}


def as_images(model: VisionModel, photos) -> np.ndarray:
    """Paths, one path, a (3, H, W) or an (N, 3, H, W) array -> float32 images (N, 3, H, W) at the model's size."""
    if isinstance(photos, np.ndarray):
        arr = photos.astype(np.float32)
        return arr[None] if arr.ndim == 3 else arr
    if isinstance(photos, (str, bytes)) or hasattr(photos, "__fspath__"):
        photos = [photos]
    return np.asarray(model.load_images(list(photos)), dtype=np.float32)


__all__ = ["as_images", "Activations", "Forward", "layer_info", "make_view", "nchw", "resolve_device"]
