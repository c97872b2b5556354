"""Mining and rendering on Ray: one machine's cores, its GPUs, or a cluster (``ray start``).

Mining is a Ray Data pipeline over the blocks of a run (see work.py)::

    blocks (indices + keys) -> decode (tasks, any CPU node) -> BlockMiner actors (one onnxruntime
    session each, on a CPU or one GPU) -> partial top-k + spectrum/atlas samples per block ->
    the driver folds them in (exact, any order: topk.py, samplers.py)

The driver owns the run's SQLite store (the same file a local run writes, opened and finished by
mining/run.py as every engine's is): it folds each finished block into the state and checkpoints
state + samples + finished block ids in one transaction, so an interrupted run resumes without
redoing a finished block. Pass 2 (argmax positions of the examples) runs on the same actors, when
pass 1 did not compute them (the same rule as the local run: ``mine.auto_positions``). The
result equals the single-process run's, row for row.

Rendering every unit of a layer sends fixed chunks of units to UnitRenderer actors; the driver
writes the PNG + JSON (so workers need no shared disk for the output). Which chunks still need
rendering (resume) is decided by the caller, onnxviz.runs.render_jobs.units.

What each node needs: the same Python with onnxviz installed (``pip install onnxviz[ray]``), the
model file and the images at the same path (a shared file system, or the same copy on each).
"""
from __future__ import annotations

import contextlib
import logging
import os
import pickle
import time
from typing import Callable, Optional, Sequence

import numpy as np

from ..errors import RayError
from ..mining.datasets import ImageSource, key_reader, open_source
from ..mining.mine import auto_positions, pixel_feed
from ..mining.run import MiningError, Stopper, Summary, open_run, set_positions, wanted_images
from ..mining.samplers import Samplers
from ..progress import bar as progress_bar
from . import work

log = logging.getLogger("onnxviz")


@contextlib.contextmanager
def session(address: Optional[str] = None, num_cpus: Optional[int] = None):
    """Connect to Ray (``address``: "auto", "HOST:PORT"; None: start a local one) and shut down after.

    An already initialised Ray (a notebook, a test) is used as is and left running.
    """
    try:
        import ray
    except ImportError:
        raise RayError("--engine ray needs Ray: pip install 'onnxviz[ray]' (or 'ray[data]')") from None
    if ray.is_initialized():
        yield ray
        return
    kw = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        if address:
            ray.init(address=address, **kw)
        else:
            ray.init(num_cpus=num_cpus, **kw)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RayError(f"cannot start or reach Ray at {address or 'a new local instance'}: "
                       f"{str(exc).splitlines()[0]}") from exc
    try:
        yield ray
    finally:
        ray.shutdown()


def _context(progress: bool):
    from ray.data import DataContext

    logging.getLogger("ray.data").setLevel(logging.ERROR)  # Ray Data's per-dataset INFO lines
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False  # the driver shows one bar in images, not Ray's per operator
    ctx.execution_options.preserve_order = False
    ctx.execution_options.verbose_progress = False
    return ctx


def _decode(row: dict, reader, spec: work.ModelSpec, threads: int) -> dict:
    from ..preprocessing.meta import ModelMeta

    keys = list(pickle.loads(row["keys"]))
    decoded = work.decode_block(reader, ModelMeta.from_dict(spec.meta), row["indices"].tolist(), keys, threads,
                                spec.pixels)
    return {"block": row["block"], **work.pack_decoded(decoded, keys)}


class _Mine:
    def __init__(self, spec, layers, top, bottom, batch_size, threads, providers, positions, samplers, inline, topk):
        self.worker = work.BlockMiner(spec, layers, top, bottom, batch_size, threads, providers, positions, samplers,
                                      inline, topk)

    def __call__(self, row: dict) -> dict:
        x, good = row["x"], row["good"]
        if self.worker.positions:
            result = self.worker.argmax(x) if len(good) else {}
        else:
            result = self.worker.mine_block(x, good) if len(good) else work.Partial({})
        return {"block": row["block"], "good": good, "rows": row["rows"], "result": pickle.dumps(result)}


