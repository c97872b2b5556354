"""Importing torchvision (and so onnx2torch, timm) safely next to a CPU-only torch.

The torchvision wheel that matches torch may be built for CUDA; its import registers fake kernels
for ``torchvision::nms``/``qnms``, which fails when its compiled ops cannot load. Defining the two
op schemas first lets the pure-Python parts (model definitions) import; only the compiled ops
(nms, roi_align) stay unusable, and onnxviz never needs them.
"""
from __future__ import annotations

import importlib
import sys

_patched = False


def _define_torchvision_schemas() -> None:
    global _patched
    if _patched or "torchvision" in sys.modules:
        return
    import torch

    try:
        torch.ops.torchvision.nms  # noqa: B018 - succeeds when the compiled ops loaded
        _patched = True
        return
    except (AttributeError, RuntimeError):
        pass
    try:
        import torchvision  # noqa: F401 - a working build needs no help
        _patched = True
        return
    except RuntimeError:
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
    lib = torch.library.Library("torchvision", "FRAGMENT")
    for op in ("nms", "qnms"):
        try:
            lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        except RuntimeError:
            pass
    _keep.append(lib)
    _patched = True


_keep: list = []


def import_torchvision():
    """The torchvision module, importable even where its compiled ops are not."""
    _define_torchvision_schemas()
    return importlib.import_module("torchvision")


def import_onnx2torch():
    """The onnx2torch module (it imports torchvision for its NMS converter)."""
    _define_torchvision_schemas()
    return importlib.import_module("onnx2torch")


def import_timm():
    _define_torchvision_schemas()
    return importlib.import_module("timm")
