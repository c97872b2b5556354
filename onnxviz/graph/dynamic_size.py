"""Give a fixed-size, fully convolutional graph a symbolic height/width, where onnxruntime agrees.

Why: a 1024 or 1600 px exported net is fixed only because the exporter wrote the size down; its
convolutions run at any size. Rendering a middle unit at the whole input size costs 4-25x the time
its receptive field needs (optvis/render_size.py picks the size); mining is unaffected (it feeds the
input size). The edit is *checked, not assumed*, on a real photo:

1. the input's H/W become symbolic, the stored shapes (value_info, outputs) are dropped, and a
   Resize with a constant ``sizes`` input becomes the equivalent ``scales`` (else it would resize
   every map back to the exported size);
2. at the original size the edited graph must give the original file's outputs (parity);
3. at about half the size onnxruntime runs it; a node that fails there (a Reshape to a constant
   shape, a Flatten/Gemm head, anchors baked for the exported size) is named, and it and every node
   after it keep the original size only (``fixed_tensors``); the rest is what renders smaller;
4. the stride: the smallest step in size at which the graph still runs (skip connections add
   maps of equal size, so a U-Net with 5 poolings needs multiples of 32).

Nothing is edited when step 2 fails, when the first failing node has no name in onnxruntime's
message, or when no node survives step 3: ``SizeEdit.proto`` is None and ``reason`` says why.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import onnx
from onnx import numpy_helper

from .edits import expose, infer_shapes, initializer_names, value_shapes
from .input_sizes import steps_to_try

LARGE = 640  # a fixed input with a side this large or larger is made dynamic (Ultralytics exports: 640)
STRIDES = (1, 2, 4, 8, 16, 32, 64, 128)
TOLERANCE = 1e-3  # parity: max |edited - original| / max(|original|, 1)
_NODE = re.compile(r"running (\w+) node\. Name:'([^']*)'")


@dataclass
class SizeEdit:
    """``proto``: the edited graph, or None (kept fixed); ``stride``: sizes that run are multiples
    of it; ``fixed_tensors``: tensors computed only at the original size; ``reason``: one line."""

    proto: Optional[onnx.ModelProto]
    stride: Optional[int]
    fixed_tensors: frozenset = field(default_factory=frozenset)
    reason: str = ""


def make_dynamic(proto: onnx.ModelProto, input_name: str, layout: str,
                 photo: Callable[[int, int], np.ndarray]) -> SizeEdit:
    """Try the edit; ``photo(h, w)`` -> the model input (batch 1) of a real photo at (h, w)."""
    import onnxruntime as ort

    dims = next(i for i in proto.graph.input if i.name == input_name).type.tensor_type.shape.dim
    hw = (2, 3) if layout == "NCHW" else (1, 2)
    h, w = (dims[i].dim_value for i in hw)

    def session(p):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 4  # failures at other sizes are expected: no error lines
        return ort.InferenceSession(p.SerializeToString(), opts, providers=["CPUExecutionProvider"])

    x = photo(h, w)
    outputs = [o.name for o in proto.graph.output]
    consts = initializer_names(proto.graph) | {o for n in proto.graph.node if n.op_type == "Constant" for o in n.output}
    edits = [n for n in proto.graph.node if (n.op_type == "Resize" and len(n.input) > 3 and n.input[3])
             or (n.op_type == "Reshape" and n.input[1] in consts and n.input[0] not in consts)]  # not a constant's
    try:  # the file at its own size, with the shapes around each Resize-by-sizes and constant Reshape
        probe = expose(proto, [t for n in edits for t in (n.input[0], n.output[0])], keep_outputs=True)
        sess = session(probe)
        names = [o.name for o in sess.get_outputs()]
        found = dict(zip(names, sess.run(None, {input_name: x})))
        ref = [found[o] for o in outputs]
        maps = {k: v for k, v in ((k, v[1]) for k, v in value_shapes(infer_shapes(proto)).items())
                if v is not None and len(v) == 4 and v[2] and v[3]}  # the batch may be open
        edited = _symbolic(proto, input_name, hw, {k: v.shape for k, v in found.items()}, maps)
        got = session(edited).run(outputs, {input_name: x})
    except Exception as exc:  # noqa: BLE001 - onnxruntime's message is the reason
        return SizeEdit(None, None, reason=f"kept at {h}x{w}: onnxruntime cannot run the edited graph "
                                           f"({_first_line(exc)})")
    err = max(float(np.max(np.abs(a.astype(np.float64) - b))) / max(float(np.max(np.abs(a))), 1.0)
              if a.size else 0.0 for a, b in zip(ref, got))
    if not err <= TOLERANCE:
        return SizeEdit(None, None, reason=f"kept at {h}x{w}: with a dynamic size the outputs differ from "
                                           f"the file's by {err:.3g} (max relative) at {h}x{w}")
    small = (_half(h), _half(w))
    fixed, test, failed = set(), edited, []
    for _ in range(12):
        try:
            session(test).run(None, {input_name: photo(*small)})
            break
        except Exception as exc:  # noqa: BLE001
            found = _NODE.search(str(exc))
            if found is None:
                return SizeEdit(None, None, reason=f"kept at {h}x{w}: at {small[0]}x{small[1]} onnxruntime "
                                                   f"fails ({_first_line(exc)})")
            op, name = found.groups()
            failed.append(f"{op} {name!r}")
            fixed |= _downstream(edited.graph, name)
            test = _without(edited, fixed)
            if test is None:
                return SizeEdit(None, None, reason=f"kept at {h}x{w}: {op} node {name!r} runs only at the "
                                                   "exported size, and every layer depends on it")
    else:
        return SizeEdit(None, None, reason=f"kept at {h}x{w}: too many nodes run only at the exported size")
    stride = None
    for s in STRIDES:
        try:
            for n in steps_to_try(0, s):  # odd sizes at every downsampling level, not one step
                session(test).run(None, {input_name: photo(small[0] + n, small[1] + n)})
            stride = s
            break
        except Exception:  # noqa: BLE001 - this step does not run
            continue
    if stride is None:
        return SizeEdit(None, None, reason=f"kept at {h}x{w}: it runs at {small[0]}x{small[1]} but at no "
                                           f"step up to {STRIDES[-1]} px above it")
    tail = (f"; {', '.join(failed)} and what follows run only at {h}x{w} (a fixed-size head)" if failed else "")
    reason = (f"height/width made dynamic (onnxruntime runs it at multiples of {stride}; same outputs as the "
              f"file at {h}x{w}, max relative difference {err:.1g}){tail}")
    return SizeEdit(edited, stride, frozenset(fixed), reason)


def _half(n: int) -> int:
    """About half of ``n``, a multiple of 128 (every stride in STRIDES divides it)."""
    return max(128, (n // 2) // 128 * 128)


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _symbolic(proto: onnx.ModelProto, input_name: str, hw: tuple, shapes: dict,
              maps: Optional[dict] = None) -> onnx.ModelProto:
    """A copy with symbolic H/W, no stored shapes, and each Resize's ``sizes`` (constant or computed)
    turned into the ``scales`` it amounts to at the original size (``shapes``: tensor -> shape there);
    a constant Reshape whose target holds a map's height, width or height x width (an attention block's
    (B, heads, d, H*W) and back, ``maps``: 4-d tensor shapes at the original size) gets that target
    computed from the map's shape (``_shape_from_maps``)."""
    out = copy.deepcopy(proto)
    g = out.graph
    inp = next(i for i in g.input if i.name == input_name)
    for axis, sym in zip(hw, ("height", "width")):
        d = inp.type.tensor_type.shape.dim[axis]
        d.Clear()
        d.dim_param = sym
    del g.value_info[:]
    before: dict = {}  # a Reshape's output -> the nodes computing its new target
    for o in g.output:
        for i, d in enumerate(o.type.tensor_type.shape.dim):
            if i > 0:
                d.Clear()
                d.dim_param = f"{o.name}_dim{i}"
    for node in g.node:
        if node.op_type == "Reshape" and node.input[0] in shapes:
            perm = _transpose_equivalent(shapes[node.input[0]], shapes[node.output[0]])
            if perm is not None:  # e.g. tf2onnx's NHWC -> NCHW of one channel: (1, H, W, 1) -> (1, 1, H, W)
                node.op_type = "Transpose"
                del node.input[1:]
                del node.attribute[:]
                node.attribute.append(onnx.helper.make_attribute("perm", perm))
            else:
                before[node.output[0]] = _shape_from_maps(g, node, shapes[node.input[0]], shapes[node.output[0]],
                                                          maps or {})
            continue
        if node.op_type != "Resize" or len(node.input) < 4 or not node.input[3]:
            continue
        src, dst = shapes[node.input[0]], shapes[node.output[0]]
        scales = np.asarray(dst, np.float32) / np.asarray(src, np.float32)
        name = f"{node.name or node.output[0]}_scales_for_dynamic_size"
        g.initializer.append(numpy_helper.from_array(scales, name))
        node.input[3] = ""
        node.input[2] = name
        while node.input and not node.input[-1]:
            del node.input[-1]
    if any(before.values()):
        nodes = [n for node in g.node for n in before.get(node.output[0], []) + [node]]
        del g.node[:]
        g.node.extend(nodes)
    return out


