"""A learned dictionary over one layer's activation vectors: concepts as data, stored in a run directory.

Each concept is an atom of the decoder (a direction in the layer's feature space) with an encoder
that says how much of it each activation vector holds: ``z = relu(f(x) @ W + b)`` (TopK: only the
``top_k`` largest codes kept). ``f`` scales the vectors by their typical norm (so settings carry
from layer to layer) and, for layers with negative values (linear bottlenecks, pre-activation
sums), puts their positive and negative parts side by side, since NMF needs non-negative data.
The same encoder runs in numpy here and in the graph (``onnxviz.graph.encoder``), so mined concept
activations are the ones the metrics describe.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..paths import slug
from ..runs.layout import RunDir



@dataclass
class Dictionary:
    """Concepts of one layer: decoder atoms, the encoder, how it was learned and how well it does."""

    layer: str
    method: str  # "nmf" or "sae"
    decoder: np.ndarray  # (K, D) atoms in feature space
    weight: np.ndarray  # (D, K) encoder weight
    bias: np.ndarray  # (K,) encoder bias
    scale: float = 1.0  # features are activation vectors / scale
    split_sign: bool = False  # features are [relu(x), relu(-x)] (signed layers)
    top_k: Optional[int] = None  # TopK SAE: codes kept per position
    offset: Optional[np.ndarray] = None  # (D,) decoder bias (SAE), zeros for NMF
    settings: dict = field(default_factory=dict)  # method, concepts, seed, vectors, run, ...
    metrics: dict = field(default_factory=dict)  # explained variance, L0, dead, stability
    labels: Optional[list] = None  # per concept, the classes it promotes (attribution.labels); None: no labelled head

    @property
    def concepts(self) -> int:
        return int(self.decoder.shape[0])

    @property
    def channels(self) -> int:
        d = int(self.decoder.shape[1])
        return d // 2 if self.split_sign else d

    @property
    def name(self) -> str:
        """How the concepts are named in a run: ``<method><K>`` (``nmf64``; ``nmfmb64`` by MiniBatchNMF), a layer
        of its own."""
        minibatch = self.method == "nmf" and self.settings.get("solver") == "minibatch"
        return f"{'nmfmb' if minibatch else self.method}{self.concepts}"

    # ------------------------------------------------------------------ numpy encoder / decoder
    def features(self, x: np.ndarray) -> np.ndarray:
        """Activation vectors (M, C) -> dictionary features (M, D)."""
        f = np.asarray(x, np.float32) / np.float32(self.scale)
        return np.concatenate([np.maximum(f, 0), np.maximum(-f, 0)], 1) if self.split_sign else f

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Activation vectors (M, C) -> concept codes (M, K), as the graph computes them."""
        z = np.maximum(self.features(x) @ self.weight + self.bias, 0)
        if self.top_k and self.top_k < z.shape[1]:
            kth = np.partition(z, -self.top_k, axis=1)[:, -self.top_k][:, None]
            z = np.where(z >= kth, z, 0)
        return z.astype(np.float32)

    def decode(self, z: np.ndarray) -> np.ndarray:
        """Codes (M, K) -> reconstructed activation vectors (M, C)."""
        f = np.asarray(z, np.float32) @ self.decoder
        if self.offset is not None:
            f = f + self.offset
        if self.split_sign:
            c = self.channels
            f = f[:, :c] - f[:, c:]
        return f * np.float32(self.scale)

    def direction(self, k: int) -> np.ndarray:
        """Concept ``k``'s atom as a direction in the layer's channel space (C,), unit length: what
        a feature visualization of the concept maximizes (``optvis.objectives.direction``)."""
        a = np.asarray(self.decoder[k], np.float64)
        if self.split_sign:
            c = self.channels
            a = a[:c] - a[c:]
        n = np.linalg.norm(a)
        return (a / n if n > 0 else a).astype(np.float32)

    def top_units(self, k: int, n: int = 5) -> list:
        """The layer's units that concept ``k``'s direction weighs most: [(unit, weight)], strongest first."""
        d = self.direction(k)
        order = np.argsort(-np.abs(d))[:n]
        return [(int(u), round(float(d[u]), 4)) for u in order]

    # ------------------------------------------------------------------ storage
    def save(self, run_dir) -> Path:
        """Write ``<run>/concepts/<layer slug>/<name>.npz`` (arrays) and ``.json`` (everything else)."""
        folder = folder_of(run_dir, self.layer)
        folder.mkdir(parents=True, exist_ok=True)
        base = folder / self.name
        buf = io.BytesIO()
        np.savez(buf, decoder=self.decoder, weight=self.weight, bias=self.bias,
                 offset=self.offset if self.offset is not None else np.zeros(self.decoder.shape[1], np.float32))
        record = {"layer": self.layer, "method": self.method, "concepts": self.concepts, "scale": self.scale,
                  "split_sign": self.split_sign, "top_k": self.top_k, "settings": self.settings,
                  "metrics": self.metrics, "labels": self.labels}
        _write(base.with_suffix(".npz"), buf.getvalue())
        _write(base.with_suffix(".json"), json.dumps(record, indent=1).encode())  # last: marks it complete
        return base.with_suffix(".json")

    @classmethod
    def load(cls, path) -> "Dictionary":
        """A dictionary from its ``.json`` (or ``.npz``) file."""
        path = Path(path)
        record = json.loads(path.with_suffix(".json").read_text())
        arrays = np.load(path.with_suffix(".npz"))
        return cls(layer=record["layer"], method=record["method"], decoder=arrays["decoder"],
                   weight=arrays["weight"], bias=arrays["bias"], offset=arrays["offset"], scale=float(record["scale"]),
                   split_sign=bool(record["split_sign"]), top_k=record.get("top_k"),
                   settings=record.get("settings", {}), metrics=record.get("metrics", {}),
                   labels=record.get("labels"))


def folder_of(run_dir, layer: str) -> Path:
    """Where a layer's dictionaries live in a run directory (``RunDir.concepts``)."""
    return RunDir(run_dir).concepts(layer)


def stored(run_dir, layer: Optional[str] = None) -> list:
    """Paths of the dictionaries stored in a run (of one layer, or all), sorted."""
    root = RunDir(run_dir).concepts_root
    pattern = f"{slug(layer)}/*.json" if layer else "*/*.json"
    return sorted(p for p in root.glob(pattern) if p.with_suffix(".npz").exists())


def _write(path: Path, data: bytes) -> None:
    """Write atomically (onnxviz.files): a killed run never leaves a partial file."""
    from ..files import write_bytes

    write_bytes(path, data)