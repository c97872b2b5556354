"""Edits of ONNX graphs: normalisation of real-world files, exposing nodes, in-graph reductions.

Every function takes a ModelProto and returns a new one (the input is never modified), and every
result passes ``onnx.checker``.
"""
from __future__ import annotations

import copy
import functools
import logging
from typing import Iterable, Optional

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

log = logging.getLogger("onnxviz")

BATCH_DIM = "batch"


def opset(proto: onnx.ModelProto) -> int:
    """The default-domain opset version of a model."""
    for entry in proto.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    return 1


def initializer_names(graph: onnx.GraphProto) -> set:
    return {t.name for t in graph.initializer}


def image_input(proto: onnx.ModelProto, name: Optional[str] = None) -> onnx.ValueInfoProto:
    """The graph input that carries the image: ``name``, else the first non-weight input (rank 4 preferred)."""
    from ..errors import ModelLoadError

    inits = initializer_names(proto.graph)
    inputs = [i for i in proto.graph.input if i.name not in inits]
    if not inputs:
        raise ModelLoadError("the model has no inputs besides its weights")
    if name is not None:
        for inp in inputs:
            if inp.name == name:
                return inp
        raise ModelLoadError(f"the model has no input named {name!r}; its inputs: "
                             f"{', '.join(i.name for i in inputs)}")
    for inp in inputs:
        if len(inp.type.tensor_type.shape.dim) == 4:
            return inp
    return inputs[0]


def normalize(proto: onnx.ModelProto, input_name: Optional[str] = None) -> onnx.ModelProto:
    """Make a real-world file uniform for everything downstream.

    - weights that are also listed as graph inputs (old exporters, PaddlePaddle) stop being inputs, and
      an IR 3 file (whose weights count only when listed as inputs) is read as IR 4;
    - ``Constant`` nodes become initializers (older Paddle2ONNX stores every weight that way, which
      onnx2torch's Conv cannot read);
    - ``Identity`` nodes that merely alias a weight (the classic torch exporter merges identical
      initializers this way, which breaks onnx2torch) become weights of their own;
    - the batch dimension becomes dynamic, with hard-coded batch sizes in Reshape shapes replaced
      by 0 (copy the input's batch), so batches of any size run;
    - an IR version newer than onnxruntime reads is lowered to 10 (vision ops need nothing newer);
    - stale intermediate shapes are dropped (shape inference recomputes them);
    - nodes are put in topological order (:func:`sort_nodes`).
    """
    proto = copy.deepcopy(proto)
    sort_nodes(proto.graph)
    if proto.ir_version > 10:  # onnx.helper writes IR versions newer than many onnxruntime builds read
        proto.ir_version = 10
    graph = proto.graph
    inits = {t.name: t for t in graph.initializer}

    for inp in list(graph.input):
        if inp.name in inits:
            graph.input.remove(inp)
    if proto.ir_version < 4 and inits:  # IR 3 reads only weights listed as inputs: shape inference saw none
        proto.ir_version = 4

    outputs = {o.name for o in graph.output}
    for node in list(graph.node):
        if node.op_type == "Constant" and node.output[0] not in outputs and not node.input:
            value = _constant_value(node)
            if value is not None:
                tensor = numpy_helper.from_array(value, name=node.output[0])
                graph.initializer.append(tensor)
                inits[tensor.name] = tensor
                graph.node.remove(node)
    for node in list(graph.node):
        if node.op_type == "Identity" and node.input and node.input[0] in inits and node.output[0] not in outputs:
            alias = copy.deepcopy(inits[node.input[0]])
            alias.name = node.output[0]
            graph.initializer.append(alias)
            inits[alias.name] = alias
            graph.node.remove(node)

    for vi in list(graph.input) + list(graph.output):  # old Paddle2ONNX writes -1 for a dynamic dim
        for k, d in enumerate(vi.type.tensor_type.shape.dim):
            if d.HasField("dim_value") and d.dim_value <= 0:
                d.Clear()
                d.dim_param = f"{vi.name}_dim{k}"
    inp = image_input(proto, input_name)
    dims = inp.type.tensor_type.shape.dim
    fixed_batch = dims[0].dim_value if dims and dims[0].HasField("dim_value") else None
    if dims:
        dims[0].Clear()
        dims[0].dim_param = BATCH_DIM
    for out in graph.output:
        odims = out.type.tensor_type.shape.dim
        if odims:
            odims[0].Clear()
            odims[0].dim_param = BATCH_DIM
    if fixed_batch:
        _free_reshape_batch(graph, inits, fixed_batch)
    del graph.value_info[:]
    return proto


