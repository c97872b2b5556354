"""Activation atlas (Carter et al. 2019): the whole space a layer represents, on one picture.

1. Activation vectors of layer L sampled at random positions during mining (``onnxviz mine
   --atlas-layers L``, see mining/samples.py) are read from the run.
2. They are reduced to 2-D (UMAP with the cosine metric, as Lucid did; t-SNE or PCA when
   umap-learn is missing or ``method`` says so: the JSON's ``layout`` records which one ran).
3. The layout is clipped to its 1st-99th percentiles, scaled to [0, 1] and binned into a
   ``grid`` x ``grid`` grid; cells with at least ``min_count`` vectors are kept.
4. Each cell's mean vector is rendered as a direction feature visualization (``batch`` cells per
   optimization, seeded).
5. For classifiers (a class atlas): each cell's support for each class is the change of the
   logits when every position of L holds the cell's mean vector instead of the dataset's mean
   vector, computed through the rest of the network after L (head.py). By completeness this is
   the total integrated-gradients attribution of L to each logit along that straight path. Cells
   are then colored by the class they support most (``class_picture``). Models whose later layers
   bypass L (skip connections around it) get no class atlas, and the JSON says why.
6. ``concepts`` (a dictionary of L, ``onnxviz.concepts``): the atlas of concepts. The layout is made
   from the vectors' concept codes instead of their raw activations, each cell's vector is the
   decoder's reconstruction of its mean code (what the concepts say the cell is), and each cell
   names its strongest concepts (``top_concepts``) instead of its strongest channels.

    a = build_atlas(model, "runs/mnv2", "block_7", grid=20)
    write_atlas(a, "runs/mnv2/atlas/block_7")   # atlas.png, atlas_classes.png, atlas.json, atlas.html
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import OnnxVizError
from .head import class_support
from .grid import render_directions
from ..files import remove_leftovers, save_picture, write_json, write_text


@dataclass
class Atlas:
    """``cells``: [{row, col, count, norm, mean (C,), top_channels, classes}]; ``icons``: {(row, col):
    (3, s, s)}; ``coords``: (M, 2) the 2-D layout in [0, 1]; ``record``: settings, timings."""

    layer: str
    grid: int
    cells: list
    icons: dict
    coords: np.ndarray
    record: dict = field(default_factory=dict)

    def picture(self, cell: int = 64):
        from .pictures import tiles

        return tiles(self.icons, self.grid, self.grid, cell)

    def _repr_png_(self) -> bytes:
        from ..display import png

        return png(self.picture(cell=48))

    def class_picture(self, cell: int = 64, classes=None):
        """Each icon framed in the color of the class it supports most; with ``classes`` (indices)
        only the cells whose top class is among them are shown."""
        from .pictures import class_color, tiles

        keep, borders = {}, {}
        for c in self.cells:
            top = c.get("classes") or []
            if not top:
                continue
            best = top[0]["class"]
            if classes is not None and best not in classes:
                continue
            rc = (c["row"], c["col"])
            keep[rc] = self.icons[rc]
            borders[rc] = class_color(best)
        return tiles(keep, self.grid, self.grid, cell, borders=borders)

    def to_json(self) -> dict:
        cells = [{k: v for k, v in c.items() if k != "mean"} | {"mean_activation": [round(float(x), 5) for x in c["mean"]]}
                 for c in self.cells]
        return dict(self.record, layer=self.layer, grid=self.grid, cells=cells)


def reduce_2d(x: np.ndarray, method: str = "auto", seed: int = 0) -> tuple:
    """(coords (M, 2), method used, note). method: "auto" (umap, else tsne, else pca), "umap", "tsne", "pca"."""
    note = ""
    if method in ("auto", "umap"):
        try:
            import umap  # noqa: F401 - slow to import (numba); only here
        except ImportError:
            if method == "umap":
                raise OnnxVizError("umap-learn is not installed: pip install umap-learn, or use --method tsne/pca")
            method, note = "tsne", "umap-learn not installed: t-SNE fallback"
        else:

            reducer = umap.UMAP(n_components=2, n_neighbors=max(2, min(20, len(x) - 1)), min_dist=0.01,
                                metric="cosine", random_state=seed, n_jobs=1)
            return reducer.fit_transform(x).astype(np.float32), "umap", note
    if method == "tsne":
        try:
            from sklearn.manifold import TSNE
        except ImportError:
            method, note = "pca", (note + "; " if note else "") + "scikit-learn not installed: PCA fallback"
        else:
            perplexity = float(max(2, min(30, (len(x) - 1) // 3)))
            t = TSNE(n_components=2, metric="cosine", init="pca", perplexity=perplexity, random_state=seed)
            return t.fit_transform(x).astype(np.float32), "tsne", note
    if method != "pca":
        raise OnnxVizError(f"unknown layout method {method!r}: use auto, umap, tsne or pca")
    centered = x - x.mean(0)
    _, _, vt = np.linalg.svd(centered, full_matrices=False)
    return (centered @ vt[:2].T).astype(np.float32), "pca", note


def normalize_layout(coords: np.ndarray, keep: float = 0.9) -> np.ndarray:
    """Frame the dense region of a 2-D layout in [0, 1]: per axis, the shortest interval that holds
    ``keep`` of the points is stretched to the canvas and the rest is clipped to its border.

    Lucid clipped each axis at its 1st and 99th percentiles; a UMAP or t-SNE layout often has a
    small far cluster (a few percent of the points: one odd photo sampled at many positions), which
    then stretches the axis and leaves the dense region a third of the canvas. The shortest interval
    ignores whichever side the outliers are on."""
    coords = np.asarray(coords, np.float64)
    out = np.empty_like(coords)
    for axis in range(coords.shape[1]):
        v = np.sort(coords[:, axis])
        n = len(v)
        w = max(1, min(n - 1, int(np.ceil(keep * n)) - 1))
        if n < 3:
            lo, hi = v[0], v[-1]
        else:
            i = int(np.argmin(v[w:] - v[:n - w]))
            lo, hi = v[i], v[i + w]
        out[:, axis] = (coords[:, axis] - lo) / max(hi - lo, 1e-9)
    return np.clip(out, 0, 1).astype(np.float32)


def canvas_fill(coords: np.ndarray, grid: int) -> float:
    """Fraction of the grid's cells that hold at least one point of a normalized layout."""
    bins = np.minimum((np.asarray(coords) * grid).astype(np.int64), grid - 1)
    return len({(int(a), int(b)) for a, b in bins}) / float(grid * grid)


