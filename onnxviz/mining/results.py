"""Reading mining results: examples per (layer, unit, stat, direction), thumbnails, crops, sheets."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import OnnxVizError
from ..preprocessing.meta import ModelMeta
from ..paths import slug
from ..layers import receptive_fields as C
from ..runs.layout import RunDir
from . import pictures
from .datasets import ImageSource, open_source
from .store import FILENAME, Store

# examples and scores rank by the channel mean over positions unless asked otherwise: the statistic
# a channel render maximizes, so a render and its dataset examples compare like with like
DEFAULT_STAT = "mean"


@dataclass
class Example:
    """One dataset example of a unit.

    ``activation`` (float; NaN stays NaN), ``index`` (image index in the source), ``key`` (path
    in the folder/archive), ``position`` ((y, x) of the spatial maximum in the layer's map, None
    for (N, C) layers), ``input_box`` (left, top, right, bottom) of the receptive field in
    model-input pixels, ``box`` the same region in the original photo's pixels. ``image`` and
    ``crop`` are paths of PNGs (the whole image as the model saw it; the receptive-field crop of
    the original photo), made on first access and cached under ``<run>/mining/``.
    """

    layer: str
    unit: int
    stat: str
    direction: str
    rank: int
    index: int
    key: str
    activation: float
    position: Optional[tuple]
    input_box: tuple
    box: tuple
    image_size: tuple
    _results: "Results" = None

    @property
    def label(self) -> str:
        return Path(self.key).name

    @property
    def image(self) -> Path:
        return self._results.thumbnail(self.index)

    @property
    def crop(self) -> Path:
        return self._results.crop(self.index, self.box)

    def _repr_png_(self) -> bytes:
        """The receptive-field crop (the whole image for an (N, C) layer), as a notebook shows it."""
        return (self.crop if self.position is not None else self.image).read_bytes()


class Examples(list):
    """A unit's ranked examples (a list of :class:`Example`) that shows itself as a contact strip."""

    def picture(self, crops: bool = True):
        """The examples side by side (at most 16), captioned with activation and file name (PIL image)."""
        from PIL import Image

        from ..display import MAX_PICTURES, strip

        shown = self[:MAX_PICTURES]
        pics = [Image.open(e.crop if crops and e.position is not None else e.image) for e in shown]
        caps = [f"#{e.rank} {e.activation:.3g}\n{e.label}" for e in shown]
        title = f"{shown[0].layer}:{shown[0].unit} {shown[0].direction} by {shown[0].stat}" if shown else ""
        return strip(pics, caps, title=title)

    def _repr_png_(self) -> Optional[bytes]:
        from ..display import png

        return png(self.picture()) if self else None


