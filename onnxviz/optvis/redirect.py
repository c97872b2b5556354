"""Gradient overrides for the first steps of a render (Lucid's ``optvis/overrides``).

Two ways a unit's plain gradient leads gradient ascent astray from a near-gray start:

- **dead ReLUs** (Lucid's redirected_relu_grad): a unit whose every position is below a ReLU (or
  outside ReLU6's range) gives no gradient and the image stays grey. ``_RedirectedClamp`` lets
  through, for an image whose gradient is all zero, the components that move x back into range.
- **V-shaped units**: a PReLU (or LeakyReLU) with a *negative* slope rises on both sides of zero,
  steeply (slope 1) above it and shallowly (|slope|) below it. Positions that start below zero
  are pushed further down the shallow side, and the ascent settles where the two sides balance:
  MTCNN R-Net's ``p_re_lu_5:57`` (slope -0.085, 24x24 input) stayed at 0.28 after 256 steps, below
  the best photo's 0.75, whatever the transforms; with its gradient sent toward the steep side
  for the first steps it reaches 6.0 (36x its start). Only the modules that compute the
  objective's own layers are redirected: inside the net a V-shape is the net's feature, not the
  objective's.

Both are used for ``render(redirect_steps=...)`` steps only; the hooks are always removed.
"""
from __future__ import annotations

import contextlib
from typing import Iterable, Optional

import torch
from torch import nn


class _RedirectedClamp(torch.autograd.Function):
    """clamp(x, lo, hi) whose backward, for an image with an all-zero gradient, lets through the
    gradient components that would move x back into (lo, hi) (Lucid's redirected_relu_grad)."""

    @staticmethod
    def forward(ctx, x, lo, hi):
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = lo, hi
        return x.clamp(min=lo, max=hi)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        lo, hi = ctx.lo, ctx.hi
        inside = x > lo if hi is None else (x > lo) & (x < hi)
        relu_grad = g * inside
        zero = torch.zeros_like(g)
        below_ok = torch.where(g < 0, g, zero)  # descending the loss raises x
        redirected = torch.where(x <= lo, below_ok, g)
        if hi is not None:
            redirected = torch.where(x >= hi, torch.where(g > 0, g, zero), redirected)
        mag = relu_grad.flatten(1).abs().sum(1) if g.dim() > 1 else relu_grad.abs()
        use = (mag > 0).view(-1, *[1] * (g.dim() - 1))
        return torch.where(use, relu_grad, redirected), None, None


class _SteepSidePReLU(torch.autograd.Function):
    """prelu(x, slope) whose backward, where the slope is negative, passes the gradient of the
    steep side (slope 1) below zero too: ascent then raises x toward the side where the unit
    rises fastest instead of pushing it further down the shallow one."""

    @staticmethod
    def forward(ctx, x, slope):
        ctx.save_for_backward(x, slope)
        return torch.where(x >= 0, x, x * slope)

    @staticmethod
    def backward(ctx, g):
        x, slope = ctx.saved_tensors
        steep = torch.where(slope < 0, torch.ones_like(slope), slope)
        return torch.where(x >= 0, g, g * steep), None


def _clamp_bounds(module: nn.Module):
    if isinstance(module, nn.ReLU) and not module.inplace:
        return 0.0, None
    if isinstance(module, nn.Hardtanh) and not module.inplace and module.min_val == 0.0:
        return 0.0, float(module.max_val)
    return None


def _slope(module: nn.Module, inputs: tuple) -> Optional[torch.Tensor]:
    """The slope below zero of a PReLU-like module, broadcastable to its input; None otherwise."""
    x = inputs[0]
    if type(module).__name__ == "OnnxPReLU" and len(inputs) > 1:  # onnx2torch: forward(x, slope)
        return inputs[1].to(x.dtype)
    if isinstance(module, nn.PReLU):
        w = module.weight.to(x.dtype)
        return w.view(1, -1, *[1] * (x.dim() - 2)) if w.numel() > 1 and x.dim() > 1 else w
    if isinstance(module, nn.LeakyReLU) and not module.inplace:
        return x.new_tensor(float(module.negative_slope))
    return None


def output_modules(view: nn.Module, names: Iterable[str]) -> list:
    """The submodules of an ``ActivationView`` that compute the outputs ``names`` (others: none)."""
    gm = getattr(view, "module", None)
    graph = getattr(gm, "graph", None)
    if graph is None:
        return []
    out = next((n for n in graph.nodes if n.op == "output"), None)
    outputs = out.args[0] if out is not None and out.args and isinstance(out.args[0], dict) else {}
    found = []
    for name in names:
        node = outputs.get(name)
        if getattr(node, "op", None) == "call_module":
            found.append(gm.get_submodule(node.target))
    return found


@contextlib.contextmanager
def redirected_relus(module: nn.Module, enabled: bool = True, objective_modules: Iterable[nn.Module] = ()):
    """Context manager: ReLU/ReLU6 modules of ``module`` redirect gradients, and so do the
    ``objective_modules`` that are PReLU/LeakyReLU with a negative slope; yields how many are
    redirected. The hooks are always removed."""
    handles = []

    def steep(m, inputs, out):
        slope = _slope(m, inputs)
        if slope is None or not bool((slope < 0).any()):
            return out
        return _SteepSidePReLU.apply(inputs[0], slope)

    try:
        if enabled:
            for sub in module.modules():
                bounds = _clamp_bounds(sub)
                if bounds is None:
                    continue
                lo, hi = bounds
                handles.append(sub.register_forward_hook(
                    lambda m, inputs, out, lo=lo, hi=hi: _RedirectedClamp.apply(inputs[0], lo, hi)))
            for sub in objective_modules:
                if type(sub).__name__ == "OnnxPReLU" or isinstance(sub, (nn.PReLU, nn.LeakyReLU)):
                    handles.append(sub.register_forward_hook(steep))
        yield len(handles)
    finally:
        for h in handles:
            h.remove()