def _shape_from_maps(g: onnx.GraphProto, node, src: tuple, dst: tuple, maps: dict) -> list:
    """Give the constant Reshape ``node`` (``src`` -> ``dst`` at the original size) a target computed in
    the graph where an entry of ``dst`` is the batch, or the height, width or height x width of the
    nearest Conv/pooling output upstream (Ultralytics' C2PSA attention: (1, 512, 20, 20) -> (1, 4, 128,
    400) and (1, 4, 64, 400) -> (1, 256, 20, 20)); the other entries stay as they were. Left alone
    when no entry is such a size. Returns the nodes that compute the target (to go before ``node``). Parity at the original size holds by construction; a wrong guess at
    another size fails in onnxruntime there, and the node is then kept at the file's size as before."""
    producer = {o: n for n in g.node for o in n.output}
    seen, order, todo = set(), [], [node.input[0]]
    while todo and len(seen) < 200:  # nearest first: breadth-first up the graph
        t = todo.pop(0)
        if t in seen or t not in producer:
            continue
        seen.add(t)
        p = producer[t]
        if p.op_type in ("Conv", "MaxPool", "AveragePool") and t in maps:
            order.append(t)
        todo.extend(p.input)
    tag = f"{node.name or node.output[0]}_shape_for_dynamic_size"
    nodes, parts, dynamic = [], [], False

    def const(name, values):
        g.initializer.append(numpy_helper.from_array(np.asarray(values, np.int64), f"{tag}_{name}"))
        return f"{tag}_{name}"

    def dim(tensor, k):
        out = f"{tag}_{tensor}_{k}"
        if out not in {o for n in nodes for o in n.output}:
            nodes.extend([onnx.helper.make_node("Shape", [tensor], [out + "_s"]),
                          onnx.helper.make_node("Slice", [out + "_s", const(f"{len(nodes)}_a", [k]),
                                                          const(f"{len(nodes)}_b", [k + 1])], [out])])
        return out

    written = _constant(g, node.input[1])
    for i, d in enumerate(dst):
        found = None
        if written is not None and len(written) == len(dst) and written[i] in (0, -1):
            found = const(f"w{i}", [written[i]])  # already follows the input (copied or inferred)
        elif i == 0 and len(src) and d == src[0]:
            found = dim(node.input[0], 0)
        elif i == 1 and len(src) > 1 and d == src[1]:
            pass  # the channels kept: a constant, even where a map's side happens to equal them
        elif order:  # the nearest map only: a farther one's side may equal a channel count by chance
            t = order[0]
            h, w = maps[t][2], maps[t][3]
            if d == h * w and h > 1 and w > 1:
                found = f"{tag}_{i}_hw"
                nodes.append(onnx.helper.make_node("Mul", [dim(t, 2), dim(t, 3)], [found]))
            elif d == h and h > 1:
                found = dim(t, 2)
            elif d == w and w > 1:
                found = dim(t, 3)
            dynamic = dynamic or found is not None
        parts.append(found or const(f"c{i}", [d]))
    if not dynamic:
        kept = [t for t in g.initializer if not t.name.startswith(tag)]
        del g.initializer[:]
        g.initializer.extend(kept)
        return []
    target = f"{tag}_target"
    nodes.append(onnx.helper.make_node("Concat", parts, [target], axis=0))
    node.input[1] = target
    return nodes


