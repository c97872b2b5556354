#!/usr/bin/env python
"""Render speed on a CUDA device vs the same machine's CPU, in one run (the table in docs/gpu.md).

    python scripts/bench_gpu_render.py [models/mobilenet_v2.onnx] [--layer block_7] [OUT.json]

Each row: the real model's channels of LAYER, 224 px, FFT parameterization, standard transforms;
ms/step after a 2-step warm-up (view conversion and CUDA start not counted), units per minute at
256 steps, and the median rise of the rendered units. Without CUDA only the CPU row is measured.
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", default="models/mobilenet_v2.onnx")
    ap.add_argument("out", nargs="?", default=os.path.join(os.environ.get("OUT", "."), "gpu_render.json"))
    ap.add_argument("--layer", default="block_7")
    args = ap.parse_args(argv)
    m = onnxviz.load(args.model)
    units = m.layer(args.layer).units
    rows = []
    if torch.cuda.is_available():
        rows += [row(m, args.layer, "cuda", min(n, units), 64) for n in (16, 64)]
    torch.set_num_threads(os.cpu_count() or 1)
    rows.append(row(m, args.layer, "cpu", min(16, units), 16))
    print("| device | units per batch | ms/step | units/min at 256 steps | median rise |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['device']} | {r['batch']} | {r['ms_per_step']} | {r['units_per_min_at_256_steps']} | "
              f"{r['median_rise']}x |")
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    with open(args.out, "w") as fh:
        json.dump({"gpu": gpu, "torch": torch.__version__, "rows": rows}, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
