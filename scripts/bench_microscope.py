"""`onnxviz microscope` measured on this machine, and projected for a whole model (and a GPU).

    python scripts/bench_microscope.py models/mobilenet_v2.onnx data/photos --out runs/bench_microscope \
        --layers block_7,block_14 --units 0-7 --steps 32 --parts subset,whole
    python scripts/bench_microscope.py models/mobilenet_v2.onnx data/photos --out runs/bench_microscope \
        --googlenet models/googlenet.onnx --parts googlenet       # python scripts/export.py googlenet --random
    python scripts/bench_microscope.py models/mobilenet_v2.onnx data/photos --out runs/bench_microscope --parts report

Parts (each its own short run, results merged into OUT/bench.json, so each fits a few minutes):

- ``subset``: the real command on ``--layers``/``--units`` at ``--steps``: per-stage seconds, units/min,
  img/s, and the plan's estimate against what it took.
- ``whole``: the plan of every unit of every layer at 256 steps over the same photos (a calibration on
  this machine, nothing rendered), corrected by the subset's actual / estimated render time: a projection.
- ``googlenet``: the same plan for GoogLeNet (Lucid's names; random weights are fine for time) and a
  PROJECTION for one GPU: the CPU calibration's cost per unit-step of GoogLeNet relative to MobileNetV2
  block_7, applied to the GPU rate measured for block_7 in docs/gpu.md (1,064 units/min at 256 steps,
  batch 64, H200), and mining 50,000 images at the GPU's measured JPEG-bound 2,089 img/s. The
  reliability check: the calibration's seconds per unit of the batched check (warm: the view's
  conversion is not counted, it happens once per layer) / the GPU's per-step speedup over 16 cores.
- ``report``: the Markdown of docs/microscope.md's tables from bench.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GPU_BLOCK7_UNITS_PER_MIN = 1064.0  # docs/gpu.md: H200, MobileNetV2 block_7, 256 steps, batch 64
GPU_MINING_IMG_S = 2089.0  # docs/gpu.md: H100, JPEG to examples, batch 256 (bound by JPEG decoding)
GPU_PER_STEP_SPEEDUP = 52.0  # docs/gpu.md: H200 vs its 16 CPU cores per step at batch 16 (for the checks)
IMAGENET_VAL = 50000


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def subset(args, bench: dict) -> None:
    from onnxviz.microscope import microscope

    out = Path(args.out) / "subset"
    t0 = time.perf_counter()
    s = microscope(args.model, args.images, out, layers=args.layers, units=args.units, steps=args.steps,
                   progress=False, echo=print)
    plan = json.loads((out / "plan.json").read_text())
    bench["subset"] = {"summary": s, "estimate": plan["estimate"], "calibration": plan["calibration"],
                       "wall_seconds": round(time.perf_counter() - t0, 1), "layers": args.layers,
                       "units": args.units, "steps": args.steps}


def whole(args, bench: dict) -> None:
    import onnxviz
    from onnxviz.microscope import make_plan

    m = onnxviz.load(args.model)
    plan, _ = make_plan(m, args.model, args.images, Path(args.out) / "whole", steps=256, reuse=False)
    sub = bench.get("subset", {})
    correction = None
    if sub:
        actual = sub["summary"]["stages"]["render"]["seconds"]
        correction = actual / max(1e-9, sub["estimate"]["render"])
    bench["whole"] = {"plan": plan.to_dict(), "render_correction": correction}


def googlenet(args, bench: dict) -> None:
    import onnxviz
    from onnxviz.microscope import make_plan

    g = onnxviz.load(args.googlenet)
    plan, _ = make_plan(g, args.googlenet, args.images, Path(args.out) / "googlenet", steps=256, reuse=False)
    cal = plan.calibration
    # seconds per unit-step over every layer (the plan's render estimate: the first and last layers timed,
    # the others interpolated by depth) against block_7's, both timed in this run
    ms = 1e3 * plan.estimate["render"] / (plan.units * plan.steps)
    m = onnxviz.load(args.model)
    mplan, _ = make_plan(m, args.model, args.images, Path(args.out) / "block7", layers="block_7", units="0-7",
                         steps=256, reuse=False, batch_size=plan.batch_size)
    ms7 = list(mplan.calibration["ms_per_unit_step"].values())[0]
    scale = ms / ms7
    units = plan.units
    render_min = units / (GPU_BLOCK7_UNITS_PER_MIN / scale)
    mine_min = IMAGENET_VAL / GPU_MINING_IMG_S / 60
    check_min = units * cal["reliability_seconds_per_unit"] / GPU_PER_STEP_SPEEDUP / 60
    site_min = plan.estimate["site"] / 60
    bench["googlenet"] = {
        "layers": len(plan.layers), "units": units, "cpu_plan_estimate_s": plan.to_dict()["estimate_total_seconds"],
        "cpu_ms_per_unit_step": cal["ms_per_unit_step"], "cpu_mean_ms_per_unit_step": round(ms, 2),
        "mnv2_block7_ms_per_unit_step": ms7, "cpu_reliability_s_per_unit": cal["reliability_seconds_per_unit"],
        "cost_vs_block7": round(scale, 3), "cpu_batch": plan.batch_size,
        "cpu_check_batch": cal.get("check_batch"), "cpu_batch_choice": cal.get("batch_choice"),
        "gpu_projection_minutes": {"mine 50,000 images": round(mine_min, 2), "render": round(render_min, 1),
                                   "reliability": round(check_min, 1), "site": round(site_min, 1),
                                   "total": round(mine_min + render_min + check_min + site_min, 1)}}


def report(bench: dict) -> str:
    lines = []
    sub = bench.get("subset")
    if sub:
        s = sub["summary"]
        lines += [f"Subset: {sub['layers']} units {sub['units']} at {sub['steps']} steps, {s['images']} photos, "
                  f"batch {s['batch_size']} (calibrated), device {s['device']}; wall {sub['wall_seconds']} s "
                  f"(calibration {s['calibration_seconds']} s of it)", "",
                  "| stage | seconds | share | estimate (s) |", "|---|---:|---:|---:|"]
        for k, v in s["stages"].items():
            lines.append(f"| {k} | {v['seconds']:.1f} | {100 * v['share']:.0f}% | {v['estimate']:.1f} |")
        lines += ["", f"{s['units_per_min']} units/min at {sub['steps']} steps, mining {s['mining_images_per_s']} img/s "
                  f"(end to end, JPEG/PNG), reliability {s['reliability']}", ""]
    w = bench.get("whole")
    if w:
        p = w["plan"]
        corr = w["render_correction"] or 1.0
        est = dict(p["estimate"])
        est["render"] = est["render"] * corr
        lines += [f"Whole MobileNetV2 (PROJECTION from the calibration, render corrected x{corr:.2f} by the subset): "
                  f"{len(p['layers'])} layers, {p['units']:,} units at 256 steps, {p['n_images']} photos, batch "
                  f"{p['batch_size']}: " + ", ".join(f"{k} {v / 3600:.2f} h" for k, v in est.items() if v > 1)
                  + f"; total {sum(est.values()) / 3600:.1f} h on these 2 CPU cores", ""]
    g = bench.get("googlenet")
    if g:
        lines += [f"GoogLeNet (PROJECTION for one GPU, not measured): {g['layers']} layers, {g['units']:,} units at 256 "
                  f"steps; a GoogLeNet unit-step costs {g['cost_vs_block7']}x a MobileNetV2 block_7 one on the CPU "
                  f"calibration: " + ", ".join(f"{k} {v} min" for k, v in g["gpu_projection_minutes"].items())
                  + f" (these 2 CPU cores: {g['cpu_plan_estimate_s'] / 3600:.0f} h for 544 photos)", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("images")
    ap.add_argument("--out", default="runs/bench_microscope")
    ap.add_argument("--layers", default="block_7,block_14")
    ap.add_argument("--units", default="0-7")
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--googlenet", default=None, help="GoogLeNet ONNX (scripts/export.py googlenet --random)")
    ap.add_argument("--parts", default="subset,whole,report")
    args = ap.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    path = Path(args.out) / "bench.json"
    for part in args.parts.split(","):
        bench = _load(path)
        if part == "report":
            print(report(bench))
            continue
        {"subset": subset, "whole": whole, "googlenet": googlenet}[part](args, bench)
        path.write_text(json.dumps(bench, indent=1, default=str))
        print(f"{part} done -> {path}")


if __name__ == "__main__":
    main()
