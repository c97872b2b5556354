"""The torch modules behind onnxviz's onnx2torch converters (``converters.register``): each computes one ONNX
op as ONNX defines it, where onnx2torch's own module is missing or reads shapes it cannot know."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

_REDUCE = ("ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceMax", "ReduceMean", "ReduceMin",
           "ReduceProd", "ReduceSumSquare")


class Reduce(nn.Module):
    """ONNX Reduce* with constant axes (opset 18+ passes them as an input)."""

    def __init__(self, op: str, axes: Optional[list], keepdims: bool, noop_with_empty_axes: bool):
        super().__init__()
        self.op, self.axes, self.keepdims, self.noop = op, axes, keepdims, noop_with_empty_axes

    def forward(self, x):
        if not self.axes:
            if self.noop:
                return x
            dims = list(range(x.dim()))
        else:
            dims = [a % x.dim() for a in self.axes]
        k = self.keepdims
        if self.op == "ReduceMean":
            return x.mean(dim=dims, keepdim=k)
        if self.op == "ReduceMax":
            return x.amax(dim=dims, keepdim=k)
        if self.op == "ReduceMin":
            return x.amin(dim=dims, keepdim=k)
        if self.op == "ReduceProd":
            out = x
            for d in sorted(dims, reverse=True):
                out = out.prod(dim=d, keepdim=k)
            return out
        if self.op == "ReduceL1":
            return x.abs().sum(dim=dims, keepdim=k)
        if self.op == "ReduceL2":
            return x.square().sum(dim=dims, keepdim=k).sqrt()
        if self.op == "ReduceSumSquare":
            return x.square().sum(dim=dims, keepdim=k)
        if self.op == "ReduceLogSum":
            return x.sum(dim=dims, keepdim=k).log()
        if self.op == "ReduceLogSumExp":
            return torch.logsumexp(x, dim=dims, keepdim=k)
        raise NotImplementedError(self.op)


class Reshape(nn.Module):
    """ONNX Reshape with allowzero (0 means a real zero-size dim) or not (0 copies the input dim)."""

    def __init__(self, allowzero: bool):
        super().__init__()
        self.allowzero = allowzero

    def forward(self, x, shape):
        dims = [int(d) for d in shape.tolist()]
        if not self.allowzero:
            dims = [x.shape[i] if d == 0 else d for i, d in enumerate(dims)]
        return torch.reshape(x, dims)


class Gelu(nn.Module):
    def __init__(self, approximate: str = "none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        return nn.functional.gelu(x, approximate=self.approximate)


class GlobalMaxPool(nn.Module):
    def forward(self, x):
        return x.amax(dim=tuple(range(2, x.dim())), keepdim=True)


class SamePadded(nn.Module):
    """ONNX SAME_UPPER/SAME_LOWER padding in front of a conv or pool converted with VALID padding.
    ``exclude_pad``: an average pool that does not count the padding (ONNX's default) divides by the
    share of real pixels in each window."""

    def __init__(self, inner: nn.Module, kernel, strides, dilations, upper: bool, value: float,
                 exclude_pad: bool = False):
        super().__init__()
        self.inner, self.kernel, self.strides, self.dilations = inner, list(kernel), list(strides), list(dilations)
        self.upper, self.value, self.exclude_pad = upper, value, exclude_pad

    def forward(self, x, *rest):
        pads = []
        for i in reversed(range(len(self.kernel))):  # F.pad wants the last dim first
            size, k, s, d = x.shape[2 + i], self.kernel[i], self.strides[i], self.dilations[i]
            out = -(-size // s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            small, big = total // 2, total - total // 2
            pads += [small, big] if self.upper else [big, small]
        if not any(pads):
            return self.inner(x, *rest)
        out = self.inner(nn.functional.pad(x, pads, value=self.value), *rest)
        if self.exclude_pad:
            real = nn.functional.pad(torch.ones_like(x[:, :1]), pads, value=0.0)
            out = out / self.inner(real)
        return out


class Mish(nn.Module):
    def forward(self, x):
        return nn.functional.mish(x)


class SpaceToDepth(nn.Module):
    """ONNX SpaceToDepth: (N, C, H, W) -> (N, C*b*b, H/b, W/b), the block offset outer and C inner
    (not torch's pixel_unshuffle order, which puts C outer)."""

    def __init__(self, blocksize: int):
        super().__init__()
        self.b = blocksize

    def forward(self, x):
        n, c, h, w = x.shape
        b = self.b
        x = x.reshape(n, c, h // b, b, w // b, b).permute(0, 3, 5, 1, 2, 4)
        return x.reshape(n, c * b * b, h // b, w // b)


class DepthToSpace(nn.Module):
    """ONNX DepthToSpace in DCR (depth-column-row, the default) or CRD (= torch.pixel_shuffle) mode."""

    def __init__(self, blocksize: int, mode: str = "DCR"):
        super().__init__()
        self.b, self.mode = blocksize, mode

    def forward(self, x):
        if self.mode == "CRD":
            return nn.functional.pixel_shuffle(x, self.b)
        n, c, h, w = x.shape
        b = self.b
        x = x.reshape(n, b, b, c // (b * b), h, w).permute(0, 3, 4, 1, 5, 2)
        return x.reshape(n, c // (b * b), h * b, w * b)


class LayerNorm(nn.Module):
    """ONNX LayerNormalization over dims ``axis..`` of the input as it is at run time; scale and bias
    broadcast as ONNX allows."""

    def __init__(self, axis: int, epsilon: float):
        super().__init__()
        self.axis, self.epsilon = axis, epsilon

    def forward(self, x, scale, bias=None):
        axis = self.axis % x.dim()
        shape = tuple(x.shape[axis:])
        if tuple(scale.shape) == shape and (bias is None or tuple(bias.shape) == shape):
            return nn.functional.layer_norm(x, shape, scale, bias, self.epsilon)
        dims = tuple(range(axis, x.dim()))
        mean = x.mean(dim=dims, keepdim=True)
        var = (x - mean).square().mean(dim=dims, keepdim=True)
        y = (x - mean) / torch.sqrt(var + self.epsilon) * scale
        return y if bias is None else y + bias


class DynamicClip(nn.Module):
    """ONNX Clip whose bounds are tensors computed in the graph (either may be absent)."""

    def forward(self, x, min=None, max=None):  # noqa: A002 - ONNX's input names
        return torch.clamp(x, min, max)


class ComputedBatchNorm(nn.Module):
    """ONNX BatchNormalization (inference) whose mean and variance are computed in the graph (a tf2onnx Keras
    file that normalizes with the batch's own moments): the formula itself, differentiable in every input."""

    def __init__(self, epsilon: float):
        super().__init__()
        self.epsilon = epsilon

    def forward(self, x, scale, bias, mean, var):
        shape = [1, -1] + [1] * (x.dim() - 2)
        return (x - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + self.epsilon) * scale.reshape(shape) \
            + bias.reshape(shape)


class ConstClip(nn.Module):
    """ONNX Clip with constant bounds, one of them absent (an empty input name)."""

    def __init__(self, lo: Optional[float], hi: Optional[float]):
        super().__init__()
        self.lo, self.hi = lo, hi

    def forward(self, x):
        return torch.clamp(x, self.lo, self.hi)


class GroupNorm(nn.Module):
    """ONNX GroupNormalization: scale and bias per group (opset 18) or per channel (opset 21)."""

    def __init__(self, groups: int, epsilon: float):
        super().__init__()
        self.groups, self.epsilon = groups, epsilon

    def forward(self, x, scale, bias):
        c, g = x.shape[1], self.groups
        if scale.numel() == g and g != c:  # opset 18: one scale and bias per group, shared by its channels
            scale, bias = scale.repeat_interleave(c // g), bias.repeat_interleave(c // g)
        return nn.functional.group_norm(x, g, scale, bias, self.epsilon)


class GridSample(nn.Module):
    """ONNX GridSample (opset 16's and 20's names for the modes) as torch's grid_sample."""

    _MODES = {"linear": "bilinear", "cubic": "bicubic"}

    def __init__(self, mode: str, padding_mode: str, align_corners: bool):
        super().__init__()
        self.mode, self.padding_mode, self.align_corners = self._MODES.get(mode, mode), padding_mode, align_corners

    def forward(self, x, grid):
        return nn.functional.grid_sample(x, grid, mode=self.mode, padding_mode=self.padding_mode,
                                         align_corners=self.align_corners)


class LpNorm(nn.Module):
    """ONNX LpNormalization: x divided by its p-norm along ``axis`` (a face embedding's last step)."""

    def __init__(self, axis: int, p: int):
        super().__init__()
        self.axis, self.p = axis, p

    def forward(self, x):
        return x / x.norm(p=self.p, dim=self.axis, keepdim=True)


class CastLike(nn.Module):
    """ONNX CastLike (the dynamo exporter writes it): x in the dtype of the second input."""

    def forward(self, x, like):
        return x.to(like.dtype)


class Trilu(nn.Module):
    """ONNX Trilu: the upper or lower triangle of the last two dims, from diagonal k."""

    def __init__(self, upper: bool):
        super().__init__()
        self.upper = upper

    def forward(self, x, k=None):
        k = int(k) if k is not None else 0
        return torch.triu(x, k) if self.upper else torch.tril(x, k)


class ScatterElements(nn.Module):
    """ONNX ScatterElements: updates written (or added, multiplied) at indices along ``axis``."""

    def __init__(self, axis: int, reduction: str):
        super().__init__()
        self.axis, self.reduction = axis, reduction

    def forward(self, x, indices, updates):
        axis = self.axis % x.dim()
        indices = torch.where(indices < 0, indices + x.shape[axis], indices).long()
        if self.reduction == "none":
            return x.scatter(axis, indices, updates)
        reduce = {"add": "sum", "mul": "prod", "max": "amax", "min": "amin"}[self.reduction]
        return x.scatter_reduce(axis, indices, updates, reduce=reduce, include_self=True)
