"""Gradient ascent on a parameterized image: ``render(model, objective, ...) -> RenderResult``.

The loop (Lucid's render_vis, without its global state):

    image = image_f()                         # (N, 3, H, W) RGB in [0, 1]
    x = transforms(image, generator)          # random pad/jitter/scale/rotate, seeded
    x = model.meta.to_model_input(x)          # the model's own preprocessing (never ImageNet by default)
    acts = view(x)                            # model.torch_view(objective.layers): truncated at the deepest layer
    loss = -(objective(acts) + regularizers)  # per image, summed over the batch
    loss.backward(); optimizer.step()

``model`` is an ``onnxviz.protocols.VisionModel`` (``onnxviz.Model`` is one): ``meta`` for the
preprocessing, ``layer(name)`` for layouts and unit counts, ``torch_view(names, device=...)`` for a
module that maps a model-input tensor to ``{layer name: activation}``.

Dead units: a unit whose every input position is below a ReLU gives no gradient and the image
would stay grey. For the first ``redirect_steps`` steps ReLU/ReLU6 gradients are *redirected*
(Lucid): an image whose gradient through a ReLU is all zero gets the gradient of the units that
would move back into range, and while an image's objective has not yet risen above its start (a
unit dead on the grey start, pushed toward zero but not across) this goes on, up to half the steps
(vk-captcha's 130x50 CRNN: a unit still at 0.0 after 16 steps rises with more); an objective layer
that is a PReLU with a negative slope (a V-shaped unit) gets the gradient of its steep side
(``optvis/redirect.py`` says why). Whatever remains dead is reported in the record (``dead``,
``warnings``), never returned silently.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from ..errors import ObjectiveError
from ..progress import bar as progress_bar
from ..protocols import VisionModel
from . import param as param_mod
from . import transforms as tr
from .forward import Forward, resolve_device
from .objectives import Objective, as_objective
from .redirect import output_modules, redirected_relus
from .render_size import default_size, rule_for


@dataclass
class RenderResult:
    """``images``: (N, 3, H, W) float32 RGB in [0, 1] after the last step; ``snapshots``: {step:
    images} at the thresholds; ``record``: settings and the objective's value per image at the
    start, the end (both on the untransformed image) and at every step (on the transformed image
    the step optimized)."""

    images: np.ndarray
    snapshots: dict = field(default_factory=dict)
    record: dict = field(default_factory=dict)
    importance: Optional[np.ndarray] = None  # (N, H, W): |d objective / d image| summed over steps (MACO)

    def picture(self):
        """The rendered images side by side (at most 16), each captioned with its unit and its activation
        at the start and the end (PIL image; what a notebook shows)."""
        from ..display import MAX_PICTURES, strip

        units = self.record.get("unit")
        units = units if isinstance(units, (list, tuple)) else [units] * len(self.images)
        start, end = self.record.get("activation_start") or [], self.record.get("activation_end") or []
        caps = [(f"{self.record.get('layer') or ''}:{u}" if u is not None else str(self.record.get("objective", "")))
                + (f"\n{start[i]:.3g} -> {end[i]:.3g}" if i < len(start) and i < len(end) else "")
                for i, u in enumerate(units[:len(self.images)])]
        n = min(len(self.images), MAX_PICTURES)
        return strip(list(self.images[:n]), caps[:n], cell=max(128, min(224, self.images.shape[-1])))

    def _repr_png_(self) -> bytes:
        from ..display import png

        return png(self.picture())


# ---------------------------------------------------------------------- helpers
def _unscale(params, img: torch.Tensor, scale: float) -> None:
    """Undo fp16's loss scale on the gradients; a step whose gradient overflowed is skipped (zero gradient)."""
    grads = [p.grad for p in params if p.grad is not None] + ([img.grad] if img.grad is not None else [])
    finite = all(bool(torch.isfinite(g).all()) for g in grads)
    for g in grads:
        if finite:
            g.div_(scale)
        else:
            g.zero_()


def _as_transform(transforms, size) -> Callable:
    if transforms is None or transforms == "standard":
        return tr.compose(tr.for_size(size))
    if transforms == "none" or transforms == ():
        return tr.compose([])
    if callable(transforms):
        return transforms
    return tr.compose(list(transforms))


def _transform_names(t) -> list:
    return [getattr(x, "__name__", type(x).__name__) for x in getattr(t, "transforms", [t])]


def _needs_fixed_size(model: VisionModel, layer_infos: dict) -> bool:
    """True when an objective layer has no spatial map (logits, pools) and the model has a fixed size."""
    if model.meta.dynamic_size:
        return False
    return any(info.shape is None or len(info.shape) <= 2 for info in layer_infos.values())


def _fed_size(model, size: tuple, layers: Sequence[str] = ()) -> Optional[tuple]:
    """The (H, W) every transformed image is resized to, or None when any size runs."""
    rule = rule_for(model, layers)
    if rule is None:
        return None
    if all(s is None for s in rule.stride):
        return tuple(rule.size)
    if any(s is None or s > 1 for s in rule.stride):
        return rule.fit(size)
    return None


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
FP16_LOSS_SCALE = 2.0 ** 12  # fp16 keeps 2^-24 at best: a channel mean's gradient per pixel can be smaller


