"""How a fuzz case ended: ok, clear error, generic exception line, internal error, traceback, crash or hang.

A *generic* line is one whose cause is a bare Python exception (``inspect failed: TypeError: 'int'
object is not a mapping``): the user learns which exception fired, not which file, field, node or
image is wrong nor what to do. An *internal* error is exit code 4 (onnxviz's own bug, said so).
Every outcome but ok and clear is a finding.
"""
from __future__ import annotations

import re

OUTCOMES = ("ok", "clear", "generic", "internal", "traceback", "crash", "hang", "harness")
FINDINGS = ("generic", "internal", "traceback", "crash", "hang", "harness")  # harness: a case it could not build

# `SomethingError: ...`, `SomeException: ...`, or a ` failed: Name: ` prefix (onnxruntime's Fail, InvalidGraph, ...)
_GENERIC = re.compile(r"\b(?:[A-Z]\w*(?:Error|Exception|Warning)|KeyError|StopIteration)\b:|\bfailed: [A-Z]\w*: ")
TRACEBACK = "Traceback (most recent call last)"


def error_line(output: str) -> str:
    """The line that reports the failure (the last ``error:``/``Error:`` line, else the last line)."""
    lines = [line for line in output.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.lower().startswith("error:"):
            return line
    return lines[-1] if lines else ""


def classify(code, output: str, signal: int = 0, timed_out: bool = False) -> str:
    """One of OUTCOMES for a command that exited with ``code`` (None when killed) and printed ``output``."""
    if timed_out:
        return "hang"
    if signal or code is None or (isinstance(code, int) and code < 0):
        return "crash"
    if TRACEBACK in output:
        return "traceback"
    if code == 4:
        return "internal"
    if code in (0, 1):  # 1: `check` found a suspect render (a verdict, not an error)
        return "ok"
    return "generic" if _GENERIC.search(error_line(output)) else "clear"
