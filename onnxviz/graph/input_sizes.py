"""Input sizes a model accepts, found by asking onnxruntime (evidence, not a constant 224).

A file with a dynamic height/width says nothing about which sizes work: a text recognizer may need
exactly 32 or 48 rows, a detector with skip connections multiples of 32. ``probe`` runs the graph
once per candidate on a zero image and returns an :class:`InputRule`: the default size (the first
candidate that runs), and per dimension either a stride (sizes that are multiples of it run: the
smallest stride of which three consecutive multiples run) or ``None`` when the dimension only works
at the default (treated as fixed).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

import numpy as np

log = logging.getLogger("onnxviz")

STRIDES = (1, 2, 4, 8, 16, 32, 64)
SQUARE = (224, 320, 416, 640)
TEXT_LINE = ((48, 320), (32, 320), (64, 256))
DEEPEST = 128  # the largest downsampling whose odd sizes the stride checks look for


def steps_to_try(base: int, s: int) -> list:
    """Sizes above ``base`` (a multiple of every stride) that must all run for ``s`` to be a stride.

    ``base + s*(2^j - 1)`` for each level j up to DEEPEST: at each, some downsampling level of the net
    sees an odd size. Consecutive multiples do not show it: 257, 258 and 259 px all halve to the same
    8 px at stride 32, and a skip connection that fails at 27 vs 26 (437 px) then looks like stride 1.
    """
    out, j = [], 1
    while True:
        out.append(base + s * (2 ** j - 1))
        if s * 2 ** j >= DEEPEST:
            return out
        j += 1


@dataclass
class InputRule:
    """``size``: default (H, W); ``stride``: (sh, sw), None for a dimension fixed at ``size``."""

    size: tuple
    stride: tuple
    evidence: str = ""

    def fit(self, size) -> tuple:
        """The accepted (H, W) nearest to ``size``."""
        out = []
        for want, default, s in zip(size, self.size, self.stride):
            out.append(int(default) if s is None else max(s, int(round(want / s)) * s))
        return tuple(out)

    def to_dict(self) -> dict:
        return {"size": list(self.size), "stride": list(self.stride), "evidence": self.evidence}


def fixed(h: int, w: int) -> InputRule:
    return InputRule((h, w), (None, None), "fixed input size in the graph")


def probe(runner_factory, channels: int, layout: str, known_h: Optional[int], known_w: Optional[int],
          hint: Optional[tuple] = None) -> InputRule:
    """``runner_factory()`` -> an onnxruntime Runner over the whole model (created once)."""
    try:
        runner = runner_factory()
    except Exception as exc:  # noqa: BLE001 - a model onnxruntime cannot open: keep the hint
        log.warning("could not probe input sizes: %s", str(exc).splitlines()[0])
        size = hint or (known_h or 224, known_w or 224)
        return InputRule(size, (1 if not known_h else None, 1 if not known_w else None), "not probed")

    def runs(h, w) -> bool:
        x = np.zeros((1, channels, h, w) if layout == "NCHW" else (1, h, w, channels), np.float32)
        try:
            runner.run(x)
            return True
        except Exception:  # noqa: BLE001 - this size does not run
            return False

    candidates = []
    if hint:
        candidates.append(tuple(hint))
    if known_h and not known_w:
        candidates += [(known_h, 320 if known_h <= 64 else known_h), (known_h, known_h)]
    elif known_w and not known_h:
        candidates += [(known_w, known_w), (32, known_w)]
    else:
        candidates += [(s, s) for s in SQUARE[:1]] + list(TEXT_LINE) + [(s, s) for s in SQUARE[1:]]
    size = next((c for c in dict.fromkeys(candidates) if runs(*c)), None)
    if size is None:
        size = candidates[0]
        return InputRule(size, (None if known_h else 1, None if known_w else 1),
                         f"no candidate size ran ({', '.join(f'{h}x{w}' for h, w in candidates)})")
    def multiples_run(axis: int, s: int) -> bool:
        """Every size of :func:`steps_to_try` above the default runs: one size that happens to run
        (skip connections whose sizes agree by chance, e.g. 228 but not 232) does not make a stride."""
        first = -(-size[axis] // s) * s
        for n in steps_to_try(first, s):
            bigger = list(size)
            bigger[axis] = n
            if not runs(*bigger):
                return False
        return True

    stride = []
    for axis, known in enumerate((known_h, known_w)):
        if known:
            stride.append(None)
            continue
        stride.append(next((s for s in STRIDES if multiples_run(axis, s)), None))
    return InputRule(size, tuple(stride), f"onnxruntime ran {size[0]}x{size[1]}; "
                     + ", ".join(f"{'HW'[i]}: {'fixed' if s is None else f'multiples of {s}'}"
                                 for i, s in enumerate(stride)))
