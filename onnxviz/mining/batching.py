"""How many images a mining batch holds: what the maps' memory allows, not a constant 32.

A 1024 or 1600 px net keeps maps of hundreds of MB per image alive inside onnxruntime; 32 of them
do not fit and onnxruntime fails (or the machine swaps). The batch is chosen before the run from
the *peak* of the maps onnxruntime holds for one image (walking the nodes in order: a map lives
from the node that makes it to its last reader, as onnxruntime's memory planner frees it) plus
what comes back to Python (the full maps of the atlas layers: units x positions), times the batch,
against a budget (half the memory available, ``memory`` bytes or $ONNXVIZ_MEMORY_MB). When onnxruntime still runs out
of memory, the batch is halved and retried (one line says so), down to one image; a model whose
maps do not fit even one image at a time is told which of its layers do.
"""
from __future__ import annotations

import logging
import os
import re
from typing import Optional, Sequence

import numpy as np

log = logging.getLogger("onnxviz")

_OOM = re.compile(r"alloc|out of memory|memory|MemoryError", re.I)
_MB = 1 << 20


def available_memory() -> int:
    """Bytes this process may still use: MemAvailable, or the cgroup limit left if smaller."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
    except OSError:
        pass
    for limit, usage in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                         ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                          "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            cap = open(limit).read().strip()
            if cap != "max" and int(cap) < (1 << 60):
                left = int(cap) - int(open(usage).read().strip())
                avail = left if avail is None else min(avail, left)
            break
        except (OSError, ValueError):
            continue
    return avail if avail is not None else 8 << 30


def _tensor_bytes(model) -> dict:
    """tensor -> bytes per image (float32) at the model's input size, for every map with channels."""
    sizes = {}
    for lay in model.tensors:
        shape = list(lay.shape[1:])
        if any(d is None for d in shape) and lay.layout in ("NCHW", "NHWC"):
            try:
                h, w = model.map_size(lay)
                c = lay.units
                shape = [c, h, w]
            except Exception:  # noqa: BLE001 - unknown: left out of the estimate
                continue
        if shape and all(d is not None for d in shape):
            sizes[lay.tensor] = int(np.prod(shape)) * 4
    return sizes


def peak_bytes(model) -> dict:
    """tensor -> the peak of live maps (bytes per image) while onnxruntime computes up to it."""
    sizes = _tensor_bytes(model)
    nodes = list(model.proto.graph.node)
    last = {}
    for i, node in enumerate(nodes):
        for t in node.input:
            last[t] = i
    outputs = {o.name for o in model.proto.graph.output}
    live = peak = int(np.prod([d or 1 for d in model.input_shape[1:]])) * 4
    at = {}
    for i, node in enumerate(nodes):
        live += sum(sizes.get(o, 0) for o in node.output)
        peak = max(peak, live)
        for o in node.output:
            at[o] = peak
        for t in set(node.input):
            if last.get(t) == i and t not in outputs:
                live -= sizes.get(t, 0)
    return at


def per_image(model, layer_names: Sequence[str], maps: Sequence[str] = ()) -> int:
    """Bytes one image needs: the peak of live maps up to the deepest mined layer, the atlas maps."""
    peaks = peak_bytes(model)
    sizes = _tensor_bytes(model)
    tensors = [model.layer(n).tensor for n in layer_names]
    inner = max((peaks.get(t, 0) for t in tensors), default=0)
    back = sum(sizes.get(model.layer(m).tensor, 0) for m in maps)
    return inner + back


def choose_batch(model, layer_names: Sequence[str], requested: int, maps: Sequence[str] = (),
                 memory: Optional[int] = None) -> tuple:
    """(batch size, one line or "" when ``requested`` fits) for mining ``layer_names``.

    ``memory``: the budget in bytes (default: $ONNXVIZ_MEMORY_MB, else half of :func:`available_memory`).
    Raises MiningError when one image does not fit, naming the layers that do."""
    from .run import MiningError

    env = os.environ.get("ONNXVIZ_MEMORY_MB")
    budget = int(memory) if memory else int(float(env) * _MB) if env else available_memory() // 2
    need = per_image(model, layer_names, maps)
    if need <= 0 or need * requested <= budget:
        return requested, ""
    batch = budget // need
    if batch < 1:
        peaks = peak_bytes(model)
        fit = [lay.name for lay in model.layers if 0 < peaks.get(lay.tensor, 0) <= budget and lay.name not in maps]
        hint = (f"layers whose maps fit: --layers {','.join(fit[:12])}{' ...' if len(fit) > 12 else ''}"
                if fit else "no layer's maps fit; give more memory")
        raise MiningError(f"mining {model.meta.name} needs about {need // _MB} MB per image (the maps onnxruntime "
                          f"keeps alive up to the deepest mined layer, at {model.meta.input_size[0]}x"
                          f"{model.meta.input_size[1]}), more than the memory budget of {budget // _MB} MB; {hint}")
    batch = int(min(requested, batch))
    return batch, (f"mining batch {batch} instead of {requested}: about {need // _MB} MB per image at "
                   f"{model.meta.input_size[0]}x{model.meta.input_size[1]}, memory budget {budget // _MB} MB")


