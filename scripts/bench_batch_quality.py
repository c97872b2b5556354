"""Does a unit rendered in a batch reach the same activation as rendered alone? And is the batch faster?

    python scripts/bench_batch_quality.py models/mobilenet_v2.onnx --layer block_7 --units 0-7 --steps 32

Renders ``--units`` once as one batch (``--batch``, default all of them) and once one at a time, with
the same seed, steps and transforms, through the render API (``recipes.render_layer``, what
`onnxviz render --layer` and `onnxviz microscope` run). Prints per unit the final activation of each
and their ratio (batch / alone), the median and worst ratio, and units/min of each way on this machine
(render seconds only, from the records). The goal: every ratio within 5% of 1.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    import onnxviz
    from onnxviz.optvis import recipes
    from onnxviz.runs.render_jobs import parse_units

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--layer", default="block_7")
    ap.add_argument("--units", default="0-7")
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--batch", type=int, default=None, help="batch size (default: all units in one batch)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default=None)
    ap.add_argument("--json", default=None, help="also write the numbers here")
    args = ap.parse_args()
    m = onnxviz.load(args.model)
    units = parse_units(args.units)
    batch = args.batch or len(units)
    kw = dict(steps=args.steps, seed=args.seed, device=args.device, progress=False)
    ends, secs = {}, {}
    for name, size in (("batch", batch), ("alone", 1)):
        ends[name], secs[name] = [], 0.0
        for _, r in recipes.render_layer(m, args.layer, units, batch_size=size, **kw):
            ends[name].extend(r.record["activation_end"])
            secs[name] += r.record["seconds"]
    ratios = [b / a if a else float("nan") for b, a in zip(ends["batch"], ends["alone"])]
    print(f"{m.meta.name or Path(args.model).stem} {args.layer}, units {args.units}, {args.steps} steps, seed "
          f"{args.seed}, batch {batch} vs alone\n")
    print("| unit | alone | batch | batch / alone |\n|---|---|---|---|")
    for u, a, b, q in zip(units, ends["alone"], ends["batch"], ratios):
        print(f"| {u} | {a:.4g} | {b:.4g} | {q:.3f} |")
    worst = max(ratios, key=lambda q: abs(q - 1))
    rate = {k: 60 * len(units) / v for k, v in secs.items()}
    print(f"\nmedian ratio {statistics.median(ratios):.3f}, worst {worst:.3f}, within 5%: "
          f"{sum(abs(q - 1) <= 0.05 for q in ratios)}/{len(ratios)}")
    print(f"units/min at {args.steps} steps: alone {rate['alone']:.1f}, batch {batch} {rate['batch']:.1f} "
          f"({rate['batch'] / rate['alone']:.2f}x)")
    if args.json:
        Path(args.json).write_text(json.dumps({"units": units, "alone": ends["alone"], "batch": ends["batch"],
                                               "ratios": ratios, "units_per_min": rate, "steps": args.steps,
                                               "batch_size": batch}, indent=1))


if __name__ == "__main__":
    main()
