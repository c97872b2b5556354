"""Preprocessing from the files frameworks write beside an exported model.

Looked for in the model's folder (and its parent when that folder is ``onnx/``, the layout of
Optimum and transformers.js exports):

- Hugging Face ``preprocessor_config.json``: ``do_rescale``/``rescale_factor`` (+ ``rescale_offset``),
  ``do_normalize``/``image_mean``/``image_std``, ``size``/``crop_size``/``do_center_crop``,
  ``resample``; image processors work on PIL RGB images.
- ``config.json``: timm's (``pretrained_cfg``: mean, std, input_size, crop_pct, interpolation;
  ``label_names``) or a transformers one (``id2label`` as labels; no preprocessing).
- MMDeploy ``pipeline.json`` (with ``deploy.json`` naming the ONNX file): the ``Normalize``
  transform's mean/std, in 0..255 units, and ``to_rgb`` (mmcv decodes BGR).
- PaddleOCR/PaddleX/PaddleClas ``inference.yml``: ``NormalizeImage`` (scale, mean, std) on the decoded
  image, ``DecodeImage.img_mode``; without it the order of the family's predictor (OCR: the cv2 BGR
  image; classification: RGB); ``RecResizeImg``/``ClsResizeImg`` normalize to -1..1 themselves.
- PaddleDetection ``infer_cfg.yml``: ``NormalizeImage`` (mean, std, is_scale, norm_type), ``Resize``
  target_size, ``label_list``; its predictor decodes to RGB.

A file that cannot be parsed is reported in one line and skipped, never fatal.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional

from .facts import SourceFacts

log = logging.getLogger("onnxviz")

PIL_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
OCR_OPS = {"DetResizeForTest", "DetLabelEncode", "RecResizeImg", "ClsResizeImg", "CTCLabelEncode", "MultiLabelEncode",
           "SVTRRecResizeImg", "RecConAug"}


def _read(path: Path):
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix in (".yml", ".yaml"):
            import yaml

            return yaml.safe_load(text)
        return json.loads(text)
    except Exception as exc:  # noqa: BLE001 - a broken sidecar is skipped, with a line saying why
        log.warning("%s beside the model could not be read (%s); ignored", path,
                    str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        return None


def _number(v) -> Optional[float]:
    """1/255 written as a number or as a string ('1./255.', '0.00392157')."""
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        parts = v.replace(" ", "").split("/")
        try:
            nums = [float(p) for p in parts]
        except ValueError:
            return None
        return nums[0] / nums[1] if len(nums) == 2 and nums[1] else nums[0] if len(nums) == 1 else None
    return None


def _hw(size) -> Optional[tuple]:
    if isinstance(size, int):
        return size, size
    if isinstance(size, dict) and "height" in size and "width" in size:
        return int(size["height"]), int(size["width"])
    if isinstance(size, (list, tuple)) and len(size) == 2:
        return int(size[0]), int(size[1])
    return None


# ------------------------------------------------------------------------------------ Hugging Face
def hf_preprocessor(path: Path, d: dict) -> Optional[SourceFacts]:
    keys = ("image_mean", "image_std", "do_normalize", "rescale_factor", "image_processor_type",
            "feature_extractor_type")
    if not isinstance(d, dict) or not any(k in d for k in keys):
        return None
    fields: dict = {"channel_order": "RGB"}
    ev = [f"{path.name}: a Hugging Face image processor ({d.get('image_processor_type') or d.get('feature_extractor_type') or 'type not named'}) works on PIL RGB images"]
    if d.get("do_rescale", True):
        factor = _number(d.get("rescale_factor", 1 / 255)) or 1 / 255
        lo = -1.0 if d.get("rescale_offset") or d.get("do_rescale_offset") else 0.0
        fields["value_range"] = (lo, lo + 255.0 * factor)
        ev.append(f"rescale_factor {factor:.6g}{' with offset -1' if lo else ''}"
                  f"{'' if 'rescale_factor' in d else ' (not written; the processors default to 1/255)'}: "
                  f"pixels in {fields['value_range'][0]:g}..{fields['value_range'][1]:g}")
    else:
        fields["value_range"] = (0.0, 255.0)
        ev.append("do_rescale false: pixels in 0..255")
    if d.get("do_normalize", True) is False:
        fields["mean"], fields["std"] = (0.0,), (1.0,)
        ev.append("do_normalize false: no mean/std")
    elif "image_mean" in d and "image_std" in d:
        fields["mean"], fields["std"] = tuple(d["image_mean"]), tuple(d["image_std"])
        ev.append(f"image_mean {list(d['image_mean'])}, image_std {list(d['image_std'])}")
    size, crop = _hw(d.get("size")), _hw(d.get("crop_size"))
    if d.get("do_center_crop") and crop:
        fields["input_size"] = crop
        if isinstance(d.get("size"), dict) and "shortest_edge" in d["size"]:
            fields["resize"] = int(d["size"]["shortest_edge"])
    elif size:
        fields["input_size"] = size
    elif isinstance(d.get("size"), dict) and "shortest_edge" in d["size"]:
        n = int(d["size"]["shortest_edge"])
        fields["input_size"] = (n, n)
    if isinstance(d.get("resample"), int) and d["resample"] in PIL_RESAMPLE:
        fields["interpolation"] = PIL_RESAMPLE[d["resample"]]
    if "input_size" in fields:
        ev.append(f"input size {fields['input_size'][0]}x{fields['input_size'][1]}"
                  + (f" (shorter side {fields['resize']}, center crop)" if "resize" in fields else ""))
    return SourceFacts(f"{path.name} (Hugging Face)", fields, ev, 1.0, path)


def model_config(path: Path, d: dict) -> Optional[SourceFacts]:
    """config.json: timm's pretrained_cfg, or a transformers config's id2label."""
    if not isinstance(d, dict):
        return None
    cfg = d.get("pretrained_cfg")
    if isinstance(cfg, dict) and "mean" in cfg and "std" in cfg:
        fields: dict = {"channel_order": "RGB", "value_range": (0.0, 1.0), "mean": tuple(cfg["mean"]),
                        "std": tuple(cfg["std"])}
        ev = [f"{path.name}: timm pretrained_cfg of {d.get('architecture', 'a timm model')}: mean {list(cfg['mean'])}, "
              f"std {list(cfg['std'])} on RGB in 0..1 (timm's ToTensor + Normalize)"]
        size = cfg.get("input_size")
        if isinstance(size, (list, tuple)) and len(size) == 3:
            fields["input_size"] = (int(size[1]), int(size[2]))
            crop = _number(cfg.get("crop_pct"))
            if crop and crop < 1 and cfg.get("crop_mode", "center") == "center":
                fields["resize"] = int(min(fields["input_size"]) / crop)  # timm: floor(size / crop_pct)
            ev.append(f"input size {size[1]}x{size[2]}, crop_pct {cfg.get('crop_pct')}")
        if cfg.get("interpolation") in ("bilinear", "bicubic", "nearest", "lanczos"):
            fields["interpolation"] = cfg["interpolation"]
        if isinstance(d.get("label_names"), list):
            fields["labels"] = [str(v) for v in d["label_names"]]
            ev.append(f"{len(fields['labels'])} class names from label_names")
        return SourceFacts(f"{path.name} (timm pretrained_cfg)", fields, ev, 1.0, path)
    labels = d.get("id2label")
    if isinstance(labels, dict) and labels and ("model_type" in d or "architectures" in d):
        try:
            index = {int(k): str(v) for k, v in labels.items()}
        except ValueError:
            return None
        names = [index.get(i, str(i)) for i in range(max(index) + 1)]
        if all(n == f"LABEL_{i}" for i, n in enumerate(names)):  # transformers' placeholder names
            return None
        return SourceFacts(f"{path.name} (Hugging Face)", {"labels": names},
                           [f"{path.name}: {len(names)} class names from id2label ({d.get('model_type', 'model')})"],
                           1.0, path)
    return None


# ------------------------------------------------------------------------------------ MMDeploy
def _transforms(d) -> list:
    out = []
    tasks = (d.get("pipeline") or {}).get("tasks", []) if isinstance(d, dict) else []
    for task in tasks:
        if isinstance(task, dict):
            out += [t for t in task.get("transforms", []) if isinstance(t, dict)]
    return out


def mmdeploy_pipeline(path: Path, d: dict) -> Optional[SourceFacts]:
    transforms = _transforms(d)
    norm = next((t for t in transforms if t.get("type") == "Normalize"), None)
    if not transforms:
        return None
    fields: dict = {}
    ev = [f"{path.name}: an MMDeploy preprocessing pipeline ({', '.join(str(t.get('type')) for t in transforms)}); "
          "mmcv decodes images as BGR"]
    if norm is not None and "mean" in norm and "std" in norm:
        fields.update(value_range=(0.0, 255.0), mean=tuple(norm["mean"]), std=tuple(norm["std"]),
                      channel_order="RGB" if norm.get("to_rgb") else "BGR")
        ev.append(f"Normalize mean {list(norm['mean'])}, std {list(norm['std'])} in 0..255 units, "
                  f"to_rgb {bool(norm.get('to_rgb'))}: {fields['channel_order']}")
    crop = next((t for t in transforms if t.get("type") == "CenterCrop" and t.get("crop_size")), None)
    resize = next((t for t in transforms if t.get("type") == "Resize" and not t.get("keep_ratio", True)), None)
    spec = crop["crop_size"] if crop else (resize.get("size") or resize.get("scale")) if resize else None
    size = _hw(spec)
    if size:
        fields["input_size"] = (size[1], size[0]) if isinstance(spec, (list, tuple)) else size  # mmcv: (w, h)
        ev.append(f"input size {fields['input_size'][0]}x{fields['input_size'][1]}")
    return SourceFacts(f"{path.name} (MMDeploy)", fields, ev, 1.0, path) if fields else None


# ------------------------------------------------------------------------------------ Paddle
def _ops(entries) -> list:
    """[(name, args)] from Paddle's list of single-key dicts ({'NormalizeImage': {...}}) or {'type': ...}."""
    out = []
    for e in entries or []:
        if isinstance(e, dict) and "type" in e:
            out.append((e["type"], e))
        elif isinstance(e, dict) and len(e) == 1:
            name, args = next(iter(e.items()))
            out.append((name, args or {}))
    return out


