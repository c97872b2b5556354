"""Building-blocks views on the site, from what the run directory holds:

- a unit's spectrum of examples (mining's uniform sample: most negative to most positive);
- attribution and activation-grid views of photos (``<run>/attribution/<photo>/``, written by
  `onnxviz attribute` and `onnxviz grid`) on layer pages, and each unit's share on unit pages;
- an atlas page per layer that has one (``<run>/atlas/<layer>/``, written by `onnxviz atlas`),
  pannable and zoomable, at ``layers/<slug>/atlas/index.html``.

Only files that exist are shown; nothing here computes anything.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..paths import slug
from ..runs.layout import RunDir
from .parts import _thumbnail, _to_pil

log = logging.getLogger(__name__)


@dataclass
class PhotoView:
    """One attributed photo at one layer: site paths of its pictures and the numbers behind them."""

    name: str
    target: str
    label: str = ""
    photo: str = ""
    ig: str = ""
    spatial: str = ""
    channels_strip: str = ""
    grid: str = ""
    command: str = ""
    grid_command: str = ""
    channels: list = field(default_factory=list)  # attribution of every channel of the layer
    top_channels: list = field(default_factory=list)
    grid_cells: int = 0

    def unit_share(self, unit: int) -> Optional[tuple]:
        """(attribution of ``unit``, its rank among the layer's channels, 1 = most) or None."""
        if not self.channels or unit >= len(self.channels):
            return None
        v = self.channels[unit]
        return v, 1 + sum(1 for x in self.channels if x > v)


def photo_views(builder, run: Optional[Path], layer: str, layer_slug: str) -> list:
    """The attribution/grid views of every attributed photo that has something for ``layer``."""
    base = RunDir(run).attribution if run is not None else None
    if base is None or not base.is_dir():
        return []
    views = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        rec = _read(folder / "attribution.json") or {}
        grid = _read(folder / f"grid_{slug(layer)}.json")
        entry = rec.get("layer") if (rec.get("layer") or {}).get("layer") == layer else None
        if entry is None and grid is None:
            continue
        v = PhotoView(name=folder.name, target=rec.get("target", ""), label=rec.get("label") or "",
                      command=rec.get("command", ""), grid_command=(grid or {}).get("command", ""))
        dest = f"img/{layer_slug}/attr/{slug(folder.name)}"
        files = rec.get("files", {})
        v.photo = _copy(builder, folder / files.get("photo", "photo.png"), f"{dest}/photo.png")
        if entry is not None:
            v.ig = _copy(builder, folder / files.get("input_ig", ""), f"{dest}/ig.png")
            v.spatial = _copy(builder, folder / files.get("spatial", ""), f"{dest}/spatial.png")
            v.channels_strip = _copy(builder, folder / files.get("channels", ""), f"{dest}/channels.png", big=True)
            v.channels = list(entry.get("channels") or [])
            v.top_channels = list(entry.get("top_channels") or [])[:6]
        if grid is not None:
            v.grid = _copy(builder, folder / grid.get("image", ""), f"{dest}/grid.png", big=True)
            v.grid_cells = sum(1 for c in grid.get("cells", []) if c.get("rendered"))
        views.append(v)
    return views


def atlas_page(builder, run: Optional[Path], layer: str, layer_slug: str) -> str:
    """Copy the layer's atlas into the site and write its page; returns the page's site path or ''."""
    from ..attribution.page import atlas_html

    folder = RunDir(run).atlas(layer) if run is not None else None
    data = _read(folder / "atlas.json") if folder is not None else None
    if not data or data.get("layer") != layer:
        return ""
    rel = f"layers/{layer_slug}/atlas"
    for key in ("image", "class_image"):
        if data.get(key):
            img = _to_pil(folder / data[key])
            if img is None:
                return ""
            builder.save_image(f"{rel}/{data[key]}", img)
    builder.write_text(f"{rel}/index.html", atlas_html(data, back="../index.html"))
    return f"{rel}/index.html"


def spectrum(builder, mining, layer: str, unit: int, layer_slug: str) -> tuple:
    """(examples most negative first, note) of a unit's spectrum, with images copied once."""
    get = getattr(mining, "spectrum", None)
    if get is None:
        return [], ""
    items, note = get(layer, unit)
    for i, ex in enumerate(items):
        ex.site_image = builder.pictures.example(ex.image, f"img/{layer_slug}/sp/{unit}-{i}")
    return items, note


def _read(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError) as exc:
        log.warning("skipping %s: %s", path, exc)
        return None


def _copy(builder, src: Path, rel: str, big: bool = False) -> str:
    if not src.name or not src.is_file():
        return ""
    img = _to_pil(src)
    if img is None:
        return ""
    return builder.save_image(rel, img if big else _thumbnail(img, 224))
