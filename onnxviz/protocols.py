"""What optvis and mining need from a model, spelled out as a type (``onnxviz.Model`` is one).

Code that renders or mines takes a ``VisionModel`` and calls these members directly: no
``hasattr`` fallbacks. A stand-in (a test double, a model served elsewhere) implements them all.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Protocol, Sequence, runtime_checkable

import numpy as np
import onnx

from .graph.input_sizes import InputRule
from .layers.layer import Layer
from .preprocessing.meta import ModelMeta


@runtime_checkable
class VisionModel(Protocol):
    """A vision model that can be rendered (torch) and mined (onnxruntime)."""

    meta: ModelMeta  # preprocessing facts: input size, range, mean/std, channel order, layout, labels
    path: Optional[Path]  # the ONNX file, when there is one
    proto: onnx.ModelProto  # the normalised graph (receptive fields are computed from it)
    input_name: str
    layers: list  # Layer, in graph order
    tensors: list  # every tensor with units (Layer), layers or not: what mining's memory estimate walks
    input_shape: tuple  # the image input's shape, None for open dims
    input_rule: Optional[InputRule]  # the input sizes a fixed or strided model accepts; None: any size
    fixed_size_tensors: frozenset  # tensors computed only at the file's own size (graph/dynamic_size.py)

    def layer(self, name) -> Layer:
        """A layer by any name a person may type (UnknownNodeError with close matches otherwise)."""

    def resolve(self, names) -> list:
        """Layers for a list of names, a comma-separated string, or None/'all' (every layer)."""

    def prepare(self, images: np.ndarray) -> np.ndarray:
        """Images (N, 3, H, W) RGB in [0, 1] -> the model's input."""

    def load_images(self, paths: Sequence) -> np.ndarray:
        """Photo files -> images (N, 3, H, W) RGB in [0, 1] at the model's input size and crop."""

    def other_inputs(self, meta: Optional[ModelMeta] = None) -> dict:
        """Feeds for the inputs that are not the image (a mid-gray image or zeros), by input name."""

    def activations(self, x: np.ndarray, names, batch_size: int = 32, providers=None, threads=None) -> dict:
        """{layer name: full activation (N, ...)} from onnxruntime."""

    def stats_runner(self, names=None, providers=None, threads=None, stats: Sequence[str] = ...):
        """An object whose ``run(x)`` gives {layer name: {stat: (N, C)}} (``backends.ort.StatsRunner``)."""

    def map_size(self, layer) -> Optional[tuple]:
        """(H, W) of a spatial layer's map at the model's input size; None for other layers."""

    def torch_view(self, names, device=None, check: bool = True, channels_last: bool = False):
        """A torch module: model input -> {layer name: activation}, differentiable, truncated."""

    def torch_module(self):
        """The whole model as a torch module (attribution's atlas reads the classifier head from it)."""

    def describe(self) -> dict:
        """Facts about the file for people and pages: path, size, opset, ops, inputs, outputs, layers."""
