"""Streaming top-k / bottom-k per unit, exact, with a defined order for ties and NaNs.

The ranking of one list (one unit, one statistic, one direction) is a total order on
(value, image index):

* ``top``: larger values first; ``bottom``: smaller values first;
* equal values: the lower image index first (so the result never depends on batch size,
  on where a run was interrupted, or on how the data was sharded);
* NaN is never ranked above a real number, in either direction: NaNs come after every real
  value (-inf and +inf included), among themselves by image index. -0.0 equals 0.0.

Each (value, index) pair is packed into one uint64 sort key: the high 32 bits are an
order-preserving encoding of the float32 value (flipped for ``top``, NaN mapped to the worst
code), the low 32 bits the image index (so at most 2**32 images per run). Smaller key = better.
The state of a list is the k best keys per unit (plus the spatial position of each), a
(units, k) array: memory is units x k, whatever the number of images. Merging two states (a
resumed run, two shards) is the same operation as adding a batch, hence exact.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

EMPTY = np.uint64(0xFFFFFFFFFFFFFFFF)  # key of an empty slot (worse than anything real)
_NAN_CODE = np.uint64(0xFFFFFFFF)
MAX_INDEX = 0xFFFFFFFE


def _code32(values: np.ndarray, largest: bool) -> np.ndarray:
    """uint32 codes: the float order (flipped for ``largest``), NaN -> the worst code, -0.0 = 0.0.

    The sign trick in uint32 (a few passes over 4-byte numbers, 3x faster than in uint64):
    negative floats -> ~bits, the others -> bits | 0x80000000; ``largest`` takes 0xFFFFFFFF - code."""
    v = values + np.float32(0.0)  # -0.0 -> 0.0
    flip = (v.view(np.int32) >> np.int32(31)).view(np.uint32)  # all ones for negatives, else 0
    flip |= np.uint32(0x80000000)
    if largest:
        flip ^= np.uint32(0xFFFFFFFF)
    code = v.view(np.uint32) ^ flip
    nan = np.isnan(values)
    if nan.any():
        code[nan] = np.uint32(_NAN_CODE)
    return code


def encode(values: np.ndarray, indices: np.ndarray, largest: bool) -> np.ndarray:
    """Sort keys (uint64) for values (..., n) float and image indices broadcastable to them."""
    values = np.asarray(values, dtype=np.float32)
    keys = _code32(values, largest).astype(np.uint64)
    keys <<= np.uint64(32)
    keys |= np.asarray(indices, dtype=np.uint64)
    return keys


def decode(keys: np.ndarray, largest: bool) -> tuple:
    """(values float32, indices int64) from sort keys; empty slots give (nan, -1)."""
    keys = np.asarray(keys, dtype=np.uint64)
    empty = keys == EMPTY
    code = (keys >> np.uint64(32)).astype(np.uint32)
    nan = code == np.uint32(_NAN_CODE)
    if largest:
        code = ~code
    flip = ~(code.view(np.int32) >> np.int32(31)).view(np.uint32)  # top bit set: 0, else all ones
    flip |= np.uint32(0x80000000)
    values = (code ^ flip).view(np.float32)
    values[nan | empty] = np.nan
    idx = (keys & np.uint64(0xFFFFFFFF)).astype(np.int64)
    idx[empty] = -1
    return values, idx


class TopK:
    """The k best (value, index, position) per unit for one statistic and one direction."""

    def __init__(self, units: int, k: int, largest: bool, keys: Optional[np.ndarray] = None,
                 positions: Optional[np.ndarray] = None):
        self.units, self.k, self.largest = int(units), int(k), bool(largest)
        self.keys = keys if keys is not None else np.full((self.units, self.k), EMPTY, np.uint64)
        self.positions = positions if positions is not None else np.full((self.units, self.k), -1, np.int64)

    def update(self, values: np.ndarray, indices: np.ndarray, positions: Optional[np.ndarray] = None) -> None:
        """Add a batch: values (B, units), indices (B,) image indices, positions (B, units) or None."""
        if self.k == 0 or len(indices) == 0:
            return
        indices = np.asarray(indices, dtype=np.int64)
        if indices.min() < 0 or indices.max() > MAX_INDEX:
            raise ValueError("image indices must be in [0, 2**32 - 2]")
        values = np.asarray(values, dtype=np.float32)
        rows, sub, enter = self._candidates(values, indices)
        if len(rows) == 0:
            return
        most = int(enter.sum(axis=0).max())
        if 2 * most >= len(indices):  # the lists are filling: most of the batch may enter
            keys = encode(sub.T, indices[None, :], self.largest)  # (rows, B)
            pos = np.asarray(positions, dtype=np.int64)[:, rows].T if positions is not None else None
        else:  # settled: only the few entries that pass the float test are encoded and merged
            r, b = np.nonzero(enter.T)  # sorted by row, then batch position
            counts = np.bincount(r, minlength=len(rows))
            slot = np.arange(len(r)) - (np.cumsum(counts) - counts)[r]
            keys = np.full((len(rows), most), EMPTY, np.uint64)
            keys[r, slot] = encode(sub[b, r], indices[b], self.largest)
            pos = None
            if positions is not None:
                pos = np.full((len(rows), most), -1, np.int64)
                pos[r, slot] = np.asarray(positions, dtype=np.int64)[b, rows[r]]
        self._merge_rows(rows, keys, pos)

    def _candidates(self, values: np.ndarray, indices: np.ndarray) -> tuple:
        """(units, their values (B, len(units)), entries): the units where some value of the batch may
        beat the k-th best, and which values may ((B, len(units)) bool). A float test, a superset of the exact
        key test (ties count when the image index is lower; units whose k-th slot is empty or NaN
        take anything). Once the lists settle, few units and few values pass: only those are
        encoded and merged, which keeps a GPU's batches from waiting on the host."""
        kth, kth_idx = decode(self.keys[:, -1], self.largest)
        with np.errstate(invalid="ignore"):  # one pass over the batch first: each unit's best value
            best = values.max(axis=0) if self.largest else values.min(axis=0)
            nan = np.isnan(best)  # NaN propagates: those units' best real value, if any
            if nan.any():
                best[nan] = (np.fmax if self.largest else np.fmin).reduce(values[:, nan], axis=0)
            rows = np.nonzero((best >= kth if self.largest else best <= kth) | np.isnan(kth))[0]
            sub = values[:, rows] if len(rows) < self.units else values
            kth, kth_idx = kth[rows], kth_idx[rows]
            better = sub > kth if self.largest else sub < kth  # (B, rows); NaN values never pass
            tie = sub == kth
        if tie.any():
            better |= tie & (indices[:, None] < kth_idx[None, :])
        empty = np.isnan(kth)
        if empty.any():
            better[:, empty] = True
        keep = better.any(axis=0)
        return (rows, sub, better) if keep.all() else (rows[keep], sub[:, keep], better[:, keep])

    def update_candidates(self, values: np.ndarray, indices: np.ndarray, positions: Optional[np.ndarray] = None) -> None:
        """Add a batch given as its candidates per unit (graph/batch_topk.py): values (units, m), their
        image indices (units, m) and positions (units, m) or None. Exact when each unit's candidates
        are the batch's m best under this order (or all of it): the rest could not have entered."""
        if self.k == 0 or values.size == 0:
            return
        indices = np.asarray(indices, dtype=np.int64)
        if indices.min() < 0 or indices.max() > MAX_INDEX:
            raise ValueError("image indices must be in [0, 2**32 - 2]")
        keys = encode(values, indices, self.largest)
        rows = np.nonzero((keys < self.keys[:, -1:]).any(axis=1))[0]  # keys are unique: "<" is exact
        if len(rows):
            whole = len(rows) == self.units
            self._merge_rows(rows, keys if whole else keys[rows],
                             None if positions is None else np.asarray(positions, np.int64)[rows])

    def merge(self, other: "TopK") -> None:
        """Fold another state (same units, same direction) into this one."""
        if other.units != self.units or other.largest != self.largest:
            raise ValueError("cannot merge top-k states of different shapes or directions")
        self._merge(other.keys, other.positions)

    def _merge(self, keys: np.ndarray, pos: np.ndarray) -> None:
        # only units where something beats the current k-th best need work: keys are unique, so "<" is exact
        rows = np.nonzero((keys < self.keys[:, -1:]).any(axis=1))[0]
        if len(rows):
            self._merge_rows(rows, keys[rows] if len(rows) < self.units else keys,
                             pos[rows] if len(rows) < self.units else pos)

    def _merge_rows(self, rows: np.ndarray, keys: np.ndarray, pos: Optional[np.ndarray]) -> None:
        """Merge keys (len(rows), m) (with positions (len(rows), m) or None: unknown) into units ``rows``."""
        whole = len(rows) == self.units
        mine = self.keys if whole else self.keys[rows]
        mine_pos = self.positions if whole else self.positions[rows]
        if pos is None and not (mine_pos >= 0).any():
            # no positions anywhere (pass 1 ranks without them): a plain sort of unique keys, no argsort
            allk = np.concatenate([mine, keys], axis=1)
            allk.sort(axis=1)
            new_keys, new_pos = allk[:, :self.k], mine_pos
        else:
            if pos is None:
                pos = np.full(keys.shape, -1, np.int64)
            if keys.shape[1] > self.k:  # cheap prefilter: the batch's own k best
                part = np.argpartition(keys, self.k - 1, axis=1)[:, :self.k]
                keys = np.take_along_axis(keys, part, 1)
                pos = np.take_along_axis(pos, part, 1)
            allk = np.concatenate([mine, keys], axis=1)
            allp = np.concatenate([mine_pos, pos], axis=1)
            order = np.argsort(allk, axis=1, kind="stable")[:, :self.k]
            new_keys, new_pos = np.take_along_axis(allk, order, 1), np.take_along_axis(allp, order, 1)
        if whole:  # in place: the states of single layers may be views of this one (see ``fuse``)
            self.keys[...], self.positions[...] = new_keys, new_pos
        else:
            self.keys[rows], self.positions[rows] = new_keys, new_pos

    def result(self) -> tuple:
        """(values (units, k) float32, indices (units, k) int64, positions (units, k) int64); -1 = empty."""
        values, idx = decode(self.keys, self.largest)
        pos = self.positions.copy()
        pos[idx < 0] = -1
        return values, idx, pos


