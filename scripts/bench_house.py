#!/usr/bin/env python
"""Did the house refactor (issue 21) slow anything down? Old code (a checkout of c2a54e1) vs this tree,
interleaved in one run (A/B, then B/A: the machine is shared and noisy), on the real MobileNetV2.

    python scripts/bench_house.py --old /work/wt/base-c2a54e1 --bench alternating --rounds 8   # the fair one
    python scripts/bench_house.py --old /work/wt/base-c2a54e1 --bench render --rounds 1   # one chunk
    python scripts/bench_house.py --old /work/wt/base-c2a54e1 --bench mine --rounds 1
    python scripts/bench_house.py --old /work/wt/base-c2a54e1 --bench hash
    python scripts/bench_house.py --report                                               # the page

``alternating``: each side loaded once in its own process (PYTHONPATH = its tree), then every task
(load, render ms/step, the mining statistics session, ``mine()`` end to end) runs on one side, then
the other, the order flipping each round; the best run of each side is the least disturbed by
other jobs. ``render`` / ``mine``: each side runs its own copy of scripts/bench_render.py and
scripts/bench_mine.py (they import the package from their own tree) with quick options, in a fresh
process (whole scripts, so several seconds apart: noisier). Chunks append to
runs/bench_house/results.json, so a long measurement is several short commands; ``--report``
writes docs/bench_house.md with ratios new / old of the medians (ms/step: lower is better; img/s:
higher is better). ``hash``: a fixed-seed render of block_7 unit 0, saved as PNG by each side's
own code, must be byte-identical.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "runs" / "bench_house" / "results.json"
RENDER_ARGS = ["--no-lucent", "--steps", "10", "--batch", "4", "--quality-steps", "4", "--quality-units", "0"]
MINE_ARGS = ["--photos", "256", "--repeat", "3", "--no-torch", "--variants", "pixels:auto",  # 512 images
             "--photo-dir", str(REPO / "data" / "photos")]  # scripts/collect_photos.py (544 real photos)
HASH_CODE = """
import hashlib, sys, tempfile
import onnxviz
from onnxviz.optvis import objectives as obj, render
try:
    from onnxviz.preprocessing.images import save_image
except ImportError:  # c2a54e1
    from onnxviz.images import save_image
m = onnxviz.load(sys.argv[1])
r = render(m, obj.channel("block_7", 0), steps=int(sys.argv[2]), seed=0, progress=False)
out = tempfile.mkdtemp() + "/unit0.png"
save_image(r.images[0], out)
print(hashlib.sha256(open(out, "rb").read()).hexdigest())
"""


WORKER_CODE = """
import json, shutil, sys, tempfile, time
import numpy as np
import torch
torch.set_num_threads(2)
import onnxviz
from onnxviz.mining import mine
from onnxviz.mining.datasets import decode_batches, open_source
from onnxviz.optvis import objectives as obj, render
path, folder = sys.argv[1], sys.argv[2]
m = onnxviz.load(path)
view = m.torch_view([m.layer("block_7").name])
unit = obj.channel("block_7", 12)
render(m, unit, steps=3, size=128, view=view, redirect_steps=0, fit_input=False, progress=False)  # warm-up
src = open_source(folder)
px = np.concatenate([b for b, _ in decode_batches(src, range(64), m.meta, 32, 2, pixels=True)])
stats = m.stats_runner(None, threads=2, stats=("mean", "max"), spin=False, pixels=True)
stats.run(px[:32])
print("ready", flush=True)
for line in sys.stdin:
    what = line.strip()
    t = time.perf_counter()
    if what == "load ms":
        onnxviz.load(path)
        v = 1000 * (time.perf_counter() - t)
    elif what == "render ms/step":
        v = render(m, unit, steps=10, size=128, view=view, redirect_steps=0, fit_input=False,
                   progress=False).record["ms_per_step"]
    elif what == "render default ms/step":
        v = render(m, unit, steps=10, size=128, view=view, redirect_steps=0, progress=False).record["ms_per_step"]
    elif what == "stats session img/s":
        stats.run(px[:32]); stats.run(px[32:])
        v = 64 / (time.perf_counter() - t)
    elif what == "mine img/s":
        run = tempfile.mkdtemp()
        s = mine(path, folder, run, top=16, bottom=16, batch_size=32, threads=2, workers=2, progress=False,
                 thumbs=False)
        v = s.images / (time.perf_counter() - t)
        shutil.rmtree(run, ignore_errors=True)
    print(json.dumps(v), flush=True)
