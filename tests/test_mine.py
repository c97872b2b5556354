"""Dataset-example mining: exact streaming top/bottom-k, store, resume, shards, odd files, CLI.

The digits CNN (trained in seconds on scikit-learn digits) is mined over a real folder of PNG
files; every result is compared with a brute-force ranking of the full statistics matrix.
The real MobileNetV2 (if its weights are installed) is mined over the bundled ImageNet photos.
"""
from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import onnxviz
from onnxviz.cli import main as cli
from onnxviz.preprocessing.images import load_for_model
from onnxviz.mining import DatasetError, TopK, brute_force, merge_runs, mine, open_results, open_source
from onnxviz.mining.topk import decode, encode
from digits import save_digit

N_DIGITS = 150


# ---------------------------------------------------------------------------- top-k alone
def test_brute_force_reference_matches_python_sort():
    rng = np.random.default_rng(0)
    v = rng.integers(0, 4, size=(30, 3)).astype(np.float32)
    v[[2, 7], 0] = np.nan
    for largest in (True, False):
        got = brute_force(v, 30, largest)
        for u in range(3):
            ref = sorted(range(30), key=lambda i: (np.isnan(v[i, u]), -v[i, u] if largest else v[i, u], i))
            assert got[u].tolist() == ref


@pytest.mark.parametrize("largest", [True, False])
def test_streaming_topk_equals_brute_force_with_ties_nans_infs(largest):
    rng = np.random.default_rng(1)
    n, units, k = 500, 7, 9
    v = np.round(rng.normal(size=(n, units)), 1).astype(np.float32)  # many ties
    v[rng.random((n, units)) < 0.05] = np.nan
    v[rng.random((n, units)) < 0.01] = np.inf
    v[rng.random((n, units)) < 0.01] = -np.inf
    v[rng.random((n, units)) < 0.02] = -0.0
    v[:, 6] = np.nan  # a unit with only NaNs: NaNs by index
    t = TopK(units, k, largest)
    start = 0
    while start < n:  # uneven batches
        b = int(rng.integers(1, 40))
        idx = np.arange(start, min(n, start + b))
        t.update(v[start:start + b], idx, idx[:, None] * 100 + np.arange(units))  # a position naming its entry
        start += b
    values, idx, pos = t.result()
    ref = brute_force(v, k, largest)
    assert np.array_equal(idx, ref)
    assert np.array_equal(pos, ref * 100 + np.arange(units)[:, None])  # positions travel with their entries
    assert np.array_equal(values, np.take_along_axis(v.T, ref, 1), equal_nan=True)
    real = ~np.isnan(values[:, :6])
    # NaN never ranked above a real number
    assert all(np.all(np.diff(r.astype(int)) <= 0) for r in real)


@pytest.mark.parametrize("largest", [True, False])
def test_settled_lists_take_only_the_entries_that_beat_them(largest):
    """Once the lists fill, a batch adds only its few entries that pass the float test (the rest are
    never encoded): same ranking and positions as the brute force, with a unit that never changes
    (a constant: ties lose to lower indices) between units that do."""
    rng = np.random.default_rng(4)
    n, units, k = 3000, 6, 5
    v = rng.normal(size=(n, units)).astype(np.float32)
    v[:, 2] = 1.0
    t = TopK(units, k, largest)
    for start in range(0, n, 60):
        idx = np.arange(start, start + 60)
        t.update(v[idx], idx, idx[:, None] * 100 + np.arange(units))
    values, idx, pos = t.result()
    ref = brute_force(v, k, largest)
    assert np.array_equal(idx, ref) and idx[2].tolist() == list(range(k))
    assert np.array_equal(pos, ref * 100 + np.arange(units)[:, None])


def test_topk_merge_is_order_independent_and_keys_roundtrip():
    rng = np.random.default_rng(2)
    v = rng.normal(size=(200, 5)).astype(np.float32)
    a, b, whole = TopK(5, 6, True), TopK(5, 6, True), TopK(5, 6, True)
    a.update(v[1::2], np.arange(1, 200, 2))
    b.update(v[0::2], np.arange(0, 200, 2))
    whole.update(v, np.arange(200))
    b.merge(a)
    assert np.array_equal(b.keys, whole.keys)
    vals, idx = decode(encode(v[:10, 0], np.arange(10), True), True)
    assert np.array_equal(vals, v[:10, 0]) and idx.tolist() == list(range(10))