def fuse(states: list) -> TopK:
    """One list over the units of many (same k, same direction), the given states becoming views of it.

    Mining keeps a list per (layer, statistic, direction): hundreds of small ones. Updating one
    fused list per (statistic, direction) with the layers' values side by side does the same work
    in a few large numpy calls instead of thousands of small ones; the per-layer states stay
    valid (they read and write the fused arrays) for checkpoints, results and positions.
    """
    if len({(t.k, t.largest) for t in states}) != 1:
        raise ValueError("fused lists need the same k and direction")
    whole = TopK(sum(t.units for t in states), states[0].k, states[0].largest,
                 np.concatenate([t.keys for t in states]), np.concatenate([t.positions for t in states]))
    start = 0
    for t in states:
        t.keys, t.positions = whole.keys[start:start + t.units], whole.positions[start:start + t.units]
        start += t.units
    return whole


def brute_force(values: np.ndarray, k: int, largest: bool) -> np.ndarray:
    """Reference ranking of a full (N, units) matrix: (units, min(k, N)) image indices.

    Written independently of the key encoding (a lexsort on NaN flag, value, index) so tests
    can compare the streaming result with it.
    """
    values = np.asarray(values, dtype=np.float64)
    n = values.shape[0]
    out = []
    for u in range(values.shape[1]):
        v = values[:, u]
        nan = np.isnan(v)
        primary = np.where(nan, 0.0, -v if largest else v)
        order = np.lexsort((np.arange(n), primary, nan))
        out.append(order[:k])
    return np.array(out, dtype=np.int64).reshape(values.shape[1], min(k, n))
