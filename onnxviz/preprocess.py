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
    without biases is indifferent to scale), so when the first learned layer feeds an activation
    (a conv with BatchNorm folded in, whose output spread is then about 1) that spread picks the
    input scale (0..1 family or 0..255) and balance the convention within it. This is weak
    evidence (confidence <= 0.5): it finds -1..1 for MTCNN's R/O-Nets and ImageNet mean/std for a
    MobileNetV2 and a ViT, but balance favours larger scales, so it also takes ImageNet mean/std for
    an EfficientNet-Lite0 that wants -1..1; a labelled head or BatchNorm statistics come first.

All evidence comes from one onnxruntime session run once per candidate on 12-20 real photos.
The result is a ``ModelMeta`` with ``evidence`` (one line per finding) and ``confidence`` (0..1).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import onnx
from onnx import numpy_helper

from . import graph as G
from .images import imagenet_photos

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


@dataclass
class Normalization:
    """The affine map the graph applies to its input before the first learned layer."""

    scale: np.ndarray  # per input channel: y = scale * x + shift
    shift: np.ndarray
    nodes: list = field(default_factory=list)  # ops folded, e.g. ["Sub", "Div"]
    flip: bool = False  # the graph reverses the channel order itself

    @property
    def mean(self) -> np.ndarray:  # in input units
        return -self.shift / self.scale

    @property
    def std(self) -> np.ndarray:
        return 1.0 / np.abs(self.scale)


# ---------------------------------------------------------------------------------------- (a)
def _constant(name: str, inits: dict, consts: dict) -> Optional[np.ndarray]:
    if name in inits:
        return numpy_helper.to_array(inits[name]).astype(np.float64)
    if name in consts:
        return consts[name]
    return None


def _per_channel(v: np.ndarray, c: int, axis: int, rank: int) -> Optional[np.ndarray]:
    """A broadcastable constant as one value per channel, or None when it varies otherwise."""
    if v.size == 1:
        return np.full(c, float(v.reshape(-1)[0]))
    if v.size != c:
        return None
    shape = (1,) * (rank - v.ndim) + tuple(v.shape)
    return v.reshape(-1) if shape[axis] == c else None


def in_graph_normalization(proto: onnx.ModelProto, input_name: str, layout: str, channels: int
                           ) -> Optional[Normalization]:
    """Fold the elementwise ops between the input and the first learned op into one affine map."""
    graph = proto.graph
    inits = {t.name: t for t in graph.initializer}
    consts = {}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute:
            try:
                consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t).astype(np.float64)
            except Exception:  # noqa: BLE001 - a non-tensor Constant: not a normalization constant
                pass
    users: dict = {}
    for node in graph.node:
        for i in node.input:
            users.setdefault(i, []).append(node)
    scale, shift = np.ones(channels), np.zeros(channels)
    axis = 1 if layout == "NCHW" else 3
    tensor, folded, flip = input_name, [], False
    while True:
        nxt = [u for u in users.get(tensor, [])]
        if len(nxt) != 1:
            break
        node = nxt[0]
        op = node.op_type
        if op in ("Cast", "Identity"):
            tensor = node.output[0]
            continue
        if op == "Transpose":
            perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
            if perm is None or len(perm) != 4:
                break
            axis = perm.index(axis)
            tensor = node.output[0]
            continue
        if op in ("Sub", "Add", "Mul", "Div") and len(node.input) == 2:
            other = node.input[1] if node.input[0] == tensor else node.input[0]
            v = _constant(other, inits, consts)
            v = _per_channel(v, channels, axis, 4) if v is not None else None
            if v is None:
                break
            first = node.input[0] == tensor
            if op == "Add":
                shift = shift + v
            elif op == "Sub":
                scale, shift = (scale, shift - v) if first else (-scale, v - shift)
            elif op == "Mul":
                scale, shift = scale * v, shift * v
            elif first:  # Div
                scale, shift = scale / v, shift / v
            else:
                break  # constant / x is not a normalization
            folded.append(op)
            tensor = node.output[0]
            continue
        if op == "BatchNormalization" and node.input[0] == tensor:
            vals = [_constant(n, inits, consts) for n in node.input[1:5]]
            if any(v is None or v.size != channels for v in vals) or axis != 1:
                break
            gamma, beta, mu, var = (v.reshape(-1) for v in vals)
            eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
            k = gamma / np.sqrt(var + eps)
            scale, shift = scale * k, (shift - mu) * k + beta
            folded.append(op)
            tensor = node.output[0]
            continue
        if op == "Gather" and channels == 3:
            ax = next((a.i for a in node.attribute if a.name == "axis"), 0)
            idx = _constant(node.input[1], inits, consts)
            if idx is None or ax % 4 != axis or idx.reshape(-1).tolist() != [2, 1, 0]:
                break
            scale, shift, flip = scale[::-1].copy(), shift[::-1].copy(), not flip
            folded.append(op)
            tensor = node.output[0]
            continue
        break
    if not folded or (np.allclose(scale, 1) and np.allclose(shift, 0)) and not flip:
        return None
    if flip:  # express it in the input's channel order: the graph's map is applied after reversing
        scale, shift = scale[::-1].copy(), shift[::-1].copy()
    return Normalization(scale=scale, shift=shift, nodes=folded, flip=flip)


