"""A layer's units as one compact data file (``layers/<slug>/data.js``) read by the layer and unit pages.

The file assigns ``window.ONNXVIZ_LAYER`` (a script, not a JSON file: ``fetch`` of a local file is
refused from file:// pages; :func:`read_js_data` reads it back). Format (version 1)::

    {"v": 1, "layer", "units_n", "statistic", "frame": [w, h] of example boxes,
     "mark": the unit placeholder in "tmpl" (command templates: render, checked, maco, accentuate),
     "mine": the mining command, "cmds": [command, ...] (pictures point into it),
     "images": [[site path, caption], ...] (examples point into it: a photo is listed once),
     "units": [[unit, score, thumb, label], ...] (the grid),
     "detail": [per unit: null or {"p": [picture], "x": [accentuation], "t": [example], "b": [example],
                "s": [[image, activation, quantile label]], "best": activation,
                "cu": [[unit, weight]] a concept's strongest units of its base layer}],
     "base": {"layer", "slug"} (a concept set: the layer it was learned on),
     "sets": [{"name", "slug", "op", "line", "tmpl", "atlas", "units": [[concept, score, thumb, label], ...]}]
             (a layer's concept sets, drawn in its grid beside its units; details in the set's own data.js),
     "spectrum_note", "views": [attributed photos: {name, target, label, img, channels}],
     "caricatures": [picture]}

    picture: {"k": kind, "o": objective, "i": image, "c": command index, "a": activation,
              "r": activation / best example, "seed", "steps", "dead", "param", "imp": importance map,
              "rel": {"v": pass|suspect|unknown, "s": score, "m": meaning, "t": threshold},
              "ph": photo, "acc": {"fd": feature distance, "rmse": pixel RMSE, "ap": activation of the photo}}
    example: [image index, activation, box [l, t, r, b] or 0 (0: the whole image), position [y, x] or 0,
             crop path (only when the mining source gave a crop picture)]

Numbers keep 4 significant digits: the pages show 3 or 4.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

from .gather import is_maco

VERSION = 1
RELIABILITY = ("pass", "suspect", "unknown")


def js_data(name: str, obj) -> str:
    """``window.NAME = JSON.parse("...");``: loads as a script from file:// (fetch cannot), and V8 reads
    a JSON string about 3x faster than the same object as a literal (a 0.6 MB layer: 40 vs 110 ms).
    No '<', '>' or '&' appears unescaped, so the text is safe inside any page."""
    s = json.dumps(obj, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    s = s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f"window.{name} = JSON.parse({json.dumps(s)});\n"


def read_js_data(path) -> dict:
    """The object a data file written by :func:`js_data` holds (for tests and tools)."""
    text = Path(path).read_text(encoding="utf-8")
    body = text.split("=", 1)[1].strip()
    if not (body.startswith("JSON.parse(") and body.endswith(");")):
        raise ValueError(f"{path}: not a data file written by onnxviz.site")
    return json.loads(json.loads(body[len("JSON.parse("):-2]))


def num(value, digits: int = 4) -> Optional[float]:
    """A finite number rounded to ``digits`` significant digits, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    if not math.isfinite(value):
        return None
    value = float(f"{value:.{digits}g}")
    return int(value) if value.is_integer() and abs(value) < 1e15 else value  # "0" rather than "0.0"


