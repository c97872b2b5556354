"""onnxruntime sessions: providers that really load, thread settings, batched runs.

onnxruntime-gpu lists CUDA (and TensorRT) as available even where the CUDA libraries cannot load,
and then silently runs on the CPU. ``usable_providers`` asks each provider to run a tiny model once
and keeps those that took; a fallback is logged once, in one warning line.
"""
from __future__ import annotations

import functools
import re
import logging
import os
from typing import Iterable, Optional, Sequence

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from ..errors import RuntimeModelError
from ..graph.edits import expose, prune
from ..graph.reductions import STATS, add_channel_reductions, fuse_outputs

log = logging.getLogger("onnxviz")

PREFERRED = ("CUDAExecutionProvider", "CPUExecutionProvider")


def probe_model() -> onnx.ModelProto:
    """One Relu: what a provider must run to count as usable. IR version 7, because the newest IR
    that the installed onnx writes may be newer than onnxruntime reads (onnx 1.23 vs onnxruntime
    1.31: every probe failed, and a working CUDA provider looked unusable)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    tiny = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe", [x], [y]),
                             opset_imports=[helper.make_opsetid("", 13)])
    tiny.ir_version = 7
    return tiny


@functools.lru_cache(maxsize=None)
def _provider_loads(provider: str) -> bool:
    if provider == "CPUExecutionProvider":
        return True
    if provider not in ort.get_available_providers():
        return False
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    ort.set_default_logger_severity(4)  # a provider that fails to load logs errors: the one line below says it
    try:
        sess = ort.InferenceSession(probe_model().SerializeToString(), opts,
                                    providers=[provider, "CPUExecutionProvider"])
    except Exception:  # noqa: BLE001 - any failure means "does not load"
        return False
    finally:
        ort.set_default_logger_severity(2)  # onnxruntime's default (warnings)
    return provider in sess.get_providers()


def usable_providers(requested: Optional[Sequence[str]] = None) -> list:
    """The providers to use: the requested (or preferred) ones that load, CPU always last."""
    wanted = list(requested) if requested else list(PREFERRED)
    if os.environ.get("ONNXVIZ_PROVIDERS") and not requested:
        wanted = os.environ["ONNXVIZ_PROVIDERS"].split(",")
    chosen = [p for p in wanted if p != "CPUExecutionProvider" and _provider_loads(p)]
    dropped = [p for p in wanted if p != "CPUExecutionProvider" and p not in chosen]
    if dropped:
        _say_once(f"onnxruntime: {', '.join(dropped)} {'cannot load' if requested else 'not usable'} here; "
                  f"running on {', '.join(chosen + ['CPUExecutionProvider'])}")
    return chosen + ["CPUExecutionProvider"]


@functools.lru_cache(maxsize=None)
def _say_once(message: str) -> None:
    """The provider fallback is one log line per process, not one per session."""
    log.warning(message)


def session_options(threads: Optional[int] = None, quiet: bool = False, spin: bool = True) -> ort.SessionOptions:
    """``spin`` False: onnxruntime's threads sleep between parallel sections instead of spinning,
    so other threads of the process (mining's decoders) get the cores in those gaps."""
    opts = ort.SessionOptions()
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 4 if quiet else 3
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    return opts


def _first_line(exc: BaseException) -> str:
    """onnxruntime's message without its C++ source locations: the node, op and shapes."""
    text = str(exc).replace("\n", " ")
    text = re.sub(r"/onnxruntime_src/\S+ ", "", text)
    text = re.sub(r"\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    return text[:400]


MAX_PIXELS = 16 * 640 * 640  # input pixels per onnxruntime run (16 Ultralytics-size images ran fine)


class Runner:
    """An onnxruntime session over one (possibly edited) model, run in batches."""

    def __init__(self, proto: onnx.ModelProto, providers: Optional[Sequence[str]] = None,
                 threads: Optional[int] = None, input_name: Optional[str] = None, extras: Optional[dict] = None,
                 quiet: bool = False, spin: bool = True):
        """``extras``: {input name: array with batch 1} for the model's other inputs (repeated to the
        batch size); inputs the session does not have are ignored."""
        self.providers_requested = usable_providers(providers)
        proto = prune(proto)  # onnxruntime would run the nodes no output needs
        try:
            self.session = ort.InferenceSession(proto.SerializeToString(), session_options(threads, quiet, spin),
                                                providers=self.providers_requested)
        except Exception as exc:  # noqa: BLE001 - onnxruntime's own message names the node
            raise RuntimeModelError(f"onnxruntime cannot load the model: {_first_line(exc)}") from exc
        self.providers = self.session.get_providers()
        inputs = {i.name: i for i in self.session.get_inputs()}
        self.input_name = input_name or next(iter(inputs))
        kind = inputs[self.input_name].type if self.input_name in inputs else ""
        self.input_dtype = {"tensor(float16)": np.float16, "tensor(uint8)": np.uint8}.get(kind, np.float32)
        self.extras = {k: v for k, v in (extras or {}).items() if k in inputs and k != self.input_name}
        # another input whose batch is fixed at 1 (a siamese net's second image): run one image at a time
        # (``run`` also turns this on when a batch fails and one image runs)
        self.one_at_a_time = any(inputs[k].shape and inputs[k].shape[0] == 1 for k in self.extras)
        self.output_names = [o.name for o in self.session.get_outputs()]
        # a failing run raises with onnxruntime's message, which the caller turns into one line: its own
        # red log line of the same failure (and of the batch tried before one image at a time) is noise
        self.run_options = ort.RunOptions()
        self.run_options.log_severity_level = 4

    def run(self, x: np.ndarray, outputs: Optional[Iterable[str]] = None, feeds: Optional[dict] = None) -> dict:
        """One batch: output name -> array (float16 results as float32). ``feeds``: other inputs, as they
        are. A batch of more than ``MAX_PIXELS`` input pixels runs in slices under it (16 photos at
        1600x1600 would need over 20 GB inside onnxruntime); outputs that are not batch-first (an RNN
        head's (T, N, C), the in-graph top-k's (units, k)) run it whole."""
        names = list(outputs) if outputs is not None else self.output_names
        try:
            return self._run_sliced(x, names, feeds)
        except RuntimeModelError as exc:
            if len(x) < 2 or self.one_at_a_time:
                raise
            try:  # a graph whose reshapes were traced at batch 1 takes one image, whatever its input declares
                self._run(x[:1], names, feeds)
            except RuntimeModelError:
                raise exc from None
            self.one_at_a_time = True
            log.info("this model runs one image at a time: a batch of %d fails (%s)", len(x), str(exc)[:200])
            return self._run_sliced(x, names, feeds)

    def _run_sliced(self, x: np.ndarray, names: list, feeds: Optional[dict]) -> dict:
        step = self.slice_size(x)
        if len(x) > step:
            first = self._run(x[:step], names, feeds)
            if all(np.ndim(v) and np.shape(v)[0] == step for v in first.values()):
                parts = [first] + [self._run(x[i:i + step], names, feeds) for i in range(step, len(x), step)]
                return {n: np.concatenate([p[n] for p in parts]) for n in names}
        return self._run(x, names, feeds)

    def slice_size(self, x: np.ndarray) -> int:
        """How many of ``x``'s images one onnxruntime run takes (``MAX_PIXELS``; one where another input
        has its batch fixed at 1)."""
        if self.one_at_a_time:
            return 1
        return max(1, MAX_PIXELS // max(1, int(np.prod(np.shape(x)[1:])) // 3 or 1))

    def _run(self, x: np.ndarray, names: list, feeds: Optional[dict] = None) -> dict:
        feed = {self.input_name: np.ascontiguousarray(x, dtype=self.input_dtype)}
        for k, v in self.extras.items():
            feed[k] = np.repeat(v, len(x), axis=0) if v.ndim and v.shape[0] == 1 else v
        feed.update(feeds or {})
        try:
            result = self.session.run(names, feed, self.run_options)
        except Exception as exc:  # noqa: BLE001
            raise RuntimeModelError(f"onnxruntime failed on an input of shape {tuple(np.shape(x))} "
                                    f"({self.input_name!r}): {_first_line(exc)}") from exc
        return {n: (r.astype(np.float32) if r.dtype == np.float16 else r) for n, r in zip(names, result)}

    def run_batched(self, x: np.ndarray, batch_size: int = 32, outputs: Optional[Iterable[str]] = None) -> dict:
        """Many images in batches of batch_size; outputs concatenated along the batch axis."""
        names = list(outputs) if outputs is not None else self.output_names
        parts: dict = {n: [] for n in names}
        for start in range(0, len(x), max(1, batch_size)):
            for n, v in self.run(x[start:start + batch_size], names).items():
                parts[n].append(v)
        return {n: np.concatenate(v, axis=0) if v else np.zeros((0,)) for n, v in parts.items()}


class Stats(dict):
    """One batch's statistics, {layer name: {stat: (N, C) array}}; the arrays are column slices of
    ``fused`` ({stat: (N, all units)}, layers side by side in ``names`` order), which is what the
    session returned: the top-k update takes it as it is (mine.update_lists).

    From a session with in-graph top-k (graph/batch_topk.py) the whole rows are only those at batch
    positions ``rows`` (the spectrum's; None: every row), ``candidates`` holds {(stat, dir): (values
    (all units, k), batch positions (all units, k), argmax (all units, k) or None)} and ``batch``
    says how many images the batch had."""

    def __init__(self, per_layer: dict, fused: dict, names: list, candidates: Optional[dict] = None,
                 rows: Optional[np.ndarray] = None, batch: Optional[int] = None):
        super().__init__(per_layer)
        self.fused, self.names = fused, names
        self.candidates, self.rows, self.batch = candidates, rows, batch


class StatsRunner:
    """Per-channel statistics of many layers from one onnxruntime session (what mining runs).

    ``layers``: objects with ``name``, ``tensor``, ``layout`` and ``units`` (onnxviz Layers); the
    graph is edited once (``reductions.add_channel_reductions``, then ``fuse_outputs``) so that
    onnxruntime returns one (N, all units) array per statistic instead of full maps. ``topk``:
    (top k, bottom k): the session also reduces each batch to its top/bottom-k candidates
    (batch_topk.py) and ``run`` returns those instead of every row (None where the opset is older
    than 11, or no mean/max is asked for).
    """

    def __init__(self, proto: onnx.ModelProto, layers: list, providers=None, threads=None, stats=STATS,
                 input_name: Optional[str] = None, extras: Optional[dict] = None, maps: Sequence = (),
                 spin: bool = True, topk: Optional[tuple] = None):
        from ..graph import batch_topk

        self.layers = layers
        self.stats = tuple(stats)
        self.maps = list(maps)  # layers whose full maps are returned too (atlas samples)
        edited, outputs = add_channel_reductions(proto, layers, self.stats)
        edited, self._fused, self._spans = fuse_outputs(edited, layers, outputs, self.stats)
        self.topk = None
        if topk is not None and any(topk) and {"mean", "max"} & set(self.stats) and batch_topk.supported(proto):
            self.topk = (int(topk[0]), int(topk[1]))
            edited = batch_topk.add_batch_topk(edited, self._fused, self._spans[-1][1] if self._spans else 0,
                                               *self.topk)
            self._cands = {(s, d): batch_topk.names(s, d) for s in ("mean", "max") if s in self._fused
                           for d, k in zip(batch_topk.DIRS, self.topk) if k > 0}
            self._rows = {s: batch_topk.row_output(s) for s in ("mean", "max") if s in self._fused}
        if self.maps:
            edited = expose(edited, [m.tensor for m in self.maps], keep_outputs=True)
        self.runner = Runner(edited, providers=providers, threads=threads, input_name=input_name, extras=extras,
                             spin=spin)
        self.providers = self.runner.providers

    def run(self, x: np.ndarray, maps: bool = False, rows: Optional[np.ndarray] = None):
        """One batch of model input -> :class:`Stats` ({layer name: {stat: (N, C) array}}); with ``maps``,
        also {map layer name: full activation (model layout)} as a second value. With ``topk``: the
        batch's candidates, and whole rows only at batch positions ``rows``."""
        if self.topk is not None and len(x) <= self.runner.slice_size(x):  # else whole rows, in slices
            out = self._run_candidates(x, maps, rows)
            if out is not None:
                return out
        wanted = list(self._fused.values()) + ([m.tensor for m in self.maps] if maps else [])
        raw = self.runner.run(x, wanted, feeds=self._no_rows())
        fused = {s: raw[name] for s, name in self._fused.items()}
        out = Stats({lay.name: {s: v[:, a:b] for s, v in fused.items()} for lay, (a, b) in zip(self.layers, self._spans)},
                    fused, [lay.name for lay in self.layers])
        if maps:
            return out, {m.name: raw[m.tensor] for m in self.maps}
        return out

    def _no_rows(self) -> Optional[dict]:
        from ..graph.batch_topk import ROWS

        return {ROWS: np.zeros(0, np.int64)} if self.topk is not None else None

    def _run_candidates(self, x: np.ndarray, maps: bool, rows: Optional[np.ndarray]):
        """The candidate form of ``run``, or None when a candidate list reaches into NaN or the worst
        infinity (then ties with NaN may have been broken unlike the host's order: ``run`` falls
        back to the whole rows for this batch)."""
        from ..graph.batch_topk import ROWS

        rows = np.zeros(0, np.int64) if rows is None else np.asarray(rows, np.int64)
        wanted = [n for part in self._cands.values() for k, n in part.items() if k != "argmax" or "argmax" in self._fused]
        wanted += list(self._rows.values()) + ([m.tensor for m in self.maps] if maps else [])
        raw = self.runner.run(x, wanted, feeds={ROWS: rows})
        candidates = {}
        for (stat, d), part in self._cands.items():
            values = raw[part["value"]]
            if values.shape[1] < len(x):
                last = values[:, -1]
                if (np.isnan(last) | (last == (-np.inf if d == "top" else np.inf))).any():
                    return None
            candidates[(stat, d)] = (values, raw[part["index"]], raw.get(part["argmax"]))
        fused = {s: raw[name] for s, name in self._rows.items()}
        out = Stats({lay.name: {s: v[:, a:b] for s, v in fused.items()} for lay, (a, b) in zip(self.layers, self._spans)},
                    fused, [lay.name for lay in self.layers], candidates, rows, len(x))
        if maps:
            return out, {m.name: raw[m.tensor] for m in self.maps}
        return out
