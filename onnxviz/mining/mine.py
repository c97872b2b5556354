"""The mining loop: images -> per-channel statistics (in-graph) -> streaming top/bottom-k -> store.

Speed by design: the model is edited once (``Model.stats_runner``) so that onnxruntime returns
per-channel mean and max of every mined layer (the argmax positions of the examples come from a
second pass over the example images only, see ``fill_positions``) — kilobytes per image instead of the
megabytes of full activation maps; a thread pool decodes and resizes the next batches while
onnxruntime runs the current one; the top-k update is a vectorised merge of uint64 keys.

Exactness: ties go to the lower image index and NaNs rank last (see topk.py), so the result does
not depend on batch size, interruptions or sharding. An interrupted run (Ctrl-C, SIGTERM: the
current batch finishes and is saved; kill -9: the work since the last checkpoint is redone)
resumes where it stopped when the same command is run again, and ends identical to a run that
was never interrupted.
"""
from __future__ import annotations

import concurrent.futures as cf
import hashlib
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import OnnxVizError
from ..progress import bar as progress_bar
from . import fields as C
from . import samples as SM
from . import spectrum as SP
from .datasets import ImageSource, decode_batches, open_source, parse_shard
from .store import FILENAME, Store
from .topk import TopK, fuse

log = logging.getLogger("onnxviz")
STATS = ("mean", "max")
DIRS = ("top", "bottom")


class MiningError(OnnxVizError):
    """A mining run that cannot start or go on (mismatched resume, bad shard set, ...)."""


@dataclass
class Summary:
    """What a run did (also stored in the store's meta table as 'summary')."""

    out: str
    images: int = 0  # read and mined, in total (all sessions of this run)
    skipped: int = 0  # unreadable files, in total
    seconds: float = 0.0  # this session
    processed_now: int = 0  # items handled in this session
    complete: bool = False
    resumed_from: int = 0
    skipped_files: list = field(default_factory=list)  # (key, reason), first 20

    @property
    def throughput(self) -> float:
        return self.processed_now / self.seconds if self.seconds > 0 else 0.0

    def text(self) -> str:
        state = "complete" if self.complete else "interrupted (run the same command again to resume)"
        lines = [f"mining {state}: {self.images} images mined, {self.skipped} skipped; this session "
                 f"{self.processed_now} images in {self.seconds:.1f} s ({self.throughput:.1f} img/s)"
                 + (f", resumed after {self.resumed_from}" if self.resumed_from else ""),
                 f"results: {self.out}"]
        for key, why in self.skipped_files:
            lines.append(f"  skipped {key}: {why}")
        if self.skipped > len(self.skipped_files):
            lines.append(f"  ... and {self.skipped - len(self.skipped_files)} more (see the images table)")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"images": self.images, "skipped": self.skipped, "seconds": self.seconds,
                "processed_now": self.processed_now, "throughput": self.throughput, "complete": self.complete}


def mining_dir(run_dir) -> Path:
    return Path(run_dir) / "mining"


