"""Kill storms: a command SIGKILLed at seeded random moments, many times, then let finish; its outputs
compared with one uninterrupted run's. ``scripts/kill_storm.py`` is the command line.

A moment is a point of progress (images mined, render records written, site files written) drawn
at random over the whole job, plus a random delay of up to one step's time after it, so kills land
between checkpoints, in the middle of a write or while the model loads; for `atlas`, which writes
only at the end, it is a random time within one run's duration. After every kill the output folder
is checked: every finished-looking PNG decodes and every JSON parses (a partial file taken for a
finished one would fail here), and a finished mark (the site's index.html, the atlas's atlas.json)
is never there without every file of the output. Then the next attempt resumes (or redoes) the
work; the last one is let finish and its files are compared, byte for byte, with the reference's
(JSON, HTML and JS with the run's own command line and timings set aside; SQLite by its tables).
"""
from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from PIL import Image

TABLES = {"examples": "layer, unit, stat, dir, rank", "images": "idx", "spectrum": "layer, stat",
          "atlas_samples": "layer, image, slot"}
_VOLATILE = re.compile(r'"(command|seconds|ms_per_step)": (\{[^{}]*\}|"(?:[^"\\]|\\.)*"|[0-9.e+-]+)')


def is_temp(p: Path) -> bool:
    """A temporary file of an atomic write (onnxviz.files): never a result."""
    return p.name.startswith(".") and p.name.endswith(".tmp")


def files(root: Path) -> dict:
    """{relative path: inode} of the finished-looking files under ``root``."""
    out = {}
    for p in list(Path(root).rglob("*")) if Path(root).is_dir() else []:
        try:
            if p.is_file() and not is_temp(p) and not p.name.endswith((".sqlite-wal", ".sqlite-shm")):
                out[p.relative_to(root).as_posix()] = p.stat().st_ino
        except OSError:  # renamed or removed while listed
            pass
    return out


def mined(db: Path) -> int:
    """Images a mining run has checkpointed (0 while its database is missing or locked)."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.5)
        try:
            row = con.execute("SELECT value FROM meta WHERE key='done'").fetchone()
        finally:
            con.close()
        return int(row[0]) if row else 0
    except (sqlite3.Error, ValueError):
        return 0


def table(db: Path, name: str) -> list:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute(f"SELECT * FROM {name} ORDER BY {TABLES[name]}").fetchall()
    except sqlite3.OperationalError:  # a run without that table
        return []
    finally:
        con.close()


def differences(ref: Path, got: Path) -> list:
    """What differs between two output folders (empty: identical), SQLite files by their tables."""
    a, b = files(ref), files(got)
    diff = [f"only in the reference: {p}" for p in sorted(set(a) - set(b))]
    diff += [f"only after the storm: {p}" for p in sorted(set(b) - set(a))]
    for rel in sorted(set(a) & set(b)):
        x, y = Path(ref, rel), Path(got, rel)
        if rel.endswith(".sqlite"):
            diff += [f"{rel}: table {t}" for t in TABLES if table(x, t) != table(y, t)]
        elif rel.endswith((".json", ".html", ".js")):
            if _VOLATILE.sub(r'"\1": null', x.read_text()) != _VOLATILE.sub(r'"\1": null', y.read_text()):
                diff.append(rel)
        elif x.read_bytes() != y.read_bytes():
            diff.append(rel)
    return diff


def unfinished_looking_finished(root: Path) -> list:
    """Files that look finished but are partial: PNGs that do not decode, JSON that does not parse."""
    bad = []
    for rel in files(root):
        p = Path(root, rel)
        try:
            if rel.endswith(".png"):
                with Image.open(p) as im:
                    im.load()
            elif rel.endswith(".json"):
                json.loads(p.read_text())
        except FileNotFoundError:
            pass
        except Exception as exc:  # noqa: BLE001 - any failure to read back is the finding
            bad.append(f"{rel}: {type(exc).__name__}")
    return bad


@dataclass
class Job:
    """One command to storm: ``argv`` writes into ``out``; ``progress(out, before)`` measures how far
    an attempt got (``before``: the files at its start); ``total``: progress of a whole run (None:
    time-based moments); ``cumulative``: progress carries over a kill (a resume) or restarts;
    ``marker``: the file that says the output is finished (all the reference's files must be there with it)."""

    name: str
    argv: list
    out: Path
    ref: Path
    progress: Callable
    total: Optional[float]
    cumulative: bool = True
    marker: str = ""
    env: dict = field(default_factory=dict)


def _spawn(job: Job) -> subprocess.Popen:
    return subprocess.Popen(job.argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, **job.env})


def storm(job: Job, kills: int, rng: random.Random, seconds: float, timeout: float = 600) -> dict:
    """Kill ``job`` ``kills`` times at random moments (``seconds``: one uninterrupted run's duration,
    for time-based moments), then let it finish; the record of what happened and whether it is identical."""
    if job.cumulative and job.total:
        marks = sorted(rng.uniform(0, job.total) for _ in range(kills))
    else:
        marks = [rng.uniform(0, job.total if job.total else seconds) for _ in range(kills)]
    step = seconds / job.total if job.total else 0.05  # one step of progress, in an uninterrupted run
    moments, problems, t0 = [], [], time.monotonic()
    for mark in marks:
        delay = rng.uniform(0, step)
        before, start = files(job.out), time.monotonic()
        proc = _spawn(job)
        deadline = start + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            got = job.progress(job.out, before) if job.total else time.monotonic() - start
            if got >= mark:
                break
            time.sleep(0.002)
        time.sleep(delay)
        if proc.poll() is not None:
            if proc.returncode != 0:
                problems.append(f"attempt {len(moments) + 1} failed: {proc.stderr.read().decode()[-500:]}")
            break  # finished before the kill: no work left to interrupt
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        moments.append({"mark": round(mark, 3), "progress": round(job.progress(job.out, before), 3)
                        if job.total else round(time.monotonic() - start, 3), "delay": round(delay, 3)})
        problems += [f"after kill {len(moments)}: {b}" for b in unfinished_looking_finished(job.out)]
        if job.marker and (job.out / job.marker).exists():  # the finished mark: all the files must be there
            problems += [f"after kill {len(moments)}: {job.marker} is there without {p}"
                         for p in sorted(set(files(job.ref)) - set(files(job.out)))[:3]]
    proc = _spawn(job)  # the resume: let it finish
    proc.wait(timeout)
    if proc.returncode != 0:
        problems.append(f"the resumed run failed: {proc.stderr.read().decode()[-500:]}")
    diff = differences(job.ref, job.out)
    return {"job": job.name, "command": " ".join(str(a) for a in job.argv), "kills": len(moments),
            "asked": kills, "moments": moments, "identical": not diff and not problems, "differences": diff[:20],
            "problems": problems[:20], "seconds": round(time.monotonic() - t0, 1)}
