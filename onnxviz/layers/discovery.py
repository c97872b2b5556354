"""Layer discovery: which tensors of an ONNX graph a person wants to look at, and what to call them.

``discover`` walks a normalised graph once and returns every float tensor with channels (with its
shape, layout and producing node) and, among them, the *layers*: what Lucid and Microscope show
(activations, pools, block outputs, logits), each with a short readable name.

Layouts are tracked through the graph from the input (a Keras/TF model transposes NHWC to NCHW
and back), not assumed. Shapes come from ONNX shape inference; dims it leaves open are probed with
one onnxruntime run at the model's input size (``probe_shapes``). A tensor whose first dim is not
the image batch (sequence-first attention, cells gathered from the whole batch) is not a layer:
mining and rendering take one activation per image; where inference loses track of the batch, a run
at batch 2 tells (``_not_batch_first``).

Short names: exporters write names such as ``/features/features.3/conv/conv.0/conv.0.2/Clip_output_0``
(torch classic), ``node_relu_3`` with a ``pkg.torch.onnx.name_scopes`` entry (torch dynamo) or
``StatefulPartitionedCall/model/conv2d/Relu:0`` (tf2onnx). A node's *scope* is its module path;
the short name of a tensor is the outermost scope whose only output it is (``features.3``), or the
scope plus the op when a scope has several.
"""
from __future__ import annotations

import ast
import logging
import re
from dataclasses import dataclass
from typing import Optional

import numpy as np
import onnx

from ..graph import edits as G
from .layer import Layer
from .tokens import branch_output, is_gelu, mark_tokens

log = logging.getLogger("onnxviz")

# ops whose output is a natural "layer": what Lucid/Microscope show
ACTIVATIONS = {"Relu", "Clip", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "HardSwish", "Tanh", "Gelu", "Mish",
               "Softplus", "ThresholdedRelu", "Sigmoid", "HardSigmoid"}
POOLS = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool"}
# ops that absorb a linear layer's output into the same "layer" (conv -> bn -> relu is one layer)
ABSORBERS = ACTIVATIONS | {"BatchNormalization", "InstanceNormalization", "LayerNormalization", "Mul", "Add", "Sub",
                           "Div", "Sum"}
SPATIAL_OPS = {"Conv", "ConvTranspose", "BatchNormalization", "InstanceNormalization", "LRN", "DepthToSpace",
               "SpaceToDepth", "Upsample", "Resize"} | POOLS
WEIGHTED = {"Conv", "ConvTranspose", "Gemm", "MatMul", "Einsum", "ConvInteger", "MatMulInteger", "QLinearConv",
            "QLinearMatMul"}
FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}


@dataclass
class Discovery:
    """What ``discover`` found: ``tensors`` (every float tensor with channels), ``layers`` (the
    interesting ones, short-named), ``lookup`` (every name a person may type -> Layer) and
    ``probed`` (tensor -> shape measured by onnxruntime at the input size, where inference left dims open)."""

    tensors: list
    layers: list
    lookup: dict
    probed: dict


# --------------------------------------------------------------------------- layouts
def input_layout(proto: onnx.ModelProto, input_name: str, input_shape: tuple) -> str:
    """"NCHW" or "NHWC" for the image input: from its shape, else from the first node that reads it."""
    shape = input_shape
    if len(shape) != 4:
        return "NCHW"
    if shape[1] in (1, 3) and shape[3] not in (1, 3):
        return "NCHW"
    if shape[3] in (1, 3) and shape[1] not in (1, 3):
        return "NHWC"
    for node in proto.graph.node:
        if node.op_type == "Transpose" and node.input[0] == input_name:
            perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
            if perm == [0, 3, 1, 2]:
                return "NHWC"
        if input_name in node.input and node.op_type in SPATIAL_OPS:
            return "NCHW"
    return "NCHW"


