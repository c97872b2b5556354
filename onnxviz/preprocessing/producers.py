"""Preprocessing that other producers' conventions fix, read from an ONNX file's ``metadata_props``.

Some exporters write who they are into the file; their runtime code then fixes the preprocessing:

- Ultralytics (YOLOv5, YOLOv8 and later; keys ``author: Ultralytics``, ``imgsz``, ``stride``, ``task``,
  ``names``; YOLOv5's export writes only ``stride`` and ``names``): its predictors feed RGB in 0..1
  (``LetterBox`` then ``im / 255``; classification uses ``DEFAULT_MEAN = (0, 0, 0)``,
  ``DEFAULT_STD = (1, 1, 1)``), at ``imgsz``; ``names`` are the class labels.
- PaddleOCR text recognizers as RapidOCR's tools and PaddleOCR's own ``paddle2onnx`` recipe write
  them: the recognition dictionary under ``character``. PaddleOCR's ``resize_norm_img`` feeds
  ``(x / 255 - 0.5) / 0.5`` of the cv2 (BGR) image, 48 px high. The same key on a graph whose head
  is not a recognizer's (SLANet's table tokens, a PicoDet layout detector's class names) is ignored.

Each reader returns ``SourceFacts`` (see ``onnxviz.preprocessing.sources``) or None.
"""
from __future__ import annotations

import ast
from typing import Optional

from . import priors
from .facts import SourceFacts


def props(proto) -> dict:
    """``metadata_props`` as a dict (the last value wins, as onnxruntime's ``custom_metadata_map``)."""
    return {p.key: p.value for p in proto.metadata_props}


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


def _labels(names) -> Optional[list]:
    """Ultralytics' ``names`` ({0: 'person', ...} or a list) as a list indexed by class."""
    if isinstance(names, (list, tuple)):
        return [str(v) for v in names]
    if isinstance(names, dict) and names and all(isinstance(k, int) for k in names):
        return [str(names.get(i, i)) for i in range(max(names) + 1)]
    return None


def _size(imgsz) -> Optional[tuple]:
    if isinstance(imgsz, int) and imgsz > 0:
        return imgsz, imgsz
    if isinstance(imgsz, (list, tuple)) and len(imgsz) == 2 and all(isinstance(v, int) and v > 0 for v in imgsz):
        return tuple(imgsz)
    return None


def ultralytics(meta: dict, proto=None) -> Optional[SourceFacts]:
    """An Ultralytics export: 0..1 RGB at ``imgsz``, labels from ``names``."""
    author, description = meta.get("author", ""), meta.get("description", "")
    yolov5 = "stride" in meta and "names" in meta  # ultralytics/yolov5 export.py writes only these two
    if "ultralytics" not in (author + " " + description).lower() and not yolov5:
        return None
    how = (f"metadata_props author {author!r}" if "ultralytics" in author.lower() else
           f"metadata_props description {description!r}" if "ultralytics" in description.lower() else
           "metadata_props 'stride' and 'names' (what YOLOv5's export writes)")
    fields = {"value_range": (0.0, 1.0), "mean": (0.0,), "std": (1.0,), "channel_order": "RGB"}
    task = meta.get("task", "detect")
    evidence = [f"an Ultralytics export ({how}{', version ' + meta['version'] if meta.get('version') else ''}, "
                f"task {task}): Ultralytics' predictors feed RGB divided by 255 (no mean/std)"]
    size = _size(_literal(meta.get("imgsz", "")))
    if size:
        fields["input_size"] = size
        evidence.append(f"input size {size[0]}x{size[1]} from metadata_props imgsz")
    labels = _labels(_literal(meta.get("names", "")))
    if labels:
        fields["labels"] = labels
        evidence.append(f"{len(labels)} class names from metadata_props names")
    return SourceFacts("Ultralytics metadata", fields, evidence, confidence=1.0)


def paddleocr_rec(meta: dict, proto=None) -> Optional[SourceFacts]:
    """A PaddleOCR recognizer carrying its dictionary under ``character``: -1..1 BGR.

    RapidOCR's exports of other PaddleOCR nets carry ``character`` too (SLANet's table tokens, a
    PP-PicoDet layout detector's class names), and those are fed NormalizeImage, so the key counts
    only when the graph's head is a recognizer's: its only 3-D output is a character sequence."""
    if "character" not in meta:
        return None
    if proto is not None and not priors.character_sequence(priors.outputs(proto)):
        return None
    return SourceFacts("PaddleOCR metadata", {"value_range": (-1.0, 1.0), "mean": (0.0,), "std": (1.0,),
                                              "channel_order": "BGR"},
                       ["metadata_props 'character' (the recognition dictionary PaddleOCR/RapidOCR exports embed) "
                        "marks a PaddleOCR text recognizer: PaddleOCR's resize_norm_img feeds (x/255 - 0.5)/0.5 of "
                        "the cv2 (BGR) image"], confidence=0.9)


READERS = (ultralytics, paddleocr_rec)


def read(proto) -> list:
    """Every producer convention this file's metadata_props show, as SourceFacts."""
    meta = props(proto)
    if not meta:
        return []
    return [f for f in (reader(meta, proto) for reader in READERS) if f is not None]
