"""Build a static, Microscope-like site for one ONNX model and a run directory.

``build_site(model, out, run)`` writes a folder of static files (relative links only, no server
needed, works from file://) from the model's layers, the renders in ``run/render`` and the mining
results in ``run/mining`` (the run directory: see ``onnxviz.runs``)::

    out/index.html                  model page: facts, layers, a thumbnail per layer
    out/layers/<slug>/index.html    layer page: its pictures, and a grid of every unit and every concept
                                    of the layer (drawn by static/site.js from data.js: only the visible
                                    rows exist)
    out/layers/<slug>/data.js       the layer's units as data, one file (see data.py)
    out/layers/<slug>/unit.html     the unit page of every unit: unit.html?u=12 (static/unit.js)
    out/layers/<layer/name slug>/   a concept set of the layer (``onnxviz concepts``), the same three files
                                    with concepts as units (concepts.py; the layer's grid opens its unit
                                    page), its concept atlas in atlas/, linked from its layer and the model page
    out/img/<slug>/...              renders and their thumbnails; out/img/ex/ the dataset photos, once
    out/static/                     CSS and JS

A model with 20,000 units writes a few hundred files, not one page per unit. Names in an ONNX file
are untrusted: pages are rendered by Jinja2 with autoescape, the scripts insert text with
textContent only, file names are ``onnxviz.paths.slug`` of the names, and every write is checked
to stay inside ``out``.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional

from PIL import Image

from ..errors import UnsafePathError
from ..runs import RunDir, command
from . import blocks, concepts, gather
from .collect import MiningSource
from .data import LayerData, js_data
from .images import Pictures
from .parts import _fmt, model_facts, preprocessing, preprocessing_line
from ..files import remove_leftovers, save_picture, write_bytes, write_text

log = logging.getLogger(__name__)

PAGE_SIZE = 64  # units the layer grid draws beyond the screen (it draws only the rows in view, plus these)
_HERE = Path(__file__).parent


_OWNED = ("layers", "img", "static")  # folders of ``out`` that only the builder writes


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
        self.model_arg = model_arg or str(model.path or "model.onnx")
        self.run_arg = run_arg or (str(self.run) if self.run is not None else "runs/NAME")
        self.meta_opts = dict(meta_opts or {})  # the overrides the model was loaded with, for the commands shown
        self.mining = mining
        if self.mining is None and self.run is not None:
            from .mining_source import open_mining

            self.mining = open_mining(RunDir(self.run).mining, model)
        self.pictures = Pictures(self)
        self._written: set = set()

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
        write_text(p, text)  # atomic; replaces a symlink rather than writing through it
        self._written.add(rel)

    def save_image(self, rel: str, img: Image.Image) -> str:
        p = self.path(rel)
        if rel.endswith(".jpg"):
            save_picture(img, p, "JPEG", quality=85, optimize=True)
        else:
            save_picture(img, p, "PNG", optimize=False)
        self._written.add(rel)
        return rel

    def render_command(self, *args, **options) -> str:
        """The `onnxviz render` line shown on a page, with the run's --run and the model's overrides."""
        return command("render", self.model_arg, *args, **options, run=self.run_arg, **self.meta_opts)

    # ------------------------------------------------------------------ data
    def _images(self, infos: list) -> None:
        allowed = self.run.resolve() if self.run is not None else None
        for info in infos:
            info.layer_pictures = [p for p in info.layer_pictures if self.pictures.render(info.slug, p)]
            for u in info.units:
                u.pictures = sorted((p for p in u.pictures if self.pictures.render(info.slug, p)),
                                    key=lambda p: p.order)
                u.accentuations = [p for p in u.accentuations if self.pictures.render(info.slug, p)]
                for p in u.accentuations:
                    p.photo = self.pictures.photo(p.record.get("photo"), allowed)
                main = gather.main_picture(u.pictures)
                u.thumb = main.thumb if main is not None else ""
            self.pictures.layer_thumb(info)

    def _examples(self, info, unit: int) -> tuple:
        mining = info.mining or self.mining
        if mining is None or not info.mined or self.k == 0:
            return [], []
        top, bottom = mining.examples(info.name, unit, self.k)
        for which, examples in (("top", top), ("bottom", bottom)):
            for i, ex in enumerate(examples):
                base = f"img/{info.slug}/ex/{unit}-{which}-{i}"
                ex.site_image = self.pictures.example(ex.image, base)
                if ex.crop is not None:
                    ex.site_crop = self.pictures.crop(ex.crop, f"{base}-crop.png")
        return list(top), list(bottom)

    def _layer_data(self, info, views: list) -> dict:
        mining = info.mining or self.mining
        data = LayerData(info, statistic=getattr(mining, "statistic", "mean"),
                         mine_command=getattr(mining, "command", "") if info.mined else "", mark=gather.UNIT_MARK)
        if info.concept:
            base = info.concept["base"]
            data.doc["base"] = {"layer": base.name, "slug": base.slug}
        if info.concepts:
            data.doc["sets"] = concepts.grid_sets(info)  # the layer's grid shows its concepts beside its units
        top_units = concepts.unit_rows(info)
        note = ""
        for u in info.units:
            top, bottom = self._examples(info, u.index)
            if data.doc["frame"] is None and (top or bottom) and (top or bottom)[0].frame:
                data.doc["frame"] = [int(v) for v in (top or bottom)[0].frame]  # (w, h) of the example boxes
            spectrum = []
            if info.mined and self.k:
                spectrum, note = blocks.spectrum(self, mining, info.name, u.index, info.slug)
            data.unit(u, u.pictures, u.accentuations, top, bottom, spectrum,
                      top_units=top_units[u.index] if top_units else None)
        data.doc["spectrum_note"] = note
        return data.finish(views, [p for p in info.layer_pictures if p.kind == "caricature"])

    # ------------------------------------------------------------------ pages
    def _env(self):
        from jinja2 import Environment, FileSystemLoader, StrictUndefined

        env = Environment(loader=FileSystemLoader(str(_HERE / "templates")), autoescape=True,
                          undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        env.filters["fmt"] = _fmt
        return env

    def build(self) -> Path:
        """Write the site. index.html is removed first and written last, so a build killed halfway
        leaves a folder without one (``serve`` refuses it), never a front page over missing pages."""
        self.out.mkdir(parents=True, exist_ok=True)
        front = self.out / "index.html"
        if front.is_symlink() or front.is_file():
            front.unlink()  # a link itself, never what it points to
        infos = gather.layer_infos(self)
        gather.attach_pictures(self, infos)
        gather.attach_scores(self.mining, infos)
        concepts.attach_unit_labels(self, infos)
        used = {i.slug.lower() for i in infos}
        for info in infos:
            info.concepts = concepts.concept_infos(self, info, used)
        concept_sets = [c for info in infos for c in info.concepts]
        self._images(infos + concept_sets)
        self._static()
        env = self._env()
        common = dict(model_name=self.model.meta.name or Path(str(self.model.path)).stem, model_arg=self.model_arg,
                      **preprocessing_line(self.model.meta, self.model_arg))
        for i, info in enumerate(infos):
            views = blocks.photo_views(self, self.run, info.name, info.slug)
            atlas = blocks.atlas_page(self, self.run, info.name, info.slug)
            self.write_text(f"layers/{info.slug}/data.js", js_data("ONNXVIZ_LAYER", self._layer_data(info, views)))
            page = dict(common, root="../../", info=info, photo_views=views, atlas=atlas, page_size=self.page_size,
                        prev_layer=infos[i - 1] if i > 0 else None,
                        next_layer=infos[i + 1] if i + 1 < len(infos) else None)
            caricatures = [p for p in info.layer_pictures if p.kind == "caricature"]
            self.write_text(f"layers/{info.slug}/index.html", env.get_template("layer.html").render(
                caricatures=caricatures, layer_pictures=[p for p in info.layer_pictures if p.kind != "caricature"],
                has_scores=any(u.score is not None for u in info.units), **page))
            self.write_text(f"layers/{info.slug}/unit.html", env.get_template("unit.html").render(
                mined=info.mined, **page))
        for c in concept_sets:  # the same pages, concepts as units
            self.write_text(f"layers/{c.slug}/data.js", js_data("ONNXVIZ_LAYER", self._layer_data(c, [])))
            page = dict(common, root="../../", info=c, photo_views=[], atlas=c.concept["atlas"], page_size=self.page_size,
                        prev_layer=None, next_layer=None)
            self.write_text(f"layers/{c.slug}/index.html", env.get_template("layer.html").render(
                caricatures=[], layer_pictures=c.layer_pictures, has_scores=any(u.score is not None for u in c.units),
                **page))
            self.write_text(f"layers/{c.slug}/unit.html", env.get_template("unit.html").render(mined=c.mined, **page))
        self.write_text("index.html", env.get_template("model.html").render(  # last: the site is finished
            root="", layers=infos, facts=model_facts(self.model), prep=preprocessing(self.model.meta),
            runs=str(self.run) if self.run is not None else "", mined=self.mining is not None,
            mining_command=getattr(self.mining, "command", ""), **common))
        self._prune()
        return self.path("index.html")

    def _prune(self) -> None:
        """Remove what an earlier build left in the folders this builder owns (a page per unit of
        an older layout, images of renders since deleted, temporary files of a killed build), so a
        rebuild is what a fresh build is."""
        remove_leftovers(self.out, ["index.html"])
        for owned in _OWNED:
            root = self.out / owned
            if not root.is_dir():
                continue
            for f in sorted(root.rglob("*"), reverse=True):  # files before their folders
                rel = f.relative_to(self.out).as_posix()
                if f.is_dir() and not f.is_symlink():
                    if not any(f.iterdir()):
                        f.rmdir()
                elif rel not in self._written:
                    f.unlink()

    def _static(self) -> None:
        for f in sorted((_HERE / "static").iterdir()):
            if f.is_file():
                write_bytes(self.path(f"static/{f.name}"), f.read_bytes())
                self._written.add(f"static/{f.name}")


def build_site(model, out, run=None, mining: Optional[MiningSource] = None, **kwargs) -> Path:
    """Build the static site for ``model`` (a path or an ``onnxviz.load`` Model) into ``out``.

    ``run``: the run directory (``render/`` and ``mining/`` are read when present). ``mining``:
    a :class:`MiningSource` overriding ``run/mining``. Keyword arguments: ``page_size`` (units the
    layer grid draws beyond the rows on screen, 64), ``examples_per_unit`` (8), ``model_arg`` / ``run_arg`` (how
    the model and run directory are spelled in the CLI commands shown), ``meta_opts`` (the
    metadata overrides the model was loaded with, repeated in those commands). Returns the path
    of ``index.html``.
    """
    if run is not None and not Path(run).is_dir():
        from ..errors import RunDirError

        raise RunDirError(f"run directory not found: {run} (give the --out folder of `onnxviz mine` / `onnxviz "
                          "render`, or build the site without --run)")
    if isinstance(model, (str, os.PathLike)):
        from ..model import load

        kwargs.setdefault("model_arg", str(model))
        model = load(model)
    return SiteBuilder(model, out, run, mining, **kwargs).build()
