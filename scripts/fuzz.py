"""Fuzz onnxviz: mutated ONNX files, images, archives and run directories through every command.

    python scripts/fuzz.py --seed 0 --cases 2000 --work /tmp/onnxviz-fuzz --summary docs/fuzz.json --md docs/fuzz.md
    python scripts/fuzz.py --seed 0 --start 100 --cases 100 --json /tmp/chunk_100.json   # one chunk of a long run
    python scripts/fuzz.py --merge /tmp/chunk_*.json --summary docs/fuzz.json --md docs/fuzz.md
    python scripts/fuzz.py --seed 0 --start 417 --cases 1 --keep        # rerun one case, keep its inputs

Every case is rebuilt from (seed, index) alone. Exit code 1 when any case is a finding (a generic
exception line, an internal error, a traceback, a crash or a hang). The library is onnxviz.fuzz.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from onnxviz.fuzz import runner


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cases", type=int, default=100)
    ap.add_argument("--start", type=int, default=0, help="First case index (to run a long fuzz in chunks).")
    ap.add_argument("--work", type=Path, default=Path("/tmp/onnxviz-fuzz"))
    ap.add_argument("--per-worker", type=int, default=40, help="Cases per worker process.")
    ap.add_argument("--keep", action="store_true", help="Keep every case's inputs (default: only findings').")
    ap.add_argument("--json", type=Path, default=None, help="Write the results (and the summary) here.")
    ap.add_argument("--summary", type=Path, default=None, help="Write the summary alone (no per-case output) here.")
    ap.add_argument("--md", type=Path, default=None, help="Write the summary as markdown here.")
    ap.add_argument("--merge", type=Path, nargs="*", default=None,
                    help="Summarize earlier --json results files (chunks) instead of running.")
    ap.add_argument("-v", "--verbose", action="store_true", help="One line per case.")
    args = ap.parse_args()
    if args.merge:
        results = [r for p in args.merge for r in json.loads(p.read_text())["results"]]
    else:
        def echo(r):
            if args.verbose or r["outcome"] in runner.FINDINGS:
                print(f"{r['index']:6d} {r['outcome']:9s} {r['family']:8s} {r['label'][:70]}  |  "
                      f"{runner.error_line(r.get('output', ''))[:160]}", flush=True)

        results = runner.run(args.seed, args.cases, args.work, start=args.start, per_worker=args.per_worker,
                             keep=args.keep, echo=echo)
    s = runner.summary(results)
    command = "python " + " ".join(shlex.quote(a) for a in ["scripts/fuzz.py"] + sys.argv[1:])
    print(json.dumps(s["outcomes"]))
    if args.json:
        args.json.write_text(json.dumps({"command": command, "summary": s, "results": results}, indent=1))
    if args.summary:
        args.summary.write_text(json.dumps({"command": command, "summary": s}, indent=1))
    if args.md:
        args.md.write_text(runner.markdown(s, command))
    return 1 if any(s["outcomes"][o] for o in runner.FINDINGS) else 0


if __name__ == "__main__":
    sys.exit(main())
