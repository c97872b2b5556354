"""Exit codes, load-time validation, atomic writes and the security promises (issue 22)."""
from __future__ import annotations

import http.client
import json
import os
import random
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import numpy_helper

import onnxviz
from onnxviz.cli import main
from onnxviz.errors import ModelLoadError
from onnxviz.fuzz import models as fm
from onnxviz.fuzz.inputs import encode, photos
from onnxviz.graph import validate

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def base_model(tmp_path):
    path = tmp_path / "model" / "cnn.onnx"
    path.parent.mkdir()
    onnx.save(fm.base_model(), path)
    return path


# ---------------------------------------------------------------------------------------------- exit codes
def test_exit_codes_usage_2_bad_input_3(tmp_path, base_model):
    res = CliRunner().invoke(main, ["inspect"])
    assert res.exit_code == 2 and "Missing argument" in res.output
    res = CliRunner().invoke(main, ["render", str(base_model), "--steps", "two"])
    assert res.exit_code == 2
    for command in (["render", str(base_model), "relu2:1"], ["atlas", str(base_model), "--run", str(tmp_path),
                                                             "--layer", "relu2"]):
        res = CliRunner().invoke(main, command + ["--threads", "-1"])  # fuzz case 303 of seed 2026: was exit 4
        assert res.exit_code == 2 and "--threads" in res.output, res.output
    res = CliRunner().invoke(main, ["inspect", str(base_model), "--mean", "a,b"])  # fuzz case 647: was exit 4
    assert res.exit_code == 2 and "--mean" in res.output and "comma-separated numbers" in res.output, res.output
    res = CliRunner().invoke(main, ["inspect", str(tmp_path / "missing.onnx")])
    assert res.exit_code == 3 and res.output.strip() == f"error: model file not found: {tmp_path / 'missing.onnx'}"
    res = CliRunner().invoke(main, ["render", str(base_model), "nope:1", "--steps", "2", "--out", str(tmp_path / "o")])
    assert res.exit_code == 3 and "no layer named 'nope'" in res.output


def test_internal_error_is_exit_4_says_so_and_debug_shows_the_traceback(base_model, monkeypatch):
    from onnxviz.cli import inspect as inspect_cli

    def broken(*args, **kwargs):
        raise TypeError("'int' object is not a mapping")

    monkeypatch.setattr(inspect_cli, "load_model", broken)
    res = CliRunner().invoke(main, ["inspect", str(base_model)], env={"ONNXVIZ_DEBUG": ""})
    assert res.exit_code == 4, res.output
    line = res.output.strip()
    assert "\n" not in line and "Traceback" not in line
    assert "internal error in `onnxviz inspect`" in line and "bug in onnxviz" in line and "ONNXVIZ_DEBUG=1" in line
    res = CliRunner().invoke(main, ["inspect", str(base_model)], env={"ONNXVIZ_DEBUG": "1"})
    assert res.exit_code == 4 and "Traceback (most recent call last)" in res.output and "broken" in res.output


