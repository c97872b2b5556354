"""Preprocessing inferred from evidence, for ONNX files that carry no onnxviz metadata: one score.

An ONNX graph does not say whether it wants pixels in 0..1 or 0..255, RGB or BGR, with or without
ImageNet's mean/std; guessing [0, 1] RGB renders a flat gray image for every net that expects raw
0..255 or BGR. So onnxviz scores a list of the conventions real files use (``candidates``) against
what the file tells, and takes the best. Each piece of evidence adds a score in nats to every
candidate, weighted by how reliable that kind of evidence is (``WEIGHTS``); the total is a
log-likelihood up to a constant, the answer is its argmax, and the confidence is the softmax
probability of the answer among all candidates (two candidates the evidence cannot tell apart,
say RGB and BGR, share it, so neither gets more than one half).

| term | evidence | score per candidate | weight |
|---|---|---|---|
| normalization in the graph | Sub/Div/Mul/Add by constants before the first learned layer | replaces the candidates by "0..S (normalized in the graph)"; ImageNet-like means fix the order | explicit |
| prior | producer, architecture, task (``priors``) | the nats of each rule that names the candidate | 1 |
| labelled photos | a 1000/1001-class head on the 12 bundled labelled photos | summed log-probability of each photo's label set (top-1 is reported, not scored: it is a coarse copy) | 1 |
| BatchNorm statistics | running mean/var of the first BN layers vs the photos' | -log(distance + 0.05) | 2 |
| BatchNorm order | the same, over 100 resamples of the photos | +1 to the order nearer in >= 90% of them | 0.5 |
| head saturation | median top-2 logit gap of a classification head on photos | -min(3, (gap - 12) / 2) when above 12 nats | 1 (0.3 for 2-class heads) |
| first-layer spread | output std of a first conv that feeds an activation (folded BN: about 1), when some candidate brings it within e^1.2 of 1 | -min(24, log(std)^2) | 0.25 |
| activation balance | how often the units of the first learned layers switch on and off | mean log min(p, 1-p) | 0.5 |

Why these weights: labelled photos measure the task itself: their summed log-likelihood is the
textbook score, and a wrong scale costs it tens of nats; BatchNorm statistics are the training input's own moments, and a wrong
scale or offset moves them by an order of magnitude (2 x log 10 = 4.6 nats), while RGB vs BGR moves
them by less than photos differ from each other, hence the separate resampling term. Saturation,
spread and balance are indirect (a trained net behaves "naturally" on inputs like its training
data): they separate scales by one or two nats and channel orders by less than the priors, which
then decide. docs/preprocessing.md has the table with the reasons in full.

Cost is bounded (``evidence.thin``, ``evidence.photo_count``, ``_may_score_classes``): the early-layer
statistics read at most 128x128 positions per photo and channel, an input above 416x416 runs on fewer
photos (at least 4), and only the early layers and possible class heads are run (the session is pruned).

A quantized or float16 file is judged on its float32 view (``floatview``), so that a QDQ or fp16
copy of a model gets what the model gets. All evidence comes from one onnxruntime session run once
per candidate on the photos bundled with onnxviz (``photos``), never on what else is installed.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import onnx

from ..graph import edits as G
from ..graph import floatview
from . import photos as bundled_photos
from .candidates import (GRAY_CANDIDATES, IMAGENET_MEAN, IMAGENET_STD, RGB_CANDIDATES, Candidate,  # noqa: F401
                         candidates_for, scale_of)
from .evidence import (SATURATED, balance, bn_distance, bn_moments, bn_support, classifier_heads, feeds_activation,
                       head_saturation, photo_count, spread_distance, thin)
from .normalization import in_graph_normalization, judge_normalization  # noqa: F401 - re-exported
from .priors import prior_scores

log = logging.getLogger("onnxviz")

WEIGHTS = {
    "prior": 1.0, "imagenet_loglik": 1.0, "batchnorm": 2.0, "batchnorm_order": 0.5,
    "head_saturation": 1.0, "first_layer_spread": 0.25, "activation_balance": 0.5,
}
BN_FLOOR = 0.05  # a BN distance below this is as good as a perfect match
ORDER_SUPPORT = 0.9  # share of photo resamples in which a channel order must stay nearer to be evidence
SPREAD_VALID = 1.5  # the spread term counts only when some candidate brings the spread within e^1.2 of 1
ORDER_UNDECIDED = 0.5  # nats: twins (RGB/BGR) closer than this are reported as undecided
_balance = balance  # the statistic itself lives in onnxviz.preprocessing.evidence


# ---------------------------------------------------------------------------------------- graph facts
def _first_learned(proto: onnx.ModelProto, input_name: str) -> tuple:
    """(first weighted node, BatchNormalization nodes within the first two weighted layers)."""
    learned = {input_name}
    first, bns, depth = None, [], {}
    for node in proto.graph.node:
        ins = [i for i in node.input if i in learned]
        if not ins:
            continue
        d = max(depth.get(i, 0) for i in ins)
        if node.op_type in ("Conv", "Gemm", "MatMul", "ConvTranspose"):
            d += 1
            if first is None:
                first = node
        if node.op_type == "BatchNormalization" and 1 <= d <= 2:
            bns.append(node)
        for o in node.output:
            learned.add(o)
            depth[o] = d
    return first, bns[:2]


def _learned_nodes(proto: onnx.ModelProto, input_name: str, k: int = 3) -> list:
    """The first ``k`` weighted nodes (Conv, MatMul, Gemm, ConvInteger) the input reaches."""
    reached, found = {input_name}, []
    for node in proto.graph.node:
        if any(i in reached for i in node.input):
            reached.update(node.output)
            if node.op_type in ("Conv", "Gemm", "MatMul", "ConvTranspose", "ConvInteger"):
                found.append(node)
                if len(found) == k:
                    break
    return found


def _takes_bytes(proto: onnx.ModelProto, input_name: str) -> bool:
    """Is the image input uint8 or int8 (pixel bytes, as NHWC exports with a Rescaling layer inside take)?"""
    kind = G.image_input(proto, input_name).type.tensor_type.elem_type
    return kind in (onnx.TensorProto.UINT8, onnx.TensorProto.INT8)


# ---------------------------------------------------------------------------------------- inference
@dataclass
class Finding:
    """What the evidence chose, how sure it is, and why.

    ``ranked``: [(candidate, total score in nats)], best first; ``scores``: per term, per candidate
    name (the raw statistic; "total" and "prior" are in nats)."""

    candidate: Candidate
    confidence: float
    evidence: list
    scores: dict = field(default_factory=dict)
    ranked: list = field(default_factory=list)


def _may_score_classes(output) -> bool:
    """Can this graph output be a classification head, (N, K), that the statistics read? Only those are
    run besides the early layers, so that the session (``edits.prune``) drops a detector's or a
    super-resolution net's body and head, which no statistic reads (a 4x SR net ran 352 s here,
    11 candidates x 16 photos, for early-layer moments that its first convolutions give in seconds)."""
    tt = output.type.tensor_type
    return not tt.HasField("shape") or len(tt.shape.dim) == 2


def _softmax_top(totals: dict, best: str) -> float:
    v = np.asarray(list(totals.values()), np.float64)
    return float(np.exp(totals[best] - v.max()) / np.exp(v - v.max()).sum())


def _twin(c: Candidate, cands: list) -> Optional[Candidate]:
    """The same convention in the other channel order, if it is a candidate."""
    return next((o for o in cands if o is not c and o.convention == c.convention), None)


def _graph_candidates(norm, channels: int, evidence: list) -> list:
    scale, order, line = judge_normalization(norm, channels)
    evidence.append(line)
    orders = ("L",) if channels == 1 else (order,) if order else ("RGB", "BGR")
    return [Candidate(f"0..{int(scale)} {o} (normalized in the graph)", o, (0.0, scale)) for o in orders]


def infer(model, base, use_labels: bool = True, fixed: Optional[dict] = None) -> "Finding":
    """Infer preprocessing for ``model`` (needs proto, input_name) whose defaults are ``base``.

    ``base``: the ModelMeta from the input shape (size, layout, channels). ``fixed``: fields already
    known (channel_order, value_range, mean, std; e.g. from a sidecar): only the rest is scored.
    Returns a Finding; the caller applies ``finding.candidate.fields()`` to ``base``.
    """
    channels = base.channels
    fixed = {k: v for k, v in (fixed or {}).items() if v is not None}
    evidence: list = []
    if fixed:
        evidence.append("given: " + ", ".join(f"{k} {v}" for k, v in fixed.items()) + "; the rest is scored")
    # a quantized or float16 file is judged by the float computation it approximates: its fake
    # quantization (calibrated on some input range) and fp16 rounding would otherwise be the evidence
    proto = floatview.float_view(model.proto)
    if proto is not model.proto:
        evidence.append(f"judged on the float32 view of this {floatview.kind(model.proto)} file")
    cands = candidates_for(channels, fixed)
    norm = in_graph_normalization(proto, model.input_name, base.layout, channels)
    if norm is not None and not ({"value_range", "mean", "std"} & set(fixed)):
        cands = _graph_candidates(norm, channels, evidence)
        if "channel_order" in fixed:
            cands = [c for c in cands if c.channel_order == fixed["channel_order"]] or cands
    elif norm is None and _takes_bytes(proto, model.input_name) and "value_range" not in fixed:
        # an integer image input takes the pixel bytes themselves; only the channel order is open
        evidence.append("the input is an integer tensor: the file takes pixel bytes, 0..255 (no mean, no std)")
        cands = [c for c in cands if scale_of(c) == 255 and set(c.mean) == {0.0}] or cands
    if len(cands) == 1:
        return Finding(cands[0], 0.9, evidence, {"total": {cands[0].name: 0.0}}, [(cands[0], 0.0)])
    terms: dict = {}  # term -> {candidate name: nats}
    scores: dict = {}
    prior, lines = prior_scores(proto, model.input_name, base.layout, cands)
    terms["prior"] = prior
    scores["prior"] = {k: round(v, 3) for k, v in prior.items()}
    evidence.extend(lines)
    _statistics(model, proto, base, cands, use_labels, terms, scores, evidence)
    totals = {c.name: sum(WEIGHTS[t] * v.get(c.name, 0.0) for t, v in terms.items()) for c in cands}
    ranked = sorted(cands, key=lambda c: -totals[c.name])
    best = ranked[0]
    scores["total"] = {c.name: round(totals[c.name], 3) for c in ranked}
    scores["nats"] = {t: {k: round(WEIGHTS[t] * v, 3) for k, v in vals.items()} for t, vals in terms.items()}
    confidence = _softmax_top(totals, best.name)
    evidence.append("score (nats, the weighted sum of the terms above): " + ", ".join(
        f"{c.name} {totals[c.name]:.2f}" for c in ranked[:4]) + f"; {best.name} by {totals[best.name] - totals[ranked[1].name]:.2f}")
    twin = _twin(best, cands)
    if twin is not None and totals[best.name] - totals[twin.name] < ORDER_UNDECIDED:
        evidence.append(f"channel order not decided by the evidence ({best.name} {totals[best.name]:.2f} vs "
                        f"{twin.name} {totals[twin.name]:.2f}): {best.channel_order} by a margin under "
                        f"{ORDER_UNDECIDED} nats")
    return Finding(best, round(float(min(0.99, max(0.05, confidence))), 3), evidence, scores,
                   [(c, round(totals[c.name], 3)) for c in ranked])


def _statistics(model, proto, base, cands: list, use_labels: bool, terms: dict, scores: dict, evidence: list):
    """Run every candidate on the bundled photos and add the statistical terms (see the table above)."""
    from ..backends.ort import Runner
    from .images import load_image

    first, bns = _first_learned(proto, model.input_name)
    early = _learned_nodes(proto, model.input_name)
    probe = [o.name for o in proto.graph.output if _may_score_classes(o)]
    watch = list(dict.fromkeys(([first.output[0]] if first is not None else []) + [bn.input[0] for bn in bns]
                               + [n.output[0] for n in early]))
    other = model.other_inputs  # several inputs: the others get mid-gray, same preprocessing

    def feeds(meta):  # float16 feeds become float32, as the float view's inputs did
        return {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in other(meta).items()}
    runner = Runner(G.expose(proto, watch + probe) if watch + probe else proto, threads=None,
                    input_name=model.input_name, extras=feeds(base))
    h, w = base.input_size
    paths = bundled_photos.paths()  # the labelled photos first
    paths = paths[:photo_count(h, w, len(paths))]
    images = np.stack([load_image(p, (h, w), int(round(min(h, w) * 256 / 224))) for p in paths])
    early_only = set(watch) - set(probe)  # the statistics read these on a grid of positions (``thin``)

    def run(c):
        meta = base.replace(**c.fields())
        if runner.extras:
            runner.extras = {k: v for k, v in feeds(meta).items() if k in runner.extras}
        return {k: thin(v) if k in early_only else v for k, v in runner.run(meta.to_model_input(images)).items()}
    spread_ok = first is not None and feeds_activation(proto, first)
    stats: dict = {k: {} for k in ("top1", "loglik", "moments", "sat", "spread", "balance")}
    head = heads = None
    for c in cands:
        out = run(c)
        if head is None:
            head = next(((o, out[o].shape[1] - 1000) for o in probe
                         if out[o].ndim == 2 and out[o].shape[1] in (1000, 1001)), False)
            heads = classifier_heads(proto, {o: (None, out[o].shape) for o in probe})
        if head and use_labels:
            stats["top1"][c.name], stats["loglik"][c.name] = _labelled(out[head[0]], head[1])
        if bns:
            stats["moments"][c.name] = bn_moments(proto, bns, out)
        sat = [head_saturation(out[o], kind) for o, kind in heads if o in out]
        sat = [(v, out[o].shape[1]) for v, (o, _) in zip(sat, heads) if v is not None]
        if sat:
            stats["sat"][c.name] = max(sat)
        if spread_ok:
            stats["spread"][c.name] = spread_distance(out[first.output[0]])
        if early:
            stats["balance"][c.name] = balance([out[n.output[0]] for n in early if n.output[0] in out])
        del out
    names = [c.name for c in cands]
    if stats["top1"]:
        n = len(bundled_photos.labelled())
        terms["imagenet_loglik"] = {k: n * v for k, v in stats["loglik"].items()}  # summed over the photos
        scores["imagenet_top1"] = dict(stats["top1"])
        scores["imagenet_loglik"] = {k: round(v, 4) for k, v in stats["loglik"].items()}
        ranked = sorted(names, key=lambda k: -stats["loglik"][k])
        evidence.append(f"1000-class output {head[0]!r}: top-1 on {n} labelled photos bundled with onnxviz "
                        + ", ".join(f"{k} {stats['top1'][k]} (log-lik {stats['loglik'][k]:.2f})" for k in ranked[:4])
                        + ", ".join([""] + [f"{k} {stats['top1'][k]}" for k in ranked[4:]]))
    if stats["moments"] and all(stats["moments"].values()):
        dist = {k: bn_distance(m) for k, m in stats["moments"].items()}
        terms["batchnorm"] = {k: -float(np.log(d + BN_FLOOR)) for k, d in dist.items()}
        scores["batchnorm_distance"] = {k: round(v, 4) for k, v in dist.items()}
        ranked = sorted(names, key=lambda k: dist[k])
        evidence.append(f"BatchNormalization running statistics of the first layers "
                        f"({', '.join(bn.name or bn.output[0] for bn in bns)}) vs the photos', distance "
                        + ", ".join(f"{k} {dist[k]:.3g}" for k in ranked[:4]))
        best = next(c for c in cands if c.name == ranked[0])
        twin = _twin(best, cands)
        if twin is not None:
            support = bn_support(stats["moments"][best.name], stats["moments"][twin.name], np.random.default_rng(0))
            scores["batchnorm_order_support"] = {best.name: support}
            if support >= ORDER_SUPPORT:
                terms["batchnorm_order"] = {c.name: 1.0 for c in cands if c.channel_order == best.channel_order}
                evidence.append(f"BatchNorm statistics prefer {best.channel_order} to {twin.channel_order} in "
                                f"{support:.0%} of 100 resamples of the photos: evidence of the order")
            else:
                evidence.append(f"{best.channel_order} is nearer than {twin.channel_order} on these photos but only "
                                f"in {support:.0%} of 100 resamples of them (< {ORDER_SUPPORT:.0%}): not evidence "
                                "of the order")
    if len(stats["sat"]) == len(cands):
        terms["head_saturation"] = {k: -min(3.0, max(0.0, (v - SATURATED) / 2)) * (0.3 if k_ <= 2 else 1.0)
                                    for k, (v, k_) in stats["sat"].items()}
        scores["head_saturation"] = {k: round(v, 3) for k, (v, _) in stats["sat"].items()}
        hot = sorted((k for k, (v, _) in stats["sat"].items() if v > SATURATED), key=lambda k: -stats["sat"][k][0])
        if hot:
            evidence.append(f"the classification head ({', '.join(o for o, _ in heads)}) saturates under "
                            + ", ".join(f"{k} ({stats['sat'][k][0]:.3g})" for k in hot)
                            + f" (median top-2 logit gap on photos above {SATURATED:g} nats: a scale beyond the "
                            "training input's)")
    if stats["spread"] and len({scale_of(c) for c in cands}) > 1 and min(stats["spread"].values()) > SPREAD_VALID:
        evidence.append(f"the output spread of the first learned layer is far from 1 under every candidate (squared "
                        f"log-std distance >= {min(stats['spread'].values()):.3g}): no folded BatchNorm, not evidence")
    elif stats["spread"] and len({scale_of(c) for c in cands}) > 1:
        terms["first_layer_spread"] = {k: -min(24.0, v) for k, v in stats["spread"].items()}
        scores["first_layer_spread"] = {k: round(v, 4) for k, v in stats["spread"].items()}
        top = sorted(stats["spread"].items(), key=lambda kv: kv[1])[:3]
        evidence.append(f"the output spread of the first learned layer ({first.op_type} {first.name or first.output[0]}"
                        ", an activation follows: a folded BatchNorm makes it about 1) is closest to 1 under "
                        + ", ".join(f"{k} ({v:.3g})" for k, v in top))
    if stats["balance"]:
        terms["activation_balance"] = dict(stats["balance"])
        scores["activation_balance"] = {k: round(v, 4) for k, v in stats["balance"].items()}
        top = sorted(stats["balance"].items(), key=lambda kv: -kv[1])[:4]
        evidence.append(f"activation balance of the first learned layers ({', '.join(n.name or n.output[0] for n in early)}"
                        ": mean log min(p, 1-p) over units, p the fraction of positions where a unit is positive): "
                        + ", ".join(f"{k} {v:.3g}" for k, v in top))


def _labelled(out: np.ndarray, offset: int) -> tuple:
    """(photos whose top-1 is in their label set, mean log-probability of the set) for a 1000/1001 head."""
    labelled = bundled_photos.labelled()
    a = np.asarray(out[:len(labelled)], np.float64)
    probs = a.min() >= 0 and np.allclose(a.sum(1), 1.0, atol=1e-3)
    if probs:
        logp = np.log(np.clip(a, 1e-30, None))
    else:
        z = a - a.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    top1, ll = 0, []
    for row, (_, ids) in zip(logp, labelled):
        idx = [i + offset for i in ids]
        top1 += int(row.argmax()) in idx
        ll.append(float(np.logaddexp.reduce(row[idx])))
    return top1, float(np.mean(ll))
