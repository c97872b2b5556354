"""Kill storms lose nothing: `mine` killed with SIGKILL twice on a fixed schedule, then resumed, ends with
exactly the examples of an uninterrupted run, and no partial file is left that looks finished."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from digits import save_digit_folder
from onnxviz.mining import mine

REPO = Path(__file__).resolve().parents[1]
ARGS = dict(batch_size=4, top=4, bottom=4, checkpoint_seconds=0, progress=False, spectrum=8, decoder="threads",
            workers=1)
SCRIPT = ("import sys; from onnxviz.mining import mine; "
          f"mine(sys.argv[1], sys.argv[2], sys.argv[3], **{ARGS!r})")
KILL_AT = (24, 64)  # images done (checkpointed) when each SIGKILL comes: the fixed schedule


def _done(db: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.5)
        try:
            row = con.execute("SELECT value FROM meta WHERE key='done'").fetchone()
        finally:
            con.close()
        return int(row[0]) if row else 0
    except sqlite3.Error:
        return 0


def _table(db: Path, sql: str) -> list:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.mark.slow
def test_mine_killed_twice_then_resumed_equals_an_uninterrupted_run(digits_onnx, digits_data, tmp_path):
    images, labels = digits_data
    (tmp_path / "photos").mkdir()
    photos = save_digit_folder(images, labels, tmp_path / "photos", 120)
    mine(str(digits_onnx), str(photos), str(tmp_path / "ref"), **ARGS)
    out = tmp_path / "killed"
    db = out / "mining" / "mining.sqlite"
    kills = []
    for at in KILL_AT:
        proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(digits_onnx), str(photos), str(out)], cwd=REPO,
                                env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}"},
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 180
        while proc.poll() is None and _done(db) < at and time.monotonic() < deadline:
            time.sleep(0.01)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills.append(_done(db))
        proc.wait()
        assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.read().decode()[-2000:]
    assert kills, "the run finished before the first kill: nothing was interrupted"
    assert kills[0] < 120  # killed mid-run, with work left to resume
    summary = mine(str(digits_onnx), str(photos), str(out), **ARGS)  # resume
    assert summary.complete
    ref_db = tmp_path / "ref" / "mining" / "mining.sqlite"
    for sql in ("SELECT * FROM examples ORDER BY layer, unit, stat, dir, rank",
                "SELECT idx, key, width, height, error FROM images ORDER BY idx"):
        assert _table(db, sql) == _table(ref_db, sql)
    for png in (out / "mining").rglob("*.png"):  # every picture is whole
        Image.open(png).load()


@pytest.mark.slow
def test_render_layer_killed_twice_then_resumed_equals_an_uninterrupted_run(tmp_path):
    """`render --layer L --all` killed on a fixed schedule (after 2, then 4 of 8 records), then resumed:
    the same pictures and records (commands aside) as one uninterrupted run."""
    import json

    import onnx

    from onnxviz.cli import main
    from onnxviz.fuzz.models import base_model
    from click.testing import CliRunner

    model = tmp_path / "cnn.onnx"
    onnx.save(base_model(), model)

    def argv(out):
        return ["render", str(model), "--layer", "relu2", "--all", "--batch-size", "2", "--steps", "6", "--out",
                str(out), "--no-progress", "--threads", "1"]

    res = CliRunner().invoke(main, argv(tmp_path / "ref"))
    assert res.exit_code == 0, res.output
    out = tmp_path / "killed"
    kills = []
    for at in (2, 4):
        proc = subprocess.Popen([sys.executable, "-m", "onnxviz"] + argv(out), cwd=REPO, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
        deadline = time.monotonic() + 180
        while proc.poll() is None and len(list(out.rglob("*.json"))) < at and time.monotonic() < deadline:
            time.sleep(0.005)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills.append(len(list(out.rglob("*.json"))))
        proc.wait()
    assert kills and kills[0] < 8, kills
    res = CliRunner().invoke(main, argv(out))  # resume: keeps finished batches, renders the rest
    assert res.exit_code == 0, res.output
    ref = sorted(p.relative_to(tmp_path / "ref") for p in (tmp_path / "ref").rglob("*") if p.is_file())
    got = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file() and not p.name.endswith(".tmp"))
    assert got == ref
    for rel in ref:
        a, b = (tmp_path / "ref" / rel).read_bytes(), (out / rel).read_bytes()
        if rel.suffix == ".json":
            a, b = ({k: v for k, v in json.loads(x).items() if k not in ("command", "seconds", "ms_per_step")}
                    for x in (a, b))
        assert a == b, rel