def test_exit_code_of_a_real_process(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"<html>404</html>")
    proc = subprocess.run([sys.executable, "-m", "onnxviz", "inspect", str(bad)], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert proc.returncode == 3
    assert proc.stderr.strip().startswith(f"error: {bad} is not an ONNX model") and "\n" not in proc.stderr.strip()


# ---------------------------------------------------------------------------------------------- load validation
def test_unsorted_valid_graph_passes_the_structure_check():
    m = fm.base_model()
    fm.PROTO_MUTATORS["shuffle"](random.Random(3), m)
    assert [n.name for n in m.graph.node] != [n.name for n in fm.base_model().graph.node]
    validate.structure(m.graph, "shuffled.onnx")  # no error: order is not structure


def test_one_topological_order_sorts_and_finds_cycles():
    from onnxviz.graph import edits

    m = fm.base_model()
    names = [n.name for n in m.graph.node]
    fm.PROTO_MUTATORS["shuffle"](random.Random(3), m)
    assert edits.sort_nodes(m.graph) and [n.name for n in m.graph.node] == names  # the stable order is the original
    assert edits.topological_order(m.graph) == list(range(len(names))) and not edits.sort_nodes(m.graph)
    first = m.graph.node[0]
    first.input.append(m.graph.node[-1].output[0])  # a loop: every node is on or behind it
    assert validate._cycle(m.graph) == list(m.graph.node) and edits.topological_order(m.graph) == []
    with pytest.raises(ModelLoadError, match="cycle"):
        validate.structure(m.graph, "loop.onnx")


def test_unsorted_graph_onnx2torch_cannot_convert_names_the_node():
    from onnxviz.backends.fx import convert
    from onnxviz.errors import ConversionError

    m = fm.base_model()
    fm.PROTO_MUTATORS["shuffle"](random.Random(3), m)  # fuzz cases 417, 526 of seed 2026 (was a bare RuntimeError)
    with pytest.raises(ConversionError, match=r"node 'conv2' reads tensor 'relu1'.*topological order"):
        convert(m)


def test_conv_kernel_shape_that_contradicts_its_weight_is_refused_at_load(tmp_path):
    m = fm.base_model()
    next(a for a in m.graph.node[0].attribute if a.name == "kernel_shape").ints[:] = [100000, 100000]
    onnx.save(m, tmp_path / "m.onnx")  # fuzz case 373 of seed 2026: passed load, then ran out of memory in render
    with pytest.raises(ModelLoadError, match=r"node 'conv1' \(Conv\) declares kernel_shape \[100000, 100000\]"):
        onnxviz.load(tmp_path / "m.onnx")


def test_onnxruntime_rejection_is_reported_at_load_with_the_node(tmp_path):
    m = fm.base_model()
    m.graph.node[1].op_type = "FancyRelu"
    onnx.save(m, tmp_path / "m.onnx")
    with pytest.raises(ModelLoadError, match=r"onnxruntime cannot load it.*relu1.*FancyRelu"):
        onnxviz.load(tmp_path / "m.onnx")


@pytest.mark.parametrize("value, field", [('{"input_size": "abc"}', "input_size"), ("{", "not valid JSON"),
                                          ('{"std": [0, 0, 0]}', "std must not be zero"), ("[1]", "JSON list"),
                                          ('{"labels": 5}', "labels"), ('{"layout": "XYZ"}', "layout"),
                                          ('{"input_size": [1000000000, 1]}', "input_size")])
def test_broken_metadata_names_the_field(tmp_path, value, field):
    m = fm.base_model()
    fm._set_meta(m, value)
    onnx.save(m, tmp_path / "m.onnx")
    with pytest.raises(ModelLoadError, match=field) as err:
        onnxviz.load(tmp_path / "m.onnx")
    assert str(tmp_path / "m.onnx") in str(err.value) and "metadata_props entry 'onnxviz'" in str(err.value)


def test_external_data_outside_the_model_folder_is_refused(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    secret = tmp_path / "secret.bin"
    m = fm.base_model()
    w = next(t for t in m.graph.initializer if t.name == "fc.w")
    secret.write_bytes(numpy_helper.to_array(w).tobytes())
    for location in ["../secret.bin", str(secret), "/etc/hostname"]:
        bad = onnx.ModelProto()
        bad.CopyFrom(m)
        t = next(t for t in bad.graph.initializer if t.name == "fc.w")
        t.ClearField("raw_data")
        t.data_location = onnx.TensorProto.EXTERNAL
        e = t.external_data.add()
        e.key, e.value = "location", location
        onnx.save(bad, folder / "m.onnx")
        with pytest.raises(ModelLoadError, match="fc.w") as err:
            onnxviz.load(folder / "m.onnx")
        assert "outside the model's folder" in str(err.value) or "not a file name relative" in str(err.value)
    # beside the model it loads, and gives the same logits as the model with embedded weights
    onnx.save(m, tmp_path / "inline.onnx")
    onnx.save_model(m, folder / "ext.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
                    location="ext.bin", size_threshold=0)  # (moves m's weights out: saved inline first)
    x = np.random.default_rng(0).random((2, 3, 16, 16), dtype=np.float32)
    ext, inline = onnxviz.load(folder / "ext.onnx"), onnxviz.load(tmp_path / "inline.onnx")
    np.testing.assert_array_equal(ext.activations(x, "fc")["fc"], inline.activations(x, "fc")["fc"])


def test_declared_image_bomb_and_oversized_archive_member_are_refused(tmp_path, monkeypatch):
    from onnxviz.fuzz.inputs import bomb_png
    from onnxviz.mining import image_sources
    from onnxviz.mining.datasets import open_source
    from onnxviz.errors import ImageError
    from onnxviz.preprocessing.images import open_rgb

    with pytest.raises(ImageError, match="declares 100000x100000 pixels|decompression bomb"):
        open_rgb(bomb_png(100_000, 100_000))
    z = tmp_path / "photos.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big.png", b"\0" * 2_000_000)
        zf.writestr("ok.jpg", encode(photos(1)[0]))
    monkeypatch.setattr(image_sources, "MAX_IMAGE_BYTES", 1_000_000)  # 256 MiB in use: a smaller bound, same code
    src = open_source(z)
    with pytest.raises(ImageError, match="big.png holds .* MiB"):
        src.read(src.keys.index("big.png"))
    assert src.read(src.keys.index("ok.jpg"))[:2] == b"\xff\xd8"


# ---------------------------------------------------------------------------------------------- atomic writes
def test_atomic_write_never_leaves_a_partial_file(tmp_path, monkeypatch):
    from onnxviz import files
    from onnxviz.preprocessing.images import save_image

    target = tmp_path / "a" / "record.json"
    files.write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with files.atomic_path(target) as tmp:
            tmp.write_text('{"v": 2, "trunc')
            raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"v": 1} and sorted(p.name for p in target.parent.iterdir()) == [
        "record.json"]
    monkeypatch.setattr(files.os, "replace", lambda *a: (_ for _ in ()).throw(OSError(28, "No space left")))
    with pytest.raises(OSError):
        save_image(np.zeros((3, 8, 8), np.float32), tmp_path / "b" / "x.png")
    assert not any((tmp_path / "b").iterdir())  # neither x.png nor a temporary


