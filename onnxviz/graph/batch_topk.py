"""The batch's top-k candidates in the graph: only (units, k) per list crosses from onnxruntime to the host.

Mining keeps, per unit, the k images with the largest (and the k with the smallest) mean and max.
Without this edit onnxruntime returns every image's statistics, (batch, units) per statistic, and
the host scans them all (behind a GPU, measured: the host top-k capped the loop at about half the
session's rate). ``add_batch_topk`` appends to ``reductions.fuse_outputs``' model a TopK over the
batch axis of each fused statistic (largest and smallest; K = min(k, batch), computed in the graph),
so the session returns, per (statistic, direction), the candidates' values (units, k), their
positions in the batch (units, k) and, when the argmax is computed inline, their spatial
positions. The statistics are transposed to (units, batch) first: onnxruntime's CPU TopK along
the last axis took half the time of the same along the first (13 vs 26 ms for two TopKs over
19,336 units x 32 images), and (units, k) is the layout of the host's lists. The host merges these into its running lists exactly as it merged whole batches.

Exact, not approximate: ONNX's TopK breaks ties by the lower index along the axis, and the batch
holds images in increasing image index, so the candidates are the batch's k best under the host's
total order (value, then lower image index). NaN, which the host ranks after every real value,
goes into the TopK as the worst infinity; the values returned are gathered from the untouched
statistics, so the host sees the NaN, and when a candidate list reaches into NaN or that infinity
(a unit with fewer than k finite values in the batch) ``StatsRunner`` reruns that batch on the
whole (batch, units) outputs, which the session still has. ``ROWS``: an input of batch positions
whose whole rows are returned too (the spectrum's sampled images; empty for most batches).
"""
from __future__ import annotations

import copy

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .edits import opset

ROWS = "onnxviz_rows"
DIRS = ("top", "bottom")


def supported(proto: onnx.ModelProto) -> bool:
    """TopK with ONNX's tie rule (lower index first) and GatherElements need opset 11."""
    return opset(proto) >= 11


def names(stat: str, direction: str) -> dict:
    """Output names of one (statistic, direction): "value", "index" (batch position), "argmax"."""
    return {part: f"onnxviz_cand_{stat}_{direction}_{part}" for part in ("value", "index", "argmax")}


def row_output(stat: str) -> str:
    return f"onnxviz_rows_{stat}"


def add_batch_topk(proto: onnx.ModelProto, fused: dict, units: int, top: int, bottom: int) -> onnx.ModelProto:
    """``fuse_outputs``' model (``fused``: {stat: (N, units) output}) with the candidate outputs added.

    For "mean" and "max": TopK over the batch (largest for "top" with K = min(top, N), smallest for
    "bottom" with K = min(bottom, N); a direction with k = 0 is left out), the values gathered
    from the statistic itself, the argmax of the same rows when ``fused`` has one, and the rows
    named by the ``ROWS`` input. The whole statistics stay outputs (the exactness fallback)."""
    proto = copy.deepcopy(proto)
    g = proto.graph
    g.input.append(helper.make_tensor_value_info(ROWS, TensorProto.INT64, ["rows"]))
    first = next(iter(fused.values()))
    g.initializer.extend([numpy_helper.from_array(np.asarray([0], np.int64), "onnxviz_topk_zero"),
                          numpy_helper.from_array(np.asarray([np.inf], np.float32), "onnxviz_topk_pinf"),
                          numpy_helper.from_array(np.asarray([-np.inf], np.float32), "onnxviz_topk_ninf")])
    g.node.append(helper.make_node("Shape", [first], ["onnxviz_topk_shape"], name="onnxviz_topk/Shape"))
    g.node.append(helper.make_node("Gather", ["onnxviz_topk_shape", "onnxviz_topk_zero"], ["onnxviz_topk_batch"],
                                   name="onnxviz_topk/Batch", axis=0))
    for direction, k in (("top", top), ("bottom", bottom)):
        if k > 0:
            g.initializer.append(numpy_helper.from_array(np.asarray([int(k)], np.int64), f"onnxviz_topk_k_{direction}"))
            g.node.append(helper.make_node("Min", [f"onnxviz_topk_k_{direction}", "onnxviz_topk_batch"],
                                           [f"onnxviz_topk_K_{direction}"], name=f"onnxviz_topk/K_{direction}"))
    if "argmax" in fused:
        g.node.append(helper.make_node("Transpose", [fused["argmax"]], ["onnxviz_topk_argmax_t"],
                                       name="onnxviz_topk/argmax/Transpose", perm=[1, 0]))
    for stat in ("mean", "max"):
        whole = fused.get(stat)
        if whole is None:
            continue
        v = f"{whole}_t"
        g.node.append(helper.make_node("Transpose", [whole], [v], name=f"onnxviz_topk/{stat}/Transpose", perm=[1, 0]))
        g.node.append(helper.make_node("IsNaN", [v], [f"{v}_isnan"], name=f"onnxviz_topk/{stat}/IsNaN"))
        g.node.append(helper.make_node("Gather", [whole, ROWS], [row_output(stat)], name=f"onnxviz_topk/{stat}/Rows",
                                       axis=0))
        g.output.append(helper.make_tensor_value_info(row_output(stat), TensorProto.FLOAT, ["rows", units]))
        for direction, k in (("top", top), ("bottom", bottom)):
            if k <= 0:
                continue
            out = names(stat, direction)
            worst = "onnxviz_topk_ninf" if direction == "top" else "onnxviz_topk_pinf"
            clean = f"{v}_clean_{direction}"
            g.node.append(helper.make_node("Where", [f"{v}_isnan", worst, v], [clean],
                                           name=f"onnxviz_topk/{stat}/{direction}/NaN"))
            g.node.append(helper.make_node("TopK", [clean, f"onnxviz_topk_K_{direction}"],
                                           [f"{clean}_values", out["index"]], name=f"onnxviz_topk/{stat}/{direction}",
                                           axis=1, largest=int(direction == "top"), sorted=1))
            g.node.append(helper.make_node("GatherElements", [v, out["index"]], [out["value"]],
                                           name=f"onnxviz_topk/{stat}/{direction}/Values", axis=1))
            g.output.append(helper.make_tensor_value_info(out["value"], TensorProto.FLOAT, [units, "k"]))
            g.output.append(helper.make_tensor_value_info(out["index"], TensorProto.INT64, [units, "k"]))
            if "argmax" in fused:
                g.node.append(helper.make_node("GatherElements", ["onnxviz_topk_argmax_t", out["index"]],
                                               [out["argmax"]], name=f"onnxviz_topk/{stat}/{direction}/Argmax", axis=1))
                g.output.append(helper.make_tensor_value_info(out["argmax"], TensorProto.INT64, [units, "k"]))
    return proto
