"""Load time (input-size probe + preprocessing inference) with and without pruning the sessions' graphs.

    python scripts/bench_prune.py FILE.onnx|CORPUS_NAME [...]

onnxruntime runs every node of a graph, whether an output needs it or not. The preprocessing evidence reads the
first layers (and classification heads) of the net under each candidate; ``edits.prune`` drops the rest from
each onnxruntime session (backends/ort.Runner). For each file, in one process: ``onnxviz.load`` with prune
replaced by the identity (the baseline), then as shipped; prints both times, their ratio and whether the
inferred preprocessing is the same.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import onnxviz
from onnxviz.backends import ort as ort_backend

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _path(name: str) -> Path:
    if name.endswith(".onnx"):
        return Path(name)
    import corpus

    return corpus.fetch_one(name)


def _load(path: Path, pruned: bool) -> tuple:
    real = ort_backend.prune
    if not pruned:
        ort_backend.prune = lambda proto: proto
    try:
        t0 = time.perf_counter()
        m = onnxviz.load(path)
        pre = m.meta.preprocessing()
        return time.perf_counter() - t0, {k: pre[k] for k in ("value_range", "mean", "std", "channel_order")}
    finally:
        ort_backend.prune = real


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    args = ap.parse_args(argv)
    print("| file | load, every node run (s) | load, pruned (s) | speed-up | same preprocessing |")
    print("|---|---|---|---|---|")
    for name in args.files:
        path = _path(name)
        before, meta_before = _load(path, pruned=False)
        after, meta_after = _load(path, pruned=True)
        print(f"| {Path(name).stem} | {before:.1f} | {after:.1f} | {before / after:.1f}x | "
              f"{'yes' if meta_before == meta_after else f'no: {meta_before} vs {meta_after}'} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
