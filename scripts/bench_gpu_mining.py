#!/usr/bin/env python
"""Mining against the model's own speed: logits-only rate vs the mining core and `mine` end to end,
with the in-graph top-k candidates (graph/batch_topk.py) and without, in one run; JSON out.

    python scripts/bench_gpu_mining.py                       # on a lent GPU: CUDA EP, batch 256
    python scripts/bench_gpu_mining.py --cpu --batch 32      # the same on this machine's CPU
    python scripts/bench_gpu_mining.py --cpu --batch 8 --limit 24 --repeat 1 --batches 2 out.json  # smoke test

Measured (MobileNetV2, models/mobilenet_v2.onnx; real photos from data/photos):
  logits        the model alone on float input made on the host (the host-to-device copy counted), best of
                a few batches: the rate mining is held to (goal: end to end >= 0.8x of it)
  session       the statistics session as `mine` runs it (uint8 pixels in, mean/max, and argmax inline
                on CUDA), whole rows out ("host") or candidates out ("graph")
  core          that session plus the top/bottom-16 update on the host, overlapped as in `mine` (one
                thread infers while another updates), over distinct batches of the decoded photos
                (each batch shifted by a few pixels so that no image ties with another); ms per batch
                of inference and of the update, img/s; "host" is the old path, "graph" the new one
  decode        JPEG decode + resize + crop of the photos (mining's decode_bytes), in one process and in
                every core's process (the rate end to end cannot beat); in one process also the full
                decode and JPEG draft at 1x (reduced-size decoding as soon as the photo allows the
                resize), each with its pixel difference from the full decode; and mine's decoders alone
                (batches delivered to the loop, no model: what crosses from the decoder processes)
  end to end    the real `mine` from the JPEG files (listed --repeat times), candidates off and on,
                img/s in its loop and with its end (pass 2, examples table), and its loop's stages
Prints one line per measurement and writes the JSON (default $OUT/bench_gpu_mining.json, else ./).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))
from bench_gpu import timed  # noqa: E402 - the fastest of reps after warm-up, as bench_gpu.py times it
GOAL = 0.8


def _decode_many(job) -> int:
    datas, meta_dict = job
    from onnxviz.mining.decoding import decode_bytes
    from onnxviz.preprocessing.meta import ModelMeta

    meta = ModelMeta.from_dict(meta_dict)
    for i, d in enumerate(datas):
        decode_bytes(i, d, meta, pixels=True)
    return len(datas)


def decode_rates(m, files: list, procs: int) -> dict:
    """img/s of mining's decode in this process, and in ``procs`` processes (each decodes all files)."""
    datas = [f.read_bytes() for f in files]
    meta = m.meta.to_dict()
    _decode_many((datas[:4], meta))
    t = time.perf_counter()
    _decode_many((datas, meta))
    one = len(datas) / (time.perf_counter() - t)
    import multiprocessing as mp

    with cf.ProcessPoolExecutor(procs, mp_context=mp.get_context("spawn")) as pool:
        list(pool.map(_decode_many, [(datas[:2], meta)] * procs))  # start them
        t = time.perf_counter()
        n = sum(pool.map(_decode_many, [(datas, meta)] * procs))
        every = n / (time.perf_counter() - t)
    return {"decode_img_s_one_process": one, "decode_img_s_all_processes": every, "decode_processes": procs}


def decode_variants(m, files: list) -> dict:
    """One process, img/s: mining's decode (JPEG draft when the photo is 2x the input or more), the full
    decode, and draft as soon as the photo is as large as the resize (1x); with each one's pixel
    difference from the full decode (mean |diff| over all images, the worst image's, images changed)."""
    from onnxviz.preprocessing.images import fit, open_rgb

    meta = m.meta
    size, resize = tuple(meta.input_size), meta.resize or max(meta.input_size)
    datas = [f.read_bytes() for f in files]
    ways = {"mining (draft 2x)": lambda d: open_rgb(d, draft_size=(2 * size[0], 2 * size[1])),
            "full decode": lambda d: open_rgb(d),
            "draft 1x": lambda d: open_rgb(d, draft_size=(resize, resize))}
    out, ref = {}, None
    for name, way in ways.items():
        decode = lambda d: np.asarray(fit(way(d), size, meta.resize, meta.interpolation))  # noqa: E731
        decode(datas[0])
        t = time.perf_counter()
        px = [decode(d) for d in datas]
        rate = len(datas) / (time.perf_counter() - t)
        ref = px if ref is None and name == "full decode" else ref
        out[name] = {"img_s": rate, "pixels": px}
    for name, r in out.items():
        diff = np.array([np.abs(a.astype(np.int16) - b).mean() for a, b in zip(r.pop("pixels"), ref)])
        r.update(mean_abs_diff=float(diff.mean()), worst_image_diff=float(diff.max()), changed=int((diff > 0).sum()))
    return out


