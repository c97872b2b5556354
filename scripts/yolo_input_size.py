#!/usr/bin/env python
"""Rewrite a fixed-size Ultralytics YOLO(11)-seg/detect ONNX export for another square input size.

    python scripts/yolo_input_size.py IN.onnx OUT.onnx 1600

No package ships a 1600 px Ultralytics segmenter open to the tuning side (docs/large_inputs.md), so
the 640 px YOLO11s-seg of the corpus (yolo11s_seg_slider) is made a 1600 px file the way Ultralytics'
own export at imgsz=1600 would differ from it: the input and output dims, the C2PSA attention block's
spatial reshapes (H*W and H, W of its 1/32 map), the DFL head's anchor count, and its anchor-point and
stride constants, recomputed as ``make_anchors`` does (cell centres at strides 8, 16, 32). The
convolutions are size-free; onnxruntime runs the result at the new size (checked by the caller).
Only constants whose values are exactly the old sizes are touched, and each edit is printed.
"""
from __future__ import annotations

import argparse
import ast

import numpy as np
import onnx
from onnx import numpy_helper as nh

STRIDES = (8, 16, 32)


def anchors(size: int) -> tuple:
    """(anchor points (2, A), strides (1, A)) of a square input of ``size`` px, as Ultralytics' make_anchors."""
    pts, strides = [], []
    for st in STRIDES:
        n = size // st
        sy, sx = np.meshgrid(np.arange(n) + 0.5, np.arange(n) + 0.5, indexing="ij")
        pts.append(np.stack([sx, sy], -1).reshape(-1, 2))
        strides.append(np.full(n * n, st))
    return np.concatenate(pts).T.astype(np.float32), np.concatenate(strides)[None].astype(np.float32)


def resize(model: onnx.ModelProto, new: int) -> list:
    """Edit ``model`` in place for a ``new`` px square input; returns one line per edit."""
    meta = {p.key: p.value for p in model.metadata_props}
    old = int(ast.literal_eval(meta.get("imgsz", "[640, 640]"))[0])
    if new % 32:
        raise SystemExit(f"{new} is not a multiple of 32 (the largest stride)")
    a_old, s_old = anchors(old)
    a_new, s_new = anchors(new)
    n_old, n_new = a_old.shape[1], a_new.shape[1]
    top_old, top_new = old // 32, new // 32
    spatial = {n_old: n_new, top_old * top_old: top_new * top_new, top_old: top_new}
    users = {}
    for node in model.graph.node:
        for i in node.input:
            users.setdefault(i, []).append(node)
    edits = []
    for t in model.graph.initializer:
        v = nh.to_array(t)
        out = None
        if v.dtype.kind == "i" and v.ndim == 1 and len(v) in (3, 4):
            reshapes = [u for u in users.get(t.name, []) if u.op_type == "Reshape"]
            tail = v[2:].tolist()
            # the DFL head's (1, 4, reg_max, A) keeps reg_max; the attention block's (1, heads, d, H*W) and
            # (1, C, H, W) change their spatial sizes
            fix = {n_old: n_new} if n_old in tail else spatial
            if reshapes and any(x in fix for x in tail):
                out = np.concatenate([v[:2], [fix.get(x, x) for x in tail]]).astype(v.dtype)
        elif v.shape == (1, 2, n_old) and np.allclose(v[0], a_old):
            out = a_new[None]
        elif v.shape == (1, 2, n_old) and np.allclose(v[0], a_old * s_old):
            out = (a_new * s_new)[None]
        elif v.shape == (1, n_old) and np.allclose(v, s_old):
            out = s_new
        if out is not None:
            edits.append(f"{t.name}: {list(v.shape)} {v.ravel()[:4].tolist()} -> {list(out.shape)} {out.ravel()[:4].tolist()}")
            t.CopyFrom(nh.from_array(out.astype(v.dtype), t.name))
    dims = {old: new, old // 4: new // 4, n_old: n_new}  # input, mask prototypes (1/4), anchors
    for vi in list(model.graph.input) + list(model.graph.output):
        for d in vi.type.tensor_type.shape.dim:
            if d.HasField("dim_value") and d.dim_value in dims:
                d.dim_value = dims[d.dim_value]
    del model.graph.value_info[:]  # shapes inferred at the old size would contradict the new one
    for p in model.metadata_props:
        if p.key == "imgsz":
            p.value = f"[{new}, {new}]"
    return edits


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("size", type=int)
    a = ap.parse_args(argv)
    model = onnx.load(a.src)
    for line in resize(model, a.size):
        print(line)
    onnx.save(model, a.dst)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
