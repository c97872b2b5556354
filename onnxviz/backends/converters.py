"""onnx2torch converters for ops and op versions that real files contain and onnx2torch 1.5.15 lacks.

- Reduce* at opset 18+ (axes became an input; the dynamo exporter writes ReduceMean v18).
- Reshape 19/21 with ``allowzero`` (the dynamo exporter writes allowzero=1).
- Gelu (opset 20), GlobalMaxPool, Mish; GroupNormalization (18, 21), GridSample (16, 20), LpNormalization,
  CastLike, Trilu and ScatterElements, which onnx2torch 1.5.15 has no converter for.
- LSTM, GRU and RNN (7, 14, 22: a CRNN's recurrent head), step by step in torch (``recurrent_ops``), so units in
  or after the head can be rendered; every direction, layout, peepholes, clip, sequence_lens, initial states.
- SpaceToDepth (tf2onnx writes it for TF's space_to_depth / YOLOv2-style reorg) and DepthToSpace in both
  modes (onnx2torch only has CRD, while DCR is the default and what TF writes).
- Clip whose min/max are computed in the graph (onnx2torch only takes constants), or with one constant
  bound and the other left empty (onnx2torch looks the empty name up as a tensor: trueocr_rec).
- BatchNormalization whose mean and variance are computed in the graph (a tf2onnx Keras file normalizing
  with the batch's moments; onnx2torch hands them to torch as running statistics, which take no gradient).
- LayerNormalization normalizing over the dims the input has at run time (onnx2torch reads them from
  shape inference, which leaves unknown dims as 0 on dynamic-shape files).
- ``auto_pad="SAME_UPPER"/"SAME_LOWER"`` on Conv, MaxPool and AveragePool (keras2onnx, tf2onnx): the padding is
  computed from the input size at run time, as ONNX defines it, so dynamic input sizes work.
- Newer versions of ops whose changes do not matter when their new features are unused (Cast 19,
  Pad 18 without axes, Resize 18/19 with default new attributes, ...): they reuse the older converter,
  after checking that the new features are indeed unused; and version 22 of the ops to which opset 22 only
  added bfloat16 (Conv, MaxPool, HardSwish, ...).

``register()`` is idempotent and called before every conversion; the torch modules live in ``torch_ops``.
"""
from __future__ import annotations

import torch

from ..compat import import_onnx2torch
from .torch_ops import _REDUCE, CastLike, ComputedBatchNorm, ConstClip, DepthToSpace, DynamicClip, Gelu, \
    GlobalMaxPool, GridSample, GroupNorm, LayerNorm, LpNorm, Mish, Reduce, Reshape, SamePadded, ScatterElements, \
    SpaceToDepth, Trilu
from . import recurrent_ops

_registered = False

# op -> attribute/input conditions under which the newest onnx2torch converter is still exact
_BENIGN = {
    "AveragePool": lambda n: all(d == 1 for d in n.attributes.get("dilations", [1])),
    "Cast": lambda n: True,
    "Constant": lambda n: True,
    "ConstantOfShape": lambda n: True,
    "Equal": lambda n: True,
    "Flatten": lambda n: True,
    "GreaterOrEqual": lambda n: True,
    "LessOrEqual": lambda n: True,
    "Identity": lambda n: True,
    "IsInf": lambda n: True,
    "IsNaN": lambda n: True,
    "Shape": lambda n: True,
    "Transpose": lambda n: True,
    "Unsqueeze": lambda n: True,
    "Squeeze": lambda n: True,
    "Pad": lambda n: len(n.input_values) < 4 and n.attributes.get("mode", "constant") != "wrap",
    "Resize": lambda n: (n.attributes.get("antialias", 0) == 0 and "axes" not in n.attributes
                         and n.attributes.get("keep_aspect_ratio_policy", "stretch") == "stretch"),
    "ScatterND": lambda n: n.attributes.get("reduction", "none") in ("none", "add", "mul"),
    "Split": lambda n: "num_outputs" not in n.attributes or n.attributes["num_outputs"] == len(n.output_values),
}
#: opset 22 added bfloat16 to these ops' types and changed nothing else (Ultralytics' recent exports are opset 22);
#: version 22 reuses the converter of the last version, when no version between them changed anything
_TYPES_ONLY_22 = ("Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "InstanceNormalization",
                  "HardSigmoid", "HardSwish", "Elu", "Selu", "Softplus", "Softsign", "ThresholdedRelu", "Dropout",
                  "Round", "Sin", "Cos", "Tan", "LSTM", "GRU", "RNN")