def decoder_pipeline(m, files: list, batch: int, workers: int, mode: str) -> float:
    """img/s of mine's decoders alone (batches of uint8 pixels delivered to the loop, no model)."""
    from onnxviz.mining.datasets import decode_batches, open_source
    from onnxviz.mining.decoders import open_decoder

    tmp = Path(tempfile.mkdtemp(prefix="bench_gpu_mining_"))
    try:
        (tmp / "list.txt").write_text("".join(f"{f.resolve()}\n" for f in files * 4))
        src = open_source(tmp / "list.txt")
        procs = open_decoder(src, m.meta, workers, mode)
        try:
            list(decode_batches(src, range(min(len(src), 2 * batch)), m.meta, batch, workers, decoder=procs,
                                pixels=True))  # start the processes
            t = time.perf_counter()
            n = sum(len(b) for b, _ in decode_batches(src, range(len(src)), m.meta, batch, workers, decoder=procs,
                                                      pixels=True) if b is not None)
            return n / (time.perf_counter() - t)
        finally:
            if procs is not None:
                procs.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def core(m, names: list, px: np.ndarray, batch: int, batches: int, providers, threads, graph: bool,
         inline: bool) -> dict:
    """The mining core over ``batches`` distinct batches: session + top/bottom-16 lists, overlapped."""
    from onnxviz.mining import TopK
    from onnxviz.mining.mine import fuse_lists, lists_executor, update_lists

    stats = ("mean", "max") + (("argmax",) if inline else ())
    runner = m.stats_runner(names, providers=providers, threads=threads, stats=stats, spin=False, pixels=True,
                            topk=(16, 16) if graph else None)
    layers = runner.layers
    fused = fuse_lists({(lay.name, s, d): TopK(lay.units, 16, d == "top") for lay in layers
                        for s in ("mean", "max") for d in ("top", "bottom")}, [lay.name for lay in layers])
    order = [lay.name for lay in layers]

    def batch_of(j):  # distinct images: the photos shifted by j pixels, cycled
        start = (j * batch) % len(px)
        b = np.take(px, range(start, start + batch), axis=0, mode="wrap")
        return np.roll(b, j % 7 + 1, axis=2)

    inputs = [batch_of(j) for j in range(batches + 1)]
    runner.run(inputs[-1])  # warm-up (not in the lists)
    infer_s, topk_s = [], []
    with lists_executor() as pool, cf.ThreadPoolExecutor(1) as post:
        def update(out, idx):
            t1 = time.perf_counter()
            update_lists(fused, out, order, idx, pool)
            topk_s.append(time.perf_counter() - t1)

        busy = None
        t0 = time.perf_counter()
        for j in range(batches):
            t = time.perf_counter()
            out = runner.run(inputs[j])
            infer_s.append(time.perf_counter() - t)
            if busy is not None:
                busy.result()
            busy = post.submit(update, out, np.arange(j * batch, (j + 1) * batch))
        busy.result()
        wall = time.perf_counter() - t0
    keys = {k: t.keys.copy() for k, t in fused.items()}
    return {"img_s": batches * batch / wall, "infer_ms_per_batch": 1000 * float(np.median(infer_s)),
            "topk_ms_per_batch": 1000 * float(np.median(topk_s)), "keys": keys}


