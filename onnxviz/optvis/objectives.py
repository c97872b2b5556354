"""What to maximize: small named objectives that add, subtract, scale and negate.

An ``Objective`` wraps ``f(T) -> tensor (N,)``: one value per image of the batch, to be
*maximized*. ``T(layer)`` returns that layer's activation for the batch, NCHW (or NC) whatever the
model's layout; ``T.image`` is the parameterized image (N, 3, H, W) in [0, 1] before transforms.
Each objective declares the layers it reads (``.layers``) so the forward pass is truncated after
the deepest one, and the units it indexes (``.units``) so they are checked against the model
before any work is done.

    channel("block_7", 12) - 0.5 * channel("block_7", 3)
    as_objective("block_7:12")                     # the string shorthand, a channel
    channel("block_7", [0, 1, 2, 3])               # image i maximizes unit i (batched rendering)

Shapes: ``T(layer)`` is (N, C, H, W) or (N, C); every objective returns (N,).
"""
from __future__ import annotations

import numbers
from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from ..errors import ObjectiveError


class Objective:
    """A function of the activations to maximize, with a readable name.

    ``fn(T) -> (N,)``; ``layers``: layer names it reads; ``units``: (layer, unit) pairs it indexes;
    ``kind``/``layer``/``unit``: what the render record says about it (compound objectives have
    kind "objective").
    """

    def __init__(self, fn: Callable, name: str, layers: Sequence[str] = (), units: Sequence[tuple] = (),
                 kind: str = "objective", layer: Optional[str] = None, unit=None):
        self.fn = fn
        self.name = name
        self.layers = tuple(dict.fromkeys(layers))
        self.units = tuple(units)
        self.kind = kind
        self.layer = layer
        self.unit = unit

    def __call__(self, T) -> torch.Tensor:
        value = self.fn(T)
        if value.dim() == 0:
            value = value.expand(T.batch)
        return value

    def __repr__(self) -> str:
        return self.name

    # ------------------------------------------------------------------ algebra
    def _combine(self, other: "Objective", fn: Callable, name: str) -> "Objective":
        return Objective(fn, name, self.layers + other.layers, self.units + other.units)

    def __add__(self, other):
        if isinstance(other, numbers.Number):
            return Objective(lambda T: self(T) + other, f"{self.name} + {other}", self.layers, self.units)
        other = as_objective(other)
        return self._combine(other, lambda T: self(T) + other(T), f"{self.name} + {other.name}")

    def __radd__(self, other):
        if isinstance(other, numbers.Number) and other == 0:  # sum([...]) starts from 0
            return self
        return self.__add__(other)

    def __neg__(self):
        return Objective(lambda T: -self(T), f"-({self.name})", self.layers, self.units)

    def __sub__(self, other):
        if isinstance(other, numbers.Number):
            return self + (-other)
        return self + (-as_objective(other))

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, other):
        if isinstance(other, numbers.Number):
            return Objective(lambda T: other * self(T), f"{other} * ({self.name})", self.layers, self.units)
        other = as_objective(other)
        return self._combine(other, lambda T: self(T) * other(T), f"({self.name}) * ({other.name})")

    __rmul__ = __mul__

    def __truediv__(self, other):
        if not isinstance(other, numbers.Number):
            raise ObjectiveError("objectives can only be divided by a number")
        return self * (1.0 / other)

    # ------------------------------------------------------------------ validation
    def check(self, model) -> None:
        """Raise UnknownNodeError / ObjectiveError when a layer or unit does not exist in ``model``.

        ``model``: an ``onnxviz.protocols.VisionModel`` (its ``layer(name).units``).
        """
        for name in self.layers:
            model.layer(name)  # UnknownNodeError with close matches
        for name, unit in self.units:
            units = model.layer(name).units
            for u in _as_list(unit):
                if units is not None and not (0 <= u < units):
                    raise ObjectiveError(f"unit {u} is out of range for layer {name!r}, which has {units} "
                                         f"units (0..{units - 1})")


def _as_list(unit) -> list:
    if isinstance(unit, (list, tuple)):
        return [int(u) for u in unit]
    return [int(unit)]


