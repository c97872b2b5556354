"""The stages of a microscope run, each a call of the existing Python API, each safe to run again.

inspect -> mine -> render -> reliability -> concepts -> site. A stage that is run again skips what is
finished: mining resumes its store (and returns at once when complete), a render batch whose pictures
exist with the same command is kept, a render whose record already holds a reliability verdict is not
checked again, a learned dictionary with the same settings is read back, and the site is rebuilt
(it is cheap and reads everything). Each stage calls ``advance(seconds of estimate)`` as it goes.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..files import write_json
from ..runs import RunDir


@dataclass
class Job:
    """What every stage reads: the loaded model, how its path is spelled, the plan and the run directory."""

    model: object
    model_arg: str
    plan: object
    run: RunDir
    progress: bool = True
    workers: int = 2
    threads: object = None

    @property
    def site_dir(self) -> Path:
        return self.run.root / "site"


def inspect(job: Job, advance: Callable) -> dict:
    """The model's layers and preprocessing, as `onnxviz inspect --json` prints them."""
    info = job.model.describe()
    write_json(job.run.root / "inspect.json", info)
    return {"layers": len(job.model.layers), "nodes": info.get("nodes")}


def mine(job: Job, advance: Callable) -> dict:
    """Dataset examples of every layer of the model (the statistics of all layers come from the same forward
    pass, so the site shows examples beside every layer), and activation vectors of the concept layers."""
    from ..engines import mine as run_mine
    from ..runs import command

    plan = job.plan
    names = [lay.name for lay in job.model.layers]
    atlas = ",".join(plan.concept_layers) if plan.concepts else None
    per_image = _vectors_per_image(plan) if atlas else 8
    cmd = command("mine", job.model_arg, plan.images, run=str(job.run), top=plan.top,
                  bottom=plan.top, atlas_layers=atlas, atlas_per_image=per_image if atlas else None, seed=plan.seed,
                  **plan.meta_opts)
    kw = dict(layers=names, top=plan.top, bottom=plan.top, progress=False, command=cmd, atlas_layers=atlas,
              atlas_per_image=per_image, seed=plan.seed, checkpoint_seconds=10.0, threads=job.threads)
    if plan.engine == "ray":
        kw["workers"] = job.workers
    est = plan.estimate.get("mine", 0.0)
    with _MiningWatch(job.run, plan.n_images, lambda f: advance(est * f)):
        s = run_mine(job.model, plan.images, str(job.run), engine=plan.engine, **kw)
    return {"images": s.images, "skipped": s.skipped, "complete": s.complete, "images_per_s": s.throughput,
            "stages": s.stages}