def _pipeline(ray, blocks: dict, reader, spec, layers, top, bottom, batch_size, workers, threads, providers,
              gpus: float, decode_threads: int, positions: bool, samplers: Optional[Samplers] = None,
              inline: bool = False, topk: str = "auto"):
    """The Ray Data dataset: one row per block in, one partial result per block out."""
    items = [{"block": b, "indices": np.asarray(idx, np.int64), "keys": pickle.dumps(keys)}
             for b, (idx, keys) in blocks.items()]
    ds = ray.data.from_items(items, override_num_blocks=max(1, len(items)))
    ds = ds.map(_decode, fn_kwargs=dict(reader=reader, spec=spec, threads=decode_threads), num_cpus=0.5)
    actor = dict(num_gpus=gpus) if gpus else dict(num_cpus=0.5)
    return ds.map(_Mine, fn_constructor_kwargs=dict(spec=spec, layers=layers, top=top, bottom=bottom,
                                                   batch_size=batch_size, threads=threads, providers=providers,
                                                   positions=positions, samplers=samplers, inline=inline,
                                                   topk=topk),
                  compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, workers)), **actor)


def mine(model, source, out, layers=None, top: int = 16, bottom: int = 16, batch_size: int = 32,
         workers: int = 2, threads: Optional[int] = None, providers=None, shard=None, limit: Optional[int] = None,
         overwrite: bool = False, progress: bool = True, address: Optional[str] = None, num_cpus: Optional[int] = None,
         gpus_per_worker: float = 0, block_size: Optional[int] = None, stop_after: Optional[int] = None,
         checkpoint_seconds: float = 20.0, thumbs: bool = True, command: str = "", spectrum: int = 128,
         atlas_layers=None, atlas_per_image: int = 8, atlas_views: int = 0, seed: int = 0,
         positions: str = "auto", topk: str = "auto") -> Summary:
    """``onnxviz.mining.mine`` on Ray: the same arguments and the same store, plus where to run.

    workers: onnxruntime actors (one session each); gpus_per_worker: e.g. 1 to give each a GPU
    (providers default to CUDA then); block_size: images per block (default 8 batches);
    stop_after: stop after that many blocks (as if interrupted; tests). address/num_cpus: see
    :func:`session`. The spectrum and atlas samples are taken per block and merged exactly.
    ``positions``, ``topk``: as ``mining.mine``'s (pass 2 and the in-graph top-k run on the actors).
    """
    from .. import load

    if isinstance(model, (str, os.PathLike)):  # a path: load it (a VisionModel is used as it is)
        model = load(model)
    src = source if isinstance(source, ImageSource) else open_source(source)
    reader = key_reader(src)
    if batch_size < 1 or workers < 1:
        raise MiningError("--batch-size and --workers must be at least 1")
    block_size = int(block_size or batch_size * 8)
    if gpus_per_worker and providers is None:
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    samplers = Samplers.of(model, spectrum, atlas_layers, atlas_per_image, seed, atlas_views)
    spec = work.ModelSpec.of(model, pixels=pixel_feed(model, None))
    with open_run(model, src, out, layers, top, bottom, shard, limit, overwrite, command, samplers,
                  extra={"engine": "ray", "block_size": block_size}) as run:
        if run.complete:
            return run.completed(thumbs)
        names = [r["name"] for r in run.records]
        finished = set(run.store.get("blocks_done", []))
        done, indices = run.done, run.indices
        plan = work.plan_blocks(indices, block_size)
        todo = {b: (idx, [src.key(i) for i in idx]) for b, idx in enumerate(plan) if b not in finished}
        bar = progress_bar(len(indices), "mining", "img", enabled=progress, initial=done, smoothing=0.1)
        processed, pending_rows, last_save, n_blocks = 0, [], time.perf_counter(), 0
        t_loop = time.perf_counter()
        with session(address, num_cpus) as ray, Stopper() as stopper:
            _context(progress)
            threads = threads or _threads_per_worker(ray, workers, gpus_per_worker)
            if todo:
                if positions == "auto":
                    positions = auto_positions(providers, run, top, bottom)
                ds = _pipeline(ray, todo, reader, spec, names, top, bottom, batch_size, workers, threads, providers,
                               gpus_per_worker, 2, positions=False, samplers=samplers.fresh() if samplers else None,
                               inline=positions == "inline", topk=topk)
                for row in ds.iter_rows():
                    work.fold_block(run.states, samplers, pickle.loads(row["result"]))
                    rows = pickle.loads(row["rows"])
                    pending_rows += rows
                    finished.add(int(row["block"]))
                    done += len(rows)
                    processed += len(rows)
                    n_blocks += 1
                    bar.update(len(rows))
                    stop = stopper.stop or (stop_after is not None and n_blocks >= stop_after)
                    if stop or time.perf_counter() - last_save > checkpoint_seconds:
                        run.checkpoint(pending_rows, done, blocks_done=sorted(finished))
                        pending_rows, last_save = [], time.perf_counter()
                    if stop:
                        break
                run.checkpoint(pending_rows, done, blocks_done=sorted(finished))
            bar.close()
            return run.finish(len(finished) == len(plan) and not stopper.stop, processed,
                              time.perf_counter() - t_loop,
                              lambda st: _positions(ray, st, src, reader, spec, names, batch_size, block_size,
                                                    workers, threads, providers, gpus_per_worker),
                              thumbs)


