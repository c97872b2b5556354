#!/usr/bin/env python
"""Render speed on a CUDA device vs the same machine's CPU, in one run (the table in docs/gpu.md).

    python scripts/bench_gpu_render.py [models/mobilenet_v2.onnx] [--layer block_7] [OUT.json] \
        [--photos data/photos] [--check-layer block_14] [--parts render,precision,memory,check]

Each row: the real model's channels of LAYER, 224 px, FFT parameterization, standard transforms;
ms/step after a 2-step warm-up (view conversion and CUDA start not counted), units per minute at
256 steps, and the median rise of the rendered units. Without CUDA only the CPU row is measured.
On CUDA, three more answers for issue 24 (each a part, so one lent run answers all):

- ``precision``: 64 units in one batch at 64 steps, fp32 without and with channels_last, bf16 and fp16
  with it (scripts/bench_precision.py): speed and end activation / fp32's per unit (goal: within 5%).
  The microscope may default to a faster setting on CUDA only where this shows every unit within 5%.
- ``memory``: the memory bound the microscope's plan computes (free memory, measured bytes per image
  of LAYER, the largest batch that fits) and the peak of a real batch of that size, to check the bound.
- ``check``: the reliability check one unit at a time vs 256 images per pass (scripts/bench_reliability.py)
  on ``--check-layer``, with the photos of ``--photos``: checks/min and the same verdicts.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch

import onnxviz
from onnxviz.optvis import objectives as obj
from onnxviz.optvis import render


def row(model, layer: str, device: str, n: int, steps: int) -> dict:
    objective = obj.channel(layer, list(range(n)))
    render(model, objective, steps=2, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    t = time.perf_counter()
    r = render(model, objective, steps=steps, device=device, seed=0)
    sync()
    dt = time.perf_counter() - t
    rise = sorted(e / s for s, e in zip(r.record["activation_start"], r.record["activation_end"]) if s > 0)
    return {"device": device, "batch": n, "steps": steps, "ms_per_step": round(1000 * dt / steps, 2),
            "units_per_min_at_256_steps": round(60 * n / (dt / steps * 256), 1),
            "median_rise": round(rise[len(rise) // 2], 1) if rise else None}


def issue24(m, args, parts: set, units: int, device: str = "cuda") -> dict:
    """The precision, memory and check parts on CUDA (see the module docstring); prints their tables.
    ``device`` "cpu" (``--dry-run-cpu``): the same code at toy sizes."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from onnxviz.microscope import memory

    out = {}
    if "precision" in parts:
        from bench_precision import compare, table

        toy = device == "cpu"
        out["precision"] = compare(m, args.layer, list(range(min(2 if toy else 64, units))), 2 if toy else 64, device)
        print(table(out["precision"]) + "\n")
    if "memory" in parts:
        dev = torch.device("cuda", torch.cuda.current_device()) if device == "cuda" else torch.device("cpu")
        mem = memory.memory_bound(m, args.layer, list(range(units)), dev)
        batch = min(mem["max_batch"], 512 if device == "cuda" else 4)
        mem["peak_bytes_at_bound"] = memory.step_bytes(m, args.layer, list(range(units)), batch, dev)
        mem["batch_measured"] = batch
        out["memory"] = mem
        print(memory.describe(mem) + f"; a step of {batch} peaked at {mem['peak_bytes_at_bound'] / 2 ** 30:.2f} GiB\n")
    if "check" in parts and Path(args.photos).exists():
        from bench_reliability import measure, table as check_table

        toy = device == "cpu"
        out["check"] = measure(m, m.layer(args.check_layer).name, list(range(3 if toy else 32)), args.photos,
                               12 if toy else 64, (8,) if toy else (8, 64, 256), device)
        print(check_table(out["check"]) + "\n")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", default="models/mobilenet_v2.onnx")
    ap.add_argument("out", nargs="?", default=os.path.join(os.environ.get("OUT", "."), "gpu_render.json"))
    ap.add_argument("--layer", default="block_7")
    ap.add_argument("--photos", default="data/photos")
    ap.add_argument("--check-layer", default="block_14")
    ap.add_argument("--parts", default="render,precision,memory,check")
    ap.add_argument("--dry-run-cpu", action="store_true",
                    help="run the issue-24 parts on the CPU at toy sizes (checks the script before a GPU is lent)")
    args = ap.parse_args(argv)
    parts = set(args.parts.split(","))
    m = onnxviz.load(args.model)
    units = m.layer(args.layer).units
    rows, extra = [], {}
    cuda = torch.cuda.is_available()
    if cuda and "render" in parts:
        rows += [row(m, args.layer, "cuda", min(n, units), 64) for n in (16, 64)]
    if cuda or args.dry_run_cpu:
        extra = issue24(m, args, parts, units, "cuda" if cuda else "cpu")
    torch.set_num_threads(os.cpu_count() or 1)
    if "render" in parts:
        rows.append(row(m, args.layer, "cpu", min(16, units), 16))
    print("| device | units per batch | ms/step | units/min at 256 steps | median rise |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['device']} | {r['batch']} | {r['ms_per_step']} | {r['units_per_min_at_256_steps']} | "
              f"{r['median_rise']}x |")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    with open(args.out, "w") as fh:
        json.dump({"gpu": gpu, "torch": torch.__version__, "rows": rows, **extra}, fh, indent=1, default=str)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
