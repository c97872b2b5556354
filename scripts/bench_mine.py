#!/usr/bin/env python
"""Benchmark dataset-example mining against plain inference, in one run, and write a table.

    python scripts/bench_mine.py                                   # models/mobilenet_v2.onnx
    python scripts/bench_mine.py --model models/googlenet.onnx --images 256 --threads 2
    python scripts/bench_mine.py --out docs/bench_mine.md

Measured (onnxruntime and torch with the same thread count, best of --repeat, 224 px):
  logits      onnxruntime forward, model outputs only (the speed of the model itself)
  full maps   onnxruntime with every mined layer exposed as a full tensor (the naive way)
  mining core onnxruntime with in-graph mean/max (GlobalAveragePool/GlobalMaxPool) for every channel
              of every layer, plus the streaming top/bottom-k update (preloaded input, no decoding)
  torch hooks torch eager forward (onnx2torch view of the same layers) + per-channel mean/max
  end to end  `onnxviz mine` from JPEG files: decoding in threads, model, top-k, SQLite store, and
              the second pass that finds the argmax positions of the examples
JPEGs: the real photos scripts/collect_photos.py gathers (foolbox, scikit-image, scikit-learn, ...), repeated.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))


def photos(folder: Path, n: int) -> Path:
    """n JPEG files (real photos, repeated under distinct names) in folder."""
    from collect_photos import collect  # scripts/collect_photos.py: the photos that ship in packages

    src = collect(folder.parent / "src", jpeg=True)
    if not src:
        sys.exit("no photos found (install foolbox --no-deps, scikit-image, scikit-learn)")
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        shutil.copy(src[i % len(src)], folder / f"{i:05d}_{src[i % len(src)].name}")
    return folder


def best_rate(fn, n_images: int, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return n_images / min(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(REPO / "models" / "mobilenet_v2.onnx"))
    ap.add_argument("--images", type=int, default=160, help="JPEG files for the end-to-end run")
    ap.add_argument("--batch-size", "--batch", dest="batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime / torch threads")
    ap.add_argument("--workers", type=int, default=2, help="decoder threads")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--out", default=None, help="write the table (markdown) here, e.g. docs/bench_mine.md")
    args = ap.parse_args(argv)

    import onnxviz
    import onnxviz.images
    from onnxviz.mining import TopK, mine

    model_path = Path(args.model)
    if not model_path.exists():
        sys.exit(f"{model_path} not found: python scripts/export.py mobilenet_v2 --out models/")
    m = onnxviz.load(model_path)
    layers = list(m.layers)
    units = sum(lay.units for lay in layers)
    work = Path(tempfile.mkdtemp(prefix="bench_mine_"))
    folder = photos(work / "jpeg", args.images)
    names = sorted(os.listdir(folder))[: args.batch * 2]
    x = m.prepare(np.stack([onnxviz.images.load_for_model(folder / n, m.meta) for n in names]))
    n = len(x)
    batches = [x[i:i + args.batch] for i in range(0, n, args.batch)]
    rows = []

    logits = m.session(threads=args.threads)
    r_logits = best_rate(lambda: [logits.run(b) for b in batches], n, args.repeat)
    rows.append(("onnxruntime, logits only", r_logits))
    full = m.session([lay.name for lay in layers], threads=args.threads)
    r_full = best_rate(lambda: [full.run(b) for b in batches], n, args.repeat)
    rows.append((f"onnxruntime, all {len(layers)} layers as full tensors", r_full))

    stats = m.stats_runner(None, threads=args.threads, stats=("mean", "max"))  # what mining's pass 1 runs
    tops = {(lay.name, s, d): TopK(lay.units, 16, d == "top") for lay in layers for s in ("mean", "max")
            for d in ("top", "bottom")}

    def core():
        for bi, b in enumerate(batches):
            out = stats.run(b)
            idx = np.arange(bi * args.batch, bi * args.batch + len(b))
            for (name, s, d), t in tops.items():
                t.update(out[name][s], idx)

    r_core = best_rate(core, n, args.repeat)
    rows.append((f"mining core: in-graph mean/max of {units} channels + top/bottom-16", r_core))

    r_torch = None
    if not args.no_torch:
        import torch

        torch.set_num_threads(args.threads)
        view = m.torch_view([lay.name for lay in layers], check=False)
        xt = [torch.from_numpy(b) for b in batches]

        def torch_hooks():
            with torch.no_grad():
                for b in xt:
                    for a in view(b).values():
                        if a.ndim == 4:
                            f = a.flatten(2)
                            f.mean(2), f.amax(2)

        r_torch = best_rate(torch_hooks, n, max(1, args.repeat - 1))
        rows.append(("torch eager (onnx2torch), all layers + per-channel reductions", r_torch))

    e2e = []
    for rep in range(max(1, args.repeat - 1)):
        s = mine(m, folder, work / f"run{rep}", top=16, bottom=16, batch_size=args.batch, threads=args.threads,
                 workers=args.workers, progress=False, thumbs=False)
        e2e.append(s.throughput)
    r_e2e = max(e2e)
    rows.append((f"end to end `onnxviz mine`, {args.images} JPEG files (decode in {args.workers} threads)", r_e2e))

    lines = [f"Model `{model_path.name}` ({len(layers)} layers, {units} channels), batch {args.batch}, "
             f"{args.threads} onnxruntime/torch threads, {os.cpu_count()} CPUs, best of {args.repeat}.", "",
             "| what | img/s |", "|---|---:|"]
    lines += [f"| {what} | {rate:.1f} |" for what, rate in rows]
    lines += ["", "| ratio | value | target |", "|---|---:|---:|",
              f"| mining core / logits only | {r_core / r_logits:.2f} | >= 0.9 |",
              f"| mining core / full tensors | {r_core / r_full:.2f} | |"]
    if r_torch:
        lines.append(f"| mining core / torch eager with hooks | {r_core / r_torch:.2f} | >= 2.5 |")
    lines += [f"| end to end from JPEG / logits only | {r_e2e / r_logits:.2f} | >= 0.8 |",
              f"| end to end from JPEG / mining core | {r_e2e / r_core:.2f} | |"]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("# Mining throughput (scripts/bench_mine.py)\n\n" + text + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
