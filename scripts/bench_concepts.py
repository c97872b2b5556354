#!/usr/bin/env python
"""Concepts on the real MobileNetV2: learning cost, quality, stability, in-graph mining cost, and units vs
concepts on one interpretability proxy (label purity of the top examples).

    python scripts/export.py mobilenet_v2 --out models/ && python scripts/collect_photos.py data/photos
    python scripts/bench_concepts.py --model models/mobilenet_v2.onnx --photos data/photos --out docs/bench_concepts.json

Per layer: mine the layer's units over the photos with every position sampled (``--atlas-per-image``),
learn NMF and TopK-SAE dictionaries of ``--factor`` x the channels (time, explained variance, mean L0,
dead, stability across two seeds), mine the concepts in the graph and time it against mining the
units alone in the same run (ratio), and compare units and concepts by the purity of the model's
predicted classes among each feature's top-8 examples (the share of the most common class).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def purity(results, layer: str, units: int, predicted: dict, k: int = 8) -> float:
    """Mean over features of the share of the most common predicted class among the top-k examples."""
    shares = []
    for u in range(units):
        ex = results.examples(layer, u, direction="top")[:k]
        classes = [predicted[e.index] for e in ex if e.index in predicted]
        if classes:
            shares.append(Counter(classes).most_common(1)[0][1] / len(classes))
    return float(np.mean(shares)) if shares else float("nan")


def main(argv=None) -> int:
    import onnxviz
    from onnxviz import concepts
    from onnxviz.mining import mine
    from onnxviz.mining.datasets import open_source
    from onnxviz.mining.results import open_results
    from onnxviz.preprocessing.images import load_for_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/mobilenet_v2.onnx")
    ap.add_argument("--photos", default="data/photos")
    ap.add_argument("--layers", default="block_7:196,block_14:49", help="LAYER:positions sampled per image, ...")
    ap.add_argument("--factor", type=int, default=4, help="concepts = factor x channels")
    ap.add_argument("--methods", default="nmf,sae")
    ap.add_argument("--work", default="/tmp/bench_concepts")
    ap.add_argument("--out", default="docs/bench_concepts.json")
    a = ap.parse_args(argv)
    model = onnxviz.load(a.model)
    src = open_source(a.photos)
    # the model's predicted class of every photo (for the purity proxy)
    sess = model.session()
    predicted = {}
    for i in range(0, len(src), 32):
        idx = list(range(i, min(i + 32, len(src))))
        x = model.prepare(np.stack([load_for_model(Path(a.photos) / src.key(j), model.meta) for j in idx]))
        logits = next(iter(sess.run(x).values()))
        predicted.update({j: int(c) for j, c in zip(idx, logits.reshape(len(idx), -1).argmax(1))})
    rows = []
    for spec in a.layers.split(","):
        layer, per_image = spec.split(":")
        run = Path(a.work) / layer
        s = mine(model, a.photos, run, layers=[layer], top=8, bottom=8, progress=False, thumbs=False, spectrum=0,
                 atlas_layers=[layer], atlas_per_image=int(per_image), overwrite=True)
        t0 = time.perf_counter()  # the units alone, as the concepts are mined (no atlas sampling)
        mine(model, a.photos, Path(a.work) / f"{layer}_units", layers=[layer], top=8, bottom=8, progress=False,
             thumbs=False, spectrum=0, overwrite=True)
        t_units = time.perf_counter() - t0
        res = open_results(run)
        name = res.name(layer)
        unit_purity = purity(res, name, res.units(name), predicted)
        vecs = concepts.vectors_of_run(run, layer)[1]
        for method in a.methods.split(","):
            t0 = time.perf_counter()
            d = concepts.learn(vecs, name, method=method, concepts=a.factor * vecs.shape[1], seed=0, progress=False)
            t_learn = time.perf_counter() - t0
            d.save(run)
            t0 = time.perf_counter()
            concepts.mine_concepts(model, d, run, top=8, bottom=8, progress=False, thumbs=False, spectrum=0)
            t_mine = time.perf_counter() - t0
            cres = open_results(concepts.mined_folder(run, d))
            cname = cres.name(concepts.concept_name(d))
            row = {"layer": name, "method": method, "channels": int(vecs.shape[1]), "concepts": d.concepts,
                   "vectors": int(len(vecs)), "images": s.images, "learn_s": round(t_learn, 1), **d.metrics,
                   "mine_units_s": round(t_units, 1), "mine_concepts_s": round(t_mine, 1),
                   "mine_ratio": round(t_mine / t_units, 2), "purity_units": round(unit_purity, 3),
                   "purity_concepts": round(purity(cres, cname, d.concepts, predicted), 3)}
            cres.close()
            rows.append(row)
            print(json.dumps(row), flush=True)
        res.close()
    Path(a.out).write_text(json.dumps({"command": " ".join(["python", "scripts/bench_concepts.py"] + (argv or sys.argv[1:])),
                                       "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
