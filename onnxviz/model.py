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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np
import onnx
from google.protobuf.message import DecodeError

from . import graph as G
from .errors import FaithfulnessError, ModelLoadError, UnknownNodeError
from .meta import PREPROCESSING_FIELDS, ModelMeta
from .names import node_scope, op_suffix

log = logging.getLogger("onnxviz")

# ops whose output is a natural "layer": what Lucid/Microscope show
ACTIVATIONS = {"Relu", "Clip", "LeakyRelu", "PRelu", "Elu", "Selu", "Celu", "HardSwish", "Tanh", "Gelu", "Mish",
               "Softplus", "ThresholdedRelu", "Sigmoid", "HardSigmoid"}
POOLS = {"MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "LpPool"}
# ops that absorb a linear layer's output into the same "layer" (conv -> bn -> relu is one layer)
ABSORBERS = ACTIVATIONS | {"BatchNormalization", "InstanceNormalization", "LayerNormalization", "Mul", "Add", "Sub",
                           "Div", "Sum"}
SPATIAL_OPS = {"Conv", "ConvTranspose", "BatchNormalization", "InstanceNormalization", "LRN", "DepthToSpace",
               "SpaceToDepth", "Upsample", "Resize"} | POOLS
WEIGHTED = {"Conv", "ConvTranspose", "Gemm", "MatMul", "Einsum"}
FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, onnx.TensorProto.BFLOAT16}
TOLERANCE = 1e-3  # faithfulness: max |torch - onnxruntime| / max(|onnxruntime|, 1)


@dataclass
class Layer:
    """One tensor of the model that a person may want to look at."""

    name: str  # short, readable, stable
    tensor: str  # the ONNX tensor name
    node: str  # the ONNX node that produces it
    op: str
    shape: tuple  # batch dim as None, unknown dims as None
    layout: str  # "NCHW", "NHWC", "NLC" (tokens) or "NC"
    index: int  # topological position among all nodes
    aliases: list = field(default_factory=list)

    @property
    def channel_axis(self) -> int:
        return 1 if self.layout in ("NCHW", "NC") else len(self.shape) - 1

    @property
    def units(self) -> Optional[int]:
        return self.shape[self.channel_axis] if self.shape else None

    @property
    def spatial(self) -> Optional[tuple]:
        if self.layout == "NCHW":
            return tuple(self.shape[2:4])
        if self.layout == "NHWC":
            return tuple(self.shape[1:3])
        if self.layout == "NLC":
            return (self.shape[1],)
        return None

    def to_dict(self) -> dict:
        return {"name": self.name, "tensor": self.tensor, "node": self.node, "op": self.op,
                "shape": list(self.shape), "layout": self.layout, "units": self.units,
                "spatial": list(self.spatial) if self.spatial else None, "index": self.index,
                "aliases": list(self.aliases)}


def load(path: Union[str, Path], meta: Optional[ModelMeta] = None, infer: bool = True, **overrides) -> "Model":
    """Open an ONNX file. ``meta`` or keyword overrides (input_size, mean, std, channel_order, ...)
    replace what the file says about preprocessing. A file without onnxviz metadata gets its
    preprocessing inferred from evidence (onnxviz.preprocess) unless ``infer`` is False or the
    overrides set it."""
    return Model(path, meta=meta, infer=infer, **overrides)


