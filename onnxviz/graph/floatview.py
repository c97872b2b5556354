"""The float32 view of a quantized or float16 graph: what the torch path (render) runs.

Gradients need real numbers: a quantized graph (QDQ, or dynamic quantization with ConvInteger) is
rewritten to the float computation it approximates, and a float16 graph to float32. Mining and
activations keep running the original file on onnxruntime; ``Model.check_faithful`` compares the
torch module with onnxruntime on this float view (strictly), and reports separately how far the
float view is from the original file (``Model.float_view_error``).

- ``DequantizeLinear`` of constant weights -> float weights;
- ``QuantizeLinear -> DequantizeLinear`` on activations -> identity (the fake quantization removed),
  or a ReLU where the range starts at zero (a uint8 zero point of 0 after a node: the quantizer fused
  that node's ReLU into the range and dropped the Relu node);
- ``QuantizeLinear -> Reshape/Transpose/... -> DequantizeLinear``: ops that only move values (tf2onnx
  writes a Reshape between the two) run on the float values, and both ends become identities;
- ``DynamicQuantizeLinear(x)`` -> scale and zero point in float, ``y = x / scale + zero point``
  without rounding; ``ConvInteger``/``MatMulInteger`` -> ``Conv``/``MatMul`` of ``y - zero point`` with
  the dequantized integer weights: the integer accumulation, in float;
- float16 weights, casts, inputs and outputs -> float32.
"""
from __future__ import annotations

import copy
from typing import Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# ops that only move or select values: the same on the quantized integers as on the floats they stand for
VALUE_MOVING = {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Slice", "Split", "Expand",
                "DepthToSpace", "SpaceToDepth", "MaxPool"}
QUANT_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "ConvInteger", "MatMulInteger",
             "QLinearConv", "QLinearMatMul", "DynamicQuantizeLSTM", "QLinearAdd", "QLinearMul"}


def kind(proto: onnx.ModelProto) -> Optional[str]:
    """"quantized", "float16" or None: what float_view would change."""
    ops = {n.op_type for n in proto.graph.node}
    if ops & QUANT_OPS:
        return "quantized"
    if any(t.data_type == TensorProto.FLOAT16 for t in proto.graph.initializer) or any(
            i.type.tensor_type.elem_type == TensorProto.FLOAT16 for i in proto.graph.input):
        return "float16"
    return None


