"""Every unit's spectrum of examples: a uniform sample of images with each unit's activation on them.

Top-k and bottom-k give a unit's extremes; the spectrum shows the whole range (1%, 25%, 50%, 75%,
99% and anything between) from the same single mining pass. The sample is one *priority
reservoir* shared by every unit: each image gets a random priority from a counter-based
generator keyed by (seed, image index) (splitmix64: the same draw whatever the batch size, order,
interruption or shard), and the ``size`` images with the smallest priorities are kept with the
per-channel statistics of every mined layer. A uniform sample of images is a uniform sample of
each unit's values, so one reservoir serves all units (Lucid/Microscope-sized layers cost
size x units floats per layer, nothing per image).

Exact where cheap: when the dataset has no more images than the reservoir, the sample is the
whole dataset and the quantiles are exact. Otherwise they are sample quantiles, and each carries
its error as a rank: with probability 95% every sample quantile q lies within q +- eps of the
true distribution (Dvoretzky-Kiefer-Wolfowitz: eps = sqrt(ln(2 / 0.05) / (2 n))).

``update`` and ``merge`` are pure functions over plain arrays, so the local mining loop, a Ray
actor or a shard merge all call the same thing:

    state = empty(size=128, seed=0)
    state = update(state, {"block_7": {"mean": (B, C) array, ...}, ...}, indices)   # per batch
    state = merge(a, b)                                                            # shards
"""
from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

QUANTILES = (0.01, 0.25, 0.5, 0.75, 0.99)
EMPTY = np.uint64(np.iinfo(np.uint64).max)
SCHEMA = "CREATE TABLE IF NOT EXISTS spectrum (layer TEXT, stat TEXT, data BLOB, PRIMARY KEY (layer, stat));"


def priority(seed: int, indices: np.ndarray) -> np.ndarray:
    """A uniform uint64 per image index, from (seed, index) alone (splitmix64: a counter-based generator)."""
    with np.errstate(over="ignore"):
        z = np.asarray(indices, np.uint64) + np.uint64(seed & 0xFFFFFFFF) * np.uint64(0x9E3779B97F4A7C15)
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return np.minimum(z, EMPTY - np.uint64(1))


@dataclass
class Reservoir:
    """``prio`` (size,) uint64 (EMPTY where free), ``index`` (size,) image indices (-1 where free),
    ``values`` {(layer, stat): (size, units) float32}, ``seen``: images offered so far."""

    size: int
    seed: int
    prio: np.ndarray
    index: np.ndarray
    values: dict = field(default_factory=dict)
    seen: int = 0

    @property
    def count(self) -> int:
        return int((self.index >= 0).sum())


def empty(size: int, seed: int = 0) -> Reservoir:
    return Reservoir(int(size), int(seed), np.full(size, EMPTY, np.uint64), np.full(size, -1, np.int64), {}, 0)


def _select(state: Reservoir, prio: np.ndarray, index: np.ndarray, values: dict, seen: int) -> Reservoir:
    all_prio = np.concatenate([state.prio, prio])
    all_index = np.concatenate([state.index, index])
    order = np.lexsort((all_index, all_prio))[:state.size]  # smallest priority, ties by index
    out = {}
    for key in set(state.values) | set(values):
        n = len(state.prio)
        new = values.get(key)
        old = state.values.get(key)
        units = (new if new is not None else old).shape[1]
        old = old if old is not None else np.full((n, units), np.nan, np.float32)
        new = new if new is not None else np.full((len(prio), units), np.nan, np.float32)
        out[key] = np.concatenate([old, np.asarray(new, np.float32)])[order]
    return Reservoir(state.size, state.seed, all_prio[order], all_index[order], out, seen)


def contenders(state: Reservoir, indices: np.ndarray) -> np.ndarray:
    """Bool (B,): which images ``indices`` may enter the reservoir (all while it is not full). Known
    before inference, from the indices alone: mining asks the session for those rows only."""
    indices = np.asarray(indices, np.int64)
    if state.size == 0:
        return np.zeros(len(indices), bool)
    if state.count < state.size:
        return np.ones(len(indices), bool)
    return priority(state.seed, indices) < state.prio.max()