def _order_from_means(mean: np.ndarray) -> Optional[str]:
    """ImageNet's channel means fall R > G > B; the order they are subtracted in tells RGB or BGR."""
    if mean.size != 3 or np.ptp(mean) < 0.02 * max(np.abs(mean).max(), 1e-6):
        return None
    return "RGB" if mean[0] > mean[1] > mean[2] else "BGR" if mean[0] < mean[1] < mean[2] else None


def judge_normalization(norm: Normalization, channels: int) -> tuple:
    """(input scale 1 or 255, channel order or None, evidence line) from the folded constants."""
    mean, std = norm.mean, norm.std
    big = max(np.abs(mean).max(), std.max())
    scale = 255.0 if big > 2.5 else 1.0
    order = _order_from_means(mean) if channels == 3 else None
    if norm.flip and order is not None:
        order = "BGR" if order == "RGB" else "RGB"
    desc = (f"normalization in the graph ({' -> '.join(norm.nodes)}): (x - {_fmt(mean)}) / {_fmt(std)}"
            f"{', channels reversed in the graph' if norm.flip else ''}: the file expects "
            f"0..{int(scale)} input" + (f", {order} (means in {'R>G>B' if order == 'RGB' else 'B<G<R'} order)"
                                          if order else ""))
    return scale, order, desc


