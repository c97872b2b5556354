"""What every attribution method shares: the target, the torch forward pass, photos in, NCHW out.

A *target* is a scalar per image that attribution explains: a class logit, a unit (a channel's
spatial mean), or a direction in a layer's activation space. Targets are optvis objectives
(``Objective``: ``f(T) -> (N,)``), so anything that can be rendered can be attributed too.

Everything works in *image space*: an onnxviz image is (N, 3, H, W) RGB in [0, 1], and the
model's own preprocessing (range, mean/std, BGR, grayscale, NHWC) is applied differentiably in
between (``ModelMeta.to_model_input``), so an attribution map is laid over the photo as the person
sees it, whatever the file's layout or channel order.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import torch

from ..errors import ObjectiveError
from ..optvis import objectives as obj
from ..optvis.objectives import Objective
from ..optvis.render import Activations, make_view, nchw


def resolve_device(device) -> torch.device:
    """The torch device to use: the one given, else CUDA when torch sees it, else the CPU."""
    if device is None:
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    return torch.device(device)


def output_layer(model):
    """The classifier output layer (N, classes): the last (N, C) layer, preferring one that matches
    the labels; None for models without one."""
    flat = [lay for lay in model.layers if lay.layout == "NC"]
    labels = model.meta.labels
    if labels:
        match = [lay for lay in flat if lay.units == len(labels)]
        if match:
            flat = match
    return flat[-1] if flat else None


def parse_target(model, spec: Union[str, Objective], kind: Optional[str] = None) -> Objective:
    """A target objective from ``"layer:unit"`` (or an Objective as is).

    ``kind``: "logit" (class logit), "channel" (a unit's spatial mean), "neuron" (its center), or
    None: a class logit when the layer is (N, C), a channel otherwise. A bare integer ``"207"``
    means that class of the model's output layer.
    """
    if isinstance(spec, Objective):
        return spec
    spec = str(spec).strip()
    if spec.isdigit():
        out = output_layer(model)
        if out is None:
            raise ObjectiveError(f"target {spec!r}: this model has no (N, classes) output; write 'layer:unit'")
        spec = f"{out.name}:{spec}"
    if ":" not in spec:
        raise ObjectiveError(f"target {spec!r} needs a unit: write 'layer:unit', e.g. 'logits:207' or 'block_7:12'")
    name = spec.rpartition(":")[0]
    lay = model.layer(name)
    if kind is None:
        kind = "logit" if lay.layout == "NC" else "channel"
    target = obj.parse(spec, kind)
    target.check(model)
    return target


def direction_target(layer: str, vec) -> Objective:
    """A direction in ``layer``'s activation space (C,) as a target: mean over positions of a . vec."""
    return obj.direction(layer, np.asarray(vec, np.float32))


class Forward:
    """A truncated torch view for some layers, called on images in [0, 1] (the model's preprocessing inside).

    ``forward(images) -> Activations`` where ``T(name)`` is NCHW (or NC) whatever the layer's layout;
    ``forward.raw(T, name)`` is the tensor the view computed (the model's own layout), the one to
    take gradients with respect to.
    """

    def __init__(self, model, layers: Sequence[str], device=None, view=None):
        self.model = model
        self.device = resolve_device(device)
        infos = {name: model.layer(name) for name in dict.fromkeys(layers)}
        self.keys = {name: info.name for name, info in infos.items()}
        self.layouts = {name: info.layout for name, info in infos.items()}
        self.infos = infos
        self.view = view if view is not None else make_view(model, list(infos), self.device)
        self.view.eval()

    def __call__(self, images: torch.Tensor) -> Activations:
        x = self.model.meta.to_model_input(images)
        return Activations(self.view(x), images, self.keys, self.layouts)

    def raw(self, T: Activations, name: str) -> torch.Tensor:
        return T._acts[self.keys[name]]


def as_images(model, photos) -> np.ndarray:
    """Paths, one path, a (3, H, W) or an (N, 3, H, W) array -> images (N, 3, H, W) at the model's size."""
    if isinstance(photos, np.ndarray):
        arr = photos.astype(np.float32)
        return arr[None] if arr.ndim == 3 else arr
    if isinstance(photos, (str, bytes)) or hasattr(photos, "__fspath__"):
        photos = [photos]
    return model.load_images(list(photos))


to_nchw = nchw  # (N, H, W, C) -> (N, C, H, W) for NHWC layers, else unchanged