def update(state: Reservoir, stats: dict, indices: np.ndarray, offered: Optional[int] = None) -> Reservoir:
    """Offer a batch: ``stats`` {layer: {stat: (B, units)}} for images ``indices`` (B,). Pure: returns
    the new state (the old one is not modified). ``offered``: how many images the batch had, when
    ``indices`` are only its rows that ``contenders`` (on this state or an earlier one) let through."""
    indices = np.asarray(indices, np.int64)
    seen = state.seen + (len(indices) if offered is None else int(offered))
    keep = contenders(state, indices)
    if not keep.any():
        return Reservoir(state.size, state.seed, state.prio, state.index, state.values, seen)
    values = {(layer, stat): np.asarray(v, np.float32)[keep] for layer, s in stats.items() for stat, v in s.items()
              if stat in ("mean", "max")}
    return _select(state, priority(state.seed, indices)[keep], indices[keep], values, seen)


def merge(a: Reservoir, b: Reservoir) -> Reservoir:
    """Two reservoirs of disjoint images (shards, same seed and size) -> the reservoir of their union."""
    if a.seed != b.seed or a.size != b.size:
        raise ValueError("cannot merge spectrum samples of different seeds or sizes")
    used = b.index >= 0
    return _select(a, b.prio[used], b.index[used], {k: v[used] for k, v in b.values.items()}, a.seen + b.seen)


def rank_error(n: int, confidence: float = 0.95) -> float:
    """DKW bound: every sample quantile is within this many quantile units of the truth, w.p. confidence."""
    return math.sqrt(math.log(2 / (1 - confidence)) / (2 * n)) if n else 1.0


def quantile_examples(state: Reservoir, layer: str, unit: int, stat: str = "mean", quantiles=QUANTILES) -> list:
    """[{quantile, value, index, rank, exact, rank_error}] of one unit, from most negative to most positive."""
    vals = state.values.get((layer, stat))
    if vals is None:
        return []
    used = np.nonzero((state.index >= 0) & ~np.isnan(vals[:, unit]))[0]
    if not len(used):
        return []
    v = vals[used, unit]
    order = used[np.lexsort((state.index[used], v))]
    n = len(order)
    exact = state.seen <= state.size
    err = 0.0 if exact else rank_error(n)
    out = []
    for q in quantiles:
        r = min(n - 1, max(0, int(round(q * (n - 1)))))
        i = order[r]
        out.append({"quantile": float(q), "value": float(vals[i, unit]), "index": int(state.index[i]), "rank": r,
                    "sample": n, "exact": exact, "rank_error": err})
    return out


# ---------------------------------------------------------------------- storage (the run's SQLite file)
def _blob(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _array(b: bytes) -> np.ndarray:
    return np.load(io.BytesIO(b), allow_pickle=False)


def save(db, state: Reservoir) -> None:
    """Write the reservoir into the run's SQLite connection (call inside the checkpoint transaction)."""
    db.execute(SCHEMA)
    db.execute("DELETE FROM spectrum")
    head = {"size": state.size, "seed": state.seed, "seen": state.seen}
    rows = [("", "__head__", json.dumps(head).encode()), ("", "__prio__", _blob(state.prio)),
            ("", "__index__", _blob(state.index))]
    rows += [(layer, stat, _blob(v.astype(np.float32))) for (layer, stat), v in state.values.items()]
    db.executemany("INSERT INTO spectrum VALUES (?,?,?)", rows)


def load(db):
    """The reservoir stored in a run, or None when the run has none."""
    try:
        rows = db.execute("SELECT layer, stat, data FROM spectrum").fetchall()
    except Exception:  # noqa: BLE001 - an older run without the table
        return None
    if not rows:
        return None
    parts = {(layer, stat): data for layer, stat, data in rows}
    head = json.loads(parts.pop(("", "__head__")).decode())
    prio, index = _array(parts.pop(("", "__prio__"))), _array(parts.pop(("", "__index__")))
    return Reservoir(head["size"], head["seed"], prio, index, {k: _array(v) for k, v in parts.items()}, head["seen"])