"""
TASKS = ["load ms", "render ms/step", "render default ms/step", "stats session img/s", "mine img/s"]


def alternating(sides: dict, model: Path, rounds: int, images: int, done=None) -> dict:
    """Both sides loaded once in their own process, then each task timed on one side, then the other,
    the order flipping every round: A/B, B/A, ... (each side idles while the other runs)."""
    import shutil

    work = Path(tempfile.mkdtemp(prefix="bench_house_"))
    folder = work / "photos"
    folder.mkdir()
    for p in sorted((REPO / "data" / "photos").glob("*.jpg"))[:images]:
        shutil.copy(p, folder / p.name)
    procs = {}
    try:
        for side, tree in sides.items():
            procs[side] = subprocess.Popen([sys.executable, "-c", WORKER_CODE, str(model), str(folder)], cwd=tree,
                                           env=dict(os.environ, PYTHONPATH=str(tree)), stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE, stderr=open(work / f"{side}.err", "w"), text=True)
        for side, proc in procs.items():
            if proc.stdout.readline().strip() != "ready":
                sys.exit(f"{side} worker failed:\n{(work / f'{side}.err').read_text()[-3000:]}")
        got = {side: {t: [] for t in TASKS} for side in sides}
        for i in range(rounds):
            order = ["old", "new"] if i % 2 == 0 else ["new", "old"]
            for task in TASKS:
                for side in order:
                    procs[side].stdin.write(task + "\n")
                    procs[side].stdin.flush()
                    got[side][task].append(json.loads(procs[side].stdout.readline()))
            print(f"round {i + 1}/{rounds}", file=sys.stderr, flush=True)
            if done is not None:  # a chunk cut short by its time limit keeps the rounds it finished
                done(got, i + 1)
        return got
    finally:
        for proc in procs.values():
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)


def shared_model(onnx_path: Path) -> Path:
    """A copy of the export that both versions read: metadata fields c2a54e1 does not know are dropped
    when empty (any other value stops the benchmark: the two sides would not run the same model)."""
    import onnx

    out = RESULTS.parent / "mobilenet_v2_shared.onnx"
    if out.exists() and out.stat().st_mtime >= onnx_path.stat().st_mtime:
        return out
    m = onnx.load(str(onnx_path))
    for p in m.metadata_props:
        if p.key == "onnxviz":
            meta = json.loads(p.value)
            for field in ("conflicts",):
                if meta.get(field):
                    sys.exit(f"{onnx_path}: metadata field {field!r} is set ({meta[field]!r}); c2a54e1 cannot read it")
                meta.pop(field, None)
            p.value = json.dumps(meta)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(out))
    return out


def run_side(tree: Path, argv: list, timeout: int) -> tuple:
    """Run a command with ``tree``'s package first on the path; (stdout, seconds)."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    t = time.perf_counter()
    res = subprocess.run([sys.executable] + argv, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    if res.returncode:
        sys.exit(f"{tree}: {' '.join(argv[:2])} failed ({res.returncode}):\n{res.stderr[-3000:]}")
    return res.stdout, time.perf_counter() - t


def bench_render(tree: Path, model: Path) -> dict:
    """ms/step of each row of bench_render.py's table, and of the batch line."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "render.md"
        run_side(tree, [str(tree / "scripts" / "bench_render.py"), "--onnx", str(model), "--out", str(out)]
                 + RENDER_ARGS, 340)
        text = out.read_text()
    rows = {m.group(1).strip(): float(m.group(2)) for m in re.finditer(r"^\| ([^|]+) \| ([\d.]+) \| [\d.]+x \|$",
                                                                       text, re.M)}
    batch = re.search(r"Batch of (\d+) channels in one render: ([\d.]+) ms/step", text)
    rows[f"batch of {batch.group(1)} channels in one render"] = float(batch.group(2))
    return rows


def bench_mine(tree: Path, model: Path) -> dict:
    """img/s of the columns of bench_mine.py's first table."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "mine.md"
        run_side(tree, [str(tree / "scripts" / "bench_mine.py"), "--models", str(model), "--out", str(out)]
                 + MINE_ARGS, 340)
        lines = [ln for ln in out.read_text().splitlines() if ln.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    row = [c.strip() for c in lines[2].strip("|").split("|")]
    return {h: float(v) for h, v in zip(head[1:], row[1:]) if v not in ("nan", "")}


def render_hash(tree: Path, model: Path, steps: int) -> str:
    out, _ = run_side(tree, ["-c", HASH_CODE, str(model), str(steps)], 300)
    return out.strip().splitlines()[-1]


def _best(task: str, values: list) -> float:
    """The fastest of the runs: the least disturbed by other jobs (a time: the smallest; a rate: the largest)."""
    return max(values) if task.endswith("/s") else min(values)


def load_results() -> list:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else []


def save(entry: dict) -> None:
    results = load_results() + [entry]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1))


