"""The start and the end of a mining run, shared by every engine (local, Ray) and by the shard merge.

A run is its store (store.py) plus what is folded into it: the top-k states and the samplers.
``open_run`` opens or resumes one (the settings check that makes resuming safe), the engine
feeds it images and calls ``Run.checkpoint`` now and then, and ``Run.finish`` ends it the same
way whoever mined: pass 2 (argmax positions of the examples that pass 1 left without one) when
every image is in, the final state and examples table, the summary, the store closed, thumbnails
of the example images.
"""
from __future__ import annotations

import contextlib
import hashlib
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import numpy as np

from ..errors import MiningError
from ..layers import receptive_fields as C
from ..runs.layout import RunDir
from .datasets import ImageSource, parse_shard
from .store import FILENAME, Store
from .topk import TopK

if TYPE_CHECKING:
    from .samplers import Samplers

STATS = ("mean", "max")
DIRS = ("top", "bottom")


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
    stages: dict = field(default_factory=dict)  # seconds of this session per stage (see Clock)

    @property
    def throughput(self) -> float:
        return self.processed_now / self.seconds if self.seconds > 0 else 0.0

    def text(self) -> str:
        state = "complete" if self.complete else "interrupted (run the same command again to resume)"
        lines = [f"mining {state}: {self.images} images mined, {self.skipped} skipped; this session "
                 f"{self.processed_now} images in {self.seconds:.1f} s ({self.throughput:.1f} img/s)"
                 + (f", resumed after {self.resumed_from}" if self.resumed_from else ""),
                 f"results: {self.out}"]
        if self.stages:
            lines.append("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in self.stages.items()))
        for key, why in self.skipped_files:
            lines.append(f"  skipped {key}: {why}")
        if self.skipped > len(self.skipped_files):
            lines.append(f"  ... and {self.skipped - len(self.skipped_files)} more (see the images table)")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"images": self.images, "skipped": self.skipped, "seconds": self.seconds,
                "processed_now": self.processed_now, "throughput": self.throughput, "complete": self.complete,
                "stages": self.stages}


