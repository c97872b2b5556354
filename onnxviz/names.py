"""Readable layer names for ONNX tensors, and filesystem-safe slugs for them.

Exporters write names such as ``/features/features.3/conv/conv.0/conv.0.2/Clip_output_0`` (torch
classic), ``node_relu_3`` with a ``pkg.torch.onnx.name_scopes`` entry (torch dynamo) or
``StatefulPartitionedCall/model/conv2d/Relu:0`` (tf2onnx). A person wants ``features.3.conv.0``.
A node's *scope* is its module path; the short name of a tensor is the outermost scope whose only
output it is, or the scope plus the op when a scope has several.
"""
from __future__ import annotations

import ast
import hashlib
import re

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def slug(name: str) -> str:
    """A filesystem- and URL-safe name: no '/', no '..', no leading dot; stable and short."""
    s = _SAFE.sub("_", name).strip("._-")
    s = re.sub(r"\.{2,}", ".", s)
    if not s:
        s = "x"
    if s != name or len(s) > 80:
        digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:6]
        s = f"{s[:70]}-{digest}" if s != name else s[:70] + "-" + digest
    return s


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
