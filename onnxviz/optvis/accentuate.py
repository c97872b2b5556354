"""Feature accentuation (Hamblin et al. 2024): what a unit sees *in a real photo*.

Start from the photo (its Fourier parameterization, so image_f() is the photo before the first
step), raise the unit, and keep the image close to the photo *in the model's own earlier
features*: the penalty is the relative squared distance between the image's activations at an
earlier layer and the photo's,

    maximize  unit(x) - weight * scale * ||f(x) - f(photo)||^2 / ||f(photo)||^2

``scale`` puts the penalty in the unit's own units (the largest |activation| of the unit on its
photos, at least 1), so one ``weight`` suits every layer. Several units in one batch (image i
accentuates units[i]) each get their own scale, so a batch gives what one call per unit gives. Without the penalty (``weight=0``) the
ascent drifts away from the photo towards a feature visualization; with it, the photo stays
recognisable and the change shows where the unit's feature is in it. Batched over several photos,
seeded like every render.

    result = accentuate(model, "block_7:12", ["cat.jpg", "dog.jpg"], steps=128, seed=0)
    result.images            # (2, 3, H, W)
    result.record["feature_distance"], result.record["pixel_rmse"]   # how far each image went
"""
from __future__ import annotations

from typing import Optional

import torch

from ..errors import ObjectiveError
from . import objectives as obj
from . import param as param_mod
from .forward import Forward, as_images
from .render import RenderResult, render

LR = 0.02  # like DeepDream: small steps from a photo


def default_reg_layer(model, layer: str) -> str:
    """An earlier spatial layer feeding ``layer``: the one about halfway down the layer list before it."""
    names = [lay.name for lay in model.layers]
    target = model.layer(layer).name
    idx = names.index(target)
    spatial = [n for n in names[:idx] if len(model.layer(n).shape or ()) == 4]
    if not spatial:
        raise ObjectiveError(f"layer {target!r} has no earlier spatial layer to regularize in; pass reg_layer")
    return spatial[len(spatial) // 2]


def feature_distance(reg_layer: str, target: torch.Tensor, scale: Optional[torch.Tensor] = None) -> obj.Objective:
    """Per image, ||T(reg_layer) - target||^2 / ||target||^2 (target: the photos' activations), times
    ``scale`` (N,) when given."""
    norm = target.flatten(1).pow(2).sum(1).clamp_min(1e-12)
    if scale is not None:
        norm = norm / scale.to(norm.device, norm.dtype)

    def inner(T):
        a = T(reg_layer)
        t = target.to(a.device)
        return (a - t).flatten(1).pow(2).sum(1) / norm.to(a.device)

    return obj.Objective(inner, f"feature_distance({reg_layer!r})", [reg_layer])


def accentuate(model, objective, photos, reg_layer: Optional[str] = None, weight: float = 1.0, steps: int = 128,
               lr: float = LR, seed: int = 0, device=None, transforms="none", progress: bool = False,
               **kwargs) -> RenderResult:
    """Accentuate ``objective`` (an Objective or "layer:unit") in each photo, one batch.

    ``photos``: paths or an array (N, 3, H, W) in [0, 1] (at the model's input size). ``reg_layer``:
    where to stay close to the photo (default ``default_reg_layer``). ``weight``: the penalty's
    strength (0: unregularized ascent from the photo). A unit objective with one unit per photo
    (``channel(layer, [u0, u0, u1, ...])``) accentuates several units in one batch. Returns the
    RenderResult with ``record["accentuation"]``: reg layer, weight, and per image ``scale``,
    ``feature_distance`` (the relative distance at the reg layer), ``pixel_rmse`` to the photo and
    ``activation_photo`` (the unit on the photo before the ascent).
    """
    objective = obj.as_objective(objective)
    objective.check(model)
    if objective.layer is None:
        raise ObjectiveError(f"accentuation needs a unit objective ('layer:unit'), got {objective.name}")
    arr = as_images(model, photos)
    n = arr.shape[0]
    if isinstance(objective.unit, (list, tuple)) and len(objective.unit) != n:
        raise ObjectiveError(f"{len(objective.unit)} units for {n} photos")
    reg_layer = model.layer(reg_layer).name if reg_layer else default_reg_layer(model, objective.layer)
    # channels last as render() runs it: the same weights layout for the targets and the ascent
    fwd = Forward(model, [objective.layer, reg_layer], device, channels_last=True)
    dev = fwd.device
    photo_t = torch.from_numpy(arr).to(dev)
    with torch.no_grad():
        on_photo = fwd(photo_t)  # the photos' activations
        start_values = objective(on_photo).float().cpu()
        target = on_photo(reg_layer).detach()
    unit_of = list(objective.unit) if isinstance(objective.unit, (list, tuple)) else [objective.unit] * n
    size_of = {u: max(1.0, float(start_values[[j for j in range(n) if unit_of[j] == u]].abs().max()))
               for u in set(unit_of)}
    scale = torch.tensor([size_of[u] for u in unit_of], dtype=torch.float32)
    regs = list(kwargs.pop("regularizers", ()))
    if weight > 0:
        regs.append(-weight * feature_distance(reg_layer, target, scale))
    gray = model.meta.channel_order == "L"

    def param_f(generator, d):
        return param_mod.from_photo(arr, grayscale=gray, device=d)

    param_f.__name__ = "fft from photo, decorrelated color"
    result = render(model, objective, param_f=param_f, steps=steps, lr=lr, seed=seed, device=dev, batch=n,
                    size=tuple(arr.shape[-2:]), transforms=transforms, regularizers=regs, progress=progress,
                    view=fwd.view, **kwargs)
    out_t = torch.from_numpy(result.images).to(dev)
    dist = feature_distance(reg_layer, target)
    with torch.no_grad():
        distance = dist(fwd(out_t)).cpu()
    start_img = param_f(None, dev)[1]().detach()  # the photo as the parameterization sees it (clipped)
    result.record["accentuation"] = {
        "reg_layer": reg_layer,
        "weight": weight,
        "scale": [round(float(v), 6) for v in scale],
        "feature_distance": [round(float(v), 6) for v in distance],
        "pixel_rmse": [round(float(v), 6) for v in (out_t - start_img).pow(2).flatten(1).mean(1).sqrt().cpu()],
        "activation_photo": [round(float(v), 6) for v in start_values],
    }
    return result


def top_example_photos(results, layer: str, unit: int, k: int = 4) -> list:
    """Paths of the ``k`` top dataset examples of a unit from a mining run (onnxviz.mining.Results)."""
    return [ex.image for ex in results.examples(layer, unit, direction="top", k=k)]


__all__ = ["accentuate", "default_reg_layer", "feature_distance", "top_example_photos", "LR"]