def _vectors_per_image(plan) -> int:
    """Activation vectors sampled per image so that the dictionary has enough (20 per concept, x1.5)."""
    from ..concepts.learn import MIN_VECTORS_PER_CONCEPT

    need = 1.5 * MIN_VECTORS_PER_CONCEPT * plan.concepts
    return max(8, int(-(-need // max(1, plan.n_images))))


class _MiningWatch:
    """Reads the images done from the mining store every second (it checkpoints as it goes) for the progress view."""

    def __init__(self, run: RunDir, total: int, report: Callable):
        self.db, self.total, self.report = run.mining / "mining.sqlite", max(1, total), report
        self.stop, self.seen = threading.Event(), 0.0
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        from ..mining.store import Store

        while not self.stop.wait(1.0):
            if not self.db.exists():
                continue
            try:
                store = Store(self.db, readonly=True)
                try:
                    done = int(store.get("done") or 0)
                finally:
                    store.close()
            except Exception:  # noqa: BLE001 - a store being written: read it next time
                continue
            self._to(min(1.0, done / self.total))

    def _to(self, fraction: float) -> None:
        if fraction > self.seen:
            self.report(fraction - self.seen)
            self.seen = fraction

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        if exc[0] is None:
            self._to(1.0)


def render(job: Job, advance: Callable) -> dict:
    """Every chosen unit of every chosen layer, FFT (and MACO with --maco), in the plan's batches."""
    from ..runs import render_jobs

    plan = job.plan
    per_unit = plan.estimate.get("render", 0.0) / max(1, plan.renders)
    ray = dict(workers=job.workers, threads=job.threads) if plan.engine == "ray" else None
    made = kept = dead = 0
    for param in plan.params:
        for lay in plan.layers:
            units = lay["units"]
            batches = render_jobs.units(job.model, lay["name"], units, batch_size=plan.batch_size, out=job.run.render,
                                        model_arg=job.model_arg, steps=plan.steps, seed=plan.seed,
                                        device=plan.device, meta_opts=plan.meta_opts, command_run=str(job.run),
                                        engine=plan.engine, ray=ray, param=param, precision=plan.precision,
                                        channels_last=plan.channels_last)
            for i, written in enumerate(batches):
                n = len(units[i * plan.batch_size:(i + 1) * plan.batch_size])
                made += len(written)
                kept += n - len(written)
                dead += sum(w.dead for w in written)
                advance(per_unit * n)
    return {"rendered": made, "kept": kept, "dead": dead}


CHECK_UNITS = 32  # renders checked per call: their examples are loaded together and share passes


def reliability(job: Job, advance: Callable) -> dict:
    """The reliability check of each channel render against its unit's top examples (`onnxviz check`'s),
    ``CHECK_UNITS`` units of a layer at a time in passes of the plan's ``check_batch`` images
    (``trust.attach_reliability_units``: the same verdicts as one at a time)."""
    from ..preprocessing.images import load_image
    from ..runs import trust
    from ..runs.render_records import read_record

    plan = job.plan
    per_unit = plan.estimate.get("reliability", 0.0) / max(1, plan.renders)
    batch = int(plan.calibration.get("check_batch") or 8)
    size = tuple(int(v) for v in job.model.meta.input_size)
    verdicts: dict = {}

    def count(rel: dict) -> None:
        verdicts[rel.get("verdict", "unknown")] = verdicts.get(rel.get("verdict", "unknown"), 0) + 1

    for param in plan.params:
        for lay in plan.layers:
            folder = job.run.render_layer(lay["name"])
            todo = []
            for u in lay["units"]:
                png = folder / (f"channel_{u}" + ("" if param == "fft" else f"_{param}") + ".png")
                rel = read_record(png.with_suffix(".json")).get("reliability") or {}
                if rel.get("verdict", "unknown") == "unknown" and rel.get("meaning") == trust.NO_RUN:
                    todo.append((png, u))
                else:
                    count(rel)
                    advance(per_unit)
            for i in range(0, len(todo), CHECK_UNITS):
                items = [(png, load_image(png, size), u) for png, u in todo[i:i + CHECK_UNITS]]
                for rel in trust.attach_reliability_units(job.model, lay["name"], items, str(job.run),
                                                          device=plan.device, batch=batch):
                    count(rel)
                advance(per_unit * len(items))
    return {"verdicts": verdicts, "check_batch": batch}


def concepts(job: Job, advance: Callable) -> dict:
    """NMF concepts of each concept layer from the mined activation vectors, and their dataset examples."""
    from ..concepts import learn_from_run, mine_concepts

    plan = job.plan
    if not plan.concepts:
        return {"skipped": "no --concepts"}
    out = {}
    per_layer = plan.estimate.get("concepts", 0.0) / max(1, len(plan.concept_layers))
    for name in plan.concept_layers:
        d = learn_from_run(str(job.run), name, method="nmf", concepts=plan.concepts, seed=plan.seed, progress=False)
        s = mine_concepts(job.model, d, str(job.run), top=plan.top, bottom=plan.top, progress=False)
        out[name] = {"concepts": d.concepts, "metrics": d.metrics, "mined_images": s.images}
        advance(per_layer)
    return out


def site(job: Job, advance: Callable) -> dict:
    """The static site of the run (`onnxviz site`)."""
    from ..site import build_site

    index = build_site(job.model, job.site_dir, str(job.run), model_arg=job.model_arg, run_arg=str(job.run),
                       meta_opts=job.plan.meta_opts)
    advance(job.plan.estimate.get("site", 0.0))
    return {"index": str(index)}


STAGE_FUNCTIONS = {"inspect": inspect, "mine": mine, "render": render, "reliability": reliability,
                   "concepts": concepts, "site": site}


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
