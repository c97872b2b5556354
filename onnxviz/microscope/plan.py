"""The plan of a microscope run: which layers, units and images, the settings, and what it will cost.

``plan.json`` in the output folder is the contract of a run: a rerun with the same arguments reads it
back (same batch size, same units), so a killed job continues exactly where it stopped instead of
re-deciding from a fresh calibration. The estimate comes from ``calibration.py`` on this machine.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import OnnxVizError
from ..files import write_json

PLAN_FILE = "plan.json"
STAGES = ("inspect", "mine", "render", "reliability", "concepts", "site")


@dataclass
class Plan:
    """Everything a microscope run will do; ``key`` is what must match for a rerun to resume it."""

    model: str
    images: str
    out: str
    layers: list  # [{"name": ..., "units": [...]}]
    n_images: int
    steps: int
    params: list  # "fft", and "maco" with --maco
    batch_size: int
    seed: int = 0
    top: int = 8
    concepts: int = 0
    concept_layers: list = field(default_factory=list)
    engine: str = "local"
    device: Optional[str] = None
    meta_opts: dict = field(default_factory=dict)
    precision: str = "fp32"  # the render's arithmetic (optvis.render); fp32 unless asked (docs/bench_render.md)
    channels_last: bool = True
    calibration: dict = field(default_factory=dict)
    estimate: dict = field(default_factory=dict)  # stage -> seconds

    KEY_FIELDS = ("model", "images", "layers", "steps", "params", "seed", "top", "concepts", "concept_layers",
                  "engine", "meta_opts", "precision", "channels_last")

    @property
    def units(self) -> int:
        return sum(len(lay["units"]) for lay in self.layers)

    @property
    def renders(self) -> int:
        return self.units * len(self.params)

    def key(self) -> dict:
        d = asdict(self)
        return {k: d[k] for k in self.KEY_FIELDS}

    def to_dict(self) -> dict:
        return dict(asdict(self), units=self.units, renders=self.renders,
                    estimate_total_seconds=round(sum(self.estimate.values()), 1))

    def write(self, folder) -> Path:
        return write_json(Path(folder) / PLAN_FILE, self.to_dict())

    @classmethod
    def read(cls, folder) -> Optional["Plan"]:
        """The plan in ``folder``, or None when there is none (or it cannot be read: then it is redone)."""
        path = Path(folder) / PLAN_FILE
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})
        except (OSError, ValueError, TypeError):
            return None

    def text(self) -> str:
        """The plan as people read it: what, how much, how long."""
        cal = self.calibration
        lines = [f"microscope plan for {self.model} -> {self.out}",
                 f"  images  {self.n_images:,} in {self.images} (top {self.top} per unit)",
                 f"  layers  {len(self.layers)}: " + ", ".join(f"{lay['name']} ({len(lay['units'])})"
                                                                for lay in self.layers[:12])
                 + (" ..." if len(self.layers) > 12 else ""),
                 f"  units   {self.units:,}, rendered {'+'.join(self.params)} at {self.steps} steps "
                 f"= {self.renders:,} renders, batch {self.batch_size} ({cal.get('batch_choice', 'given')})",
                 f"  engine  {self.engine}, device {cal.get('device', self.device or 'auto')}, {self.precision}"
                 + (", channels-last" if self.channels_last else "")]
        if self.concepts:
            lines.append(f"  concepts {self.concepts} per layer of {', '.join(self.concept_layers)}")
        if cal.get("units_per_min"):
            lines.append(f"  measured here: {cal['units_per_min']:.1f} units/min at {self.steps} steps "
                         f"(batch {self.batch_size}), mining {cal.get('images_per_s', 0):.1f} img/s")
        total = sum(self.estimate.values())
        lines.append(f"  estimate {_duration(total)}: " + ", ".join(
            f"{k} {_duration(v)}" for k, v in self.estimate.items() if v >= 0.05))
        return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def choose_layers(model, layers: Optional[str], units: Optional[str]) -> list:
    """[{"name", "units"}] of the chosen layers (default every layer with units) and units (default all).

    ``units``: "0-15" style, the same for every layer, cut at each layer's unit count."""
    from ..runs.render_jobs import parse_units

    if layers:
        names = [model.layer(n.strip()).name for n in layers.split(",") if n.strip()]
    else:
        names = [lay.name for lay in model.layers if lay.units]
    if not names:
        raise OnnxVizError(f"{model.path}: no layer with units to visualize (onnxviz inspect lists the layers)")
    wanted = parse_units(units) if units else None
    out = []
    for name in dict.fromkeys(names):
        n = int(model.layer(name).units or 0)
        if not n:
            raise OnnxVizError(f"layer {name} has no units to render (onnxviz inspect lists the layers)")
        chosen = list(range(n)) if wanted is None else [u for u in wanted if 0 <= u < n]
        if not chosen:
            raise OnnxVizError(f"--units {units}: none of these units exist in layer {name} ({n} units)")
        out.append({"name": name, "units": chosen})
    return out


def count_images(images) -> int:
    """How many images the source holds (a folder, archive or list file); bad sources say so in one line."""
    from ..mining.datasets import open_source

    n = len(open_source(images))
    if not n:
        raise OnnxVizError(f"{images}: no images found (give a folder, zip/tar archive or list file of photos)")
    return n
