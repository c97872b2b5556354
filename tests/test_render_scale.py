"""Renders at scale (issue 24 item 2): the reliability check of many units in shared passes gives one at a
time's numbers; the render batch is bounded by memory (the pure bound, the choice under it, its reason in
plan.json); mixed precision and channels_last are render options that reach the record and the command."""
from __future__ import annotations

import numpy as np
import pytest

import onnxviz
from onnxviz.microscope import memory

NUMBERS = ("score", "path_similarity", "natural_similarity", "explained", "activation", "ratio")


def _close(a: dict, b: dict, tol: float = 1e-4) -> None:
    assert a["verdict"] == b["verdict"]
    for key in NUMBERS:
        if a[key] is None or b[key] is None:
            assert a[key] is b[key] is None, key
            continue
        assert abs(a[key] - b[key]) <= tol * max(1.0, abs(b[key])), (key, a[key], b[key])
    assert [r["layer"] for r in a["layers"]] == [r["layer"] for r in b["layers"]]
    for ra, rb in zip(a["layers"], b["layers"]):
        assert abs(ra["similarity"] - rb["similarity"]) <= tol and abs(ra["explained"] - rb["explained"]) <= tol


def test_units_checked_together_match_one_at_a_time(digits_onnx, digits_data):
    from onnxviz.optvis.reliability import check, check_units

    m = onnxviz.load(digits_onnx)
    images = np.asarray(digits_data[0][:120], np.float32)
    layer = "relu_2"
    acts = m.channel_stats(m.prepare(images), [layer])[layer]["mean"]
    gen = np.random.default_rng(0)
    items = []
    live = [int(u) for u in np.argsort(-acts.max(0))[:6]]  # units the digits drive
    for u in live:
        top = images[np.argsort(-acts[:, u])[:4]]
        renders = gen.random((2 if u == live[3] else 1, *images.shape[1:]), dtype=np.float32)
        renders[0] = images[np.argsort(-acts[:, u])[5]]  # a real photo: a non-trivial path
        items.append((u, renders, top, None))
    alone = [check(m, r, layer, u, e) for u, r, e, _ in items]
    together = check_units(m, layer, items, batch=7)  # passes that cut across units
    assert len(together) == len(alone)
    for a, t in zip(alone, together):
        if "renders" in a:
            for ra, rt in zip(a["renders"], t["renders"]):
                _close(rt, ra)
        else:
            _close(t, a)
    # a channel's numbers are its own: the check of unit 2 is not the check of unit 1
    assert together[1]["activation"] != together[2]["activation"]
    assert sum(t.get("score", 0) > 0 for t in together) >= 3  # live paths, not zeros compared with zeros


def test_batch_for_memory_is_free_over_per_image():
    mib, gib = 2 ** 20, 2 ** 30
    assert memory.batch_for_memory(10 * gib, 100 * mib, fraction=0.7) == 71  # 7,168 MiB / 100 MiB
    assert memory.batch_for_memory(10 * gib, 100 * mib, fixed_bytes=1 * gib, fraction=0.7) == 61
    assert memory.batch_for_memory(50 * mib, 100 * mib) == 1  # nothing smaller than one image
    assert memory.batch_for_memory(10 * gib, 0) == memory.MAX_BATCH  # nothing measured
    assert memory.batch_for_memory(10 * gib, 1, cap=64) == 64


def test_choice_never_exceeds_the_bound():
    cost = {1: 0.010, 8: 0.006, 16: 0.005, 64: 0.004}
    batch, why = memory.choose(cost, bound=16)
    assert batch == 16 and "fastest" in why and "batch 64" not in why
    assert memory.choose({1: 0.010, 8: 0.0095}, bound=64)[0] == 1  # gains < 1.1x: one at a time
    batch, why = memory.choose({300: 0.004}, bound=300, given=512)
    assert batch == 300 and "lowered" in why
    assert memory.choose({8: 0.004}, bound=300, given=8) == (8, "given (--batch-size)")
    assert memory.capped((1, 16, 64), 20) == [1, 16, 20]


def test_plan_records_why_that_batch(digits_onnx, digits_data, tmp_path, monkeypatch):
    from digits import save_digit_folder
    from onnxviz.microscope import make_plan

    (tmp_path / "photos").mkdir()
    photos = save_digit_folder(*digits_data, tmp_path / "photos", 24)
    m = onnxviz.load(digits_onnx)
    # a device with room for 3 images of 1 MiB each (70% of 4.3 MiB): the batch of 8 asked for does not fit
    monkeypatch.setattr(memory, "free_bytes", lambda device: (int(4.3 * 2 ** 20), "test"))
    monkeypatch.setattr(memory, "per_image_bytes", lambda *a, **k: (2 ** 20, 0))
    plan, _ = make_plan(m, str(digits_onnx), photos, tmp_path / "m", layers="relu,relu_2", units="0-3", steps=4,
                        batch_size=8, reuse=False, device="cpu")
    mem = plan.calibration["memory"]
    assert plan.batch_size == mem["max_batch"] == 3
    assert "lowered to what fits" in plan.calibration["batch_choice"] and "memory allows 3" in plan.text()
    assert mem["layer"] == "relu_2" and mem["per_image_bytes"] == 2 ** 20
    plan.write(tmp_path / "m")
    again = type(plan).read(tmp_path / "m")
    assert again.calibration["memory"]["max_batch"] == 3 and again.calibration["check_batch"] <= 3


def test_measured_bytes_grow_with_the_batch(digits_onnx):
    m = onnxviz.load(digits_onnx)
    per, fixed = memory.per_image_bytes(m, "relu_2", [0, 1, 2], "cpu")
    assert per > 16 * 16 * 4  # at least the image itself, saved for the backward pass
    free, source = memory.free_bytes("cpu")
    assert free > 0 and source


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
def test_cuda_bound_reads_the_given_device(digits_onnx):
    import torch

    dev = torch.device("cuda", torch.cuda.device_count() - 1)
    free, source = memory.free_bytes(dev)
    assert free > 0 and str(dev) in source
    per, _ = memory.per_image_bytes(onnxviz.load(digits_onnx), "relu_2", [0, 1], dev)
    assert per > 0


def test_precision_is_an_option_of_layer_batches(digits_onnx, tmp_path):
    from click.testing import CliRunner

    from onnxviz.cli import main
    from onnxviz.errors import ObjectiveError
    from onnxviz.optvis import render

    m = onnxviz.load(digits_onnx)
    with pytest.raises(ObjectiveError, match="unknown precision"):
        render(m, "relu_2:0", steps=1, precision="fp8")
    res = CliRunner().invoke(main, ["render", str(digits_onnx), "--layer", "relu_2", "--units", "0-1", "--steps", "6",
                                    "--precision", "bf16", "--no-channels-last", "--run", str(tmp_path / "r"),
                                    "--no-progress", "--threads", "1"])
    assert res.exit_code == 0, res.output
    import json

    rec = json.loads((tmp_path / "r" / "render" / "relu_2" / "channel_0.json").read_text())
    assert rec["precision"] == "bf16" and rec["channels_last"] is False
    assert "--precision bf16 --no-channels-last" in rec["command"]
    assert rec["activation_end"] > rec["activation_start"]  # bf16 steps still climb
    res = CliRunner().invoke(main, ["render", str(digits_onnx), "relu_2:0", "--precision", "fp16"])
    assert res.exit_code != 0 and "apply to --layer" in res.output
