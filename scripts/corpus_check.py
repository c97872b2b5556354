"""The checks of ``onnxviz.file_check`` over the corpus of foreign ONNX files (tests/corpus.json).

Used by ``scripts/corpus.py report`` and by ``tests/test_wild.py``: ``check_file(name, photos)`` fetches
a corpus file and runs ``onnxviz.file_check.check`` on it, with the corpus entry's facts in the row;
``photo_folder`` holds the same real photos every run; ``report_cli`` writes the table.
What "rise" means and how a unit is picked: see ``onnxviz.file_check``.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
import traceback
from pathlib import Path

import corpus
from onnxviz.file_check import PARITY_TOLERANCE, RISE_TARGET, check, first_line, markdown, rise  # noqa: F401


def photo_folder(n: int = 6) -> Path:
    """A temp folder with ``n`` of foolbox's ImageNet photos (the same every run)."""
    d = Path(tempfile.mkdtemp(prefix="onnxviz-corpus-photos-"))
    for p in sorted(corpus.foolbox_data().glob("imagenet_*.jpg"))[:n]:
        shutil.copy(p, d / p.name)
    return d


def check_file(name: str, photos: Path, steps: int = 48, work: Path | None = None) -> dict:
    """Fetch corpus file ``name`` and run every check on it; never raises."""
    e = corpus.entry(name)
    row = {"file": name, "package": e.get("package") or f"derived from {e['derived_from']}",
           "producer": e["producer"], "traits": e["traits"]}
    t = time.perf_counter()
    try:
        path = corpus.fetch_one(name)
    except Exception as exc:  # noqa: BLE001 - the report records every failure
        return dict(row, inspect="FAIL " + first_line(exc), mine=None, parity=None, render=None, rise=[], units=[],
                    trace=traceback.format_exc(limit=-3), seconds={"inspect": round(time.perf_counter() - t, 2)})
    row.update(check(path, photos, steps=steps, work=work or Path(tempfile.mkdtemp(prefix=f"onnxviz-corpus-{name}-"))))
    return row


def report_cli(names: list, out: Path, steps: int = 48) -> int:
    import logging

    logging.getLogger("onnxviz").setLevel(logging.ERROR)
    out.mkdir(parents=True, exist_ok=True)
    photos = photo_folder()
    rows = []
    for e in corpus.manifest():
        if names and e["name"] not in names:
            continue
        t = time.perf_counter()
        row = check_file(e["name"], photos, steps=steps)
        row["seconds"]["total"] = round(time.perf_counter() - t, 1)
        rows.append(row)
        print(f"{row['file']:18s} {row['seconds']['total']:6.1f}s | {row['inspect']} | {row['mine']} | "
              f"{row['parity']} | {row['render']} | {row['rise']}", flush=True)
        (out / "rows").mkdir(exist_ok=True)
        (out / "rows" / f"{row['file']}.json").write_text(json.dumps(row, indent=1, default=str))
    # the table covers every file checked into this folder so far (a report can be built file by file)
    order = [e["name"] for e in corpus.manifest()]
    rows = [json.loads((out / "rows" / f"{n}.json").read_text()) for n in order
            if (out / "rows" / f"{n}.json").exists()]
    (out / "report.json").write_text(json.dumps(rows, indent=1, default=str))
    (out / "report.md").write_text(markdown(rows))
    print(markdown(rows))
    return 0