def _reads(node) -> list:
    """The tensors a node reads, including those its subgraphs (If/Loop/Scan bodies) read from outside."""
    names = [i for i in node.input if i]
    for a in node.attribute:
        for g in ([a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)):
            inner = {o for n in g.node for o in n.output} | {i.name for i in g.input} | initializer_names(g)
            names += [i for n in g.node for i in _reads(n) if i not in inner]
    return names


def topological_order(graph: onnx.GraphProto) -> list:
    """Indices of ``graph``'s nodes in topological order: a stable Kahn sort (of the nodes ready, the
    one listed first goes first), so a sorted graph keeps its order. Nodes on or behind a cycle (a
    node reading its own output included) are left out: they are what the cycle check reports."""
    nodes = list(graph.node)
    made = {o: k for k, n in enumerate(nodes) for o in n.output if o}
    ready = {i.name for i in graph.input} | initializer_names(graph)
    needs = [{made[i] for i in _reads(n) if i in made and i not in ready} for n in nodes]
    if all(all(j < k for j in need) for k, need in enumerate(needs)):
        return list(range(len(nodes)))
    import heapq

    users: dict = {}
    for k, need in enumerate(needs):
        for j in need:
            users.setdefault(j, []).append(k)
    left = [len(need) for need in needs]
    heap = [k for k, c in enumerate(left) if c == 0]
    heapq.heapify(heap)
    order = []
    while heap:
        k = heapq.heappop(heap)
        order.append(k)
        for u in users.get(k, ()):
            left[u] -= 1
            if left[u] == 0:
                heapq.heappush(heap, u)
    return order


def sort_nodes(graph: onnx.GraphProto) -> bool:
    """Put ``graph``'s nodes in topological order, in place; True when they were not.

    ONNX requires it, onnxruntime does not: some files (an fp16 conversion seen in the wild) list a
    node before the nodes that compute its inputs, and onnx.checker, onnx2torch and every pass here
    that walks nodes in order then fail. The order is otherwise kept (:func:`topological_order`);
    nodes on a cycle (a broken file, which validate.structure refuses) stay, in their order, at the end.
    """
    nodes = list(graph.node)
    order = topological_order(graph)
    if order == list(range(len(nodes))):
        return False
    placed = set(order)
    order += [k for k in range(len(nodes)) if k not in placed]
    del graph.node[:]
    graph.node.extend(nodes[k] for k in order)
    return True


def _constant_value(node) -> Optional[np.ndarray]:
    """The value of a Constant node as an array (None for sparse values)."""
    for a in node.attribute:
        if a.name == "value":
            return numpy_helper.to_array(a.t)
        if a.name in ("value_float", "value_int"):
            return np.asarray(helper.get_attribute_value(a), np.float32 if a.name == "value_float" else np.int64)
        if a.name in ("value_floats", "value_ints"):
            return np.asarray(list(helper.get_attribute_value(a)), np.float32 if a.name == "value_floats" else np.int64)
    return None


