#!/usr/bin/env python
"""Benchmark dataset-example mining against plain inference, start and steady state, in one run.

    python scripts/bench_mine.py                                    # MobileNetV2 and GoogLeNet from models/
    python scripts/bench_mine.py --models models/mobilenet_v2.onnx --photos 256
    python scripts/bench_mine.py --out docs/bench_mine.md

Per model (onnxruntime and torch with the same thread count, batch 32, 224 px):
  logits       onnxruntime forward, model outputs only (the speed of the model itself; best of 3)
  mining core  the statistics session (in-graph mean/max of every channel of every layer, fed uint8
               pixels that it preprocesses in its graph, as `onnxviz mine` does) plus the
               streaming top/bottom-16 update (in a thread, overlapping the next batch, as in
               `onnxviz mine`), on preloaded pixels (no decoding). "start": the first
               256 photos, when every list still changes; "steady": the same photos mirrored
               (new images, similar values) after all photos went in, when few lists change
  torch hooks  torch eager forward (onnx2torch view of the same layers) + per-channel mean/max
  end to end   `onnxviz mine` from JPEG files (decode threads, model, top-k, SQLite checkpoints):
               session 1 mines the photos (start), session 2 resumes over the mirrored copies
               (steady); "end of run" is session 2's pass 2 (argmax positions of the examples, when
               not inline) and examples table; "all" counts every image and the end of the run.
               Once per --variants entry FEED:POSITIONS (pixels:auto is the default of `mine`)
JPEGs: the real photos in data/photos (scripts/collect_photos.py; 544 with its Debian packages),
else the photos collect_photos finds in installed Python packages.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
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


def photos(work: Path, n: int, photo_dir: Path) -> Path:
    """A folder of n real JPEG photos ("a_*") followed by their mirror images ("b_*")."""
    from PIL import Image, ImageOps

    src = sorted(Path(photo_dir).glob("*.jpg"))
    if not src:
        from collect_photos import collect  # the photos that ship in installed packages

        src = collect(work / "src", jpeg=True)
    if not src:
        sys.exit("no photos found: python scripts/collect_photos.py data/photos")
    src = src[:n]
    folder = work / "jpeg"
    folder.mkdir(parents=True, exist_ok=True)
    for i, p in enumerate(src):
        shutil.copy(p, folder / f"a_{i:05d}.jpg")
        with Image.open(p) as im:
            ImageOps.mirror(im.convert("RGB")).save(folder / f"b_{i:05d}.jpg", quality=90)
    return folder


def best_rate(fn, n_images: int, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return n_images / min(times)


def bench_model(path: Path, folder: Path, args) -> dict:
    import onnxviz
    from onnxviz.mining import TopK
    from onnxviz.mining.datasets import decode_batches, open_source, to_batch
    from onnxviz.mining.mine import fuse_lists, update_lists

    m = onnxviz.load(path)
    layers = list(m.layers)
    names = [lay.name for lay in layers]
    src = open_source(folder)
    n = len(src) // 2
    # decoded as mining decodes: uint8 pixels, which its session preprocesses in the graph (pixelfeed.py);
    # the logits baseline and torch get the float input made on the host, outside their timing
    px = np.concatenate([b for b, _ in decode_batches(src, range(len(src)), m.meta, args.batch, 2, pixels=True)])
    x = to_batch(list(px), m.meta)
    bs = args.batch
    r = {"model": path.name, "layers": len(layers), "units": sum(lay.units for lay in layers), "photos": n}
    print(f"{path.name}: {n} photos + their mirror images", file=sys.stderr, flush=True)

    logits = m.session(threads=args.threads)
    few = [x[i:i + bs] for i in range(0, 2 * bs, bs)]
    r["logits"] = best_rate(lambda: [logits.run(b) for b in few], len(few) * bs, args.repeat)

    stats = m.stats_runner(None, threads=args.threads, stats=("mean", "max"), spin=False, pixels=True)  # pass 1's
    states = {(nm, s, d): TopK(lay.units, 16, d == "top") for nm, lay in zip(names, layers)
              for s in ("mean", "max") for d in ("top", "bottom")}
    fused = fuse_lists(states, names)
    stats.run(px[:bs])  # warm-up
    times, topk = [], []

    def update(out, idx):
        t1 = time.perf_counter()
        update_lists(fused, out, names, idx)
        topk.append(time.perf_counter() - t1)

    with cf.ThreadPoolExecutor(1) as post:  # as mine() does: the update overlaps the next batch
        busy = None
        for start in range(0, len(x), bs):  # photos, then their mirror images: one stream of new images
            t = time.perf_counter()
            out = stats.run(px[start:start + bs])
            if busy is not None:
                busy.result()
            busy = post.submit(update, out, np.arange(start, min(len(x), start + bs)))
            times.append(time.perf_counter() - t)
        busy.result()
    nb_start, nb_all = min(256, n) // bs, n // bs
    r["core_start"] = nb_start * bs / sum(times[:nb_start])
    r["core_steady"] = (len(times) - nb_all) * bs / sum(times[nb_all:])
    r["topk_start_ms"] = 1000 * float(np.mean(topk[:nb_start]))
    r["topk_steady_ms"] = 1000 * float(np.mean(topk[nb_all:]))
    few_px = [px[i:i + bs] for i in range(0, 2 * bs, bs)]
    r["stats_only"] = best_rate(lambda: [stats.run(b) for b in few_px], len(few_px) * bs, args.repeat)

    if not args.no_torch:
        import torch

        torch.set_num_threads(args.threads)
        view = m.torch_view(names, check=False)
        xt = [torch.from_numpy(b) for b in few]

        def torch_hooks():
            with torch.no_grad():
                for b in xt:
                    for a in view(b).values():
                        if a.ndim == 4:
                            f = a.flatten(2)
                            f.mean(2), f.amax(2)

        r["torch"] = best_rate(torch_hooks, len(xt) * bs, max(1, args.repeat - 1))

    # end to end in a fresh process, like a real `onnxviz mine` (torch and the preloaded arrays of
    # this one are not in its way)
    import json
    import subprocess

    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r["e2e"] = {}
    for variant in args.variants.split(","):  # FEED:POSITIONS, e.g. pixels:auto (the default) or floats:pass2
        feed, positions = variant.split(":")
        run = Path(tempfile.mkdtemp(prefix="bench_run_"))
        code = ("import json, sys, time; from onnxviz.mining import mine\n"
                "kw = dict(top=16, bottom=16, batch_size=%d, threads=%d, workers=%d, progress=False, thumbs=False, "
                "decoder=%r, pixels=%r, positions=%r)\n"
                "s1 = mine(%r, %r, %r, stop_after=%d, **kw)\n"
                "t = time.perf_counter(); s2 = mine(%r, %r, %r, **kw); wall = time.perf_counter() - t\n"
                "print(json.dumps([s1.throughput, s2.throughput, wall - s2.seconds, s2.stages,"
                " s2.images / (s1.seconds + wall)]))"
                % (bs, args.threads, args.workers, args.decoder, feed == "pixels", positions, str(path), str(folder),
                   str(run), n // bs, str(path), str(folder), str(run)))
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
        start, steady, end, stages, total = json.loads(res.stdout.strip().splitlines()[-1])
        r["e2e"][variant] = {"start": start, "steady": steady, "end_s": end, "stages": stages, "total": total}
        print(f"  e2e ({variant}): start {start:.1f}, steady {steady:.1f}, with the end of the run {total:.1f} img/s; "
              "second session: " + ", ".join(f"{k} {v:.1f} s" for k, v in stages.items()), file=sys.stderr,
              flush=True)
        shutil.rmtree(run, ignore_errors=True)
    first = r["e2e"][args.variants.split(",")[0]]
    r["e2e_start"], r["e2e_steady"], r["e2e_end_s"] = first["start"], first["steady"], first["end_s"]
    return r


def table(results: list, args) -> str:
    lines = [f"batch {args.batch}, {args.threads} onnxruntime/torch threads, {args.workers} decode {args.decoder}, "
             f"{os.cpu_count()} CPUs; img/s", "",
             "| model | logits | stats session | core start | core steady | torch hooks | e2e start | e2e steady |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['model']} ({r['layers']} layers, {r['units']} ch) | {r['logits']:.1f} | "
                     f"{r['stats_only']:.1f} | {r['core_start']:.1f} | {r['core_steady']:.1f} | "
                     f"{r.get('torch', float('nan')):.1f} | {r['e2e_start']:.1f} | {r['e2e_steady']:.1f} |")
    lines += ["", "| model | core / logits (start, steady) | core / torch hooks (start, steady) | "
              "e2e / logits (start, steady) | top-k ms/batch (start, steady) | end of run s |",
              "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        tq = (f"{r['core_start'] / r['torch']:.2f}, {r['core_steady'] / r['torch']:.2f}" if r.get("torch")
              else "")
        lines.append(f"| {r['model']} | {r['core_start'] / r['logits']:.2f}, {r['core_steady'] / r['logits']:.2f} "
                     f"| {tq} | {r['e2e_start'] / r['logits']:.2f}, {r['e2e_steady'] / r['logits']:.2f} | "
                     f"{r['topk_start_ms']:.0f}, {r['topk_steady_ms']:.0f} | {r['e2e_end_s']:.1f} |")
    lines += ["", f"end to end by variant, FEED:POSITIONS (e2e columns above: {args.variants.split(',')[0]}); "
              "'all' counts every image and the end of the run (pass 2, examples table)", "",
              "| model | variant | e2e start | e2e steady | all | e2e / logits (start, steady, all) | loop stages of "
              "the steady session, s | end of run s |", "|---|---|---:|---:|---:|---:|---|---:|"]
    for r in results:
        for variant, e in r["e2e"].items():
            stages = ", ".join(f"{k} {v:.1f}" for k, v in e["stages"].items() if k not in ("pass 2", "examples table"))
            lines.append(f"| {r['model']} | {variant} | {e['start']:.1f} | {e['steady']:.1f} | {e['total']:.1f} | "
                         f"{e['start'] / r['logits']:.2f}, {e['steady'] / r['logits']:.2f}, "
                         f"{e['total'] / r['logits']:.2f} | {stages} | {e['end_s']:.1f} |")
    lines += ["", "targets: core / logits >= 0.9, core / torch hooks >= 2.5, e2e / logits >= 0.8"]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=[str(REPO / "models" / "mobilenet_v2.onnx"),
                                                    str(REPO / "models" / "googlenet.onnx")])
    ap.add_argument("--photos", type=int, default=544, help="photos (each also mirrored: twice as many images)")
    ap.add_argument("--photo-dir", default=str(REPO / "data" / "photos"), help="collect_photos.py's folder")
    ap.add_argument("--batch-size", "--batch", dest="batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2, help="onnxruntime / torch threads")
    ap.add_argument("--workers", type=int, default=2, help="decoder threads (or processes)")
    ap.add_argument("--decoder", choices=["threads", "processes"], default="threads", help="end to end: how to decode")
    ap.add_argument("--variants", default="pixels:auto,floats:pass2",
                    help="end to end, FEED:POSITIONS each: uint8 pixels preprocessed in the graph or floats made on "
                    "the host; argmax positions auto, inline or in pass 2 (floats:pass2 is how mining ran before)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--out", default=None, help="write the table (markdown) here")
    args = ap.parse_args(argv)
    missing = [p for p in args.models if not Path(p).exists()]
    if missing:
        sys.exit(f"{', '.join(missing)} not found: python scripts/export.py mobilenet_v2 --out models/; "
                 "python scripts/export.py googlenet --random --out models/")
    work = Path(tempfile.mkdtemp(prefix="bench_mine_"))
    try:
        folder = photos(work, args.photos, args.photo_dir)
        results = []
        for p in args.models:
            results.append(bench_model(Path(p), folder, args))
            print(table(results[-1:], args).split("\n\n")[1], file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = table(results, args)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