def _unit_index(unit, batch: int, device) -> Union[int, torch.Tensor]:
    if isinstance(unit, (list, tuple)):
        if len(unit) != batch:
            raise ObjectiveError(f"{len(unit)} units given for a batch of {batch} images (one unit per image)")
        return torch.as_tensor(unit, device=device)
    return int(unit)


def _pick(act: torch.Tensor, unit, batch_index: Optional[int]) -> torch.Tensor:
    """act (N, C, ...) -> (N, ...) at ``unit`` (an int, or one unit per image)."""
    index = _unit_index(unit, act.shape[0], act.device)
    if isinstance(index, int):
        out = act[:, index]
    else:
        out = act[torch.arange(act.shape[0], device=act.device), index]
    if batch_index is not None:
        mask = torch.zeros(act.shape[0], device=act.device, dtype=act.dtype)
        mask[batch_index] = 1.0
        out = out * mask.view(-1, *[1] * (out.dim() - 1))
    return out


def _unit_str(unit) -> str:
    return str(list(unit)) if isinstance(unit, (list, tuple)) else str(unit)


def _batch_str(batch) -> str:
    return "" if batch is None else f", batch={batch}"


# ---------------------------------------------------------------------- unit objectives
def _unit_mean(layer: str, n, batch: Optional[int], kind: str) -> Objective:
    """Unit ``n`` of ``layer`` averaged over its positions (an (N, C) layer: the unit itself)."""
    def inner(T):
        a = _pick(T(layer), n, batch)
        return a.flatten(1).mean(1) if a.dim() > 1 else a

    return Objective(inner, f"{kind}({layer!r}, {_unit_str(n)}{_batch_str(batch)})", [layer], [(layer, n)],
                     kind=kind, layer=layer, unit=n)


def channel(layer: str, n, batch: Optional[int] = None) -> Objective:
    """Mean activation of channel ``n`` over all positions (an (N, C) layer: the unit itself).

    ``n`` may be a list with one unit per image. ``batch``: only image ``batch`` is optimized.
    """
    return _unit_mean(layer, n, batch, "channel")


def neuron(layer: str, n, x: Optional[int] = None, y: Optional[int] = None, batch: Optional[int] = None) -> Objective:
    """Activation of channel ``n`` at one position (default: the center of the map)."""
    def inner(T):
        a = _pick(T(layer), n, batch)
        if a.dim() == 1:
            return a
        h, w = a.shape[-2:]
        yy = h // 2 if y is None else y
        xx = w // 2 if x is None else x
        if not (0 <= yy < h and 0 <= xx < w):
            raise ObjectiveError(f"position (x={xx}, y={yy}) is outside the {h}x{w} map of layer {layer!r}")
        return a[:, yy, xx]

    where = "" if x is None and y is None else f", x={x}, y={y}"
    return Objective(inner, f"neuron({layer!r}, {_unit_str(n)}{where}{_batch_str(batch)})", [layer],
                     [(layer, n)], kind="neuron", layer=layer, unit=n)


def class_logit(layer: str, n, batch: Optional[int] = None) -> Objective:
    """A class's logit (pre-softmax), ``layer`` being the (N, classes) logits: a channel, named as a class."""
    return _unit_mean(layer, n, batch, "class_logit")


def class_prob(layer: str, n, batch: Optional[int] = None, log: bool = False) -> Objective:
    """A class's probability: softmax over ``layer`` (the logits), taken at ``n``.

    ``log=True`` maximizes the log-probability instead: same optimum, but the gradient does not
    vanish when the class starts very unlikely (a batch of classes converges together).
    """
    def inner(T):
        a = T(layer)
        a = a.flatten(2).mean(2) if a.dim() > 2 else a
        return _pick(F.log_softmax(a, dim=1) if log else F.softmax(a, dim=1), n, batch)

    name = "class_logprob" if log else "class_prob"
    return Objective(inner, f"{name}({layer!r}, {_unit_str(n)}{_batch_str(batch)})", [layer], [(layer, n)],
                     kind="class_prob", layer=layer, unit=n)