# ---------------------------------------------------------------------------------------------- security
def _hostile_model(tmp_path) -> Path:
    m = fm.base_model()
    names = {"relu1": "../../../escape_relu", "relu2": "/tmp/abs_" + "x" * 300}
    for n in m.graph.node:
        n.input[:] = [names.get(x, x) for x in n.input]
        n.output[:] = [names.get(x, x) for x in n.output]
        n.name = names.get(n.name, n.name)
    path = tmp_path / "work" / "hostile.onnx"
    path.parent.mkdir()
    onnx.save(m, path)
    return path


def test_site_and_renders_never_write_outside_their_folder_whatever_the_names(tmp_path):
    model = _hostile_model(tmp_path)
    before = {p for p in tmp_path.parent.rglob("*")}
    run = tmp_path / "work" / "run"
    for layer in ("../../../escape_relu", "/tmp/abs_" + "x" * 300):
        res = CliRunner().invoke(main, ["render", str(model), "--layer", layer, "--units", "0-1", "--steps", "2",
                                        "--out", str(run / "render"), "--no-progress"])
        assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["site", str(model), "--run", str(run), "--out", str(tmp_path / "work" / "site")])
    assert res.exit_code == 0, res.output
    new = {p for p in tmp_path.parent.rglob("*")} - before
    outside = [p for p in new if not (p.is_relative_to(run) or p.is_relative_to(tmp_path / "work" / "site"))]
    assert outside == [], outside
    assert not list(Path("/tmp").glob("abs_x*")) and not list(tmp_path.parent.glob("escape_relu*"))


def test_archives_are_read_never_extracted(tmp_path, digits_onnx):
    from onnxviz.fuzz.inputs import archive

    rng = random.Random(0)
    good = [("good.jpg", encode(photos(1)[0]))]
    before = {p for p in tmp_path.parent.rglob("*")}
    for i, kind in enumerate(["zip_traversal", "tar_traversal", "tar_symlink", "zip_absolute"]):
        folder = tmp_path / kind
        folder.mkdir()
        while True:
            label, path = archive(rng, folder, good)
            if label == f"archive:{kind}":
                break
        res = CliRunner().invoke(main, ["mine", str(digits_onnx), str(path), "--out", str(tmp_path / f"run{i}"),
                                        "--no-progress", "--top", "1", "--bottom", "1", "--spectrum", "0"])
        assert res.exit_code == 0, res.output
    new = {p for p in tmp_path.parent.rglob("*")} - before
    assert not [p for p in new if not p.is_relative_to(tmp_path)]
    assert not [p for p in new if p.name in ("escape.jpg", "abs.jpg", "link.jpg", "hard.jpg")]