def read_proto(path: Union[str, Path]) -> onnx.ModelProto:
    """Read and validate an ONNX file, with a clear error for each way this fails."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"model file not found: {path}")
    if path.is_dir():
        raise ModelLoadError(f"{path} is a folder, not an ONNX file")
    head = path.read_bytes()[:64]
    if not head:
        raise ModelLoadError(f"{path} is empty, not an ONNX model")
    try:
        proto = onnx.load(str(path), load_external_data=True)
    except DecodeError as exc:
        raise ModelLoadError(f"{path} is not an ONNX model (protobuf decode failed: {exc}); "
                             "a truncated download looks like this too") from exc
    except FileNotFoundError as exc:
        raise ModelLoadError(f"{path} refers to an external-data file that is missing: {exc}") from exc
    except Exception as exc:  # noqa: BLE001
        raise ModelLoadError(f"{path} could not be read as ONNX: {type(exc).__name__}: {exc}") from exc
    if not proto.graph.node:
        raise ModelLoadError(f"{path} is not an ONNX model (no graph nodes found; is it another file type "
                             "or truncated?)")
    try:
        G.check(proto)
    except Exception as exc:  # noqa: BLE001 - onnxruntime, the real judge, accepts many such files
        log.warning("%s does not pass onnx.checker (%s); going on", path, str(exc).splitlines()[0])
    return proto


class Model:
    """An ONNX vision model: its layers, its metadata, and both backends."""

    def __init__(self, path_or_proto, meta: Optional[ModelMeta] = None, infer: bool = True, **overrides):
        if isinstance(path_or_proto, onnx.ModelProto):
            self.path, raw = None, path_or_proto
        else:
            self.path = Path(path_or_proto)
            raw = read_proto(self.path)
        self.opset = G.opset(raw)
        self.producer = f"{raw.producer_name} {raw.producer_version}".strip()
        self.proto = G.normalize(raw)
        inp = G.image_input(self.proto)
        self.input_name = inp.name
        dims = inp.type.tensor_type.shape.dim
        self.input_shape = tuple(None if i == 0 else (d.dim_value if d.HasField("dim_value") else None)
                                 for i, d in enumerate(dims))
        self.input_layout = self._input_layout()
        stored = ModelMeta.from_onnx(raw)
        self.meta_source = "file" if stored else "defaults"
        base = meta or stored or self._default_meta()
        if meta is None and stored is None and infer and not any(
                overrides.get(k) is not None for k in PREPROCESSING_FIELDS):
            base = self._inferred_meta(base.replace(**overrides) if overrides else base)
        self.meta = base.replace(**overrides) if overrides else base
        self._analyse()
        self._runners: dict = {}
        self._torch = None
        self._checked: set = set()

    # ------------------------------------------------------------------ analysis
    def _input_layout(self) -> str:
        shape = self.input_shape
        if len(shape) != 4:
            return "NCHW"
        if shape[1] in (1, 3) and shape[3] not in (1, 3):
            return "NCHW"
        if shape[3] in (1, 3) and shape[1] not in (1, 3):
            return "NHWC"
        for node in self.proto.graph.node:
            if node.op_type == "Transpose" and node.input[0] == self.input_name:
                perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
                if perm == [0, 3, 1, 2]:
                    return "NHWC"
            if self.input_name in node.input and node.op_type in SPATIAL_OPS:
                return "NCHW"
        return "NCHW"

    def _default_meta(self) -> ModelMeta:
        s = self.input_shape
        if len(s) == 4:
            c, h, w = (s[1], s[2], s[3]) if self.input_layout == "NCHW" else (s[3], s[1], s[2])
        else:
            c, h, w = 3, None, None
        dynamic = h is None or w is None
        return ModelMeta(input_size=(h or 224, w or 224), layout=self.input_layout,
                         channel_order="L" if c == 1 else "RGB", dynamic_size=dynamic, name=self.path.stem
                         if self.path else "model")

    def _inferred_meta(self, base: ModelMeta) -> ModelMeta:
        """Preprocessing inferred from evidence in the file (onnxviz.preprocess); defaults if that fails."""
        from .preprocess import infer

        try:
            found = infer(self, base)
        except Exception as exc:  # noqa: BLE001 - a file onnxruntime cannot run still gets inspected
            log.warning("could not infer the preprocessing of %s (%s); using defaults",
                        self.path or "the model", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return base
        self.meta_source = "inferred"
        return base.replace(**found.candidate.fields(), preprocessing_source="inferred", evidence=found.evidence,
                            confidence=found.confidence)

    def _analyse(self) -> None:
        proto = G.infer_shapes(self.proto)
        shapes = G.value_shapes(proto)
        nodes = list(self.proto.graph.node)
        consumers: dict = {}
        for node in nodes:
            for i in node.input:
                consumers.setdefault(i, []).append(node)
        graph_outputs = [o.name for o in self.proto.graph.output]
        layouts = {self.input_name: self.input_layout}
        all_layers = []
        for idx, node in enumerate(nodes):
            for t in node.output:
                if not t:
                    continue
                elem, shape = shapes.get(t, (None, None))
                rank = len(shape) if shape is not None else None
                layout = self._tensor_layout(node, t, rank, layouts)
                if rank is None or rank < 2 or (elem is not None and elem not in FLOAT_TYPES):
                    continue
                if layout is None:
                    continue
                all_layers.append(Layer(name=t, tensor=t, node=node.name, op=node.op_type,
                                        shape=(None,) + tuple(shape[1:]), layout=layout, index=idx))
        self._fill_unknown_shapes(all_layers)
        self.nodes = [lay for lay in all_layers if lay.units]
        by_tensor = {lay.tensor: lay for lay in self.nodes}
        node_of = {t: n for n in nodes for t in n.output}
        learned = set()  # tensors computed through at least one weighted op: not input preprocessing
        for node in nodes:
            if node.op_type in WEIGHTED or any(i in learned for i in node.input):
                learned.update(node.output)
        interesting = [lay for lay in self.nodes if lay.tensor in learned and self._interesting(
            lay, node_of[lay.tensor], consumers, node_of, graph_outputs)]
        names = self._short_names(interesting, nodes, consumers, graph_outputs)
        self.layers = []
        for lay in interesting:
            self.layers.append(Layer(name=names[lay.tensor], tensor=lay.tensor, node=lay.node, op=lay.op,
                                     shape=lay.shape, layout=lay.layout, index=lay.index))
        self._lookup: dict = {}
        for lay in self.layers:
            self._lookup[lay.name] = lay
        for alias, target in (self.meta.aliases or {}).items():
            lay = self._lookup.get(target) or next((x for x in self.layers if x.tensor == target), None)
            if lay is None and target in by_tensor:
                lay = by_tensor[target]
            if lay is not None:
                lay.aliases.append(alias)
                self._lookup.setdefault(alias, lay)
        for lay in self.layers:
            self._lookup.setdefault(lay.tensor, lay)
            if lay.node:
                self._lookup.setdefault(lay.node, lay)
        for lay in self.nodes:
            self._lookup.setdefault(lay.tensor, lay)
            if lay.node:
                self._lookup.setdefault(lay.node, lay)

    def _tensor_layout(self, node, t, rank, layouts) -> Optional[str]:
        if rank == 2:
            return "NC"
        if rank == 3:
            return "NLC"
        if rank != 4:
            return None
        in_layouts = [layouts[i] for i in node.input if i in layouts]
        if node.op_type == "Transpose":
            perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
            src = in_layouts[0] if in_layouts else "NCHW"
            if perm == [0, 2, 3, 1] and src == "NCHW":
                out = "NHWC"
            elif perm == [0, 3, 1, 2] and src == "NHWC":
                out = "NCHW"
            else:
                out = src if perm == [0, 1, 2, 3] else ("NHWC" if perm == [0, 2, 3, 1] else "NCHW")
        elif node.op_type in SPATIAL_OPS:
            out = "NCHW"
        else:
            out = in_layouts[0] if in_layouts else "NCHW"
        layouts[t] = out
        return out

    def _fill_unknown_shapes(self, layers: list) -> None:
        """Tensors whose shape inference left dims unknown get them from one onnxruntime run."""
        unknown = [lay for lay in layers if lay.shape[lay.channel_axis] is None
                   or any(d is None for d in lay.shape[1:])]
        if not unknown:
            return
        from .backends.ort import Runner

        h, w = self.meta_size_guess()
        c = 1 if self.input_shape and len(self.input_shape) == 4 and (
            self.input_shape[1] == 1 if self.input_layout == "NCHW" else self.input_shape[3] == 1) else 3
        x = np.zeros((1, c, h, w) if self.input_layout == "NCHW" else (1, h, w, c), np.float32)
        try:
            runner = Runner(G.expose(self.proto, [lay.tensor for lay in unknown]), threads=1)
            out = runner.run(x)
        except Exception as exc:  # noqa: BLE001 - shapes stay partly unknown
            log.warning("could not determine some layer shapes: %s", exc)
            return
        dynamic = any(d is None for d in self.input_shape[1:])
        for lay in unknown:
            arr = out[lay.tensor]
            if arr.ndim != len(lay.shape):
                continue
            # with a dynamic input size only the channel count is a fact; spatial dims follow the input
            lay.shape = (None,) + tuple(
                int(probed) if (i == lay.channel_axis or not dynamic or known is not None) else None
                for i, (known, probed) in enumerate(zip(lay.shape[1:], arr.shape[1:]), start=1))

    def meta_size_guess(self) -> tuple:
        s = self.input_shape
        if len(s) == 4:
            h, w = (s[2], s[3]) if self.input_layout == "NCHW" else (s[1], s[2])
            if h and w:
                return h, w
        meta = getattr(self, "meta", None)
        return tuple(meta.input_size) if meta else (224, 224)

    @staticmethod
    def _interesting(lay, node, consumers, node_of, graph_outputs) -> bool:
        if lay.tensor in graph_outputs:
            return True
        op = node.op_type
        users = consumers.get(lay.tensor, [])
        if op == "Sigmoid" and any(u.op_type == "Mul" and set(u.input) == {node.input[0], lay.tensor} for u in users):
            return False  # the Mul of a swish is the layer
        if op in ACTIVATIONS or op in POOLS or op in ("Concat", "Softmax"):
            return op != "Concat" or lay.layout in ("NCHW", "NHWC") and len(node.input) > 1
        if op in ("Add", "Sum", "Mul"):
            computed = [i for i in node.input if i in node_of and node_of[i].op_type not in ("Constant",)]
            if op == "Mul":  # swish: x * sigmoid(x)
                return any(node_of[i].op_type == "Sigmoid" for i in computed)
            return len(computed) >= 2 and lay.layout != "NC"
        if op in ("Conv", "BatchNormalization", "Gemm", "MatMul", "ConvTranspose", "ReduceMean"):
            if op == "ReduceMean" and lay.layout not in ("NCHW", "NC"):
                return False
            # conv -> bn -> relu is one layer; an output that also branches elsewhere is a layer itself
            return not (len(users) == 1 and users[0].op_type in ABSORBERS)
        return False

    @staticmethod
    def _short_names(layers, nodes, consumers, graph_outputs) -> dict:
        """tensor -> short name: the outermost scope whose only escaping output it is, else scope.op."""
        scopes = {id(node): tuple(node_scope(node)) for node in nodes}
        firsts = {s[0] for s in scopes.values() if s}
        if len(firsts) == 1 and all(scopes.values()):
            # a wrapper scope around everything (the Keras model's name): drop it
            scopes = {k: v[1:] for k, v in scopes.items()}

        def node_scope_(node):
            return scopes[id(node)]

        scope_of = {}
        for node in nodes:
            s = tuple(node_scope_(node))
            for t in node.output:
                scope_of[t] = s
        escaping: dict = {}
        for node in nodes:
            s = tuple(node_scope_(node))
            for t in node.output:
                users = consumers.get(t, [])
                for depth in range(1, len(s) + 1):
                    prefix = s[:depth]
                    leaves = t in graph_outputs or any(tuple(node_scope_(u))[:depth] != prefix for u in users)
                    if leaves:
                        escaping.setdefault(prefix, set()).add(t)
        names: dict = {}
        taken: set = set()
        node_by_tensor = {t: n for n in nodes for t in n.output}
        for lay in layers:
            s = scope_of.get(lay.tensor, ())
            # the outermost scope it is the only output of, preferring numbered blocks (features.7
            # over features.7.conv, features.18 over the container features)
            owned = [s[:d] for d in range(1, len(s) + 1) if escaping.get(s[:d]) == {lay.tensor}]
            numbered = [p for p in owned if p[-1].isdigit()]
            name = ".".join((numbered or owned)[0]) if owned else None
            if name is None or name in taken:
                node = node_by_tensor[lay.tensor]
                base = ".".join(s + (op_suffix(node),)) if s else op_suffix(node)
                name = base if base not in taken else f"{base}.{lay.index}"
            name = name.replace("/", ".").replace(":", "_") or lay.tensor
            taken.add(name)
            names[lay.tensor] = name
        return names

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

    # ------------------------------------------------------------------ preprocessing
    def prepare(self, images: np.ndarray) -> np.ndarray:
        """Images (N, 3, H, W) RGB in [0, 1] -> the model's input, per its metadata."""
        return self.meta.to_model_input(np.asarray(images, dtype=np.float32))

    def load_images(self, paths: Sequence) -> np.ndarray:
        """Photos -> images (N, 3, H, W) at the model's input size and crop."""
        from .images import load_for_model

        return np.stack([load_for_model(p, self.meta) for p in paths])

    # ------------------------------------------------------------------ onnxruntime
    def session(self, outputs: Optional[Sequence[str]] = None, providers=None, threads=None):
        """An onnxruntime Runner for the model with the given layers exposed (default: its outputs)."""
        from .backends.ort import Runner

        tensors = [self.layer(n).tensor for n in outputs] if outputs else None
        key = ("expose", tuple(tensors or ()), tuple(providers or ()), threads)
        if key not in self._runners:
            proto = G.expose(self.proto, tensors) if tensors else self.proto
            self._runners[key] = Runner(proto, providers=providers, threads=threads, input_name=self.input_name)
        return self._runners[key]

    def activations(self, x: np.ndarray, names, batch_size: int = 32, providers=None, threads=None) -> dict:
        """Full activations of layers (onnxruntime): {layer name: array (N, ...)}. x is model input."""
        layers = self.resolve(names)
        runner = self.session([lay.tensor for lay in layers], providers, threads)
        out = runner.run_batched(x, batch_size, [lay.tensor for lay in layers])
        return {lay.name: out[lay.tensor] for lay in layers}

    def stats_runner(self, names=None, providers=None, threads=None, stats=G.STATS) -> "StatsRunner":
        """A session that returns per-channel mean/max/argmax of each layer (computed in the graph)."""
        return StatsRunner(self, self.resolve(names), providers, threads, stats)

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
            from .backends.torch import convert

            self._torch = convert(self.proto)
        return self._torch[0]

    def torch_view(self, names, device=None, check: bool = True, channels_last: bool = False):
        """A torch module x (model input) -> {layer name: activation}, stopping after the deepest layer.

        With ``check`` the view is compared once with onnxruntime on a real photo; a disagreement
        above TOLERANCE raises FaithfulnessError instead of producing silently wrong pictures.
        """
        from .backends.torch import ActivationView, to_device

        layers = self.resolve(names)
        self.torch_module()
        gm, tmap = self._torch
        view = ActivationView(gm, tmap, {lay.name: lay.tensor for lay in layers})
        if check:
            self.check_faithful(view, layers)
        return to_device(view, device, channels_last)

    def check_faithful(self, view, layers: list) -> float:
        """Compare a torch view with onnxruntime on the bundled real photo; return the max error."""
        import torch

        from .backends.torch import max_relative_error
        from .images import load_for_model, sample_image_path

        todo = [lay for lay in layers if lay.tensor not in self._checked and lay.name in view.names]
        if not todo:
            return 0.0
        x = self.prepare(load_for_model(sample_image_path(), self.meta)[None])
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
            "producer": self.producer,
            "input": {"name": self.input_name, "shape": list(self.input_shape), "layout": self.input_layout},
            "outputs": [o.name for o in self.proto.graph.output],
            "meta": self.meta.to_dict(),
            "meta_source": self.meta_source,
            "preprocessing": self.meta.preprocessing(),
            "ops": dict(sorted(ops.items(), key=lambda kv: -kv[1])),
            "nodes": len(self.proto.graph.node),
            "layers": [lay.to_dict() for lay in self.layers],
        }


class StatsRunner:
    """Per-channel statistics of many layers from one onnxruntime session (what mining runs)."""

    def __init__(self, model: Model, layers: list, providers, threads, stats):
        from .backends.ort import Runner

        self.layers = layers
        self.stats = tuple(stats)
        proto, self._outputs = G.add_channel_reductions(model.proto, layers, self.stats)
        self.runner = Runner(proto, providers=providers, threads=threads, input_name=model.input_name)
        self.providers = self.runner.providers

    def run(self, x: np.ndarray) -> dict:
        """One batch of model input -> {layer name: {stat: (N, C) array}}."""
        raw = self.runner.run(x)
        out = {}
        for lay, names in zip(self.layers, self._outputs):
            entry = {s: raw[n] for s, n in names.items()}
            if lay.layout == "NC":
                v = raw[lay.tensor]
                entry = {s: v for s in self.stats if s != "argmax"}
                if "argmax" in self.stats:
                    entry["argmax"] = np.zeros(v.shape, np.int64)
            out[lay.name] = entry
        return out