class Clock(dict):
    """Seconds per stage of a run: where the time goes.

    The loop's thread waits for "decoded batches" (the decoders, plus stacking the batch) and
    for "inference and top-k" (the pipeline behind it, when two batches are already in it); the
    pipeline's threads are busy in "inference" (the session) and "top-k" (the lists and samplers);
    then "checkpoints", "pass 2" and "examples table" at the end. Each stage is counted by one
    thread only."""

    @contextlib.contextmanager
    def __call__(self, stage: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self[stage] = self.get(stage, 0.0) + time.perf_counter() - t

    def iterate(self, items, stage: str):
        """``items``, the time spent waiting for each next one counted to ``stage``."""
        it = iter(items)
        while True:
            with self(stage):
                item = next(it, StopIteration)
            if item is StopIteration:
                return
            yield item


def mining_dir(run_dir) -> Path:
    """Where a run's mining results live (``RunDir.mining``)."""
    return RunDir(run_dir).mining


class Stopper:
    """First Ctrl-C / SIGTERM: finish the batch (or block), save, stop. Second: stop at once."""

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


@dataclass
class Run:
    """An open run: the store, the layers' records, the top-k states, this shard's image indices,
    the samplers (None: none) and the summary being filled. Closes its store as a context manager."""

    out: Path
    store: Store
    records: list
    states: dict
    indices: list
    samplers: Optional[Samplers] = None
    summary: Optional[Summary] = None
    t_start: float = field(default_factory=time.perf_counter)
    clock: Clock = field(default_factory=Clock)

    def __post_init__(self):
        if self.summary is None:
            self.summary = Summary(out=str(mining_dir(self.out)), resumed_from=self.done)

    @property
    def done(self) -> int:
        return int(self.store.get("done", 0))

    @property
    def complete(self) -> bool:
        return bool(self.store.get("complete"))

    def checkpoint(self, image_rows: list, done: int, **meta) -> None:
        """States, samplers, image rows and progress in one transaction (``meta``: e.g. blocks_done)."""
        self.store.checkpoint(self.states, image_rows, done, self.samplers.save if self.samplers else None, **meta)

    def completed(self, thumbs: bool = True) -> Summary:
        """The summary of a run that was already complete; with ``thumbs``, the thumbnails a kill
        during :meth:`finish` left unwritten are written (those there are kept)."""
        s = self.summary
        s.images, s.skipped = self.store.counts()
        s.complete = True
        s.seconds = time.perf_counter() - self.t_start
        s.skipped_files = [(k, e) for _, k, e in self.store.skipped()[:20]]
        self.close()
        if thumbs:
            write_thumbnails(self.out)
        return s

    def finish(self, all_in: bool, processed: int = 0, seconds: float = 0.0,
               positions: Optional[Callable[[dict], object]] = None, thumbs: bool = True) -> Summary:
        """End this session: when ``all_in`` (every image mined, not stopped) run pass 2
        (``positions(states)``) and write the final state and examples table; then the counts, the
        summary, the complete flag, close the store, and write the thumbnails of a complete run."""
        s = self.summary
        s.processed_now, s.seconds = processed, seconds
        try:
            if all_in:
                if positions is not None:
                    with self.clock("pass 2"):
                        positions(self.states)
                with self.clock("examples table"):
                    with self.store.db:
                        self.store.save_state(self.states)
                    self.store.write_examples(self.states, {r["name"]: r["width"] for r in self.records})
                s.complete = True
            s.stages = {k: round(v, 3) for k, v in self.clock.items()}
            s.images, s.skipped = self.store.counts()
            s.skipped_files = [(k, e) for _, k, e in self.store.skipped()[:20]]
            with self.store.db:
                self.store.put("summary", s.to_dict())
                if s.complete:
                    self.store.put("complete", True)
        finally:
            self.close()
        if s.complete and thumbs:
            write_thumbnails(self.out)
        return s

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_run(model, src: ImageSource, out, layers, top: int, bottom: int, shard, limit, overwrite: bool,
             command: str, samplers: Optional[Samplers] = None, extra: Optional[dict] = None) -> Run:
    """Open (or resume) the store of a run (the same file whichever engine mines it).

    Resuming checks that every setting that shapes the result matches the stored run: model
    (and its hash), source (and its fingerprint), shard, limit, layers, k, preprocessing, the
    samplers and ``extra`` (an engine's own settings, e.g. Ray's block size).
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
              "preprocessing": model.meta.to_dict() | {"labels": None}}
    config |= (samplers.settings() if samplers else {}) | (extra or {})
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
                              "repeat the settings it was mined with, use another --run directory, or start "
                              "over (`onnxviz mine --overwrite`, or remove that file)")
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
        if samplers is not None:
            samplers.load(store.db)
    except BaseException:
        store.close()
        raise
    return Run(Path(out), store, records, states, indices, samplers)


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


# ---------------------------------------------------------------------------- pass 2 (positions)
def wanted_images(states: dict) -> list:
    """The images in some list whose position there is unknown (sorted): those pass 2 computes.
    All example images, unless pass 1 computed the positions (on a GPU, see ``mine``)."""
    parts = [np.zeros(0, np.int64)]
    for t in states.values():
        _values, idx, pos = t.result()
        parts.append(idx[(idx >= 0) & (pos < 0)])
    return np.unique(np.concatenate(parts)).tolist()


def set_positions(states: dict, good: list, argmax: dict) -> None:
    """Fill the positions of the examples among images ``good`` from {layer: (len(good), units) argmax}."""
    good = np.asarray(good, np.int64)
    if len(good) == 0:
        return
    lo = int(good.min())
    row = np.full(int(good.max()) - lo + 1, -1, np.int64)  # image -> its row in ``argmax``: one lookup per list
    row[good - lo] = np.arange(len(good))
    for (name, _stat, _dir), t in states.items():
        idx = t.result()[1]
        inside = (idx >= lo) & (idx < lo + len(row))
        r = np.where(inside, row[np.clip(idx - lo, 0, len(row) - 1)], -1)
        units, slots = np.nonzero(r >= 0)
        if len(units):
            t.positions[units, slots] = argmax[name][r[units, slots], units]


def write_thumbnails(out) -> None:
    """Thumbnails of every example image, so the run directory is self-contained."""
    from .results import open_results

    r = open_results(out)
    try:
        r.write_thumbnails()
    finally:
        r.close()


def _file_hash(model) -> str:
    if model.path is not None and Path(model.path).is_file():
        h = hashlib.sha256()
        with open(model.path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()[:16]
    return hashlib.sha256(model.proto.SerializeToString()).hexdigest()[:16]


def _spec(src: ImageSource) -> str:
    try:
        return str(Path(src.spec).resolve())
    except OSError:
        return src.spec
