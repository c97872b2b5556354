"""The reliability check, one unit at a time vs many units in shared passes: checks/min and the same verdicts.

    python scripts/bench_reliability.py models/mobilenet_v2.onnx data/photos --layer block_14 --units 0-15
    python scripts/bench_reliability.py models/googlenet.onnx data/photos --layer inception4d --units 0-15
    python scripts/bench_reliability.py models/mobilenet_v2.onnx data/photos --stage runs/m   # a microscope run

Each unit's top 8 of ``--photos`` photos (by channel mean, onnxruntime) are its examples and its 9th best
photo stands in for its render (time does not depend on the picture; a real photo gives real verdicts).
One at a time is ``optvis.reliability.check`` per unit (what the microscope's stage ran before); together
is ``check_units`` over all units with ``--batch`` images per pass. Both after one untimed check (the
view's conversion). Prints checks/min of each, the ratio, and the largest difference of any number of
the reports and whether every verdict is the same. Loading photos and opening the mining run are not
timed in either (the stage now does them once per 32 units instead of once per unit: a further gain).

``--stage RUN``: the microscope's reliability stage as a whole on the channel renders of a finished run
(PNG read, mining run opened, examples loaded, check, record written): ``trust.attach_reliability`` per
unit (what the stage ran before) vs ``trust.attach_reliability_units`` (what it runs now), same verdicts.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NUMBERS = ("score", "path_similarity", "natural_similarity", "explained", "activation")


def measure(m, layer: str, units: list, photo_dir, n_photos: int = 48, batches=(8, 32), device=None) -> dict:
    """{"alone": {...}, "batch B": {...}}: seconds, checks/min, and for the batched rows the largest difference
    of any number against one at a time and how many verdicts are the same (see the module docstring)."""
    import numpy as np
    import torch

    from onnxviz.optvis.reliability import check, check_units
    from onnxviz.preprocessing.images import image_files

    paths = image_files(photo_dir, n_photos)
    images = np.asarray(m.load_images(paths), np.float32)
    acts = m.channel_stats(m.prepare(images), [layer])[layer]["mean"]
    items = []
    for u in units:
        order = np.argsort(-acts[:, u])
        items.append((u, images[order[8]][None], images[order[:8]], None))
    cuda = torch.device(device).type == "cuda" if device else torch.cuda.is_available()
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    check(m, items[0][1], layer, items[0][0], items[0][2], device=device)  # untimed: conversion
    t0 = time.perf_counter()
    alone = [check(m, r, layer, u, e, device=device) for u, r, e, _ in items]
    sync()
    t_alone = time.perf_counter() - t0
    rows = {"alone": {"seconds": t_alone, "checks_per_min": 60 * len(units) / t_alone}}
    for b in batches:
        check_units(m, layer, items[:1], device=device, batch=b)
        t0 = time.perf_counter()
        together = check_units(m, layer, items, device=device, batch=b)
        sync()
        dt = time.perf_counter() - t0
        diff = max(abs(a[k] - t[k]) for a, t in zip(alone, together) for k in NUMBERS)
        same = sum(a["verdict"] == t["verdict"] for a, t in zip(alone, together))
        rows[f"batch {b}"] = {"seconds": dt, "checks_per_min": 60 * len(units) / dt, "max_abs_diff": diff,
                              "same_verdicts": same}
    verdicts: dict = {}
    for a in alone:
        verdicts[a["verdict"]] = verdicts.get(a["verdict"], 0) + 1
    return {"layer": layer, "units": list(units), "rows": rows, "verdicts": verdicts}


def stage(m, run, batch: int = 8, device=None) -> dict:
    """The reliability stage both ways on every FFT channel render of microscope run ``run``."""
    from onnxviz.microscope.stages import CHECK_UNITS
    from onnxviz.preprocessing.images import load_image
    from onnxviz.runs import trust

    size = tuple(int(v) for v in m.meta.input_size)
    by_layer: dict = {}
    for png in sorted(Path(run, "render").glob("*/channel_*.png")):
        if png.stem.count("_") == 1:
            rec = json.loads(png.with_suffix(".json").read_text())
            by_layer.setdefault(rec["layer"], []).append((png, rec["unit"]))
    n = sum(len(v) for v in by_layer.values())
    for layer, todo in by_layer.items():  # untimed: each layer's view is converted once, for both ways
        trust.attach_reliability(m, todo[0][0], load_image(todo[0][0], size), layer, todo[0][1], run, device=device)
    t0 = time.perf_counter()
    alone = [trust.attach_reliability(m, png, load_image(png, size), layer, u, run, device=device)
             for layer, todo in by_layer.items() for png, u in todo]
    t_alone = time.perf_counter() - t0
    t0 = time.perf_counter()
    together = []
    for layer, todo in by_layer.items():
        for i in range(0, len(todo), CHECK_UNITS):
            items = [(png, load_image(png, size), u) for png, u in todo[i:i + CHECK_UNITS]]
            together += trust.attach_reliability_units(m, layer, items, run, device=device, batch=batch)
    t_together = time.perf_counter() - t0
    same = sum(a.get("verdict") == t.get("verdict") for a, t in zip(alone, together))
    diff = max((abs(a[k] - t[k]) for a, t in zip(alone, together) if "score" in a for k in NUMBERS), default=0.0)
    verdicts: dict = {}
    for a in alone:
        verdicts[a.get("verdict")] = verdicts.get(a.get("verdict"), 0) + 1
    return {"layer": ",".join(by_layer), "units": list(range(n)), "verdicts": verdicts,
            "rows": {"alone": {"seconds": t_alone, "checks_per_min": 60 * n / t_alone},
                     f"batch {batch}": {"seconds": t_together, "checks_per_min": 60 * n / t_together,
                                        "max_abs_diff": diff, "same_verdicts": same}}}


def table(result: dict) -> str:
    n = len(result["units"])
    lines = ["| how | seconds | checks/min | vs one at a time | max abs difference | same verdicts |",
             "|---|---:|---:|---:|---:|---:|"]
    base = result["rows"]["alone"]["checks_per_min"]
    for k, v in result["rows"].items():
        lines.append(f"| {k} | {v['seconds']:.2f} | {v['checks_per_min']:.1f} | {v['checks_per_min'] / base:.2f}x | "
                     f"{v.get('max_abs_diff', 0):.2g} | {v.get('same_verdicts', n)}/{n} |")
    return "\n".join(lines) + f"\n\nverdicts one at a time: {result['verdicts']}"


def main() -> None:
    import torch

    import onnxviz
    from onnxviz.runs.render_jobs import parse_units

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("images")
    ap.add_argument("--layer", default="block_14")
    ap.add_argument("--units", default="0-15")
    ap.add_argument("--photos", type=int, default=48)
    ap.add_argument("--batch", default="8,32", help="images per pass of the batched check (several: each timed)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--stage", default=None, help="a finished microscope run: time its reliability stage both ways")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    m = onnxviz.load(args.model)
    if args.stage:
        result = stage(m, args.stage, int(args.batch.split(",")[0]), args.device)
        print(f"the reliability stage on {args.stage}: {len(result['units'])} channel renders of {result['layer']}\n")
        print(table(result))
        return
    layer = m.layer(args.layer).name
    units = parse_units(args.units)
    result = measure(m, layer, units, args.images, args.photos, [int(v) for v in args.batch.split(",")], args.device)
    print(f"{m.meta.name or Path(args.model).stem} {layer}, {len(units)} units, 8 examples each, device "
          f"{args.device or ('cuda' if torch.cuda.is_available() else 'cpu')}, torch threads {torch.get_num_threads()}\n")
    print(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
