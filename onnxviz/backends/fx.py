"""The model as a differentiable torch module (onnx2torch), truncated at the nodes an objective needs.

``convert`` turns a normalised ONNX model into an ``fx.GraphModule`` (eval mode, weights frozen)
and records which fx node computes each ONNX tensor. ``ActivationView`` is a new GraphModule over
the same submodules whose output is a dict of the requested tensors; everything after the deepest
of them is removed from the graph, so it never runs.
"""
from __future__ import annotations

from operator import getitem
from typing import Optional

import onnx
import torch
from torch import fx, nn

from ..errors import ConversionError
from ..graph.edits import opset, with_opset
from ..graph.fold import fold_constants
from . import converters


def convert(proto: onnx.ModelProto) -> tuple:
    """(GraphModule in eval mode with frozen weights, {onnx tensor name: fx node name})."""
    converters.register()
    from onnx2torch import convert as o2t_convert

    proto = fold_constants(proto)  # weights computed in the graph (cast, dequantized) become initializers
    missing = converters.unconvertible_nodes(proto)
    if missing and opset(proto) < 13:
        upgraded = with_opset(proto, 13)
        if upgraded is not None and not converters.unconvertible_nodes(upgraded):
            proto, missing = upgraded, []
    if missing:
        listed = "; ".join(f"{op} (opset {v}) at node {name!r}" for op, v, name in missing[:10])
        raise ConversionError(
            f"cannot convert this model to torch: no converter for {listed}"
            f"{' and more' if len(missing) > 10 else ''}. Rendering needs the torch module; "
            "inspect, activations and mining run on onnxruntime and still work. You can add a converter "
            "with onnx2torch.node_converters.registry.add_converter (see onnxviz/backends/converters.py).")
    try:
        gm = o2t_convert(proto, attach_onnx_mapping=True)
    except NotImplementedError as exc:
        raise ConversionError(f"cannot convert this model to torch: {exc}. inspect, activations and mining "
                              "run on onnxruntime and still work.") from exc
    except Exception as exc:  # noqa: BLE001 - report the model, not onnx2torch internals
        from ..graph.validate import out_of_order

        late = out_of_order(proto.graph)
        why = (f"node {late[0]!r} reads tensor {late[1]!r}, which a later node computes: onnx2torch needs the "
               "nodes in topological order (re-export the model, or sort it with onnx's tools)") if late else \
            (str(exc).splitlines()[0][:300] or "no reason given")
        raise ConversionError(f"onnx2torch cannot convert this model ({why}). Rendering needs the torch module; "
                              "inspect, activations and mining run on onnxruntime and still work.") from exc
    gm.eval()
    gm.requires_grad_(False)
    return gm, tensor_map(gm)


def tensor_map(gm: fx.GraphModule) -> dict:
    """ONNX tensor name -> (fx node name, output index or None) for every call_module node."""
    out = {}
    for node in gm.graph.nodes:
        if node.op != "call_module":
            continue
        mapping = getattr(gm.get_submodule(node.target), "onnx_mapping", None)
        if mapping is None:
            continue
        outs = list(mapping.outputs)
        for i, name in enumerate(outs):
            out[name] = (node.name, i if len(outs) > 1 else None)
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            out.setdefault(f"__input__{node.name}", (node.name, None))
    return out


class ActivationView(nn.Module):
    """forward(x: model input) -> {name: activation}; runs only the graph up to the deepest name."""

    def __init__(self, gm: fx.GraphModule, tmap: dict, wanted: dict):
        super().__init__()
        graph = fx.Graph()
        env: dict = {}
        nodes = {n.name: n for n in gm.graph.nodes}
        out_graph_value = graph.graph_copy(gm.graph, env)
        del out_graph_value
        outputs = {}
        for key, tensor in wanted.items():
            if tensor not in tmap:
                raise ConversionError(f"the torch module has no node computing tensor {tensor!r}")
            node_name, index = tmap[tensor]
            value = env[nodes[node_name]]
            if index is not None:
                value = graph.call_function(getitem, (value, index))
            outputs[key] = value
        graph.output(outputs)
        self.module = fx.GraphModule(gm, graph)  # owning module first: dead-code elimination needs it
        self.module.graph.eliminate_dead_code()
        self.module.delete_all_unused_submodules()
        self.module.recompile()
        self.names = list(wanted)
        self.one_at_a_time = False  # set when a batch fails and one image runs (``forward``)
        self.eval()
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> dict:
        if self.one_at_a_time and len(x) > 1:
            return _stack([self.module(x[i:i + 1]) for i in range(len(x))])
        try:
            return self.module(x)
        except RuntimeError as exc:
            if len(x) < 2:
                raise
            # a graph whose reshapes were traced at batch 1 (EdgeFace's attention) takes one image, whatever
            # its input declares: the same fallback as onnxruntime's Runner, kept for the view's lifetime
            try:
                first = self.module(x[:1])
            except RuntimeError:
                raise exc from None
            if not all(torch.is_tensor(v) and v.dim() and v.shape[0] == 1 for v in first.values()):
                raise exc from None
            self.one_at_a_time = True
            return _stack([first] + [self.module(x[i:i + 1]) for i in range(1, len(x))])


def _stack(parts: list) -> dict:
    """One dict of batch-first activations from a dict per image."""
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def max_relative_error(a: torch.Tensor, b) -> float:
    """max |a - b| / max(|b|, 1): the faithfulness measure (absolute for small values)."""
    a = a.detach().float().cpu()
    b = torch.as_tensor(b).float()
    return float((a - b).abs().max() / max(float(b.abs().max()), 1.0)) if b.numel() else 0.0


def to_device(module: nn.Module, device: Optional[str | torch.device], channels_last: bool = False) -> nn.Module:
    module = module.to(device) if device is not None else module
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    return module