def build_atlas(model, run, layer: str, grid: int = 20, method: str = "auto", min_count: int = 2, size: int = 64,
                steps: int = 128, batch: int = 16, seed: int = 0, cossim_pow: float = 1.0, classes: bool = True,
                max_samples: Optional[int] = None, top: int = 3, device=None, progress: bool = False,
                concepts=None) -> Atlas:
    """The activation atlas of ``layer`` from a mining run (a path or an open Results); see the module doc."""
    from ..mining import open_results

    t0 = time.perf_counter()
    results = open_results(run) if isinstance(run, (str, Path)) else run
    info = model.layer(layer)
    name = results.name(info.name) if info.name not in results.atlas_layers else info.name
    s = results.atlas_samples(name)
    x = s["vectors"]
    if len(x) < 3:
        raise OnnxVizError(f"the run has {len(x)} activation samples of {name}; mine it with "
                           f"`onnxviz mine ... --atlas-layers {name}` first (run {results.run_dir})")
    if x.shape[1] != info.units:
        raise OnnxVizError(f"the run's samples of {name} have {x.shape[1]} channels, the model's layer {info.units}")
    rng = np.random.default_rng(seed)
    chosen = np.arange(len(x))
    if max_samples and len(x) > max_samples:
        chosen = np.sort(rng.choice(len(x), max_samples, replace=False))
    x = x[chosen]
    codes = None
    if concepts is not None:
        if concepts.channels != x.shape[1]:
            raise OnnxVizError(f"the concepts {concepts.name} are of {concepts.channels} channels; {name} has {x.shape[1]}")
        codes = concepts.encode(x)
    # a vector with no active concept still needs a direction for the cosine layout: a tiny constant
    coords, used, note = reduce_2d(x if codes is None else codes + 1e-6, method, seed)
    t_layout = time.perf_counter() - t0
    coords = normalize_layout(coords)
    bins = np.minimum((coords * grid).astype(np.int64), grid - 1)
    flat = bins[:, 1] * grid + bins[:, 0]  # row from y, column from x
    cells = []
    for f in np.unique(flat):
        members = np.nonzero(flat == f)[0]
        if len(members) < min_count:
            continue
        mean = x[members].mean(0)
        extra = {}
        if codes is not None:
            code = codes[members].mean(0)
            mean = concepts.decode(code[None])[0]
            extra["top_concepts"] = [_concept_entry(concepts, int(k), float(code[k]))
                                     for k in np.argsort(-code, kind="stable")[:top] if code[k] > 0]
        order = np.argsort(-mean, kind="stable")[:top]
        cells.append({"row": int(f // grid), "col": int(f % grid), "count": int(len(members)),
                      "norm": float(np.linalg.norm(mean)), "mean": mean,
                      "top_channels": [{"channel": int(u), "activation": float(mean[u])} for u in order],
                      "images": sorted({int(i) for i in s["image"][chosen[members]]})[:8], **extra})
    means = np.stack([c["mean"] for c in cells]) if cells else np.zeros((0, x.shape[1]), np.float32)
    support_note = "not asked"
    if classes and cells:
        support, support_note = class_support(model, info.name, means, x.mean(0), device)
        if support is not None:
            for c, row in zip(cells, support):
                best = np.argsort(-row, kind="stable")[:top]
                c["classes"] = [{"class": int(k), "label": model.meta.label(int(k)), "support": float(row[k])}
                                for k in best]
    t1 = time.perf_counter()
    icons_arr, settings = render_directions(model, info.name, means, size, steps, batch, seed, cossim_pow, device,
                                            progress)
    icons = {(c["row"], c["col"]): icons_arr[i] for i, c in enumerate(cells)}
    record = {"kind": "activation_atlas", "run": str(results.run_dir), "samples": int(len(x)),
              "samples_in_run": int(len(s["vectors"])), "layout": {"method": used, "note": note, "seed": seed},
              "min_count": min_count, "cells_rendered": len(cells), "canvas_fill": round(canvas_fill(coords, grid), 4),
              "render": settings,
              "class_support": support_note if classes else "not asked",
              "objective": "direction(layer, cell mean vector, cossim_pow) per cell",
              "space": "activations" if concepts is None else f"concepts {concepts.name}",
              "seconds": {"layout": round(t_layout, 2), "render": round(time.perf_counter() - t1, 2),
                          "total": round(time.perf_counter() - t0, 2)}}
    return Atlas(info.name, grid, cells, icons, coords, record)


def _concept_entry(d, k: int, code: float) -> dict:
    """A cell's concept: its index, mean code and label from the head (when the dictionary has labels)."""
    from .labels import caption

    entry = {"concept": k, "code": round(code, 6)}
    if d.labels is not None and k < len(d.labels):
        entry["label"] = caption(d.labels[k])
    return entry


def write_atlas(atlas: Atlas, out_dir, cell: int = 64) -> dict:
    """atlas.png, atlas_classes.png (when there is class support), atlas.json and a standalone,
    pannable and zoomable atlas.html in ``out_dir``. Returns {kind: path}."""
    from .page import atlas_html

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"png": out / "atlas.png", "json": out / "atlas.json", "html": out / "atlas.html"}
    # atlas.json is the record that the folder's atlas is finished: removed first, written last, so a
    # write killed halfway leaves no record beside new pictures (the site reads the record)
    paths["json"].unlink(missing_ok=True)
    remove_leftovers(out, ["atlas.png", "atlas_classes.png", "atlas.json", "atlas.html"])
    save_picture(atlas.picture(cell), paths["png"])
    data = atlas.to_json()
    data["cell_pixels"] = cell
    data["image"] = paths["png"].name
    if any(c.get("classes") for c in atlas.cells):
        paths["classes_png"] = out / "atlas_classes.png"
        save_picture(atlas.class_picture(cell), paths["classes_png"])
        data["class_image"] = paths["classes_png"].name
    write_text(paths["html"], atlas_html(data))
    write_json(paths["json"], data)
    return paths