def depends_on(graph: onnx.GraphProto, sources: Iterable[str]) -> set:
    """Every tensor computed (directly or not) from ``sources``, carrying their batch dimension."""
    reached = set(sources)
    for node in graph.node:  # nodes are topologically sorted
        if any(i in reached for i in node.input):
            # the scale and zero point of a dynamic quantization are scalars, not per-image data
            outs = node.output[:1] if node.op_type == "DynamicQuantizeLinear" else node.output
            reached.update(o for o in outs if o)
    return reached


def _free_reshape_batch(graph: onnx.GraphProto, inits: dict, batch: int) -> None:
    """Reshape nodes of image data whose constant target shape starts with the old fixed batch size
    copy it instead (a Reshape of weights, e.g. a quantized bias [1, C, 1, 1], is left alone)."""
    constants = {n.output[0]: n for n in graph.node if n.op_type == "Constant"}
    data = depends_on(graph, [i.name for i in graph.input if i.name not in inits])
    for node in graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2 or node.input[0] not in data:
            continue
        name = node.input[1]
        if name in inits:
            shape = numpy_helper.to_array(inits[name])
        elif name in constants:
            attr = next((a for a in constants[name].attribute if a.name == "value"), None)
            if attr is None:
                continue
            shape = numpy_helper.to_array(attr.t)
        else:
            continue
        allowzero = next((a.i for a in node.attribute if a.name == "allowzero"), 0)
        if shape.ndim != 1 or len(shape) < 2 or shape[0] != batch:
            continue
        new = shape.copy()
        if -1 not in new[1:]:
            new[0] = -1
        elif not allowzero:
            new[0] = 0
        else:
            continue
        fresh = numpy_helper.from_array(new.astype(np.int64), name=f"{name}__onnxviz_batch_{node.output[0]}")
        graph.initializer.append(fresh)
        inits[fresh.name] = fresh
        node.input[1] = fresh.name


def infer_shapes(proto: onnx.ModelProto) -> onnx.ModelProto:
    """ONNX shape inference, tolerant of files it cannot fully handle (and saying so in the log).

    Data propagation first (it resolves Reshape targets computed from Shape); without it when it
    fails; the model as it is when both fail (shapes then come from an onnxruntime run).
    """
    try:
        return onnx.shape_inference.infer_shapes(proto, data_prop=True)
    except Exception as exc:  # noqa: BLE001 - a partial answer is better than none
        first = exc
    try:
        inferred = onnx.shape_inference.infer_shapes(proto)
        _warn_once(f"ONNX shape inference with data propagation failed ({_first_line(first)}); used it without")
        return inferred
    except Exception as exc:  # noqa: BLE001
        _warn_once(f"ONNX shape inference failed ({_first_line(exc)}); shapes it would give come from an "
                   "onnxruntime run instead")
        return proto


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


@functools.lru_cache(maxsize=None)
def _warn_once(message: str) -> None:
    log.warning(message)


def value_shapes(proto: onnx.ModelProto) -> dict:
    """tensor name -> (elem_type, shape tuple with None for unknown dims) from a shape-inferred model."""
    out = {}
    for vi in list(proto.graph.value_info) + list(proto.graph.output) + list(proto.graph.input):
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            out.setdefault(vi.name, (tt.elem_type, None))
            continue
        shape = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
        out[vi.name] = (tt.elem_type, shape)
    return out


def expose(proto: onnx.ModelProto, tensors: Iterable[str], keep_outputs: bool = False) -> onnx.ModelProto:
    """A model whose outputs are the given internal tensors (onnxruntime prunes what they do not need)."""
    tensors = list(dict.fromkeys(tensors))
    proto = copy.deepcopy(proto)
    graph = proto.graph
    produced = {o for n in graph.node for o in n.output} | {i.name for i in graph.input}
    missing = [t for t in tensors if t not in produced]
    if missing:
        raise KeyError(f"tensors not produced by any node: {missing}")
    old = list(graph.output) if keep_outputs else []
    known = value_shapes(infer_shapes(proto))
    del graph.output[:]
    for t in tensors:
        elem, shape = known.get(t, (TensorProto.FLOAT, None))
        if shape is None:  # rank unknown: the checker still wants a shape field
            vi = helper.make_tensor_value_info(t, elem or TensorProto.FLOAT, None)
            vi.type.tensor_type.shape.SetInParent()
            graph.output.append(vi)
            continue
        dims = [BATCH_DIM if i == 0 else d for i, d in enumerate(shape)]
        graph.output.append(helper.make_tensor_value_info(t, elem or TensorProto.FLOAT, dims))
    for o in old:
        if o.name not in tensors:
            graph.output.append(o)
    return proto


