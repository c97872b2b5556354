"""How results show themselves: PNG bytes of a picture, a row of captioned pictures, an HTML table.

The result classes a notebook user meets (``RenderResult``, mining ``Results`` and a unit's
``Examples``, the attribution results, ``Model``) call these from ``_repr_png_``/``_repr_html_``, so
a Jupyter cell that ends with a result shows the picture or the table instead of a repr line. The
writers use ``strip`` too (the attribution channel strips), so a notebook and a run directory show
the same picture.
"""
from __future__ import annotations

import html
import io
from typing import Sequence

from PIL import Image, ImageDraw

from .preprocessing.images import to_pil

MAX_PICTURES = 16  # a row wider than this is cut (a batch render of 512 channels is not a picture)


def png(picture) -> bytes:
    """PNG bytes of a PIL image or an image array ((3, H, W), (H, W, 3), float in [0, 1] or uint8)."""
    im = picture if isinstance(picture, Image.Image) else to_pil(picture)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def strip(images: Sequence, captions: Sequence[str], cell: int = 128, title: str = "") -> Image.Image:
    """Pictures (PIL images or arrays) side by side with a caption (one or two lines) under each."""
    cap_h, head = 26, (16 if title else 0)
    n = max(1, len(images))
    sheet = Image.new("RGB", (n * (cell + 4) + 4, head + cell + cap_h + 8), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((4, 2), title[:n * 22], fill="black")
    for i, (im, cap) in enumerate(zip(images, captions)):
        im = im if isinstance(im, Image.Image) else to_pil(im)
        im = im.convert("RGB")
        im.thumbnail((cell, cell))
        x, y = 4 + i * (cell + 4), head + 4
        sheet.paste(im, (x + (cell - im.width) // 2, y + (cell - im.height) // 2))
        for j, line in enumerate(str(cap).split("\n")[:2]):
            draw.text((x, y + cell + 1 + 12 * j), line[:22], fill="black")
    return sheet


def table(headers: Sequence[str], rows: Sequence[Sequence], caption: str = "", limit: int = 200) -> str:
    """An HTML table; every cell is escaped (layer and file names come from untrusted files)."""
    esc = lambda v: html.escape("" if v is None else str(v))  # noqa: E731
    head = "".join(f"<th style='text-align:left'>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td style='text-align:left'>{esc(v)}</td>" for v in r) + "</tr>"
                   for r in rows[:limit])
    more = f"<tr><td colspan='{len(headers)}'>... {len(rows) - limit} more</td></tr>" if len(rows) > limit else ""
    cap = f"<caption style='text-align:left'>{esc(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}{more}</tbody></table>"


def model_table(model) -> str:
    """A model as ``onnxviz inspect`` shows it: input, preprocessing, then every layer (HTML)."""
    m = model.meta
    caption = (f"{model.path or m.name}: input {model.input_name} {list(model.input_shape)} {model.input_layout}; "
               f"preprocessing ({m.preprocessing_source}): {m.input_size[0]}x{m.input_size[1]} {m.channel_order}, "
               f"range {list(m.value_range)}, mean {list(m.mean)}, std {list(m.std)}; {len(model.layers)} layers")
    shape = lambda s: "x".join("N" if d is None and i == 0 else ("?" if d is None else str(d))  # noqa: E731
                               for i, d in enumerate(s))
    rows = [(lay.name, lay.op, shape(lay.shape), lay.units, ", ".join(lay.aliases)) for lay in model.layers]
    evidence = "".join(f"<li>{html.escape(str(line))}</li>" for line in m.evidence or [])
    evidence += "".join(f"<li><b>conflict:</b> {html.escape(str(line))}</li>" for line in m.conflicts or [])
    from .preprocessing.uncertainty import notice

    warning = notice(m, str(model.path or "MODEL"))
    return (f"<p><b>warning:</b> {html.escape(warning)}</p>" if warning else "") + table(
        ["layer", "op", "shape", "units", "aliases"], rows, caption) + (
        f"<p>evidence for the preprocessing:</p><ul>{evidence}</ul>" if evidence else "")
