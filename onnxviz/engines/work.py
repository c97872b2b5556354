"""Units of work that an engine hands to its workers, free of any engine (testable without Ray).

A mining run is cut into *blocks*: consecutive slices of the shard's image indices. A worker
decodes a block, runs the statistics session over it in batches and returns the block's own
partial top/bottom-k state (units x k keys per list, a few MB at most) and its spectrum and atlas
samples. Because the top-k merge is exact and order-free (see mining/topk.py) and so are the
samplers' (mining/samplers.py), folding the blocks' results into the run's in any order gives
the same result as one process reading the images in order; the run's store records which
blocks are folded in, so a resumed run skips exactly those.

A render job is a fixed chunk of a layer's units (the same chunks the local loop uses, so each
picture is the same whichever engine made it); a worker renders it and returns the pictures.
"""
from __future__ import annotations

import concurrent.futures as cf
import pickle
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from ..mining.datasets import Decoded, KeyReader, decode_bytes
from ..mining.mine import fuse_lists, in_graph, update_lists
from ..mining.run import DIRS, STATS
from ..mining.samplers import Samplers
from ..mining.views import input_axes, offer_views
from ..mining.topk import TopK



@dataclass
class ModelSpec:
    """What a worker needs to open the same model: its file (or bytes) and the preprocessing used;
    ``pixels``: blocks travel as uint8 pixels, preprocessed in the session's graph (pixelfeed.py)."""

    path: Optional[str]
    proto: Optional[bytes]
    meta: dict
    pixels: bool = False

    @classmethod
    def of(cls, model, pixels: bool = False) -> "ModelSpec":
        if model.path is not None:
            return cls(str(model.path), None, model.meta.to_dict(), pixels)
        return cls(None, model.proto.SerializeToString(), model.meta.to_dict(), pixels)

    def load(self):
        import onnx

        from ..preprocessing.meta import ModelMeta
        from ..model import load

        meta = ModelMeta.from_dict(self.meta)
        if self.path is not None:
            return load(self.path, meta=meta)
        return load_proto(onnx.load_from_string(self.proto), meta)


def load_proto(proto, meta):
    """A Model from an in-memory proto (a temporary file, since Model reads files)."""
    import tempfile
    from pathlib import Path

    import onnx

    from ..model import load

    tmp = Path(tempfile.mkdtemp(prefix="onnxviz-worker-")) / "model.onnx"
    onnx.save(proto, str(tmp))
    return load(tmp, meta=meta)


def plan_blocks(indices: Sequence[int], block_size: int) -> list:
    """Consecutive slices of ``indices``, block i = indices[i*size:(i+1)*size]."""
    indices = list(indices)
    return [indices[i:i + block_size] for i in range(0, len(indices), block_size)]


def decode_block(reader: KeyReader, meta, indices: Sequence[int], keys: Sequence[str], threads: int = 1,
                 pixels: bool = False) -> list:
    """Read and decode one block's images -> list of Decoded (skips carry their reason); ``pixels``:
    stop at uint8 pixels (``Decoded.pixels``), a quarter of the bytes to send to the session."""

    def one(pair):
        index, key = pair
        try:
            data = reader.read(key)
        except Exception as exc:  # noqa: BLE001 - ImageError and friends: a skip, never a crash
            return Decoded(int(index), None, None, str(exc).splitlines()[0][:300])
        return decode_bytes(int(index), data, meta, pixels)

    pairs = list(zip(indices, keys))
    if threads <= 1:
        return [one(p) for p in pairs]
    with cf.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, pairs))


def pack_decoded(decoded: list, keys: Sequence[str]) -> dict:
    """A block's decoded images as plain arrays (what travels between stages)."""
    good = [d for d in decoded if d.x is not None or d.pixels is not None]
    x = np.stack([d.x if d.pixels is None else d.pixels for d in good]) if good else np.zeros((0,), np.float32)
    rows = [(d.index, k, d.size[0] if d.size else None, d.size[1] if d.size else None, d.error or None)
            for d, k in zip(decoded, keys)]
    return {"x": x, "good": np.array([d.index for d in good], np.int64), "rows": pickle.dumps(rows)}


@dataclass
class Partial:
    """One block's result: its top-k states {(layer, stat, dir): (keys, positions)} and its samples."""

    topk: dict
    samplers: Optional[Samplers] = None


