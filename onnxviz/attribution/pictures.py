"""Pictures of attributions, grids and atlases as PIL images (the writers save them as PNG).

Heat maps are signed: red for evidence for the target, blue against, the opacity growing with
|value| up to a robust maximum (the 99th percentile of |value|, so one hot pixel does not wash out
the rest), laid over a dimmed copy of the photo.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from PIL import Image, ImageDraw

from ..display import strip  # noqa: F401 - the one row of captioned pictures, shared with notebooks
from ..preprocessing.images import to_pil


def resize_map(heat: np.ndarray, size: tuple) -> np.ndarray:
    """A (h, w) map resized to (H, W) with bilinear interpolation (values kept, not normalized)."""
    h, w = size
    if heat.shape == (h, w):
        return heat.astype(np.float32)
    im = Image.fromarray(heat.astype(np.float32), "F").resize((w, h), Image.Resampling.BILINEAR)
    return np.asarray(im, np.float32)


def heat_overlay(image: np.ndarray, heat: np.ndarray, scale: Optional[float] = None, dim: float = 0.45) -> Image.Image:
    """The photo (3, H, W), dimmed to gray, with a signed heat map (h, w) over it (red +, blue -)."""
    photo = np.asarray(image, np.float32)
    H, W = photo.shape[-2:]
    v = resize_map(np.asarray(heat, np.float32), (H, W))
    s = scale if scale else float(np.percentile(np.abs(v), 99)) or float(np.abs(v).max()) or 1.0
    t = np.clip(v / s, -1, 1)
    gray = photo.mean(0, keepdims=True)
    base = (dim * gray + (1 - dim) * 0.5 * (photo + gray)).transpose(1, 2, 0)
    color = np.zeros((H, W, 3), np.float32)
    color[..., 0] = (t > 0)
    color[..., 1] = (t > 0) * np.clip(t - 0.6, 0, 1)  # very strong evidence turns yellow
    color[..., 2] = (t < 0)
    alpha = np.abs(t)[..., None] ** 0.7
    return to_pil(base * (1 - alpha) + color * alpha)


def tiles(icons: dict, rows: int, cols: int, cell: int, scales: Optional[dict] = None,
          background=(255, 255, 255), under: Optional[Image.Image] = None, borders: Optional[dict] = None) -> Image.Image:
    """A rows x cols mosaic: ``icons`` {(row, col): image}; ``scales`` {(row, col): 0..1} shrinks a
    tile about its cell's center (the grid's norm scaling); ``under``: a picture stretched under the
    whole mosaic (the photo of an activation grid); ``borders`` {(row, col): RGB}: a frame color."""
    canvas = Image.new("RGB", (cols * cell, rows * cell), background)
    if under is not None:
        canvas.paste(under.resize(canvas.size, Image.Resampling.BILINEAR), (0, 0))
    draw = ImageDraw.Draw(canvas)
    for (r, c), icon in icons.items():
        im = icon if isinstance(icon, Image.Image) else to_pil(icon)
        s = 1.0 if scales is None else float(scales.get((r, c), 1.0))
        side = max(2, int(round(cell * s)))
        im = im.resize((side, side), Image.Resampling.BILINEAR)
        x0, y0 = c * cell + (cell - side) // 2, r * cell + (cell - side) // 2
        canvas.paste(im, (x0, y0))
        if borders and (r, c) in borders:
            draw.rectangle([x0, y0, x0 + side - 1, y0 + side - 1], outline=tuple(borders[(r, c)]), width=2)
    return canvas


def class_color(index: int) -> tuple:
    """A stable, well-spread color for a class index (golden-ratio hues)."""
    import colorsys

    h = (index * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.85, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)
