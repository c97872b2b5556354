"""Checks on ModelMeta's fields: a wrong type or an impossible value is a MetadataError naming the field.

The fields come from files (the ``onnxviz`` metadata_props entry, sidecar files) and from the command
line, so each is checked once here, where a ModelMeta is made, and never trusted later.
"""
from __future__ import annotations

import json
import math

from ..errors import MetadataError

LAYOUTS = ("NCHW", "NHWC")
CHANNEL_ORDERS = ("RGB", "BGR", "L")
MAX_SIDE = 16384  # pixels per side of an input size or resize


def parse_stored(text: str) -> dict:
    """The JSON of an ``onnxviz`` metadata entry as a dict, or a MetadataError saying what is wrong."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise MetadataError(f"its onnxviz metadata is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise MetadataError(f"its onnxviz metadata is a JSON {type(value).__name__}, not an object of fields "
                            "(input_size, mean, std, ...)")
    return value


def _number(value, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise MetadataError(f"metadata field {field} must hold numbers, got {value!r}")
    try:
        out = float(value)
    except ValueError:
        raise MetadataError(f"metadata field {field} must hold numbers, got {value!r}") from None
    if not math.isfinite(out):
        raise MetadataError(f"metadata field {field} must be finite, got {value!r}")
    return out


def _numbers(value, field: str) -> list:
    if isinstance(value, (int, float, str)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise MetadataError(f"metadata field {field} must be a list of numbers, got {value!r}")
    return [_number(v, field) for v in value]


def _side(value, field: str) -> int:
    v = _number(value, field)
    if v != int(v) or not 1 <= v <= MAX_SIDE:
        raise MetadataError(f"metadata field {field} must be a whole number of pixels from 1 to {MAX_SIDE}, "
                            f"got {value!r}")
    return int(v)


def _choice(value, field: str, choices) -> str:
    if value not in choices:
        raise MetadataError(f"metadata field {field} must be one of {', '.join(choices)}, got {value!r}")
    return value


def check_fields(meta) -> None:
    """Normalize the fields of ``meta`` (a ModelMeta) in place, or raise MetadataError naming the field."""

    size = _numbers(meta.input_size, "input_size")
    if len(size) != 2:
        raise MetadataError(f"metadata field input_size must be [height, width], got {meta.input_size!r}")
    meta.input_size = tuple(_side(v, "input_size") for v in size)
    value_range = _numbers(meta.value_range, "value_range")
    if len(value_range) != 2 or value_range[0] == value_range[1]:
        raise MetadataError(f"metadata field value_range must be [low, high] with low != high (e.g. [0, 255]), "
                            f"got {meta.value_range!r}")
    meta.value_range = tuple(value_range)
    meta.layout = _choice(meta.layout, "layout", LAYOUTS)
    meta.channel_order = _choice(meta.channel_order, "channel_order", CHANNEL_ORDERS)
    n = meta.channels
    for field in ("mean", "std"):
        values = _numbers(getattr(meta, field), field)
        if len(values) == 1:
            values = values * n
        if len(values) != n:
            raise MetadataError(f"{field} needs {n} values (one per channel), got {values}")
        setattr(meta, field, tuple(values))
    if any(v == 0 for v in meta.std):
        raise MetadataError(f"metadata field std must not be zero (images are divided by it), got {list(meta.std)}")
    if meta.resize is not None:
        meta.resize = _side(meta.resize, "resize")
    if not isinstance(meta.interpolation, str):
        raise MetadataError(f"metadata field interpolation must be a name such as bilinear, got {meta.interpolation!r}")
    if meta.labels is not None:
        if not isinstance(meta.labels, (list, tuple)) or any(isinstance(v, (dict, list)) for v in meta.labels):
            raise MetadataError(f"metadata field labels must be a list of class names, got "
                                f"{str(meta.labels)[:80]!r}")
        meta.labels = ["" if v is None else str(v) for v in meta.labels]
    for field in ("name", "source", "preprocessing_source"):
        if not isinstance(getattr(meta, field), str):
            raise MetadataError(f"metadata field {field} must be text, got {getattr(meta, field)!r}")
    if not isinstance(meta.aliases, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                     for k, v in meta.aliases.items()):
        raise MetadataError(f"metadata field aliases must map names to layer names (text to text), got "
                            f"{str(meta.aliases)[:80]!r}")
    if meta.dynamic_size not in (True, False):
        raise MetadataError(f"metadata field dynamic_size must be true or false, got {meta.dynamic_size!r}")
    meta.dynamic_size = bool(meta.dynamic_size)
    if not isinstance(meta.evidence, (list, tuple)):
        raise MetadataError(f"metadata field evidence must be a list of lines, got {meta.evidence!r}")
    meta.evidence = [str(v) for v in meta.evidence]
    if meta.confidence is not None:
        meta.confidence = _number(meta.confidence, "confidence")