@pytest.mark.parametrize("threads,chunk", [(0, 4096), (4, 4096), (6, 2)])
def test_fused_lists_equal_one_list_per_layer_and_stay_views(threads, chunk):
    """The loop's fused lists (one per stat and direction, float prefilter, sort-only merge), updated
    one after another or in threads (a GPU host; ``chunk``: slices of units per job), keep the very
    keys and positions that updating every layer's list on its own gives, and the per-layer states
    see them."""
    import concurrent.futures as cf

    from onnxviz.mining.mine import fuse_lists, update_lists

    rng = np.random.default_rng(3)
    units = {"a": 3, "b": 5, "c": 1}
    alone = {(n, s, d): TopK(u, 4, d == "top") for n, u in units.items() for s in ("mean", "max")
             for d in ("top", "bottom")}
    states = {key: TopK(t.units, t.k, t.largest) for key, t in alone.items()}
    fused = fuse_lists(states, list(units))
    for start in range(0, 120, 7):
        idx = np.arange(start, min(120, start + 7))
        stats = {n: {s: np.round(rng.normal(size=(len(idx), u)), 1).astype(np.float32) for s in ("mean", "max")}
                 for n, u in units.items()}
        stats["b"]["max"][rng.random((len(idx), 5)) < 0.1] = np.nan
        stats["a"]["mean"] = np.maximum(stats["a"]["mean"], 0)  # ReLU-like ties at zero
        for n, u in units.items():  # positions computed inline
            stats[n]["argmax"] = rng.integers(0, 50, (len(idx), u))
        if threads:
            with cf.ThreadPoolExecutor(threads) as pool:
                update_lists(fused, stats, list(units), idx, pool, chunk=chunk)
        else:
            update_lists(fused, stats, list(units), idx)
        for (n, s, d), t in alone.items():
            t.update(stats[n][s], idx, stats[n]["argmax"])
    for key, t in alone.items():
        assert np.array_equal(states[key].keys, t.keys), key
        assert np.array_equal(states[key].positions, t.positions), key
        assert (t.positions >= 0).all()
        assert np.shares_memory(states[key].keys, fused[key[1:]].keys)


# ---------------------------------------------------------------------------- real folders
@pytest.fixture(scope="module")
def digits_folder(digits_data, tmp_path_factory):
    """N_DIGITS digit images as 8-bit PNG files in two sub-folders (a real folder tree)."""
    images, labels = digits_data
    root = tmp_path_factory.mktemp("digits_png")
    for i in range(N_DIGITS):
        sub = root / ("a" if i % 3 else "b")
        sub.mkdir(exist_ok=True)
        save_digit(images[i], sub / f"{i:04d}_{labels[i]}.png")
    return root


@pytest.fixture(scope="module")
def digits_model(digits_onnx):
    return onnxviz.load(digits_onnx)


