"""Progress for long work: a live bar in a terminal, one plain line every few seconds elsewhere.

In CI logs and files a tqdm bar writes thousands of carriage-return updates on one line; there
``bar`` prints a normal line (``mining: 35%|... 1120/3200 [00:20<00:37, 55.9img/s]``) at most every
``LOG_INTERVAL`` seconds instead.
"""
from __future__ import annotations

import sys

from tqdm import tqdm

LOG_INTERVAL = 5.0  # seconds between progress lines when stderr is not a terminal


class _Lines:
    """A file for tqdm that turns its carriage-return updates into whole lines."""

    def __init__(self, stream):
        self.stream = stream
        self.last = ""

    def write(self, text: str) -> None:
        text = text.replace("\r", "").strip()
        if text and text != self.last:  # tqdm repeats its final state when it closes
            self.stream.write(text + "\n")
            self.last = text

    def flush(self) -> None:
        self.stream.flush()


def bar(total=None, desc: str = "", unit: str = "it", enabled: bool = True, iterable=None, **kwargs) -> tqdm:
    """A tqdm bar (usable as a context manager and an iterator); a no-op one when not ``enabled``."""
    if not enabled:
        return tqdm(iterable, total=total, disable=True)
    stream = sys.stderr
    if getattr(stream, "isatty", lambda: False)():
        kwargs.setdefault("dynamic_ncols", True)
        return tqdm(iterable, total=total, desc=desc, unit=unit, file=stream, **kwargs)
    kwargs.pop("leave", None)
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=_Lines(stream), mininterval=LOG_INTERVAL,
                maxinterval=LOG_INTERVAL, delay=LOG_INTERVAL, ncols=100, **kwargs)
