"""The mining loop: images -> per-channel statistics (in-graph) -> streaming top/bottom-k -> store.

Speed by design: the model is edited once (``Model.stats_runner``) so that onnxruntime returns
per-channel mean and max of every mined layer — kilobytes per image instead of the megabytes of
full activation maps — and, where it is cheap (a GPU, or a set where most images will be examples),
the argmax position too; otherwise the positions of the examples come from a second pass over the
example images only (``fill_positions``). Decoders (threads, or processes on many cores) resize
the next batches to uint8 pixels while onnxruntime runs the current one, and the session does the
preprocessing in its graph (pixelfeed.py), so the loop's thread converts nothing; onnxruntime's
threads are told not to spin so the decoders get the cores; the top-k update (one fused list per
statistic and direction, a float test first, then a sort of uint64 keys for the few units beaten)
runs in a thread while the next batch infers in another and the loop's thread fetches the one
after. On CUDA the graph also reduces each batch to its top/bottom-k candidates per unit
(graph/batch_topk.py), so the host merges (units, k) instead of scanning (batch, units).
``Summary.stages`` says where the loop's time went; measurements: docs/bench_mine.md.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import logging
import os
import time
from typing import Optional

import numpy as np

from ..progress import bar as progress_bar
from .batching import Halving, choose_batch
from .datasets import ImageSource, decode_batches, open_source
from .decoders import default_workers, open_decoder
from .run import DIRS, STATS, MiningError, Stopper, Summary, mining_dir, open_run, set_positions, wanted_images
from .samplers import Samplers
from .views import input_axes, view_maps
from .topk import TopK, fuse

__all__ = ["mine", "fill_positions", "MiningError", "Summary", "mining_dir"]

log = logging.getLogger("onnxviz")


def mine(model, source, out, layers=None, top: int = 16, bottom: int = 16, batch_size: int = 32,
         workers: Optional[int] = None, threads: Optional[int] = None, providers=None, shard=None,
         limit: Optional[int] = None, overwrite: bool = False, progress: bool = True,
         stop_after: Optional[int] = None, checkpoint_seconds: float = 20.0, thumbs: bool = True,
         command: str = "", spectrum: int = 128, atlas_layers=None, atlas_per_image: int = 8,
         atlas_views: int = 0, seed: int = 0, decoder: str = "auto", pixels: Optional[bool] = None,
         positions: str = "auto", memory: Optional[int] = None, topk: str = "auto") -> Summary:
    """Mine dataset examples of ``layers`` (default all of ``model.layers``) over ``source``.

    model: path or onnxviz Model; source: folder / zip / tar / list file or an ImageSource;
    out: the run directory (results go to ``out/mining/``). ``top``/``bottom``: k per list.
    ``shard``: "i/n" or (i, n): mine every n-th image starting at i (merge with ``merge_runs``).
    ``limit``: only the first ``limit`` images of the shard. ``stop_after``: stop (as if
    interrupted) after that many batches — for tests and demos. ``spectrum``: images in the
    uniform sample behind every unit's spectrum of examples (0: none; see spectrum.py).
    ``atlas_layers``: layers whose activation vectors are sampled at ``atlas_per_image`` random
    positions per image for ``onnxviz atlas`` (samples.py), and in ``atlas_views`` seeded random
    crops and flips of each image too (views.py: one more forward pass each; more vectors for
    ``onnxviz concepts``; examples and spectra stay the images'). ``seed``: of the samplers. ``pixels``: feed
    onnxruntime the decoded uint8 pixels and preprocess in the graph (pixelfeed.py; same input, bit
    for bit); None: wherever the model's input allows. ``positions``: "pass2" computes the argmax
    positions of the examples in a second pass over the example images only (cheapest on a CPU,
    where an in-graph ArgMax reorders every map); "inline" computes them with the statistics of
    every image and needs no pass 2 (cheaper on a GPU); "auto": inline when the session runs on
    CUDA, or when the run has fewer images than list slots (then nearly every image is an example,
    and pass 2 would decode and run them all again). Both give the same result, bit for bit
    (the mean and max come from the same pooling nodes either way). ``memory``: bytes the batch may
    use (default half the memory available; batching.py: the batch shrinks for large inputs, and
    halves when onnxruntime runs out of memory). ``topk``: "graph" reduces each batch to its top/bottom-k
    candidates in the graph, so only (units, k) per list crosses to the host (graph/batch_topk.py;
    the same lists, bit for bit); "host": the host scans every image's statistics; "auto": the graph
    on CUDA or at batches of 128+, the host otherwise (2 CPU cores, MobileNetV2: at batch 32
    onnxruntime's TopK costs more than the host's scan, at 256 far less; docs/bench_mine.md). ``decoder``: "threads",
    "processes" or "auto" (processes on 8+ cores). Returns a :class:`Summary` (with ``stages``:
    where the time went); calling again with the same arguments resumes an unfinished run.
    """
    from .. import load

    if isinstance(model, (str, os.PathLike)):
        model = load(model)
    src = source if isinstance(source, ImageSource) else open_source(source)
    if batch_size < 1:
        raise MiningError("--batch-size must be at least 1")
    samplers = Samplers.of(model, spectrum, atlas_layers, atlas_per_image, seed, atlas_views)
    pixels = pixel_feed(model, pixels)
    axes = input_axes(model.meta, pixels)
    if positions not in ("auto", "inline", "pass2"):
        raise MiningError(f"positions must be auto, inline or pass2, not {positions!r}")
    with open_run(model, src, out, layers, top, bottom, shard, limit, overwrite, command, samplers) as run:
        if run.complete:
            return run.completed(thumbs)
        done, states, indices = run.done, run.states, run.indices
        if positions == "auto":
            positions = auto_positions(providers, run, top, bottom)
        todo = indices[done:]
        batch_size, note = choose_batch(model, [r["name"] for r in run.records], batch_size,
                                        list(samplers.atlas) if samplers else [], memory)
        if note:
            log.warning(note)
        # on a CPU pass 1 ranks by mean and max only: GlobalAveragePool/GlobalMaxPool stay in
        # onnxruntime's blocked layout, while an in-graph ArgMax would force a reorder of every full map
        runner = Halving(model.stats_runner([r["name"] for r in run.records], providers=providers, threads=threads,
                                            stats=STATS + (("argmax",) if positions == "inline" else ()),
                                            maps=list(samplers.atlas) if samplers else [], spin=False, pixels=pixels,
                                            topk=(top, bottom) if in_graph(topk, providers, batch_size) else None))
        names = [lay.name for lay in runner.layers]
        fused = fuse_lists(states, names)
        if workers is None:
            workers = default_workers(decoder)  # 2 decoder threads on 2 cores: measured faster than 1
        bar = progress_bar(len(indices), "mining", "img", enabled=progress, initial=done, smoothing=0.1)
        pending_rows: list = []
        last_save = time.perf_counter()
        n_batches = 0
        processed = 0
        t_loop = time.perf_counter()
        clock = run.clock
        with contextlib.ExitStack() as stack:
            procs = open_decoder(src, model.meta, workers, decoder)  # pass 1 and pass 2 share it
            if procs is not None:
                stack.enter_context(procs)
            with Stopper() as stopper, cf.ThreadPoolExecutor(1, thread_name_prefix="onnxviz-infer") as infer, \
                    cf.ThreadPoolExecutor(1, thread_name_prefix="onnxviz-topk") as post, lists_executor() as lists_pool:
                # a pipeline: batch i+1 infers while batch i goes into the lists and batch i+2 is fetched
                inflight: collections.deque = collections.deque()  # absorbs not finished yet, in order

                def settle(keep: int) -> None:
                    """Wait until at most ``keep`` batches are still on their way into the lists."""
                    with clock("waiting for inference and top-k"):
                        while len(inflight) > keep:
                            inflight.popleft().result()

                def infer_batch(batch, idx, rows):
                    with clock("inference"):
                        out = runner.run(batch, maps=True, rows=rows)
                    if samplers is None or not samplers.views:
                        return out, []
                    with clock("augmented views"):
                        return out, view_maps(samplers, runner.run, batch, idx, axes)

                def absorb(job, idx):
                    """Everything a batch's statistics go into, once its inference ``job`` is done."""
                    (stats, maps), views = job.result()
                    with clock("top-k"):
                        if samplers is not None:
                            samplers.offer(stats, maps, idx)
                            for view, vmaps in views:
                                samplers.offer_view(vmaps, idx, view)
                        update_lists(fused, stats, names, idx, lists_pool)

                batches = decode_batches(src, todo, model.meta, batch_size, workers, decoder=procs, pixels=pixels)
                for batch, decoded in clock.iterate(batches, "decoded batches"):
                    good = [d for d in decoded if d.x is not None]
                    if good:
                        idx = np.array([d.index for d in good], np.int64)
                        settle(1)  # at most two batches in flight: bounded memory
                        rows = samplers.rows(idx) if samplers is not None else None  # the spectrum's rows
                        inflight.append(post.submit(absorb, infer.submit(infer_batch, batch, idx, rows), idx))
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
                        settle(0)
                        with clock("checkpoints"):
                            run.checkpoint(pending_rows, done)
                        pending_rows, last_save = [], time.perf_counter()
                    if stop:
                        break
                settle(0)
                with clock("checkpoints"):
                    run.checkpoint(pending_rows, done)
            bar.close()
            return run.finish(done >= len(indices) and not stopper.stop, processed, time.perf_counter() - t_loop,
                              lambda st: fill_positions(model, src, st, names, batch_size, workers, providers,
                                                        threads, procs, pixels), thumbs)


def auto_positions(providers, run, top: int, bottom: int) -> str:
    """"inline" on CUDA (an ArgMax costs little there) or when the ``run`` has no more images than
    list slots (units x stats x (top + bottom): measured on 544 photos and MobileNetV2, 2 CPU
    cores: 18 s inline vs 27 s with pass 2, which re-decoded 97% of them); else "pass2" (on a
    CPU the ArgMax reorders every map: 42 vs 53 img/s)."""
    from ..backends.ort import usable_providers

    slots = sum(r["units"] for r in run.records) * len(STATS) * (top + bottom)
    if usable_providers(providers)[0] == "CUDAExecutionProvider" or len(run.indices) <= slots:
        return "inline"
    return "pass2"


def in_graph(topk: str, providers, batch_size: int) -> bool:
    """Whether each batch's top-k candidates are found in the graph (``mine``'s ``topk``)."""
    from ..backends.ort import usable_providers

    if topk not in ("auto", "graph", "host"):
        raise MiningError(f"topk must be auto, graph or host, not {topk!r}")
    if topk != "auto":
        return topk == "graph"
    return batch_size >= 128 or usable_providers(providers)[0] == "CUDAExecutionProvider"


def pixel_feed(model, wanted: Optional[bool]) -> bool:
    """Whether to feed uint8 pixels: ``wanted`` None means wherever the model's input allows."""
    from ..graph.pixelfeed import why_not

    reason = why_not(model.proto, model.input_name, model.meta)
    if wanted and reason:
        raise MiningError(f"cannot feed {model.path or model.meta.name} uint8 pixels: {reason}")
    return reason is None if wanted is None else bool(wanted)


def fuse_lists(states: dict, names: list) -> dict:
    """{(stat, dir): one TopK over the units of all ``names``}; the per-layer states become views of it."""
    return {(stat, d): fuse([states[(name, stat, d)] for name in names]) for stat in STATS for d in DIRS}


def lists_executor():
    """Threads for the top-k update on a host with many cores (a GPU host: the update is the slowest
    step there), half its cores; none on a few cores, where onnxruntime and the decoders need them."""
    cpus = os.cpu_count() or 1
    if cpus >= 8:
        return cf.ThreadPoolExecutor(min(16, cpus // 2), thread_name_prefix="onnxviz-lists")
    return contextlib.nullcontext()


def update_lists(fused: dict, stats: dict, names: list, idx: np.ndarray, pool=None, chunk: int = 4096) -> None:
    """Add one batch of {layer: {stat: (B, units)}} to the fused lists (layers side by side).

    ``pool``: an executor that updates the lists at once in slices of ``chunk`` units (numpy
    releases the GIL; each slice is a view of its list), for hosts whose cores would otherwise
    wait: behind a GPU the top-k update is the slowest step."""
    jobs = []
    if getattr(stats, "candidates", None) is not None:
        _update_from_candidates(fused, stats, names, idx, pool, chunk)
        return
    pos = _side_by_side(stats, names, "argmax")
    for stat in STATS:
        values = _side_by_side(stats, names, stat)
        for d in DIRS:
            t = fused[(stat, d)]
            step = t.units if pool is None else chunk
            for a in range(0, t.units, step):
                b = min(t.units, a + step)
                part = t if (a, b) == (0, t.units) else TopK(b - a, t.k, t.largest, t.keys[a:b], t.positions[a:b])
                jobs.append((part, values[:, a:b], None if pos is None else pos[:, a:b]))
    if pool is None:
        for topk, values, pos in jobs:
            topk.update(values, idx, pos)
    else:
        for f in [pool.submit(topk.update, values, idx, pos) for topk, values, pos in jobs]:
            f.result()


def _update_from_candidates(fused: dict, stats, names: list, idx: np.ndarray, pool=None, chunk: int = 4096) -> None:
    """``update_lists`` for a batch the graph reduced to its top-k candidates (graph/batch_topk.py):
    (units, k) per list instead of (B, units). Exact because the batch holds images in increasing
    index, so TopK's tie rule (the lower batch position first) is the lists' (the lower image index)."""
    if stats.names != list(names):
        raise ValueError("the candidates' layers are not the lists' layers, in the same order")
    if len(idx) > 1 and (np.diff(idx) <= 0).any():
        raise ValueError("in-graph top-k needs each batch in increasing image index")
    jobs = []
    for key, (values, where, pos) in stats.candidates.items():
        t = fused[key]
        image = idx[where]
        step = t.units if pool is None else chunk
        for a in range(0, t.units, step):
            b = min(t.units, a + step)
            part = t if (a, b) == (0, t.units) else TopK(b - a, t.k, t.largest, t.keys[a:b], t.positions[a:b])
            jobs.append((part, values[a:b], image[a:b], None if pos is None else pos[a:b]))
    if pool is None:
        for job in jobs:
            job[0].update_candidates(*job[1:])
    else:
        for f in [pool.submit(job[0].update_candidates, *job[1:]) for job in jobs]:
            f.result()


def _side_by_side(stats: dict, names: list, stat: str) -> Optional[np.ndarray]:
    """(B, all units) of ``stat`` for layers ``names``: the session's own fused array when it returned
    one in this order (backends.ort.Stats: no copy), else the layers' arrays concatenated; None
    when some layer lacks it."""
    fused = getattr(stats, "fused", None)
    if fused is not None and stat in fused and stats.names == list(names):
        return fused[stat]
    parts = [stats[name].get(stat) for name in names]
    return np.concatenate(parts, axis=1) if all(p is not None for p in parts) else None


def fill_positions(model, src: ImageSource, states: dict, names: list, batch_size: int, workers: int,
                   providers=None, threads=None, decoder=None, pixels: bool = False) -> int:
    """Pass 2: the spatial argmax of each example, computed only for the images in some list.

    Positions are needed for the examples alone (their crops), so they are computed after the
    ranking, on at most units x 2k images however large the dataset. Returns how many images.
    """
    wanted = wanted_images(states)
    if not wanted:
        return 0
    runner = Halving(model.stats_runner(names, providers=providers, threads=threads, stats=("argmax",), spin=False,
                                        pixels=pixels))
    with cf.ThreadPoolExecutor(1, thread_name_prefix="onnxviz-positions") as post:
        busy = None  # the previous batch's positions are filled in while this one infers
        for batch, decoded in decode_batches(src, wanted, model.meta, batch_size, workers, decoder=decoder,
                                             pixels=pixels):
            good = [d.index for d in decoded if d.x is not None]
            if not good:
                continue
            out = runner.run(batch)
            if busy is not None:
                busy.result()
            busy = post.submit(set_positions, states, good, {name: out[name]["argmax"] for name in names})
        if busy is not None:
            busy.result()
    return len(wanted)