def _normalize(args: dict, fields: dict, ev: list, scaled: bool) -> None:
    scale = _number(args.get("scale", "1/255")) if scaled else 1.0
    if args.get("norm_type", "mean_std") == "none":
        fields.update(value_range=(0.0, 255.0 * scale), mean=(0.0,), std=(1.0,))
    else:
        fields.update(value_range=(0.0, 255.0 * scale), mean=tuple(args.get("mean", (0.485, 0.456, 0.406))),
                      std=tuple(args.get("std", (0.229, 0.224, 0.225))))
    ev.append(f"NormalizeImage: scale {scale:.6g}, mean {list(fields['mean'])}, std {list(fields['std'])}, "
              "applied to the channels in the decoded order")


def paddle_inference(path: Path, d: dict) -> Optional[SourceFacts]:
    """PaddleOCR / PaddleX / PaddleClas inference.yml (PreProcess.transform_ops)."""
    pre = (d or {}).get("PreProcess") if isinstance(d, dict) else None
    if not isinstance(pre, dict):
        return None
    ops = _ops(pre.get("transform_ops"))
    names = {n for n, _ in ops}
    model_name = str((d.get("Global") or {}).get("model_name", ""))
    ocr = bool(names & OCR_OPS) or "OCR" in model_name
    fields: dict = {}
    ev = [f"{path.name}: Paddle inference config{' of ' + model_name if model_name else ''} "
          f"({', '.join(names) or 'no transforms'})"]
    confidence = 1.0
    for name, args in ops:
        if name == "DecodeImage" and (args.get("img_mode") or "to_rgb" in args):
            mode = str(args.get("img_mode") or ("RGB" if args["to_rgb"] else "BGR")).upper()
            if mode in ("RGB", "BGR"):
                fields["channel_order"] = mode
                ev.append(f"DecodeImage img_mode {mode}")
        elif name == "NormalizeImage":
            _normalize(args, fields, ev, scaled=True)
        elif name in ("RecResizeImg", "ClsResizeImg", "SVTRRecResizeImg"):
            fields.update(value_range=(-1.0, 1.0), mean=(0.0,), std=(1.0,))
            shape = args.get("image_shape")
            if isinstance(shape, (list, tuple)) and len(shape) == 3:
                fields["input_size"] = (int(shape[1]), int(shape[2]))
            ev.append(f"{name}: PaddleOCR's resize_norm_img feeds (x/255 - 0.5)/0.5"
                      + (f", {shape[1]}x{shape[2]}" if "input_size" in fields else ""))
        elif name == "CropImage" and isinstance(args.get("size"), int):
            fields["input_size"] = (args["size"], args["size"])
        elif name == "ResizeImage" and isinstance(args.get("resize_short"), int):
            fields["resize"] = args["resize_short"]
    if "channel_order" not in fields and "mean" in fields:
        fields["channel_order"] = "BGR" if ocr else "RGB"
        confidence = 0.9
        ev.append("no decode step names the channel order: " + (
            "PaddleOCR's predictors feed the cv2 (BGR) image" if ocr else "PaddleClas/PaddleX classification "
            "predictors feed RGB"))
    return SourceFacts(f"{path.name} (Paddle)", fields, ev, confidence, path) if fields else None


