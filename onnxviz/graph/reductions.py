"""In-graph per-channel statistics: what mining asks onnxruntime for instead of full maps.

``add_channel_reductions`` edits a model so that it outputs, per mined layer, the mean, max and
argmax position of every channel: kilobytes per image instead of the megabytes of full
activation maps. ``fuse_outputs`` then concatenates each statistic of all layers into one (N,
units) output in the graph, so that onnxruntime returns one array per statistic. The top-k
update works on all layers side by side and needs no copying on the host. It is also one
transfer from a GPU instead of one per layer.
"""
from __future__ import annotations

import copy
from typing import Iterable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .edits import BATCH_DIM, infer_shapes, opset, value_shapes

STATS = ("mean", "max", "argmax")


def add_channel_reductions(proto: onnx.ModelProto, layers: list, stats: Iterable[str] = STATS):
    """A model that outputs per-channel statistics of each layer instead of its full activation map.

    ``layers``: objects with ``tensor``, ``layout`` ("NCHW", "NHWC", "NLC" or "NC") and ``units``.
    Returns (ModelProto, outputs) where ``outputs[i]`` maps each stat to the output name for
    ``layers[i]``: "mean" and "max" are (N, C) float, "argmax" is (N, C) int64, the flat index of
    the first spatial maximum in (H, W). For (N, C) layers the tensor itself is returned once.
    This is how mining moves kilobytes, not the megabytes of full maps, out of onnxruntime.
    """
    stats = tuple(stats)
    unknown = set(stats) - set(STATS)
    if unknown:
        raise ValueError(f"unknown statistics {sorted(unknown)}; known: {STATS}")
    proto = copy.deepcopy(proto)
    graph = proto.graph
    version = opset(proto)
    known = value_shapes(infer_shapes(proto))
    del graph.output[:]
    outputs = []
    shapes = {}
    for i, layer in enumerate(layers):
        t = layer.tensor
        names = {}
        if known.get(t, (None, None))[0] == TensorProto.FLOAT16:  # float16 models: reduce in float32
            graph.node.append(helper.make_node("Cast", [t], [f"{t}__onnxviz_f32"], to=TensorProto.FLOAT))
            t = f"{t}__onnxviz_f32"
        if layer.layout == "NC":
            for s in stats:
                if s in ("mean", "max"):
                    names[s] = t
            if t not in {o.name for o in graph.output}:
                graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, [BATCH_DIM, layer.units]))
            outputs.append(names)
            continue
        prefix = f"onnxviz_stat{i}"
        if layer.layout == "NLC" and getattr(layer, "grid", None):
            # a vision transformer's tokens: the patch tokens only (CLS etc. left out), as an
            # (N, gh, gw, C) map, so statistics are over patches and argmax is a patch
            gh, gw = layer.grid
            start = f"{prefix}_tokens_start"
            graph.initializer.extend([
                numpy_helper.from_array(np.asarray([int(layer.prefix_tokens or 0)], np.int64), start),
                numpy_helper.from_array(np.asarray([np.iinfo(np.int64).max], np.int64), f"{start}_end"),
                numpy_helper.from_array(np.asarray([1], np.int64), f"{start}_axis"),
                numpy_helper.from_array(np.asarray([0, gh, gw, int(layer.units)], np.int64), f"{start}_grid")])
            graph.node.append(helper.make_node("Slice", [t, start, f"{start}_end", f"{start}_axis"],
                                               [f"{prefix}_patches"], name=f"{prefix}/Slice"))
            graph.node.append(helper.make_node("Reshape", [f"{prefix}_patches", f"{start}_grid"], [f"{prefix}_grid"],
                                               name=f"{prefix}/ReshapeGrid"))
            t = f"{prefix}_grid"
            flat_shape, axis = [0, -1, int(layer.units)], 1
        elif layer.layout == "NCHW":
            flat_shape, axis = [0, 0, -1], 2
        elif layer.layout == "NHWC":
            flat_shape, axis = [0, -1, int(layer.units)], 1
        elif layer.layout == "NLC":
            flat_shape, axis = None, 1
        else:
            raise ValueError(f"cannot reduce a layer with layout {layer.layout!r}")
        rest = stats
        if layer.layout == "NCHW":
            # GlobalAveragePool / GlobalMaxPool read onnxruntime's blocked conv layout directly (a
            # reorder to NCHW costs as much as the reduction); an ArgMax reorders for itself only
            rest = tuple(s for s in stats if s == "argmax")
            for s in (s for s in stats if s != "argmax"):
                op = "GlobalAveragePool" if s == "mean" else "GlobalMaxPool"
                pooled, out = f"{prefix}_{s}_pooled", f"{prefix}_{s}"
                graph.node.append(helper.make_node(op, [t], [pooled], name=f"{prefix}/{op}"))
                graph.node.append(helper.make_node("Flatten", [pooled], [out], name=f"{prefix}/Flatten_{s}", axis=1))
                graph.output.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, [BATCH_DIM, layer.units]))
                names[s] = out
            if not rest:
                outputs.append(names)
                continue
        src = t
        if flat_shape is not None:
            key = tuple(flat_shape)
            if key not in shapes:
                shapes[key] = f"onnxviz_shape_{len(shapes)}"
                graph.initializer.append(numpy_helper.from_array(np.asarray(flat_shape, np.int64), shapes[key]))
            src = f"{prefix}_flat"
            graph.node.append(helper.make_node("Reshape", [t, shapes[key]], [src], name=f"{prefix}/Reshape"))
        for s in rest:
            out = f"{prefix}_{s}"
            if s == "argmax":
                graph.node.append(helper.make_node("ArgMax", [src], [out], name=f"{prefix}/ArgMax", axis=axis,
                                                   keepdims=0))
                elem = TensorProto.INT64
            else:
                op = "ReduceMean" if s == "mean" else "ReduceMax"
                if version >= 18:
                    axes_name = f"onnxviz_axes_{axis}"
                    if axes_name not in {x.name for x in graph.initializer}:
                        graph.initializer.append(numpy_helper.from_array(np.asarray([axis], np.int64), axes_name))
                    node = helper.make_node(op, [src, axes_name], [out], name=f"{prefix}/{op}", keepdims=0)
                else:
                    node = helper.make_node(op, [src], [out], name=f"{prefix}/{op}", axes=[axis], keepdims=0)
                graph.node.append(node)
                elem = TensorProto.FLOAT
            graph.output.append(helper.make_tensor_value_info(out, elem, [BATCH_DIM, layer.units]))
            names[s] = out
        outputs.append(names)
    return proto, outputs


