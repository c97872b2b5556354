"""Token layers of vision transformers: tensors (N, tokens, C) whose tokens are a prefix (CLS,
distillation, registers) plus the patch grid of the patch embedding.

``mark_tokens`` gives such a layer its grid, so the channel objective can average over patch tokens,
the neuron objective can take one token, and a mined token's crop is the patch it covers.
``is_gelu`` / ``branch_output`` pick a block's MLP hidden units and the attn/mlp branch outputs
among the many MatMul/Add/Mul tensors of a transformer (used by ``layers.interesting``).
"""
from __future__ import annotations

from typing import Optional

from .layer import Layer


def patch_embedding(nodes: list, tensors: list) -> Optional[Layer]:
    """The patch embedding of a vision transformer: the first Conv whose kernel equals its stride
    (non-overlapping patches), as its (N, C, gh, gw) output tensor; None for other models."""
    by_tensor = {lay.tensor: lay for lay in tensors}
    for node in nodes:
        if node.op_type != "Conv":
            continue
        attrs = {a.name: list(a.ints) for a in node.attribute if a.ints}
        k, st = attrs.get("kernel_shape"), attrs.get("strides")
        out = by_tensor.get(node.output[0])
        if k and k == st and min(k) >= 2 and out is not None and out.layout == "NCHW" and None not in out.shape[2:]:
            return out
    return None


def mark_tokens(nodes: list, layers: list) -> None:
    """Give each token layer (N, L, C) whose L is a prefix (up to 16 tokens: CLS, distillation,
    registers) plus the patch grid its grid, prefix and patch embedding."""
    patches = patch_embedding(nodes, layers)
    if patches is None:
        return
    gh, gw = patches.shape[2:4]
    for lay in layers:
        if lay.layout == "NLC" and lay.shape[1] is not None and 0 <= lay.shape[1] - gh * gw <= 16:
            lay.prefix_tokens, lay.grid, lay.patch_tensor = lay.shape[1] - gh * gw, (gh, gw), patches.tensor


def is_gelu(node, node_of: dict, depth: int = 3) -> bool:
    """A Mul that ends a GELU written out as ops (x * 0.5 * (1 + erf(x / sqrt 2)), or with tanh)."""
    todo, seen = [node], 0
    while todo and seen < 8:
        n = todo.pop(0)
        seen += 1
        for i in n.input:
            src = node_of.get(i)
            if src is None:
                continue
            if src.op_type in ("Erf", "Tanh"):
                return True
            if src.op_type in ("Mul", "Add", "Div") and depth > 0:
                todo.append(src)
        depth -= 1
    return False


def branch_output(lay: Layer, node, consumers: dict, node_of: dict) -> bool:
    """A token layer's Linear (MatMul + bias Add) whose result goes into a residual Add, possibly
    through a layer scale (Mul by a constant): the output of a transformer block's attn or mlp."""
    if lay.layout != "NLC" or node.op_type not in ("Add", "MatMul"):
        return False
    if node.op_type == "Add" and not any(node_of.get(i) is not None and node_of[i].op_type == "MatMul"
                                         for i in node.input):
        return False
    t, hops = lay.tensor, 0
    while hops < 3:
        users = consumers.get(t, [])
        if len(users) != 1:
            return False
        u = users[0]
        computed = [i for i in u.input if i in node_of and node_of[i].op_type != "Constant"]
        if u.op_type == "Add" and len(computed) == 2:
            return node.op_type == "Add" or not any(x.op_type == "Add" for x in consumers.get(lay.tensor, []))
        if u.op_type != "Mul" or len(computed) != 1:
            return False
        t, hops = u.output[0], hops + 1
    return False
