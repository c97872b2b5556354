"""`onnxviz microscope`: the whole job in one command on the real digits CNN (few steps), its plan, its
resume after SIGKILL on a fixed schedule, and its one-line errors."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from digits import save_digit_folder
from test_kill import _table  # a query's rows, read-only
from onnxviz.cli import main

REPO = Path(__file__).resolve().parents[1]
TIMING_KEYS = ("seconds", "ms_per_step")


@pytest.fixture(scope="module")
def photos(digits_data, tmp_path_factory):
    images, labels = digits_data
    return save_digit_folder(images, labels, tmp_path_factory.mktemp("microscope_photos"), 48)


def _argv(model, photos, out, *extra):
    return ["microscope", str(model), str(photos), "--out", str(out), "--layers", "relu_1,relu_2", "--units", "0-5",
            "--steps", "6", "--batch-size", "2", "--top", "4", "--no-progress", "--threads", "1", *extra]


def test_whole_command_makes_the_site_and_the_json(digits_onnx, photos, tmp_path):
    out = tmp_path / "m"
    res = CliRunner().invoke(main, _argv(digits_onnx, photos, out, "--concepts", "4"))
    assert res.exit_code == 0, res.output
    assert "microscope plan" in res.output and "microscope done" in res.output
    plan = json.loads((out / "plan.json").read_text())
    assert plan["units"] == 12 and plan["n_images"] == 48 and plan["batch_size"] == 2
    assert set(plan["estimate"]) == {"inspect", "mine", "render", "reliability", "concepts", "site"}
    stages = json.loads((out / "stages.json").read_text())
    assert all(v["status"] == "done" for v in stages.values()), stages
    summary = json.loads((out / "summary.json").read_text())
    assert summary["renders"] == 12 and set(summary["stages"]) == set(stages)
    assert sum(summary["reliability"].values()) == 12  # every channel render went through the check
    for layer in ("relu_1", "relu_2"):
        for u in range(6):
            rec = json.loads((out / "render" / layer / f"channel_{u}.json").read_text())
            assert rec["reliability"]["verdict"] in ("pass", "suspect", "unknown")
            assert rec["reliability"].get("meaning") != "not checked yet"
    assert (out / "site" / "index.html").exists() and (out / "mining" / "mining.sqlite").exists()
    from onnxviz.mining import open_results

    res = open_results(out)
    try:  # every layer is mined (one forward pass), not only the rendered ones
        assert len(res.examples("fc", 3, "mean", "top")) == 4
    finally:
        res.close()
    concepts = stages["concepts"]["result"]["relu_2"]  # the last chosen layer by default
    assert concepts["concepts"] == 4 and concepts["mined_images"] == 48
    assert list((out / "concepts" / "relu_2").glob("nmf4*.json"))
    # run again: everything is finished, nothing is redone
    res = CliRunner().invoke(main, _argv(digits_onnx, photos, out, "--concepts", "4"))
    assert res.exit_code == 0, res.output
    assert "resuming" in res.output
    assert json.loads((out / "stages.json").read_text())["render"]["sessions"] == 1


def test_plan_only_writes_only_the_plan(digits_onnx, photos, tmp_path):
    out = tmp_path / "p"
    res = CliRunner().invoke(main, _argv(digits_onnx, photos, out, "--plan-only"))
    assert res.exit_code == 0, res.output
    assert "estimate" in res.output
    assert sorted(p.name for p in out.iterdir()) == ["plan.json"]


@pytest.mark.parametrize("which", ["model", "images"])
def test_bad_input_is_one_line_and_exit_3(digits_onnx, photos, tmp_path, which):
    model = tmp_path / "missing.onnx" if which == "model" else digits_onnx
    images = tmp_path / "no_photos" if which == "images" else photos
    res = CliRunner().invoke(main, _argv(model, images, tmp_path / "b"))
    assert res.exit_code == 3, res.output
    lines = [line for line in res.output.splitlines() if line.strip() and not line.startswith(("onnxruntime",
                                                                                                "microscope plan"))]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.output
    assert "Traceback" not in res.output


def _comparable(path: Path, root: Path):
    """A file's content with the run folder's own path and the timings taken out."""
    if path.suffix not in (".json", ".html", ".js", ".css", ".txt"):
        return path.read_bytes()
    text = path.read_text(encoding="utf-8").replace(str(root), "RUN")
    if path.suffix == ".json" and "render" in path.parts:
        return {k: v for k, v in json.loads(text).items() if k not in TIMING_KEYS}
    return text


@pytest.mark.slow
def test_killed_twice_then_rerun_ends_identical(digits_onnx, photos, tmp_path):
    """SIGKILL after the 2nd and the 6th render record (of 12), then the same command: the same pictures,
    records, examples and site as one uninterrupted run."""
    ref = tmp_path / "ref"
    res = CliRunner().invoke(main, _argv(digits_onnx, photos, ref))
    assert res.exit_code == 0, res.output
    out = tmp_path / "killed"
    kills = []
    for at in (2, 6):
        proc = subprocess.Popen([sys.executable, "-m", "onnxviz", *_argv(digits_onnx, photos, out)], cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env={**os.environ, "PYTHONPATH": str(REPO)})
        deadline = time.monotonic() + 240
        while proc.poll() is None and len(list((out / "render").rglob("*.json"))) < at \
                and time.monotonic() < deadline:
            time.sleep(0.005)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills.append(len(list((out / "render").rglob("*.json"))))
        proc.wait()
        assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.read().decode()[-2000:]
    assert kills and kills[0] < 12, kills
    res = CliRunner().invoke(main, _argv(digits_onnx, photos, out))  # resume
    assert res.exit_code == 0, res.output
    assert "resuming" in res.output
    stages = json.loads((out / "stages.json").read_text())
    assert all(v["status"] == "done" for v in stages.values()) and stages["render"]["sessions"] >= 2

    skip = {"stages.json", "summary.json", "plan.json", "mining.sqlite", "mining.sqlite-wal", "mining.sqlite-shm"}
    files = {p.relative_to(ref) for p in ref.rglob("*") if p.is_file() and p.name not in skip}
    got = {p.relative_to(out) for p in out.rglob("*") if p.is_file() and p.name not in skip
           and not p.name.endswith(".tmp")}
    assert got == files
    for rel in sorted(files):
        assert _comparable(out / rel, out) == _comparable(ref / rel, ref), rel
    sql = "SELECT * FROM examples ORDER BY layer, unit, stat, dir, rank"
    assert _table(out / "mining" / "mining.sqlite", sql) == _table(ref / "mining" / "mining.sqlite", sql)
