"""A short calibration on this machine: what a render step and a mining batch cost, to plan a whole run.

It times a few optimization steps of the first and the last chosen layer at each candidate batch size
(the render API, ``recipes.render_layer``), the reliability check of one render, and two short mining
runs into a temporary folder (the mining API; their difference removes the fixed start-up cost). The
batch size is the candidate with the fewest seconds per unit, unless it gains less than
``MIN_GAIN`` over one at a time (then one at a time, which needs no batch to match a lone render),
and never more than fits in the device's free memory (``memory.py``: the bytes per image of the
deepest chosen layer, measured). The reliability check runs ``CHECK_BATCH`` images per pass, under
the same memory bound. Measurements of this module against whole runs: docs/microscope.md.
"""
from __future__ import annotations

import tempfile
import time
from typing import Optional

import numpy as np

from ..errors import OnnxVizError

CPU_BATCHES = (1, 8)
GPU_BATCHES = (1, 16, 64)
# images per reliability pass: on 2 CPU cores 8 is 1.09x one unit at a time and 32 is 5x slower (allocations;
# scripts/bench_reliability.py, docs/microscope.md); a GPU wants wide passes (not measured yet: no GPU lent)
CHECK_BATCH = {"cpu": 8, "cuda": 256}
MIN_GAIN = 1.1  # a bigger batch must render at least this much faster per unit to be chosen
STEPS = 3  # timed steps per (layer, batch size), after one untimed warm-up step
SITE_SECONDS_PER_UNIT = 0.01  # rough (docs/bench_site.md: the site writes a few small files per unit)
CONCEPT_SECONDS = 20.0  # rough: learning one dictionary of a few hundred concepts on CPU


def render_seconds(model, layer: str, units: list, batch: int, device=None, steps: int = STEPS, **render_kw) -> float:
    """Seconds per unit per step of rendering ``batch`` units of ``layer`` together (one warm-up step first)."""
    from ..optvis import recipes
    from ..optvis.forward import make_view, resolve_device

    dev = resolve_device(device)
    view = make_view(model, [layer], dev)
    chunk = (list(units) * batch)[:batch]  # a layer with fewer units than the batch repeats them
    kw = dict(batch_size=batch, device=dev, view=view, progress=False, seed=0, **render_kw)
    for _ in recipes.render_layer(model, layer, chunk, steps=1, **kw):
        pass  # warm-up: allocations, kernels
    seconds = 0.0
    for _, result in recipes.render_layer(model, layer, chunk, steps=steps, **kw):
        seconds += result.record["seconds"]
    return seconds / (steps * batch)


