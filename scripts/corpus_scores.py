"""Scores of a corpus manifest: inferred preprocessing against the truth, and whether inspect and mine work.

Used by ``scripts/corpus.py preprocess`` and ``scripts/corpus.py usable`` (see there). The verdict on
preprocessing is onnxviz.preprocessing.agreement's; this file runs the files, keeps one row per file
in docs/corpus/<kind>_<tune|eval>.json (rows of a run replace the same names, so a few names per run
keep each command short) and writes the markdown beside it.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import corpus


def _selected(names) -> list[dict]:
    known = {e["name"] for e in corpus.manifest()}
    unknown = [n for n in names or [] if n not in known]
    if unknown:
        raise SystemExit(f"not in {corpus.MANIFEST.name}: {', '.join(unknown)}")
    return [e for e in corpus.manifest() if not names or e["name"] in names]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _relative(p: Path) -> Path:
    return p.relative_to(corpus.ROOT) if p.is_relative_to(corpus.ROOT) else p


def results_stem(kind: str) -> Path:
    """docs/corpus/<kind>_tune.* for tests/corpus.json, docs/corpus/<kind>_eval.* for tests/eval_corpus.json."""
    tag = corpus.MANIFEST.stem.replace("corpus", "").strip("_") or "tune"
    return corpus.ROOT / "docs" / "corpus" / f"{kind}_{tag}"


def _merge(stem: Path, rows: list[dict], command: str, totals) -> dict:
    """Rows of this run replace the same names in stem.json; rows of files no longer listed are dropped."""
    old = json.loads(stem.with_suffix(".json").read_text())["rows"] if stem.with_suffix(".json").exists() else []
    new = {r["name"]: r for r in old}
    new.update({r["name"]: r for r in rows})
    order = [e["name"] for e in corpus.manifest()]
    merged = [new[n] for n in order if n in new]
    from onnxviz.preprocessing.images import imagenet_photos
    git = ["git", "-C", str(corpus.ROOT), "rev-parse", "--short", "HEAD"]
    head = subprocess.run(git, capture_output=True, text=True)
    doc = {"manifest": str(_relative(corpus.MANIFEST)), "command": command, "commit": head.stdout.strip(),
           # the inference's evidence is always the bundled photos; only `usable` mines foolbox's
           "photos": ("the photos bundled with onnxviz (onnxviz/data/photos)" if " preprocess" in command else
                      "foolbox's labelled ImageNet photos" if imagenet_photos() else "the one bundled photo"),
           "rows": merged, "totals": totals(merged) if totals else None}
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(doc, indent=1))
    return doc


def preprocess_rows(names: list[str] | None = None, header: bool = True) -> list[dict]:
    """Each file loaded as a user loads it (preprocessing inferred), scored against the manifest's truth."""
    import onnxviz
    from onnxviz.preprocessing import agreement as A

    rows = []
    if header:
        print("| file | truth (package code) | inferred | confidence | scale+offset | order | both |\n"
              "|---|---|---|---|---|---|---|")
    for e in _selected(names):
        truth = A.truth_of(e)
        row = {"name": e["name"], "package": e.get("package", e.get("derived_from")), "truth": A.describe(truth),
               "truth_source": e["preprocessing"].get("source", "")}
        t0 = time.time()
        try:
            m = onnxviz.load(corpus.fetch_one(e["name"]))
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


#: the one line backends/ort.usable_providers logs when a preferred provider (CUDA, TensorRT...) is dropped
_PROVIDER_NOTICE = re.compile(r"onnxruntime: .+ (not usable|cannot load) here; running on ")


def _exit_reason(r: subprocess.CompletedProcess) -> str:
    """Why a CLI run failed, in one line: the signal that killed it (SIGKILL is most often the kernel's
    out-of-memory killer), else the last line of its stderr that is not the provider-fallback notice."""
    if r.returncode < 0:
        return f"killed by signal {-r.returncode}" + (" (out of memory?)" if r.returncode == -9 else "")
    lines = [ln for ln in r.stderr.strip().splitlines() if not _PROVIDER_NOTICE.match(ln)]
    return (lines or ["exit %d" % r.returncode])[-1][:300]


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
            row["inspect_error"] = _exit_reason(r)
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
                row["mine_error"] = _exit_reason(r)
        except subprocess.TimeoutExpired:
            row.update(mine=False, mine_error=f"did not finish in {timeout} s")
    row["mine_seconds"] = round(time.time() - t0, 1)
    return row


def usable_rows(names: list[str] | None = None, n_photos: int = 20, timeout: int = 300,
                header: bool = True) -> list[dict]:
    """inspect lists layers / mine of two layers over ``n_photos`` real photos completes, per file."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp)
        try:
            found = sorted(corpus.foolbox_data().glob("imagenet_*.jpg"))[:n_photos]
        except SystemExit:
            found = [corpus.ROOT / "onnxviz" / "data" / "chelsea.jpg"]
        for p in found:
            (photos / p.name).symlink_to(p)
        if header:
            print(f"| file | inspect (layers) | mine {len(found)} photos, 2 layers | seconds |\n|---|---|---|---|")
        for e in _selected(names):
            row = {"name": e["name"], "package": e.get("package"), "photos": len(found),
                   **_usable_one(corpus.fetch_one(e["name"]), photos, timeout)}
            rows.append(row)
            print(f"| {e['name']} | {'yes' if row['inspect'] else 'no: ' + row.get('inspect_error', '')} ({row['layers']}) "
                  f"| {'yes' if row['mine'] else 'no: ' + row.get('mine_error', '')} | {row.get('mine_seconds', '')} |",
                  flush=True)
    return rows


def usable_totals(rows: list[dict]) -> dict:
    return {k: {"right": sum(bool(r.get(k)) for r in rows), "of": len(rows)} for k in ("inspect", "mine")}


def markdown(doc: dict, kind: str) -> str:
    lines = [f"# {kind}: {doc['manifest']}", "", f"Command: `{doc['command']}` at commit {doc.get('commit')}; "
             f"evidence photos: {doc.get('photos')}.", "", "Right means onnxviz/preprocessing/agreement.py's rule: the "
             "pixel->input map within 20% on every channel; channel order counted on 3-channel files whose order "
             "matters. The truth of each file and the line of its package's code: the manifest.", ""]
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
    # the command for the whole manifest (the rows may come from runs over a few names each)
    command = f"python scripts/corpus.py {kind} --manifest {_relative(corpus.MANIFEST)}"
    stem = Path(out) if out else results_stem(kind)
    doc = _merge(stem, rows, command, totals)
    stem.with_suffix(".md").write_text(markdown(doc, kind))
    t = doc["totals"]
    if quiet:
        return
    print("\nover every row in " + str(stem.with_suffix(".json")) + ": "
          + ", ".join(f"{k} {v['right']}/{v['of']}" for k, v in t.items()))


def run(kind: str, names: list[str], out=None, photos: int = 20, timeout: int = 300) -> None:
    """``preprocess`` or ``usable`` over NAMES (default: the whole manifest), one file at a time, each row kept
    in the JSON as soon as it is measured; then the totals over every row there."""
    from onnxviz.preprocessing.agreement import totals as agreement_totals

    totals = agreement_totals if kind == "preprocess" else usable_totals
    for i, e in enumerate(_selected(names)):
        rows = preprocess_rows([e["name"]], header=i == 0) if kind == "preprocess" else \
            usable_rows([e["name"]], photos, timeout, header=i == 0)
        _report(kind, rows, totals, out, quiet=True)
    _report(kind, [], totals, out)