def tensor_layout(node, t: str, rank: Optional[int], layouts: dict) -> Optional[str]:
    """The layout of output ``t`` of ``node`` (recorded in ``layouts``), None for ranks above 4."""
    if rank == 2:
        return "NC"
    if rank == 3:
        return "NLC"
    if rank != 4:
        return None
    in_layouts = [layouts[i] for i in node.input if i in layouts]
    if node.op_type == "Transpose":
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
        src = in_layouts[0] if in_layouts else "NCHW"
        if perm == [0, 2, 3, 1] and src == "NCHW":
            out = "NHWC"
        elif perm == [0, 3, 1, 2] and src == "NHWC":
            out = "NCHW"
        else:
            out = src if perm == [0, 1, 2, 3] else ("NHWC" if perm == [0, 2, 3, 1] else "NCHW")
    elif node.op_type in SPATIAL_OPS:
        out = "NCHW"
    else:
        out = in_layouts[0] if in_layouts else "NCHW"
    layouts[t] = out
    return out


# --------------------------------------------------------------------------- discovery
def discover(proto: onnx.ModelProto, input_name: str, input_shape: tuple, layout: str, size: tuple,
             aliases: Optional[dict] = None, extras: Optional[dict] = None) -> Discovery:
    """Tensors and layers of a normalised model (see the module docstring).

    ``size``: (H, W) at which open dims are probed (the model's input size); ``aliases``: friendly
    name -> layer name or tensor (from the model's metadata).
    """
    inferred = G.infer_shapes(proto)
    shapes = G.value_shapes(inferred)
    nodes = list(proto.graph.node)
    consumers: dict = {}
    for node in nodes:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    graph_outputs = [o.name for o in proto.graph.output]
    layouts = {input_name: layout}
    found = []
    for idx, node in enumerate(nodes):
        for t in node.output:
            if not t:
                continue
            elem, shape = shapes.get(t, (None, None))
            rank = len(shape) if shape is not None else None
            lay_out = tensor_layout(node, t, rank, layouts)
            if rank is None or rank < 2 or (elem is not None and elem not in FLOAT_TYPES) or lay_out is None:
                continue
            found.append(Layer(name=t, tensor=t, node=node.name, op=node.op_type,
                               shape=(None,) + tuple(shape[1:]), layout=lay_out, index=idx))
    probed = _fill_unknown_shapes(proto, input_name, input_shape, layout, size, found, extras)
    others = _not_batch_first(proto, inferred, input_name, input_shape, layout, size, found, extras)
    found = [lay for lay in found if lay.tensor not in others]
    tensors = [lay for lay in found if lay.units]
    node_of = {t: n for n in nodes for t in n.output}
    learned = set()  # tensors computed through at least one weighted op: not input preprocessing
    for node in nodes:
        if node.op_type in WEIGHTED or any(i in learned for i in node.input):
            learned.update(node.output)
    chosen = [lay for lay in tensors if lay.tensor in learned and interesting(
        lay, node_of[lay.tensor], consumers, node_of, graph_outputs)]
    names = short_names(chosen, nodes, consumers, graph_outputs)
    layers = [Layer(name=names[lay.tensor], tensor=lay.tensor, node=lay.node, op=lay.op, shape=lay.shape,
                    layout=lay.layout, index=lay.index) for lay in chosen]
    mark_tokens(nodes, tensors + layers)
    return Discovery(tensors=tensors, layers=layers, lookup=_lookup(layers, tensors, aliases or {}), probed=probed)


def _lookup(layers: list, tensors: list, aliases: dict) -> dict:
    """Every name a layer answers to: short name, alias, tensor, node (in that order of precedence)."""
    lookup: dict = {lay.name: lay for lay in layers}
    by_tensor = {lay.tensor: lay for lay in tensors}
    for alias, target in aliases.items():
        lay = lookup.get(target) or next((x for x in layers if x.tensor == target), None)
        if lay is None and target in by_tensor:
            lay = by_tensor[target]
        if lay is not None:
            lay.aliases.append(alias)
            lookup.setdefault(alias, lay)
    for lay in list(layers) + list(tensors):
        lookup.setdefault(lay.tensor, lay)
        if lay.node:
            lookup.setdefault(lay.node, lay)
    return lookup


