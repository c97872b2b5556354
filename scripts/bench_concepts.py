#!/usr/bin/env python
"""Concepts on the real MobileNetV2: learning cost, quality, stability, in-graph mining cost, and units vs
concepts on one interpretability proxy (label purity of the top examples).

    python scripts/export.py mobilenet_v2 --out models/ && python scripts/collect_photos.py data/photos
    python scripts/bench_concepts.py --model models/mobilenet_v2.onnx --photos data/photos --out docs/bench_concepts.json
    python scripts/bench_concepts.py --model ~/.cache/onnxviz/corpus/open_nsfw_torch.onnx --layers LAYER:49 --methods sae

Rows are merged into ``--out`` (one per model, layer and method), written after each, so the benchmark
runs in chunks (one layer or one method per call); each layer's sampled run is mined once and kept.

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
    ap.add_argument("--methods", default="nmf-mb,sae", help="nmf (scikit-learn NMF, coordinate descent), nmf-mb "
                    "(MiniBatchNMF), sae (TopK)")
    ap.add_argument("--epochs", type=int, default=20, help="passes over the vectors (sae, nmf-mb)")
    ap.add_argument("--nmf-iterations", type=int, default=300, help="nmf (cd): iterations at most")
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
    out = Path(a.out)
    doc = json.loads(out.read_text()) if out.exists() else {"rows": []}
    rows = doc.get("rows", [])
    cmd = " ".join(["python", "scripts/bench_concepts.py"] + (argv if argv is not None else sys.argv[1:]))
    work = Path(a.work) / Path(a.model).stem
    for spec in a.layers.split(","):
        layer, per_image = spec.split(":")
        run = work / layer
        # resumes (or keeps) the sampled run: a chunked benchmark mines each layer once
        s = mine(model, a.photos, run, layers=[layer], top=8, bottom=8, progress=False, thumbs=False, spectrum=0,
                 atlas_layers=[layer], atlas_per_image=int(per_image))
        timing = work / f"{layer}_units_seconds.json"
        if not timing.exists():
            t0 = time.perf_counter()  # the units alone, as the concepts are mined (no atlas sampling)
            mine(model, a.photos, work / f"{layer}_units", layers=[layer], top=8, bottom=8, progress=False,
                 thumbs=False, spectrum=0, overwrite=True)
            timing.write_text(json.dumps(time.perf_counter() - t0))
        t_units = json.loads(timing.read_text())
        res = open_results(run)
        name = res.name(layer)
        unit_purity = purity(res, name, res.units(name), predicted)
        vecs = concepts.vectors_of_run(run, layer)[1]
        for method in a.methods.split(","):
            solver = "minibatch" if method == "nmf-mb" else "cd"
            t0 = time.perf_counter()
            d = concepts.learn(vecs, name, method=method.split("-")[0], concepts=a.factor * vecs.shape[1], seed=0,
                               progress=False, solver=solver, epochs=a.epochs,
                               max_iter=a.nmf_iterations)
            t_learn = time.perf_counter() - t0
            d.save(run)
            t0 = time.perf_counter()
            concepts.mine_concepts(model, d, run, top=8, bottom=8, progress=False, thumbs=False, spectrum=0,
                                   overwrite=True)
            t_mine = time.perf_counter() - t0
            cres = open_results(concepts.mined_folder(run, d))
            cname = cres.name(concepts.concept_name(d))
            row = {"model": Path(a.model).name, "layer": name, "method": method, "channels": int(vecs.shape[1]),
                   "concepts": d.concepts, "vectors": int(len(vecs)), "images": s.images, "epochs": a.epochs,
                   "nmf_iterations": d.settings.get("nmf_iterations"),
                   "learn_s": round(t_learn, 1), **d.metrics,
                   "mine_units_s": round(t_units, 1), "mine_concepts_s": round(t_mine, 1),
                   "mine_ratio": round(t_mine / t_units, 2), "purity_units": round(unit_purity, 3),
                   "purity_concepts": round(purity(cres, cname, d.concepts, predicted), 3), "command": cmd}
            cres.close()
            rows = [r for r in rows if (r.get("model"), r["layer"], r["method"]) != (row["model"], name, method)]
            rows.append(row)
            print(json.dumps(row), flush=True)
            out.write_text(json.dumps({"rows": rows}, indent=1))  # after every row: a chunked run keeps them
        res.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
