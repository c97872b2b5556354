"""Run fuzz cases in worker subprocesses with a per-case timeout; summarize as JSON and markdown.

Workers (worker.py) run a chunk of cases each, in-process, so imports are paid once per chunk; a
worker that overruns a case is killed (the case is a hang) and one that dies mid-case is a crash;
either way the next worker goes on after that case.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from .outcome import FINDINGS, OUTCOMES, classify, error_line


def _read(path: Path) -> list:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run(seed: int, count: int, work: Path, start: int = 0, per_worker: int = 40, keep: bool = False,
        echo=None) -> list:
    """Run cases ``start .. start+count`` of the seed-``seed`` fuzz; a list of result dicts with ``outcome``."""
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    results = work / f"results-{seed}-{start}-{start + count}.jsonl"
    results.unlink(missing_ok=True)
    done: dict = {}
    next_index, stop = start, start + count
    while next_index < stop:
        chunk_stop = min(stop, next_index + per_worker)
        before = len(_read(results))
        proc = subprocess.Popen([sys.executable, "-m", "onnxviz.fuzz.worker", str(work), str(seed), str(next_index),
                                 str(chunk_stop), str(results)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True, env={**os.environ, "PYTHONFAULTHANDLER": "1"})
        current, deadline, hung = None, time.monotonic() + 600, False  # the first deadline covers the base assets
        while proc.poll() is None:
            time.sleep(0.05)
            lines = _read(results)[before:]
            for rec in lines:
                if "start" in rec:
                    current, starts = rec, rec
                    deadline = time.monotonic() + rec["timeout"] if rec["start"] not in done else deadline
                elif rec["index"] not in done:
                    done[rec["index"]] = {**starts, **rec}
                    if echo:
                        echo(_finish(done[rec["index"]]))
            before += len(lines)
            if time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                hung = True
        lines = _read(results)[before:]
        for rec in lines:
            if "start" in rec:
                current = starts = rec
            elif rec["index"] not in done:
                done[rec["index"]] = {**starts, **rec}
                if echo:
                    echo(_finish(done[rec["index"]]))
        stderr = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
        if current is not None and current["start"] not in done:
            i = current["start"]
            done[i] = {**current, "index": i, "code": None, "signal": -proc.returncode if proc.returncode < 0 else 0,
                       "timed_out": hung, "output": stderr[-4000:]}
            if echo:
                echo(_finish(done[i]))
            next_index = i + 1
        elif proc.returncode != 0 and current is None:
            raise RuntimeError(f"fuzz worker failed before its first case:\n{stderr[-3000:]}")
        else:
            next_index = chunk_stop
    out = [_finish(done[i]) for i in sorted(done)]
    if not keep:
        for rec in out:
            if rec["outcome"] not in FINDINGS:
                shutil.rmtree(work / "cases" / f"{rec['index']:06d}", ignore_errors=True)
    return out


def _finish(rec: dict) -> dict:
    if "outcome" not in rec:
        rec["outcome"] = classify(rec.get("code"), rec.get("output", ""), rec.get("signal", 0),
                                  rec.get("timed_out", False))
    return rec


def summary(results: list) -> dict:
    """Counts by outcome, by family and by command, and the findings with their lines."""
    by_family: dict = {}
    by_command: dict = {}
    for r in results:
        by_family.setdefault(r["family"], Counter())[r["outcome"]] += 1
        by_command.setdefault(r["argv"][0], Counter())[r["outcome"]] += 1

    return {"cases": len(results), "outcomes": {o: sum(r["outcome"] == o for r in results) for o in OUTCOMES},
            "by_family": {k: dict(v) for k, v in sorted(by_family.items())},
            "by_command": {k: dict(v) for k, v in sorted(by_command.items())},
            "exit_codes": dict(Counter(str(r.get("code")) for r in results)),
            "findings": [{"index": r["index"], "family": r["family"], "outcome": r["outcome"], "label": r["label"],
                          "argv": r["argv"], "line": error_line(r.get("output", ""))[:500]}
                         for r in results if r["outcome"] in FINDINGS]}


def markdown(s: dict, command: str) -> str:
    """The summary as a markdown section: the command, the outcome table by family and by command."""
    cols = list(OUTCOMES)
    lines = [f"Command: `{command}`", "", f"{s['cases']} cases.", "",
             "| family | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for fam, counts in s["by_family"].items():
        lines.append(f"| {fam} | " + " | ".join(str(counts.get(c, 0)) for c in cols) + " |")
    lines.append("| **all** | " + " | ".join(f"**{s['outcomes'][c]}**" for c in cols) + " |")
    lines += ["", "| command | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for cmd, counts in s["by_command"].items():
        lines.append(f"| {cmd} | " + " | ".join(str(counts.get(c, 0)) for c in cols) + " |")
    lines += ["", "Exit codes: " + ", ".join(f"{k}: {v}" for k, v in sorted(s["exit_codes"].items()))]
    if s["findings"]:
        lines += ["", "Findings:", ""] + [f"- case {f['index']} ({f['outcome']}, {f['label']}): "
                                          f"`{f['line'].replace('`', chr(39))}`" for f in s["findings"][:50]]
    return "\n".join(lines) + "\n"