def probe_shapes(proto: onnx.ModelProto, input_name: str, input_shape: tuple, layout: str, size: tuple,
                 tensors: list, extras: Optional[dict] = None, batch: int = 1) -> dict:
    """tensor -> its shape (with batch ``batch``) in one onnxruntime run on a zero image of ``size`` (H, W)."""
    from ..backends.ort import Runner

    h, w = size
    gray = len(input_shape) == 4 and (input_shape[1] if layout == "NCHW" else input_shape[3]) == 1
    c = 1 if gray else 3
    x = np.zeros((batch, c, h, w) if layout == "NCHW" else (batch, h, w, c), np.float32)
    out = Runner(G.subgraph(proto, tensors), threads=1, input_name=input_name, extras=extras).run(x)
    return {t: tuple(out[t].shape) for t in tensors}


def _fill_unknown_shapes(proto, input_name, input_shape, layout, size, layers: list, extras=None) -> dict:
    """Layers whose shape inference left dims unknown get them from one onnxruntime run."""
    unknown = [lay for lay in layers if lay.shape[lay.channel_axis] is None or any(d is None for d in lay.shape[1:])]
    if not unknown:
        return {}
    try:
        probed = probe_shapes(proto, input_name, input_shape, layout, size, [lay.tensor for lay in unknown], extras)
    except Exception as exc:  # noqa: BLE001 - shapes stay partly unknown
        log.warning("could not determine some layer shapes: %s", exc)
        return {}
    dynamic = any(d is None for d in input_shape[1:])
    for lay in unknown:
        shape = probed[lay.tensor]
        if len(shape) != len(lay.shape):
            continue
        # with a dynamic input size only the channel count is a fact; spatial dims follow the input
        lay.shape = (None,) + tuple(
            int(p) if (i == lay.channel_axis or not dynamic or known is not None) else None
            for i, (known, p) in enumerate(zip(lay.shape[1:], shape[1:]), start=1))
    return probed


def _not_batch_first(proto, inferred, input_name, input_shape, layout, size, layers: list, extras=None) -> set:
    """Tensors whose first dim is not the batch: among those where shape inference lost the batch
    symbol, the ones whose first dim is not 2 in a run at batch 2 (empty when that run fails)."""
    batch_first = {vi.name for vi in list(inferred.graph.value_info) + list(inferred.graph.output)
                   if vi.type.tensor_type.shape.dim and vi.type.tensor_type.shape.dim[0].dim_param == G.BATCH_DIM}
    unsure = [lay.tensor for lay in layers if lay.tensor not in batch_first]
    if not unsure:
        return set()
    try:
        probed = probe_shapes(proto, input_name, input_shape, layout, size, unsure, extras, batch=2)
    except Exception as exc:  # noqa: BLE001 - keep them all; a batched run fails later with its own message
        log.info("could not check which tensors carry the batch: %s", str(exc).splitlines()[0])
        return set()
    others = {t for t in unsure if not probed[t] or probed[t][0] != 2}
    if others:
        log.info("%d tensors whose first dim is not the image batch are not layers", len(others))
    return others


