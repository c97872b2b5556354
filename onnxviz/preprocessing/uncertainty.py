"""Uncertainty a person can see and act on: one line when the preprocessing is not sure, and the
top candidates to compare.

``LOW_CONFIDENCE`` (0.6) is the threshold below which ``inspect``, ``render``, ``mine`` and the site
print ``notice(meta)``: what was chosen, how sure, and the flags that set it (``--value-range``,
``--mean``, ``--std``, ``--channel-order``, see ``onnxviz.cli.options``) or the command that renders
a unit under the top three candidates side by side. A conflict between a deterministic source and
the graph or the statistics (``ModelMeta.conflicts``) gets the same line whatever the confidence.
"""
from __future__ import annotations

from typing import Optional

LOW_CONFIDENCE = 0.6
OVERRIDE_FLAGS = "--value-range, --mean, --std, --channel-order"


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def summary(meta) -> str:
    """'0..1 RGB, mean [...], std [...]' for one line."""
    lo, hi = meta.value_range
    out = f"{_fmt(lo)}..{_fmt(hi)} {meta.channel_order}"
    if any(m != 0 for m in meta.mean) or any(s != 1 for s in meta.std):
        out += f", mean [{', '.join(_fmt(m) for m in meta.mean)}], std [{', '.join(_fmt(s) for s in meta.std)}]"
    return out


def is_low(meta) -> bool:
    return meta.preprocessing_source == "defaults" or (
        meta.confidence is not None and meta.confidence < LOW_CONFIDENCE and meta.preprocessing_source != "overrides")


def notice(meta, model_arg: str = "MODEL") -> Optional[str]:
    """The one visible line for uncertain or conflicting preprocessing; None when there is nothing to say."""
    if meta.preprocessing_source in ("file", "overrides"):
        return None
    compare = f"compare with `onnxviz render {model_arg} LAYER:UNIT --preprocessing candidates`"
    if meta.conflicts:
        return (f"preprocessing: {len(meta.conflicts)} conflict(s) with {meta.preprocessing_source} "
                f"({summary(meta)} kept; `onnxviz inspect {model_arg}` lists them); {compare}, or set it with "
                f"{OVERRIDE_FLAGS}")
    if meta.preprocessing_source == "defaults":
        return (f"preprocessing unknown (defaults: {summary(meta)}): {compare}, or set it with {OVERRIDE_FLAGS}")
    if is_low(meta):
        return (f"preprocessing uncertain ({meta.preprocessing_source}, confidence {meta.confidence:.2f}: "
                f"{summary(meta)}): {compare}, or set it with {OVERRIDE_FLAGS}")
    return None


def ranked_candidates(model, k: int = 3) -> list:
    """[(name, fields, score text)] best first: the model's own preprocessing when a deterministic source
    gave it, then the statistics' candidates (``infer.Finding.ranked`` where present, else ordered by the
    first score the statistics recorded), duplicates of an earlier map dropped."""
    from .infer import infer
    from .sources import agree

    meta = model.meta
    out = []
    if meta.preprocessing_source not in ("inferred", "defaults"):
        fields = {"value_range": meta.value_range, "mean": meta.mean, "std": meta.std,
                  "channel_order": meta.channel_order}
        out.append((f"{summary(meta)} ({meta.preprocessing_source})", fields, f"confidence {meta.confidence}"))
    found = infer(model, meta)
    for cand, score in _order(found):
        fields = cand.fields()
        if any(agree(fields, f) for _, f, _ in out):
            continue
        out.append((cand.name, fields, score))
        if len(out) == k:
            break
    return out


def _order(found) -> list:
    """[(Candidate, score text)] best first from an ``infer.Finding``."""
    ranked = getattr(found, "ranked", None)
    if ranked:
        items = [r if isinstance(r, tuple) else (r, None) for r in ranked]
        return [(c, f"score {s:.3g}" if isinstance(s, (int, float)) else "") for c, s in items]
    from .infer import GRAY_CANDIDATES, RGB_CANDIDATES

    by_name = {c.name: c for c in RGB_CANDIDATES + GRAY_CANDIDATES}
    first = [(found.candidate, f"chosen, confidence {found.confidence:.2f}")]
    for key, best_high in (("imagenet_top1", True), ("batchnorm_distance", False), ("activation_balance", True)):
        scores = found.scores.get(key)
        if scores:
            names = sorted(scores, key=lambda n: -scores[n] if best_high else scores[n])
            return first + [(by_name[n], f"{key} {scores[n]:.4g}") for n in names
                            if n in by_name and n != found.candidate.name]
    return first + [(c, "") for c in RGB_CANDIDATES if c.name != found.candidate.name]