def out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or bool(_OOM.search(str(exc)))


class Halving:
    """Runs a StatsRunner, splitting a batch in halves when onnxruntime runs out of memory; the
    smaller size sticks for the following batches (``chunk``)."""

    def __init__(self, runner, chunk: Optional[int] = None):
        self.runner = runner
        self.chunk = chunk
        self.layers = runner.layers

    def run(self, x: np.ndarray, maps: bool = False, rows: Optional[np.ndarray] = None):
        """``rows``: batch positions whose whole statistics are wanted, for a runner with in-graph
        top-k (cut per slice like the batch)."""
        n = len(x)
        step = min(n, self.chunk or n)
        rows = np.asarray(rows if rows is not None else [], np.int64)
        while True:
            try:
                parts = [self.runner.run(x[i:i + step], maps=maps, **self._rows(rows, i, i + step))
                         for i in range(0, n, step)]
                break
            except Exception as exc:  # noqa: BLE001 - only memory failures are retried
                if step == 1 or not out_of_memory(exc):
                    raise
                step = max(1, step // 2)
                log.warning("onnxruntime ran out of memory on a mining batch of %d images; retrying %d at a time",
                            min(n, step * 2), step)
        if step < n:
            self.chunk = step
        return parts[0] if len(parts) == 1 else merge(parts, maps)

    def _rows(self, rows: np.ndarray, a: int, b: int) -> dict:
        if getattr(self.runner, "topk", None) is None:
            return {}
        return {"rows": rows[(rows >= a) & (rows < b)] - a}


def merge(parts: list, maps: bool = False):
    """One result from several runs of a StatsRunner over consecutive slices of a batch."""
    from ..backends.ort import Stats

    stats = [p[0] if maps else p for p in parts]
    first = stats[0]
    if any(getattr(p, "candidates", None) is not None for p in stats):
        out = _merge_candidates(stats)
        return (out, {k: np.concatenate([p[1][k] for p in parts]) for k in parts[0][1]}) if maps else out
    fused = {s: np.concatenate([p.fused[s] for p in stats]) for s in first.fused}
    per_layer, a = {}, 0
    for name in first.names:
        width = next(iter(first[name].values())).shape[1]
        per_layer[name] = {s: v[:, a:a + width] for s, v in fused.items()}
        a += width
    out = Stats(per_layer, fused, list(first.names))
    if not maps:
        return out
    return out, {k: np.concatenate([p[1][k] for p in parts]) for k in parts[0][1]}


def _merge_candidates(stats: list):
    """Slices of a batch, some reduced to top-k candidates (a slice may have fallen back to whole
    rows: all its rows are then its candidates), as one candidate result: the candidates of all
    slices stacked, their batch positions shifted by each slice's start."""
    from ..backends.ort import Stats

    first = next(p for p in stats if p.candidates is not None)
    cands: dict = {key: ([], [], []) for key in first.candidates}
    rows, fused, start = [], {s: [] for s in first.fused}, 0
    for p in stats:
        n = p.batch if p.candidates is not None else len(next(iter(p.fused.values())))
        for key, (vs, ws, ps) in cands.items():
            if p.candidates is not None:
                v, w, pos = p.candidates[key]
            else:
                v = p.fused[key[0]].T
                w = np.broadcast_to(np.arange(n, dtype=np.int64)[None, :], v.shape)
                pos = p.fused["argmax"].T if "argmax" in p.fused else None
            vs.append(v)
            ws.append(w + start)
            ps.append(pos)
        rows.append((p.rows if p.candidates is not None else np.arange(n)) + start)  # a superset is fine
        for s in fused:
            fused[s].append(p.fused[s])
        start += n
    cands = {key: (np.concatenate(vs, axis=1), np.concatenate(ws, axis=1),
                   None if any(x is None for x in ps) else np.concatenate(ps, axis=1))
             for key, (vs, ws, ps) in cands.items()}
    fused = {s: np.concatenate(v) for s, v in fused.items()}
    per_layer, a = {}, 0
    for name in first.names:
        width = next(iter(first[name].values())).shape[1]
        per_layer[name] = {s: v[:, a:a + width] for s, v in fused.items()}
        a += width
    return Stats(per_layer, fused, list(first.names), cands, np.concatenate(rows), start)
