"""Engines: block-wise mining (top-k, spectrum and atlas samples) folds to the local result; Ray (2 workers)
gives the same store and resumes.

The digits CNN over a folder of real digit PNGs; one small local Ray (2 CPUs, no dashboard)
for the whole module.
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import onnxviz
from onnxviz.engines import work
from onnxviz.mining import mine, open_source
from onnxviz.mining.datasets import key_reader
from onnxviz.mining.topk import TopK
from digits import save_digit_folder

N = 70


@pytest.fixture(scope="module")
def folder(digits_data, tmp_path_factory):
    images, labels = digits_data
    root = tmp_path_factory.mktemp("engine_png")
    save_digit_folder(images, labels, root, N)
    (root / "broken.png").write_bytes(b"not a png")
    return root


@pytest.fixture(scope="module")
def model(digits_onnx):
    return onnxviz.load(digits_onnx)


@pytest.fixture(scope="module")
def local_run(model, folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    assert mine(model, folder, out, top=5, bottom=4, batch_size=16, threads=1, progress=False, thumbs=False).complete
    return out


def _rows(run_dir, table="examples") -> list:
    db = sqlite3.connect(Path(run_dir) / "mining" / "mining.sqlite")
    try:
        order = {"examples": "layer, unit, stat, dir, rank", "images": "idx", "spectrum": "layer, stat",
                 "atlas_samples": "layer, image, slot"}[table]
        return db.execute(f"SELECT * FROM {table} ORDER BY {order}").fetchall()
    finally:
        db.close()


@pytest.mark.parametrize("pixels", [False, True])
def test_blocks_folded_in_any_order_equal_one_pass(model, folder, pixels):
    """Blocks (as uint8 pixels with ``pixels``: a quarter of the bytes between stages) equal one float pass."""
    src = open_source(folder)
    names = [lay.name for lay in model.layers]
    miner = work.BlockMiner(work.ModelSpec.of(model), names, 5, 4, 16, threads=1)
    block_miner = work.BlockMiner(work.ModelSpec.of(model, pixels), names, 5, 4, 16, threads=1)
    blocks = work.plan_blocks(range(len(src)), 13)
    parts = []
    for idx in blocks:
        keys = [src.key(i) for i in idx]
        packed = work.pack_decoded(work.decode_block(key_reader(src), model.meta, idx, keys, 2, pixels), keys)
        assert packed["x"].dtype == (np.uint8 if pixels else np.float32)
        parts.append(block_miner.mine(packed["x"], packed["good"]))
    one = {key: TopK(t[0].shape[0], t[0].shape[1], key[2] == "top") for key, t in parts[0].items()}
    other = {key: TopK(t.units, t.k, t.largest) for key, t in one.items()}
    for p in parts:
        work.fold(one, p)
    for p in reversed(parts):
        work.fold(other, p)
    x = np.stack([d.x for d in work.decode_block(key_reader(src), model.meta, range(len(src)),
                                                   src.keys, 1) if d.x is not None])
    good = np.array([i for i, k in enumerate(src.keys) if k != "broken.png"])
    whole = miner.mine(x, good)
    for key, (keys, _pos) in whole.items():
        assert np.array_equal(one[key].keys, keys) and np.array_equal(other[key].keys, keys), key


def test_block_samples_fold_in_any_order_to_one_pass(model, folder):
    from onnxviz.mining import MiningError
    from onnxviz.mining.samplers import Samplers

    with pytest.raises(MiningError, match="fc has none"):  # checked before any work, by every engine
        Samplers.of(model, atlas_layers="relu_2,fc")
    src = open_source(folder)
    settings = Samplers.of(model, spectrum=20, atlas_layers="relu_2", per_image=2, seed=7)
    miner = work.BlockMiner(work.ModelSpec.of(model), ["relu_1", "relu_2"], 1, 1, 8, threads=1, samplers=settings)
    parts, whole = [], settings.fresh()
    for idx in work.plan_blocks(range(len(src)), 13):
        keys = [src.key(i) for i in idx]
        packed = work.pack_decoded(work.decode_block(key_reader(src), model.meta, idx, keys), keys)
        parts.append(miner.mine_block(packed["x"], packed["good"]).samplers)
        stats, maps = miner.runner.run(packed["x"], maps=True)
        whole.offer(stats, maps, packed["good"])
    for order in (parts, parts[::-1]):
        folded = settings.fresh()
        for p in order:
            folded.fold(p)
        assert np.array_equal(folded.reservoir.index, whole.reservoir.index) and folded.reservoir.seen == N
        for key, v in whole.reservoir.values.items():
            assert np.array_equal(folded.reservoir.values[key], v, equal_nan=True), key
        assert sorted(folded.pending["relu_2"]) == sorted(whole.pending["relu_2"])


@pytest.fixture(scope="module")
def ray_session():
    from onnxviz.engines.ray import session

    with session(num_cpus=2) as ray:
        yield ray


def test_ray_mining_equals_local_and_resumes_by_block(model, folder, local_run, ray_session, tmp_path):
    from onnxviz.engines import ray as R

    out = tmp_path / "ray"
    s1 = R.mine(model, folder, out, top=5, bottom=4, batch_size=16, workers=2, block_size=16, progress=False,
                thumbs=False, stop_after=2)
    assert not s1.complete and s1.processed_now == 32
    s2 = R.mine(model, folder, out, top=5, bottom=4, batch_size=16, workers=2, block_size=16, progress=False,
                thumbs=False)
    assert s2.complete and s2.resumed_from == 32 and s2.processed_now == N + 1 - 32  # finished blocks not redone
    assert s2.images == N and s2.skipped == 1
    assert _rows(out) == _rows(local_run)
    assert _rows(out, "images") == _rows(local_run, "images")
    again = R.mine(model, folder, out, top=5, bottom=4, batch_size=16, workers=2, block_size=16, progress=False)
    assert again.complete and again.processed_now == 0


def test_ray_spectrum_and_atlas_samples_equal_local_and_resume_by_block(digits_onnx, model, folder, ray_session,
                                                                         tmp_path):
    """Samples taken per block on 2 workers and merged: the single pass's, bit for bit (a real sample:
    24 of 70 images; atlas rows of the images and of one augmented view each), through an interruption
    and a resume from the command line."""
    from onnxviz.cli import main as cli
    from onnxviz.engines import ray as R

    kw = dict(top=2, bottom=2, batch_size=16, progress=False, thumbs=False, spectrum=24, atlas_layers="relu_2",
              atlas_per_image=3, atlas_views=1, seed=5, positions="pass2")  # pass 2 on the actors (the other test: inline)
    assert mine(model, folder, tmp_path / "local", threads=1, **kw).complete
    s1 = R.mine(model, folder, tmp_path / "ray", workers=2, block_size=16, stop_after=2, **kw)
    assert not s1.complete and s1.processed_now == 32
    res = CliRunner().invoke(cli, ["mine", digits_onnx, str(folder), "--out", str(tmp_path / "ray"), "--engine", "ray",
                                   "--workers", "2", "--block-size", "16", "--batch-size", "16", "--top", "2",
                                   "--bottom", "2", "--spectrum", "24", "--atlas-layers", "relu_2",
                                   "--atlas-per-image", "3", "--atlas-views", "1", "--seed", "5", "--no-progress",
                                   "--no-thumbs",
                                   "--positions", "pass2"])
    assert res.exit_code == 0 and "resumed after 32" in res.output, res.output
    for table in ("spectrum", "atlas_samples", "examples"):
        assert _rows(tmp_path / "ray", table) == _rows(tmp_path / "local", table), table
    r, local = onnxviz.mining.open_results(tmp_path / "ray"), onnxviz.mining.open_results(tmp_path / "local")
    assert r.atlas_layers == ["relu_2"] and len(r.atlas_samples("relu_2")["image"]) == N * 3 * 2  # and a view each
    spec = r.spectrum("relu_2", 3)
    assert spec == local.spectrum("relu_2", 3) and spec[0]["sample"] == 24 and not spec[0]["exact"]


def test_ray_render_writes_the_local_pictures_and_skips_existing(digits_onnx, ray_session, tmp_path):
    from onnxviz.cli import main as cli

    args = ["render", str(digits_onnx), "--layer", "relu_2", "--units", "0-5", "--batch-size", "4", "--steps", "4",
            "--size", "16", "--no-progress"]
    res = CliRunner().invoke(cli, args + ["--out", str(tmp_path / "local")])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, args + ["--out", str(tmp_path / "ray"), "--engine", "ray", "--workers", "2"])
    assert res.exit_code == 0, res.output
    for u in range(6):
        a = np.asarray(Image.open(tmp_path / "local" / "relu_2" / f"channel_{u}.png"))
        b = np.asarray(Image.open(tmp_path / "ray" / "relu_2" / f"channel_{u}.png"))
        assert np.array_equal(a, b), u
        assert json.loads((tmp_path / "ray" / "relu_2" / f"channel_{u}.json").read_text())["unit"] == u
    (tmp_path / "ray" / "relu_2" / "channel_5.png").unlink()  # batch 0-3 kept, batch 4-5 redone
    res = CliRunner().invoke(cli, args + ["--out", str(tmp_path / "ray"), "--engine", "ray"])
    assert res.exit_code == 0 and "4 kept from an earlier run" in res.output, res.output
    assert (tmp_path / "ray" / "relu_2" / "channel_5.png").exists()


@pytest.mark.slow
def test_ray_render_maco_writes_the_local_pictures_and_importance(digits_onnx, ray_session, tmp_path):
    from onnxviz.cli import main as cli

    args = ["render", str(digits_onnx), "--layer", "relu_2", "--units", "0-2", "--batch-size", "2", "--steps", "4",
            "--size", "16", "--param", "maco", "--no-progress"]
    res = CliRunner().invoke(cli, args + ["--out", str(tmp_path / "local")])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, args + ["--out", str(tmp_path / "ray"), "--engine", "ray", "--workers", "2"])
    assert res.exit_code == 0, res.output
    for u in range(3):
        for name in (f"channel_{u}_maco.png", f"channel_{u}_maco_importance.png"):
            a = np.asarray(Image.open(tmp_path / "local" / "relu_2" / name))
            b = np.asarray(Image.open(tmp_path / "ray" / "relu_2" / name))
            assert np.array_equal(a, b), name
        rec = json.loads((tmp_path / "ray" / "relu_2" / f"channel_{u}_maco.json").read_text())
        assert rec["param"] == "maco" and rec["importance"] == f"channel_{u}_maco_importance.png"


def test_concepts_mined_on_ray_from_the_cli_equal_local(digits_onnx, model, folder, ray_session, tmp_path):
    """`onnxviz concepts --engine ray`: the concepts' examples (mined in the graph on 2 workers) are the local ones."""
    from onnxviz import concepts
    from onnxviz.cli import main as cli

    run = tmp_path / "run"
    assert mine(model, folder, run, top=2, bottom=2, batch_size=16, progress=False, thumbs=False, spectrum=0,
                atlas_layers="relu_2", atlas_per_image=16, seed=0, threads=1).complete
    r = CliRunner().invoke(cli, ["concepts", str(digits_onnx), "--run", str(run), "--layer", "relu_2", "--concepts", "8",
                                 "--no-stability", "--top", "3", "--bottom", "3", "--no-progress", "--engine", "ray",
                                 "--address", "auto"])
    assert r.exit_code == 0, r.output
    d = concepts.learn_from_run(run, "relu_2", method="nmf", concepts=8, seed=0, stability=False, progress=False)
    ray_folder = concepts.mined_folder(run, d)
    from onnxviz.mining.results import open_results

    res = open_results(ray_folder)
    try:
        assert res.config.get("engine") == "ray"  # mined by Ray's engine, not quietly in this process
    finally:
        res.close()
    local = tmp_path / "local"
    ray_folder.rename(local)  # the same set mined again, locally, where the CLI put it
    s = concepts.mine_concepts(model, d, run, top=3, bottom=3, progress=False)
    assert s.complete and s.images == N
    assert _rows(local) == _rows(ray_folder) and len(_rows(local)) == 8 * 2 * (3 + 3)  # concepts x stats x examples


