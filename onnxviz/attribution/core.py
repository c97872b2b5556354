"""What every attribution method shares: the target (the forward pass is ``onnxviz.optvis.forward``).

A *target* is a scalar per image that attribution explains: a class logit, a unit (a channel's
spatial mean), or a direction in a layer's activation space. Targets are optvis objectives
(``Objective``: ``f(T) -> (N,)``), so anything that can be rendered can be attributed too.

Everything works in *image space*: an onnxviz image is (N, 3, H, W) RGB in [0, 1], and the
model's own preprocessing (range, mean/std, BGR, grayscale, NHWC) is applied differentiably in
between (``ModelMeta.to_model_input``), so an attribution map is laid over the photo as the person
sees it, whatever the file's layout or channel order.
"""
from __future__ import annotations

from typing import Optional, Union

import numpy as np

from ..errors import ObjectiveError
from ..optvis import objectives as obj
from ..optvis.objectives import Objective


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