def paddledet_infer_cfg(path: Path, d: dict) -> Optional[SourceFacts]:
    """PaddleDetection infer_cfg.yml (Preprocess list with 'type' keys; label_list)."""
    if not isinstance(d, dict) or not isinstance(d.get("Preprocess"), list):
        return None
    fields: dict = {}
    ev = [f"{path.name}: PaddleDetection inference config ({d.get('arch', 'arch not named')}); its predictor "
          "decodes images to RGB"]
    for name, args in _ops(d["Preprocess"]):
        if name == "NormalizeImage":
            _normalize({**args, "scale": "1/255" if args.get("is_scale", True) else 1.0}, fields, ev, scaled=True)
            fields["channel_order"] = "RGB"
        elif name == "Resize" and not args.get("keep_ratio", False) and _hw(args.get("target_size")):
            fields["input_size"] = _hw(args["target_size"])
            ev.append(f"Resize target_size {list(fields['input_size'])}")
    if isinstance(d.get("label_list"), list):
        fields["labels"] = [str(v) for v in d["label_list"]]
        ev.append(f"{len(fields['labels'])} class names from label_list")
    return SourceFacts(f"{path.name} (PaddleDetection)", fields, ev, 0.95 if "mean" in fields else 1.0, path) \
        if fields else None