@pytest.fixture(scope="module")
def digits_run(digits_model, digits_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("run_full")
    s = mine(digits_model, digits_folder, out, top=5, bottom=4, batch_size=16, threads=1, workers=2,
             progress=False)
    assert s.complete and s.images == N_DIGITS and s.skipped == 0
    return out


def _all_rows(run_dir) -> list:
    db = sqlite3.connect(Path(run_dir) / "mining" / "mining.sqlite")
    try:
        return db.execute("SELECT * FROM examples ORDER BY layer, unit, stat, dir, rank").fetchall()
    finally:
        db.close()


def _inputs(model, folder):
    src = open_source(folder)
    x = np.stack([load_for_model(folder / src.key(i), model.meta) for i in range(len(src))])
    return src, model.prepare(x)


def test_digits_results_equal_brute_force_on_every_layer(digits_model, digits_folder, digits_run):
    src, x = _inputs(digits_model, digits_folder)
    stats = digits_model.channel_stats(x, None, batch_size=len(x))  # one batch: another batch size
    r = open_results(digits_run)
    assert r.layers == [lay.name for lay in digits_model.layers]
    checked = 0
    for layer in r.layers:
        for stat in ("mean", "max"):
            matrix = stats[layer][stat]
            for direction, k in (("top", 5), ("bottom", 4)):
                ref = brute_force(matrix, k, direction == "top")
                for unit in range(r.units(layer)):
                    ex = r.examples(layer, unit, stat, direction)
                    assert [e.index for e in ex] == ref[unit].tolist(), (layer, unit, stat, direction)
                    assert [e.key for e in ex] == [src.key(i) for i in ref[unit]]
                    assert np.allclose([e.activation for e in ex], matrix[ref[unit], unit], rtol=1e-6, atol=1e-6)
                    checked += 1
    assert checked > 100
    # any name the model accepts reaches the mined layer: the raw output tensor "logits" is layer "fc"
    assert [e.index for e in r.examples("logits", 3, "mean")] == [e.index for e in r.examples("fc", 3, "mean")]


def test_argmax_positions_and_crops_point_at_the_true_maximum(digits_model, digits_folder, digits_run):
    src, x = _inputs(digits_model, digits_folder)
    r = open_results(digits_run)
    spatial = [lay for lay in digits_model.layers if lay.layout == "NCHW"]
    assert spatial
    rng = np.random.default_rng(0)
    for lay in spatial:
        full = digits_model.activations(x, [lay.name])[lay.name]
        for unit in range(0, lay.units, 7):
            e = r.examples(lay.name, unit, "max", "top", 1)[0]
            amap = full[e.index, unit]
            y, xx = np.unravel_index(np.argmax(amap), amap.shape)
            assert e.position == (y, xx)
            assert np.isclose(e.activation, amap.max(), rtol=1e-5, atol=1e-6)
            # the receptive field is right: pixels outside the crop never change this activation,
            # and the unit's maximum lies in the crop
            left, top, right, bottom = e.input_box
            assert left <= xx * (16 / amap.shape[1]) < right and top <= y * (16 / amap.shape[0]) < bottom
            noisy = x[e.index:e.index + 1].copy()
            outside = np.ones(noisy.shape[2:], bool)
            outside[top:bottom, left:right] = False
            noisy[0, :, outside] = rng.random((outside.sum(), noisy.shape[1])).astype(np.float32)
            again = digits_model.activations(noisy, [lay.name])[lay.name][0, unit, y, xx]
            assert np.isclose(again, amap[y, xx], rtol=1e-5, atol=1e-5), (lay.name, e.input_box)
            crop = Image.open(e.crop)
            assert crop.size == (right - left, bottom - top)  # digits: model input = original size
            assert Image.open(e.image).size == (16, 16)


def test_inline_positions_equal_pass_2_and_need_no_second_pass(digits_model, digits_folder, digits_run, tmp_path,
                                                               monkeypatch):
    import importlib

    mine_module = importlib.import_module("onnxviz.mining.mine")  # the module (``onnxviz.mining.mine`` is the function)

    wanted = []
    real = mine_module.wanted_images
    monkeypatch.setattr(mine_module, "wanted_images", lambda st: wanted.append(real(st)) or wanted[-1])
    s = mine(digits_model, digits_folder, tmp_path / "inline", top=5, bottom=4, batch_size=16, threads=1, workers=2,
             progress=False, positions="inline")
    assert s.complete and wanted == [[]]  # every example's position came with pass 1
    p = mine(digits_model, digits_folder, tmp_path / "pass2", top=5, bottom=4, batch_size=16, threads=1, workers=2,
             progress=False, thumbs=False, positions="pass2")
    assert p.complete and len(wanted[-1]) > 0  # pass 2 ran, over the example images
    inline, pass2 = _all_rows(tmp_path / "inline"), _all_rows(tmp_path / "pass2")
    assert len(inline) > 0 and inline == pass2  # same examples, values and positions, bit for bit
    with pytest.raises(onnxviz.mining.MiningError, match="positions must be"):
        mine(digits_model, digits_folder, tmp_path / "x", positions="later")


def test_resume_after_interruption_is_identical(digits_model, digits_folder, digits_run, tmp_path):
    out = tmp_path / "run"
    s1 = mine(digits_model, digits_folder, out, top=5, bottom=4, batch_size=16, threads=1, progress=False,
              stop_after=3)
    assert not s1.complete and s1.images == 48
    with pytest.raises(onnxviz.errors.OnnxVizError):
        open_results(out).examples("nope", 0)
    s2 = mine(digits_model, digits_folder, out, top=5, bottom=4, batch_size=16, threads=1, progress=False)
    assert s2.complete and s2.resumed_from == 48 and s2.processed_now == N_DIGITS - 48
    assert _all_rows(out) == _all_rows(digits_run)
    with pytest.raises(onnxviz.mining.MiningError, match="other settings"):
        mine(digits_model, digits_folder, out, top=3, bottom=4, progress=False)


def test_shards_merge_to_the_same_result(digits_model, digits_folder, digits_run, tmp_path):
    for i in range(2):
        s = mine(digits_model, digits_folder, tmp_path / f"s{i}", top=5, bottom=4, batch_size=7, threads=1,
                 shard=f"{i}/2", progress=False, thumbs=False)
        assert s.complete
    merge_runs([tmp_path / "s1", tmp_path / "s0"], tmp_path / "merged")
    assert _all_rows(tmp_path / "merged") == _all_rows(digits_run)
    r = open_results(tmp_path / "merged")
    assert r.summary["images"] == N_DIGITS


# ---------------------------------------------------------------------------- odd files
@pytest.fixture(scope="module")
def odd_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("odd")
    photo = Image.open(onnxviz.preprocessing.images.sample_image_path()).convert("RGB")
    photo.save(root / "good.jpg")
    photo.convert("CMYK").save(root / "cmyk.jpg")
    photo.convert("RGBA").save(root / "rgba.png")
    photo.convert("L").save(root / "gray.png")
    arr16 = (np.asarray(photo.convert("L"), np.uint16) * 257)
    Image.fromarray(arr16).save(root / "sixteen.png")
    assert Image.open(root / "sixteen.png").mode.startswith("I")
    Image.new("RGB", (1, 1), (200, 10, 10)).save(root / "tiny.png")
    photo.resize((5000, 3500)).save(root / "huge.jpg", quality=60)
    data = (root / "good.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 3])
    (root / "notes.jpg").write_text("this is not an image")
    (root / "readme.txt").write_text("ignored: not an image suffix")
    return root


def test_odd_and_corrupt_images_are_handled_skipped_and_counted(digits_model, odd_folder, tmp_path):
    s = mine(digits_model, odd_folder, tmp_path / "run", top=3, bottom=0, batch_size=4, threads=1, progress=False)
    assert s.complete
    skipped = {k for k, _ in s.skipped_files}
    assert skipped == {"truncated.jpg", "notes.jpg"}
    assert s.images == 7 and s.skipped == 2
    assert "2 skipped" in s.text() and "notes.jpg" in s.text()
    r = open_results(tmp_path / "run")
    assert {k for _, k, _ in r.skipped()} == skipped
    mined = {e.key for lay in r.layers for u in range(r.units(lay)) for e in r.examples(lay, u, "mean", "top")}
    assert mined <= {"good.jpg", "cmyk.jpg", "rgba.png", "gray.png", "sixteen.png", "tiny.png", "huge.jpg"}
    huge = [e for e in r.examples(r.layers[0], 0, "max", "top") if e.key == "huge.jpg"]
    for e in huge:  # boxes are in the original photo's pixels
        assert e.image_size == (5000, 3500) and e.box[2] <= 5000 and e.box[3] <= 3500


def test_decoder_processes_give_the_same_result_as_threads(digits_model, odd_folder, tmp_path):
    kw = dict(top=3, bottom=2, batch_size=4, threads=1, workers=2, progress=False, thumbs=False)
    a = mine(digits_model, odd_folder, tmp_path / "threads", **kw)
    b = mine(digits_model, odd_folder, tmp_path / "procs", decoder="processes", **kw)
    assert a.complete and b.complete and (b.images, b.skipped) == (a.images, a.skipped) == (7, 2)
    assert b.skipped_files == a.skipped_files
    assert _all_rows(tmp_path / "procs") == _all_rows(tmp_path / "threads")


def test_empty_and_imageless_folders_give_clear_messages(digits_onnx, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="empty"):
        open_source(tmp_path / "empty")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("x")
    (docs / "b.csv").write_text("y")
    with pytest.raises(DatasetError, match="no images.*2 files"):
        open_source(docs)
    res = CliRunner().invoke(cli, ["mine", str(digits_onnx), str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 3 and "empty" in res.output
    res = CliRunner().invoke(cli, ["mine", str(digits_onnx), str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 3 and "not found" in res.output


def test_zip_tar_and_list_sources_give_the_same_result(digits_model, digits_folder, digits_run, tmp_path):
    zipped = shutil.make_archive(str(tmp_path / "digits"), "zip", digits_folder)
    tarred = shutil.make_archive(str(tmp_path / "digits"), "gztar", digits_folder)
    listed = tmp_path / "list.txt"
    src = open_source(digits_folder)
    listed.write_text("\n".join(str(digits_folder / src.key(i)) for i in range(len(src))))
    ref = [row for row in _all_rows(digits_run)]
    for spec in (zipped, tarred, listed):
        out = tmp_path / Path(spec).name.replace(".", "_")
        mine(digits_model, spec, out, top=5, bottom=4, batch_size=32, threads=1, progress=False, thumbs=False)
        assert _all_rows(out) == ref, spec


def test_cli_mine_and_examples(digits_onnx, digits_folder, tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(cli, ["mine", str(digits_onnx), str(digits_folder), "--out", str(out), "--top", "4",
                                   "--bottom", "2", "--batch-size", "64", "--threads", "1", "--layers", "relu_2,fc",
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    assert f"{N_DIGITS} images mined, 0 skipped" in res.output and "img/s" in res.output
    r = open_results(out)
    assert len(r.layers) == 2 and r.command.startswith("onnxviz mine")
    layer = r.layers[0]
    sheet = tmp_path / "sheet.png"
    res = CliRunner().invoke(cli, ["examples", str(out), f"{layer}:3", "--sheet", str(sheet)])
    assert res.exit_code == 0, res.output
    top = r.examples(layer, 3, "mean", "top")  # the default statistic
    assert len(res.output.strip().splitlines()) == 2 + len(top) and top[0].key in res.output
    assert Image.open(sheet).size[0] > 100
    res = CliRunner().invoke(cli, ["examples", str(out), "relu_2"])
    assert res.exit_code == 3 and "LAYER:UNIT" in res.output


# ---------------------------------------------------------------------------- real MobileNetV2
def _imagenet_photos() -> list:
    from onnxviz.zoo import imagenet_photos

    return [p for p, _ in imagenet_photos()]


@pytest.mark.slow
@pytest.mark.weights
def test_mobilenet_v2_all_layers_and_logits_on_real_photos(tmp_path, tmp_path_factory):
    photos = _imagenet_photos()
    if not photos:
        pytest.skip("foolbox (its 20 ImageNet photos) is not installed")
    from models_fixture import exported

    path = exported("mobilenet_v2", tmp_path_factory)["path"]  # skips if the weights are not installed
    folder = tmp_path / "photos"
    folder.mkdir()
    for p in photos:
        shutil.copy(p, folder / p.name)
    shutil.copy(onnxviz.preprocessing.images.sample_image_path(), folder / "zz_chelsea.jpg")
    m = onnxviz.load(path)
    s = mine(m, folder, tmp_path / "run", top=3, bottom=3, batch_size=8, threads=2, progress=False)
    assert s.complete and s.images == len(photos) + 1
    r = open_results(tmp_path / "run")
    src, x = _inputs(m, folder)
    stats = m.channel_stats(x, None, batch_size=8)
    for layer in r.layers:
        for stat in ("mean", "max"):
            for direction in ("top", "bottom"):
                ref = brute_force(stats[layer][stat], 3, direction == "top")
                got = np.array([[e.index for e in r.examples(layer, u, stat, direction)]
                                for u in range(r.units(layer))])
                assert np.array_equal(got, ref), (layer, stat, direction)
    logits = r.layers[-1]
    assert r.units(logits) == 1000
    hits = 0
    for i, p in enumerate(sorted(photos)):
        label = int(p.stem.split("_")[-1])
        hits += p.name in [e.key for e in r.examples(logits, label, "max", "top")]
    assert hits >= len(photos) - 1, hits  # each photo among the top examples of its own class


def test_decoder_auto_picks_processes_on_many_cores(monkeypatch):
    from onnxviz.mining import decoders

    monkeypatch.setattr(decoders.os, "cpu_count", lambda: 16)
    assert decoders.resolve("auto") == "processes" and decoders.default_workers("auto") == 14
    assert decoders.default_workers("threads") == 4
    monkeypatch.setattr(decoders.os, "cpu_count", lambda: 2)
    assert decoders.resolve("auto") == "threads" and decoders.default_workers("auto") == 2
    with pytest.raises(DatasetError, match="unknown decoder 'gpu'"):
        decoders.resolve("gpu")
