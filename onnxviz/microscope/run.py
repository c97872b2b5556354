"""One resumable job for a whole model: plan, then every stage, with one progress view and a time summary.

    from onnxviz.microscope import microscope
    microscope("models/mobilenet_v2.onnx", "data/photos", "runs/mnv2_microscope", layers="block_7,block_14")

Files in ``out`` (a run directory, ``onnxviz.runs.RunDir``): plan.json (the plan and its estimate),
inspect.json, mining/, render/, concepts/, site/, stages.json (each stage's status, seconds over all
sessions and result, written after every stage) and summary.json (where the time went, estimate vs
actual). Run again with the same arguments, it reads plan.json back and continues where it stopped.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

from ..files import write_json
from ..progress import bar
from ..runs import RunDir
from . import stages as stage_mod
from .plan import STAGES, Plan, choose_layers, count_images

STAGES_FILE = "stages.json"
SUMMARY_FILE = "summary.json"


def make_plan(model, model_arg: str, images, out, layers: Optional[str] = None, units: Optional[str] = None,
              steps: int = 256, maco: bool = False, concepts: int = 0, concept_layers: Optional[str] = None,
              engine: str = "local", device=None, batch_size: Optional[int] = None, top: int = 8, seed: int = 0,
              meta_opts: Optional[dict] = None, reuse: bool = True, precision: str = "fp32",
              channels_last: bool = True) -> tuple:
    """(Plan, whether it was read back from ``out/plan.json``): the existing plan when its key matches
    (a rerun resumes with the same batches), else a new one from a calibration on this machine."""
    from .calibration import calibrate

    chosen = choose_layers(model, layers, units)
    if concept_layers:
        c_layers = [model.layer(n.strip()).name for n in concept_layers.split(",") if n.strip()]
    else:
        c_layers = [chosen[-1]["name"]] if concepts else []
    plan = Plan(model=str(model_arg), images=str(images), out=str(out), layers=chosen, n_images=0, steps=int(steps),
                params=["fft", "maco"] if maco else ["fft"], batch_size=batch_size or 0, seed=seed, top=top,
                concepts=int(concepts or 0), concept_layers=c_layers if concepts else [], engine=engine,
                device=device, meta_opts=dict(meta_opts or {}), precision=precision, channels_last=bool(channels_last))
    old = Plan.read(out) if reuse else None
    if old is not None and old.key() == plan.key() and (not batch_size or old.batch_size == batch_size):
        return old, True
    plan.n_images = count_images(images)
    plan.batch_size, plan.calibration, plan.estimate = calibrate(
        model, chosen, images, plan.n_images, plan.steps, plan.params, device=device, batch_size=batch_size,
        concepts=plan.concepts, concept_layers=plan.concept_layers,
        render_kw=dict(precision=precision, channels_last=bool(channels_last)))
    return plan, False


def microscope(model_path, images, out, *, model=None, echo: Callable = print, plan_only: bool = False,
               progress: bool = True, workers: int = 2, threads: Optional[int] = None, **plan_kw) -> dict:
    """Inspect, mine, render, check, learn concepts and build the site for ``model_path`` over ``images``.

    ``plan_kw``: as :func:`make_plan` (layers, units, steps, maco, concepts, concept_layers, engine,
    device, batch_size, top, seed, meta_opts, precision, channels_last). ``plan_only``: write plan.json and stop. Returns the
    summary (also in ``out/summary.json``); with ``plan_only`` the plan's dict.
    """
    from .. import load

    model = model if model is not None else load(model_path)
    out = Path(out)
    plan, resumed = make_plan(model, str(model_path), images, out, **plan_kw)
    echo(plan.text())
    out.mkdir(parents=True, exist_ok=True)
    plan.write(out)
    if plan_only:
        echo(f"plan written to {out / 'plan.json'} (--plan-only: nothing else was run)")
        return plan.to_dict()
    run = RunDir(out)
    job = stage_mod.Job(model, str(model_path), plan, run, progress, workers, threads)
    record = stage_mod.read_json(out / STAGES_FILE) if resumed else {}
    if resumed and any(v.get("status") == "done" for v in record.values()):
        echo("resuming: " + ", ".join(k for k, v in record.items() if v.get("status") == "done") + " finished before")
    total = round(sum(plan.estimate.values()), 1)
    t_session = time.perf_counter()
    with bar(total, "microscope", "s", enabled=progress,
             bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining} (estimated seconds)") as view:
        for name in STAGES:
            entry = record.setdefault(name, {"status": "todo", "seconds": 0.0, "sessions": 0})
            if entry["status"] == "done":
                view.update(plan.estimate.get(name, 0.0))
                continue
            view.set_description(f"microscope {STAGES.index(name) + 1}/{len(STAGES)} {name}")
            entry.update(status="running", sessions=entry["sessions"] + 1)
            write_json(out / STAGES_FILE, record)
            advance = _Ticker(entry, record, out / STAGES_FILE, view.update)
            result = stage_mod.STAGE_FUNCTIONS[name](job, advance)
            entry.update(status="done", seconds=advance.seconds(), result=result)
            write_json(out / STAGES_FILE, record)
    summary = summarize(plan, record, time.perf_counter() - t_session)
    write_json(out / SUMMARY_FILE, summary)
    echo(summary_text(summary))
    return summary


class _Ticker:
    """A stage's ``advance``: moves the progress view, and every ``EVERY`` seconds saves the stage's seconds
    so far in stages.json, so that the time of a session that is killed still counts in the summary."""

    EVERY = 10.0

    def __init__(self, entry: dict, record: dict, path: Path, update: Callable):
        self.entry, self.record, self.path, self.update = entry, record, path, update
        self.base, self.t0 = entry["seconds"], time.perf_counter()
        self.saved = self.t0

    def seconds(self) -> float:
        return round(self.base + time.perf_counter() - self.t0, 3)

    def __call__(self, n: float) -> None:
        self.update(n)
        if time.perf_counter() - self.saved > self.EVERY:
            self.saved = time.perf_counter()
            self.entry["seconds"] = self.seconds()
            write_json(self.path, self.record)


def summarize(plan: Plan, record: dict, session_seconds: float) -> dict:
    """Where the time went (all sessions of the run), against the plan's estimate."""
    seconds = {k: record[k]["seconds"] for k in STAGES if k in record}
    total = sum(seconds.values())
    render_s = seconds.get("render", 0.0)
    mine_res = record.get("mine", {}).get("result", {})
    return {
        "model": plan.model, "out": plan.out, "layers": len(plan.layers), "units": plan.units,
        "renders": plan.renders, "images": mine_res.get("images", plan.n_images), "steps": plan.steps,
        "batch_size": plan.batch_size, "device": plan.calibration.get("device"),
        "seconds": round(total, 2), "this_session_seconds": round(session_seconds, 2),
        "stages": {k: {"seconds": round(v, 2), "share": round(v / total, 3) if total else 0.0,
                       "estimate": plan.estimate.get(k), "sessions": record[k].get("sessions", 0)}
                   for k, v in seconds.items()},
        "estimate_seconds": round(sum(plan.estimate.values()), 2),
        "calibration_seconds": plan.calibration.get("seconds"),
        "units_per_min": round(60 * plan.renders / render_s, 2) if render_s > 0.05 else None,
        "mining_images_per_s": round(mine_res.get("images_per_s") or 0.0, 2),
        "reliability": record.get("reliability", {}).get("result", {}).get("verdicts", {}),
        "site": record.get("site", {}).get("result", {}).get("index"),
    }


def summary_text(s: dict) -> str:
    lines = [f"microscope done in {s['seconds']:.1f} s (estimate {s['estimate_seconds']:.1f} s; this session "
             f"{s['this_session_seconds']:.1f} s): {s['units']} units of {s['layers']} layers, {s['renders']} renders, "
             f"{s['images']} images"]
    lines.append("  time: " + ", ".join(f"{k} {v['seconds']:.1f} s ({100 * v['share']:.0f}%)"
                                        for k, v in s["stages"].items()))
    if s["units_per_min"]:
        lines.append(f"  rendering {s['units_per_min']:.1f} units/min at {s['steps']} steps (batch {s['batch_size']}), "
                     f"mining {s['mining_images_per_s']:.1f} img/s (this session)")
    if s["reliability"]:
        lines.append("  reliability: " + ", ".join(f"{k} {v}" for k, v in sorted(s["reliability"].items())))
    if s["site"]:
        lines.append(f"  site: {s['site']} (or `onnxviz serve {Path(s['site']).parent}`)")
    return "\n".join(lines)