READERS = {"preprocessor_config.json": hf_preprocessor, "config.json": model_config,
           "pipeline.json": mmdeploy_pipeline, "inference.yml": paddle_inference, "inference.yaml": paddle_inference,
           "infer_cfg.yml": paddledet_infer_cfg}


def folders(model_path: Path) -> list:
    """Where a framework puts its sidecars: the model's folder, and its parent for ``onnx/`` layouts."""
    here = model_path.resolve().parent
    return [here, here.parent] if here.name == "onnx" else [here]


def _deploy_names(folder: Path) -> Optional[set]:
    """The ONNX files MMDeploy's deploy.json names, None without one."""
    p = folder / "deploy.json"
    if not p.is_file():
        return None
    d = _read(p)
    models = d.get("models", []) if isinstance(d, dict) else []
    return {m.get("net") for m in models if isinstance(m, dict)}


def read(model_path) -> list:
    """SourceFacts from every sidecar beside ``model_path`` that states something."""
    if model_path is None:
        return []
    model_path = Path(model_path)
    found = []
    for folder in folders(model_path):
        if not folder.is_dir():
            continue
        onnx_files = sorted(folder.glob("*.onnx"))
        for name, reader in READERS.items():
            p = folder / name
            if not p.is_file():
                continue
            if name == "pipeline.json":
                nets = _deploy_names(folder)
                if nets is not None and model_path.name not in nets:
                    log.info("%s names %s, not %s; ignored", folder / "deploy.json", sorted(nets), model_path.name)
                    continue
            d = _read(p)
            facts = reader(p, d) if d is not None else None
            if facts is None:
                continue
            if len(onnx_files) > 1 and folder == model_path.resolve().parent:
                facts.evidence.append(f"(this folder holds {len(onnx_files)} ONNX files; {name} is taken for each)")
            found.append(facts)
    return found
