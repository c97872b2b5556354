"""The reliability check, one unit at a time vs many units in shared passes: checks/min and the same verdicts.

    python scripts/bench_reliability.py models/mobilenet_v2.onnx data/photos --layer block_14 --units 0-15
    python scripts/bench_reliability.py models/googlenet.onnx data/photos --layer inception4d --units 0-15

Each unit's top 8 of ``--photos`` photos (by channel mean, onnxruntime) are its examples and its 9th best
photo stands in for its render (time does not depend on the picture; a real photo gives real verdicts).
One at a time is ``optvis.reliability.check`` per unit (what the microscope's stage ran before); together
is ``check_units`` over all units with ``--batch`` images per pass. Both after one untimed check (the
view's conversion). Prints checks/min of each, the ratio, and the largest difference of any number of
the reports and whether every verdict is the same. Loading photos and opening the mining run are not
timed in either (the stage now does them once per 32 units instead of once per unit: a further gain).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NUMBERS = ("score", "path_similarity", "natural_similarity", "explained", "activation")


def main() -> None:
    import numpy as np
    import torch

    import onnxviz
    from onnxviz.optvis.reliability import check, check_units
    from onnxviz.runs.render_jobs import parse_units

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("images")
    ap.add_argument("--layer", default="block_14")
    ap.add_argument("--units", default="0-15")
    ap.add_argument("--photos", type=int, default=48)
    ap.add_argument("--batch", default="8,32", help="images per pass of the batched check (several: each timed)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    m = onnxviz.load(args.model)
    layer = m.layer(args.layer).name
    units = parse_units(args.units)
    paths = sorted(p for p in Path(args.images).rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    paths = paths[:args.photos]
    images = np.asarray(m.load_images(paths), np.float32)
    acts = m.channel_stats(m.prepare(images), [layer])[layer]["mean"]
    items = []
    for u in units:
        order = np.argsort(-acts[:, u])
        items.append((u, images[order[8]][None], images[order[:8]], None))
    sync = (lambda: torch.cuda.synchronize()) if torch.cuda.is_available() and args.device != "cpu" else (lambda: None)
    check(m, items[0][1], layer, items[0][0], items[0][2], device=args.device)  # untimed: conversion
    t0 = time.perf_counter()
    alone = [check(m, r, layer, u, e, device=args.device) for u, r, e, _ in items]
    sync()
    t_alone = time.perf_counter() - t0
    rows = {"alone": {"seconds": t_alone, "checks_per_min": 60 * len(units) / t_alone}}
    for b in [int(v) for v in args.batch.split(",")]:
        check_units(m, layer, items[:1], device=args.device, batch=b)
        t0 = time.perf_counter()
        together = check_units(m, layer, items, device=args.device, batch=b)
        sync()
        dt = time.perf_counter() - t0
        diff = max(abs(a[k] - t[k]) for a, t in zip(alone, together) for k in NUMBERS)
        same = sum(a["verdict"] == t["verdict"] for a, t in zip(alone, together))
        rows[f"batch {b}"] = {"seconds": dt, "checks_per_min": 60 * len(units) / dt, "max_abs_diff": diff,
                              "same_verdicts": same}
    print(f"{m.meta.name or Path(args.model).stem} {layer}, {len(units)} units, 8 examples each, device "
          f"{args.device or ('cuda' if torch.cuda.is_available() else 'cpu')}, torch threads {torch.get_num_threads()}\n")
    print("| how | seconds | checks/min | vs one at a time | max |difference| | same verdicts |\n|---|---:|---:|---:|---:|---:|")
    base = rows["alone"]["checks_per_min"]
    for k, v in rows.items():
        print(f"| {k} | {v['seconds']:.2f} | {v['checks_per_min']:.1f} | {v['checks_per_min'] / base:.2f}x | "
              f"{v.get('max_abs_diff', 0):.2g} | {v.get('same_verdicts', len(units))}/{len(units)} |")
    verdicts = {}
    for a in alone:
        verdicts[a["verdict"]] = verdicts.get(a["verdict"], 0) + 1
    print(f"\nverdicts one at a time: {verdicts}")
    if args.json:
        Path(args.json).write_text(json.dumps({"layer": layer, "units": units, "rows": rows, "verdicts": verdicts},
                                              indent=1))


if __name__ == "__main__":
    main()