def interesting(lay: Layer, node, consumers: dict, node_of: dict, graph_outputs: list) -> bool:
    """Whether a tensor is a layer a person wants to see (an activation, a pool, a block's output...)."""
    if lay.tensor in graph_outputs:
        return True
    op = node.op_type
    users = consumers.get(lay.tensor, [])
    if op in ("MatMul", "Softmax") and len(lay.shape) == 4 and lay.layout == "NCHW" and not any(
            (node_of.get(i) is not None and node_of[i].op_type in SPATIAL_OPS) for i in node.input):
        return False  # attention scores and per-head values (N, heads, tokens, ...), not feature maps
    if op == "Mul" and lay.layout == "NLC" and is_gelu(node, node_of):
        # the MLP's hidden units: the GELU's last Mul (x * 0.5 * (1 + erf) is two Muls)
        return not any(u.op_type == "Mul" and is_gelu(u, node_of) for u in users)
    if branch_output(lay, node, consumers, node_of):
        return True
    if is_gate(node, lay.tensor, consumers, node_of):
        return False  # swish, hard-swish, squeeze-excitation: the gated product is the layer
    if op in ACTIVATIONS or op in POOLS or op in ("Concat", "Softmax"):
        return op != "Concat" or lay.layout in ("NCHW", "NHWC") and len(node.input) > 1
    if op in ("Mul", "Div") and _scaled_gate_product(node, node_of, consumers):
        return True  # x * clip(x + 3, 0, 6) / 6: the Div (or Mul by 1/6) ends the hard-swish
    if op in ("Add", "Sum", "Mul"):
        computed = _computed(node, node_of)
        if op == "Mul":  # swish x * sigmoid(x), hard-swish, a gated feature map
            # on (N, C) vectors a gated product is a step of an unrolled recurrent cell, not a feature map
            return _gated(node, consumers, node_of) and lay.layout != "NC" and not _rescaled(lay.tensor, users, node_of)
        return len(computed) >= 2 and lay.layout != "NC"
    if op in ("Conv", "BatchNormalization", "Gemm", "MatMul", "ConvTranspose", "ReduceMean"):
        if op == "ReduceMean" and lay.layout not in ("NCHW", "NC"):
            return False
        # conv -> bn -> relu is one layer; an output that also branches elsewhere is a layer itself
        return not (len(users) == 1 and users[0].op_type in ABSORBERS or
                    _feeds_gated_activation(lay.tensor, users, consumers, node_of))
    return False


GATES = {"Sigmoid", "HardSigmoid", "Clip", "Tanh"}


def _computed(node, node_of: dict) -> list:
    """Inputs of ``node`` computed by the graph (not initializers or Constant nodes)."""
    return [i for i in node.input if i in node_of and node_of[i].op_type != "Constant"]


def is_gate(node, tensor: str, consumers: dict, node_of: dict) -> bool:
    """A bounded activation (sigmoid, hard-sigmoid, clip, tanh) that only multiplies another computed
    tensor: the gate of a swish, hard-swish, mish, squeeze-excitation or recurrent cell. Its values sit near
    their ceiling, so it is no layer to optimize or browse (the product is); a Clip that is a ReLU6
    feeding a conv stays a layer."""
    users = consumers.get(tensor, [])
    return node.op_type in GATES and bool(users) and all(
        u.op_type == "Mul" and any(i != tensor for i in _computed(u, node_of)) for u in users)


def _gated(node, consumers: dict, node_of: dict, besides: str = "") -> bool:
    """Whether a computed input of ``node`` (other than ``besides``) is a gate: a gated product."""
    return any(i != besides and is_gate(node_of[i], i, consumers, node_of) for i in _computed(node, node_of))


def _feeds_gated_activation(tensor: str, users: list, consumers: dict, node_of: dict) -> bool:
    """Whether every use of ``tensor`` is a piece of one swish-like activation of it (the gate, the
    + 3 before a hard-swish's clip, the product): conv -> bn -> hard-swish is one layer, like -> relu."""
    def piece(u) -> bool:
        out = u.output[0]
        if u.op_type == "Mul":
            return _gated(u, consumers, node_of, besides=tensor)
        if is_gate(u, out, consumers, node_of):
            return True
        return (u.op_type in ("Add", "Sub") and _computed(u, node_of) == [tensor]
                and all(is_gate(v, v.output[0], consumers, node_of) for v in consumers.get(out, [])))
    return len(users) >= 2 and all(piece(u) for u in users)


