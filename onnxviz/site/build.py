"""Build a static, Microscope-like site for one ONNX model and a run directory.

``build_site(model, out, runs)`` writes a folder of static files (relative links only, no server
needed) from the model's layers, the renders in ``runs/render`` and the mining results in
``runs/mining``::

    out/index.html                          model page: facts, layers, a thumbnail per layer
    out/layers/<slug>/index.html, page-N.html   layer grid (``page_size`` units per page)
    out/layers/<slug>/units.js              the layer's units as data (sorting / filtering)
    out/layers/<slug>/units/<unit>.html     unit page
    out/img/<slug>/...                      copied images and thumbnails
    out/static/                             CSS and JS

Names in an ONNX file are untrusted: pages are rendered by Jinja2 with autoescape, file names are
``onnxviz.names.slug`` of the names, and every write is checked to stay inside ``out``.
"""
from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from ..paths import slug
from .collect import UNIT_KINDS, Example, MiningSource, Picture, collect_renders

log = logging.getLogger(__name__)

PAGE_SIZE = 256
THUMB_SIZE = 160  # longest side of a thumbnail, pixels
LAYER_THUMB_SIZE = 96
_HERE = Path(__file__).parent
_UNIT_MARK = "@@UNIT@@"


class UnsafePathError(ValueError):
    """A write would land outside the output folder."""


# --------------------------------------------------------------------------- helpers
def _q(value) -> str:
    return shlex.quote(str(value))


def render_command(model_arg: str, layer: str, unit, out_dir: str) -> str:
    """The `onnxviz render` line that renders one unit."""
    return f"onnxviz render {_q(model_arg)} {_q(f'{layer}:{unit}')} --out {_q(out_dir)}"


def layer_render_command(model_arg: str, layer: str, out_dir: str) -> str:
    """The `onnxviz render` line that renders every unit of a layer (batched)."""
    return f"onnxviz render {_q(model_arg)} --layer {_q(layer)} --all --out {_q(out_dir)}"


def photo_render_command(model_arg: str, layer: str, out_dir: str, kind: str = "deepdream") -> str:
    """The `onnxviz render` line for a DeepDream or a caricature of a photo at a layer."""
    return f"onnxviz render {_q(model_arg)} --{kind} {_q(layer)} --image PHOTO.jpg --out {_q(out_dir)}"


def _to_pil(obj) -> Optional[Image.Image]:
    """A PIL RGB image from a path, a PIL image or an array (H,W,3 uint8 or 3,H,W / H,W,3 float in [0,1])."""
    if obj is None:
        return None
    if isinstance(obj, Image.Image):
        img = obj
    elif isinstance(obj, (str, os.PathLike)):
        try:
            with Image.open(obj) as f:
                img = f.convert("RGB")
        except (OSError, ValueError) as exc:
            log.warning("cannot read image %s: %s", obj, exc)
            return None
    else:
        a = np.asarray(obj)
        if a.ndim == 4 and a.shape[0] == 1:
            a = a[0]
        if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
            a = a.transpose(1, 2, 0)
        if a.ndim == 3 and a.shape[-1] == 1:
            a = a[..., 0]
        if a.dtype != np.uint8:
            a = (np.clip(a.astype(np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)
        img = Image.fromarray(a)
    return img.convert("RGB") if img.mode != "RGB" else img


def _crop_css(box: tuple, frame: tuple) -> str:
    """CSS background that shows ``box`` (left, top, right, bottom) of an image of size ``frame``."""
    w, h = frame
    left, top, right, bottom = (float(v) for v in box)
    bw, bh = max(right - left, 1e-6), max(bottom - top, 1e-6)
    px = 0.0 if bw >= w else 100.0 * left / (w - bw)
    py = 0.0 if bh >= h else 100.0 * top / (h - bh)
    return (f"background-size:{100.0 * w / bw:.2f}% {100.0 * h / bh:.2f}%;"
            f"background-position:{px:.2f}% {py:.2f}%")


def _at_most(img: Image.Image, size: int) -> Image.Image:
    """The image shrunk to ``size`` on its longest side; small images stay as they are."""
    return _thumbnail(img, size) if max(img.size) > size else img


def _thumbnail(img: Image.Image, size: int) -> Image.Image:
    w, h = img.size
    scale = size / max(w, h)
    if abs(scale - 1) < 1e-6:
        return img.copy()
    resample = Image.NEAREST if scale > 1 and max(w, h) <= 64 else Image.LANCZOS
    return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), resample)


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return ""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{v:.{digits}g}"