def fuse_outputs(proto: onnx.ModelProto, layers: list, outputs: list, stats: Iterable[str]) -> tuple:
    """``add_channel_reductions``' model (its ``outputs``) with each statistic of all ``layers``
    concatenated in the graph, in layer order.

    Returns (ModelProto, fused, spans): ``fused`` maps each stat to its (N, sum of units) output,
    ``spans[i]`` is layer i's (start, stop) column range in it. An (N, C) layer has no spatial
    argmax: it gets zeros there (ConstantOfShape), as ``StatsRunner`` always gave it."""
    proto = copy.deepcopy(proto)
    graph = proto.graph
    parts: dict = {s: [] for s in stats}
    spans, start = [], 0
    for i, (layer, names) in enumerate(zip(layers, outputs)):
        for s in stats:
            name = names.get(s)
            if name is None:  # argmax of an (N, C) layer
                name = f"onnxviz_nc{i}_argmax"
                graph.node.append(helper.make_node("Shape", [layer.tensor], [f"{name}_shape"], name=f"{name}/Shape"))
                graph.node.append(helper.make_node("ConstantOfShape", [f"{name}_shape"], [name], name=f"{name}/Zeros",
                                                   value=helper.make_tensor("zero", TensorProto.INT64, [1], [0])))
            parts[s].append(name)
        spans.append((start, start + int(layer.units)))
        start += int(layer.units)
    del graph.output[:]
    fused = {}
    for s in stats:
        fused[s] = f"onnxviz_all_{s}"
        graph.node.append(helper.make_node("Concat", parts[s], [fused[s]], name=f"onnxviz_all/{s}", axis=1))
        elem = TensorProto.INT64 if s == "argmax" else TensorProto.FLOAT
        graph.output.append(helper.make_tensor_value_info(fused[s], elem, [BATCH_DIM, start]))
    return proto, fused, spans
