"""Render time of large-input files, before and after (graph/dynamic_size.py + optvis/render_size.py).

    python scripts/bench_large_inputs.py FILE.onnx|CORPUS_NAME [...] [--steps 64] [--before-steps 8] [--no-infer] [--json OUT]

For each file, in one process: units 0-3 of its middle layer (the corpus report's, file_check.pick_layers) rendered
in one batch at the default size. "Before": the file loaded as it is (its fixed size kept, so the
render runs at the whole input size, as onnxviz did before); its time is ``--before-steps`` steps
measured and scaled to ``--steps`` (a whole run at 1024-1600 px takes minutes). "After": the file
made dynamic where onnxruntime agrees, rendered at the size the unit's receptive field needs, all
``--steps`` steps. Median rise: over the 4 units, corpus_check.rise (end / start, or the climb in units
of the channel's spread over 6 photos when the start is at or below it). Prints a
Markdown table (docs/large_inputs.md).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

import onnxviz
from onnxviz.file_check import pick_layers
from onnxviz.graph import dynamic_size
from onnxviz.optvis import objectives as obj
from onnxviz.optvis.render import render

sys.path.insert(0, str(Path(__file__).parent))
import corpus_check  # noqa: E402 - the corpus report's layer choice and rise


def _one(path: Path, steps: int, dynamic: bool, infer: bool = True) -> dict:
    keep = dynamic_size.LARGE
    if not dynamic:
        dynamic_size.LARGE = 10 ** 9  # the file's fixed size kept, as before
    try:
        t0 = time.perf_counter()
        model = onnxviz.load(path, infer=infer)
        load_s = time.perf_counter() - t0
    finally:
        dynamic_size.LARGE = keep
    layer = pick_layers(model)[1]
    units = list(range(min(4, layer.units or 4)))
    x = model.prepare(model.load_images(sorted(PHOTOS.iterdir())))
    spread = model.channel_stats(x, [layer.name], batch_size=1)[layer.name]["mean"][:, units].std(0)
    t0 = time.perf_counter()
    res = render(model, obj.channel(layer.name, units), steps=steps, device="cpu", progress=False)
    seconds = time.perf_counter() - t0
    rec = res.record
    rises = [corpus_check.rise(s, e, d) for s, e, d in zip(rec["activation_start"], rec["activation_end"], spread)]
    return {"layer": layer.name, "input": "x".join(map(str, model.meta.input_size)), "size": rec["size"],
            "why": rec.get("size_choice", ""), "seconds": seconds, "ms_per_step": rec["ms_per_step"],
            "load_s": load_s, "rise": statistics.median(rises) if rises else float("nan"),
            "note": getattr(model, "size_note", ""), "rises": [round(r, 2) for r in rises],
            "start": rec["activation_start"], "end": rec["activation_end"], "spread": [float(d) for d in spread],
            "op": layer.op, "source": getattr(model.meta, "preprocessing_source", "")}


PHOTOS = None
GOAL = 5.0  # issue 25's render goal: median rise of units 0-3 of a middle layer >= 5x, no render over 5 min


def summary(path: Path) -> None:
    """The render goal over the files of a --json file (the last line of each file counts)."""
    rows = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        rows[Path(r["file"]).stem] = r
    ok = [n for n, r in rows.items() if r.get("rise", 0) >= GOAL]
    print(f"{len(ok)}/{len(rows)} files with a median rise >= {GOAL:g}x; longest render "
          f"{max(r.get('seconds', 0) for r in rows.values()):.0f} s (4 units x {next(iter(rows.values()))['steps']} steps)\n")
    print("| file | input | middle layer (op) | render size | render (s) | load (s) | median rise | units 0-3 |")
    print("|---|---|---|---|---|---|---|---|")
    for n, r in rows.items():
        if "error" in r:
            print(f"| {n} | | | | | | fails | {r['error'][:160]} |")
            continue
        print(f"| {n} | {r['input']} | {r['layer']} ({r['op']}) | {'x'.join(map(str, r['size']))} | {r['seconds']:.0f} "
              f"| {r['load_s']:.0f} | {r['rise']:.1f}x | {', '.join(f'{x:.1f}' for x in r['rises'])} |")


def main() -> None:
    global PHOTOS
    ap = argparse.ArgumentParser()
    ap.add_argument("files", nargs="*", type=Path, help="ONNX files, or names of tests/corpus.json entries")
    ap.add_argument("--summary", type=Path, help="print the render-goal table of a --json file and stop")
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--before-steps", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, help="append one JSON line per file here (a corpus measured file by file)")
    ap.add_argument("--no-infer", action="store_true",
                    help="preprocessing from the file's own sources only (what the statistics would only check when "
                         "those are complete, e.g. Ultralytics metadata): skips running 16 photos at the full size")
    a = ap.parse_args()
    if a.summary:
        return summary(a.summary)
    torch.set_num_threads(a.threads)
    PHOTOS = corpus_check.photo_folder()
    rows = []
    for f in a.files:
        name = f.name
        if not f.exists() and f.suffix != ".onnx":  # a corpus entry's name: fetched (or derived) into the cache
            import corpus

            f = corpus.fetch_one(name)
        infer = not a.no_infer
        try:
            before = _one(f, a.before_steps, dynamic=False, infer=infer) if a.before_steps else None
            after = _one(f, a.steps, dynamic=True, infer=infer)
        except Exception as exc:  # noqa: BLE001 - a file that cannot render is a row of the goal, not the end
            why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            print(f"{name}: cannot render: {why}", flush=True)
            if a.json:
                with open(a.json, "a") as out:
                    out.write(json.dumps({"file": name, "error": why, "steps": a.steps}) + "\n")
            continue
        if before is None:  # --before-steps 0: no before run (4 renders at 1600 px need over 10 GB)
            before = dict(after, ms_per_step=float("nan"), size="-", load_s=float("nan"))
        before_64 = before["ms_per_step"] * a.steps / 1000
        if a.json:
            with open(a.json, "a") as out:
                out.write(json.dumps({"file": name, **{k: v for k, v in after.items()}, "before_ms_per_step":
                                      before["ms_per_step"], "steps": a.steps}, default=str) + "\n")
        rows.append((f.name, after["input"], after["layer"], "x".join(map(str, after["size"])), before_64,
                     after["seconds"], before_64 / after["seconds"], after["rise"], after["note"], after["why"],
                     before["load_s"], after["load_s"]))
        print(f"{f.name}: before {before['ms_per_step']:.0f} ms/step at {before['size']}, after "
              f"{after['ms_per_step']:.0f} ms/step at {after['size']} ({after['why']}); {after['note']}", flush=True)
    print(f"\n| file | input | middle layer | render size chosen | 4 units x {a.steps} steps before (s) | after (s) "
          f"| speed-up | median rise after | load before / after (s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]:.0f} | {r[5]:.0f} | {r[6]:.1f}x | {r[7]:.1f}x "
              f"| {r[10]:.0f} / {r[11]:.0f} |")
    for r in rows:
        print(f"\n{r[0]}: {r[8]}. Size: {r[9]}.")


if __name__ == "__main__":
    main()
