"""Refuse a broken ONNX file at load, naming the node or tensor, instead of failing later in a render or a mining run.

Checked in order, each failure a ModelLoadError with one sentence (file, node, tensor, what to do):
- external data: every location relative, inside the model's folder, a regular file, and its
  offset/length within that file (``external_data``; before any byte of it is read);
- the graph's structure, whatever the node order (an unsorted but valid graph passes): each node
  input produced by a node, an initializer or a graph input; each tensor produced once; graph
  outputs produced; no cycles; an op type on every node (``structure``);
- declared input sizes that no machine could allocate (``input_size``);
- onnxruntime, the judge of what runs: the file must load into a CPU session (``loadable``;
  onnxruntime's message names the node). onnx.checker's opinion is logged, not enforced: real
  exporters write files it rejects that run fine.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import onnx

from ..errors import ModelLoadError
from .edits import topological_order

MAX_SIDE = 16384  # pixels: a declared input side beyond this is a broken file, not a model
_CUT = 40  # names longer than this are cut in messages


def _name(text: str) -> str:
    text = repr(text)
    return text if len(text) <= _CUT else text[:_CUT] + "...'"


def _node_name(node) -> str:
    return f"node {_name(node.name)} ({node.op_type or 'no op type'})" if node.name else f"a {node.op_type} node"


def external_data(proto: onnx.ModelProto, path: Path) -> None:
    """Every external-data reference stays in the model's folder and fits its file."""
    folder = path.parent.resolve()
    tensors = list(proto.graph.initializer) + [a.t for n in proto.graph.node for a in n.attribute if a.HasField("t")]
    for t in tensors:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        location = info.get("location", "")
        where = f"{path}: weight {_name(t.name)} keeps its data in {_name(location)}"
        if not location or "\x00" in location or os.path.isabs(location) or location.startswith(("/", "\\")):
            raise ModelLoadError(f"{where}, which is not a file name relative to the model's folder; external data "
                                  "must sit beside the model (re-save it with onnx.save_model(..., "
                                  "save_as_external_data=True))")
        target = (folder / location).resolve()
        try:
            target.relative_to(folder)
        except ValueError:
            raise ModelLoadError(f"{where}, outside the model's folder {folder}; onnxviz reads external data only "
                                  "from beside the model (move the data file there and fix the location)") from None
        if not target.is_file():
            raise ModelLoadError(f"{where}, which {'is not a regular file' if target.exists() else 'is missing'}: "
                                 f"put the data file beside {path.name} (it came with the model)")
        try:
            offset, length = int(info.get("offset", 0) or 0), int(info.get("length", -1) or -1)
        except ValueError:
            raise ModelLoadError(f"{where} at offset {info.get('offset')!r}, length {info.get('length')!r}: not "
                                 "numbers; the file is damaged (re-export it)") from None
        size = target.stat().st_size
        if offset < 0 or offset > size or (length >= 0 and offset + length > size):
            raise ModelLoadError(f"{where} at bytes {offset}..{offset + max(length, 0)}, but that file has {size} "
                                 "bytes: it is truncated or belongs to another model (download both files again)")


def structure(graph: onnx.GraphProto, path) -> None:
    """Dangling inputs, tensors produced twice, missing graph outputs, cycles and nameless ops, by node."""
    where = f"{path or 'the model'}:"
    known = {t.name for t in graph.initializer} | {i.name for i in graph.input} | {""}
    producer: dict = {}
    for node in graph.node:
        if not node.op_type:
            raise ModelLoadError(f"{where} {_node_name(node)} has no op type; the file is damaged (re-export it)")
        for out in node.output:
            if not out:
                continue
            if out in producer or out in known - {""}:
                first = _node_name(producer[out]) if out in producer else "a graph input or weight"
                raise ModelLoadError(f"{where} tensor {_name(out)} is produced twice, by {first} and by "
                                     f"{_node_name(node)}; an ONNX graph gives every tensor one producer (re-export "
                                     "the model)")
            producer[out] = node
    for node in graph.node:
        for name in node.input:
            if name not in known and name not in producer:
                raise ModelLoadError(f"{where} {_node_name(node)} reads tensor {_name(name)}, which no node, weight "
                                     "or graph input provides (a dropped weight or node?); the file is damaged or "
                                     "was edited wrongly (re-export it)")
    for out in graph.output:
        if out.name not in producer and out.name not in known:
            raise ModelLoadError(f"{where} graph output {_name(out.name)} is computed by no node; the file is damaged "
                                 "(re-export it)")
    kernels(graph, path)
    cycle = _cycle(graph)
    if cycle:
        raise ModelLoadError(f"{where} the graph has a cycle through {', '.join(_node_name(n) for n in cycle[:4])}"
                             f"{' ...' if len(cycle) > 4 else ''}; ONNX graphs are acyclic (re-export the model)")