def report(out: Path) -> str:
    results = load_results()
    lines = ["# House refactor (issue 21): old code vs new, same run", "",
             "Commands (each chunk under the CPU lock, sides interleaved A/B then B/A; the 2 cores are shared "
             "with other jobs, so only ratios within a run mean anything):", "", "```",
             "python scripts/bench_house.py --old /work/wt/base-c2a54e1 --bench alternating --rounds 8 --images 128",
             "python scripts/bench_house.py --old /work/wt/base-c2a54e1 --bench render --rounds 1   # several times",
             "python scripts/bench_house.py --old /work/wt/base-c2a54e1 --bench mine --rounds 1",
             "python scripts/bench_house.py --old /work/wt/base-c2a54e1 --bench hash",
             "python scripts/bench_house.py --report", "```", "",
             f"Old: {sorted({r['old_commit'] for r in results})}; new: {sorted({r['new_commit'] for r in results})}. "
             "Render rows: ms/step (lower is better), fastest of 3 runs after 3 warm-up steps, 128 px unless said; "
             "mining rows: img/s (higher is better). Each table: one set of options, medians over its rounds; "
             "the native-module render rows do not depend on onnxviz's model code: their spread is the noise.", ""]
    groups: dict = {}
    for r in results:
        if r["bench"] in ("render", "mine"):
            args = r.get("args", RENDER_ARGS if r["bench"] == "render" else None)
            groups.setdefault((r["bench"], json.dumps(args)), []).append(r)
    for (bench, args), runs in groups.items():
        shown = " ".join(json.loads(args) or ["(options not recorded)"]).replace(str(REPO) + "/", "")
        lines += [f"## {bench}: `bench_{bench}.py {shown}` ({len(runs)} rounds)", "",
                  "| what | old | new | new / old | per round (new / old) |", "|---|---:|---:|---:|---|"]
        for key in runs[0]["old"]:
            old = [r["old"][key] for r in runs if key in r["old"] and key in r["new"]]
            new = [r["new"][key] for r in runs if key in r["old"] and key in r["new"]]
            per = ", ".join(f"{n / o:.2f}" for o, n in zip(old, new))
            lines.append(f"| {key} | {statistics.median(old):.1f} | {statistics.median(new):.1f} | "
                         f"**{statistics.median(new) / statistics.median(old):.2f}** | {per} |")
        lines.append("")
    for r in [r for r in results if r["bench"] == "alternating"]:
        lines += [f"## Alternating: both sides loaded once, each task on one side then the other, order flipped every "
                  f"round ({r['rounds']} rounds; mine: {r['images']} photos)", "",
                  "Render at 128 px, 10 steps, block_7 unit 12; stats session: the in-graph statistics of every "
                  "layer on 64 uint8 photos (the mining core); mine: `mine()` end to end (decode, statistics, top-k, "
                  "SQLite, pass 2) in a fresh run directory. Best = the run least disturbed by other jobs.", "",
                  "| what | old best | new best | new / old (best) | old median | new median | new / old (median) |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for task in r["old"]:
            o, n = r["old"][task], r["new"][task]
            lines.append(f"| {task} | {_best(task, o):.1f} | {_best(task, n):.1f} | **{_best(task, n) / _best(task, o):.2f}** "
                         f"| {statistics.median(o):.1f} | {statistics.median(n):.1f} | "
                         f"{statistics.median(n) / statistics.median(o):.2f} |")
        lines.append("")
    hashes = [r for r in results if r["bench"] == "hash"]
    if hashes:
        lines += ["## Fixed-seed render, byte for byte", ""]
        for r in hashes:
            same = "identical" if r["old"] == r["new"] else "DIFFERENT"
            lines.append(f"- block_7 unit 0, {r['steps']} steps, seed 0, 224 px, PNG saved by each side: {same} "
                         f"(old {r['old'][:16]}, new {r['new'][:16]})")
        lines.append("")
    text = "\n".join(lines)
    out.write_text(text)
    return text


def commit(tree: Path) -> str:
    return subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip() + ("+" if subprocess.run(
                              ["git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no"],
                              capture_output=True, text=True).stdout.strip() else "")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", type=Path, help="a checkout of the old code (c2a54e1)")
    ap.add_argument("--new", type=Path, default=REPO, help="the new code (default: this tree)")
    ap.add_argument("--onnx", type=Path, default=REPO / "models" / "mobilenet_v2.onnx")
    ap.add_argument("--bench", choices=["alternating", "render", "mine", "hash"])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--images", type=int, default=128, help="alternating: photos that mine img/s mines")
    ap.add_argument("--hash-steps", type=int, default=8)
    ap.add_argument("--report", action="store_true", help="write docs/bench_house.md from the rounds so far")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "bench_house.md")
    args = ap.parse_args(argv)
    if args.report:
        print(report(args.out))
        return 0
    if not (args.old and args.bench):
        ap.error("--old and --bench (or --report)")
    if not args.onnx.exists():
        sys.exit(f"{args.onnx} not found: python scripts/export.py mobilenet_v2 --out models/")
    model = shared_model(args.onnx)
    sides = {"old": args.old.resolve(), "new": args.new.resolve()}
    base = {"bench": args.bench, "old_commit": commit(sides["old"]), "new_commit": commit(sides["new"])}
    if args.bench == "hash":
        got = {k: render_hash(tree, model, args.hash_steps) for k, tree in sides.items()}
        save(dict(base, steps=args.hash_steps, **got))
        print(f"old {got['old']}\nnew {got['new']}\n{'identical' if got['old'] == got['new'] else 'DIFFERENT'}")
        return 0
    if args.bench == "alternating":
        first = len(load_results())

        def keep(got, rounds):
            results = load_results()[:first] + [dict(base, rounds=rounds, images=args.images, **got)]
            RESULTS.write_text(json.dumps(results, indent=1))

        got = alternating(sides, model, args.rounds, args.images, keep)
        for task in TASKS:
            o, n = got["old"][task], got["new"][task]
            print(f"{task}: best new / old {_best(task, n) / _best(task, o):.2f}, median {statistics.median(n) / statistics.median(o):.2f}")
        return 0
    fn = bench_render if args.bench == "render" else bench_mine
    done = sum(1 for r in load_results() if r["bench"] == args.bench)
    for i in range(args.rounds):
        order = ["old", "new"] if (done + i) % 2 == 0 else ["new", "old"]  # A/B, then B/A
        got = {}
        for side in order:
            t = time.perf_counter()
            got[side] = fn(sides[side], model)
            print(f"{args.bench} {side}: {time.perf_counter() - t:.0f} s {got[side]}", file=sys.stderr, flush=True)
        save(dict(base, order=order, args=RENDER_ARGS if args.bench == "render" else MINE_ARGS, **got))
        for key in got["old"]:
            if key in got["new"]:
                print(f"{key}: new / old {got['new'][key] / got['old'][key]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
