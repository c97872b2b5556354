"""The size a unit is rendered at by default: what its receptive field needs, not the whole input.

A unit of a middle layer of a 1600 px net sees a few hundred pixels; optimizing a 1600x1600 image
for it costs (1600/size)^2 times the work and, for a channel (the mean over positions), only
repeats the same pattern. The default is the smallest size the graph accepts (its stride rule,
graph/input_sizes.py) that covers the unit's receptive field (layers/receptive_fields.py, from the
graph; the local field: channel gates such as squeeze-and-excitation left aside) plus ``MARGIN``
neighbouring positions on each side, at least ``FLOOR`` px (less for a layer that costs more than
``RENDER_MACS`` per image there), at most ``CAP`` px and the model's input size. Units
that see the whole image (logits, pooled or unknown fields), layers that run only at the file's own
size (graph/dynamic_size.py) and fixed-size inputs keep the input size.
``--size`` overrides it; the record says which (``size_choice``).
"""
from __future__ import annotations

import math
import weakref
from typing import Optional, Sequence

from ..graph.input_sizes import InputRule

MARGIN = 2  # positions of the layer on each side of the field (a few whole fields fit in the image)
FLOOR = 224  # never smaller than this (or the input size): small renders show too little pattern
# never larger than this for a graph that runs at other sizes: a theoretical field beyond it is the reach of
# pooling pyramids, upsampling necks and attention (YOLO's SPPF/PAN: 975 px for a middle layer), whose
# effective field is a fraction of it (Luo et al. 2016); a channel objective (the mean over positions)
# then repeats its pattern at 512 px as well as at 1024, at a quarter of the work (docs/large_inputs.md)
CAP = 512
# a forward pass of at most this many multiply-accumulates per image at the floor: any middle layer of the
# usual classifiers and detectors costs less (a whole ResNet-50 is 4.1 G at 224 px) and keeps 224 px; a net
# that keeps 64 channels at full resolution (a super-resolution body: 0.63 M per input pixel to its 8th
# block) renders smaller, where its 33 px field still repeats several times (64 steps at 224 px ran > 10 min)
RENDER_MACS = 8e9
MIN_SIDE = 64  # the compute floor never goes below this (nor below what the field needs)


def rule_for(model, layer_names: Sequence[str]) -> Optional[InputRule]:
    """The model's input rule for these layers: fixed at the input size when one of them is computed
    only at the file's own size (after a node that fails at other sizes)."""
    rule, fixed = model.input_rule, model.fixed_size_tensors
    if rule is not None and fixed and any(model.layer(n).tensor in fixed for n in layer_names):
        return InputRule(tuple(rule.size), (None, None), "this layer runs only at the file's own size")
    return rule


_FIELDS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> its receptive fields, once


def _fields(model) -> tuple:
    """(receptive field of each tensor, shape of each tensor), computed once per model."""
    cache = _FIELDS.get(model)
    if cache is None:
        from ..graph.edits import infer_shapes, value_shapes
        from ..layers.receptive_fields import receptive_fields

        shapes = {k: v[1] for k, v in value_shapes(infer_shapes(model.proto)).items()}
        fields = receptive_fields(model.proto, model.input_name, shapes, local=True)
        cache = (fields, {**shapes, **{t.name: tuple(t.dims) for t in model.proto.graph.initializer}})
        _FIELDS[model] = cache
    return cache


def macs_per_pixel(model, layer_names: Sequence[str]) -> float:
    """Multiply-accumulates per input pixel of one forward pass up to ``layer_names``: each Conv and
    ConvTranspose that they need, its weights' MACs per output position times its output positions per
    input pixel (1 / jump^2, from the receptive fields). Layers after a global pool add nothing (their maps
    no longer grow with the image)."""
    from ..graph.edits import needed_nodes

    proto = model.proto
    fields, shapes = _fields(model)
    keep, _ = needed_nodes(proto.graph, [model.layer(n).tensor for n in layer_names])
    total = 0.0
    for k in keep:
        node = proto.graph.node[k]
        w = shapes.get(node.input[1]) if node.op_type in ("Conv", "ConvTranspose") and len(node.input) > 1 else None
        f = fields.get(node.input[0] if node.op_type == "ConvTranspose" else node.output[0])
        if not w or len(w) < 3 or None in w or f is None:
            continue
        total += math.prod(w) / (f[0].jump * f[1].jump)  # per output (Conv) or input (ConvTranspose) position
    return total


def default_size(model, layer_names: Sequence[str]) -> tuple:
    """((H, W), why): the default render size for an objective on ``layer_names``."""
    full = tuple(int(v) for v in model.meta.input_size)
    rule = rule_for(model, layer_names)
    if rule is None or any(s is None for s in rule.stride):
        return full, f"the model's input size ({'fixed' if rule is not None else 'no size rule'})"
    fields, _ = _fields(model)
    seen, need = [0.0, 0.0], [0.0, 0.0]
    for name in layer_names:
        f = fields.get(model.layer(name).tensor)
        if f is None:
            return full, f"the model's input size: {name} sees the whole image"
        for axis in (0, 1):
            seen[axis] = max(seen[axis], f[axis].size)
            need[axis] = max(need[axis], f[axis].size + 2 * MARGIN * f[axis].jump)
    floor = [min(FLOOR, full[axis]) for axis in (0, 1)]
    macs = macs_per_pixel(model, layer_names)
    costly = macs * floor[0] * floor[1] > RENDER_MACS
    if costly:
        side = max(MIN_SIDE, math.sqrt(RENDER_MACS / macs))
        floor = [min(f, side) for f in floor]
    size, capped = [], False
    for axis in (0, 1):
        s = rule.stride[axis]
        want = s * math.ceil(max(need[axis], floor[axis]) / s)
        if want > CAP and full[axis] > CAP:
            want, capped = s * max(1, CAP // s), True
        size.append(int(min(want, full[axis])))
    size = tuple(size)
    field = f"receptive field {seen[0]:.0f}x{seen[1]:.0f} px"
    if size == full:
        why = "covers it" if need[0] >= full[0] and need[1] >= full[1] else f"the {FLOOR} px floor"
        return full, f"the model's input size ({field}; {why})"
    if capped:
        return size, (f"capped at {CAP} px ({field}, mostly the reach of pooling and upsampling paths), "
                      f"multiples of {rule.stride[0]} (input {full[0]}x{full[1]})")
    if costly and max(need) < min(FLOOR, max(full)):
        return size, (f"{field} + {MARGIN} positions each side, under the {FLOOR} px floor: this layer costs "
                      f"{macs / 1e6:.2g} M multiply-accumulates per pixel, {RENDER_MACS / 1e9:g} G per image at most "
                      f"(multiples of {rule.stride[0]}, input {full[0]}x{full[1]})")
    return size, (f"{field} + {MARGIN} positions each side, multiples of {rule.stride[0]} "
                  f"(input {full[0]}x{full[1]})")
