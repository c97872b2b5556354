"""The same names and behaviour across commands: metadata overrides on `site`, the learning rate a
user gives, objective names, one command builder, progress lines outside a terminal, errors that
do not vanish."""
from __future__ import annotations

import io
import json
import logging
import shlex

import numpy as np
from click.testing import CliRunner
from PIL import Image

import onnxviz
from onnxviz.cli import main
from onnxviz.paths import slug
from onnxviz.runs import command


def test_one_command_builder_quotes_and_orders():
    cmd = command("render", "my model.onnx", "a:3", objective=None, steps=8, all=True, input_size=(32, 32),
                  labels_file="l.txt", out="runs/x")
    assert cmd == "onnxviz render 'my model.onnx' a:3 --steps 8 --all --input-size 32 32 --labels l.txt --out runs/x"
    assert shlex.split(cmd)[2] == "my model.onnx"


def test_progress_outside_a_terminal_is_whole_lines(monkeypatch):
    from onnxviz import progress

    stream = io.StringIO()
    monkeypatch.setattr(progress.sys, "stderr", stream)
    monkeypatch.setattr(progress, "LOG_INTERVAL", 0.0)
    with progress.bar(50, "work", "img") as b:
        for _ in range(50):
            b.update(1)
    text = stream.getvalue()
    assert "\r" not in text and text.endswith("\n")
    lines = text.splitlines()
    assert lines[-1].startswith("work: 100%") and len(lines) == len(set(lines))


def test_render_keeps_the_given_lr_and_names_objectives_like_the_api(digits_onnx, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    photo = tmp_path / "photo.png"
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(photo)
    runner = CliRunner()
    for lr, expected in (("0.05", 0.05), (None, 0.02)):
        args = ["render", digits_onnx, "--deepdream", "relu_2", "--image", str(photo), "--steps", "2", "--out", "o"]
        res = runner.invoke(main, args + (["--lr", lr] if lr else []))
        assert res.exit_code == 0, res.output
        rec = json.loads((tmp_path / "o/relu_2/deepdream_photo.json").read_text())
        assert rec["lr"] == expected and f"--lr {expected}" in rec["command"]
    res = runner.invoke(main, ["render", digits_onnx, "fc:4", "--objective", "class_logit", "--steps", "2",
                               "--out", "o", "--no-progress"])
    assert res.exit_code == 0, res.output
    rec = json.loads((tmp_path / "o/fc/class_logit_4.json").read_text())
    assert rec["kind"] == "class_logit" and "--objective class_logit" in rec["command"]


def test_site_takes_metadata_overrides_and_repeats_them_in_its_commands(digits_onnx, tmp_path):
    out = tmp_path / "site"
    res = CliRunner().invoke(main, ["site", digits_onnx, "--out", str(out), "--mean", "0.25", "--std", "0.5"])
    assert res.exit_code == 0, res.output
    index = (out / "index.html").read_text()
    assert "<td>0.25</td>" in index and "<td>0.5</td>" in index  # the preprocessing table
    first = onnxviz.load(digits_onnx).layers[0].name
    data = (out / "layers" / slug(first) / "data.js").read_text()  # the unit pages' commands
    assert f"{first}:@@UNIT@@ --run runs/NAME --mean 0.25 --std 0.5" in data


def test_site_with_unreadable_mining_results_is_an_error(digits_onnx, tmp_path):
    run = tmp_path / "run"
    (run / "mining").mkdir(parents=True)
    (run / "mining" / "mining.sqlite").write_bytes(b"this is not a database")
    res = CliRunner().invoke(main, ["site", digits_onnx, "--run", str(run), "--out", str(tmp_path / "site")])
    assert res.exit_code == 3 and "mining" in res.output and "Traceback" not in res.output


def test_provider_fallback_is_a_warning(caplog):
    from onnxviz.backends.ort import usable_providers

    with caplog.at_level(logging.WARNING, logger="onnxviz"):
        assert usable_providers(["NoSuchTestExecutionProvider"]) == ["CPUExecutionProvider"]
    assert any("NoSuchTestExecutionProvider" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)
