"""The rest of the network after a layer, as a torch module: activation at L -> logits.

The class activation atlas asks which classes an activation vector of layer L supports. That
needs the part of the model *after* L: its fx graph with L's node replaced by an input. It
exists when everything downstream depends on the photo only through L (true at block outputs of
chain-like nets: MobileNet, VGG, Inception's mixed layers; false inside a residual block whose
skip connection bypasses L). ``head_module`` returns None in that case, and callers say so.
"""
from __future__ import annotations

from operator import getitem
from typing import Optional

import numpy as np
import torch
from torch import fx, nn

from ..backends.fx import tensor_map
from ..optvis.forward import resolve_device
from .core import output_layer


class Head(nn.Module):
    """forward(activation of L, in the model's layout) -> the output layer's tensor."""

    def __init__(self, module: fx.GraphModule):
        super().__init__()
        self.module = module
        self.eval()
        self.requires_grad_(False)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return self.module(a)


def head_module(model, layer: str, output: str) -> Optional[Head]:
    """The subgraph from ``layer`` to ``output`` as a module, or None when other paths bypass ``layer``."""
    gm = model.torch_module()
    tmap = tensor_map(gm)
    src_t, dst_t = model.layer(layer).tensor, model.layer(output).tensor
    if src_t not in tmap or dst_t not in tmap or tmap[src_t][1] is not None:
        return None
    nodes = {n.name: n for n in gm.graph.nodes}
    graph = fx.Graph()
    env: dict = {}
    graph.graph_copy(gm.graph, env)
    src = env[nodes[tmap[src_t][0]]]
    first = next(iter(graph.nodes))
    with graph.inserting_before(first):
        ph = graph.placeholder("activation")
    src.replace_all_uses_with(ph)
    dst_name, dst_index = tmap[dst_t]
    dst = ph if dst_name == tmap[src_t][0] else env[nodes[dst_name]]
    if dst_index is not None:
        dst = graph.call_function(getitem, (dst, dst_index))
    graph.output(dst)
    module = fx.GraphModule(gm, graph)
    module.graph.eliminate_dead_code()
    for node in list(module.graph.nodes):
        if node.op == "placeholder" and node is not ph:
            if node.users:
                return None  # the photo reaches the output by another path than through L
            module.graph.erase_node(node)
    module.delete_all_unused_submodules()
    module.recompile()
    return Head(module)


def class_support(model, layer: str, means: np.ndarray, baseline: np.ndarray, device=None) -> tuple:
    """(support (K, classes) or None, note): logits with every position of ``layer`` set to each mean
    vector, minus the logits with the dataset's mean vector (see the module doc)."""
    out = output_layer(model)
    if out is None:
        return None, "the model has no (N, classes) output"
    head = head_module(model, layer, out.name)
    if head is None:
        return None, f"layers after {layer} do not depend on the photo only through it (a path bypasses it)"
    info = model.layer(layer)
    h, w = model.map_size(layer)
    dev = resolve_device(device)
    head = head.to(dev)

    def logits(vecs: np.ndarray) -> np.ndarray:
        v = torch.from_numpy(np.ascontiguousarray(vecs, np.float32)).to(dev)
        maps = v[:, :, None, None].expand(-1, -1, h, w)
        if info.layout == "NHWC":
            maps = maps.permute(0, 2, 3, 1)
        with torch.no_grad():
            parts = [head(maps[i:i + 64].contiguous()) for i in range(0, len(maps), 64)]
        return torch.cat(parts).float().cpu().numpy().reshape(len(vecs), -1)

    return logits(means) - logits(baseline[None]), f"logit change vs the dataset mean vector, through {out.name}"