def end_to_end(m, files: list, args, batch: int, candidates: bool, providers) -> dict:
    from onnxviz.mining import mine

    tmp = Path(tempfile.mkdtemp(prefix="bench_gpu_mining_"))
    try:
        (tmp / "list.txt").write_text("".join(f"{f.resolve()}\n" for f in files * args.repeat))
        t = time.perf_counter()
        s = mine(m, tmp / "list.txt", tmp / "run", batch_size=batch, workers=args.workers, threads=args.threads,
                 providers=providers, progress=False, thumbs=False, decoder=args.decoder,
                 topk="graph" if candidates else "host")
        wall = time.perf_counter() - t
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"images": s.images, "img_s_loop": s.throughput, "img_s_wall": s.images / wall, "seconds_wall": wall,
            "stages": s.stages}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", default=None)
    ap.add_argument("--cpu", action="store_true", help="CPU execution provider only (the GPU run's dry run)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--batches", type=int, default=12, help="distinct batches in each core measurement")
    ap.add_argument("--model", default=str(REPO / "models" / "mobilenet_v2.onnx"))
    ap.add_argument("--photos", default=str(REPO / "data" / "photos"))
    ap.add_argument("--limit", type=int, default=0, help="only the first N photos")
    ap.add_argument("--repeat", type=int, default=32, help="end to end: list each photo this many times")
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: its own)")
    ap.add_argument("--workers", type=int, default=None, help="decoders (default: mine's)")
    ap.add_argument("--decoder", default="auto", choices=["auto", "threads", "processes"])
    ap.add_argument("--no-e2e", action="store_true", help="skip the real `mine` runs")
    args = ap.parse_args(argv)
    out = Path(args.out or Path(os.environ.get("OUT", ".")) / "bench_gpu_mining.json")
    model = Path(args.model)
    from onnxviz.preprocessing.images import image_files

    files = image_files(args.photos, args.limit)
    if not model.exists() or not files:
        sys.exit(f"needs {model} (python scripts/export.py mobilenet_v2 --out models/) and photos in {args.photos} "
                 "(python scripts/collect_photos.py data/photos)")
    t_all = time.perf_counter()
    import onnxruntime as ort

    import onnxviz
    from onnxviz.mining.datasets import decode_batches, open_source

    providers = ["CPUExecutionProvider"] if args.cpu else ["CUDAExecutionProvider", "CPUExecutionProvider"]
    m = onnxviz.load(model)
    names = [lay.name for lay in m.layers]
    b = args.batch
    logits = m.session(providers=providers, threads=args.threads)
    on_gpu = "CUDAExecutionProvider" in logits.providers
    res = {"model": model.name, "providers": logits.providers, "on_gpu": on_gpu, "onnxruntime": ort.__version__,
           "host": platform.node(), "cpus": os.cpu_count(), "batch": b, "photos": len(files),
           "layers": len(names), "units": sum(lay.units for lay in m.layers)}
    if not args.cpu and not on_gpu:
        print("warning: CUDAExecutionProvider did not load: these are CPU numbers", file=sys.stderr)
    px = np.concatenate([bt for bt, _ in decode_batches(open_source(args.photos), range(len(files)), m.meta, 64, 2,
                                                         pixels=True)])
    rng = np.random.default_rng(0)
    xs = [m.prepare(rng.random((b, 3, 224, 224), dtype=np.float32)) for _ in range(2)]
    warm, reps = (1, 2) if args.cpu else (3, 5)
    res["logits_img_s"] = b / timed(lambda: logits.run(xs[0]), warm, reps)
    print(f"logits only: {res['logits_img_s']:.0f} img/s at batch {b} on {logits.providers[0]}", flush=True)
    del logits
    inline = on_gpu  # as mine's positions="auto" on CUDA
    res["core"] = {}
    for label, graph in (("host", False), ("graph", True)):
        r = core(m, names, px, b, args.batches, providers, args.threads, graph, inline)
        res["core"][label] = r
        print(f"mining core, top-k on the {label}: {r['img_s']:.0f} img/s (inference {r['infer_ms_per_batch']:.1f} "
              f"ms/batch, top-k update {r['topk_ms_per_batch']:.1f} ms/batch), "
              f"{r['img_s'] / res['logits_img_s']:.2f}x logits", flush=True)
    same = all(np.array_equal(res["core"]["host"]["keys"][k], res["core"]["graph"]["keys"][k])
               for k in res["core"]["host"]["keys"])
    for r in res["core"].values():
        r.pop("keys")
    res["core_same_lists"] = same
    res["core_graph_vs_host"] = res["core"]["graph"]["img_s"] / res["core"]["host"]["img_s"]
    print(f"  same lists: {same}; graph / host {res['core_graph_vs_host']:.2f}x", flush=True)
    procs = max(1, (os.cpu_count() or 2) - 2)
    res.update(decode_rates(m, files, procs))
    print(f"decode: {res['decode_img_s_one_process']:.0f} img/s in one process, "
          f"{res['decode_img_s_all_processes']:.0f} in {procs}", flush=True)
    res["decode_variants"] = decode_variants(m, files)
    for name, r in res["decode_variants"].items():
        print(f"  decode, one process, {name}: {r['img_s']:.0f} img/s; vs the full decode: mean |diff| "
              f"{r['mean_abs_diff']:.3f}, worst image {r['worst_image_diff']:.2f}, {r['changed']} images changed",
              flush=True)
    from onnxviz.mining.decoders import default_workers, resolve

    workers = args.workers or default_workers(args.decoder)
    res["decoder_pipeline_img_s"] = decoder_pipeline(m, files, b, workers, args.decoder)
    print(f"mine's decoders alone ({workers} {resolve(args.decoder)}, batch {b}): "
          f"{res['decoder_pipeline_img_s']:.0f} img/s delivered", flush=True)
    if not args.no_e2e:
        res["e2e"] = {}
        for label, cand in (("host", False), ("graph", True)):
            e = end_to_end(m, files, args, b, cand, providers)
            e["vs_logits_loop"] = e["img_s_loop"] / res["logits_img_s"]
            e["vs_logits_wall"] = e["img_s_wall"] / res["logits_img_s"]
            res["e2e"][label] = e
            print(f"end to end, top-k on the {label}: {e['images']} images, {e['img_s_loop']:.0f} img/s in the loop "
                  f"({e['vs_logits_loop']:.2f}x logits), {e['img_s_wall']:.0f} with the end of the run "
                  f"({e['vs_logits_wall']:.2f}x); " + ", ".join(f"{k} {v:.1f} s" for k, v in e["stages"].items()),
                  flush=True)
        best = res["e2e"]["graph"]["vs_logits_loop"]
        res["goal"] = {"e2e_vs_logits": GOAL, "measured_loop": best, "met": best >= GOAL}
        print(f"goal: end to end >= {GOAL}x logits: {best:.2f}x in the loop: {'met' if best >= GOAL else 'not met'}"
              f"{'' if on_gpu else ' (CPU numbers: the goal is for one GPU)'}", flush=True)
    res["seconds"] = time.perf_counter() - t_all
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print(json.dumps({k: v for k, v in res.items() if k not in ("core", "e2e")}))
    print(f"wrote {out} ({res['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