def _file_hash(model) -> str:
    if model.path is not None and Path(model.path).is_file():
        h = hashlib.sha256()
        with open(model.path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()[:16]
    return hashlib.sha256(model.proto.SerializeToString()).hexdigest()[:16]


def layer_records(model, layers: list) -> list:
    """Per layer: name, units, spatial height/width at the model's input size, receptive field."""
    fields = C.receptive_fields(model.proto, model.input_name)
    recs = []
    for lay in layers:
        if lay.layout in ("NCHW", "NHWC"):
            hh, ww = model.map_size(lay)  # probed at the mining input size when the graph leaves it open
        elif lay.layout == "NLC" and getattr(lay, "grid", None):
            hh, ww = lay.grid  # patch tokens as a map; a token's crop is the patch it covers
        elif lay.layout == "NLC":
            hh, ww = 1, lay.shape[1]
        else:
            hh, ww = None, None
        f = fields.get(lay.tensor) if lay.layout in ("NCHW", "NHWC") else None
        if getattr(lay, "grid", None) and lay.layout == "NLC":
            f = fields.get(lay.patch_tensor)
        recs.append({"name": lay.name, "units": int(lay.units), "height": hh, "width": ww, "layout": lay.layout,
                     "field": [[f[0].size, f[0].jump, f[0].start], [f[1].size, f[1].jump, f[1].start]] if f else None})
    return recs


class _Stopper:
    """First Ctrl-C / SIGTERM: finish the batch, save, stop. Second: stop at once."""

    def __init__(self):
        self.stop = False
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    self._old[sig] = signal.signal(sig, self._handle)
                except (ValueError, OSError):
                    pass
        return self

    def _handle(self, signum, frame):
        if self.stop:
            raise KeyboardInterrupt
        self.stop = True
        print("\nonnxviz: stopping after this batch and saving (press Ctrl-C again to stop at once)",
              file=sys.stderr)

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def mine(model, source, out, layers=None, top: int = 16, bottom: int = 16, batch_size: int = 32,
         workers: Optional[int] = None, threads: Optional[int] = None, providers=None, shard=None,
         limit: Optional[int] = None, overwrite: bool = False, progress: bool = True,
         stop_after: Optional[int] = None, checkpoint_seconds: float = 20.0, thumbs: bool = True,
         command: str = "", spectrum: int = 128, atlas_layers=None, atlas_per_image: int = 8,
         seed: int = 0) -> Summary:
    """Mine dataset examples of ``layers`` (default all of ``model.layers``) over ``source``.

    model: path or onnxviz Model; source: folder / zip / tar / list file or an ImageSource;
    out: the run directory (results go to ``out/mining/``). ``top``/``bottom``: k per list.
    ``shard``: "i/n" or (i, n): mine every n-th image starting at i (merge with ``merge_runs``).
    ``limit``: only the first ``limit`` images of the shard. ``stop_after``: stop (as if
    interrupted) after that many batches — for tests and demos. ``spectrum``: images in the
    uniform sample behind every unit's spectrum of examples (0: none; see spectrum.py).
    ``atlas_layers``: layers whose activation vectors are sampled at ``atlas_per_image`` random
    positions per image for ``onnxviz atlas`` (samples.py). ``seed``: of both samplers. Returns a :class:`Summary`;
    calling again with the same arguments resumes an unfinished run.
    """
    from .. import load

    t_start = time.perf_counter()
    if isinstance(model, (str, os.PathLike)):
        model = load(model)
    src = source if isinstance(source, ImageSource) else open_source(source)
    if batch_size < 1:
        raise MiningError("--batch-size must be at least 1")
    atlas = [model.layer(n) for n in (atlas_layers.split(",") if isinstance(atlas_layers, str) else atlas_layers or [])]
    bad = [lay.name for lay in atlas if lay.layout not in ("NCHW", "NHWC")]
    if bad:
        raise MiningError(f"atlas layers need spatial maps; {', '.join(bad)} ha{'s' if len(bad) == 1 else 've'} none")
    samplers = None
    if spectrum or atlas:
        samplers = {"samplers": {"spectrum": int(spectrum), "atlas_layers": [lay.name for lay in atlas],
                                 "atlas_per_image": int(atlas_per_image), "seed": int(seed)}}
    store, records, states, indices = open_run(model, src, out, layers, top, bottom, shard, limit, overwrite,
                                               command, extra=samplers)
    try:
        done = int(store.get("done", 0))
        summary = Summary(out=str(mining_dir(out)), resumed_from=done)
        if store.get("complete"):
            return completed(store, summary, t_start)
        todo = indices[done:]
        box = {"reservoir": SP.load(store.db) or SP.empty(spectrum, seed), "samples": {}}

        def save_samplers(db):
            if spectrum:
                SP.save(db, box["reservoir"])
            for name, rows in box["samples"].items():
                SM.save(db, name, rows)
            box["samples"].clear()

        def absorb(stats, maps, idx):
            """Everything a batch's statistics go into; runs in a thread while the next batch infers."""
            if spectrum:
                box["reservoir"] = SP.update(box["reservoir"], stats, idx)
            for lay in atlas:
                box["samples"].setdefault(lay.name, []).extend(
                    SM.sample(maps[lay.name], idx, atlas_per_image, seed, lay.layout))
            update_lists(fused, stats, names, idx)

        # pass 1 ranks by mean and max only: GlobalAveragePool/GlobalMaxPool stay in onnxruntime's
        # blocked layout, while an in-graph ArgMax would force a reorder of every full map
        if workers is None:
            workers = max(1, min(4, os.cpu_count() or 2))  # 2 decoders on 2 cores: measured faster than 1
        runner = model.stats_runner([r["name"] for r in records], providers=providers, threads=threads,
                                    stats=STATS, maps=[lay.name for lay in atlas], spin=False)
        names = [lay.name for lay in runner.layers]
        fused = fuse_lists(states, names)
        bar = progress_bar(len(indices), "mining", "img", enabled=progress, initial=done, smoothing=0.1)
        pending_rows: list = []
        last_save = time.perf_counter()
        n_batches = 0
        processed = 0
        t_loop = time.perf_counter()
        with _Stopper() as stopper, cf.ThreadPoolExecutor(1, thread_name_prefix="onnxviz-topk") as post:
            busy = None  # the previous batch's absorb (one at a time, in order)
            for batch, decoded in decode_batches(src, todo, model.meta, batch_size, workers):
                good = [d for d in decoded if d.x is not None]
                if good:
                    stats, maps = runner.run(batch, maps=True)
                    idx = np.array([d.index for d in good], np.int64)
                    if busy is not None:
                        busy.result()
                    busy = post.submit(absorb, stats, maps, idx)
                for d in decoded:
                    pending_rows.append((d.index, src.key(d.index), d.size[0] if d.size else None,
                                         d.size[1] if d.size else None, d.error or None))
                    if d.error:
                        log.info("skipped %s: %s", src.key(d.index), d.error)
                done += len(decoded)
                processed += len(decoded)
                n_batches += 1
                bar.update(len(decoded))
                bad = sum(1 for r in pending_rows if r[4])
                if bad:
                    bar.set_postfix_str(f"skipped {bad}+", refresh=False)
                stop = stopper.stop or (stop_after is not None and n_batches >= stop_after)
                if stop or time.perf_counter() - last_save > checkpoint_seconds:
                    busy = busy.result() if busy is not None else None
                    store.checkpoint(states, pending_rows, done, save_samplers)
                    pending_rows, last_save = [], time.perf_counter()
                if stop:
                    break
            busy = busy.result() if busy is not None else None
            store.checkpoint(states, pending_rows, done, save_samplers)
        bar.close()
        summary.seconds = time.perf_counter() - t_loop
        summary.processed_now = processed
        if done >= len(indices) and not stopper.stop:
            fill_positions(model, src, states, names, batch_size, workers, providers, threads)
            summary.complete = True
        finalize(store, states, records, summary)
    finally:
        store.close()
    if summary.complete and thumbs:
        _write_thumbnails(out)
    return summary


def fuse_lists(states: dict, names: list) -> dict:
    """{(stat, dir): one TopK over the units of all ``names``}; the per-layer states become views of it."""
    return {(stat, d): fuse([states[(name, stat, d)] for name in names]) for stat in STATS for d in DIRS}


def update_lists(fused: dict, stats: dict, names: list, idx: np.ndarray) -> None:
    """Add one batch of {layer: {stat: (B, units)}} to the fused lists (layers side by side)."""
    for stat in STATS:
        values = np.concatenate([stats[name][stat] for name in names], axis=1)
        pos = [stats[name].get("argmax") for name in names]
        pos = np.concatenate(pos, axis=1) if all(p is not None for p in pos) else None
        for d in DIRS:
            fused[(stat, d)].update(values, idx, pos)


def open_run(model, src: ImageSource, out, layers, top: int, bottom: int, shard, limit, overwrite: bool,
             command: str, extra: Optional[dict] = None) -> tuple:
    """Open (or resume) the store of a run: (store, layer records, top-k states, this shard's indices).

    Shared by every engine, so a local and a Ray run write the same file. ``extra``: settings
    that must match on resume besides the data ones (the Ray engine's block size).
    """
    si, sn = shard if isinstance(shard, tuple) else parse_shard(shard)
    chosen = [lay for lay in model.resolve(layers) if lay.units]
    if not chosen:
        raise MiningError("no layers with channels to mine")
    indices = list(range(si, len(src), sn))
    if limit is not None:
        indices = indices[:limit]
    records = layer_records(model, chosen)
    config = {"model": str(Path(model.path).resolve()) if model.path else model.meta.name,
              "model_hash": _file_hash(model), "source": _spec(src), "source_kind": src.kind,
              "source_fingerprint": src.fingerprint(), "items": len(src), "shard": [si, sn], "limit": limit,
              "layers": [r["name"] for r in records], "top": int(top), "bottom": int(bottom),
              "preprocessing": model.meta.to_dict() | {"labels": None}} | (extra or {})
    path = mining_dir(out) / FILENAME
    if overwrite and path.exists():
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
    store = Store(path)
    try:
        old = store.get("config")
        if old is not None and old != config:
            diff = sorted(k for k in set(config) | set(old) if old.get(k) != config.get(k))
            raise MiningError(f"{path} holds a run with other settings ({', '.join(diff)} differ); "
                              "use another --out, or --overwrite to start over")
        if old is None:
            with store.db:
                store.put("config", config)
                store.put("command", command)
                store.set_layers(records)
                store.put("done", 0)
        units = {r["name"]: r["units"] for r in records}
        states = store.load_state(units)
        for r in records:
            for stat in STATS:
                for d, k in (("top", top), ("bottom", bottom)):
                    states.setdefault((r["name"], stat, d), TopK(r["units"], k, d == "top"))
    except BaseException:
        store.close()
        raise
    return store, records, states, indices


def completed(store: Store, summary: Summary, t_start: float) -> Summary:
    """The summary of a run that was already complete."""
    summary.images, summary.skipped = store.counts()
    summary.complete = True
    summary.seconds = time.perf_counter() - t_start
    summary.skipped_files = [(k, e) for _, k, e in store.skipped()[:20]]
    return summary


def finalize(store: Store, states: dict, records: list, summary: Summary) -> None:
    """Write the final state and examples table (when ``summary.complete``) and the summary."""
    if summary.complete:
        with store.db:
            store.save_state(states)
    _end_run(store, summary, states, {r["name"]: r["width"] for r in records})


def _end_run(store: Store, summary: Summary, states: dict, widths: dict) -> None:
    """The end of a mining session (and of a merge): the examples table when the run is complete,
    the counts, the summary, the complete flag."""
    if summary.complete:
        store.write_examples(states, widths)
    summary.images, summary.skipped = store.counts()
    summary.skipped_files = [(k, e) for _, k, e in store.skipped()[:20]]
    with store.db:
        store.put("summary", summary.to_dict())
        if summary.complete:
            store.put("complete", True)


def _write_thumbnails(out) -> None:
    """Thumbnails of every example image, so the run directory is self-contained."""
    from .results import open_results

    r = open_results(out)
    try:
        r.write_thumbnails()
    finally:
        r.close()


def wanted_images(states: dict) -> list:
    """The images in some list (sorted): those whose argmax positions pass 2 computes."""
    return sorted({int(i) for t in states.values() for i in t.result()[1].ravel() if i >= 0})


def set_positions(states: dict, good: list, argmax: dict) -> None:
    """Fill the positions of the examples among images ``good`` from {layer: (len(good), units) argmax}."""
    row = {idx: r for r, idx in enumerate(good)}
    for (name, _stat, _dir), t in states.items():
        idx = t.result()[1]
        hit = np.isin(idx, good)
        if not hit.any():
            continue
        units, slots = np.nonzero(hit)
        rows = np.array([row[int(i)] for i in idx[units, slots]], np.int64)
        t.positions[units, slots] = argmax[name][rows, units]


def fill_positions(model, src: ImageSource, states: dict, names: list, batch_size: int, workers: int,
                   providers=None, threads=None) -> int:
    """Pass 2: the spatial argmax of each example, computed only for the images in some list.

    Positions are needed for the examples alone (their crops), so they are computed after the
    ranking, on at most units x 2k images however large the dataset. Returns how many images.
    """
    wanted = wanted_images(states)
    if not wanted:
        return 0
    runner = model.stats_runner(names, providers=providers, threads=threads, stats=("argmax",))
    for batch, decoded in decode_batches(src, wanted, model.meta, batch_size, workers):
        good = [d.index for d in decoded if d.x is not None]
        if not good:
            continue
        out = runner.run(batch)
        set_positions(states, good, {name: out[name]["argmax"] for name in names})
    return len(wanted)


def _spec(src: ImageSource) -> str:
    try:
        return str(Path(src.spec).resolve())
    except OSError:
        return src.spec
