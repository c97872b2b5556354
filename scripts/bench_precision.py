"""Mixed precision and channels_last: does a batch of units reach the same activation as in float32, and faster?

    python scripts/bench_precision.py models/mobilenet_v2.onnx --layer block_7 --units 0-3 --steps 32

Renders ``--units`` as one batch once per setting (``--settings``, default: fp32 one unit at a time as
the base (``:alone``), then in one batch fp32 without channels_last, fp32, bf16 and fp16 with it),
same seed, steps and transforms, through the render API
(``recipes.render_layer``: what `onnxviz render --layer` and `onnxviz microscope` run). Every setting's
end activation is measured in float32 on the final image (the record's ``activation_end``), so the
ratios compare pictures, not arithmetic. Prints per setting ms per unit-step (the records' render
seconds; one untimed step first), the speed against the first setting, and per unit activation /
the first setting's: the median and the worst, and how many are within 5% (the goal).
scripts/bench_gpu_render.py runs the same comparison on a CUDA device.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SETTINGS = "fp32:cl:alone,fp32:nocl,fp32:cl,bf16:cl,fp16:cl"


def compare(model, layer: str, units: list, steps: int, device, settings: str = SETTINGS, seed: int = 0) -> list:
    """Rows {setting, precision, channels_last, ms_per_unit_step, speed, ratios, median, worst, within_5pct}."""
    from onnxviz.optvis import recipes

    rows = []
    for setting in settings.split(","):
        precision, cl, *alone = setting.split(":")
        kw = dict(steps=steps, seed=seed, device=device, progress=False, precision=precision,
                  channels_last=cl == "cl", batch_size=1 if alone else len(units))
        for _ in recipes.render_layer(model, layer, units[:kw["batch_size"]], **dict(kw, steps=1)):
            pass  # warm-up
        results = [r for _, r in recipes.render_layer(model, layer, units, **kw)]
        rows.append({"setting": setting, "precision": precision, "channels_last": cl == "cl",
                     "ms_per_unit_step": 1e3 * sum(r.record["seconds"] for r in results) / (steps * len(units)),
                     "end": [e for r in results for e in r.record["activation_end"]]})
    base = rows[0]
    for row in rows:
        row["speed"] = base["ms_per_unit_step"] / row["ms_per_unit_step"]
        row["ratios"] = [e / b if b else float("nan") for e, b in zip(row["end"], base["end"])]
        row["median"] = statistics.median(row["ratios"])
        row["worst"] = max(row["ratios"], key=lambda q: abs(q - 1))
        row["within_5pct"] = sum(abs(q - 1) <= 0.05 for q in row["ratios"])
    return rows


def table(rows: list) -> str:
    lines = ["| setting | ms/unit-step | speed vs first | activation / first: median | worst | within 5% |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['setting']} | {r['ms_per_unit_step']:.1f} | {r['speed']:.2f}x | {r['median']:.3f} | "
                     f"{r['worst']:.3f} | {r['within_5pct']}/{len(r['ratios'])} |")
    return "\n".join(lines)


def main() -> None:
    import torch

    import onnxviz
    from onnxviz.runs.render_jobs import parse_units

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--layer", default="block_7")
    ap.add_argument("--units", default="0-3")
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--settings", default=SETTINGS,
                    help="precision:cl|nocl[:alone], comma-separated; the first is the base")
    ap.add_argument("--device", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    m = onnxviz.load(args.model)
    units = parse_units(args.units)
    rows = compare(m, args.layer, units, args.steps, args.device, args.settings)
    dev = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    print(f"{m.meta.name or Path(args.model).stem} {args.layer}, units {args.units} in one batch, {args.steps} steps, "
          f"seed 0, device {dev}, torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print(table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
