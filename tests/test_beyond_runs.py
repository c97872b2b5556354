"""MACO, accentuation and the reliability check in the run directory: layer batches and the CLI (issue 12)."""
from __future__ import annotations

import json
import shlex

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import onnxviz
from onnxviz.cli import main
from onnxviz.mining import mine, open_results
from onnxviz.optvis import objectives as obj
from onnxviz.optvis.accentuate import accentuate
from digits import save_digit_folder

LAYER = "relu_2"
N = 60
FAST = ["--steps", "4", "--size", "16", "--no-progress"]


@pytest.fixture(scope="module")
def folder(digits_data, tmp_path_factory):
    images, labels = digits_data
    root = tmp_path_factory.mktemp("digits_beyond")
    save_digit_folder(images, labels, root, N)
    return root


@pytest.fixture(scope="module")
def run(digits_onnx, folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("run_beyond")
    assert mine(onnxviz.load(digits_onnx), folder, out, top=4, bottom=0, batch_size=32, threads=1, workers=1,
                progress=False).complete
    return out


def _rec(path) -> dict:
    return json.loads(path.with_suffix(".json").read_text())


def _rerun(cmd: str, out) -> None:
    """Run a recorded `onnxviz ...` command (its --out replaced)."""
    args = shlex.split(cmd)[1:]
    if "--out" in args:
        i = args.index("--out")
        del args[i:i + 2]
    res = CliRunner().invoke(main, args + ["--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output


def test_layer_batch_maco_importance_and_reliability(digits_onnx, run, tmp_path):
    out = tmp_path / "r"
    args = ["render", str(digits_onnx), "--layer", LAYER, "--units", "0-2", "--batch-size", "2", "--param", "maco",
            "--runs", str(run), "--out", str(out)] + FAST
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    folder = out / LAYER
    for u in range(3):
        png = folder / f"channel_{u}_maco.png"
        rec = _rec(png)
        assert rec["param"] == "maco" and rec["unit"] == u and rec["kind"] == "channel"
        imp = np.asarray(Image.open(folder / rec["importance"]))
        assert rec["importance"] == f"channel_{u}_maco_importance.png" and imp.shape[:2] == (16, 16) and imp.max() > 0
        rel = rec["reliability"]
        assert rel["verdict"] in ("pass", "suspect") and isinstance(rel["score"], float) and rel["meaning"]
        assert rel["run"] == str(run) and len(rel["examples"]) == 4
        assert "--param maco" in rec["command"] and "--run " in rec["command"] and rec["lr"] == 0.2
    # the recorded command renders the same batch: the same bytes
    _rerun(_rec(folder / "channel_2_maco.png")["command"], tmp_path / "again")
    again = tmp_path / "again" / LAYER / "channel_2_maco.png"
    assert again.read_bytes() == (folder / "channel_2_maco.png").read_bytes()
    assert _rec(again)["reliability"] == _rec(folder / "channel_2_maco.png")["reliability"]
    # an FFT batch beside it keeps its own stems; no mining run: the record says why there is no check
    res = CliRunner().invoke(main, ["render", str(digits_onnx), "--layer", LAYER, "--units", "0", "--out", str(out)]
                             + FAST)
    assert res.exit_code == 0, res.output
    rec = _rec(folder / "channel_0.png")
    assert not (folder / "channel_0_importance.png").exists() and "importance" not in rec
    assert rec["param"] != "maco" and rec["reliability"]["verdict"] == "unknown"
    assert "--run RUN" in rec["reliability"]["meaning"]
    # a batch already made by the same command is kept
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0 and "3 kept from an earlier run" in res.output, res.output


def test_every_render_record_has_a_reliability_entry(digits_onnx, run, tmp_path):
    out = str(tmp_path)
    for args in (["render", str(digits_onnx), f"{LAYER}:1", "--runs", str(run)],
                 ["render", str(digits_onnx), "logits:3", "--objective", "class_logit"],
                 ["render", str(digits_onnx), f"{LAYER}:1", "--neuron"],
                 ["render", str(digits_onnx), f"{LAYER}:1", "--diversity", "2", "--runs", str(run)]):
        res = CliRunner().invoke(main, args + ["--out", out] + FAST)
        assert res.exit_code == 0, res.output
    rel = {p.name: _rec(p)["reliability"] for p in tmp_path.rglob("*.png")}
    assert rel["channel_1.png"]["verdict"] in ("pass", "suspect") and "score" in rel["channel_1.png"]
    assert rel["class_logit_3.png"]["verdict"] == "unknown" and "class_logit" in rel["class_logit_3.png"]["meaning"]
    assert rel["neuron_1.png"]["verdict"] == "unknown"
    assert all(rel[f"diversity_channel_1_{i}.png"]["verdict"] in ("pass", "suspect") for i in range(2))
    res = CliRunner().invoke(main, ["render", str(digits_onnx), "--layer", LAYER, "--units", "0", "--param", "maco",
                                    "--accentuate", "top", "--runs", str(run)])
    assert res.exit_code == 2 and "--param maco" in res.output


def test_batched_accentuation_equals_one_call_per_unit(digits_onnx, digits_data):
    model = onnxviz.load(digits_onnx)
    photos = digits_data[0][:4]
    kw = dict(reg_layer="relu", weight=2.0, steps=6, seed=0, lr=0.05)
    both = accentuate(model, obj.channel(LAYER, [0, 0, 2, 2]), photos, **kw)
    one = accentuate(model, f"{LAYER}:0", photos[:2], **kw)
    other = accentuate(model, f"{LAYER}:2", photos[2:], **kw)
    np.testing.assert_allclose(both.images, np.concatenate([one.images, other.images]), atol=1e-4)
    acc = both.record["accentuation"]
    # the same scales up to float32 rounding (a batch of 4 and two of 2 sum in another order)
    assert acc["scale"] == pytest.approx(one.record["accentuation"]["scale"] + other.record["accentuation"]["scale"],
                                         rel=1e-5)
    assert acc["scale"][0] == acc["scale"][1]  # one scale per unit
    assert np.all(np.asarray(both.record["activation_end"]) > np.asarray(acc["activation_photo"]))


def test_layer_accentuations_of_top_examples(digits_onnx, run, tmp_path):
    results = open_results(run)
    try:  # three units that the photos excite (a dead unit stays at 0 from any photo)
        live = [u for u in range(32) if results.examples(LAYER, u, direction="top", k=1)[0].activation > 0.1][:3]
        tops = {u: [ex.image for ex in results.examples(LAYER, u, direction="top", k=2)] for u in live}
    finally:
        results.close()
    out = tmp_path / "acc"
    args = ["render", str(digits_onnx), "--layer", LAYER, "--units", ",".join(map(str, live)), "--accentuate", "top",
            "--top", "2", "--batch-size", "4", "--runs", str(run), "--out", str(out)] + FAST
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    commands = set()
    for u, photos in tops.items():
        for photo in photos:
            png = out / LAYER / f"accentuate_{u}_{photo.stem}.png"
            rec = _rec(png)
            assert rec["kind"] == "accentuation" and rec["unit"] == u and rec["photo"] == str(photo)
            assert set(rec["accentuation"]) >= {"reg_layer", "weight", "feature_distance", "pixel_rmse",
                                                 "activation_photo"}
            assert rec["activation_end"] > rec["accentuation"]["activation_photo"]
            assert rec["reliability"]["verdict"] == "unknown" and rec["batch"] == (4 if u != live[2] else 2)
            commands.add(rec["command"])
    assert len(commands) == 2  # two units (four photos) per batch, then one
    # seeded: the recorded command of a batch gives the same bytes
    last = live[2]
    cmd = _rec(out / LAYER / f"accentuate_{last}_{tops[last][0].stem}.png")["command"]
    assert f"--units {last} " in cmd and "--accentuate top" in cmd
    _rerun(cmd, tmp_path / "again")
    for photo in tops[last]:
        name = f"accentuate_{last}_{photo.stem}.png"
        assert (tmp_path / "again" / LAYER / name).read_bytes() == (out / LAYER / name).read_bytes()
