"""Build a static, Microscope-like site for one ONNX model and a run directory.

``build_site(model, out, run)`` writes a folder of static files (relative links only, no server
needed) from the model's layers, the renders in ``run/render`` and the mining results in
``run/mining`` (the run directory: see ``onnxviz.runs``)::

    out/index.html                          model page: facts, layers, a thumbnail per layer
    out/layers/<slug>/index.html, page-N.html   layer grid (``page_size`` units per page)
    out/layers/<slug>/units.js              the layer's units as data (sorting / filtering)
    out/layers/<slug>/units/<unit>.html     unit page
    out/img/<slug>/...                      copied images and thumbnails
    out/static/                             CSS and JS

Names in an ONNX file are untrusted: pages are rendered by Jinja2 with autoescape, file names are
``onnxviz.paths.slug`` of the names, and every write is checked to stay inside ``out``.
"""
from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from ..paths import slug
from ..runs import RENDER_DIR, UNIT_KINDS, Picture, collect_renders, command
from . import blocks
from .collect import MiningSource
from .parts import (LayerInfo, UnitInfo, _at_most, _crop_css, _fmt, _js_data, _thumbnail, _to_pil, model_facts,
                    preprocessing)

log = logging.getLogger(__name__)

PAGE_SIZE = 256
THUMB_SIZE = 160  # longest side of a thumbnail, pixels
LAYER_THUMB_SIZE = 96
_HERE = Path(__file__).parent
_UNIT_MARK = "@@UNIT@@"


class UnsafePathError(ValueError):
    """A write would land outside the output folder."""


