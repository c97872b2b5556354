#!/usr/bin/env python
"""Concepts on the real MobileNetV2: learning cost, quality, stability, in-graph mining cost, and units vs
concepts on one interpretability proxy (label purity of the top examples).

    python scripts/export.py mobilenet_v2 --out models/ && python scripts/collect_photos.py data/photos
    python scripts/bench_concepts.py --model models/mobilenet_v2.onnx --photos data/photos --out docs/bench_concepts.json
    python scripts/bench_concepts.py --model ~/.cache/onnxviz/corpus/open_nsfw_torch.onnx --layers LAYER:49 --methods sae

Rows are merged into ``--out`` (one per model, layer, method and --views), written after each, so the
benchmark runs in chunks (one layer or one method per call); each layer's sampled run is mined once and kept.
``--views N`` samples N augmented views of each photo too (``mine --atlas-views``: block_14 has 7x7
positions, so 544 photos give 26,656 vectors; ``--views 3`` gives 106,624). Mining the units alone and
mining the concepts in the graph are timed in the same run, interleaved (``--rounds``), the fastest of
each compared.

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
    ap.add_argument("--views", type=int, default=0, help="mine --atlas-views: augmented views of each photo sampled "
                    "too (more vectors from the same photos)")
    ap.add_argument("--no-stability", action="store_true", help="learn one dictionary, not two (no stability column)")
    ap.add_argument("--rounds", type=int, default=2, help="mining units and concepts, interleaved, this many times "
                    "each (the fastest of each counts)")
    ap.add_argument("--no-mine", action="store_true", help="learn only (no mining times, no purity)")
    ap.add_argument("--reuse", action="store_true", help="mine with the dictionary an earlier call stored in the "
                    "sampled run instead of learning it again (a long benchmark split in two calls)")
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
        run = work / (layer if not a.views else f"{layer}_views{a.views}")
        # resumes (or keeps) the sampled run: a chunked benchmark mines each layer once
        t0 = time.perf_counter()
        s = mine(model, a.photos, run, layers=[layer], top=8, bottom=8, progress=False, thumbs=False, spectrum=0,
                 atlas_layers=[layer], atlas_per_image=int(per_image), atlas_views=a.views)
        t_sample = time.perf_counter() - t0

        def mine_units() -> float:
            t0 = time.perf_counter()  # the units alone, as the concepts are mined (no atlas sampling)
            mine(model, a.photos, work / f"{layer}_units", layers=[layer], top=8, bottom=8, progress=False,
                 thumbs=False, spectrum=0, overwrite=True)
            return time.perf_counter() - t0
        res = open_results(run)
        name = res.name(layer)
        unit_purity = purity(res, name, res.units(name), predicted)
        vecs = concepts.vectors_of_run(run, layer)[1]
        for method in a.methods.split(","):
            solver = "minibatch" if method == "nmf-mb" else "cd"
            t0 = time.perf_counter()
            stored = concepts.folder_of(run, name) / f"{'nmfmb' if method == 'nmf-mb' else method.split('-')[0]}{a.factor * vecs.shape[1]}.json"
            prior = next((r for r in rows if (r.get("model"), r["layer"], r["method"], r.get("views", 0))
                          == (Path(a.model).name, name, method, a.views)), {}) if a.reuse else {}
            d = concepts.Dictionary.load(stored) if a.reuse else concepts.learn(vecs, name, method=method.split("-")[0], concepts=a.factor * vecs.shape[1], seed=0,
                               progress=False, solver=solver, epochs=a.epochs,
                               max_iter=a.nmf_iterations, stability=not a.no_stability)
            t_learn = prior.get("learn_s") if a.reuse else time.perf_counter() - t0
            d.save(run)
            row = {"model": Path(a.model).name, "layer": name, "method": method, "channels": int(vecs.shape[1]),
                   "concepts": d.concepts, "vectors": int(len(vecs)), "images": s.images, "views": a.views,
                   "sample_s": round(t_sample, 1), "epochs": a.epochs,
                   "nmf_iterations": d.settings.get("nmf_iterations"), "dictionaries": 1 if a.no_stability else 2,
                   "learn_s": t_learn if a.reuse else round(t_learn, 1), **d.metrics,
                   "command": cmd if not a.reuse else prior.get("command", "") + " ; " + cmd}
            if not a.no_mine:
                units_s, concepts_s = [], []
                for _ in range(max(1, a.rounds)):  # interleaved: both see the same load
                    units_s.append(mine_units())
                    t0 = time.perf_counter()
                    concepts.mine_concepts(model, d, run, top=8, bottom=8, progress=False, thumbs=False, spectrum=0,
                                           overwrite=True)
                    concepts_s.append(time.perf_counter() - t0)
                cres = open_results(concepts.mined_folder(run, d))
                cname = cres.name(concepts.concept_name(d))
                row |= {"mine_units_s": round(min(units_s), 1), "mine_concepts_s": round(min(concepts_s), 1),
                        "mine_rounds": [[round(u, 2), round(c, 2)] for u, c in zip(units_s, concepts_s)],
                        "mine_ratio": round(min(concepts_s) / min(units_s), 2), "purity_units": round(unit_purity, 3),
                        "purity_concepts": round(purity(cres, cname, d.concepts, predicted), 3)}
                cres.close()
            key = (row["model"], name, method, a.views)
            rows = [r for r in rows if (r.get("model"), r["layer"], r["method"], r.get("views", 0)) != key]
            rows.append(row)
            print(json.dumps(row), flush=True)
            out.write_text(json.dumps({"rows": rows}, indent=1))  # after every row: a chunked run keeps them
        res.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