def layer(name: str, batch: Optional[int] = None) -> Objective:
    """DeepDream: the mean square of the whole layer (every channel, every position)."""
    def inner(T):
        a = T(name)
        v = (a ** 2).flatten(1).mean(1)
        if batch is not None:
            v = v * (torch.arange(len(v), device=v.device) == batch).to(v.dtype)
        return v

    return Objective(inner, f"layer({name!r}{_batch_str(batch)})", [name], kind="deepdream", layer=name)


deepdream = layer


def direction(layer: str, vec, batch: Optional[int] = None, cossim_pow: float = 0.0) -> Objective:
    """Dot product of each position's activation vector with ``vec``, averaged over positions.

    ``vec``: (C,) for every image, or (N, C): image i follows vec[i] (a batch of directions, as the
    activation grid and atlas render them). ``cossim_pow`` > 0 multiplies each position's dot
    product by its cosine similarity with ``vec`` to that power (clamped at 0.1, Lucid's
    direction_cossim), which favours the direction itself over sheer magnitude.
    """
    def inner(T):
        a = T(layer)
        v = torch.as_tensor(vec, dtype=a.dtype, device=a.device)
        if v.shape[-1] != a.shape[1]:
            raise ObjectiveError(f"direction has {v.shape[-1]} values, layer {layer!r} has {a.shape[1]} channels")
        if v.dim() == 2 and v.shape[0] != a.shape[0]:
            raise ObjectiveError(f"{v.shape[0]} directions given for a batch of {a.shape[0]} images (one per image)")
        v = v.reshape(-1, a.shape[1], *[1] * (a.dim() - 2))
        d = (a * v).sum(1)
        if cossim_pow:
            cos = d / (a.norm(dim=1) * v.norm(dim=1) + 1e-6)
            d = d * cos.clamp(min=0.1) ** cossim_pow
        d = d.flatten(1).mean(1) if d.dim() > 1 else d
        if batch is not None:
            d = d * (torch.arange(len(d), device=d.device) == batch).to(d.dtype)
        return d

    pw = f", cossim_pow={cossim_pow}" if cossim_pow else ""
    return Objective(inner, f"direction({layer!r}{pw}{_batch_str(batch)})", [layer], kind="objective", layer=layer)


def channel_interpolate(layer1: str, n1: int, layer2: str, n2: int) -> Objective:
    """Interpolate between two channels across the batch: image i weighs them (1 - t_i, t_i)."""
    def inner(T):
        a1, a2 = T(layer1), T(layer2)
        batch = a1.shape[0]
        t = torch.linspace(0, 1, batch, device=a1.device, dtype=a1.dtype) if batch > 1 else a1.new_zeros(1)
        v1 = a1[:, n1].flatten(1).mean(1) if a1.dim() > 2 else a1[:, n1]
        v2 = a2[:, n2].flatten(1).mean(1) if a2.dim() > 2 else a2[:, n2]
        return (1 - t) * v1 + t * v2

    return Objective(inner, f"channel_interpolate({layer1!r}, {n1}, {layer2!r}, {n2})", [layer1, layer2],
                     [(layer1, n1), (layer2, n2)])


def gram_similarity(act: torch.Tensor) -> torch.Tensor:
    """(N, N) cosine similarity between the images' Gram matrices (channel x channel) of ``act``."""
    flat = act.flatten(2) if act.dim() > 2 else act[:, :, None]
    grams = flat @ flat.transpose(1, 2)
    grams = F.normalize(grams.flatten(1), dim=1, eps=1e-10)
    return grams @ grams.t()


def diversity(layer: str) -> Objective:
    """Lucid's diversity, to maximize: minus each image's summed Gram similarity to the others / N.

    Lucid returns the similarity and subtracts it (``channel(...) - 1e2 * diversity(...)``); here
    every objective is maximized, so write ``channel(...) + w * diversity(...)``.
    """
    def inner(T):
        sim = gram_similarity(T(layer))
        n = sim.shape[0]
        off = sim * (1 - torch.eye(n, device=sim.device, dtype=sim.dtype))
        return -off.sum(1) / n

    return Objective(inner, f"diversity({layer!r})", [layer], kind="diversity", layer=layer)


