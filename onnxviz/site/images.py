"""The site's pictures: renders copied once, thumbnails at the size they are shown, example photos shared.

Sizes follow the CSS (static/style.css): a grid card shows its thumbnail at ``THUMB_SIZE`` CSS
pixels, the model page a layer at ``LAYER_THUMB_SIZE``; a picture smaller than that is kept at its
own size (the browser scales it up, pixelated). A dataset photo is stored once for the whole site,
at most ``EXAMPLE_SIZE`` (the model's input size for the usual 224 px models): unit pages show it
whole at 96 px and zoom into its receptive-field box, which needs the input's own pixels.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from PIL import Image

from ..paths import inside, slug
from .parts import _at_most, _thumbnail, _to_pil

THUMB_SIZE = 144  # .vgrid .card img: 144x144 CSS px
LAYER_THUMB_SIZE = 64  # .lthumb: 64x64
EXAMPLE_SIZE = 224  # dataset photos: whole at 96 px, crops zoomed up to the input's pixels
PICTURE_SIZE = 224  # attribution views (.pic img)


class Pictures:
    """Copies pictures into a site through ``builder.save_image`` (which refuses paths outside the site)."""

    def __init__(self, builder):
        self.builder = builder
        self.shared: dict = {}  # source path (as given, and resolved) -> site path of the shared copy
        self.copies = 0

    def render(self, layer_slug: str, pic) -> bool:
        """Copy a render (and its MACO importance map) and make its thumbnail; False when unreadable."""
        img = _to_pil(pic.source)
        if img is None:
            return False
        stem = slug(pic.source.stem)
        pic.image = self.builder.save_image(f"img/{layer_slug}/{stem}.png", img)
        pic.thumb = self.builder.save_image(f"img/{layer_slug}/t/{stem}.{_ext(img, THUMB_SIZE)}",
                                            _at_most(img, THUMB_SIZE))
        pic.importance = ""
        name = pic.record.get("importance")
        if isinstance(name, str) and name:
            src = pic.source.parent / Path(name.replace("\\", "/")).name  # a file name beside the render, never a path
            imp = _to_pil(src) if src.is_file() and inside(src, pic.source.parent) else None
            if imp is not None:
                pic.importance = self.builder.save_image(f"img/{layer_slug}/{slug(src.stem)}.png", imp)
        return True

    def layer_thumb(self, info) -> None:
        """The layer's DeepDream, or a 2x2 mosaic of its first rendered units."""
        dream = [p for p in info.layer_pictures if p.kind == "deepdream"]
        size = LAYER_THUMB_SIZE
        if dream:
            img = _to_pil(self.builder.path(dream[0].image))
            info.thumb = self.builder.save_image(f"img/{info.slug}/layer.png", _thumbnail(img, size))
            return
        rendered = [u for u in info.units if u.thumb][:4]
        if not rendered:
            return
        info.thumb_units = [u.index for u in rendered]
        cell = size // 2
        mosaic = Image.new("RGB", (size, size), (240, 240, 240))
        for i, u in enumerate(rendered):
            img = _to_pil(self.builder.path(u.thumb))
            tile = img.resize((cell, cell), Image.NEAREST if max(img.size) <= cell else Image.LANCZOS)
            mosaic.paste(tile, ((i % 2) * cell, (i // 2) * cell))
        info.thumb = self.builder.save_image(f"img/{info.slug}/layer.png", mosaic)

    def example(self, image, base: str) -> str:
        """A dataset image in the site: a file is copied once for the whole site, an array once per use."""
        if image is None:
            return ""
        if isinstance(image, (str, Path)):
            if str(image) in self.shared:  # the same spelling: no file system call
                return self.shared[str(image)]
            key = str(Path(image).resolve())
            if key in self.shared:
                self.shared[str(image)] = self.shared[key]
            else:
                img = _to_pil(image)
                if img is None:
                    return ""
                self.shared[key] = self.shared[str(image)] = self.builder.save_image(
                    f"img/ex/{self.copies}.jpg", _at_most(img, EXAMPLE_SIZE).convert("RGB"))
                self.copies += 1
            return self.shared[key]
        img = _to_pil(image)
        return self.builder.save_image(f"{base}.png", _at_most(img, EXAMPLE_SIZE)) if img is not None else ""

    def crop(self, image, rel: str) -> str:
        img = _to_pil(image)
        return self.builder.save_image(rel, _at_most(img, 96)) if img is not None else ""

    def photo(self, path, allowed: Optional[Path]) -> str:
        """The photo an accentuation started from, when it lies inside the run directory (records are
        untrusted: a path elsewhere on this machine is never copied into a site)."""
        if not isinstance(path, str) or not path or allowed is None:
            return ""
        p = Path(path)
        if not p.is_file() or not inside(p, allowed):
            return ""
        return self.example(p, "")


def _ext(img: Image.Image, size: int) -> str:
    """PNG for small pictures (exact pixels of a tiny render), JPEG for the rest."""
    return "png" if img.width * img.height <= 96 * 96 or max(img.size) <= size // 2 else "jpg"
