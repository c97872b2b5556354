"""Preprocessing inferred from evidence, for ONNX files that carry no onnxviz metadata.

An ONNX graph does not say whether it wants pixels in 0..1 or 0..255, RGB or BGR, with or without
ImageNet's mean/std; guessing [0, 1] RGB renders a flat gray image for every net that expects raw
0..255 or BGR. So for a foreign file onnxviz tests a short list of the conventions real files use
(``CANDIDATES``) against what the file itself tells:

(a) normalization nodes at the start of the graph (Sub/Div/Mul/Add by constants, a BatchNorm on
    the input, a channel flip): their constants say the input scale and, when the per-channel
    means are ImageNet's in one order or the other, RGB or BGR;
(b) the running statistics of the first BatchNormalization layers: the statistics its input had
    during training, compared with what it has on real photos under each candidate;
(c) for a 1000-class head: top-1 on foolbox's labelled ImageNet photos under each candidate;
(d) without labels or BatchNorm statistics, how natural the first learned layers behave on real
    photos: a trained unit is on for some positions and off for others, while under a wrong scale
    or offset many units are on everywhere or off everywhere. The score is the mean over their
    units of log(min(p, 1 - p)), p the fraction of positions where the unit is positive
    ("activation balance"). Balance alone cannot reject a scale that is too large (a ReLU net
    without biases is indifferent to scale; balance even favours large centred inputs), so two
    checks come first: (e) a classification head (Softmax, Sigmoid, or plain logits) that saturates
    on photos (median top-2 logit gap above ``evidence.SATURATED`` nats) rules its candidate out:
    this finds ImageNet mean/std for the orientation classifier orinet, which balance alone gave
    to 0..255 Caffe input; and when the first learned layer feeds an activation (a conv with
    BatchNorm folded in, whose output spread is then about 1) that spread picks the input scale
    (0..1 family or 0..255). This is weak evidence (confidence <= 0.5): it finds -1..1 for MTCNN's
    R/O-Nets and ImageNet mean/std for a MobileNetV2 and a ViT, but balance favours larger scales,
    so it also takes ImageNet mean/std for an EfficientNet-Lite0 and MTCNN's P-Net that want -1..1,
    and for a VGG16 fine-tuned on 0..1 input; a labelled head or BatchNorm statistics come first.

A quantized or float16 file is judged on its float32 view (``floatview``), so that a QDQ or fp16
copy of a model gets what the model gets. All evidence comes from one onnxruntime session run once
per candidate on 12-20 real photos.
The result is a ``ModelMeta`` with ``evidence`` (one line per finding) and ``confidence`` (0..1).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import onnx

from ..graph import floatview
from ..graph import edits as G
from .evidence import SATURATED, balance, bn_distance, bn_support, classifier_heads, feeds_activation, head_saturation, spread_distance
from .images import imagenet_photos
from .normalization import in_graph_normalization, judge_normalization

log = logging.getLogger("onnxviz")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@dataclass(frozen=True)
class Candidate:
    """One preprocessing convention, in ModelMeta's terms."""

    name: str
    channel_order: str
    value_range: tuple
    mean: tuple = (0.0,)
    std: tuple = (1.0,)

    def fields(self) -> dict:
        return {"channel_order": self.channel_order, "value_range": self.value_range,
                "mean": self.mean, "std": self.std}


RGB_CANDIDATES = (
    Candidate("0..1 RGB", "RGB", (0.0, 1.0)),
    Candidate("ImageNet mean/std, RGB", "RGB", (0.0, 1.0), IMAGENET_MEAN, IMAGENET_STD),
    Candidate("-1..1 RGB", "RGB", (-1.0, 1.0)),
    Candidate("0..255 BGR minus Caffe mean", "BGR", (0.0, 255.0), CAFFE_MEAN_BGR),
    Candidate("0..255 RGB", "RGB", (0.0, 255.0)),
    Candidate("0..1 BGR", "BGR", (0.0, 1.0)),
    Candidate("ImageNet mean/std, BGR", "BGR", (0.0, 1.0), IMAGENET_MEAN[::-1], IMAGENET_STD[::-1]),
    Candidate("-1..1 BGR", "BGR", (-1.0, 1.0)),
    Candidate("0..255 BGR", "BGR", (0.0, 255.0)),
)
GRAY_CANDIDATES = (
    Candidate("0..1 gray", "L", (0.0, 1.0)),
    Candidate("-1..1 gray", "L", (-1.0, 1.0)),
    Candidate("0..255 gray", "L", (0.0, 255.0)),
)


