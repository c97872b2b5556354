"""``RunDir``: the one layout of a run directory, for every writer (render, mine, attribute, atlas) and the site.

    runs/<model name>/                 RunDir.default(model)
        render/<layer slug>/<stem>.png/.json     feature visualizations (onnxviz.runs.render_records)
        mining/mining.sqlite, images/, crops/, sheets/   dataset examples (onnxviz.mining)
        attribution/<photo stem>/...     attributions and activation grids (onnxviz.attribution.output)
        atlas/<layer slug>/atlas.*       activation atlases (onnxviz.attribution.atlas)
        concepts/<layer slug>/<name>.json/.npz   a concept dictionary (onnxviz.concepts)
        concepts/<layer slug>/<name>/    its concept set: a run directory of its own (RunDir.concept_set),
                                         for the model with the encoder appended: model.onnx, mining/ (the
                                         concepts' examples), render/<layer slug>/concept_<k>.png/.json

A leaf module (it imports only ``onnxviz.paths``), so mining, which runs before ``runs`` in the data
flow, can name its folder from here without importing anything downstream.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

from ..paths import slug

RUNS_ROOT = Path("runs")  # where RunDir.default puts a model's run


class RunDir(os.PathLike):
    """A run directory: ``RunDir("runs/mnv2").render`` -> ``runs/mnv2/render``. Names only; creates nothing."""

    RENDER = "render"
    MINING = "mining"
    ATTRIBUTION = "attribution"
    ATLAS = "atlas"
    CONCEPTS = "concepts"

    def __init__(self, root: Union[str, os.PathLike]):
        self.root = Path(root)

    @classmethod
    def default(cls, model=None, model_path: Optional[Union[str, os.PathLike]] = None) -> "RunDir":
        """``runs/<name>``: the model's metadata name, else the file's stem, else "model"."""
        name = (model.meta.name if model is not None else None) or (Path(model_path).stem if model_path else "model")
        return cls(RUNS_ROOT / name)

    @classmethod
    def of(cls, run: Optional[Union[str, os.PathLike, "RunDir"]], model=None, model_path=None) -> "RunDir":
        """``run`` as a RunDir, or the model's default run when it is None."""
        if run is None:
            return cls.default(model, model_path)
        return run if isinstance(run, RunDir) else cls(run)

    def __fspath__(self) -> str:
        return str(self.root)

    def __str__(self) -> str:
        return str(self.root)

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, RunDir) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

    @property
    def render(self) -> Path:
        return self.root / self.RENDER

    def render_layer(self, layer: str) -> Path:
        """The folder of a layer's renders (its name made filesystem-safe)."""
        return self.layer_folder(self.render, layer)

    @staticmethod
    def layer_folder(render_dir: Union[str, os.PathLike], layer: str) -> Path:
        """``<render_dir>/<layer slug>``: also for a render folder given on its own (``render --out``)."""
        return Path(render_dir) / slug(layer)

    @property
    def mining(self) -> Path:
        return self.root / self.MINING

    @property
    def attribution(self) -> Path:
        return self.root / self.ATTRIBUTION

    @property
    def atlases(self) -> Path:
        return self.root / self.ATLAS

    def atlas(self, layer: str) -> Path:
        """The folder of a layer's activation atlas."""
        return self.atlases / slug(layer)

    @property
    def concepts_root(self) -> Path:
        return self.root / self.CONCEPTS

    def concepts(self, layer: str) -> Path:
        """The folder of a layer's concept dictionaries (and, one folder each, their mined examples)."""
        return self.concepts_root / slug(layer)

    def concept_set(self, layer: str, name: str) -> "RunDir":
        """A dictionary's concept set (``<name>`` e.g. ``sae256``): a run directory of its own, whose one
        layer ``<layer>/<name>`` has the concepts as units (mined in the graph, rendered as directions)."""
        return RunDir(self.concepts(layer) / slug(name))

    def has_mining(self) -> bool:
        """Whether ``onnxviz mine`` wrote results here (the mining folder exists)."""
        return self.mining.is_dir()


__all__ = ["RunDir", "RUNS_ROOT"]
