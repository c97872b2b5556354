"""Per-model facts (input size, value range, mean/std, channel order, layout, labels) as data.

An ONNX graph says nothing about how its input was preprocessed. onnxviz keeps these facts in
the ONNX file itself, as JSON under the metadata_props key ``onnxviz``; the export scripts write
it, everything else reads it. A foreign file without it gets defaults (plus whatever the input
shape tells: size, layout, channels) that the user can override.

The one convention every other module relies on: an *image* is float32, NCHW, RGB, in [0, 1].
``ModelMeta.to_model_input`` maps images to what the model wants (range, mean/std, BGR,
grayscale, NHWC); it works on numpy arrays and, differentiably, on torch tensors.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

METADATA_KEY = "onnxviz"
from .meta_fields import CHANNEL_ORDERS, LAYOUTS  # noqa: F401 - the allowed values live with their checks
PREPROCESSING_FIELDS = ("value_range", "mean", "std", "channel_order")


@dataclass
class ModelMeta:
    """How images are fed to a model, plus its labels and friendly layer aliases."""

    input_size: tuple = (224, 224)  # (height, width)
    layout: str = "NCHW"  # layout of the model input
    channel_order: str = "RGB"  # "RGB", "BGR" or "L" (one grayscale channel)
    value_range: tuple = (0.0, 1.0)  # pixel values 0..1 are first mapped linearly to this range
    mean: tuple = (0.0, 0.0, 0.0)  # then (x - mean) / std, per channel in the model's channel order
    std: tuple = (1.0, 1.0, 1.0)
    resize: Optional[int] = None  # shorter side before a center crop to input_size; None: resize to input_size
    interpolation: str = "bilinear"
    labels: Optional[list] = None  # class names, index = logit index
    name: str = ""
    source: str = ""  # where the weights came from
    aliases: dict = field(default_factory=dict)  # friendly layer name -> onnxviz layer or tensor name
    dynamic_size: bool = False  # True when the model accepts any height/width
    # how the preprocessing above was found: "file" (stored metadata), "inferred" (onnxviz.preprocessing.infer,
    # from evidence in a foreign file), "overrides" (given by the caller) or "defaults"
    preprocessing_source: str = "defaults"
    evidence: list = field(default_factory=list)  # one line per finding that chose it
    confidence: Optional[float] = None  # 0..1, for inferred preprocessing
    # where the sources, the graph and the statistics disagree (onnxviz.preprocessing.sources): shown, not hidden
    conflicts: list = field(default_factory=list)

    def __post_init__(self):
        from .meta_fields import check_fields

        check_fields(self)

    @property
    def channels(self) -> int:
        return 1 if self.channel_order == "L" else 3

    # ---------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["input_size"] = list(self.input_size)
        d["value_range"] = list(self.value_range)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        d["evidence"] = list(self.evidence)
        d["conflicts"] = list(self.conflicts)
        return d

    def preprocessing(self) -> dict:
        """What maps an image to the model input, and how it was found (what output JSON records)."""
        return {"value_range": list(self.value_range), "mean": list(self.mean), "std": list(self.std),
                "channel_order": self.channel_order, "layout": self.layout, "input_size": list(self.input_size),
                "resize": self.resize, "source": self.preprocessing_source, "confidence": self.confidence,
                "evidence": list(self.evidence), "conflicts": list(self.conflicts)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict) -> "ModelMeta":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            from ..errors import MetadataError

            raise MetadataError(f"unknown model metadata fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    def replace(self, **changes: Any) -> "ModelMeta":
        """A copy with some fields changed (how CLI/API overrides are applied)."""
        d = self.to_dict()
        d.update({k: v for k, v in changes.items() if v is not None})
        if any(changes.get(k) is not None for k in PREPROCESSING_FIELDS) and "preprocessing_source" not in changes:
            d["preprocessing_source"] = "overrides"
            d["evidence"] = [f"set by the caller: {', '.join(k for k in PREPROCESSING_FIELDS if changes.get(k) is not None)}"]
            d["confidence"] = None
            d["conflicts"] = []
        if "channel_order" in changes and changes["channel_order"] is not None:
            n = 1 if d["channel_order"] == "L" else 3
            for key in ("mean", "std"):
                if len(d[key]) != n and key not in changes:
                    d[key] = [d[key][0]] * n
        return ModelMeta.from_dict(d)

    @classmethod
    def from_onnx(cls, model_proto) -> Optional["ModelMeta"]:
        """The metadata stored in an ONNX ModelProto, or None when the file has none."""
        from .meta_fields import parse_stored

        for prop in model_proto.metadata_props:
            if prop.key == METADATA_KEY:
                return cls.from_dict({**parse_stored(prop.value), "preprocessing_source": "file"})
        return None

    def write_to(self, model_proto) -> None:
        """Store this metadata in an ONNX ModelProto (replacing any earlier onnxviz entry)."""
        for prop in list(model_proto.metadata_props):
            if prop.key == METADATA_KEY:
                model_proto.metadata_props.remove(prop)
        entry = model_proto.metadata_props.add()
        entry.key = METADATA_KEY
        entry.value = self.to_json()

    # ---------------------------------------------------------------- preprocessing
    def to_model_input(self, images):
        """Map images (N, 3, H, W), RGB in [0, 1] to the model's input.

        Works on numpy arrays and torch tensors (differentiable: render uses it between the
        parameterized image and the model).
        """
        is_torch = not isinstance(images, np.ndarray)
        x = images
        if self.channel_order == "BGR":
            x = x[:, [2, 1, 0]] if not is_torch else x.flip(1)
        elif self.channel_order == "L":
            w = (0.299, 0.587, 0.114)
            x = w[0] * x[:, 0:1] + w[1] * x[:, 1:2] + w[2] * x[:, 2:3]
        lo, hi = self.value_range
        scale = np.asarray([(hi - lo) / s for s in self.std], dtype=np.float32)
        shift = np.asarray([(lo - m) / s for m, s in zip(self.mean, self.std)], dtype=np.float32)
        if is_torch:
            import torch

            scale_t = torch.as_tensor(scale, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
            shift_t = torch.as_tensor(shift, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
            x = x * scale_t + shift_t
            if self.layout == "NHWC":
                x = x.permute(0, 2, 3, 1)
            return x
        x = x.astype(np.float32, copy=False) * scale.reshape(1, -1, 1, 1) + shift.reshape(1, -1, 1, 1)
        if self.layout == "NHWC":
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        return x.astype(np.float32, copy=False)

    def from_model_input(self, x):
        """Inverse of to_model_input (numpy only): model input -> RGB images in [0, 1]."""
        x = np.asarray(x, dtype=np.float32)
        if self.layout == "NHWC":
            x = x.transpose(0, 3, 1, 2)
        lo, hi = self.value_range
        std = np.asarray(self.std, np.float32).reshape(1, -1, 1, 1)
        mean = np.asarray(self.mean, np.float32).reshape(1, -1, 1, 1)
        x = ((x * std + mean) - lo) / (hi - lo)
        if self.channel_order == "BGR":
            x = x[:, ::-1]
        elif self.channel_order == "L":
            x = np.repeat(x, 3, axis=1)
        return np.ascontiguousarray(x)

    def label(self, index: int) -> str:
        if self.labels and 0 <= index < len(self.labels):
            return self.labels[index]
        return str(index)
