#!/usr/bin/env python
"""Mining throughput of the engines, in one run: single process vs Ray with 1 and 2 workers.

    python scripts/bench_engines.py                     # models/mobilenet_v2.onnx, 192 JPEG files
    python scripts/bench_engines.py --images 320 --out docs/bench_engines.md

All runs mine the same JPEG files (real photos, repeated under distinct names; see bench_mine.py)
into fresh run directories with the same settings, and all give the same examples table (checked).
img/s is the whole command's rate: images / wall time from the call to the complete store, so
Ray's start (workers, model loading in each actor) is counted; "loop" excludes Ray's own start.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))


def rows(run: Path) -> list:
    db = sqlite3.connect(run / "mining" / "mining.sqlite")
    try:
        return db.execute("SELECT * FROM examples ORDER BY layer, unit, stat, dir, rank").fetchall()
    finally:
        db.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(REPO / "models" / "mobilenet_v2.onnx"))
    ap.add_argument("--images", type=int, default=192)
    ap.add_argument("--batch-size", "--batch", dest="batch", type=int, default=32)
    ap.add_argument("--photo-dir", default=str(REPO / "data" / "photos"), help="collect_photos.py's folder")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    import onnxviz
    from bench_mine import photos
    from onnxviz.engines import ray as R
    from onnxviz.mining import mine

    m = onnxviz.load(args.model)
    work = Path(tempfile.mkdtemp(prefix="bench_engines_"))
    folder = photos(work, max(1, args.images // 2), Path(args.photo_dir))  # photos + their mirror images
    cpus = os.cpu_count() or 1
    kw = dict(top=16, bottom=16, batch_size=args.batch, progress=False, thumbs=False)
    results = []
    t = time.perf_counter()
    s = mine(m, folder, work / "local", threads=cpus, workers=2, **kw)
    results.append(("single process (onnxruntime threads = CPUs, 2 decoder threads)", args.images / (time.perf_counter() - t),
                    s.throughput, work / "local"))
    for n in (1, 2):
        t = time.perf_counter()
        with R.session(num_cpus=cpus):
            s = R.mine(m, folder, work / f"ray{n}", workers=n, **kw)
        results.append((f"Ray, {n} worker{'s' if n > 1 else ''} (threads {max(1, cpus // n)} each)",
                        args.images / (time.perf_counter() - t), s.throughput, work / f"ray{n}"))
    ref = rows(work / "local")
    same = all(rows(r[3]) == ref for r in results[1:])
    base = results[0][1]
    lines = [f"Model `{Path(args.model).name}`, {args.images} JPEG files, batch {args.batch}, {cpus} CPUs; "
             f"examples identical to the single-process run: {same}.", "",
             "| engine | img/s (whole command) | img/s (loop) | vs single process |", "|---|---:|---:|---:|"]
    lines += [f"| {what} | {rate:.1f} | {loop:.1f} | {rate / base:.2f} |" for what, rate, loop, _ in results]
    text = "\n".join(lines)
    print(text)
    if args.out:
        Path(args.out).write_text("# Engine throughput (scripts/bench_engines.py)\n\n" + text + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
