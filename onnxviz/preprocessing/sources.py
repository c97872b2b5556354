"""Every deterministic source of a foreign file's preprocessing, tried before the statistics.

In order: onnxviz's own metadata (``ModelMeta.from_onnx``, handled by the model); the conventions
other producers write into ``metadata_props`` (``producers``); the sidecar files frameworks write
beside the model (``sidecars``). Sources are ranked by their confidence (numbers written out: 1;
a field that follows from a producer's convention: 0.9-0.95), the file's own metadata first on ties.
For each field the first source that states it wins; value range, mean and std travel together.
A source that disagrees with a higher-ranked one is a conflict, shown, never silently dropped.

The graph has the last word where it is explicit, and says so: a fixed input size other than the
source's (the graph's size is kept), class names whose count no 2-d output has, and normalization
nodes at the graph's start that imply another input scale or channel order. The statistics
(``infer``) then check a complete source too: when they prefer a different preprocessing with
confidence >= ``STRONG``, the source is kept and the disagreement listed in ``conflicts``.
A partial source fills only what it states; the statistics choose the rest.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from . import agreement, producers, sidecars
from .meta import PREPROCESSING_FIELDS

log = logging.getLogger("onnxviz")

STRONG = 0.7  # statistics at least this confident that a source is wrong make a shown conflict
_SCALE = ("value_range", "mean", "std")


@dataclass
class Sourced:
    """What the deterministic sources say about one file, merged."""

    fields: dict
    names: list  # the sources that gave a preprocessing field
    evidence: list
    confidence: Optional[float]
    conflicts: list = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return all(k in self.fields for k in PREPROCESSING_FIELDS)

    def preprocessing_fields(self) -> list:
        return [k for k in PREPROCESSING_FIELDS if k in self.fields]

    @property
    def label(self) -> str:
        return " + ".join(self.names) if self.names else "sources"


def gather(proto, path) -> list:
    """SourceFacts from the file's metadata_props and from the sidecars beside ``path``, best first."""
    found = producers.read(proto) + sidecars.read(path)
    return sorted(found, key=lambda f: -f.confidence)  # stable: metadata before sidecars on ties


def _same(a, b) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    try:
        x, y = np.asarray(a, float).ravel(), np.asarray(b, float).ravel()
    except (TypeError, ValueError):
        return a == b
    if x.size == 1 or y.size == 1:
        x, y = np.broadcast_arrays(x, y)
    return x.shape == y.shape and bool(np.allclose(x, y, rtol=1e-3, atol=1e-6))


def combine(facts: list) -> Optional[Sourced]:
    """Merge SourceFacts (best first) into one Sourced; None when there are none."""
    if not facts:
        return None
    fields, origin, names, evidence, conflicts, confs = {}, {}, [], [], [], []
    for f in facts:
        evidence += [f"[{f.name}] {line}" for line in f.evidence]
        take = {}
        for key, value in f.fields.items():
            group = _SCALE if key in _SCALE else (key,)
            if key in fields:
                if key != "labels" and not _same(fields[key], value):
                    conflicts.append(f"{f.name} says {key} {_show(value)}, {origin[key]} says {_show(fields[key])}: "
                                     f"{origin[key]} kept")
                continue
            if key in _SCALE and any(k in fields for k in group):
                continue
            take[key] = value
        for key, value in take.items():
            fields[key], origin[key] = value, f.name
        if any(k in PREPROCESSING_FIELDS for k in take):
            names.append(f.name)
            confs.append(f.confidence)
    return Sourced(fields, names, evidence, min(confs) if confs else None, conflicts)


def _show(v) -> str:
    if isinstance(v, (list, tuple)) and len(v) > 6:
        return f"{len(v)} names"
    return str(list(v)) if isinstance(v, tuple) else str(v)


# ------------------------------------------------------------------------------------ graph checks
def check_graph(sourced: Sourced, proto, input_name: str, layout: str, fixed_hw: tuple, channels: int) -> None:
    """Where the graph itself contradicts a source: keep the graph's word for the size, show the rest."""
    size = sourced.fields.get("input_size")
    h, w = fixed_hw
    if size and h and w and tuple(size) != (h, w):
        sourced.conflicts.append(f"the sources say input size {size[0]}x{size[1]} but the graph's input is fixed at "
                                 f"{h}x{w}: the graph's size is used")
        del sourced.fields["input_size"]
    labels = sourced.fields.get("labels")
    widths = []
    for out in proto.graph.output:
        dims = out.type.tensor_type.shape.dim
        if len(dims) == 2 and dims[1].HasField("dim_value") and dims[1].dim_value > 0:
            widths.append(dims[1].dim_value)
    if labels and widths and len(widths) == len(proto.graph.output) and not any(
            wd in (len(labels), len(labels) + 1) for wd in widths):
        sourced.conflicts.append(f"the sources give {len(labels)} class names but the outputs have {widths} "
                                 "values: the names may belong to another model")
    if "value_range" not in sourced.fields:
        return
    from .normalization import in_graph_normalization, judge_normalization

    norm = in_graph_normalization(proto, input_name, layout, channels)
    if norm is None:
        return
    scale, order, line = judge_normalization(norm, channels)
    lo, hi = sourced.fields["value_range"]
    mean = np.asarray(sourced.fields.get("mean", (0.0,)), float)
    span = max(abs(hi - lo), 1e-9)
    if np.any(np.abs(mean) > 1e-6 * span) or abs(np.log(span / scale)) > np.log(1.5):
        sourced.conflicts.append(f"the graph normalizes its input itself ({line}) but the sources add "
                                 f"{_show(sourced.fields['value_range'])}, mean {_show(sourced.fields.get('mean'))}: "
                                 "check for double normalization")
    elif order and sourced.fields.get("channel_order") not in (None, order):
        sourced.conflicts.append(f"the graph's normalization constants look {order} ({line}) but the sources say "
                                 f"{sourced.fields['channel_order']}")