def scale_of(c: Candidate) -> float:
    """The input units: 255 for 0..255 conventions, 1 otherwise."""
    return 255.0 if max(abs(v) for v in c.value_range) > 2 else 1.0


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


def imagenet_head(proto: onnx.ModelProto, shapes: dict) -> Optional[tuple]:
    """(output name, offset) of a 1000- or 1001-class output (1001: class 0 is background)."""
    for out in proto.graph.output:
        shape = shapes.get(out.name, (None, None))[1]
        if shape and len(shape) == 2 and shape[1] in (1000, 1001):
            return out.name, shape[1] - 1000
    return None


def _photos(n: int) -> list:
    """Up to n real photos: foolbox's ImageNet photos when installed, else the bundled cat."""
    from .images import sample_image_path

    found = [p for p, _ in imagenet_photos()]
    return found[:n] if found else [sample_image_path()]


# ---------------------------------------------------------------------------------------- inference
@dataclass
class Finding:
    """What the evidence chose, how sure it is, and why."""

    candidate: Candidate
    confidence: float
    evidence: list
    scores: dict = field(default_factory=dict)


def infer(model, base, use_labels: bool = True) -> "Finding":
    """Infer preprocessing for ``model`` (needs proto, input_name) whose defaults are ``base``.

    ``base``: the ModelMeta from the input shape (size, layout, channels). Returns a Finding; the
    caller applies ``finding.candidate.fields()`` to ``base``.
    """
    from ..backends.ort import Runner
    from .images import load_image

    channels = base.channels
    cands = list(GRAY_CANDIDATES if channels == 1 else RGB_CANDIDATES)
    evidence: list = []
    confidence = None
    # a quantized or float16 file is judged by the float computation it approximates: its fake
    # quantization (calibrated on some input range) and fp16 rounding would otherwise be the evidence
    proto = floatview.float_view(model.proto)
    if proto is not model.proto:
        evidence.append(f"judged on the float32 view of this {floatview.kind(model.proto)} file")
    norm = in_graph_normalization(proto, model.input_name, base.layout, channels)
    if norm is not None:
        scale, order, line = judge_normalization(norm, channels)
        evidence.append(line)
        orders = ("L",) if channels == 1 else (order,) if order else ("RGB", "BGR")
        cands = [Candidate(f"0..{int(scale)} {o} (normalized in the graph)", o, (0.0, scale)) for o in orders]
        confidence = 0.9 if len(cands) == 1 else None
    if len(cands) == 1:
        return Finding(cands[0], confidence or 0.9, evidence)

    first, bns = _first_learned(proto, model.input_name)
    early = _learned_nodes(proto, model.input_name)
    probe = [o.name for o in proto.graph.output]
    watch = list(dict.fromkeys(([first.output[0]] if first is not None else []) + [bn.input[0] for bn in bns]
                               + [n.output[0] for n in early]))
    # several inputs: the others get a mid-gray image through the same candidate preprocessing
    other = getattr(model, "_other_inputs", None)

    def feeds(meta):  # float16 feeds become float32, as the float view's inputs did
        return {k: v.astype(np.float32) if v.dtype == np.float16 else v for k, v in other(meta).items()}
    runner = Runner(G.expose(proto, watch, keep_outputs=True), threads=None, input_name=model.input_name,
                    extras=feeds(base) if other else None)

    def run(meta, x):
        if other is not None and runner.extras:
            runner.extras = {k: v for k, v in feeds(meta).items() if k in runner.extras}
        return runner.run(meta.to_model_input(x))
    h, w = base.input_size
    labelled = imagenet_photos() if use_labels else []

    def batch(paths):
        return np.stack([load_image(p, (h, w), int(round(min(h, w) * 256 / 224))) for p in paths])

    # one photo first: is there a 1000-class head (then all 20 labelled photos), else 8 photos
    some = run(base.replace(**cands[0].fields()), batch(_photos(1)))
    head = next(((o, some[o].shape[1] - 1000) for o in probe
                 if some[o].ndim == 2 and some[o].shape[1] in (1000, 1001)), None)
    heads = classifier_heads(proto, {o: (None, some[o].shape) for o in probe})
    paths = [p for p, _ in labelled] if head is not None and labelled else _photos(8)
    images = batch(paths)
    runs = {c.name: run(base.replace(**c.fields()), images) for c in cands}
    scores: dict = {}
    chosen = None
    if head is not None and labelled:
        name, off = head
        truth = np.asarray([lab for _, lab in labelled]) + off
        top1, loglik = {}, {}
        for c in cands:
            logits = runs[c.name][name].astype(np.float64)
            top1[c.name] = int((logits.argmax(1) == truth).sum())
            z = logits - logits.max(1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(1, keepdims=True))
            loglik[c.name] = float(logp[np.arange(len(truth)), truth].mean())
        # top-1 first; the mean log-likelihood of the true class breaks ties
        ranked = sorted(cands, key=lambda c: (-top1[c.name], -loglik[c.name]))
        best, second = ranked[0], ranked[1]
        k, k2 = top1[best.name], top1[second.name]
        evidence.append(f"1000-class output {name!r}: top-1 on {len(paths)} labelled ImageNet photos "
                        + ", ".join(f"{c.name} {top1[c.name]} (log-lik {loglik[c.name]:.2f})" for c in ranked[:5])
                        + ", ".join([""] + [f"{c.name} {top1[c.name]}" for c in ranked[5:]]))
        scores["imagenet_top1"] = top1
        scores["imagenet_loglik"] = {k_: round(v, 4) for k_, v in loglik.items()}
        if k >= max(3, len(paths) // 4):
            chosen = best
            margin = (k - k2) / max(k, 1) if k != k2 else min(0.2, loglik[best.name] - loglik[second.name])
            confidence = min(0.99, 0.45 + 0.5 * margin + 0.25 * k / len(paths))
    if chosen is None and bns:
        bn_score = {c.name: bn_distance(proto, bns, runs[c.name]) for c in cands}
        ranked = sorted(cands, key=lambda c: bn_score[c.name])
        b1, b2 = bn_score[ranked[0].name], bn_score[ranked[1].name]
        evidence.append(f"BatchNormalization running statistics of the first layers "
                        f"({', '.join(bn.name or bn.output[0] for bn in bns)}) vs real photos, distance "
                        + ", ".join(f"{c.name} {bn_score[c.name]:.3g}" for c in ranked[:4]))
        scores["batchnorm_distance"] = {k: round(v, 4) for k, v in bn_score.items()}
        chosen = ranked[0]
        confidence = max(0.3, min(0.95, 1.0 - b1 / max(b2, 1e-9)))
        # RGB and BGR are often within a few percent here: then the order is not decided by it
        def plain(c):
            return c.name.replace("BGR", "*").replace("RGB", "*")

        twin = next((c for c in ranked[1:] if plain(c) == plain(chosen) and c is not chosen), None)
        support = None
        if twin is not None and bn_score[twin.name] > b1 * 1.15 + 1e-9:  # a lean: do the photos make it?
            support = bn_support(proto, bns, runs[chosen.name], runs[twin.name],
                                 np.random.default_rng(0))
            scores["batchnorm_order_support"] = {chosen.name: support}
            if support >= ORDER_SUPPORT:
                twin = None
            else:
                evidence.append(f"{chosen.channel_order} is nearer than {twin.channel_order} on these photos but "
                                f"only in {support:.0%} of 100 resamples of them (< {ORDER_SUPPORT:.0%}): a lean of "
                                f"the draw of photos, not evidence of the order; {chosen.channel_order} kept")
                third = next(bn_score[c.name] for c in ranked if c not in (chosen, twin))
                confidence = max(0.3, min(0.7, 1.0 - b1 / max(third, 1e-9)))
                twin = None
        if twin is not None:
            chosen = min((chosen, twin), key=cands.index)
            third = next(bn_score[c.name] for c in ranked if c not in (ranked[0], twin))
            confidence = max(0.3, min(0.7, 1.0 - b1 / max(third, 1e-9)))
            evidence.append(f"BatchNorm statistics do not tell RGB from BGR ({ranked[0].name} {b1:.3g} vs "
                            f"{twin.name} {bn_score[twin.name]:.3g}): {chosen.channel_order} taken")
    if chosen is None and early:
        chosen, confidence = _by_balance(proto, cands, runs, first, early, heads, evidence, scores)
        confidence = confidence if norm is None else max(confidence, 0.5)
    if chosen is None:
        chosen, confidence = cands[0], 0.1
        evidence.append("no evidence found (no normalization nodes, no labelled head, no BatchNorm statistics, "
                        "no learned layer): defaults")
    return Finding(chosen, round(float(confidence), 3), evidence, scores)


ORDER_SUPPORT = 0.9  # share of photo resamples in which a channel order must stay nearer to be evidence
BALANCE_TIE = 0.03  # nats of activation balance within which candidates count as tied (list order wins)
ORDER_TIE = 0.1  # the same, between the two channel orders of one convention
_balance = balance  # the statistic itself lives in onnxviz.preprocessing.evidence


def _saturation(cands: list, runs: dict, heads: list) -> dict:
    """Per candidate: the largest head saturation over the classification heads (nats; see evidence)."""
    out = {}
    for c in cands:
        vals = [head_saturation(runs[c.name][o], kind) for o, kind in heads if o in runs[c.name]]
        vals = [v for v in vals if v is not None]
        if vals:
            out[c.name] = max(vals)
    return out


def _by_balance(proto, cands: list, runs: dict, first, early: list, heads: list, evidence: list,
                scores: dict) -> tuple:
    """(candidate, confidence) without labels or BatchNorm statistics (see (d) and (e) above)."""
    bal = {c.name: balance([runs[c.name][n.output[0]] for n in early]) for c in cands}
    pool, how = list(cands), ""
    sat = _saturation(cands, runs, heads)
    if len(sat) == len(cands):
        scores["head_saturation"] = {k: round(v, 3) for k, v in sat.items()}
        sane = [c for c in cands if sat[c.name] <= SATURATED]
        if sane and len(sane) < len(cands):
            pool = sane
            out = sorted((c for c in cands if c not in sane), key=lambda c: -sat[c.name])
            how = (f"the classification head ({', '.join(o for o, _ in heads)}) saturates under "
                   + ", ".join(f"{c.name} ({sat[c.name]:.3g})" for c in out)
                   + f" (median top-2 logit gap on photos above {SATURATED:g} nats; "
                   + ", ".join(f"{c.name} {sat[c.name]:.3g}" for c in sorted(sane, key=lambda c: sat[c.name])[:3])
                   + "): a scale beyond the training input's; ")
    if first is not None and feeds_activation(proto, first) and len({scale_of(c) for c in pool}) > 1:
        spread = {c.name: spread_distance(runs[c.name][first.output[0]]) for c in pool}
        scale = scale_of(min(pool, key=lambda c: spread[c.name]))
        pool = [c for c in pool if scale_of(c) == scale]
        scores["first_layer_spread"] = {k: round(v, 4) for k, v in spread.items()}
        how += (f"the output spread of the first learned layer ({first.op_type} {first.name or first.output[0]}) "
                f"is closest to 1 for 0..{int(scale)} input (squared log-std distance " + ", ".join(
                    f"{n} {v:.3g}" for n, v in sorted(spread.items(), key=lambda kv: kv[1])[:3]) + "); ")
    best = max(bal[c.name] for c in pool)
    chosen = next(c for c in pool if bal[c.name] >= best - BALANCE_TIE)  # near-ties: list order
    # the channel order moves balance little: the twin in the other order needs a clear margin to win
    twin = next((c for c in pool if c is not chosen and c.value_range == chosen.value_range
                 and tuple(c.mean)[::-1] == tuple(chosen.mean) and tuple(c.std)[::-1] == tuple(chosen.std)), None)
    pair = (chosen, twin) if twin is not None and abs(bal[twin.name] - bal[chosen.name]) < ORDER_TIE else None
    if twin is not None and cands.index(twin) < cands.index(chosen) and bal[twin.name] >= bal[chosen.name] - ORDER_TIE:
        chosen = twin
    ranked = sorted(pool, key=lambda c: -bal[c.name])
    # the rival is another convention: the twin in the other channel order is none
    rival = max((bal[c.name] for c in pool
                 if c.value_range != chosen.value_range or sorted(c.mean) != sorted(chosen.mean)), default=best - 1.0)
    confidence = max(0.3, min(0.5, 0.3 + 0.5 * (best - rival)))
    scores["activation_balance"] = {k: round(v, 4) for k, v in bal.items()}
    evidence.append(f"no labelled head and no BatchNorm statistics: {how}activation balance of the first learned "
                    f"layers ({', '.join(n.name or n.output[0] for n in early)}: mean log min(p, 1-p) over units, p "
                    f"the fraction of positions where a unit is positive) is best under {chosen.name} ("
                    + ", ".join(f"{c.name} {bal[c.name]:.3g}" for c in ranked[:4])
                    + f"); within {BALANCE_TIE} (channel order: {ORDER_TIE}) the first candidate in list order "
                    "(RGB before BGR)")
    if pair is not None:
        evidence.append(f"channel order not decided by the evidence (balance {pair[0].name} {bal[pair[0].name]:.3g}"
                        f" vs {pair[1].name} {bal[pair[1].name]:.3g}): {chosen.channel_order} by list order")
    return chosen, confidence
