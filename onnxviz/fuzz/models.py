"""The ONNX side of the fuzz harness: a small real CNN built with onnx.helper, and its mutants.

Each mutator takes the base model (bytes and ModelProto), a seeded ``random.Random`` and the case
folder, writes one mutant file (plus any side files, e.g. external data) and returns a label that
says what it did. Mutators cover the bytes (flips, truncation, appended garbage), the protobuf
fields (dims, dtypes, dropped initializers and nodes, dangling inputs, unknown ops and domains,
cycles, duplicate outputs, opset and IR versions, huge kernels, external data pointing anywhere),
the onnxviz metadata (malformed JSON, wrong types, absurd values) and hostile names.
"""
from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..preprocessing.meta import METADATA_KEY, ModelMeta

BASE_META = ModelMeta(input_size=(16, 16), channel_order="RGB", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
                      labels=[f"class {i}" for i in range(5)], name="fuzz_cnn", source="onnx.helper, seeded weights")


def base_model(seed: int = 0) -> onnx.ModelProto:
    """Conv-Relu-Conv-Relu-GlobalAveragePool-Flatten-Gemm on 1x3x16x16, with onnxviz metadata and seeded
    weights (small enough that every command runs on it in about a second)."""
    rng = np.random.default_rng(seed)

    def init(name, *shape):
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["input", "conv1.w", "conv1.b"], ["conv1"], name="conv1", pads=[1, 1, 1, 1],
                         kernel_shape=[3, 3]),
        helper.make_node("Relu", ["conv1"], ["relu1"], name="relu1"),
        helper.make_node("Conv", ["relu1", "conv2.w", "conv2.b"], ["conv2"], name="conv2", pads=[1, 1, 1, 1],
                         kernel_shape=[3, 3], strides=[2, 2]),
        helper.make_node("Relu", ["conv2"], ["relu2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["relu2"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], name="fc", transB=1),
    ]
    inits = [init("conv1.w", 6, 3, 3, 3), init("conv1.b", 6), init("conv2.w", 8, 6, 3, 3), init("conv2.b", 8),
             init("fc.w", 5, 8), init("fc.b", 5)]
    graph = helper.make_graph(nodes, "fuzz_cnn",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 16, 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="onnxviz-fuzz")
    model.ir_version = 8
    BASE_META.write_to(model)
    onnx.checker.check_model(model)
    return model


# ---------------------------------------------------------------------------------------------- bytes
def flip_bytes(data: bytes, rng: random.Random, n: int = 0) -> bytes:
    if not data:
        return data
    b = bytearray(data)
    for _ in range(n or rng.choice([1, 2, 8, 64])):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def _bytes_mutant(rng, data):
    kind = rng.choice(["flip", "truncate", "append", "empty", "prefix", "zeros", "text"])
    if kind == "flip":
        return "bytes:flip", flip_bytes(data, rng)
    if kind == "truncate":
        return "bytes:truncate", data[:rng.randrange(1, len(data))]
    if kind == "append":
        return "bytes:append", data + bytes(rng.randrange(256) for _ in range(rng.choice([1, 7, 300])))
    if kind == "prefix":
        return "bytes:prefix", b"\x08\x07garbage" + data
    if kind == "zeros":
        return "bytes:zeros", bytes(len(data))
    if kind == "text":
        return "bytes:text", b"<html><body>404 Not Found</body></html>\n"
    return "bytes:empty", b""


# ---------------------------------------------------------------------------------------------- proto
def _node(rng, m):
    return rng.choice(list(m.graph.node))


def _m_dims(rng, m):
    t = rng.choice(list(m.graph.initializer))
    new = rng.choice([[0], [], [t.dims[0] + 1] + list(t.dims[1:]), [-1] + list(t.dims[1:]), [2 ** 40]])
    del t.dims[:]
    t.dims.extend(new)
    return f"proto:dims {t.name} -> {new}"


def _m_dtype(rng, m):
    target = rng.choice(["initializer", "input", "output"])
    dtype = rng.choice([TensorProto.DOUBLE, TensorProto.INT64, TensorProto.STRING, TensorProto.BOOL, 0, 99])
    if target == "initializer":
        t = rng.choice(list(m.graph.initializer))
        t.data_type = dtype
        return f"proto:dtype initializer {t.name} -> {dtype}"
    vi = m.graph.input[0] if target == "input" else m.graph.output[0]
    vi.type.tensor_type.elem_type = dtype
    return f"proto:dtype {target} -> {dtype}"


def _m_drop_initializer(rng, m):
    i = rng.randrange(len(m.graph.initializer))
    name = m.graph.initializer[i].name
    del m.graph.initializer[i]
    return f"proto:drop initializer {name}"


def _m_drop_node(rng, m):
    i = rng.randrange(len(m.graph.node))
    name = m.graph.node[i].name
    del m.graph.node[i]
    return f"proto:drop node {name}"


def _m_dangling(rng, m):
    n = _node(rng, m)
    n.input[0] = rng.choice(["nowhere", "", "conv9", n.output[0] + "_missing"])
    return f"proto:dangling input of {n.name} -> {n.input[0]!r}"


def _m_unknown_op(rng, m):
    n = _node(rng, m)
    n.op_type = rng.choice(["FancyConv", "conv", "", "Relu6", "Loop"])
    return f"proto:unknown op {n.name} -> {n.op_type!r}"


def _m_unknown_domain(rng, m):
    n = _node(rng, m)
    n.domain = rng.choice(["com.evil", "ai.onnx.ml", "com.microsoft", "../../x"])
    if rng.random() < 0.5:
        m.opset_import.append(helper.make_opsetid(n.domain, 1))
    return f"proto:unknown domain {n.name} -> {n.domain!r}"


def _m_cycle(rng, m):
    nodes = list(m.graph.node)
    i = rng.randrange(len(nodes) - 1)
    j = rng.randrange(i + 1, len(nodes))
    nodes[i].input[0] = nodes[j].output[0]
    return f"proto:cycle {nodes[i].name} reads {nodes[j].output[0]}"


def _m_duplicate_output(rng, m):
    nodes = list(m.graph.node)
    a, b = rng.sample(range(len(nodes)), 2)
    nodes[b].output[0] = nodes[a].output[0]
    if rng.random() < 0.3:
        m.graph.output.append(copy.deepcopy(m.graph.output[0]))
    return f"proto:duplicate output {nodes[a].output[0]}"


def _m_opset(rng, m):
    v = rng.choice([0, 1, 6, 99, 10 ** 6, -3])
    m.opset_import[0].version = v
    if rng.random() < 0.2:
        del m.opset_import[:]
    return f"proto:opset -> {v}"


def _m_ir(rng, m):
    v = rng.choice([0, 1, 2, 99, -1])
    m.ir_version = v
    return f"proto:ir_version -> {v}"


def _m_huge_kernel(rng, m):
    conv = next(n for n in m.graph.node if n.op_type == "Conv")
    choice = rng.choice(["attr", "declared"])
    if choice == "attr":
        for a in conv.attribute:
            if a.name == "kernel_shape":
                del a.ints[:]
                a.ints.extend([100000, 100000])
        return "proto:huge kernel_shape attribute"
    t = next(t for t in m.graph.initializer if t.name == conv.input[1])
    del t.dims[:]
    t.dims.extend([1 << 20, 3, 4096, 4096])
    return f"proto:huge declared kernel dims on {t.name}"


def _m_attribute(rng, m):
    n = next(n for n in m.graph.node if n.op_type == "Conv")
    a = rng.choice(list(n.attribute))
    kind = rng.choice(["drop", "string", "negative"])
    if kind == "drop":
        n.attribute.remove(a)
    elif kind == "string":
        n.attribute.remove(a)
        n.attribute.append(helper.make_attribute(a.name, "three"))
    else:
        del a.ints[:]
        a.ints.extend([-5] * 4)
    return f"proto:attribute {a.name} of {n.name}: {kind}"


def _m_input_shape(rng, m):
    dims = rng.choice([[1, 3], [1, 3, 16, 16, 1], [0, 3, 16, 16], [1, 3, 0, 0], [1, 3, -7, 16], [1, 16, 16, 3],
                       [1, 3, 1 << 30, 1 << 30], ["N", "C", "H", "W"], [1, 3, 2, 2]])
    tt = m.graph.input[0].type.tensor_type
    del tt.shape.dim[:]
    for d in dims:
        dim = tt.shape.dim.add()
        if isinstance(d, str):
            dim.dim_param = d
        else:
            dim.dim_value = d
    return f"proto:input shape -> {dims}"


def _m_io(rng, m):
    kind = rng.choice(["no outputs", "no inputs", "two inputs", "output renamed", "input is initializer"])
    if kind == "no outputs":
        del m.graph.output[:]
    elif kind == "no inputs":
        del m.graph.input[:]
    elif kind == "two inputs":
        m.graph.input.append(copy.deepcopy(m.graph.input[0]))
    elif kind == "output renamed":
        m.graph.output[0].name = "not_produced"
    else:
        m.graph.initializer.append(numpy_helper.from_array(np.zeros((1, 3, 16, 16), np.float32), "input"))
    return f"proto:graph io {kind}"


def _m_shuffle(rng, m):
    nodes = list(m.graph.node)
    rng.shuffle(nodes)
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    return "proto:nodes out of order (a valid graph: must load)"


EXTERNAL_LOCATIONS = ["/etc/passwd", "../../../../etc/hostname", "missing.bin", "weights.bin", "sub/../weights.bin",
                      "..", ".", "", "/dev/zero", "weights.bin\x00evil"]


def _m_external(rng, m, folder: Path):
    t = rng.choice(list(m.graph.initializer))
    location = rng.choice(EXTERNAL_LOCATIONS)
    raw = numpy_helper.to_array(t).tobytes()
    (folder / "weights.bin").write_bytes(raw[: rng.choice([len(raw), len(raw) // 2, 0])])
    offset = rng.choice([0, 0, 0, 7, 1 << 40, -1])
    t.ClearField("raw_data")
    del t.float_data[:]
    t.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(len(raw)))):
        e = t.external_data.add()
        e.key, e.value = key, value
    return f"proto:external data of {t.name} -> {location!r} offset {offset}"


HOSTILE_NAMES = ["../../../../tmp/onnxviz-fuzz-escape", "/tmp/onnxviz-fuzz-abs", "..", ".", "", " ", "a/b\\c",
                 "x" * 3000, "ñame ünïcode 名前", "con", "nul.txt", "name\nnewline", "<script>alert(1)</script>",
                 "'\"; DROP TABLE units; --", "%2e%2e%2fescape", "${HOME}", "-rf", "\x01\x7f"]


def _m_hostile_names(rng, m):
    """Rename node outputs (and everything reading them) to hostile strings."""
    renamed = {}
    for n in m.graph.node:
        if rng.random() < 0.6 and n.output[0] != "logits":
            renamed[n.output[0]] = rng.choice(HOSTILE_NAMES) + (f"#{len(renamed)}" if rng.random() < 0.5 else "")
        if rng.random() < 0.5:
            n.name = rng.choice(HOSTILE_NAMES)
    seen = set()
    for old, new in list(renamed.items()):  # keep the graph valid unless a collision makes it not
        if new in seen:
            renamed[old] = new + f"~{len(seen)}"
        seen.add(renamed[old])
    for n in m.graph.node:
        n.input[:] = [renamed.get(x, x) for x in n.input]
        n.output[:] = [renamed.get(x, x) for x in n.output]
    return f"names:hostile {len(renamed)} tensors"


def _set_meta(m, value: str):
    for p in list(m.metadata_props):
        if p.key == METADATA_KEY:
            m.metadata_props.remove(p)
    e = m.metadata_props.add()
    e.key, e.value = METADATA_KEY, value


META_VALUES = {
    "input_size": ["abc", [0, 0], [-1, 5], [10 ** 9, 10 ** 9], [16], 16, None, [1.5, "x"], [[1], [2]], True],
    "mean": ["0.5", [], [1, 2, 3, 4, 5], [None], {"r": 1}, ["nan"]],
    "std": [[0, 0, 0], [0.0], "x", [-1, -1, -1], [1e-300] * 3],
    "layout": ["XYZ", 1, None, "nchw"],
    "channel_order": ["RGBA", 3, "", None],
    "value_range": [[0], "0 255", [1, 1], [float("inf"), 0], None],
    "labels": [5, "cat", [1, 2, 3], [None] * 5, ["x"] * 100000, {"0": "a"}],
    "aliases": [[1, 2], "alias", {"a": 1}, {"../x": "conv1"}],
    "resize": [-5, "big", 10 ** 9, 0],
    "interpolation": ["wobbly", 7],
    "name": [5, ["x"], "../../evil"],
    "dynamic_size": ["yes", 2],
    "confidence": ["high", 5],
    "evidence": [5, "text"],
}


def _m_metadata(rng, m):
    kind = rng.choice(["json", "type", "unknown", "not dict", "many"])
    d = BASE_META.to_dict()
    if kind == "json":
        text = rng.choice(["{", "{'input_size': [16, 16]}", "", "null", "[]", "NaN", "{\"a\": ", "\x00\x01",
                           json.dumps(d)[: rng.randrange(1, 40)]])
        _set_meta(m, text)
        return f"meta:malformed json {text[:20]!r}"
    if kind == "unknown":
        d["colour"] = "blue"
    elif kind == "not dict":
        _set_meta(m, json.dumps(rng.choice([[1, 2], 5, "text", True])))
        return "meta:not an object"
    else:
        for key in rng.sample(sorted(META_VALUES), 1 if kind == "type" else 3):
            d[key] = rng.choice(META_VALUES[key])
    _set_meta(m, json.dumps(d, allow_nan=True))
    return f"meta:{kind} " + ",".join(sorted(k for k in d if d[k] != BASE_META.to_dict().get(k)))[:80]


PROTO_MUTATORS = {
    "dims": _m_dims, "dtype": _m_dtype, "drop_initializer": _m_drop_initializer, "drop_node": _m_drop_node,
    "dangling": _m_dangling, "unknown_op": _m_unknown_op, "unknown_domain": _m_unknown_domain, "cycle": _m_cycle,
    "duplicate_output": _m_duplicate_output, "opset": _m_opset, "ir": _m_ir, "huge_kernel": _m_huge_kernel,
    "attribute": _m_attribute, "input_shape": _m_input_shape, "io": _m_io, "shuffle": _m_shuffle,
    "hostile_names": _m_hostile_names, "metadata": _m_metadata,
}


def mutate_model(base: onnx.ModelProto, rng: random.Random, folder: Path) -> tuple:
    """(label, path) of one mutant of ``base`` written into ``folder``: bytes-level one time in five,
    otherwise one to three protobuf mutators (external data among them)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / rng.choice(["model.onnx", "model.onnx", "mödel with space.onnx", "-model.onnx"])
    if rng.random() < 0.2:
        label, data = _bytes_mutant(rng, base.SerializeToString())
        path.write_bytes(data)
        return label, path
    m = copy.deepcopy(base)
    labels = []
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        name = rng.choice(sorted(PROTO_MUTATORS) + ["external"])
        try:
            labels.append(_m_external(rng, m, folder) if name == "external" else PROTO_MUTATORS[name](rng, m))
        except (ValueError, IndexError, StopIteration, onnx.checker.ValidationError) as exc:  # nothing left to mutate
            labels.append(f"{name}: skipped ({type(exc).__name__})")
    path.write_bytes(m.SerializeToString())
    return "; ".join(labels), path