def autocast(device: torch.device, precision: str):
    """The context a step's forward pass runs in: torch.autocast for "bf16"/"fp16", nothing for "fp32"."""
    if precision not in PRECISIONS:
        raise ObjectiveError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    if PRECISIONS[precision] is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=PRECISIONS[precision])


def _default_batch(objective: Objective) -> int:
    for _, unit in objective.units:
        if isinstance(unit, (list, tuple)):
            return len(unit)
    return 1


def render(model: VisionModel, objective, param_f=None, transforms=None, steps: int = 256,
           thresholds: Optional[Sequence[int]] = None, seed: int = 0, device=None, lr: float = 0.05,
           regularizers: Sequence[Objective] = (), batch: Optional[int] = None,
           size: Optional[Union[int, Sequence[int]]] = None, redirect_steps: int = 16,
           fit_input: Optional[bool] = None, channels_last: bool = True, progress: bool = False,
           view: Optional[nn.Module] = None, optimizer: Optional[Callable] = None,
           precision: str = "fp32") -> RenderResult:
    """Optimize images to maximize ``objective`` on ``model``.

    objective: an Objective or "layer:unit". param_f: None (the standard FFT, color-decorrelated
    image, grayscale for "L" models), a ``(params, image_f)`` pair, or a callable
    ``(generator, device) -> (params, image_f)``. transforms: None/"standard" (Lucid's set scaled to
    the size), "none", a list of transforms or one callable ``(x, generator) -> x``. size: int or
    (H, W), default the model's input size. fit_input: resize each transformed image to the
    model's input size (default: only for objectives on spatial-free layers of fixed-size models).
    thresholds: steps at which to keep a snapshot. seed: one CPU ``torch.Generator`` draws the
    initial image and every transform. regularizers: objectives on the image (l1, total_variation,
    blur) added to the loss but not to the recorded activation. precision: "fp32", or "bf16"/"fp16"
    (autocast of each step's forward pass on the device; the image, the optimizer and the recorded
    start and end activations stay float32; fp16 scales the loss by ``FP16_LOSS_SCALE`` so that small
    gradients do not vanish). channels_last: NCHW convolutions in channels-last memory order.
    docs/bench_render.md measures both against float32 (activation reached, speed).
    Returns RenderResult (images (N, 3, H, W) in [0, 1], snapshots, record).
    """
    objective = as_objective(objective)
    regularizers = [as_objective(r) for r in regularizers]
    if steps < 1:
        raise ObjectiveError(f"steps must be >= 1, got {steps}")
    objective.check(model)
    meta = model.meta
    device = resolve_device(device)
    autocast(device, precision)  # an unknown precision fails before any work
    if size is None:  # what the objective's receptive field needs (render_size.py)
        size, size_choice = default_size(model, objective.layers)
    else:
        size_choice = "given (--size)"
    if isinstance(size, int):
        size = (size, size)
    size = tuple(int(v) for v in size)
    rule = rule_for(model, objective.layers)
    if rule is not None and any(s is not None and s > 1 for s in rule.stride):
        size = rule.fit(size)  # a dynamic net with skip connections: multiples of its stride
    layer_names = list(dict.fromkeys(objective.layers + tuple(n for r in regularizers for n in r.layers)))
    if not layer_names:
        raise ObjectiveError(f"objective {objective.name} reads no layer of the model")
    fwd = Forward(model, layer_names, device, view=view, channels_last=channels_last)
    infos = fwd.infos
    fed = _fed_size(model, size, layer_names)
    if fit_input is None:
        # a fixed-size input is always fed at its size (Lucent's fixed_image_size), a dynamic net
        # with a stride at the render size: the transforms' pad/scale/jitter change the size; token
        # layers of a fixed-size transformer (a position embedding per patch) need every transformed
        # image back at the input size, even when the render size is the input size
        tokens = not meta.dynamic_size and any(i.layout == "NLC" for i in infos.values())
        fit_input = fed is not None or (_needs_fixed_size(model, infos) and size != tuple(meta.input_size)) or tokens
    generator = torch.Generator().manual_seed(int(seed))
    n = batch or _default_batch(objective)
    gray = meta.channel_order == "L"
    if param_f is None:
        params, image_f = param_mod.image(size[1], size[0], batch=n, channels=1 if gray else 3,
                                          generator=generator, device=device)
        param_desc = f"fft, {'grayscale' if gray else 'decorrelated color'}, sd 0.01"
    elif isinstance(param_f, tuple):
        params, image_f = param_f
        param_desc = "custom"
    elif getattr(param_f, "takes_batch", False):  # e.g. maco.maco_param_f: the batch is the objective's
        params, image_f = param_f(generator, device, batch=n)
        param_desc = getattr(param_f, "__name__", "custom")
    else:
        params, image_f = param_f(generator, device)
        param_desc = getattr(param_f, "__name__", "custom")
    transform = _as_transform(transforms, size)
    fit = tr.resize(fed or meta.input_size) if fit_input else (lambda x, g=None: x)
    # the resize back to the fed size joins the transforms' geometric run: one resample per step
    step_transform = tr.compose([transform, fit]) if fit_input else transform

    def evaluate() -> list:
        with torch.no_grad():
            img = image_f()
            return objective(fwd(fit(img))).float().cpu().tolist()

    opt = optimizer(params) if optimizer is not None else torch.optim.Adam(params, lr=lr)
    thresholds = sorted(set(int(t) for t in (thresholds or ())))
    snapshots: dict = {}
    per_step: list = []
    grad_seen = torch.zeros(n, dtype=torch.bool)
    importance = None
    warnings: list = []
    start = evaluate()
    if len(start) != n:
        raise ObjectiveError(f"objective {objective.name} gave {len(start)} values for a batch of {n}")

    start_t = torch.as_tensor(start, dtype=torch.float64)
    risen_above = start_t + 1e-6 * start_t.abs().clamp(min=1.0)  # what counts as a rise (here and for `dead`)
    loss_scale = FP16_LOSS_SCALE if precision == "fp16" else 1.0
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        own = output_modules(fwd.view, [fwd.keys[n] for n in objective.layers])  # the objective's own modules
        redirect = stack.enter_context(redirected_relus(fwd.view, enabled=redirect_steps > 0, objective_modules=own))
        iterator = progress_bar(steps, f"render {objective.name}"[:60], "step", enabled=progress,
                                iterable=range(1, steps + 1), leave=False)
        risen = torch.zeros(n, dtype=torch.bool)  # images whose objective has risen above its start
        redirected_for = 0
        for step in iterator:
            if redirect and step > redirect_steps and (
                    bool(risen.all()) or step > max(redirect_steps, steps // 2)):
                stack.close()  # hooks removed: plain ReLU gradients from here on
                redirect = 0
            redirected_for += bool(redirect)
            opt.zero_grad(set_to_none=True)
            img = image_f()
            img.retain_grad()
            with autocast(device, precision):
                T = fwd(step_transform(img, generator))
                values = objective(T).float()
                total = values.sum()
                for r in regularizers:
                    total = total + r(T).float().sum()
            (-total * loss_scale).backward()
            if loss_scale != 1.0:
                _unscale(params, img, loss_scale)
            if img.grad is not None:
                g = img.grad.detach().abs().sum(1)
                grad_seen |= (g.flatten(1).sum(1) > 0).cpu()
                importance = g if importance is None else importance + g
            opt.step()
            now = values.detach().float().cpu()
            risen |= now.double() > risen_above
            per_step.append([round(float(v), 6) for v in now])
            if step in thresholds:
                with torch.no_grad():
                    snapshots[step] = image_f().detach().float().cpu().numpy()
    seconds = time.perf_counter() - t0
    end = evaluate()
    with torch.no_grad():
        images = image_f().detach().float().cpu().numpy()

    # dead: no gradient ever reached the image, or the objective never rose above its start
    best = np.max(np.asarray(per_step, dtype=np.float64), axis=0) if per_step else np.asarray(end)
    dead = []
    for i in range(n):
        no_gain = end[i] <= float(risen_above[i]) and best[i] <= float(risen_above[i])
        dead.append(bool(not grad_seen[i] or no_gain))
        if dead[i]:
            why = ("no gradient reached the image" if not grad_seen[i] else
                   f"the objective never rose above its start ({start[i]:.4g})")
            warnings.append(f"image {i}: not optimized, {why} in {steps} steps even with ReLU gradient "
                            f"redirection: a dead unit (every position stays below a ReLU). The image is "
                            f"close to the random start; activation {start[i]:.4g} -> {end[i]:.4g}")
    record = {
        "objective": objective.name,
        "preprocessing": meta.preprocessing(),
        "kind": objective.kind,
        "layer": objective.layer,
        "unit": objective.unit,
        "regularizers": [r.name for r in regularizers],
        "seed": int(seed),
        "steps": int(steps),
        "size": list(size),
        "size_choice": size_choice,
        "batch": n,
        "lr": lr,
        "device": str(device),
        "precision": precision,
        "channels_last": fwd.channels_last,
        "param": param_desc,
        "transforms": _transform_names(transform),
        "fit_input": bool(fit_input),
        "redirect_steps": redirected_for,
        "activation_start": start,
        "activation_end": end,
        "activation_per_step": per_step,
        "activation_per_step_note": "objective value per step on the transformed image that step optimized",
        "dead": dead,
        "warnings": warnings,
        "seconds": round(seconds, 3),
        "ms_per_step": round(1000 * seconds / steps, 2),
    }
    imp = None if importance is None else importance.float().cpu().numpy()
    return RenderResult(images=images, snapshots=snapshots, record=record, importance=imp)