def float_view(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A float32 model computing what ``proto`` approximates (``proto`` itself when nothing to do)."""
    what = kind(proto)
    if what is None:
        return proto
    proto = copy.deepcopy(proto)
    if what == "float16":
        _to_float32(proto.graph)
    else:
        _dequantize(proto.graph)
    del proto.graph.value_info[:]
    return proto


def _to_float32(graph: onnx.GraphProto) -> None:
    """Every float16 tensor, type and cast of ``graph`` and of its subgraphs becomes float32 (a Keras
    mixed-precision LSTM computes in float16 inside its Loop bodies, whose carried types must match)."""
    for t in graph.initializer:
        if t.data_type == TensorProto.FLOAT16:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float32), t.name))
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        if vi.type.tensor_type.elem_type == TensorProto.FLOAT16:
            vi.type.tensor_type.elem_type = TensorProto.FLOAT
    for node in graph.node:
        for a in node.attribute:
            if node.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT16:
                a.i = TensorProto.FLOAT
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT16:
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float32), a.t.name))
            for sub in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
                _to_float32(sub)


def _dequantize(graph: onnx.GraphProto) -> None:
    inits = {t.name: t for t in graph.initializer}
    consts = lambda name: name in inits  # noqa: E731
    arr = lambda name: numpy_helper.to_array(inits[name])  # noqa: E731
    rename: dict = {}
    new_nodes = []
    fresh = [0]

    def add_init(value: np.ndarray, hint: str) -> str:
        fresh[0] += 1
        name = f"{hint}__onnxviz_float{fresh[0]}"
        t = numpy_helper.from_array(np.asarray(value, np.float32), name)
        graph.initializer.append(t)
        inits[name] = t
        return name

    def deq(name: str, scale: str, zp: Optional[str], axis: int) -> np.ndarray:
        q = arr(name).astype(np.float32)
        s = arr(scale).astype(np.float32)
        z = arr(zp).astype(np.float32) if zp else np.zeros_like(s)
        if s.ndim == 1 and s.size > 1:
            shape = [1] * q.ndim
            shape[axis % q.ndim] = -1
            s, z = s.reshape(shape), z.reshape(shape)
        return (q - z) * s

    producers = {o: n for n in graph.node for o in n.output}
    readers: dict = {}
    for n in graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n.op_type)
    floated: set = set()  # tensors that hold floats where the file holds quantized integers
    for node in graph.node:
        ins = [rename.get(i, i) for i in node.input]
        op = node.op_type
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        if op == "DequantizeLinear" and ins and ins[0] in floated:
            rename[node.output[0]] = ins[0]  # the end of a Q -> value-moving ops -> DQ chain
            continue
        if op == "QuantizeLinear" and any(r != "DequantizeLinear" for r in readers.get(node.output[0], [])):
            src = ins[0]  # read by value-moving ops before its DequantizeLinear: they get the floats
            relu = src in producers and _clips_at_zero(node, inits)
            new_nodes.append(helper.make_node("Relu" if relu else "Identity", [src], [node.output[0]],
                                              name=f"{node.name or node.output[0]}__float"))
            floated.add(node.output[0])
            continue
        if op in VALUE_MOVING and ins and ins[0] in floated:
            floated.update(node.output)  # copied as it is below, on the floats
        if op == "DequantizeLinear" and consts(ins[0]) and all(consts(i) for i in ins[1:] if i):
            rename[node.output[0]] = add_init(deq(ins[0], ins[1], ins[2] if len(ins) > 2 else None, axis),
                                              node.output[0])
            continue
        if op == "DequantizeLinear" and ins[0] in producers and producers[ins[0]].op_type == "QuantizeLinear":
            q = producers[ins[0]]
            src = rename.get(q.input[0], q.input[0])
            if src in producers and _clips_at_zero(q, inits):  # a ReLU fused into this range: keep it
                new_nodes.append(helper.make_node("Relu", [src], [node.output[0]], name=f"{node.name or q.name}__relu"))
            else:
                rename[node.output[0]] = src
            continue
        if op == "QuantizeLinear":
            continue  # read only by the DequantizeLinear above (dropped as dead otherwise)
        if op == "DynamicQuantizeLinear":
            x = ins[0]
            y, s, zp = node.output
            p = f"{node.name or y}__onnxviz"
            zero = add_init(np.zeros((), np.float32), p)
            new_nodes += [
                helper.make_node("ReduceMin", [x], [p + "_min0"], keepdims=0),
                helper.make_node("ReduceMax", [x], [p + "_max0"], keepdims=0),
                helper.make_node("Min", [p + "_min0", zero], [p + "_min"]),
                helper.make_node("Max", [p + "_max0", zero], [p + "_max"]),
                helper.make_node("Sub", [p + "_max", p + "_min"], [p + "_range"]),
                helper.make_node("Div", [p + "_range", add_init(np.float32(255), p)], [s]),
                helper.make_node("Div", [p + "_min", s], [p + "_negzp"]),
                helper.make_node("Neg", [p + "_negzp"], [zp]),
                helper.make_node("Div", [x, s], [p + "_xs"]),
                helper.make_node("Add", [p + "_xs", zp], [y]),
            ]
            continue
        if op in ("ConvInteger", "MatMulInteger") and consts(ins[1]):
            a, b = ins[0], ins[1]
            azp = ins[2] if len(ins) > 2 and ins[2] else None
            bzp = ins[3] if len(ins) > 3 and ins[3] else None
            w = arr(b).astype(np.float32)
            if bzp:
                z = arr(bzp).astype(np.float32)
                if z.ndim == 1 and z.size > 1:
                    z = z.reshape([-1] + [1] * (w.ndim - 1)) if op == "ConvInteger" else z.reshape(1, -1)
                w = w - z
            src = a
            if azp:
                src = f"{node.output[0]}__onnxviz_centered"
                new_nodes.append(helper.make_node("Sub", [a, azp], [src]))
            attrs = {x.name: helper.get_attribute_value(x) for x in node.attribute}
            new_nodes.append(helper.make_node("Conv" if op == "ConvInteger" else "MatMul", [src, add_init(w, b)],
                                              list(node.output), name=node.name, **attrs))
            continue
        n = copy.deepcopy(node)
        for a in n.attribute:  # integer arithmetic (a quantized bias) is done in float
            if op == "Cast" and a.name == "to" and a.i in (TensorProto.INT32, TensorProto.INT8, TensorProto.UINT8):
                a.i = TensorProto.FLOAT
        del n.input[:]
        n.input.extend(ins)
        new_nodes.append(n)
    for o in graph.output:
        if o.name in rename:  # a graph output that was a dropped DequantizeLinear
            new_nodes.append(helper.make_node("Identity", [rename[o.name]], [o.name]))
    for i, n in enumerate(new_nodes):  # onnx2torch names unnamed nodes op_N, which may collide
        if not n.name:
            n.name = f"onnxviz_float_{n.op_type}_{i}"
    del graph.node[:]
    graph.node.extend(_live(new_nodes, {o.name for o in graph.output}))
    used = {i for n in graph.node for i in n.input}
    for t in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(t)
    for o in graph.output:
        if o.type.tensor_type.elem_type in (TensorProto.INT8, TensorProto.UINT8, TensorProto.INT32):
            o.type.tensor_type.elem_type = TensorProto.FLOAT


def _clips_at_zero(q, inits: dict) -> bool:
    """Does QuantizeLinear ``q`` have its zero point at the bottom of its range (uint8 zero point 0)?

    Then nothing below zero survives the round trip: quantizers fold a Conv's ReLU into exactly this
    (onnxruntime's QDQ quantization drops the Relu node), so the float view keeps the clip. (On the
    graph input the same range is only the calibration's: the caller does not ask there.)"""
    if len(q.input) < 3 or not q.input[2]:
        return True  # no zero point: uint8, zero point 0
    if q.input[2] not in inits:
        return False
    zp = numpy_helper.to_array(inits[q.input[2]])
    lowest = {np.dtype(np.uint8): 0, np.dtype(np.int8): -128, np.dtype(np.uint16): 0,
              np.dtype(np.int16): -32768}.get(zp.dtype)
    return lowest is not None and bool(np.all(zp == lowest))


def _live(nodes: list, outputs: set) -> list:
    needed = set(outputs)
    keep = []
    for n in reversed(nodes):
        if any(o in needed for o in n.output):
            keep.append(n)
            needed.update(n.input)
    return keep[::-1]