def reliability_seconds(model, layer: str, units: list, device=None, batch: int = 8) -> float:
    """Seconds per unit of the reliability check (one render against 8 examples each), checked together
    as the stage does (``check_units``, ``batch`` images per pass), on random pictures; one unit is
    checked first, untimed (the view's conversion and faithfulness check happen once per layer)."""
    from ..optvis.reliability import check_units

    h, w = (int(v) for v in model.meta.input_size)
    n = max(2, min(len(units) * 4, 2 * batch // 9))  # at least two full passes of ``batch`` images
    units = (list(units) * n)[:n]
    pics = np.random.default_rng(0).random((9, 3, h, w), dtype=np.float32)
    items = [(u, pics[:1], pics[1:], None) for u in units]
    try:
        check_units(model, layer, items[:1], device=device, batch=batch)
        t0 = time.perf_counter()
        check_units(model, layer, items, device=device, batch=batch)
    except OnnxVizError:  # a layer the check does not apply to (e.g. no earlier spatial layer): it costs nothing
        return 0.0
    return (time.perf_counter() - t0) / n


def mining_rate(model, images, layers: list, n_images: int, batch_size: int = 32) -> tuple:
    """(images per second, fixed seconds per mining session): two short runs of the mining API."""
    from ..mining import mine

    small = min(8, n_images)
    big = min(small + batch_size, n_images)
    times = []
    with tempfile.TemporaryDirectory(prefix="onnxviz-calibrate-") as tmp:
        for i, limit in enumerate((small, big)):
            t0 = time.perf_counter()
            mine(model, images, f"{tmp}/{i}", layers=layers, top=2, bottom=2, batch_size=batch_size, limit=limit,
                 progress=False, thumbs=False, spectrum=0, checkpoint_seconds=3600)
            times.append(time.perf_counter() - t0)
    if big == small or times[1] <= times[0]:
        return small / max(times[0], 1e-6), 0.0
    rate = (big - small) / (times[1] - times[0])
    return rate, max(0.0, times[0] - small / rate)


def calibrate(model, layers: list, images, n_images: int, steps: int, params: list, device=None,
              batch_size: Optional[int] = None, concepts: int = 0, concept_layers: list = (),
              mining_batch: int = 32, render_kw: Optional[dict] = None) -> tuple:
    """(batch size, calibration facts, estimate: stage -> seconds) for the plan of a run.

    The facts say why that batch: ``batch_choice`` (timing and the memory bound in one line) and
    ``memory`` (free bytes, bytes per image of the deepest layer, ``max_batch``)."""
    from ..optvis.forward import resolve_device

    from . import memory

    t_start = time.perf_counter()
    dev = resolve_device(device)
    order = {lay.name: i for i, lay in enumerate(model.layers)}
    ends = [layers[0], layers[-1]] if len(layers) > 1 else [layers[0]]
    deepest = max(layers, key=lambda lay: order.get(lay["name"], 0))
    render_kw = dict(render_kw or {})  # precision, channels_last: timed and measured as the run renders
    mem = memory.memory_bound(model, deepest["name"], deepest["units"], dev, **render_kw)
    wanted = (batch_size,) if batch_size else (GPU_BATCHES if dev.type == "cuda" else CPU_BATCHES)
    candidates = memory.capped(wanted, mem["max_batch"])
    per_step = {}  # (layer, batch) -> seconds per unit-step
    for lay in ends:
        for b in candidates:
            per_step[(lay["name"], b)] = render_seconds(model, lay["name"], lay["units"], b, dev, **render_kw)
    cost = {b: sum(per_step[(lay["name"], b)] for lay in ends) / len(ends) for b in candidates}
    chosen, why = memory.choose(cost, mem["max_batch"], given=batch_size, min_gain=MIN_GAIN)
    choice = f"{why}; {memory.describe(mem)}"
    check_batch = min(CHECK_BATCH.get(dev.type, CHECK_BATCH["cpu"]), mem["max_batch"])

    def unit_step(name: str) -> float:  # the layer's cost, linear in its depth between the two timed layers
        a, z = ends[0]["name"], ends[-1]["name"]
        if a == z:
            return per_step[(a, chosen)]
        f = (order.get(name, 0) - order[a]) / max(1, order[z] - order[a])
        return (1 - f) * per_step[(a, chosen)] + f * per_step[(z, chosen)]

    render_est = sum(len(lay["units"]) * steps * unit_step(lay["name"]) for lay in layers) * len(params)
    check_s = reliability_seconds(model, ends[-1]["name"], ends[-1]["units"], dev, check_batch)
    rate, fixed = mining_rate(model, images, [lay.name for lay in model.layers], n_images, mining_batch)
    mean_unit_step = render_est / max(1, sum(len(lay["units"]) for lay in layers) * steps * len(params))
    facts = {
        "device": str(dev),
        "batch_choice": choice,
        "candidates": list(candidates),
        "memory": mem,
        "check_batch": check_batch,
        "ms_per_unit_step": {f"{k[0]}@{k[1]}": round(1e3 * v, 3) for k, v in per_step.items()},
        "units_per_min": 60.0 / max(1e-9, mean_unit_step * steps),
        "images_per_s": rate,
        "mining_fixed_seconds": round(fixed, 2),
        "reliability_seconds_per_unit": round(check_s, 4),
        "site_seconds_per_unit": SITE_SECONDS_PER_UNIT,
        "concept_seconds_rough": CONCEPT_SECONDS,
    }
    units = sum(len(lay["units"]) for lay in layers)
    estimate = {
        "inspect": 0.0,
        "mine": fixed + n_images / max(rate, 1e-9),
        "render": render_est,
        "reliability": units * check_s * (2 if "maco" in params else 1),
        "concepts": len(concept_layers) * (CONCEPT_SECONDS + n_images / max(rate, 1e-9)) if concepts else 0.0,
        "site": 1.0 + units * len(params) * SITE_SECONDS_PER_UNIT,
    }
    facts["seconds"] = round(time.perf_counter() - t_start, 2)
    return chosen, facts, {k: round(v, 2) for k, v in estimate.items()}
