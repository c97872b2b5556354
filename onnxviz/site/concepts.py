"""Concepts on the site: each concept set of a layer (``onnxviz concepts``) as a layer of its own.

A concept set (``<run>/concepts/<layer>/<name>/``, a run directory of its own: ``RunDir.concept_set``)
is shown with the unit templates: the layer's own page draws its concepts in the same grid as its units
(same cards, same search over unit and concept labels: ``grid_sets``), each concept opens the same unit
page (its render and reliability badge, top and bottom examples with crops, spectrum), plus its label
from the model's head and its strongest units (links to the layer's unit pages). The set also keeps a
page of its own (its grid alone, and its concept atlas when ``onnxviz atlas --concepts`` wrote one);
the layer's page and the model page link it. Unit labels from the head (``concepts.name_units``) are read here too.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..paths import slug
from ..runs import collect_renders, command
from .collect import MiningSource
from .data import num
from .parts import LayerInfo, UnitInfo

log = logging.getLogger(__name__)


@dataclass
class ConceptLayer:
    """What the pages read from ``info.layer`` for a concept set."""

    name: str
    op: str
    shape: tuple
    units: int


class ConceptMining(MiningSource):
    """A concept set's mining results under the concept layer's name (``<layer>/<name>``): the concept
    model's mining stored them under the name of the encoder's last node, which the alias resolves to."""

    def __init__(self, source, name: str):
        self.source, self.name = source, name
        self.mined = source.results.name(name)
        self.layers = (name,) if self.mined in source.layers else ()
        self.statistic, self.command = source.statistic, source.command

    def scores(self, layer: str):
        return self.source.scores(self.mined)

    def examples(self, layer: str, unit: int, k: int) -> tuple:
        return self.source.examples(self.mined, unit, k)

    def spectrum(self, layer: str, unit: int) -> tuple:
        return self.source.spectrum(self.mined, unit)


def unit_labels(run, layer: str) -> Optional[list]:
    """Captions of a layer's units from its head (``concepts.name_units``), or None when not labelled."""
    from ..attribution.labels import caption
    from ..concepts import unit_labels_path

    if run is None:
        return None
    path = unit_labels_path(run, layer)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return [caption(c) for c in doc["labels"]] if doc.get("layer") == layer else None
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("skipping unit labels %s: %s", path, exc)
        return None


def attach_unit_labels(builder, infos: list) -> None:
    """Unit labels from the head for every layer that has them and no class labels of its own."""
    for info in infos:
        labels = unit_labels(builder.run, info.name)
        if labels and len(labels) == len(info.units):
            for u, text in zip(info.units, labels):
                u.label = u.label or text


def concept_infos(builder, info, used: set) -> list:
    """A LayerInfo per concept set stored for ``info``'s layer in the builder's run (none without a run)."""
    from ..attribution.labels import caption
    from ..concepts import Dictionary, concept_name, stored
    from ..concepts.render import concept_set
    from .gather import UNIT_MARK, attach_scores
    from .mining_source import open_mining

    if builder.run is None:
        return []
    out = []
    for path in stored(builder.run, info.name):
        try:
            d = Dictionary.load(path)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("skipping concepts %s: %s", path, exc)
            continue
        if d.layer != info.name:
            continue
        name = concept_name(d)
        s = base = slug(name)
        n = 1
        while s.lower() in used:
            n += 1
            s = f"{base}-{n}"
        used.add(s.lower())
        shape = (None, d.concepts) + tuple((info.layer.shape or ())[2:])
        c = LayerInfo(layer=ConceptLayer(name, f"{d.method} concepts", shape, d.concepts), slug=s)
        c.units = [UnitInfo(index=k, label=caption(d.labels[k]) if d.labels and k < len(d.labels) else "")
                   for k in range(d.concepts)]
        c.concept = {"base": info, "dictionary": d, "metrics": d.metrics, "line": metrics_line(d.metrics),
                     "top_units": [d.top_units(k) for k in range(d.concepts)]}
        cset = concept_set(builder.run, d)
        try:
            found = open_mining(cset.mining)
            c.mining = None if found is None else ConceptMining(found, name)
        except Exception as exc:  # noqa: BLE001 - a damaged concept set: the layer's pages still build
            log.warning("concepts %s: %s", name, exc)
            c.mining = None
        for pic in collect_renders(cset.render, [name]).get(name, []):
            if pic.unit is not None and 0 <= pic.unit < d.concepts:
                c.units[pic.unit].pictures.append(pic)
        solver = d.settings.get("solver") if d.settings.get("solver") == "minibatch" else None
        render = command("concepts", builder.model_arg, run=builder.run_arg, layer=info.name, method=d.method,
                         concepts=d.concepts, nmf_solver=solver, render=UNIT_MARK, **builder.meta_opts)
        c.templates = {"render": render, "checked": render, "accentuate": "",
                       "maco": command("concepts", builder.model_arg, run=builder.run_arg, layer=info.name,
                                       method=d.method, concepts=d.concepts, nmf_solver=solver, render=UNIT_MARK,
                                       param="maco", **builder.meta_opts)}
        c.command_all = render.replace(UNIT_MARK, "all")
        if c.mining is not None:
            attach_scores(c.mining, [c])
        c.concept["atlas"] = atlas_page(builder, cset.root, info.name, c.slug)
        out.append(c)
    return out


def atlas_page(builder, set_root, layer: str, set_slug: str) -> str:
    """The concept atlas (``onnxviz atlas --concepts NAME``, in the set's own ``atlas/<layer>/``) copied into
    the site beside the set's pages, or '' when there is none."""
    from .blocks import atlas_page as page

    return page(builder, set_root, layer, set_slug)


def grid_sets(info) -> list:
    """The concept sets of a base layer as rows of its own grid (data.js ``sets``): the layer page shows
    them beside its units with the same cards and search; each card opens the set's unit page."""
    return [{"name": c.concept["dictionary"].name, "slug": c.slug, "op": c.layer.op, "line": c.concept["line"], "tmpl": c.templates,
             "atlas": c.concept.get("atlas", ""),
             "units": [[u.index, num(u.score), u.thumb, u.label] for u in c.units]} for c in info.concepts]


def metrics_line(metrics: dict) -> str:
    """``explained variance 0.88 · mean L0 16 · 0 dead · stability 0.55`` (what is known)."""
    parts = []
    for key, text in (("explained_variance", "explained variance {}"), ("mean_l0", "mean L0 {}"),
                      ("dead", "{} dead"), ("stability", "stability {} (2 seeds)"), ("vectors", "{} vectors")):
        if metrics.get(key) is not None:
            v = metrics[key]
            parts.append(text.format(f"{v:,}" if isinstance(v, int) else f"{v:.3g}"))
    return " · ".join(parts)


def unit_rows(info) -> Optional[list]:
    """Per concept: [[unit, weight], ...] of its strongest units (the unit page links them), or None."""
    if not info.concept:
        return None
    return [[[u, w] for u, w in rows] for rows in info.concept["top_units"]]


__all__ = ["ConceptLayer", "ConceptMining", "atlas_page", "attach_unit_labels", "concept_infos", "grid_sets", "metrics_line", "unit_labels", "unit_rows"]
