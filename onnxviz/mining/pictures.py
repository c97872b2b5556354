"""Pictures of dataset examples: receptive-field crops, the image as the model saw it, contact sheets."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from ..files import save_picture
from ..preprocessing.images import fit, open_rgb


def render_crop(data: bytes, box: tuple, out: Path, max_side: int = 224) -> Path:
    """Cut ``box`` (original-photo pixels) out of the image bytes and save it as PNG."""
    img = open_rgb(data)
    l, t, r, b = (int(round(v)) for v in box)
    r, b = max(r, l + 1), max(b, t + 1)
    crop = img.crop((l, t, r, b))
    if max(crop.size) > max_side:
        crop.thumbnail((max_side, max_side))
    return save_picture(crop, out, "PNG")


def render_thumb(data: bytes, meta, out: Path) -> Path:
    """The image as the model saw it (resized and cropped to the input size), as PNG."""
    img = fit(open_rgb(data), tuple(meta.input_size), meta.resize, meta.interpolation)
    return save_picture(img, out, "PNG")


def contact_sheet(paths: Sequence, captions: Sequence[str], out: Path, cell: int = 128, columns: int = 8,
                  title: str = "") -> Path:
    """A grid of images with one caption under each, as PNG."""
    from PIL import Image, ImageDraw

    n = max(1, len(paths))
    cols = min(columns, n)
    rows = math.ceil(n / cols)
    cap_h, head = 14, (18 if title else 0)
    sheet = Image.new("RGB", (cols * (cell + 4) + 4, head + rows * (cell + cap_h + 4) + 4), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((4, 3), title, fill="black")
    for i, (p, cap) in enumerate(zip(paths, captions)):
        r, c = divmod(i, cols)
        x, y = 4 + c * (cell + 4), head + 4 + r * (cell + cap_h + 4)
        try:
            im = Image.open(p).convert("RGB")
            im.thumbnail((cell, cell))
            sheet.paste(im, (x + (cell - im.width) // 2, y + (cell - im.height) // 2))
        except Exception:  # noqa: BLE001 - a missing picture leaves its cell empty
            pass
        draw.text((x, y + cell + 1), cap[:22], fill="black")
    return save_picture(sheet, out)

