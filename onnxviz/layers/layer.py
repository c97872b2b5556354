"""``Layer``: one tensor of a model a person may look at (its name, shape, layout, units, aliases).

A leaf record that discovery fills and ``tokens`` reads, so neither has to import the other for it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


@dataclass
class Layer:
    """One tensor of the model that a person may want to look at."""

    name: str  # short, readable, stable
    tensor: str  # the ONNX tensor name
    node: str  # the ONNX node that produces it
    op: str
    shape: tuple  # batch dim as None, unknown dims as None
    layout: str  # "NCHW", "NHWC", "NLC" (tokens) or "NC"
    index: int  # topological position among all nodes
    aliases: list = field(default_factory=list)
    # token layers (N, tokens, C) of a vision transformer: tokens = prefix (CLS, distillation,
    # registers) + a grid of patch tokens; ``patch_tensor`` is the patch embedding (N, C, gh, gw)
    # whose receptive field is the image patch each token covers
    prefix_tokens: Optional[int] = None
    grid: Optional[tuple] = None
    patch_tensor: Optional[str] = None

    @property
    def channel_axis(self) -> int:
        return 1 if self.layout in ("NCHW", "NC") else len(self.shape) - 1

    @property
    def units(self) -> Optional[int]:
        return self.shape[self.channel_axis] if self.shape else None

    @property
    def spatial(self) -> Optional[tuple]:
        if self.layout == "NCHW":
            return tuple(self.shape[2:4])
        if self.layout == "NHWC":
            return tuple(self.shape[1:3])
        if self.layout == "NLC":
            return (self.shape[1],)
        return None

    def to_dict(self) -> dict:
        return {"name": self.name, "tensor": self.tensor, "node": self.node, "op": self.op,
                "shape": list(self.shape), "layout": self.layout, "units": self.units,
                "spatial": list(self.spatial) if self.spatial else None, "index": self.index,
                "aliases": list(self.aliases), **({"prefix_tokens": self.prefix_tokens, "grid": list(self.grid),
                                                   "patch_tensor": self.patch_tensor} if self.grid else {})}