def register() -> None:
    """Add onnxviz's converters to onnx2torch's registry (once)."""
    global _registered
    if _registered:
        return
    import_onnx2torch()
    from onnx import defs
    from onnx2torch.node_converters.registry import _CONVERTER_REGISTRY, OperationDescription, add_converter
    from onnx2torch.utils.common import OnnxMapping, OperationConverterResult, get_const_value, \
        onnx_mapping_from_node

    def since_versions(op: str, after: int) -> list:
        out = set()
        for v in range(after + 1, 26):
            try:
                sv = defs.get_schema(op, max_inclusive_version=v).since_version
            except Exception:  # noqa: BLE001
                continue
            if sv > after:
                out.add(sv)
        return sorted(out)

    def registered_versions(op: str) -> list:
        return sorted(d.version for d in _CONVERTER_REGISTRY if d.domain == "" and d.operation_type == op)

    for op, ok in _BENIGN.items():
        versions = registered_versions(op)
        if not versions:
            continue
        base = _CONVERTER_REGISTRY[OperationDescription("", op, versions[-1])]

        def make(base=base, ok=ok, op=op):
            def convert(node, graph):
                if not ok(node):
                    raise NotImplementedError(f"{op} v{node.attributes} uses features onnxviz cannot convert")
                return base(node, graph)
            return convert

        for v in since_versions(op, versions[-1]):
            add_converter(operation_type=op, version=v)(make())

    import copy as _copy

    for op in ("Conv", "MaxPool", "AveragePool"):
        for v in registered_versions(op):
            base = _CONVERTER_REGISTRY[OperationDescription("", op, v)]

            def same_pad(node, graph, base=base, op=op):
                mode = node.attributes.get("auto_pad", "NOTSET")
                if mode not in ("SAME_UPPER", "SAME_LOWER"):
                    return base(node, graph)
                valid = _copy.copy(node)
                valid._proto_attributes = {**node._proto_attributes, "auto_pad": "VALID"}  # noqa: SLF001
                result = base(valid, graph)
                if op == "Conv":
                    kernel = node.attributes.get("kernel_shape") or list(
                        graph.initializers[node.input_values[1]].to_torch().shape[2:])
                else:
                    kernel = node.attributes["kernel_shape"]
                rank = len(kernel)
                module = SamePadded(result.torch_module, kernel, node.attributes.get("strides", [1] * rank),
                                    node.attributes.get("dilations", [1] * rank), mode == "SAME_UPPER",
                                    float("-inf") if op == "MaxPool" else 0.0,
                                    op == "AveragePool" and not node.attributes.get("count_include_pad", 0))
                return OperationConverterResult(torch_module=module, onnx_mapping=result.onnx_mapping)

            _CONVERTER_REGISTRY[OperationDescription("", op, v)] = same_pad

    def reduce_converter(node, graph):
        keepdims = bool(node.attributes.get("keepdims", 1))
        noop = bool(node.attributes.get("noop_with_empty_axes", 0))
        axes = node.attributes.get("axes", None)
        if len(node.input_values) > 1 and node.input_values[1]:
            axes = get_const_value(node.input_values[1], graph)
            axes = axes.tolist() if isinstance(axes, torch.Tensor) else list(axes)
        module = Reduce(node.operation_type, list(axes) if axes is not None else None, keepdims, noop)
        return OperationConverterResult(torch_module=module,
                                        onnx_mapping=OnnxMapping(inputs=(node.input_values[0],),
                                                                 outputs=node.output_values))

    for op in _REDUCE:
        after = max(registered_versions(op) or [0])
        for v in since_versions(op, max(after, 17)):
            add_converter(operation_type=op, version=v)(reduce_converter)
    # ReduceSum has taken axes as an input since v13, which onnx2torch handles

    def reshape_converter(node, graph):
        return OperationConverterResult(torch_module=Reshape(bool(node.attributes.get("allowzero", 0))),
                                        onnx_mapping=onnx_mapping_from_node(node))

    for v in since_versions("Reshape", max(registered_versions("Reshape"))):
        add_converter(operation_type="Reshape", version=v)(reshape_converter)

    for v in registered_versions("BatchNormalization"):
        base = _CONVERTER_REGISTRY[OperationDescription("", "BatchNormalization", v)]

        def bn_converter(node, graph, base=base):
            try:
                for name in node.input_values[3:5]:
                    get_const_value(name, graph)
            except KeyError:  # mean/var computed in the graph: onnx2torch would pass them as running statistics
                return OperationConverterResult(torch_module=ComputedBatchNorm(float(node.attributes.get("epsilon", 1e-5))),
                                                onnx_mapping=onnx_mapping_from_node(node))
            return base(node, graph)

        _CONVERTER_REGISTRY[OperationDescription("", "BatchNormalization", v)] = bn_converter

    for v in registered_versions("Clip"):
        if v < 11:  # Clip 6 has min/max as attributes
            continue
        base = _CONVERTER_REGISTRY[OperationDescription("", "Clip", v)]

        def clip_converter(node, graph, base=base):
            slots = list(node.input_values[1:3])
            try:
                consts = {name: float(get_const_value(name, graph)) for name in slots if name}
            except KeyError:  # computed in the graph: clamp to the tensors themselves
                return OperationConverterResult(torch_module=DynamicClip(), onnx_mapping=onnx_mapping_from_node(node))
            if all(slots):
                return base(node, graph)
            # an optional bound left empty (Clip(x, min, "")): onnx2torch would look "" up as a tensor
            lo, hi = (consts.get(name) if name else None for name in (slots + ["", ""])[:2])
            return OperationConverterResult(torch_module=ConstClip(lo, hi),
                                            onnx_mapping=OnnxMapping(inputs=(node.input_values[0],),
                                                                     outputs=node.output_values))

        _CONVERTER_REGISTRY[OperationDescription("", "Clip", v)] = clip_converter

    simple = {
        "LayerNormalization": lambda node: LayerNorm(int(node.attributes.get("axis", -1)),
                                                     float(node.attributes.get("epsilon", 1e-5))),
        "Gelu": lambda node: Gelu(node.attributes.get("approximate", "none")),
        "GlobalMaxPool": lambda node: GlobalMaxPool(),
        "Mish": lambda node: Mish(),
        "SpaceToDepth": lambda node: SpaceToDepth(int(node.attributes["blocksize"])),
        "DepthToSpace": lambda node: DepthToSpace(int(node.attributes["blocksize"]),
                                                  node.attributes.get("mode", "DCR")),
        "GroupNormalization": lambda node: GroupNorm(int(node.attributes["num_groups"]),
                                                     float(node.attributes.get("epsilon", 1e-5))),
        "GridSample": lambda node: GridSample(_text(node.attributes.get("mode", "bilinear")),
                                              _text(node.attributes.get("padding_mode", "zeros")),
                                              bool(node.attributes.get("align_corners", 0))),
        "LpNormalization": lambda node: LpNorm(int(node.attributes.get("axis", -1)), int(node.attributes.get("p", 2))),
        "CastLike": lambda node: CastLike(),
        "Trilu": lambda node: Trilu(bool(node.attributes.get("upper", 1))),
        "ScatterElements": lambda node: ScatterElements(int(node.attributes.get("axis", 0)),
                                                        _text(node.attributes.get("reduction", "none"))),
    }
    for op, factory in simple.items():
        if registered_versions(op) and op not in ("DepthToSpace", "LayerNormalization"):  # see the docstring
            continue

        def make_simple(factory=factory):
            def convert(node, graph):
                return OperationConverterResult(torch_module=factory(node), onnx_mapping=onnx_mapping_from_node(node))
            return convert

        for v in since_versions(op, 0):
            _CONVERTER_REGISTRY[OperationDescription("", op, v)] = make_simple()

    def recurrent_converter(node, graph):
        op, attrs = node.operation_type, node.attributes
        direction = _text(attrs.get("direction", "forward"))
        constants, inputs, runtime = {}, [node.input_values[0]], []
        for slot, name in list(zip(recurrent_ops.INPUTS[op], node.input_values))[1:]:
            if not name:
                continue
            try:  # a constant is read once into a buffer
                constants[slot] = torch.as_tensor(get_const_value(name, graph))
            except KeyError:  # computed in the graph: passed at run time
                inputs.append(name)
                runtime.append(slot)
        directions = 2 if direction == "bidirectional" else 1
        acts = recurrent_ops.activation_functions(op, attrs.get("activations"), attrs.get("activation_alpha"),
                                                  attrs.get("activation_beta"), directions)
        clip = attrs.get("clip")
        module = recurrent_ops.Recurrent(
            op, int(attrs["hidden_size"]), direction, acts, None if clip is None else float(clip),
            int(attrs.get("layout", 0)), len(node.output_values), constants, tuple(runtime),
            input_forget=bool(attrs.get("input_forget", 0)),
            linear_before_reset=bool(attrs.get("linear_before_reset", 0)))
        return OperationConverterResult(torch_module=module,
                                        onnx_mapping=OnnxMapping(inputs=tuple(inputs), outputs=node.output_values))

    for op in recurrent_ops.GATES:  # version 22 (bfloat16 only) comes from the loop below
        for v in since_versions(op, 6):
            if v < 22:
                _CONVERTER_REGISTRY[OperationDescription("", op, v)] = recurrent_converter
    for op in _TYPES_ONLY_22:  # after the wrappers above, so version 22 gets them too (Conv's auto_pad)
        versions = registered_versions(op)
        if versions and since_versions(op, versions[-1]) == [22]:
            _CONVERTER_REGISTRY[OperationDescription("", op, 22)] = _CONVERTER_REGISTRY[
                OperationDescription("", op, versions[-1])]
    _registered = True


def _text(value) -> str:
    """An ONNX string attribute as str (onnx2torch hands some over as bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def unconvertible_nodes(proto) -> list:
    """(op_type, version, node name) for every node onnx2torch has no converter for."""
    register()
    from onnx2torch.node_converters.registry import get_converter

    versions = {e.domain if e.domain != "ai.onnx" else "": e.version for e in proto.opset_import}
    missing = []
    for i, node in enumerate(proto.graph.node):
        domain = node.domain if node.domain != "ai.onnx" else ""
        try:
            get_converter(operation_type=node.op_type, version=versions.get(domain, 1), domain=domain)
        except NotImplementedError:
            missing.append((node.op_type, versions.get(domain, 1), node.name or f"#{i}"))
    return missing