def test_blocks_with_the_top_k_in_the_graph_equal_the_host(model, folder):
    """A Ray worker's block with the top-k in the graph: the same lists and samples as with the host's."""
    from onnxviz.mining.samplers import Samplers

    src = open_source(folder)
    names = [lay.name for lay in model.layers]
    settings = Samplers.of(model, spectrum=20, atlas_layers="relu_2", per_image=2, seed=7)
    spec = work.ModelSpec.of(model)
    host = work.BlockMiner(spec, names, 5, 4, 16, threads=1, samplers=settings, topk="host")
    graph = work.BlockMiner(spec, names, 5, 4, 16, threads=1, samplers=settings, topk="graph")
    assert host.runner.topk is None and graph.runner.topk == (5, 4)
    for idx in work.plan_blocks(range(len(src)), 23):
        keys = [src.key(i) for i in idx]
        packed = work.pack_decoded(work.decode_block(key_reader(src), model.meta, idx, keys), keys)
        a, b = host.mine_block(packed["x"], packed["good"]), graph.mine_block(packed["x"], packed["good"])
        for key, (k, pos) in a.topk.items():
            assert np.array_equal(k, b.topk[key][0]) and np.array_equal(pos, b.topk[key][1]), key
        assert np.array_equal(a.samplers.reservoir.index, b.samplers.reservoir.index)
        for key, v in a.samplers.reservoir.values.items():
            assert np.array_equal(b.samplers.reservoir.values[key], v, equal_nan=True), key


def test_ray_with_the_top_k_in_the_graph_equals_local(model, folder, local_run, ray_session, tmp_path):
    from onnxviz.engines import ray as R

    out = tmp_path / "ray_graph"
    s = R.mine(model, folder, out, top=5, bottom=4, batch_size=16, workers=2, block_size=16, progress=False,
               thumbs=False, topk="graph")
    assert s.complete and s.images == N
    assert _rows(out) == _rows(local_run)
