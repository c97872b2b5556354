"""The size a unit is rendered at by default: what its receptive field needs, not the whole input.

A unit of a middle layer of a 1600 px net sees a few hundred pixels; optimizing a 1600x1600 image
for it costs (1600/size)^2 times the work and, for a channel (the mean over positions), only
repeats the same pattern. The default is the smallest size the graph accepts (its stride rule,
graph/input_sizes.py) that covers the unit's receptive field (layers/receptive_fields.py, from the
graph; the local field: channel gates such as squeeze-and-excitation left aside) plus ``MARGIN``
neighbouring positions on each side, at least ``FLOOR`` px, at most ``CAP`` px and the model's input size. Units
that see the whole image (logits, pooled or unknown fields), layers that run only at the file's own
size (graph/dynamic_size.py) and fixed-size inputs keep the input size.
``--size`` overrides it; the record says which (``size_choice``).
"""
from __future__ import annotations

import weakref

import math
from typing import Optional, Sequence

from ..graph.input_sizes import InputRule

MARGIN = 2  # positions of the layer on each side of the field (a few whole fields fit in the image)
FLOOR = 224  # never smaller than this (or the input size): small renders show too little pattern
# never larger than this for a graph that runs at other sizes: a theoretical field beyond it is the reach of
# pooling pyramids, upsampling necks and attention (YOLO's SPPF/PAN: 975 px for a middle layer), whose
# effective field is a fraction of it (Luo et al. 2016); a channel objective (the mean over positions)
# then repeats its pattern at 512 px as well as at 1024, at a quarter of the work (docs/large_inputs.md)
CAP = 512


def rule_for(model, layer_names: Sequence[str]) -> Optional[InputRule]:
    """The model's input rule for these layers: fixed at the input size when one of them is computed
    only at the file's own size (after a node that fails at other sizes)."""
    rule, fixed = model.input_rule, model.fixed_size_tensors
    if rule is not None and fixed and any(model.layer(n).tensor in fixed for n in layer_names):
        return InputRule(tuple(rule.size), (None, None), "this layer runs only at the file's own size")
    return rule


_FIELDS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # model -> its receptive fields, once


def _fields(model) -> dict:
    cache = _FIELDS.get(model)
    if cache is None:
        from ..graph.edits import infer_shapes, value_shapes
        from ..layers.receptive_fields import receptive_fields

        shapes = {k: v[1] for k, v in value_shapes(infer_shapes(model.proto)).items()}
        cache = receptive_fields(model.proto, model.input_name, shapes, local=True)
        _FIELDS[model] = cache
    return cache


def default_size(model, layer_names: Sequence[str]) -> tuple:
    """((H, W), why): the default render size for an objective on ``layer_names``."""
    full = tuple(int(v) for v in model.meta.input_size)
    rule = rule_for(model, layer_names)
    if rule is None or any(s is None for s in rule.stride):
        return full, f"the model's input size ({'fixed' if rule is not None else 'no size rule'})"
    fields = _fields(model)
    seen, need = [0.0, 0.0], [0.0, 0.0]
    for name in layer_names:
        f = fields.get(model.layer(name).tensor)
        if f is None:
            return full, f"the model's input size: {name} sees the whole image"
        for axis in (0, 1):
            seen[axis] = max(seen[axis], f[axis].size)
            need[axis] = max(need[axis], f[axis].size + 2 * MARGIN * f[axis].jump)
    size, capped = [], False
    for axis in (0, 1):
        s = rule.stride[axis]
        want = s * math.ceil(max(need[axis], min(FLOOR, full[axis])) / s)
        if want > CAP and full[axis] > CAP:
            want, capped = s * max(1, CAP // s), True
        size.append(int(min(want, full[axis])))
    size = tuple(size)
    if size == full:
        return full, f"the model's input size (receptive field {seen[0]:.0f}x{seen[1]:.0f} px covers it)"
    if capped:
        return size, (f"capped at {CAP} px (receptive field {seen[0]:.0f}x{seen[1]:.0f} px, mostly the reach of "
                      f"pooling and upsampling paths), multiples of {rule.stride[0]} (input {full[0]}x{full[1]})")
    return size, (f"receptive field {seen[0]:.0f}x{seen[1]:.0f} px + {MARGIN} positions each side, "
                  f"multiples of {rule.stride[0]} (input {full[0]}x{full[1]})")
