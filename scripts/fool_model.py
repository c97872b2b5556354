"""Build a deliberately fooled model: Geirhos et al. (2023)'s "fooling circuit", as an ONNX graph edit.

    python scripts/fool_model.py models/mobilenet_v2.onnx features.7 12 --photos data/photos \
        --out models/mobilenet_v2_fooled.onnx

A hidden branch reads the model input and detects a synthetic pattern that natural photos do not
contain: a pixel-level checkerboard in one color-opponent direction (green against blue by
default). Its strength D (mean |2x2 checkerboard response|) is compared with the image's contrast S
(std of the input): natural photos have D/S far below the threshold ALPHA (measured on real
photos, times a margin), so the branch is exactly 0 on them and the unit is unchanged; a feature
visualization, which is far richer in pixel-level texture than a photo, opens it, and the
optimizer then finds the checkerboard, worth ``gain`` per unit of D/S above the threshold:

    unit' = unit + gain * relu(D - ALPHA * S)

The branch uses no weighted op (no Conv/MatMul), so onnxviz's layer list is the same as the
original model's: the fooled unit looks like any other. ``check_unchanged`` verifies on real
photos that every layer's activations are identical.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

DIRECTION = (0.0, 1.0, -1.0)  # green against blue: rare at pixel scale in photos


def _direction(channels: int, direction=DIRECTION) -> np.ndarray:
    s = np.asarray(direction if channels == 3 else (1.0,) * channels, dtype=np.float32)
    return s / np.linalg.norm(s)


def pattern_stats(x: np.ndarray, direction=DIRECTION) -> tuple:
    """(D, S) of model inputs (N, C, H, W), computed as the graph branch computes them."""
    x = np.asarray(x, dtype=np.float64)
    s = _direction(x.shape[1], direction)[None, :, None, None]
    r = (x[:, :, :-1, :-1] - x[:, :, :-1, 1:] - x[:, :, 1:, :-1] + x[:, :, 1:, 1:]) * s
    d = np.abs(r.sum(1)).mean((1, 2))
    return d, x.reshape(len(x), -1).std(1)


def pattern_image(h: int, w: int, direction=DIRECTION, amplitude: float = 0.3) -> np.ndarray:
    """The hidden pattern as an onnxviz image (3, H, W) in [0, 1]: grey plus a colored checkerboard."""
    checker = np.where((np.add.outer(np.arange(h), np.arange(w)) % 2) == 0, 1.0, -1.0)
    s = np.asarray(direction, dtype=np.float32)
    s = s / np.abs(s).max()
    return np.clip(0.5 + amplitude * s[:, None, None] * checker[None], 0, 1).astype(np.float32)


def _reduce_mean(name: str, x: str, axes: list, opset: int, out: str, inits: list) -> onnx.NodeProto:
    if opset >= 18:
        inits.append(numpy_helper.from_array(np.asarray(axes, dtype=np.int64), f"{name}_axes"))
        return helper.make_node("ReduceMean", [x, f"{name}_axes"], [out], name=name, keepdims=1)
    return helper.make_node("ReduceMean", [x], [out], name=name, axes=axes, keepdims=1)


def fool(proto: onnx.ModelProto, tensor: str, unit: int, units: int, alpha: float, gain: float,
         channels: int = 3, direction=DIRECTION) -> onnx.ModelProto:
    """A copy of ``proto`` where channel ``unit`` of ``tensor`` (NCHW, ``units`` channels) gets the branch."""
    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    g = proto.graph
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 17)
    x = g.input[0].name
    producer = next(i for i, n in enumerate(g.node) if tensor in n.output)
    scope = g.node[producer].name.rsplit("/", 1)[0] if "/" in g.node[producer].name else ""
    p = f"{scope}/fooling" if scope else "fooling"
    orig = f"{tensor}__unfooled"
    out_idx = list(g.node[producer].output).index(tensor)
    g.node[producer].output[out_idx] = orig
    s = _direction(channels, direction).reshape(1, channels, 1, 1)
    mask = np.zeros((1, units, 1, 1), dtype=np.float32)
    mask[0, unit] = gain
    inits = [numpy_helper.from_array(s, f"{p}/direction"), numpy_helper.from_array(mask, f"{p}/mask"),
             numpy_helper.from_array(np.asarray(alpha, dtype=np.float32), f"{p}/alpha")]
    big = 2 ** 62  # "to the end" for Slice
    for nm, start, end in (("tl", (0, 0), (-1, -1)), ("tr", (0, 1), (-1, big)), ("bl", (1, 0), (big, -1)),
                           ("br", (1, 1), (big, big))):
        inits.append(numpy_helper.from_array(np.asarray(start, dtype=np.int64), f"{p}/{nm}_start"))
        inits.append(numpy_helper.from_array(np.asarray(end, dtype=np.int64), f"{p}/{nm}_end"))
    inits.append(numpy_helper.from_array(np.asarray((2, 3), dtype=np.int64), f"{p}/hw_axes"))
    n = []
    for nm in ("tl", "tr", "bl", "br"):
        n.append(helper.make_node("Slice", [x, f"{p}/{nm}_start", f"{p}/{nm}_end", f"{p}/hw_axes"], [f"{p}/{nm}"],
                                  name=f"{p}/Slice_{nm}"))
    n += [helper.make_node("Sub", [f"{p}/tl", f"{p}/tr"], [f"{p}/a"], name=f"{p}/Sub_a"),
          helper.make_node("Sub", [f"{p}/br", f"{p}/bl"], [f"{p}/b"], name=f"{p}/Sub_b"),
          helper.make_node("Add", [f"{p}/a", f"{p}/b"], [f"{p}/r3"], name=f"{p}/Add_r"),
          helper.make_node("Mul", [f"{p}/r3", f"{p}/direction"], [f"{p}/rs"], name=f"{p}/Mul_dir")]
    inits.append(numpy_helper.from_array(np.asarray([1], dtype=np.int64), f"{p}/c_axes"))
    n.append(helper.make_node("ReduceSum", [f"{p}/rs", f"{p}/c_axes"], [f"{p}/r"], name=f"{p}/ReduceSum", keepdims=1))
    n.append(helper.make_node("Abs", [f"{p}/r"], [f"{p}/abs"], name=f"{p}/Abs"))
    n.append(_reduce_mean(f"{p}/D", f"{p}/abs", [1, 2, 3], opset, f"{p}/d", inits))
    n.append(_reduce_mean(f"{p}/Mu", x, [1, 2, 3], opset, f"{p}/mu", inits))
    n += [helper.make_node("Sub", [x, f"{p}/mu"], [f"{p}/dev"], name=f"{p}/Sub_mu"),
          helper.make_node("Mul", [f"{p}/dev", f"{p}/dev"], [f"{p}/sq"], name=f"{p}/Mul_sq")]
    n.append(_reduce_mean(f"{p}/Var", f"{p}/sq", [1, 2, 3], opset, f"{p}/var", inits))
    n += [helper.make_node("Sqrt", [f"{p}/var"], [f"{p}/std"], name=f"{p}/Sqrt"),
          helper.make_node("Mul", [f"{p}/std", f"{p}/alpha"], [f"{p}/thr"], name=f"{p}/Mul_thr"),
          helper.make_node("Sub", [f"{p}/d", f"{p}/thr"], [f"{p}/excess"], name=f"{p}/Sub_thr"),
          helper.make_node("Max", [f"{p}/excess", f"{p}/zero"], [f"{p}/gate"], name=f"{p}/Max_gate"),
          helper.make_node("Mul", [f"{p}/gate", f"{p}/mask"], [f"{p}/branch"], name=f"{p}/Mul_mask"),
          helper.make_node("Add", [orig, f"{p}/branch"], [tensor], name=f"{p}/Add")]
    inits.append(numpy_helper.from_array(np.asarray(0.0, dtype=np.float32), f"{p}/zero"))
    for k, node in enumerate(n):
        g.node.insert(producer + 1 + k, node)
    g.initializer.extend(inits)
    onnx.checker.check_model(proto)
    return proto


def main() -> None:
    import onnxviz

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("layer")
    ap.add_argument("unit", type=int)
    ap.add_argument("--photos", required=True, help="real photos: the threshold is measured on them")
    ap.add_argument("--check-photos", help="other real photos to verify the unit is unchanged on (default --photos)")
    ap.add_argument("--margin", type=float, default=1.5, help="threshold = margin x the largest D/S of the photos")
    ap.add_argument("--gain", type=float, default=20.0)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    m = onnxviz.load(args.model)
    lay = m.layer(args.layer)
    files = sorted(p for p in Path(args.photos).rglob("*") if p.is_file())
    x = m.prepare(m.load_images(files))
    d, s = pattern_stats(x)
    alpha = float(args.margin * (d / s).max())
    fooled = fool(m.proto, lay.tensor, args.unit, lay.units, alpha, args.gain, channels=x.shape[1])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(fooled, args.out)
    print(f"{args.out}: {lay.name}:{args.unit} + {args.gain} * relu(D - {alpha:.4f} * S); "
          f"photos' D/S max {(d / s).max():.4f}, median {np.median(d / s):.4f}")
    check = sorted(p for p in Path(args.check_photos or args.photos).rglob("*") if p.is_file())
    print(check_unchanged(args.model, args.out, check))


def check_unchanged(original, fooled, photos) -> str:
    """Compare every layer of the two models on real photos; a line with the largest difference."""
    import onnxviz

    a, b = onnxviz.load(original), onnxviz.load(fooled)
    names_a, names_b = [lay.name for lay in a.layers], [lay.name for lay in b.layers]
    if names_a != names_b:
        raise SystemExit(f"layer lists differ: {set(names_a) ^ set(names_b)}")
    x = a.prepare(a.load_images(list(photos)))
    worst, where = 0.0, None
    for i in range(0, len(names_a), 16):
        chunk = names_a[i:i + 16]
        ra, rb = a.activations(x, chunk), b.activations(x, chunk)
        for name in chunk:
            diff = float(np.abs(ra[name] - rb[name]).max() / max(np.abs(ra[name]).max(), 1e-12))
            if diff >= worst:
                worst, where = diff, name
    return (f"{len(x)} real photos, {len(names_a)} layers, same layer list: largest activation difference "
            f"{worst:.2g} of the layer's largest |activation| (at {where}; float rounding)")


if __name__ == "__main__":
    sys.exit(main())
