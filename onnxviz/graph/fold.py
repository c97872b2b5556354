"""Weights computed in the graph, folded to initializers: what onnx2torch needs to convert.

Some exporters store a weight compressed and compute it when the model runs: an int8 tensor cast
and multiplied by a scale (tinyocr's rec net), a float16 tensor cast up to float32 (an fp16
conversion that keeps float32 compute), a Constant node. onnxruntime folds these itself; onnx2torch
reads Conv, Gemm and BatchNorm weights only from initializers and stops at "cannot find weight".
Every node whose inputs are all constants is evaluated once (onnxruntime, on the constant part of the
graph alone) and replaced by an initializer, so the torch module sees plain weights. An ``If`` whose
condition is stored as a constant (tf2onnx's Keras BatchNormalization) becomes the branch it takes.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .edits import initializer_names

#: ops whose value is not a function of their inputs, or that hold subgraphs: never folded
_KEEP = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial",
         "Bernoulli", "If", "Loop", "Scan", "SequenceConstruct", "SequenceEmpty"}
#: a folded tensor larger than this (elements) stays computed: the file would grow, not convert better
MAX_ELEMENTS = 1 << 24


def constant_nodes(graph: onnx.GraphProto) -> list:
    """Indices of the nodes that read only initializers and other constant nodes' outputs (nodes sorted)."""
    known = initializer_names(graph)
    inputs = {i.name for i in graph.input} - known
    out = []
    for k, node in enumerate(graph.node):
        if node.op_type in _KEEP or node.domain not in ("", "ai.onnx") or any(
                a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            continue
        if all(not i or (i in known and i not in inputs) for i in node.input):
            out.append(k)
            known.update(o for o in node.output if o)
    return out


def inline_constant_ifs(proto: onnx.ModelProto) -> onnx.ModelProto:
    """``proto`` with every ``If`` whose condition is an initializer replaced by the branch it takes (``proto``
    itself when there is none). tf2onnx writes Keras' BatchNormalization as If(keras_learning_phase, training
    branch, inference branch) with the phase stored as a constant False; onnx2torch has no If."""
    graph = proto.graph
    consts = {t.name: t for t in graph.initializer if t.name not in {i.name for i in graph.input}}
    todo = [k for k, n in enumerate(graph.node) if n.op_type == "If" and n.input and n.input[0] in consts]
    if not todo:
        return proto
    new = onnx.ModelProto()
    new.CopyFrom(proto)
    nodes = []
    for k, node in enumerate(new.graph.node):
        if k not in todo:
            nodes.append(node)
            continue
        cond = bool(numpy_helper.to_array(consts[node.input[0]]).reshape(-1)[0])
        branch = next(a.g for a in node.attribute if a.name == ("then_branch" if cond else "else_branch"))
        inner = {o for n in branch.node for o in n.output if o} | {t.name for t in branch.initializer}
        rename = {o.name: out for o, out in zip(branch.output, node.output)}
        prefix = f"{node.name or node.output[0]}/inlined/"
        name = lambda t: rename.get(t) or (prefix + t if t in inner else t)  # noqa: E731
        for t in branch.initializer:
            c = onnx.TensorProto()
            c.CopyFrom(t)
            c.name = name(t.name)
            new.graph.initializer.append(c)
        for n in branch.node:
            c = onnx.NodeProto()
            c.CopyFrom(n)
            c.input[:] = [name(i) if i else i for i in n.input]
            c.output[:] = [name(o) if o else o for o in n.output]
            c.name = prefix + n.name if n.name else ""
            nodes.append(c)
        for o, out in zip(branch.output, node.output):
            if o.name not in inner:  # a branch that returns an outer tensor as it is
                nodes.append(helper.make_node("Identity", [o.name], [out]))
    del new.graph.node[:]
    new.graph.node.extend(nodes)
    return new


def fold_constants(proto: onnx.ModelProto) -> onnx.ModelProto:
    """``proto`` with its constant ``If`` nodes inlined and its constant nodes replaced by initializers (``proto``
    itself when there are none that another node reads). Graph outputs stay computed by their nodes."""
    proto = inline_constant_ifs(proto)
    graph = proto.graph
    folded = constant_nodes(graph)
    if not folded:
        return proto
    kept = {o.name for o in graph.output}
    fold_set = set(folded)
    made = {o for k in folded for o in graph.node[k].output if o}
    needed = [t for k, n in enumerate(graph.node) if k not in fold_set for t in n.input if t in made and t not in kept]
    needed = list(dict.fromkeys(needed))
    if not needed:
        return proto
    values = _evaluate(proto, folded, needed)
    values = {k: v for k, v in values.items() if v is not None and v.size <= MAX_ELEMENTS}
    if not values:
        return proto
    # drop the folded nodes whose outputs are no longer read (by remaining nodes or outputs)
    new = onnx.ModelProto()
    new.CopyFrom(proto)
    g = new.graph
    g.initializer.extend(numpy_helper.from_array(v, name) for name, v in values.items())
    nodes = list(g.node)
    alive = [True] * len(nodes)
    for k in folded:  # a folded node stays if it writes something still computed and read
        alive[k] = False
    read = set(kept)
    for k, n in enumerate(nodes):
        if alive[k]:
            read.update(i for i in n.input if i and i not in values)
    for k in reversed(folded):  # reverse: a kept folded node keeps its own inputs' producers
        if any(o in read and o not in values for o in nodes[k].output):
            alive[k] = True
            read.update(i for i in nodes[k].input if i and i not in values)
    del g.node[:]
    g.node.extend(n for k, n in enumerate(nodes) if alive[k])
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    inits = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(inits)
    return new


def _evaluate(proto: onnx.ModelProto, folded: list, needed: list) -> dict:
    """The values of ``needed`` computed by onnxruntime from the constant nodes alone ({} if it cannot)."""
    import onnxruntime as ort

    graph = proto.graph
    reads = {i for k in folded for i in graph.node[k].input if i}
    sub = helper.make_graph([graph.node[k] for k in folded], "constants", [],
                            [onnx.ValueInfoProto(name=t) for t in needed],
                            [t for t in graph.initializer if t.name in reads])
    model = helper.make_model(sub, opset_imports=list(proto.opset_import), ir_version=proto.ir_version)
    try:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        return dict(zip(needed, (np.asarray(v) for v in sess.run(needed, {}))))
    except Exception:  # noqa: BLE001 - folding is an aid; onnx2torch then reports what it cannot read
        return {}
