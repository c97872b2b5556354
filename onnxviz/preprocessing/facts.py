"""What one deterministic source (a producer's metadata convention, a framework's sidecar file) says.

A source states some ``ModelMeta`` fields (value_range, mean, std, channel_order, input_size, resize,
interpolation, labels, name) and only those: a partial source leaves the rest to the statistics
(``onnxviz.preprocessing.infer``). ``confidence`` is 1 where the numbers are written out, lower where a
field follows from the producer's convention rather than from the file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from .meta import PREPROCESSING_FIELDS


@dataclass
class SourceFacts:
    """Fields one source states, why (one line each), and how sure that source is (0..1)."""

    name: str  # e.g. "Ultralytics metadata", "preprocessor_config.json (Hugging Face)"
    fields: dict
    evidence: list = field(default_factory=list)
    confidence: float = 1.0
    path: Optional[Path] = None  # the sidecar file, None for metadata inside the ONNX file

    @property
    def preprocessing(self) -> dict:
        return {k: v for k, v in self.fields.items() if k in PREPROCESSING_FIELDS}

    @property
    def complete(self) -> bool:
        """Does it state all of value range, mean, std and channel order?"""
        return all(k in self.fields for k in PREPROCESSING_FIELDS)
