"""A fuzz worker process: builds cases and runs each command in-process (imports paid once).

    python -m onnxviz.fuzz.worker WORK SEED START STOP RESULTS

Before a case it appends {"start": i, "timeout": s, ...} to RESULTS and after it {"index": i, "code": ...,
"output": ...}; the parent (runner.py) reads the file, kills a worker that overruns a case (a hang)
and restarts one after a worker that died mid-case (a crash).
"""
from __future__ import annotations

import contextlib
import faulthandler
import io
import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path


def run_cli(argv: list) -> tuple:
    """(exit code, stdout + stderr) of `onnxviz ARGV` run in this process."""
    from ..cli import main

    buf = io.StringIO()
    code = 0
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            main.main(args=list(argv), prog_name="onnxviz", standalone_mode=True)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # noqa: BLE001 - what escapes the CLI is exactly what the harness looks for
            traceback.print_exc(file=buf)
            code = 1
    return code, buf.getvalue()


def main(argv=None) -> None:
    from .cases import base_assets, make_case

    work, seed, start, stop, results = argv or sys.argv[1:]
    work, seed, start, stop = Path(work), int(seed), int(start), int(stop)
    os.environ.pop("ONNXVIZ_DEBUG", None)
    faulthandler.enable(open(work / "faults.log", "a"))  # noqa: SIM115 - kept open for the process's life
    base = base_assets(work)
    with open(results, "a", encoding="utf-8") as log:
        for index in range(start, stop):
            folder = work / "cases" / f"{index:06d}"
            shutil.rmtree(folder, ignore_errors=True)
            try:
                case = make_case(seed, index, base, folder)
            except Exception:  # noqa: BLE001 - a bug of the harness itself: recorded as such, never skipped
                log.write(json.dumps({"start": index, "timeout": 60, "family": "harness", "label": "make_case failed",
                                      "argv": ["(none)"]}) + "\n")
                log.write(json.dumps({"index": index, "code": None, "outcome": "harness",
                                      "output": traceback.format_exc()[-4000:]}) + "\n")
                log.flush()
                continue
            log.write(json.dumps({"start": index, "timeout": case.timeout, "family": case.family, "label": case.label,
                                  "argv": case.argv}) + "\n")
            log.flush()
            t0 = time.perf_counter()
            code, output = run_cli(case.argv)
            log.write(json.dumps({"index": index, "code": code, "output": output[-4000:],
                                  "seconds": round(time.perf_counter() - t0, 3)}) + "\n")
            log.flush()


if __name__ == "__main__":
    main()
