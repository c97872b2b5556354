"""MACO vs Lucid's FFT parameterization: activation reached and its ratio to the best real photo.

    python scripts/bench_maco.py models/mobilenet_v2.onnx --layers features.14,features.17 --photos data/photos
    python scripts/bench_maco.py models/efficientnet_lite0.onnx --layers LAYER,LAYER --photos data/photos
    python scripts/bench_maco.py ~/.cache/onnxviz/corpus/vit_s_focus.onnx --photos data/photos \
        --layers backbone.encoder.layer.5,backbone.encoder.layer.10 --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225

Same units, same steps, same seed, same transforms; each parameterization at its own step size
(FFT 0.05, MACO 0.2 on the phase). The best dataset example is the largest channel mean over the
photos (onnxruntime). Prints a Markdown table: per layer, the mean activation reached by each and
the mean ratio to the best photo, and MACO / FFT. Token layers of a vision transformer count a
channel as the mean over the patch tokens, both in the render objective and over the photos.
``--mean``/``--std``: the model's normalization when the file does not say it (the corpus ViT:
ImageNet's, from its package's own preprocessing code).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main() -> None:
    import onnxviz
    from onnxviz.optvis import objectives as obj
    from onnxviz.optvis import render
    from onnxviz.optvis.maco import LR as MACO_LR
    from onnxviz.optvis.maco import maco_param_f

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--layers", required=True)
    ap.add_argument("--units", default="0,1,2,3", help="units of every layer (one batch)")
    ap.add_argument("--photos", required=True)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mean", default=None, help="per-channel mean, comma-separated (overrides the file)")
    ap.add_argument("--std", default=None, help="per-channel std, comma-separated (overrides the file)")
    args = ap.parse_args()
    overrides = {k: [float(v) for v in getattr(args, k).split(",")] for k in ("mean", "std") if getattr(args, k)}
    m = onnxviz.load(args.model, **overrides)
    units = [int(u) for u in args.units.split(",")]
    files = sorted(p for p in Path(args.photos).rglob("*") if p.is_file())
    x = m.prepare(m.load_images(files))
    layers = [m.layer(n).name for n in args.layers.split(",")]
    stats = m.channel_stats(x, layers)
    name = m.meta.name or Path(args.model).stem
    print(f"{name}, {len(units)} units per layer, {args.steps} steps, seed {args.seed}, best of {len(files)} photos\n")
    print("| model | layer | FFT activation | MACO activation | FFT / best photo | MACO / best photo | MACO / FFT |"
          " FFT s | MACO s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for layer in layers:
        best = stats[layer]["mean"][:, units].max(0)
        got = {}
        for p in ("fft", "maco"):
            t = time.perf_counter()
            kw = dict(lr=0.05) if p == "fft" else dict(lr=MACO_LR, param_f=maco_param_f(tuple(m.meta.input_size)))
            r = render(m, obj.channel(layer, units), steps=args.steps, seed=args.seed, **kw)
            got[p] = np.asarray(r.record["activation_end"])
            got[p + "_s"] = time.perf_counter() - t
        rf, rm = got["fft"] / best, got["maco"] / best
        print(f"| {name} | {layer} | {got['fft'].mean():.3g} | {got['maco'].mean():.3g} | {rf.mean():.2f} | "
              f"{rm.mean():.2f} | {got['maco'].mean() / got['fft'].mean():.2f} | {got['fft_s']:.0f} | "
              f"{got['maco_s']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