def _js_data(obj) -> str:
    """JSON safe to embed in a script (no '<', '>', '&' or line separators unescaped)."""
    s = json.dumps(obj, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@dataclass
class UnitInfo:
    index: int
    label: str = ""
    pictures: list = field(default_factory=list)  # Picture, feature visualizations of this unit
    score: Optional[float] = None  # top activation from mining
    thumb: str = ""
    command: str = ""


@dataclass
class LayerInfo:
    layer: object  # onnxviz Layer
    slug: str
    units: list = field(default_factory=list)  # UnitInfo
    layer_pictures: list = field(default_factory=list)  # deepdream, caricature, unit-less objectives
    thumb: str = ""
    thumb_units: list = field(default_factory=list)
    mined: bool = False
    command_all: str = ""
    command_tmpl: str = ""
    command_dream: str = ""
    command_caricature: str = ""

    @property
    def name(self) -> str:
        return self.layer.name

    @property
    def rendered(self) -> int:
        return sum(1 for u in self.units if u.pictures)


# --------------------------------------------------------------------------- the builder
class SiteBuilder:
    """Builds the site; see :func:`build_site`."""

    def __init__(self, model, out, runs=None, mining: Optional[MiningSource] = None, *, page_size: int = PAGE_SIZE,
                 examples_per_unit: int = 8, model_arg: Optional[str] = None, runs_arg: Optional[str] = None):
        self.model = model
        self.out = Path(out).resolve()
        self.runs = Path(runs) if runs is not None else None
        self.page_size = max(1, int(page_size))
        self.k = max(0, int(examples_per_unit))
        self.model_arg = model_arg or str(getattr(model, "path", "model.onnx"))
        runs_arg = runs_arg or (str(self.runs) if self.runs is not None else "runs/NAME")
        self.render_out = str(Path(runs_arg) / "render")
        self.mining = mining
        if self.mining is None and self.runs is not None:
            from .mining_source import open_mining

            self.mining = open_mining(self.runs / "mining", model)
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
            tmpl = render_command(self.model_arg, layer.name, _UNIT_MARK, self.render_out)
            info.units = [UnitInfo(index=u, label=str(labels[u]) if show_labels else "",
                                   command=tmpl.replace(_UNIT_MARK, str(u))) for u in range(units)]
            info.command_all = layer_render_command(self.model_arg, layer.name, self.render_out)
            info.command_dream = photo_render_command(self.model_arg, layer.name, self.render_out, "deepdream")
            info.command_caricature = photo_render_command(self.model_arg, layer.name, self.render_out, "caricature")
            info.command_tmpl = tmpl
            infos.append(info)
        return infos

    def _attach_pictures(self, infos: list) -> None:
        pics = {}
        if self.runs is not None:
            pics = collect_renders(self.runs / "render", [i.name for i in infos])
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

    def _model_facts(self) -> list:
        m = self.model
        proto = m.proto
        facts = [("Name", m.meta.name or Path(str(m.path)).stem)]
        if m.meta.source:
            facts.append(("Weights", m.meta.source))
        facts.append(("File", Path(str(m.path)).name))
        try:
            size = os.path.getsize(m.path)
            facts.append(("File size", f"{size / 1e6:.2f} MB" if size >= 1e5 else f"{size / 1e3:.1f} kB"))
        except OSError:
            pass
        opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in proto.opset_import)
        facts.append(("Opset", opsets))
        facts.append(("IR version", str(proto.ir_version)))
        if proto.producer_name:
            facts.append(("Producer", f"{proto.producer_name} {proto.producer_version}".strip()))
        params = sum(int(np.prod(t.dims)) for t in proto.graph.initializer)
        facts.append(("Parameters", f"{params:,}"))
        facts.append(("Nodes", f"{len(proto.graph.node):,}"))
        shape = "×".join("N" if d is None else str(d) for d in m.input_shape)
        facts.append(("Input", f"{m.input_name} [{shape}]"))
        outs = []
        for o in proto.graph.output:
            dims = [d.dim_param or str(d.dim_value) if (d.dim_param or d.dim_value) else "?" for d in o.type.tensor_type.shape.dim]
            outs.append(f"{o.name} [{'×'.join(dims)}]")
        facts.append(("Outputs", ", ".join(outs)))
        return facts

    def _preprocessing(self) -> list:
        meta = self.model.meta
        rows = [("Input size", "×".join(str(v) for v in meta.input_size) + (" (any size)" if meta.dynamic_size else "")),
                ("Layout", meta.layout), ("Channel order", meta.channel_order),
                ("Value range", f"[{_fmt(meta.value_range[0])}, {_fmt(meta.value_range[1])}]"),
                ("Mean", ", ".join(_fmt(v) for v in meta.mean)), ("Std", ", ".join(_fmt(v) for v in meta.std)),
                ("Resize", f"shorter side {meta.resize}, center crop" if meta.resize else "to input size"),
                ("Interpolation", meta.interpolation)]
        if meta.labels:
            rows.append(("Labels", f"{len(meta.labels)} classes"))
        return rows

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
            root="", layers=infos, facts=self._model_facts(), prep=self._preprocessing(),
            runs=str(self.runs) if self.runs is not None else "", mined=self.mining is not None,
            mining_command=getattr(self.mining, "command", ""), render_out=self.render_out, **common))
        for i, info in enumerate(infos):
            prev_layer = infos[i - 1] if i > 0 else None
            next_layer = infos[i + 1] if i + 1 < len(infos) else None
            self._layer_pages(env, info, prev_layer, next_layer, common)
            self._unit_pages(env, info, common)
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
                layer_page=_page_file(page), mining_command=mine_cmd,
                statistic=getattr(self.mining, "statistic", "mean"), **common))


def _page_file(page: int) -> str:
    return "index.html" if page == 1 else f"page-{page}.html"


def build_site(model, out, runs=None, mining: Optional[MiningSource] = None, **kwargs) -> Path:
    """Build the static site for ``model`` (a path or an ``onnxviz.load`` Model) into ``out``.

    ``runs``: the run directory (``render/`` and ``mining/`` are read when present). ``mining``:
    a :class:`MiningSource` overriding ``runs/mining``. Keyword arguments: ``page_size`` (units per
    layer page, 256), ``examples_per_unit`` (8), ``model_arg`` / ``runs_arg`` (how the model and
    run directory are spelled in the CLI commands shown). Returns the path of ``index.html``.
    """
    if isinstance(model, (str, os.PathLike)):
        import onnxviz

        kwargs.setdefault("model_arg", str(model))
        model = onnxviz.load(model)
    return SiteBuilder(model, out, runs, mining, **kwargs).build()
