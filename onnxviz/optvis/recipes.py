"""Recipes built on ``render``: DeepDream, caricature, every channel of a layer, diverse images.

Each returns RenderResult(s); none adds machinery of its own (Lucid keeps recipes apart the same way).
"""
from __future__ import annotations

from typing import Iterator, Optional, Sequence

import numpy as np
import torch

from ..preprocessing.images import load_for_model
from . import objectives as obj
from . import param as param_mod
from . import transforms as tr
from .forward import Forward, make_view, resolve_device
from .render import RenderResult, render


def _photo(model, image) -> np.ndarray:
    """A path (or (3, H, W) array) -> an onnxviz image at the model's input size (ImageError if unreadable)."""
    if isinstance(image, np.ndarray):
        return image.astype(np.float32)
    return load_for_model(image, model.meta)


def deepdream(model, layer: str, image, steps: int = 128, lr: float = 0.02, seed: int = 0, device=None,
              **kwargs) -> RenderResult:
    """DeepDream: start from a photo and amplify whatever ``layer`` sees in it (mean square of the layer)."""
    photo = _photo(model, image)
    gray = model.meta.channel_order == "L"

    def param_f(generator, dev):
        return param_mod.from_photo(photo, grayscale=gray, device=dev)

    size = tuple(photo.shape[-2:])
    kwargs.setdefault("transforms", tr.light(min(size) / 224.0))
    return render(model, obj.layer(layer), param_f=param_f, steps=steps, lr=lr, seed=seed, device=device,
                  size=size, **kwargs)


def caricature(model, layer: str, image, steps: int = 256, cossim_pow: float = 1.0, seed: int = 0,
               device=None, **kwargs) -> RenderResult:
    """Caricature (Lucid's feature inversion): a new image whose ``layer`` activations point the same
    way as the photo's, exaggerated (dot product times cosine ** cossim_pow), from random noise."""
    photo = _photo(model, image)
    fwd = Forward(model, [layer], device, view=kwargs.pop("view", None))
    dev, view = fwd.device, fwd.view
    with torch.no_grad():
        target = fwd(torch.from_numpy(photo[None]).to(dev))(layer).detach()
    objective = obj.dot_compare(layer, target, cossim_pow=cossim_pow)
    regs = list(kwargs.pop("regularizers", ())) + [obj.blur_input_each_step()]
    size = tuple(photo.shape[-2:])
    scale = min(size) / 224.0
    px = lambda v: max(1, int(round(v * scale)))  # noqa: E731
    kwargs.setdefault("transforms", [tr.pad(px(8)), tr.jitter(px(8)), tr.random_scale([0.9, 0.95, 1.05, 1.1] + [1] * 4),
                                     tr.random_rotate(list(range(-5, 5)) + [0] * 5), tr.jitter(px(2))])
    kwargs.setdefault("fit_input", True)  # the comparison is position by position: same size as the photo
    return render(model, objective, steps=steps, seed=seed, device=dev, size=size, regularizers=regs,
                  view=view, **kwargs)


def render_layer(model, layer: str, units: Optional[Sequence[int]] = None, batch_size: int = 16,
                 neuron: bool = False, device=None, **kwargs) -> Iterator[tuple]:
    """Every channel (or ``units``) of ``layer``, ``batch_size`` at a time in one batch each.

    Yields (units of the batch, RenderResult) with image i maximizing units[i]. One torch view is
    built and reused for all batches.
    """
    dev = resolve_device(device)
    info = model.layer(layer)
    if units is None:
        if info.units is None:
            raise ValueError(f"cannot tell how many units layer {layer!r} has; pass units=")
        units = range(info.units)
    units = [int(u) for u in units]
    view = kwargs.pop("view", None) or make_view(model, [layer], dev)
    make = obj.neuron if neuron else obj.channel
    for i in range(0, len(units), batch_size):
        chunk = units[i:i + batch_size]
        yield chunk, render(model, make(layer, chunk), device=dev, view=view, **kwargs)


def diverse(model, objective, n: int = 4, layer: Optional[str] = None, weight: Optional[float] = None,
            device=None, **kwargs) -> RenderResult:
    """``n`` images that all maximize ``objective`` but differ from each other (Gram diversity).

    ``layer``: where diversity is measured (default: the objective's layer). ``weight``: of the
    diversity term (added as a regularizer, so the record holds the objective's own value); default
    10 * (|objective at the random start| + 1), to match the objective's scale.
    """
    objective = obj.as_objective(objective)
    layer = layer or objective.layer or objective.layers[-1]
    dev = resolve_device(device)
    view = kwargs.pop("view", None) or make_view(model, list(objective.layers) + [layer], dev)
    if weight is None:
        probe_kw = {k: v for k, v in kwargs.items() if k not in ("steps", "thresholds", "progress")}
        probe = render(model, objective, steps=1, batch=n, device=dev, view=view, **probe_kw)
        weight = 10.0 * (float(np.mean(np.abs(probe.record["activation_start"]))) + 1.0)
    regs = list(kwargs.pop("regularizers", ())) + [weight * obj.diversity(layer)]
    result = render(model, objective, batch=n, regularizers=regs, device=dev, view=view, **kwargs)
    result.record["kind"] = "diversity"
    result.record["diversity_weight"] = weight
    result.record["diversity_layer"] = layer
    return result