def _threads_per_worker(ray, workers: int, gpus: float) -> int:
    """onnxruntime threads per actor: the CPUs of one node shared by the actors (1 with a GPU)."""
    if gpus:
        return 1
    cpus = [n.get("Resources", {}).get("CPU", 1) for n in ray.nodes() if n.get("Alive")]
    per_node = -(-workers // max(1, len(cpus)))  # actors spread over the nodes
    return max(1, int(max(cpus or [1]) // per_node))


def _positions(ray, states, src, reader, spec, names, batch_size, block_size, workers, threads, providers, gpus):
    """Pass 2 on the actors: argmax positions of the example images only."""
    wanted = wanted_images(states)
    if not wanted:
        return
    blocks = {b: (idx, [src.key(i) for i in idx]) for b, idx in enumerate(work.plan_blocks(wanted, block_size))}
    ds = _pipeline(ray, blocks, reader, spec, names, 0, 0, batch_size, workers, threads, providers, gpus, 2,
                   positions=True)
    for row in ds.iter_rows():
        argmax = pickle.loads(row["result"])
        if argmax:
            set_positions(states, row["good"].tolist(), argmax)


# ---------------------------------------------------------------------------- rendering
class _Render:
    def __init__(self, spec, layer, neuron, render_kw, threads):
        self.worker = work.UnitRenderer(spec, layer, neuron, render_kw, threads)

    def __call__(self, row: dict) -> dict:
        images, record, importance = self.worker.render(row["units"].tolist())
        return {"chunk": row["chunk"], "images": images, "record": pickle.dumps(record),
                "importance": pickle.dumps(importance)}


def render_chunks(model, layer: str, chunks: Sequence[Sequence[int]], neuron: bool, render_kw: dict,
                  write: Callable, workers: int = 2, threads: Optional[int] = None, address: Optional[str] = None,
                  num_cpus: Optional[int] = None, gpus_per_worker: float = 0) -> int:
    """Render each chunk of units of ``layer`` (one batch each) on Ray actors.

    write(chunk, images, record, importance) is called in the driver as each chunk finishes (in any
    order), so workers need no shared disk for the output. ``render_kw`` may hold a ``param_f``
    (e.g. MACO's; Ray pickles it to the workers). Returns the number of chunks rendered.
    """
    if not chunks:
        return 0
    spec = work.ModelSpec.of(model)
    kw = dict(render_kw, progress=False)
    with session(address, num_cpus) as ray:
        _context(False)
        threads = threads or _threads_per_worker(ray, workers, gpus_per_worker)
        items = [{"chunk": c, "units": np.asarray(chunk, np.int64)} for c, chunk in enumerate(chunks)]
        ds = ray.data.from_items(items, override_num_blocks=len(items))
        actor = dict(num_gpus=gpus_per_worker) if gpus_per_worker else dict(num_cpus=0.5)
        ds = ds.map(_Render, fn_constructor_kwargs=dict(spec=spec, layer=layer, neuron=neuron, render_kw=kw,
                                                       threads=threads),
                    compute=ray.data.ActorPoolStrategy(min_size=1, max_size=max(1, workers)), **actor)
        for row in ds.iter_rows():
            write(list(chunks[int(row["chunk"])]), row["images"], pickle.loads(row["record"]),
                  pickle.loads(row["importance"]))
    return len(chunks)