class Results:
    """Mining results of one run directory (read-only)."""

    def __init__(self, run_dir):
        self.run_dir = Path(run_dir)
        self.dir = RunDir(self.run_dir).mining
        path = self.dir / FILENAME
        if not path.exists():
            raise OnnxVizError(f"no mining results in {self.run_dir} (expected {path}); run `onnxviz mine` first")
        self.store = Store(path, readonly=True)
        self.config = self.store.get("config") or {}
        self.command = self.store.get("command") or ""
        self.summary = self.store.get("summary") or {}
        self.complete = bool(self.store.get("complete"))
        self._layers = {r["name"]: r for r in self.store.layers()}
        self.meta = ModelMeta.from_dict(self.config["preprocessing"])
        self._source: Optional[ImageSource] = None
        self._reservoir = None

    # ------------------------------------------------------------------ what is there
    @property
    def layers(self) -> list:
        return list(self._layers)

    def units(self, layer: str) -> int:
        return self._layer(layer)["units"]

    def skipped(self) -> list:
        """[(image index, key, reason)] of files that could not be read."""
        return self.store.skipped()

    def name(self, layer: str) -> str:
        """The mined layer's name for any name the model accepts (alias such as block_7, raw tensor name)."""
        if layer in self._layers:
            return layer
        model_path = self.config.get("model")
        if model_path and Path(model_path).exists():
            from ..model import load

            try:  # the run's own preprocessing: no inference, only the layer names are needed
                resolved = load(model_path, meta=self.meta).layer(layer).name
            except OnnxVizError:
                resolved = None
            if resolved in self._layers:
                return resolved
        raise OnnxVizError(f"layer {layer!r} was not mined; mined layers: {', '.join(self._layers)}")

    def _layer(self, layer: str) -> dict:
        return self._layers[self.name(layer)]

    def scores(self, layer: str, stat: str = DEFAULT_STAT) -> list:
        """Per unit, the best (top-1) activation (None where unknown): for sorting a layer's units."""
        layer = self.name(layer)
        s = self.store.scores(layer, stat)
        return [s.get(u) for u in range(self.units(layer))]

    # ------------------------------------------------------------------ examples
    def examples(self, layer: str, unit: int, stat: str = DEFAULT_STAT, direction: str = "top",
                 k: Optional[int] = None) -> list:
        """The ranked examples (best first) of one unit: :class:`Examples`, a list of :class:`Example`."""
        layer = self.name(layer)
        rec = self._layer(layer)
        unit = int(unit)
        if not 0 <= unit < rec["units"]:
            raise OnnxVizError(f"unit {unit} out of range: {layer} has {rec['units']} units")
        if stat not in ("mean", "max") or direction not in ("top", "bottom"):
            raise OnnxVizError("stat must be 'mean' or 'max', direction 'top' or 'bottom'")
        field = rec["field"]
        f = tuple(C.Field(*a) for a in field) if field else C.GLOBAL
        hw = tuple(self.meta.input_size)
        out = []
        for rank, idx, value, y, x, key, w, h in self.store.examples(layer, unit, stat, direction, k):
            pos = (y, x) if y is not None else None
            ibox = C.input_box(f, pos, hw)
            box = C.to_original(ibox, (w, h), self.meta) if w else (0, 0, 0, 0)
            out.append(Example(layer, unit, stat, direction, rank, idx, key,
                               float("nan") if value is None else float(value), pos, ibox, box, (w, h), self))
        return Examples(out)

    # ------------------------------------------------------------------ spectrum and atlas samples
    def spectrum(self, layer: str, unit: int, stat: str = "mean", quantiles=None) -> list:
        """A unit's examples near quantiles of its activation over the dataset (most negative first).

        [{quantile, value, index, key, rank, sample, exact, rank_error}] from the run's uniform
        sample (spectrum.py): ``exact`` when the sample is the whole dataset, else ``rank_error``
        bounds how far (in quantile units, 95%) the example's quantile may be from ``quantile``.
        Empty when the run has no spectrum sample.
        """
        from . import spectrum as SP

        layer = self.name(layer)
        if self._reservoir is None:
            try:
                self._reservoir = SP.load(self.store.db) or False
            except (KeyError, TypeError, ValueError, EOFError):  # a damaged blob or head of the spectrum table
                raise self.store.damaged("spectrum sample (table spectrum)") from None
        if not self._reservoir:
            return []
        out = SP.quantile_examples(self._reservoir, layer, int(unit), stat, quantiles or SP.QUANTILES)
        for e in out:
            row = self.store.image(e["index"])
            e["key"] = row[0] if row else None
        return out

    @property
    def atlas_layers(self) -> list:
        """Layers with activation vectors sampled for an atlas (``mine --atlas-layers``)."""
        from . import atlas_samples as SM

        return SM.layers(self.store.db)

    def atlas_samples(self, layer: str) -> dict:
        """{"vectors": (M, C) float32, "image", "y", "x": (M,)} sampled during mining (see samples.py)."""
        from . import atlas_samples as SM

        try:
            return SM.load(self.store.db, self.name(layer))
        except (TypeError, ValueError):  # a damaged vector (odd length, or lengths that differ)
            raise self.store.damaged(f"atlas samples of {layer!r} (table atlas_samples)") from None

    # ------------------------------------------------------------------ pictures
    @property
    def source(self) -> Optional[ImageSource]:
        if self._source is None:
            try:
                self._source = open_source(self.config["source"])
            except OnnxVizError:
                return None
        return self._source

    def _bytes(self, index: int) -> bytes:
        src = self.source
        row = self.store.image(index)
        if src is None or row is None or index >= len(src) or src.key(index) != row[0]:
            raise OnnxVizError(f"the images of this run ({self.config.get('source')}) are not available any more")
        return src.read(index)

    def thumbnail(self, index: int) -> Path:
        """PNG of image ``index`` as the model saw it (cached in mining/images/)."""
        p = self.dir / "images" / f"{index}.png"
        if not p.exists():
            pictures.render_thumb(self._bytes(index), self.meta, p)
        return p

    def crop(self, index: int, box: tuple) -> Path:
        """PNG of a box of the original image ``index`` (cached in mining/crops/)."""
        b = tuple(int(round(v)) for v in box)
        p = self.dir / "crops" / f"{index}_{b[0]}_{b[1]}_{b[2]}_{b[3]}.png"
        if not p.exists():
            pictures.render_crop(self._bytes(index), b, p)
        return p

    def write_thumbnails(self) -> int:
        """Thumbnails of every image that appears in some list (so the run folder is self-contained)."""
        rows = self.store.db.execute("SELECT DISTINCT image FROM examples").fetchall()
        n = 0
        for (idx,) in rows:
            try:
                self.thumbnail(idx)
                n += 1
            except OnnxVizError:
                break
        return n

    def contact_sheet(self, layer: str, unit: int, out, stat: str = DEFAULT_STAT, direction: str = "top",
                      k: Optional[int] = None, crops: bool = True) -> Path:
        """A PNG grid of a unit's examples (crops around the maximum, or whole images)."""
        ex = self.examples(layer, unit, stat, direction, k)
        paths = [e.crop if crops and e.position is not None else e.image for e in ex]
        caps = [f"{e.activation:.3g} {e.label}" for e in ex]
        return pictures.contact_sheet(paths, caps, Path(out), title=f"{layer}:{unit} {direction} by {stat}")

    def default_sheet_path(self, layer: str, unit: int, stat: str, direction: str) -> Path:
        return self.dir / "sheets" / f"{slug(layer)}_{unit}_{stat}_{direction}.png"

    def close(self) -> None:
        self.store.close()

    def _repr_html_(self) -> str:
        """The run at a glance: source, images, whether it is complete, and the mined layers."""
        from ..display import table

        s = self.summary
        caption = (f"mining run {self.run_dir}: {s.get('images', '?')} images from {self.config.get('source')}, "
                   f"top {self.config.get('top', '?')} / bottom {self.config.get('bottom', '?')}"
                   f"{'' if self.complete else ' (incomplete: run mine again to resume)'}")
        return table(["layer", "units"], [(name, rec["units"]) for name, rec in self._layers.items()], caption)


def open_results(run_dir) -> Results:
    """Open the mining results of a run directory (``<run_dir>/mining/mining.sqlite``)."""
    return Results(run_dir)