def _rescaled(tensor: str, users: list, node_of: dict) -> bool:
    """Whether ``tensor``'s only use is a Div or Mul by a constant (the / 6 of a hard-swish)."""
    return len(users) == 1 and users[0].op_type in ("Div", "Mul") and _computed(users[0], node_of) == [tensor]


def _scaled_gate_product(node, node_of: dict, consumers: dict) -> bool:
    """``node`` divides or multiplies a gated product by a constant (x * clip(x + 3, 0, 6) / 6)."""
    computed = _computed(node, node_of)
    if len(computed) != 1 or node_of[computed[0]].op_type != "Mul":
        return False
    return _gated(node_of[computed[0]], consumers, node_of)


# --------------------------------------------------------------------------- short names
def short_names(layers: list, nodes: list, consumers: dict, graph_outputs: list) -> dict:
    """tensor -> short name: the outermost scope whose only escaping output it is, else scope.op."""
    scopes = {id(node): tuple(node_scope(node)) for node in nodes}
    firsts = {s[0] for s in scopes.values() if s}
    if len(firsts) == 1 and all(scopes.values()):
        # a wrapper scope around everything (the Keras model's name): drop it
        scopes = {k: v[1:] for k, v in scopes.items()}
    scope_of = {t: scopes[id(node)] for node in nodes for t in node.output}
    escaping: dict = {}
    for node in nodes:
        s = scopes[id(node)]
        for t in node.output:
            users = consumers.get(t, [])
            for depth in range(1, len(s) + 1):
                prefix = s[:depth]
                if t in graph_outputs or any(scopes[id(u)][:depth] != prefix for u in users):
                    escaping.setdefault(prefix, set()).add(t)
    names: dict = {}
    taken: set = set()
    node_by_tensor = {t: n for n in nodes for t in n.output}
    for lay in layers:
        s = scope_of.get(lay.tensor, ())
        # the outermost scope it is the only output of, preferring numbered blocks (features.7
        # over features.7.conv, features.18 over the container features)
        owned = [s[:d] for d in range(1, len(s) + 1) if escaping.get(s[:d]) == {lay.tensor}]
        numbered = [p for p in owned if p[-1].isdigit()]
        name = ".".join((numbered or owned)[0]) if owned else None
        if name is None or name in taken:
            node = node_by_tensor[lay.tensor]
            base = ".".join(s + (op_suffix(node),)) if s else op_suffix(node)
            name = base if base not in taken else f"{base}.{lay.index}"
        name = name.replace("/", ".").replace(":", "_") or lay.tensor
        taken.add(name)
        names[lay.tensor] = name
    return names


def _join_scope(parts: list) -> str:
    """['features', 'features.3', 'conv', 'conv.0'] -> 'features.3.conv.0' (torch scopes repeat prefixes)."""
    out: list = []
    for p in parts:
        if not p:
            continue
        joined = ".".join(out)
        if out and (p.startswith(joined + ".") or p == joined):
            out = p.split(".")
        elif out and p.startswith(out[-1] + "."):
            out = out[:-1] + p.split(".")
        else:
            out.extend(p.split("."))
    return ".".join(out)


def node_scope(node) -> list:
    """The module path of an ONNX node, as a list of parts ([] when the node has none)."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                break
            scopes = [s for s in scopes if s][:-1]  # last entry is the op itself
            return [p for p in _join_scope(scopes).split(".") if p]
    name = node.name or ""
    parts = [p for p in re.split(r"[/]", name) if p]
    if len(parts) <= 1:
        return []
    scope = _join_scope(parts[:-1])
    scope = re.sub(r"^(StatefulPartitionedCall|PartitionedCall)\.", "", scope)
    return [p for p in scope.split(".") if p]


def op_suffix(node) -> str:
    """The op part of a node name ('Relu_1' for '/Relu_1'), lower-cased; falls back to the op type."""
    name = node.name or ""
    last = name.rsplit("/", 1)[-1] if name else ""
    if last.startswith("node_"):
        last = last[5:]
    return (last or node.op_type).lower()