def _fmt(v: np.ndarray) -> str:
    return "[" + ", ".join(f"{x:.4g}" for x in np.asarray(v).reshape(-1)) + "]"


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
    from .backends.ort import Runner
    from .images import load_image

    channels = base.channels
    cands = list(GRAY_CANDIDATES if channels == 1 else RGB_CANDIDATES)
    evidence: list = []
    confidence = None
    norm = in_graph_normalization(model.proto, model.input_name, base.layout, channels)
    if norm is not None:
        scale, order, line = judge_normalization(norm, channels)
        evidence.append(line)
        orders = ("L",) if channels == 1 else (order,) if order else ("RGB", "BGR")
        cands = [Candidate(f"0..{int(scale)} {o} (normalized in the graph)", o, (0.0, scale)) for o in orders]
        confidence = 0.9 if len(cands) == 1 else None
    if len(cands) == 1:
        return Finding(cands[0], confidence or 0.9, evidence)

    first, bns = _first_learned(model.proto, model.input_name)
    early = _learned_nodes(model.proto, model.input_name)
    probe = [model.proto.graph.output[i].name for i in range(len(model.proto.graph.output))]
    watch = list(dict.fromkeys(([first.output[0]] if first is not None else []) + [bn.input[0] for bn in bns]
                               + [n.output[0] for n in early]))
    # several inputs: the others get a mid-gray image through the same candidate preprocessing
    other = getattr(model, "_other_inputs", None)
    runner = Runner(G.expose(model.proto, watch, keep_outputs=True), threads=None, input_name=model.input_name,
                    extras=other(base) if other else None)

    def run(meta, x):
        if other is not None and runner.extras:
            runner.extras = {k: v for k, v in other(meta).items() if k in runner.extras}
        return runner.run(meta.to_model_input(x))
    h, w = base.input_size
    labelled = imagenet_photos() if use_labels else []

    def batch(paths):
        return np.stack([load_image(p, (h, w), int(round(min(h, w) * 256 / 224))) for p in paths])

    # one photo first: is there a 1000-class head (then all 20 labelled photos), else 8 photos
    some = run(base.replace(**cands[0].fields()), batch(_photos(1)))
    head = next(((o, some[o].shape[1] - 1000) for o in probe
                 if some[o].ndim == 2 and some[o].shape[1] in (1000, 1001)), None)
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
        bn_score = {c.name: _bn_distance(model.proto, bns, runs[c.name]) for c in cands}
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

        twin = next((c for c in ranked[1:] if plain(c) == plain(chosen) and c is not chosen
                     and bn_score[c.name] <= b1 * 1.15 + 1e-9), None)
        if twin is not None:
            chosen = min((chosen, twin), key=cands.index)
            third = next(bn_score[c.name] for c in ranked if c not in (ranked[0], twin))
            confidence = max(0.3, min(0.7, 1.0 - b1 / max(third, 1e-9)))
            evidence.append(f"BatchNorm statistics do not tell RGB from BGR ({ranked[0].name} {b1:.3g} vs "
                            f"{twin.name} {bn_score[twin.name]:.3g}): {chosen.channel_order} taken")
    if chosen is None and early:
        chosen, confidence = _by_balance(model.proto, cands, runs, first, early, evidence, scores)
        confidence = confidence if norm is None else max(confidence, 0.5)
    if chosen is None:
        chosen, confidence = cands[0], 0.1
        evidence.append("no evidence found (no normalization nodes, no labelled head, no BatchNorm statistics, "
                        "no learned layer): defaults")
    return Finding(chosen, round(float(confidence), 3), evidence, scores)


BALANCE_TIE = 0.03  # nats of activation balance within which candidates count as tied (list order wins)
ORDER_TIE = 0.1  # the same, between the two channel orders of one convention


