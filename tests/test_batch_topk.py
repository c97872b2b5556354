"""The in-graph top-k (graph/batch_topk.py): the candidates give the same lists as every row, bit for bit."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from onnxviz.backends.ort import StatsRunner
from onnxviz.mining import TopK
from onnxviz.mining.batching import Halving, merge
from onnxviz.mining.mine import fuse_lists, update_lists

from models_fixture import mobilenet_v2_export  # noqa: F401 - a fixture (the real pretrained MobileNetV2, exported)

REPO = Path(__file__).resolve().parent.parent
PHOTOS = REPO / "onnxviz" / "data" / "photos"  # the real photos the package ships


def tiny(channels: int = 6) -> tuple:
    """x (N, C, 2, 2) -> Identity "a" (NCHW) -> Flatten "b" (NC): a layer whose values the test chooses."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", channels, 2, 2])
    y = helper.make_tensor_value_info("b", TensorProto.FLOAT, ["n", channels * 4])
    g = helper.make_graph([helper.make_node("Identity", ["x"], ["a"]), helper.make_node("Flatten", ["a"], ["b"])],
                          "tiny", [x], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    layers = [SimpleNamespace(name="a", tensor="a", layout="NCHW", units=channels),
              SimpleNamespace(name="b", tensor="b", layout="NC", units=channels * 4)]
    return m, layers


def lists(runner, batches, k: int, rows=None) -> dict:
    names = [lay.name for lay in runner.layers]
    states = {(n, s, d): TopK(lay.units, k, d == "top") for n, lay in zip(names, runner.layers)
              for s in ("mean", "max") for d in ("top", "bottom")}
    fused = fuse_lists(states, names)
    start = 0
    for x in batches:
        out = runner.run(x) if rows is None else runner.run(x, rows=rows)
        update_lists(fused, out, names, np.arange(start, start + len(x)))
        start += len(x)
    return {key: (t.keys.copy(), t.positions.copy()) for key, t in fused.items()}


@pytest.mark.parametrize("special", [False, True])
def test_candidates_equal_whole_rows_with_ties_nans_and_infs(special):
    m, layers = tiny()
    rng = np.random.default_rng(0)
    batches = []
    for b in (7, 8, 3, 8):  # batches smaller than k, too, and values from a few levels: many ties
        x = rng.integers(-2, 3, (b, 6, 2, 2)).astype(np.float32)
        if special:  # NaN and infinities, in some units enough to reach the k-th candidate (the fallback)
            x[rng.random(x.shape) < 0.3] = np.nan
            x[rng.random(x.shape) < 0.1] = np.inf
            x[rng.random(x.shape) < 0.1] = -np.inf
            x[:, 0] = np.nan
        batches.append(x)
    for stats in (("mean", "max"), ("mean", "max", "argmax")):
        whole = StatsRunner(m, layers, stats=stats, threads=1)
        graph = StatsRunner(m, layers, stats=stats, threads=1, topk=(4, 4))
        assert whole.topk is None and graph.topk == (4, 4)
        assert graph.run(batches[1]).candidates is not None or special
        want = lists(whole, batches, 4)
        got = lists(graph, batches, 4)
        for key in want:
            assert np.array_equal(want[key][0], got[key][0]), key
            assert np.array_equal(want[key][1], got[key][1]), key


def test_rows_and_halving_keep_the_spectrum_rows_and_candidates():
    m, layers = tiny()
    x = np.random.default_rng(1).random((8, 6, 2, 2)).astype(np.float32)
    graph = StatsRunner(m, layers, threads=1, stats=("mean", "max"), topk=(2, 0))
    out = graph.run(x, rows=np.array([1, 6]))
    assert out.rows.tolist() == [1, 6] and out["a"]["mean"].shape == (2, 6)
    np.testing.assert_allclose(out["a"]["mean"], x[[1, 6]].mean(axis=(2, 3)), rtol=1e-6)
    assert set(out.candidates) == {("mean", "top"), ("max", "top")}  # bottom k = 0: none
    halves = merge([graph.run(x[:4], rows=np.array([1])), graph.run(x[4:], rows=np.array([2]))])
    assert halves.rows.tolist() == [1, 6] and halves.batch == 8
    whole = Halving(graph, chunk=4).run(x, rows=np.array([1, 6]))
    assert whole.rows.tolist() == [1, 6]
    assert np.array_equal(whole.candidates[("max", "top")][1], halves.candidates[("max", "top")][1])


def test_a_batch_over_the_pixel_budget_gives_the_same_lists_in_slices(monkeypatch):
    """Over ``MAX_PIXELS`` the session runs in slices, and then returns whole rows, not candidates."""
    from onnxviz.backends import ort as backend

    m, layers = tiny()
    rng = np.random.default_rng(2)
    batches = [rng.random((b, 6, 2, 2)).astype(np.float32) for b in (8, 5)]
    want = lists(StatsRunner(m, layers, threads=1, topk=(3, 3)), batches, 3)
    monkeypatch.setattr(backend, "MAX_PIXELS", 3 * 2 * 2 * 3)  # three images per onnxruntime run
    graph = StatsRunner(m, layers, threads=1, topk=(3, 3))
    assert graph.run(batches[0]).candidates is None
    got = lists(graph, batches, 3)
    for key in want:
        assert np.array_equal(want[key][0], got[key][0]) and np.array_equal(want[key][1], got[key][1]), key


def test_mine_with_candidates_equals_the_host_path_on_real_photos(tmp_path, mobilenet_v2_export):
    import sqlite3

    from onnxviz.mining import mine
    from onnxviz.mining.run import mining_dir

    tables = {}
    for cand in (False, True):
        out = tmp_path / str(cand)
        mine(mobilenet_v2_export["path"], PHOTOS, out, layers=["features.3", "features.15.conv.0", "features.18"],
             top=3, bottom=3, batch_size=5, limit=48, progress=False, thumbs=False, spectrum=8, threads=1,
             positions="inline", topk="graph" if cand else "host")
        db = sqlite3.connect(mining_dir(out) / "mining.sqlite")
        tables[cand] = {t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
                        for t in ("state", "examples", "spectrum")}
        db.close()
    assert tables[True] == tables[False]


def test_gpu_mining_bench_runs_on_cpu(tmp_path, mobilenet_v2_export):
    import json
    import sys

    sys.path.insert(0, str(REPO / "scripts"))
    import bench_gpu_mining

    out = tmp_path / "b.json"
    assert bench_gpu_mining.main(["--cpu", "--batch", "8", "--limit", "12", "--repeat", "1", "--batches", "2",
                                  "--threads", "1", "--workers", "1", "--decoder", "threads",
                                  "--model", str(mobilenet_v2_export["path"]), "--photos", str(PHOTOS), str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["core_same_lists"] and not r["on_gpu"] and r["logits_img_s"] > 0
    assert set(r["e2e"]) == {"host", "graph"} and r["e2e"]["graph"]["images"] == 12
    assert r["decode_variants"]["full decode"]["changed"] == 0 and "met" in r["goal"]
