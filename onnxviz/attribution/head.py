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

import torch
from torch import fx, nn

from ..backends.fx import tensor_map


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
