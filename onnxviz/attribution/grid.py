"""Activation grid: what layer L sees at every position of a photo (the Building Blocks' semantic dictionary).

For each spatial position of L the activation vector (C,) is rendered as a direction feature
visualization (``objectives.direction`` with a cosine term, one image per cell, ``batch`` cells
per optimization), and the cells are laid over the photo, each scaled by the vector's norm (a
position where L barely fires gets a small tile). Each cell also lists its top channels.

Maps larger than ``max_cells`` per side are average-pooled first (a 28x28 map would be 784
renders); the record says so. Cells whose norm is below ``min_norm`` of the largest are not rendered.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..errors import ObjectiveError
from ..optvis import objectives as obj
from ..optvis.forward import as_images, make_view, resolve_device


@dataclass
class GridResult:
    """``vectors``: (h, w, C) the (pooled) activation vectors; ``norms``: (h, w); ``icons``: {(row,
    col): (3, s, s)}; ``top``: {(row, col): [(channel, activation)]}; ``image``: the photo; ``record``."""

    layer: str
    image: np.ndarray
    vectors: np.ndarray
    norms: np.ndarray
    icons: dict
    top: dict
    record: dict = field(default_factory=dict)

    def picture(self, cell: int = 64):
        """The grid over the photo (PIL image)."""
        from ..preprocessing.images import to_pil
        from .pictures import tiles

        h, w = self.norms.shape
        peak = float(self.norms.max()) or 1.0
        scales = {rc: 0.25 + 0.75 * float(self.norms[rc]) / peak for rc in self.icons}
        under = to_pil(0.35 + 0.3 * self.image)  # faded photo under the tiles
        return tiles(self.icons, h, w, cell, scales, under=under)

    def _repr_png_(self) -> bytes:
        from ..display import png

        return png(self.picture())

    def to_json(self) -> dict:
        h, w = self.norms.shape
        cells = [{"row": r, "col": c, "norm": float(self.norms[r, c]), "rendered": (r, c) in self.icons,
                  "top_channels": [{"channel": u, "activation": a} for u, a in self.top[(r, c)]]}
                 for r in range(h) for c in range(w)]
        return dict(self.record, layer=self.layer, rows=h, cols=w, cells=cells)


def layer_map(model, image: np.ndarray, layer: str) -> np.ndarray:
    """(C, H, W) activations of ``layer`` for one image (onnxruntime), NCHW whatever the layout."""
    info = model.layer(layer)
    if info.layout not in ("NCHW", "NHWC"):
        raise ObjectiveError(f"layer {info.name!r} has no spatial map (layout {info.layout}): an activation grid "
                             "needs a convolutional layer")
    a = model.activations(model.prepare(image[None]), [info.name])[info.name][0]
    return a.transpose(2, 0, 1) if info.layout == "NHWC" else a


def pool_map(a: np.ndarray, max_cells: Optional[int]) -> np.ndarray:
    """Average-pool (C, H, W) so neither side exceeds max_cells (blocks of equal size, edges included)."""
    C, H, W = a.shape
    if not max_cells or (H <= max_cells and W <= max_cells):
        return a
    f = int(np.ceil(max(H, W) / max_cells))
    h, w = int(np.ceil(H / f)), int(np.ceil(W / f))
    out = np.zeros((C, h, w), np.float32)
    for r in range(h):
        for c in range(w):
            out[:, r, c] = a[:, r * f:(r + 1) * f, c * f:(c + 1) * f].mean((1, 2))
    return out


def render_directions(model, layer: str, vectors: np.ndarray, size: int = 64, steps: int = 128, batch: int = 16,
                      seed: int = 0, cossim_pow: float = 1.0, device=None, progress: bool = False) -> tuple:
    """Render each row of ``vectors`` (K, C) as a direction visualization; ``batch`` per optimization.

    Returns (icons (K, 3, size, size), record of the last batch). One torch view is reused.
    """
    from ..optvis import render

    dev = resolve_device(device)
    view = make_view(model, [layer], dev)
    out, record = [], {}
    from ..progress import bar

    chunks = bar(iterable=range(0, len(vectors), batch), total=-(-len(vectors) // batch), enabled=progress,
                 desc=f"render {len(vectors)} directions", unit="batch", leave=False)
    for i in chunks:
        v = np.ascontiguousarray(vectors[i:i + batch], np.float32)
        res = render(model, obj.direction(layer, v, cossim_pow=cossim_pow), batch=len(v), steps=steps, size=size,
                     seed=seed + i, device=dev, view=view)
        out.append(res.images)
        record = res.record
    icons = np.concatenate(out) if out else np.zeros((0, 3, size, size), np.float32)
    settings = {k: record.get(k) for k in ("steps", "size", "param", "transforms", "lr")}
    return icons, dict(settings, seed=seed, cossim_pow=cossim_pow, batch=batch)


def activation_grid(model, photo, layer: str, size: int = 64, steps: int = 128, batch: int = 16, seed: int = 0,
                    top: int = 3, max_cells: Optional[int] = 14, min_norm: float = 0.05, cossim_pow: float = 1.0,
                    device=None, progress: bool = False) -> GridResult:
    """The activation grid of one photo at ``layer`` (see the module doc). photo: a path or (3, H, W)."""
    image = as_images(model, photo)[0]
    info = model.layer(layer)
    full = layer_map(model, image, info.name)
    a = pool_map(full, max_cells)
    C, h, w = a.shape
    vectors = a.transpose(1, 2, 0)
    norms = np.linalg.norm(vectors, axis=2)
    peak = float(norms.max())
    cells = [(r, c) for r in range(h) for c in range(w) if peak > 0 and norms[r, c] >= min_norm * peak]
    icons_arr, settings = render_directions(model, info.name, np.stack([vectors[rc] for rc in cells]) if cells else
                                            np.zeros((0, C), np.float32), size, steps, batch, seed, cossim_pow,
                                            device, progress)
    icons = {rc: icons_arr[i] for i, rc in enumerate(cells)}
    tops = {}
    for r in range(h):
        for c in range(w):
            order = np.argsort(-vectors[r, c], kind="stable")[:top]
            tops[(r, c)] = [(int(u), float(vectors[r, c, u])) for u in order]
    record = {"kind": "activation_grid", "map_size": list(full.shape[1:]), "pooled": [h, w] != list(full.shape[1:]),
              "max_cells": max_cells, "min_norm": min_norm, "render": settings,
              "objective": "direction(layer, cell vector, cossim_pow) per cell"}
    return GridResult(info.name, image, vectors, norms, icons, tops, record)