# ------------------------------------------------------------------------------------ statistics
def agree(a: dict, b: dict) -> bool:
    """Do two preprocessings feed the model (nearly) the same input? ``agreement``'s 20% rule on the
    pixel -> input map of every channel, and the same channel order (gray only agrees with gray)."""
    if (a.get("channel_order") == "L") != (b.get("channel_order") == "L"):
        return False
    r = agreement.agreement(agreement.Preprocessing.of(_complete(a)), agreement.Preprocessing.of(_complete(b)))
    return r["scale_offset"] and r["channel_order"] is not False


def _complete(fields: dict) -> dict:
    """``fields`` with the defaults ModelMeta uses for what a source left out (RGB, no mean/std)."""
    out = {"channel_order": "RGB", "value_range": (0.0, 1.0), "mean": (0.0,), "std": (1.0,)}
    out.update({k: v for k, v in fields.items() if v is not None})
    return out


def check_statistics(sourced: Sourced, finding) -> None:
    """Add a conflict when the statistics (an ``infer.Finding``) are sure of another preprocessing."""
    chosen = finding.candidate.fields()
    if agree(sourced.fields, chosen):
        sourced.evidence.append(f"the statistics agree (they choose {finding.candidate.name}, confidence "
                                f"{finding.confidence:.2f})")
    elif finding.confidence >= STRONG:
        sourced.conflicts.append(f"the statistics prefer {finding.candidate.name} (confidence "
                                 f"{finding.confidence:.2f}) to what {sourced.label} says; the source is kept. "
                                 f"Their evidence: {'; '.join(finding.evidence)[:300]}")
    else:
        sourced.evidence.append(f"the statistics lean to {finding.candidate.name} but only with confidence "
                                f"{finding.confidence:.2f} (< {STRONG}): no conflict")


def fill(sourced: Sourced, inferred: dict) -> dict:
    """A partial source's fields over the statistics' choice (``Candidate.fields()``)."""
    out = dict(inferred)
    if "value_range" in sourced.fields:
        out.update({k: sourced.fields[k] for k in _SCALE if k in sourced.fields})
    if "channel_order" in sourced.fields:
        out["channel_order"] = sourced.fields["channel_order"]
    return out


# ------------------------------------------------------------------------------------ for the model
def read(raw, path, proto, input_name: str, layout: str, fixed_hw: tuple, channels: int) -> Optional[Sourced]:
    """Every source of one file, merged and checked against its graph; None when it has none (or they
    cannot be read: that is a warning, never a failure to load)."""
    try:
        sourced = combine(gather(raw, path))
        if sourced is not None:
            check_graph(sourced, proto, input_name, layout, fixed_hw, channels)
        return sourced
    except Exception as exc:  # noqa: BLE001 - a source that cannot be read never stops loading
        log.warning("could not read the preprocessing sources of %s (%s); going on without them",
                    path or "the model", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return None


def apply(base, s: Sourced):
    """``base`` (a ModelMeta) with what the sources state: all of it when complete, else only the
    non-preprocessing facts (size, labels, ...), the statistics choosing the rest."""
    extra = {k: v for k, v in s.fields.items() if k not in PREPROCESSING_FIELDS}
    if s.complete:
        try:
            return base.replace(**s.fields, preprocessing_source=s.label, evidence=list(s.evidence),
                                conflicts=list(s.conflicts), confidence=s.confidence)
        except ValueError as exc:  # e.g. three means for a one-channel input: the graph wins, shown
            s.conflicts.append(f"{s.label} does not fit this input ({exc}): its preprocessing is not used")
            for k in PREPROCESSING_FIELDS:
                s.fields.pop(k, None)
    return base.replace(**extra, evidence=list(s.evidence), conflicts=list(s.conflicts))


def with_statistics(base, s: Optional[Sourced], found) -> tuple:
    """(ModelMeta, how it was found) once the statistics (``infer.Finding``) are in: a complete source
    is kept and checked; a partial one fills what it states; without sources the statistics decide."""
    if s is not None and s.complete:
        check_statistics(s, found)
        return base.replace(evidence=list(s.evidence), conflicts=list(s.conflicts)), "sources"
    if s is not None and s.preprocessing_fields():
        return base.replace(**fill(s, found.candidate.fields()), preprocessing_source=f"{s.label} + inferred",
                            evidence=list(s.evidence) + found.evidence, conflicts=list(s.conflicts),
                            confidence=found.confidence), "sources + inferred"
    return base.replace(**found.candidate.fields(), preprocessing_source="inferred",
                        evidence=(list(s.evidence) if s else []) + found.evidence,
                        confidence=found.confidence), "inferred"