def _by_balance(proto, cands: list, runs: dict, first, early: list, evidence: list, scores: dict) -> tuple:
    """(candidate, confidence) from the activation balance of the first learned layers (see (d))."""
    bal = {c.name: _balance([runs[c.name][n.output[0]] for n in early]) for c in cands}
    pool, how = list(cands), ""
    if first is not None and _feeds_activation(proto, first) and len({scale_of(c) for c in cands}) > 1:
        spread = {c.name: _spread_distance(runs[c.name][first.output[0]]) for c in cands}
        scale = scale_of(min(cands, key=lambda c: spread[c.name]))
        pool = [c for c in cands if scale_of(c) == scale]
        scores["first_layer_spread"] = {k: round(v, 4) for k, v in spread.items()}
        how = (f"the output spread of the first learned layer ({first.op_type} {first.name or first.output[0]}) "
               f"is closest to 1 for 0..{int(scale)} input (squared log-std distance " + ", ".join(
                   f"{c.name} {spread[c.name]:.3g}" for c in sorted(cands, key=lambda c: spread[c.name])[:3]) + "); ")
    best = max(bal[c.name] for c in pool)
    chosen = next(c for c in pool if bal[c.name] >= best - BALANCE_TIE)  # near-ties: list order
    # the channel order moves balance little: the twin in the other order needs a clear margin to win
    twin = next((c for c in pool if c is not chosen and c.value_range == chosen.value_range
                 and tuple(c.mean)[::-1] == tuple(chosen.mean) and tuple(c.std)[::-1] == tuple(chosen.std)), None)
    if twin is not None and cands.index(twin) < cands.index(chosen) and bal[twin.name] >= bal[chosen.name] - ORDER_TIE:
        chosen = twin
    ranked = sorted(cands, key=lambda c: -bal[c.name])
    rival = max((bal[c.name] for c in pool if c.value_range != chosen.value_range or c.mean != chosen.mean),
                default=best - 1.0)
    confidence = max(0.3, min(0.5, 0.3 + 0.5 * (best - rival)))
    scores["activation_balance"] = {k: round(v, 4) for k, v in bal.items()}
    evidence.append(f"no labelled head and no BatchNorm statistics: {how}activation balance of the first learned "
                    f"layers ({', '.join(n.name or n.output[0] for n in early)}: mean log min(p, 1-p) over units, p "
                    f"the fraction of positions where a unit is positive) is best under {chosen.name} ("
                    + ", ".join(f"{c.name} {bal[c.name]:.3g}" for c in ranked[:4])
                    + f"); within {BALANCE_TIE} (channel order: {ORDER_TIE}) the first candidate in list order "
                    "(RGB before BGR)")
    return chosen, confidence


def _balance(outs: list) -> float:
    """Mean over layers and units of log(min(p, 1 - p)), p = fraction of (photo, position) > 0."""
    vals = []
    for a in outs:
        a = np.asarray(a)
        if a.ndim < 2:
            continue
        if a.ndim == 3:  # tokens (N, L, C): units last
            a = a.transpose(0, 2, 1)
        p = (a > 0).mean((0,) + tuple(range(2, a.ndim)))
        vals.append(float(np.log(np.maximum(np.minimum(p, 1 - p), 1e-3)).mean()))
    return float(np.mean(vals)) if vals else float("-inf")


ACTIVATIONS = {"Relu", "Clip", "PRelu", "LeakyRelu", "HardSwish", "Elu", "Selu", "Sigmoid", "Tanh", "Mish"}


def _feeds_activation(proto: onnx.ModelProto, node) -> bool:
    """Is the first learned layer conv(+folded BN) -> activation? Only then is its spread about 1."""
    out = node.output[0]
    return any(u.op_type in ACTIVATIONS and out in u.input for u in proto.graph.node)


def _bn_distance(proto: onnx.ModelProto, bns: list, out: dict) -> float:
    """How far the photos' statistics at each BN input are from the BN's running statistics."""
    inits = {t.name: t for t in proto.graph.initializer}
    consts = {}
    dists = []
    for bn in bns:
        rm = _constant(bn.input[3], inits, consts)
        rv = _constant(bn.input[4], inits, consts)
        a = out[bn.input[0]].astype(np.float64)
        if rm is None or rv is None or a.ndim < 2:
            continue
        axes = (0,) + tuple(range(2, a.ndim))
        mu, var = a.mean(axes), a.var(axes)
        rv = np.maximum(rv.reshape(-1), 1e-6)
        d = 0.5 * (mu - rm.reshape(-1)) ** 2 / rv + 0.5 * np.log((var + 1e-6) / rv) ** 2
        dists.append(float(np.median(d)))
    return float(np.mean(dists)) if dists else float("inf")


def _spread_distance(a: np.ndarray) -> float:
    """Median over channels of log(std)^2 of a (N, C, ...) output: 0 when the spread is about 1."""
    a = a.astype(np.float64)
    if a.ndim == 3:  # tokens (N, L, C)
        a = a.transpose(0, 2, 1)
    axes = (0,) + tuple(range(2, a.ndim))
    std = a.std(axes)
    std = std[std > 0]
    return float(np.median(np.log(std) ** 2)) if std.size else float("inf")