def _constant(g: onnx.GraphProto, name: str) -> Optional[list]:
    """The values of an initializer or Constant node output ``name`` as a list (None if neither)."""
    for t in g.initializer:
        if t.name == name:
            return numpy_helper.to_array(t).reshape(-1).tolist()
    for n in g.node:
        if n.op_type == "Constant" and n.output[0] == name and n.attribute and n.attribute[0].HasField("t"):
            return numpy_helper.to_array(n.attribute[0].t).reshape(-1).tolist()
    return None


def _transpose_equivalent(src: tuple, dst: tuple) -> Optional[list]:
    """The Transpose permutation that does what a Reshape from ``src`` to ``dst`` does, when it only
    moves dims of size 1 (so it holds at every size); None otherwise."""
    if len(src) != len(dst) or tuple(src) == tuple(dst) or [d for d in src if d != 1] != [d for d in dst if d != 1]:
        return None
    big = [i for i, d in enumerate(src) if d != 1]
    ones = [i for i, d in enumerate(src) if d == 1]
    return [big.pop(0) if d != 1 else ones.pop(0) for d in dst]


def _downstream(graph: onnx.GraphProto, node_name: str) -> set:
    """The outputs of node ``node_name`` and of every node that depends on them."""
    start = next((n for n in graph.node if n.name == node_name), None)
    tainted = set(start.output) if start is not None else set()
    for node in graph.node:  # topological order: one pass
        if any(i in tainted for i in node.input):
            tainted.update(node.output)
    return tainted


def _without(proto: onnx.ModelProto, fixed: set) -> Optional[onnx.ModelProto]:
    """The graph with every node that makes a ``fixed`` tensor removed; its outputs are what the
    remaining nodes compute last (so onnxruntime still runs each of them), None when none remain."""
    g = proto.graph
    kept = [n for n in g.node if not any(o in fixed for o in n.output)]
    if not any(n.op_type in ("Conv", "ConvTranspose") for n in kept):
        return None
    used = {i for n in kept for i in n.input}
    leaves = [o for n in kept for o in n.output if o and o not in used]
    leaves += [o.name for o in g.output if o.name not in fixed and o.name not in leaves]
    inits = initializer_names(g)
    leaves = [t for t in leaves if t not in inits]
    if not leaves:
        return None
    test = copy.deepcopy(proto)
    del test.graph.node[:]
    test.graph.node.extend(kept)
    try:
        return expose(test, leaves)
    except Exception:  # noqa: BLE001 - shape inference failed on the cut graph: expose without types
        return None
