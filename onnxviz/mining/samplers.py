"""A run's samplers as one object: the spectrum reservoir (spectrum.py) and the atlas samples (samples.py).

Both are merge-exact by design: the spectrum keeps the images with the smallest priority drawn
from (seed, image index), and the atlas positions of an image are drawn from (seed, image index,
position). So any partition of the images (batches, Ray blocks, shards) sampled apart and merged
gives the sample of one pass in order, bit for bit. The local loop offers batches to the run's
``Samplers``; a Ray worker offers a block's batches to a ``fresh()`` copy and the driver ``fold``s
that copy into the run's; a checkpoint ``save``s what is new.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from . import atlas_samples as SM
from . import spectrum as SP
from ..errors import MiningError


@dataclass
class Samplers:
    """``spectrum``: reservoir size (0: none); ``atlas``: {layer: layout} of the atlas layers;
    ``views``: augmented views per image sampled for the atlas layers too (views.py);
    ``reservoir``: the spectrum so far; ``pending``: {layer: atlas rows} not saved yet."""

    spectrum: int
    atlas: dict
    per_image: int
    seed: int
    views: int = 0
    reservoir: Optional[SP.Reservoir] = None
    pending: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.reservoir is None:
            self.reservoir = SP.empty(self.spectrum, self.seed)

    @classmethod
    def of(cls, model, spectrum: int = 128, atlas_layers=None, per_image: int = 8, seed: int = 0,
           views: int = 0) -> Optional["Samplers"]:
        """The samplers a run asked for (None when none); atlas layers must have spatial maps."""
        names = atlas_layers.split(",") if isinstance(atlas_layers, str) else list(atlas_layers or [])
        atlas = [model.layer(n) for n in names if n]
        bad = [lay.name for lay in atlas if lay.layout not in ("NCHW", "NHWC")]
        if bad:
            raise MiningError(f"atlas layers need spatial maps; {', '.join(bad)} ha{'s' if len(bad) == 1 else 've'} none")
        if int(views or 0) < 0:
            raise MiningError("--atlas-views must be 0 or more")
        if views and not atlas:
            raise MiningError("--atlas-views needs --atlas-layers (the layers whose vectors the views add to)")
        if not spectrum and not atlas:
            return None
        return cls(int(spectrum), {lay.name: lay.layout for lay in atlas}, int(per_image), int(seed), int(views or 0))

    def settings(self) -> dict:
        """The run config's entry (checked on resume and before a merge)."""
        views = {"atlas_views": self.views} if self.views else {}  # absent when 0: older runs still resume
        return {"samplers": {"spectrum": self.spectrum, "atlas_layers": list(self.atlas),
                             "atlas_per_image": self.per_image, "seed": self.seed, **views}}

    def fresh(self) -> "Samplers":
        """The same settings, nothing sampled: what a worker fills for one block."""
        return Samplers(self.spectrum, dict(self.atlas), self.per_image, self.seed, self.views)

    def offer(self, stats: dict, maps: dict, indices: np.ndarray) -> None:
        """One batch: ``stats`` {layer: {stat: (B, units)}}, ``maps`` {atlas layer: full map} of images ``indices``."""
        rows = getattr(stats, "rows", None)  # in-graph top-k: whole rows only where ``rows`` asked for them
        if self.spectrum:
            if rows is None:
                self.reservoir = SP.update(self.reservoir, stats, indices)
            else:
                self.reservoir = SP.update(self.reservoir, stats, np.asarray(indices)[rows], offered=len(indices))
        for name, layout in self.atlas.items():
            self.pending.setdefault(name, []).extend(SM.sample(maps[name], indices, self.per_image, self.seed, layout))

    def rows(self, indices: np.ndarray) -> np.ndarray:
        """Batch positions of ``indices`` whose whole statistics the spectrum may need (the rest of a
        batch crosses to the host only as top-k candidates)."""
        return np.nonzero(SP.contenders(self.reservoir, indices))[0] if self.spectrum else np.zeros(0, np.int64)

    def offer_view(self, maps: dict, indices: np.ndarray, view: int) -> None:
        """The atlas maps of augmented view ``view`` (>= 1) of images ``indices`` (views.py)."""
        for name, layout in self.atlas.items():
            self.pending.setdefault(name, []).extend(SM.sample(maps[name], indices, self.per_image, self.seed,
                                                               layout, view))

    def fold(self, other: Optional["Samplers"]) -> None:
        """Take in the samples of other images (a block, a shard): exact, in any order."""
        if other is None:
            return
        if self.spectrum:
            self.reservoir = SP.merge(self.reservoir, other.reservoir)
        for name, rows in other.pending.items():
            self.pending.setdefault(name, []).extend(rows)

    def load(self, db) -> None:
        """Resume: the reservoir saved by the last checkpoint (atlas rows are in the file already)."""
        self.reservoir = SP.load(db) or self.reservoir

    def save(self, db) -> None:
        """Write the reservoir and the new atlas rows (inside the checkpoint transaction)."""
        if self.spectrum:
            SP.save(db, self.reservoir)
        for name, rows in self.pending.items():
            SM.save(db, name, rows)
        self.pending.clear()
