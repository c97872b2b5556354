"""Export recipes as a registry (like timm's): a model name -> how to build it, where its weights come
from, how images are prepared for it, its labels and its Lucid/Microscope layer names.

    from onnxviz import zoo
    zoo.names()                                   # every recipe
    zoo.get("googlenet").aliases["mixed4a"]       # 'inception4a'
    zoo.export_recipe(zoo.get("mobilenet_v2"), "models/")   # build, export, verify on real photos

``scripts/export.py`` is the command line over this package.
"""
from __future__ import annotations

from . import recipes  # noqa: F401 - registers every recipe (the registry never imports its recipes)
from .builders import Built, resolve_weights
from .export import build, calibrate_batchnorm, export_onnx, export_recipe, format_summary, make_meta
from .registry import (ExportError, Recipe, Weights, arch_recipe, get, labels_for, names, package_file,
                       register, weights_status)
from .verify import check_aliases, imagenet_photos, photo_batch, verify

__all__ = ["Built", "ExportError", "Recipe", "Weights", "arch_recipe", "build", "calibrate_batchnorm",
           "check_aliases", "export_onnx", "export_recipe", "format_summary", "get", "imagenet_photos",
           "labels_for", "make_meta", "names", "package_file", "photo_batch", "register", "resolve_weights",
           "verify", "weights_status"]