def test_serve_binds_loopback_and_serves_only_the_site_folder(tmp_path):
    from onnxviz.site.serve import make_server

    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("<html>site</html>")
    (tmp_path / "secret.txt").write_text("SECRET")
    (site / "link.txt").symlink_to(tmp_path / "secret.txt")
    (site / "dirlink").symlink_to(tmp_path)
    server = make_server(site, port=0, quiet=True)
    assert server.server_address[0] == "127.0.0.1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        def get(path):
            conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
            conn.putrequest("GET", path, skip_accept_encoding=True)
            conn.endheaders()
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            return resp.status, body

        assert get("/index.html") == (200, b"<html>site</html>")
        for path in ["/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt", "/link.txt", "/dirlink/secret.txt",
                     "//etc/passwd", "/../../../../etc/passwd", "/%2e%2e%2f%2e%2e%2fetc/passwd", "/", "/static/"]:
            status, body = get(path)
            assert b"SECRET" not in body and b"root:" not in body, path
            assert status in (200, 301, 404), (path, status)
            if path != "/":
                assert status != 200, path
    finally:
        server.shutdown()
        server.server_close()
    from onnxviz.cli.site import serve as serve_cli

    assert next(p for p in serve_cli.params if p.name == "host").default == "127.0.0.1"


def test_damaged_archive_and_missing_run_directory_are_named(tmp_path, base_model):
    from onnxviz.mining.datasets import DatasetError, open_source

    z = tmp_path / "photos.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("a.jpg", encode(photos(1)[0]))
    z.write_bytes(z.read_bytes()[: z.stat().st_size // 2])  # a truncated download
    with pytest.raises(DatasetError, match=r"photos.zip is named like an archive but is not a readable zip"):
        open_source(z)
    res = CliRunner().invoke(main, ["site", str(base_model), "--run", str(tmp_path / "nope"), "--out",
                                    str(tmp_path / "site")])
    assert res.exit_code == 3 and f"run directory not found: {tmp_path / 'nope'}" in res.output


def test_damaged_entry_of_a_mining_database_names_the_file(tmp_path):
    from onnxviz.errors import RunDirError
    from onnxviz.mining.store import Store

    db = tmp_path / "mining.sqlite"
    s = Store(db)
    s.put("config", {"source": "photos"})
    s.db.execute("UPDATE meta SET value = ? WHERE key = 'config'", ('{"source": "pho',))  # fuzz case 671
    s.db.commit()
    s.close()
    with pytest.raises(RunDirError, match=r"mining.sqlite: its 'config' entry is damaged"):
        Store(db, readonly=True).get("config")


def test_damaged_spectrum_atlas_and_state_blobs_of_a_mining_database_name_the_file(tmp_path, base_model):
    """Fuzz case 1412 (seed 2026): a flipped byte in a spectrum blob's header made `site` an internal
    error (numpy's `Cannot parse header`); every blob of the run is now read back as the run's damage."""
    import sqlite3

    from onnxviz.errors import RunDirError
    from onnxviz.mining import mine, open_results
    from onnxviz.mining.store import Store

    (tmp_path / "photos").mkdir()
    for i, img in enumerate(photos(6)):
        img.save(tmp_path / "photos" / f"{i}.jpg")
    run = tmp_path / "run"
    assert mine(str(base_model), str(tmp_path / "photos"), str(run), top=2, bottom=2, batch_size=3, progress=False,
                spectrum=4, atlas_layers="relu2", atlas_per_image=2, thumbs=False).complete
    db = run / "mining" / "mining.sqlite"
    con = sqlite3.connect(db)
    blob = con.execute("SELECT data FROM spectrum WHERE layer != '' LIMIT 1").fetchone()[0]
    con.execute("UPDATE spectrum SET data = ? WHERE data = ?", (blob.replace(b" ", b"\0", 1), blob))
    con.execute("UPDATE atlas_samples SET vec = ? WHERE image = 0 AND slot = 0", (b"\1\2\3",))
    con.execute("UPDATE state SET keys = ? WHERE rowid = (SELECT min(rowid) FROM state)", (b"\1\2\3",))
    con.commit()
    con.close()
    results = open_results(run)
    with pytest.raises(RunDirError, match=r"mining.sqlite: its spectrum sample \(table spectrum\) is damaged"):
        results.spectrum("relu2", 0)
    with pytest.raises(RunDirError, match=r"mining.sqlite: its atlas samples of 'relu2' .* is damaged"):
        results.atlas_samples("relu2")
    store = Store(db, readonly=True)
    with pytest.raises(RunDirError, match=r"mining.sqlite: its top-k state of layer .* is damaged"):
        store.load_state({r["name"]: r["units"] for r in store.layers()})
    res = CliRunner().invoke(main, ["site", str(base_model), "--run", str(run), "--out", str(tmp_path / "site")])
    assert res.exit_code == 3 and "mining.sqlite: its spectrum sample" in res.output, res.output