def alignment(layer: str, decay_ratio: float = 2.0) -> Objective:
    """Lucid's alignment: neighbouring images of the batch have similar activations (to maximize)."""
    def inner(T):
        a = T(layer)
        n = a.shape[0]
        out = a.new_zeros(n)
        for d in (1, 2, 3, 4):
            for i in range(n - d):
                term = ((a[i] - a[i + d]) ** 2).mean() / decay_ratio ** d
                out = out - F.one_hot(torch.tensor(i), n).to(a) * term
        return out

    return Objective(inner, f"alignment({layer!r}, {decay_ratio})", [layer])


def dot_compare(layer: str, target: torch.Tensor, cossim_pow: float = 0.0) -> Objective:
    """Lucid's feature-inversion objective: dot(act, target) * cosine(act, target) ** cossim_pow."""
    def inner(T):
        a = T(layer).flatten(1)
        t = target.to(a).flatten(1).expand_as(a)
        dot = (a * t).sum(1)
        if cossim_pow == 0:
            return dot
        cos = dot / (1e-6 + a.norm(dim=1) * t.norm(dim=1))
        return dot * cos.clamp(min=1e-1) ** cossim_pow

    return Objective(inner, f"dot_compare({layer!r}, cossim_pow={cossim_pow})", [layer], kind="caricature",
                     layer=layer)


# ---------------------------------------------------------------------- image regularizers
def l1(constant: float = 0.5) -> Objective:
    """Minus the mean absolute distance of the image from ``constant`` (grey): add with a weight."""
    return Objective(lambda T: -(T.image - constant).abs().flatten(1).mean(1), f"l1({constant})")


def total_variation() -> Objective:
    """Minus the mean absolute difference between neighbouring pixels (smoother images)."""
    def inner(T):
        x = T.image
        dx = (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).mean(1)
        dy = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).mean(1)
        return -(dx + dy)

    return Objective(inner, "total_variation()")


def blur_input_each_step() -> Objective:
    """Lucid's blur: pulls each pixel toward its (fixed) 3x3 blurred value at every step."""
    def inner(T):
        x = T.image
        with torch.no_grad():
            k = x.new_ones(x.shape[1], 1, 3, 3) / 9.0
            blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k, groups=x.shape[1])
        return -0.5 * ((x - blurred) ** 2).flatten(1).sum(1)

    return Objective(inner, "blur_input_each_step()")


# ---------------------------------------------------------------------- shorthand
_KINDS = {"channel": channel, "neuron": neuron, "logit": class_logit, "class_logit": class_logit,
          "prob": class_prob, "class_prob": class_prob}


def parse(spec: str, kind: str = "channel") -> Objective:
    """``"layer:unit"`` -> channel(layer, unit) (or neuron/logit/prob with ``kind``).

    The unit is what follows the last ':' (layer names may contain ':'); ``"layer"`` alone with
    kind "deepdream" gives the layer objective.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ObjectiveError(f"an objective must be 'layer:unit', got {spec!r}")
    if kind in ("deepdream", "layer"):
        return layer(spec)
    if kind not in _KINDS:
        raise ObjectiveError(f"unknown objective kind {kind!r}; known: {', '.join(sorted(_KINDS))}, deepdream")
    name, sep, unit = spec.rpartition(":")
    if not sep or not name:
        raise ObjectiveError(f"objective {spec!r} needs a unit: write 'layer:unit', e.g. 'block_7:12'")
    try:
        index = int(unit)
    except ValueError:
        raise ObjectiveError(f"objective {spec!r}: the unit after ':' must be an integer, got {unit!r}") from None
    if index < 0:
        raise ObjectiveError(f"objective {spec!r}: unit must be >= 0")
    return _KINDS[kind](name, index)


def as_objective(obj) -> Objective:
    """An Objective as is, or the ``"layer:unit"`` string shorthand parsed into a channel objective."""
    if isinstance(obj, Objective):
        return obj
    if isinstance(obj, str):
        return parse(obj)
    raise ObjectiveError(f"not an objective: {obj!r} (use onnxviz.optvis.objectives or 'layer:unit')")
