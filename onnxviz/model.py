"""Open any ONNX vision model: its layers with shapes and readable names, run on either backend.

    m = onnxviz.load("mobilenet_v2.onnx")
    m.layers                              # interesting layers, in order, with shapes and unit counts
    m.layer("features.7")                 # by short name, alias, raw tensor or node name
    x = m.prepare(images)                 # images (N,3,H,W) RGB in [0,1] -> model input, from metadata
    m.activations(x, ["features.7"])      # onnxruntime, full maps
    m.channel_stats(x, ["features.7"])    # onnxruntime, per-channel mean/max/argmax computed in-graph
    view = m.torch_view(["features.7"])   # torch module -> {name: activation}, differentiable, truncated
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np
import onnx

from .graph import edits as G
from .errors import FaithfulnessError, ModelLoadError, UnknownNodeError
from .preprocessing.meta import PREPROCESSING_FIELDS, ModelMeta
from .graph.reductions import STATS
from .layers.discovery import Layer, discover, input_layout, probe_shapes
from .model_file import _stored_meta, read_proto  # noqa: F401 - read_proto stays importable from here
from .model_input import ModelInput

log = logging.getLogger("onnxviz")

TOLERANCE = 1e-3  # faithfulness: max |torch - onnxruntime| / max(|onnxruntime|, 1)


def load(path: Union[str, Path], meta: Optional[ModelMeta] = None, input: Optional[str] = None,
         infer: bool = True, **overrides) -> "Model":
    """Open an ONNX file. ``meta`` or keyword overrides (input_size, mean, std, channel_order, ...)
    replace what the file says about preprocessing. ``input``: with several image inputs, the one
    to optimize and mine (default: the first 4-d input); the others get a mid-gray image. A file
    without onnxviz metadata gets its preprocessing inferred from evidence (onnxviz.preprocessing.infer)
    unless ``infer`` is False or the overrides set it."""
    return Model(path, meta=meta, input=input, infer=infer, **overrides)


class Model(ModelInput):
    """An ONNX vision model: its layers, its metadata, and both backends."""

    def __init__(self, path_or_proto, meta: Optional[ModelMeta] = None, input: Optional[str] = None,
                 infer: bool = True, **overrides):
        from .graph import validate

        if isinstance(path_or_proto, onnx.ModelProto):
            self.path, raw = None, path_or_proto
            validate.structure(raw.graph, None)
        else:
            self.path = Path(path_or_proto)
            raw = read_proto(self.path)
        stored = _stored_meta(raw, self.path)
        self.opset = G.opset(raw)
        self.producer = f"{raw.producer_name} {raw.producer_version}".strip()
        try:
            self.proto = G.normalize(raw, input)
            inp = G.image_input(self.proto, input)
        except ModelLoadError as exc:
            if self.path is None or str(self.path) in str(exc):
                raise
            raise ModelLoadError(f"{self.path}: {exc}") from None
        self.input_name = inp.name
        dims = inp.type.tensor_type.shape.dim
        # -1 or 0 (old Paddle2ONNX writes -1 for a dynamic dim) is unknown too
        self.input_shape = tuple(None if i == 0 else (d.dim_value if d.HasField("dim_value") and d.dim_value > 0
                                                      else None) for i, d in enumerate(dims))
        self.input_layout = input_layout(self.proto, self.input_name, self.input_shape)
        validate.input_size(self.path, self.input_name, self.input_shape, self.input_layout)
        validate.loadable(self.proto, self.path)
        self.meta_source = "file" if stored else "defaults"
        # producers' metadata conventions and framework sidecars (onnxviz.preprocessing.sources)
        self.sourced = self._sourced(raw) if meta is None and stored is None else None
        self.input_rule = self._input_rule(stored, overrides, self.sourced)
        base = meta or stored or self._default_meta()
        if self.sourced is not None:
            base = self._apply_sourced(base)
        if meta is None and stored is None and infer and not any(
                overrides.get(k) is not None for k in PREPROCESSING_FIELDS):
            base = self._inferred_meta(base.replace(**overrides) if overrides else base)
        self.meta = base.replace(**overrides) if overrides else base
        self._extras = self.other_inputs()
        found = discover(self.proto, self.input_name, self.input_shape, self.input_layout, self._probe_size(),
                         self.meta.aliases, self._extras)
        self.tensors, self.layers, self._lookup, self._probed = found.tensors, found.layers, found.lookup, found.probed
        if len(self._extras):  # with several inputs, layers are what the chosen input computes
            reached = G.depends_on(self.proto.graph, [self.input_name])
            self.layers = [lay for lay in self.layers if lay.tensor in reached]
        self.fixed_size_tensors: frozenset = frozenset()  # computed only at the file's own size
        self.size_note = self._dynamic_size()
        self._runners: dict = {}
        self._torch = None
        self._checked: set = set()

    # ------------------------------------------------------------------ analysis
    def map_size(self, layer) -> Optional[tuple]:
        """(H, W) of a spatial layer's map at the model's input size (probed once when the graph
        leaves it open, e.g. for models with a dynamic input size); None for (N, C) and token layers."""
        lay = self.layer(layer)
        if lay.layout not in ("NCHW", "NHWC"):
            return None
        if lay.spatial and all(d is not None for d in lay.spatial):
            return tuple(lay.spatial)
        if lay.tensor not in self._probed:
            self._probed.update(probe_shapes(self.proto, self.input_name, self.input_shape, self.input_layout,
                                             self._probe_size(), [lay.tensor], extras=self._extras))
        shape = self._probed[lay.tensor]
        return tuple(shape[2:4]) if lay.layout == "NCHW" else tuple(shape[1:3])

    # ------------------------------------------------------------------ lookup
    def layer(self, name: Union[str, Layer]) -> Layer:
        """A layer by short name, alias, ONNX tensor name or node name."""
        if isinstance(name, Layer):
            return name
        lay = self._lookup.get(name)
        if lay is None:
            raise UnknownNodeError(name, [x.name for x in self.layers] + [x for x in self._lookup if x not in
                                                                          {y.name for y in self.layers}])
        return lay

    def resolve(self, names: Union[str, Iterable]) -> list:
        """Layers for a list of names (or a comma-separated string); None/'all' -> all layers."""
        if names is None or names == "all":
            return list(self.layers)
        if isinstance(names, (str, Layer)):
            names = [n.strip() for n in names.split(",")] if isinstance(names, str) else [names]
        return [self.layer(n) for n in names]

    def __repr__(self) -> str:
        return f"<onnxviz.Model {self.path or self.meta.name}: {len(self.layers)} layers, opset {self.opset}>"

    def _repr_html_(self) -> str:
        """What ``onnxviz inspect`` prints, as a table (a notebook cell ending with a model shows it)."""
        from .display import model_table

        return model_table(self)

    # ------------------------------------------------------------------ preprocessing
    def prepare(self, images: np.ndarray) -> np.ndarray:
        """Images (N, 3, H, W) RGB in [0, 1] -> the model's input, per its metadata."""
        return self.meta.to_model_input(np.asarray(images, dtype=np.float32))

    def load_images(self, paths: Sequence) -> np.ndarray:
        """Photos -> images (N, 3, H, W) at the model's input size and crop."""
        from .preprocessing.images import load_for_model

        return np.stack([load_for_model(p, self.meta) for p in paths])

    # ------------------------------------------------------------------ onnxruntime
    def session(self, outputs: Optional[Sequence[str]] = None, providers=None, threads=None):
        """An onnxruntime Runner for the model with the given layers exposed (default: its outputs)."""
        from .backends.ort import Runner

        tensors = [self.layer(n).tensor for n in outputs] if outputs else None
        key = ("expose", tuple(tensors or ()), tuple(providers or ()), threads)
        if key not in self._runners:
            proto = G.expose(self.proto, tensors) if tensors else self.proto
            self._runners[key] = Runner(proto, providers=providers, threads=threads, input_name=self.input_name,
                                        extras=self._extras)
        return self._runners[key]

    def activations(self, x: np.ndarray, names, batch_size: int = 32, providers=None, threads=None) -> dict:
        """Full activations of layers (onnxruntime): {layer name: array (N, ...)}. x is model input."""
        layers = self.resolve(names)
        runner = self.session([lay.name for lay in layers], providers, threads)
        out = runner.run_batched(x, batch_size, [lay.tensor for lay in layers])
        return {lay.name: out[lay.tensor] for lay in layers}

    def stats_runner(self, names=None, providers=None, threads=None, stats=STATS, maps=(), spin: bool = True,
                     pixels: bool = False, topk=None):
        """A session that returns per-channel mean/max/argmax of each layer (computed in the graph),
        and with ``maps`` the full activation maps of those layers too (``run(x, maps=True)``).
        ``pixels``: it takes uint8 (N, H, W, 3) RGB pixels and preprocesses them in the graph (pixelfeed.py).
        ``topk``: (top k, bottom k): each batch reduced to its top-k candidates in the graph (batch_topk.py)."""
        from .backends.ort import StatsRunner

        proto, name = self.proto, self.input_name
        if pixels:
            from .graph.pixelfeed import PIXELS, add_pixel_input

            proto, name = add_pixel_input(proto, name, self.meta), PIXELS
        return StatsRunner(proto, self.resolve(names), providers, threads, stats, input_name=name,
                           extras=self._extras, maps=[self.layer(m) for m in maps], spin=spin, topk=topk)

    def channel_stats(self, x: np.ndarray, names=None, batch_size: int = 32, providers=None, threads=None) -> dict:
        """{layer: {"mean": (N,C), "max": (N,C), "argmax": (N,C) flat index into the spatial map}}."""
        runner = self.stats_runner(names, providers, threads)
        parts = [runner.run(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]
        return {name: {s: np.concatenate([p[name][s] for p in parts]) for s in parts[0][name]}
                for name in parts[0]} if parts else {}

    # ------------------------------------------------------------------ torch
    def torch_module(self):
        """The whole model converted with onnx2torch (eval mode, frozen weights)."""
        if self._torch is None:
            from .backends.fx import convert

            self._torch = convert(self.float_proto)
        return self._torch[0]

    @property
    def float_proto(self) -> onnx.ModelProto:
        """The float32 view the torch path runs (the model itself unless quantized or float16)."""
        if getattr(self, "_float", None) is None:
            from .graph.floatview import float_view

            self._float = float_view(self.proto)
        return self._float

    def _torch_sub(self, tensors: list) -> tuple:
        """(GraphModule, tensor map) of the subgraph from the input to ``tensors`` (cached)."""
        from .backends.fx import convert

        key = frozenset(tensors)
        cache = self.__dict__.setdefault("_subs", {})
        if key not in cache:
            sub = G.subgraph(self.float_proto, tensors)
            extras = {k: v for k, v in self._extras.items() if k in {i.name for i in sub.graph.input}}
            if extras:  # other image inputs become constants of the torch module (batch 1, broadcast)
                sub = G.bake_inputs(sub, {k: v.astype(np.float32) if v.dtype.kind == "f" else v for k, v in extras.items()})
            cache[key] = convert(sub)
        return cache[key]

    def torch_view(self, names, device=None, check: bool = True, channels_last: bool = False):
        """A torch module x (model input) -> {layer name: activation}, stopping after the deepest layer.

        With ``check`` the view is compared once with onnxruntime on a real photo; a disagreement
        above TOLERANCE raises FaithfulnessError instead of producing silently wrong pictures.
        """
        from .backends.fx import ActivationView, to_device

        layers = self.resolve(names)
        gm, tmap = self._torch_sub([lay.tensor for lay in layers])
        view = ActivationView(gm, tmap, {lay.name: lay.tensor for lay in layers})
        if check:
            self.check_faithful(view, layers)
        return to_device(view, device, channels_last)

    def check_faithful(self, view, layers: list) -> float:
        """Compare a torch view with onnxruntime on the bundled real photo; return the max error."""
        import torch

        from .backends.fx import max_relative_error
        from .preprocessing.images import load_for_model, sample_image_path

        todo = [lay for lay in layers if lay.tensor not in self._checked and lay.name in view.names]
        if not todo:
            return 0.0
        x = self.prepare(load_for_model(sample_image_path(), self.meta)[None])
        quantized = self.float_proto is not self.proto
        if quantized:  # the torch module is checked against the float view, strictly
            from .backends.ort import Runner

            sub = G.subgraph(self.float_proto, [lay.tensor for lay in todo])
            out = Runner(sub, threads=1, input_name=self.input_name, extras=self._extras).run(x)
            ref = {lay.name: out[lay.tensor] for lay in todo}
            orig = self.activations(x, todo)
            errs = self.__dict__.setdefault("float_view_error", {})
            for lay in todo:  # and how far the float view is from the file's own (quantized/fp16) result
                errs[lay.name] = max_relative_error(torch.from_numpy(ref[lay.name]), orig[lay.name])
                log.info("float view of %s differs from the %s file by %.3g (max relative) at %s",
                         self.meta.name, "quantized" if "Quant" in str(self.ops()) else "float16", errs[lay.name],
                         lay.name)
        else:
            ref = self.activations(x, todo)
        with torch.no_grad():
            got = view(torch.from_numpy(x))
        worst = 0.0
        for lay in todo:
            err = max_relative_error(got[lay.name], ref[lay.name])
            worst = max(worst, err)
            if not err <= TOLERANCE:
                raise FaithfulnessError(
                    f"the torch conversion disagrees with onnxruntime at layer {lay.name!r} (tensor {lay.tensor!r}): "
                    f"max relative error {err:.3g} > {TOLERANCE}. Renders of this layer would be wrong; "
                    "onnxruntime features (activations, mining) are unaffected.")
            self._checked.add(lay.tensor)
        return worst

    def ops(self) -> set:
        return {n.op_type for n in self.proto.graph.node}

    # ------------------------------------------------------------------ description
    def describe(self) -> dict:
        """Everything `onnxviz inspect` shows, as plain data."""
        ops: dict = {}
        for node in self.proto.graph.node:
            ops[node.op_type] = ops.get(node.op_type, 0) + 1
        size = self.path.stat().st_size if self.path else self.proto.ByteSize()
        return {
            "path": str(self.path) if self.path else None,
            "file_size": size,
            "opset": self.opset,
            "opsets": {o.domain or "ai.onnx": o.version for o in self.proto.opset_import},
            "ir_version": self.proto.ir_version,
            "parameters": sum(int(np.prod(t.dims)) for t in self.proto.graph.initializer),
            "producer": self.producer,
            "input": {"name": self.input_name, "shape": list(self.input_shape), "layout": self.input_layout},
            "input_sizes": dict(self.input_rule.to_dict(), note=self.size_note) if self.input_rule else None,
            "outputs": [o.name for o in self.proto.graph.output],
            "output_shapes": {o.name: [d.dim_param or (d.dim_value if d.HasField("dim_value") else None)
                                       for d in o.type.tensor_type.shape.dim] for o in self.proto.graph.output},
            "meta": self.meta.to_dict(),
            "meta_source": self.meta_source,
            "preprocessing": self.meta.preprocessing(),
            "ops": dict(sorted(ops.items(), key=lambda kv: -kv[1])),
            "nodes": len(self.proto.graph.node),
            "layers": [lay.to_dict() for lay in self.layers],
        }