class BlockMiner:
    """One statistics session; turns a decoded block into its partial top-k state and samples (or argmax)."""

    def __init__(self, spec: ModelSpec, layers: Sequence[str], top: int, bottom: int, batch_size: int,
                 threads: Optional[int] = None, providers=None, positions: bool = False,
                 samplers: Optional[Samplers] = None, inline: bool = False, topk: str = "auto"):
        """``positions``: this miner computes pass 2's argmax; ``inline``: pass 1 ranks with the
        positions too (see ``mining.mine``'s ``positions``); ``topk``: where each batch's top-k
        candidates are found (``mining.mine``'s ``topk``: in the graph, only they leave onnxruntime)."""
        self.model = spec.load()
        self.top, self.bottom, self.batch_size = top, bottom, batch_size
        self.positions = positions
        self.samplers = None if positions else samplers
        self.runner = self.model.stats_runner(list(layers), providers=providers, threads=threads,
                                              stats=("argmax",) if positions else STATS + (("argmax",) if inline else ()),
                                              maps=list(self.samplers.atlas) if self.samplers else [],
                                              pixels=spec.pixels,
                                              topk=(top, bottom) if not positions and in_graph(topk, providers, batch_size)
                                              else None)
        self.names = [lay.name for lay in self.runner.layers]
        self.axes = input_axes(self.model.meta, spec.pixels)  # of the batches, for the augmented views
        self.units = {lay.name: int(lay.units) for lay in self.runner.layers}

    def mine(self, x: np.ndarray, good: np.ndarray) -> dict:
        """{(layer, stat, dir): (keys, positions)} of the images ``good`` (model input ``x``)."""
        return self.mine_block(x, good).topk

    def mine_block(self, x: np.ndarray, good: np.ndarray) -> Partial:
        """The :class:`Partial` of the images ``good`` (model input ``x``), in batches as the local loop."""
        states = {(n, s, d): TopK(self.units[n], self.top if d == "top" else self.bottom, d == "top")
                  for n in self.names for s in STATS for d in DIRS}
        fused = fuse_lists(states, self.names)  # one list per (stat, dir), as the local loop
        samplers = self.samplers.fresh() if self.samplers else None
        for i in range(0, len(good), self.batch_size):
            idx = good[i:i + self.batch_size]
            rows = samplers.rows(idx) if samplers is not None else None  # the spectrum's whole rows
            out, maps = self.runner.run(x[i:i + self.batch_size], maps=True, rows=rows)
            if samplers is not None:
                samplers.offer(out, maps, idx)
                offer_views(samplers, self.runner.run, x[i:i + self.batch_size], idx, self.axes)
            update_lists(fused, out, self.names, idx)
        return Partial({key: (t.keys, t.positions) for key, t in states.items()}, samplers)

    def argmax(self, x: np.ndarray) -> dict:
        """{layer: (N, units) flat spatial argmax} of model input ``x``."""
        parts = [self.runner.run(x[i:i + self.batch_size]) for i in range(0, len(x), self.batch_size)]
        return {n: np.concatenate([p[n]["argmax"] for p in parts]) for n in self.names}


def fold(states: dict, partial: dict) -> None:
    """Merge a block's partial state into the run's (exact; order-free)."""
    for key, (keys, pos) in partial.items():
        t = states[key]
        t.merge(TopK(t.units, t.k, t.largest, keys, pos))


def fold_block(states: dict, samplers: Optional[Samplers], partial: Partial) -> None:
    """Merge a block's :class:`Partial` into the run's states and samplers (exact; order-free)."""
    fold(states, partial.topk)
    if samplers is not None:
        samplers.fold(partial.samplers)


class UnitRenderer:
    """Renders chunks of one layer's units (one torch view, reused)."""

    def __init__(self, spec: ModelSpec, layer: str, neuron: bool, render_kw: dict, threads: Optional[int] = None):
        if threads:
            import torch

            torch.set_num_threads(threads)
        from ..optvis.forward import make_view, resolve_device

        self.model = spec.load()
        self.layer, self.neuron, self.render_kw = layer, neuron, dict(render_kw)
        self.view = make_view(self.model, [layer], resolve_device(self.render_kw.get("device")))

    def render(self, units: Sequence[int]) -> tuple:
        """(images (n, 3, H, W) float32, record, importance (n, H, W) or None) of the units, image i
        maximizing units[i]; importance: the accumulated |gradient| per pixel (MACO's map)."""
        from ..optvis.recipes import render_layer

        (_, result), = render_layer(self.model, self.layer, list(units), batch_size=len(units), neuron=self.neuron,
                                    view=self.view, **self.render_kw)
        imp = None if result.importance is None else np.asarray(result.importance, np.float32)
        return np.asarray(result.images, np.float32), result.record, imp
