"""Kill storms lose nothing: `mine` (local and Ray), `render --layer L --all`, `atlas` and `site`, each killed
with SIGKILL twice on a fixed schedule, then resumed (or rerun), end with exactly the outputs of an
uninterrupted run, and no partial file is left that looks finished. scripts/kill_storm.py kills at
random moments, many times."""
from __future__ import annotations

import json
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
from onnxviz.fuzz.storm import mined as _done  # images checkpointed: 0 while the database is missing or locked
from onnxviz.mining import mine

REPO = Path(__file__).resolve().parents[1]
ARGS = dict(batch_size=4, top=4, bottom=4, checkpoint_seconds=0, progress=False, spectrum=8, decoder="threads",
            workers=1)
SCRIPT = ("import sys; from onnxviz.mining import mine; "
          f"mine(sys.argv[1], sys.argv[2], sys.argv[3], **{ARGS!r})")
KILL_AT = (24, 64)  # images done (checkpointed) when each SIGKILL comes: the fixed schedule


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


# --------------------------------------------------------------------------- Ray, atlas, site
def _temp(p: Path) -> bool:
    """A temporary file of an atomic write (onnxviz.files): never read as a result."""
    return p.name.startswith(".") and p.name.endswith(".tmp")


def _files(root: Path) -> dict:
    """{relative path: inode} of the finished files under ``root``."""
    out = {}
    for p in list(root.rglob("*")) if root.is_dir() else []:
        try:
            if p.is_file() and not _temp(p):
                out[p.relative_to(root).as_posix()] = p.stat().st_ino
        except OSError:  # renamed or removed while listed
            pass
    return out


def _kill_when(cmd: list, reached, timeout: float = 180) -> bool:
    """Run ``cmd`` and SIGKILL it once ``reached()`` is true; False when it finished first."""
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}"})
    deadline = time.monotonic() + timeout
    while proc.poll() is None and not reached() and time.monotonic() < deadline:
        time.sleep(0.002)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.read().decode()[-2000:]
    return killed


def _written_since(root: Path, before: dict, n: int):
    """True once ``n`` files under ``root`` are new or replaced since the snapshot ``before``."""
    return lambda: sum(before.get(k) != v for k, v in _files(root).items()) >= n


def _same_text(a: str, b: str) -> bool:
    """Equal once the run's own command line and timings are set aside."""
    import re

    pat = r'"(command|seconds|ms_per_step)": (\{[^{}]*\}|"(?:[^"\\]|\\.)*"|[0-9.e+-]+)'
    return re.sub(pat, r'"\1": null', a) == re.sub(pat, r'"\1": null', b)


def _assert_same_tree(ref: Path, got: Path) -> None:
    assert sorted(_files(got)) == sorted(_files(ref))
    for rel in _files(ref):
        a, b = (ref / rel).read_bytes(), (got / rel).read_bytes()
        if rel.endswith((".json", ".html", ".js")):
            assert _same_text(a.decode(), b.decode()), rel
        else:
            assert a == b, rel


@pytest.fixture(scope="module")
def kill_run(digits_onnx, digits_data, tmp_path_factory):
    """A real run directory of the digits CNN: 60 photos mined (with atlas samples of relu_2) and
    every unit of relu_2 rendered; what `atlas` and `site` read."""
    from click.testing import CliRunner

    from onnxviz.cli import main

    images, labels = digits_data
    root = tmp_path_factory.mktemp("kill_run")
    (root / "photos").mkdir()
    photos = save_digit_folder(images, labels, root / "photos", 60)
    run = root / "run"
    assert mine(str(digits_onnx), str(photos), str(run), top=4, bottom=4, batch_size=16, progress=False, spectrum=8,
                atlas_layers="relu_2", atlas_per_image=4, workers=1, decoder="threads").complete
    res = CliRunner().invoke(main, ["render", str(digits_onnx), "--layer", "relu_2", "--all", "--batch-size", "16",
                                    "--steps", "4", "--size", "16", "--run", str(run), "--no-progress",
                                    "--threads", "1"])
    assert res.exit_code == 0, res.output
    return run