def check(proto: onnx.ModelProto) -> None:
    """onnx.checker on a model of any size (large models are checked without their weights' bytes)."""
    if proto.ByteSize() < 2_000_000_000:
        onnx.checker.check_model(proto)


def with_opset(proto: onnx.ModelProto, target: int) -> Optional[onnx.ModelProto]:
    """The model converted to another opset, or None (with the reason logged) when onnx's converter cannot."""
    try:
        converted = onnx.version_converter.convert_version(proto, target)
        onnx.checker.check_model(converted)
        return converted
    except Exception as exc:  # noqa: BLE001 - the caller reports what it then cannot do
        _warn_once(f"onnx cannot convert this model from opset {opset(proto)} to {target}: {_first_line(exc)}")
        return None


def needed_nodes(graph: onnx.GraphProto, outputs: Optional[Iterable[str]] = None) -> tuple:
    """(indices of the nodes that ``outputs`` (default: the graph's outputs) need, in order; every
    tensor name they read)."""
    needed = set(outputs) if outputs is not None else {o.name for o in graph.output}
    keep = []
    for k in range(len(graph.node) - 1, -1, -1):
        node = graph.node[k]
        if any(o in needed for o in node.output):
            keep.append(k)
            needed.update(_reads(node))
    keep.reverse()
    return keep, needed


def prune(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The model without the nodes and weights that its outputs do not need; image and other inputs stay.

    onnxruntime runs every node of a graph, needed or not: a model exposing the first three convolutions
    of a 4x super-resolution net ran as long as the whole net (1.8 s per photo at 224 px), and 0.07 s pruned.
    Returns ``proto`` itself when nothing is to drop."""
    keep, needed = needed_nodes(proto.graph)
    if len(keep) == len(proto.graph.node):
        return proto
    proto = copy.deepcopy(proto)
    graph = proto.graph
    nodes = [graph.node[k] for k in keep]
    del graph.node[:]
    graph.node.extend(nodes)
    dropped = {t.name for t in graph.initializer if t.name not in needed}
    for coll in (graph.initializer, graph.input):  # an initializer listed as an input goes with it
        for item in [x for x in coll if x.name in dropped]:
            coll.remove(item)
    return proto


def subgraph(proto: onnx.ModelProto, tensors: Iterable[str]) -> onnx.ModelProto:
    """The part of the model that computes ``tensors`` (its outputs): nodes, weights and inputs that
    they do not need are dropped, so an op after them (an LSTM head, NMS, post-processing) or an
    input they do not read (the other image of a siamese net) no longer matters."""
    proto = prune(expose(proto, list(dict.fromkeys(tensors))))
    graph = proto.graph
    _, needed = needed_nodes(graph)
    for item in [x for x in graph.input if x.name not in needed]:
        graph.input.remove(item)
    return proto


def bake_inputs(proto: onnx.ModelProto, values: dict) -> onnx.ModelProto:
    """Graph inputs replaced by constants (``values``: name -> array)."""
    proto = copy.deepcopy(proto)
    graph = proto.graph
    for inp in [i for i in graph.input if i.name in values]:
        graph.input.remove(inp)
        graph.initializer.append(numpy_helper.from_array(np.asarray(values[inp.name]), inp.name))
    return proto