class LayerData:
    """Accumulates one layer's data file: shared commands and images are stored once and referenced."""

    def __init__(self, info, statistic: str = "mean", mine_command: str = "", frame=None, mark: str = ""):
        self.info = info
        self.cmds: dict = {}
        self.images: dict = {}
        self.detail: list = [None] * len(info.units)
        self.doc = {"v": VERSION, "layer": info.name, "units_n": len(info.units), "statistic": statistic,
                    "frame": list(frame) if frame else None, "mark": mark, "tmpl": info.templates,
                    "mine": mine_command, "spectrum_note": ""}

    def command(self, text: str) -> int:
        return self.cmds.setdefault(text or "", len(self.cmds))

    def image(self, path: str, caption: str = "") -> int:
        """The index of a site image in this layer's table (its caption: the first one given)."""
        if path not in self.images:
            self.images[path] = [len(self.images), caption]
        elif caption and not self.images[path][1]:
            self.images[path][1] = caption
        return self.images[path][0]

    def picture(self, pic, best: Optional[float] = None) -> dict:
        """A render as data (see the module docstring); ``best``: the best example's activation, for the ratio."""
        rec = pic.record
        e = {"k": pic.kind, "o": pic.objective, "i": pic.image, "c": self.command(pic.command)}
        act = num(pic.activation)
        if act is not None:
            e["a"] = act
            if best not in (None, 0):
                e["r"] = num(pic.activation / best, 3)
        for key in ("seed", "steps"):
            if isinstance(rec.get(key), int) and not isinstance(rec.get(key), bool):
                e[key] = rec[key]
        if rec.get("dead") is True:
            e["dead"] = True
        if is_maco(pic):
            e["param"] = "maco"
        if getattr(pic, "importance", ""):
            e["imp"] = pic.importance
        rel = reliability(rec.get("reliability"))
        if rel is not None:
            e["rel"] = rel
        if getattr(pic, "photo", ""):
            e["ph"] = pic.photo
        acc = rec.get("accentuation")
        if isinstance(acc, dict):
            e["acc"] = {"fd": num(acc.get("feature_distance")), "rmse": num(acc.get("pixel_rmse")),
                        "ap": num(acc.get("activation_photo"))}
        return e

    def example(self, ex) -> list:
        img = self.image(ex.site_image, ex.label or "") if ex.site_image else -1
        box = 0
        if ex.box and ex.site_image and ex.frame:
            box = [int(round(float(v))) for v in ex.box]
            if box == [0, 0, int(ex.frame[0]), int(ex.frame[1])]:
                box = 0  # the whole image: nothing to zoom into
        pos = [int(v) for v in ex.position] if ex.position else 0
        row = [img, num(ex.activation), box, pos]
        if ex.site_crop:
            row.append(ex.site_crop)
        return row

    def unit(self, u, pictures: list, accentuations: list, top: list, bottom: list, spectrum: list,
             top_units: Optional[list] = None) -> None:
        best = top[0].activation if top else None
        d = {}
        if pictures:
            d["p"] = [self.picture(p, best) for p in pictures]
        if accentuations:
            d["x"] = [self.picture(p, best) for p in accentuations]
        if top:
            d["t"] = [self.example(e) for e in top]
            d["best"] = num(best)
        if bottom:
            d["b"] = [self.example(e) for e in bottom]
        if spectrum:
            d["s"] = [[self.image(e.site_image, "") if e.site_image else -1, num(e.activation), e.label]
                      for e in spectrum]
        if top_units:
            d["cu"] = [[int(unit), num(w, 3)] for unit, w in top_units]
        self.detail[u.index] = d or None

    def finish(self, views: list, caricatures: list) -> dict:
        doc = dict(self.doc)
        doc["units"] = [[u.index, num(u.score), u.thumb, u.label] for u in self.info.units]
        doc["detail"] = self.detail
        doc["views"] = [{"name": v.name, "target": v.target, "label": v.label, "img": v.spatial or v.photo,
                         "channels": [num(c) for c in v.channels]} for v in views if v.channels]
        doc["caricatures"] = [self.picture(p) for p in caricatures]
        doc["cmds"] = list(self.cmds)
        doc["images"] = [[path, caption] for path, (_, caption) in self.images.items()]
        return doc


def reliability(report) -> Optional[dict]:
    """The badge data of a render's reliability report (``onnxviz.optvis.reliability``), or None when unchecked."""
    if not isinstance(report, dict):
        return None
    if isinstance(report.get("renders"), list) and report["renders"]:  # several images: the first one's
        report = report["renders"][0] if isinstance(report["renders"][0], dict) else {}
    verdict = report.get("verdict")
    verdict = verdict if verdict in RELIABILITY else "unknown"
    meaning = report.get("meaning") if isinstance(report.get("meaning"), str) else ""
    return {"v": verdict, "s": num(report.get("score"), 3), "m": meaning, "t": num(report.get("threshold"), 3)}