def out_of_order(graph: onnx.GraphProto):
    """(node name, tensor) of the first node that reads a tensor computed by a later node, or None."""
    made = {t.name for t in graph.initializer} | {i.name for i in graph.input} | {""}
    later = {o for n in graph.node for o in n.output}
    for node in graph.node:
        for name in node.input:
            if name not in made and name in later:
                return node.name or node.op_type, name
        made.update(node.output)
    return None


def kernels(graph: onnx.GraphProto, path) -> None:
    """A Conv whose kernel_shape attribute disagrees with its weight's shape (onnxruntime and onnx's
    checker only find out when it runs)."""
    weights = {t.name: list(t.dims) for t in graph.initializer}
    for node in graph.node:
        if node.op_type not in ("Conv", "ConvTranspose") or len(node.input) < 2 or node.input[1] not in weights:
            continue
        declared = next((list(a.ints) for a in node.attribute if a.name == "kernel_shape"), None)
        actual = weights[node.input[1]][2:]
        if declared is not None and declared != actual:
            raise ModelLoadError(f"{path or 'the model'}: {_node_name(node)} declares kernel_shape {declared} but "
                                 f"its weight {_name(node.input[1])} has a {actual} kernel; the file is damaged "
                                 "(re-export it)")


def _cycle(graph) -> list:
    """Nodes on or behind a cycle (those edits.topological_order leaves out); [] when the graph is acyclic."""
    placed = set(topological_order(graph))
    return [n for k, n in enumerate(graph.node) if k not in placed]


def input_size(path, name: str, shape: tuple, layout: str) -> None:
    """A declared spatial size beyond MAX_SIDE is refused before anything is allocated for it."""
    if len(shape) != 4:
        return
    h, w = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])
    if (h or 0) > MAX_SIDE or (w or 0) > MAX_SIDE:
        raise ModelLoadError(f"{path or 'the model'}: input {_name(name)} declares {h}x{w} pixels, more than onnxviz "
                             f"handles ({MAX_SIDE} per side); the file is damaged or not an image model")


def loadable(proto: onnx.ModelProto, path) -> None:
    """onnxruntime loads the file into a CPU session (no graph optimizations: only the check is wanted)."""
    import onnxruntime as ort

    if proto.ByteSize() >= 2_000_000_000:  # beyond protobuf's limit: onnxruntime gets such files by path later
        return
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 4
    options.intra_op_num_threads = 1
    try:
        ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime's message names the node
        raise ModelLoadError(f"{path or 'the model'}: onnxruntime cannot load it: {ort_reason(exc)}. Fix or re-export "
                             "the model (onnxviz runs what onnxruntime runs)") from exc


def ort_reason(exc: BaseException) -> str:
    """onnxruntime's message without its status prefix and source locations (it names the node and op)."""
    import re

    text = " ".join(str(exc).split())
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    text = re.sub(r"Load model from .*? failed:", "", text)
    text = re.sub(r"/onnxruntime_src/\S+ ", "", text)
    text = re.sub(r"^(?:[\w:<>]+ )?onnxruntime::[^ (]+\(.*?\)\s+(?=[A-Z\[])", "", text.strip())  # a C++ signature
    text = re.sub(r"\b\w+\.cc:\d+ \w+ ", "", text)  # a source location and function name
    return text.strip()[:600] or type(exc).__name__


def checker_warning(proto: onnx.ModelProto) -> Optional[str]:
    """onnx.checker's first complaint, or None: logged at load (onnxruntime decides what runs)."""
    from .edits import check

    try:
        check(proto)
    except Exception as exc:  # noqa: BLE001
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None