# --------------------------------------------------------------------------- the builder
class SiteBuilder:
    """Builds the site; see :func:`build_site`."""

    def __init__(self, model, out, run=None, mining: Optional[MiningSource] = None, *, page_size: int = PAGE_SIZE,
                 examples_per_unit: int = 8, model_arg: Optional[str] = None, run_arg: Optional[str] = None,
                 meta_opts: Optional[dict] = None):
        self.model = model
        self.out = Path(out).resolve()
        self.run = Path(run) if run is not None else None
        self.page_size = max(1, int(page_size))
        self.k = max(0, int(examples_per_unit))
        self.model_arg = model_arg or str(getattr(model, "path", "model.onnx"))
        run_arg = run_arg or (str(self.run) if self.run is not None else "runs/NAME")
        self.render_out = str(Path(run_arg) / RENDER_DIR)
        self.meta_opts = dict(meta_opts or {})  # the overrides the model was loaded with, for the commands shown
        self.mining = mining
        if self.mining is None and self.run is not None:
            from .mining_source import open_mining

            self.mining = open_mining(self.run / "mining", model)
        self._written: set = set()
        self._shared: dict = {}  # source image path -> site path (each example photo copied once)

    # ------------------------------------------------------------------ safe writes
    def path(self, rel: str) -> Path:
        """The absolute path of a site-relative path, refusing anything that leaves ``out``."""
        p = (self.out / rel).resolve()
        try:
            p.relative_to(self.out)
        except ValueError:
            raise UnsafePathError(f"refusing to write outside {self.out}: {rel!r}") from None
        return p

    def write_text(self, rel: str, text: str) -> None:
        p = self.path(rel)
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.is_symlink():
            p.unlink()
        p.write_text(text, encoding="utf-8")
        self._written.add(rel)

    def save_image(self, rel: str, img: Image.Image) -> str:
        p = self.path(rel)
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.is_symlink():
            p.unlink()
        if rel.endswith(".jpg"):
            img.save(p, "JPEG", quality=85, optimize=True)
        else:
            img.save(p, "PNG", optimize=False)
        self._written.add(rel)
        return rel

    # ------------------------------------------------------------------ data
    def _render_command(self, *args, **options) -> str:
        """The `onnxviz render` line shown on a page, with the run's --out and the model's overrides."""
        return command("render", self.model_arg, *args, **options, out=self.render_out, **self.meta_opts)

    def _layers(self) -> list:
        infos, used = [], set()
        labels = list(getattr(self.model.meta, "labels", None) or [])
        last = self.model.layers[-1].name if self.model.layers else None
        for layer in self.model.layers:
            s = slug(layer.name)
            base, n = s, 1
            while s.lower() in used:  # case-insensitive filesystems
                n += 1
                s = f"{base}-{n}"
            used.add(s.lower())
            info = LayerInfo(layer=layer, slug=s)
            units = int(layer.units or 0)
            show_labels = labels and len(labels) == units and (layer.name == last or layer.op in ("Gemm", "MatMul", "Softmax"))
            tmpl = self._render_command(f"{layer.name}:{_UNIT_MARK}")
            info.units = [UnitInfo(index=u, label=str(labels[u]) if show_labels else "",
                                   command=tmpl.replace(_UNIT_MARK, str(u))) for u in range(units)]
            info.command_all = self._render_command(layer=layer.name, all=True)
            info.command_dream = self._render_command(deepdream=layer.name, image="PHOTO.jpg")
            info.command_caricature = self._render_command(caricature=layer.name, image="PHOTO.jpg")
            info.command_tmpl = tmpl
            infos.append(info)
        return infos

    def _attach_pictures(self, infos: list) -> None:
        pics = {}
        if self.run is not None:
            pics = collect_renders(self.run / RENDER_DIR, [i.name for i in infos])
        for info in infos:
            for pic in pics.get(info.name, []):
                if pic.unit is not None and pic.kind in UNIT_KINDS and 0 <= pic.unit < len(info.units):
                    info.units[pic.unit].pictures.append(pic)
                else:
                    info.layer_pictures.append(pic)

    def _attach_scores(self, infos: list) -> None:
        if self.mining is None:
            return
        mined = set(self.mining.layers)
        for info in infos:
            if info.name not in mined:
                continue
            info.mined = True
            scores = self.mining.scores(info.name)
            if scores is None:
                continue
            scores = np.asarray(scores, dtype=np.float64).reshape(-1)
            for u in info.units:
                if u.index < len(scores) and np.isfinite(scores[u.index]):
                    u.score = float(scores[u.index])

    # ------------------------------------------------------------------ images
    def _copy_picture(self, info: LayerInfo, pic: Picture) -> bool:
        img = _to_pil(pic.source)
        if img is None:
            return False
        stem = slug(pic.source.stem)
        pic.image = self.save_image(f"img/{info.slug}/{stem}.png", img)
        thumb = _thumbnail(img, THUMB_SIZE)
        ext = "png" if img.width * img.height <= 128 * 128 else "jpg"
        pic.thumb = self.save_image(f"img/{info.slug}/t/{stem}.{ext}", thumb)
        return True

    def _images(self, infos: list) -> None:
        for info in infos:
            info.layer_pictures = [p for p in info.layer_pictures if self._copy_picture(info, p)]
            for u in info.units:
                u.pictures = [p for p in u.pictures if self._copy_picture(info, p)]
                u.pictures.sort(key=lambda p: p.order)
                if u.pictures:
                    u.thumb = u.pictures[0].thumb
            self._layer_thumb(info)

    def _layer_thumb(self, info: LayerInfo) -> None:
        """The layer's DeepDream, or a 2x2 mosaic of its first rendered units."""
        dream = [p for p in info.layer_pictures if p.kind == "deepdream"]
        if dream:
            img = _to_pil(self.path(dream[0].image))
            info.thumb = self.save_image(f"img/{info.slug}/layer.png", _thumbnail(img, LAYER_THUMB_SIZE))
            return
        rendered = [u for u in info.units if u.pictures][:4]
        if not rendered:
            return
        info.thumb_units = [u.index for u in rendered]
        cell = LAYER_THUMB_SIZE // 2
        mosaic = Image.new("RGB", (LAYER_THUMB_SIZE, LAYER_THUMB_SIZE), (240, 240, 240))
        for i, u in enumerate(rendered):
            img = _to_pil(self.path(u.pictures[0].image))
            tile = img.resize((cell, cell), Image.NEAREST if max(img.size) <= cell else Image.LANCZOS)
            mosaic.paste(tile, ((i % 2) * cell, (i // 2) * cell))
        info.thumb = self.save_image(f"img/{info.slug}/layer.png", mosaic)

    def _examples(self, info: LayerInfo, unit: int) -> tuple:
        if self.mining is None or not info.mined or self.k == 0:
            return [], []
        top, bottom = self.mining.examples(info.name, unit, self.k)
        for which, examples in (("top", top), ("bottom", bottom)):
            for i, ex in enumerate(examples):
                ex.site_image = self._example_image(ex.image, f"img/{info.slug}/ex/{unit}-{which}-{i}")
                crop = _to_pil(ex.crop)
                if crop is not None:
                    ex.site_crop = self.save_image(f"img/{info.slug}/ex/{unit}-{which}-{i}-crop.png",
                                                   _at_most(crop, THUMB_SIZE))
                elif ex.box and ex.site_image and ex.frame:
                    ex.crop_style = _crop_css(ex.box, ex.frame)
        return list(top), list(bottom)

    def _example_image(self, image, base: str) -> str:
        """Copy an example image once: a photo that is an example of many units is stored once."""
        if image is None:
            return ""
        if isinstance(image, (str, Path)):
            key = str(image)
            if key not in self._shared:
                img = _to_pil(image)
                self._shared[key] = self.save_image(f"img/examples/{len(self._shared)}.jpg",
                                                    _thumbnail(img, THUMB_SIZE).convert("RGB"))
            return self._shared[key]
        img = _to_pil(image)
        return self.save_image(f"{base}.png", _at_most(img, THUMB_SIZE))

    # ------------------------------------------------------------------ pages
    def _env(self):
        from jinja2 import Environment, FileSystemLoader, StrictUndefined

        env = Environment(loader=FileSystemLoader(str(_HERE / "templates")), autoescape=True,
                          undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        env.filters["fmt"] = _fmt
        return env

    def build(self) -> Path:
        self.out.mkdir(parents=True, exist_ok=True)
        infos = self._layers()
        self._attach_pictures(infos)
        self._attach_scores(infos)
        self._images(infos)
        self._static()
        env = self._env()
        common = dict(model_name=self.model.meta.name or Path(str(self.model.path)).stem, model_arg=self.model_arg)
        self.write_text("index.html", env.get_template("model.html").render(
            root="", layers=infos, facts=model_facts(self.model), prep=preprocessing(self.model.meta),
            runs=str(self.run) if self.run is not None else "", mined=self.mining is not None,
            mining_command=getattr(self.mining, "command", ""), render_out=self.render_out, **common))
        for i, info in enumerate(infos):
            prev_layer = infos[i - 1] if i > 0 else None
            next_layer = infos[i + 1] if i + 1 < len(infos) else None
            views = blocks.photo_views(self, self.run, info.name, info.slug)
            atlas = blocks.atlas_page(self, self.run, info.name, info.slug)
            self._layer_pages(env, info, prev_layer, next_layer, dict(common, photo_views=views, atlas=atlas))
            self._unit_pages(env, info, dict(common, photo_views=views, atlas=atlas))
        return self.path("index.html")

    def _static(self) -> None:
        for f in sorted((_HERE / "static").iterdir()):
            if f.is_file():
                dest = self.path(f"static/{f.name}")
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, dest)

    def _layer_pages(self, env, info: LayerInfo, prev_layer, next_layer, common) -> None:
        units = info.units
        pages = max(1, -(-len(units) // self.page_size))
        data = {"page_size": self.page_size, "command": info.command_tmpl, "mark": _UNIT_MARK,
                "units": [[u.index, u.score, u.thumb, u.label] for u in units]}
        self.write_text(f"layers/{info.slug}/units.js", f"window.ONNXVIZ_UNITS = {_js_data(data)};\n")
        tmpl = env.get_template("layer.html")
        caricatures = [p for p in info.layer_pictures if p.kind == "caricature"]
        others = [p for p in info.layer_pictures if p.kind != "caricature"]
        for page in range(1, pages + 1):
            chunk = units[(page - 1) * self.page_size: page * self.page_size]
            self.write_text(f"layers/{info.slug}/{_page_file(page)}", tmpl.render(
                root="../../", info=info, chunk=chunk, page=page, pages=pages, page_file=_page_file,
                prev_layer=prev_layer, next_layer=next_layer, caricatures=caricatures, layer_pictures=others,
                has_scores=any(u.score is not None for u in units), **common))

    def _unit_pages(self, env, info: LayerInfo, common) -> None:
        tmpl = env.get_template("unit.html")
        caricatures = [p for p in info.layer_pictures if p.kind == "caricature"]
        mine_cmd = getattr(self.mining, "command", "") if info.mined else ""
        for u in info.units:
            top, bottom = self._examples(info, u.index)
            spectrum, spectrum_note = (blocks.spectrum(self, self.mining, info.name, u.index, info.slug)
                                       if info.mined and self.k else ([], ""))
            best = top[0].activation if top else None
            ratios = []
            for p in u.pictures:
                act = p.activation
                ratios.append(act / best if act is not None and best not in (None, 0) else None)
            page = u.index // self.page_size + 1
            self.write_text(f"layers/{info.slug}/units/{u.index}.html", tmpl.render(
                root="../../../", info=info, unit=u, pictures=list(zip(u.pictures, ratios)), top=top, bottom=bottom,
                best=best, caricatures=[c for c in caricatures if c.unit in (None, u.index)],
                prev_unit=u.index - 1 if u.index > 0 else None,
                next_unit=u.index + 1 if u.index + 1 < len(info.units) else None,
                layer_page=_page_file(page), mining_command=mine_cmd, spectrum=spectrum, spectrum_note=spectrum_note,
                statistic=getattr(self.mining, "statistic", "mean"), **common))


def _page_file(page: int) -> str:
    return "index.html" if page == 1 else f"page-{page}.html"


def build_site(model, out, run=None, mining: Optional[MiningSource] = None, **kwargs) -> Path:
    """Build the static site for ``model`` (a path or an ``onnxviz.load`` Model) into ``out``.

    ``run``: the run directory (``render/`` and ``mining/`` are read when present). ``mining``:
    a :class:`MiningSource` overriding ``run/mining``. Keyword arguments: ``page_size`` (units per
    layer page, 256), ``examples_per_unit`` (8), ``model_arg`` / ``run_arg`` (how the model and
    run directory are spelled in the CLI commands shown), ``meta_opts`` (the metadata overrides
    the model was loaded with, repeated in those commands). Returns the path of ``index.html``.
    """
    if isinstance(model, (str, os.PathLike)):
        from ..model import load

        kwargs.setdefault("model_arg", str(model))
        model = load(model)
    return SiteBuilder(model, out, run, mining, **kwargs).build()