@pytest.mark.slow
def test_mine_on_ray_killed_twice_then_resumed_equals_an_uninterrupted_run(digits_onnx, digits_data, tmp_path):
    """`mine --engine ray`: the driver SIGKILLed after 32, then 80 of 120 images (blocks of 16,
    checkpointed per block), then resumed: the examples, images, spectrum and atlas samples of an
    uninterrupted (local) run."""
    ray = pytest.importorskip("ray")  # an optional extra: onnxviz[ray]
    images, labels = digits_data
    (tmp_path / "photos").mkdir()
    photos = save_digit_folder(images, labels, tmp_path / "photos", 120)
    kw = dict(top=4, bottom=4, batch_size=4, progress=False, spectrum=8, atlas_layers="relu_2", atlas_per_image=2,
              checkpoint_seconds=0)
    mine(str(digits_onnx), str(photos), str(tmp_path / "ref"), threads=1, **kw)
    out, db = tmp_path / "killed", tmp_path / "killed" / "mining" / "mining.sqlite"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        address = ray.get_runtime_context().gcs_address  # the drivers below join this cluster and die in it
        script = ("import sys; from onnxviz.engines.ray import mine; "
                  f"mine(sys.argv[1], sys.argv[2], sys.argv[3], address={address!r}, workers=1, block_size=16, "
                  f"**{kw!r})")
        kills = []
        for at in (32, 80):
            if _kill_when([sys.executable, "-c", script, str(digits_onnx), str(photos), str(out)],
                          lambda: _done(db) >= at):
                kills.append(_done(db))
        assert kills and kills[0] < 120, kills  # killed mid-run, with work left to resume
        from onnxviz.engines.ray import mine as ray_mine

        summary = ray_mine(str(digits_onnx), str(photos), str(out), workers=1, block_size=16, **kw)  # resume
    finally:
        ray.shutdown()
    assert summary.complete and summary.resumed_from >= kills[0]
    ref = tmp_path / "ref" / "mining" / "mining.sqlite"
    for sql in ("SELECT * FROM examples ORDER BY layer, unit, stat, dir, rank",
                "SELECT idx, key, width, height, error FROM images ORDER BY idx",
                "SELECT * FROM spectrum ORDER BY layer, stat",
                "SELECT * FROM atlas_samples ORDER BY layer, image, slot"):
        assert _table(db, sql) == _table(ref, sql), sql
    for png in (out / "mining").rglob("*.png"):
        Image.open(png).load()


@pytest.mark.slow
def test_atlas_killed_twice_then_rerun_equals_an_uninterrupted_run(digits_onnx, kill_run, tmp_path):
    """`atlas` SIGKILLed as soon as it has written its first file, twice: atlas.json (the record the
    site reads) is never there beside pictures of an unfinished write; the rerun's files are the
    uninterrupted run's."""
    from click.testing import CliRunner

    from onnxviz.cli import main

    def argv(out):
        return ["atlas", str(digits_onnx), "--run", str(kill_run), "--layer", "relu_2", "--grid", "4", "--method",
                "pca", "--steps", "6", "--size", "16", "--batch-size", "4", "--threads", "1", "--no-progress",
                "--out", str(out)]

    res = CliRunner().invoke(main, argv(tmp_path / "ref"))
    assert res.exit_code == 0, res.output
    out, kills = tmp_path / "killed", 0
    for _ in range(2):
        before = _files(out)
        kills += _kill_when([sys.executable, "-m", "onnxviz"] + argv(out), _written_since(out, before, 1))
        now = _files(out)
        if "atlas.json" in now:  # a record only beside the pictures and page of the same, finished write
            assert all(now.get(f) != before.get(f) for f in ("atlas.png", "atlas.html", "atlas.json")), now
            json.loads((out / "atlas.json").read_text())
    assert kills, "atlas finished before either kill"
    res = CliRunner().invoke(main, argv(out))
    assert res.exit_code == 0, res.output
    _assert_same_tree(tmp_path / "ref", out)
    assert not [p for p in out.iterdir() if _temp(p)]  # the killed writes' leftovers are cleared


@pytest.mark.slow
def test_site_killed_twice_then_rebuilt_equals_an_uninterrupted_build(digits_onnx, kill_run, tmp_path):
    """`site` SIGKILLed after 3, then 25 files written: no index.html is ever there over a half-built
    site; the rebuild is the uninterrupted build, file for file."""
    from click.testing import CliRunner

    from onnxviz.cli import main

    def argv(out):
        return ["site", str(digits_onnx), "--run", str(kill_run), "--out", str(out), "--examples", "4"]

    res = CliRunner().invoke(main, argv(tmp_path / "ref"))
    assert res.exit_code == 0, res.output
    out, kills = tmp_path / "killed", 0
    for n in (3, 25):
        killed = _kill_when([sys.executable, "-m", "onnxviz"] + argv(out), _written_since(out, _files(out), n))
        kills += killed
        if killed:
            assert not (out / "index.html").exists()  # a killed build is never a finished-looking site
    assert kills == 2, f"site finished before a kill ({kills} of 2)"
    res = CliRunner().invoke(main, argv(out))
    assert res.exit_code == 0, res.output
    _assert_same_tree(tmp_path / "ref", out)
    assert not [p for p in out.rglob("*") if _temp(p)]


def test_thumbnails_a_kill_left_unwritten_are_written_by_the_resume(digits_onnx, kill_run, tmp_path):
    """The kill storm found it: a run killed while writing its thumbnails (after it was marked complete)
    was resumed as complete, thumbnails missing for good. Mining it again now writes them."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(kill_run, run)
    thumbs = sorted((run / "mining" / "images").glob("*.png"))
    assert len(thumbs) > 4
    for p in thumbs[::2]:
        p.unlink()
    summary = mine(str(digits_onnx), str(kill_run.parent / "photos"), str(run), top=4, bottom=4, batch_size=16,
                   progress=False, spectrum=8, atlas_layers="relu_2", atlas_per_image=4, workers=1, decoder="threads")
    assert summary.complete and summary.processed_now == 0
    assert sorted((run / "mining" / "images").glob("*.png")) == thumbs
