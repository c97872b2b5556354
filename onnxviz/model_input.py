"""The input side of ``Model``: which input sizes run, the preprocessing the file's producers and
sidecars state (preprocessing/sources.py) or the evidence infers (preprocessing/infer.py), and the
feeds for inputs other than the chosen image. A mixin: ``Model`` sets ``proto``, ``input_name``,
``input_shape``, ``input_layout``, ``path`` and ``meta`` before these run."""
from __future__ import annotations

import logging
from typing import Optional

import numpy as np
import onnx

from .graph import edits as G
from .preprocessing.meta import ModelMeta

log = logging.getLogger("onnxviz")


class ModelInput:
    """Input sizes, preprocessing sources and extra-input feeds of a ``Model``."""

    def _default_meta(self) -> ModelMeta:
        s = self.input_shape
        if len(s) == 4:
            c, h, w = (s[1], s[2], s[3]) if self.input_layout == "NCHW" else (s[3], s[1], s[2])
        else:
            c, h, w = 3, None, None
        dynamic = h is None or w is None
        size = self.input_rule.size if self.input_rule else (h or 224, w or 224)
        return ModelMeta(input_size=size, layout=self.input_layout, channel_order="L" if c == 1 else "RGB",
                         mean=(0.0,), std=(1.0,), dynamic_size=dynamic,
                         name=self.path.stem if self.path else "model")

    def _hw(self) -> tuple:
        s = self.input_shape
        if len(s) != 4:
            return 3, None, None
        return (s[1], s[2], s[3]) if self.input_layout == "NCHW" else (s[3], s[1], s[2])

    def _input_rule(self, stored, overrides, sourced=None):
        """Which input sizes run (``shapes.InputRule``): the graph's fixed size, else probed."""
        from .graph import input_sizes as shapes

        c, h, w = self._hw()
        if h and w:
            return shapes.fixed(h, w)
        if len(self.input_shape) != 4:
            return None
        hint = overrides.get("input_size") or (stored.input_size if stored else None) or (
            sourced.fields.get("input_size") if sourced else None)
        return shapes.probe(lambda: self._full_runner(), c or 3, self.input_layout, h, w,
                            tuple(hint) if hint else None)

    def _dynamic_size(self) -> str:
        """A large fixed-size, fully convolutional graph gets a symbolic H/W (graph/dynamic_size.py):
        its units then render at the size their receptive field needs. One line says what was done."""
        from .graph import dynamic_size
        from .graph.input_sizes import InputRule

        c, h, w = self._hw()
        if not (h and w) or max(h, w) < dynamic_size.LARGE or len(self._extras):
            return ""
        from .preprocessing.images import load_for_model, sample_image_path

        dtype = onnx.helper.tensor_dtype_to_np_dtype(
            G.image_input(self.proto, self.input_name).type.tensor_type.elem_type)

        def photo(ph, pw):
            img = load_for_model(sample_image_path(), self.meta.replace(input_size=(ph, pw)))[None]
            return self.prepare(img).astype(dtype)

        try:
            edit = dynamic_size.make_dynamic(self.proto, self.input_name, self.input_layout, photo)
        except Exception as exc:  # noqa: BLE001 - the file still works at its own size
            edit = dynamic_size.SizeEdit(None, None, reason=f"kept at {h}x{w}: {str(exc).splitlines()[0][:200]}")
        log.info("%s: %s", self.path or self.meta.name, edit.reason)
        if edit.proto is not None:
            self.proto = edit.proto
            self.fixed_size_tensors = edit.fixed_tensors
            self.input_rule = InputRule((h, w), (edit.stride, edit.stride), edit.reason)
        return edit.reason

    def _full_runner(self):
        from .backends.ort import Runner

        return Runner(self.proto, threads=1, input_name=self.input_name, extras=self.other_inputs(), quiet=True)

    def other_inputs(self, meta: Optional[ModelMeta] = None) -> dict:
        """Feeds for the inputs that are not the chosen image: a mid-gray image through the chosen
        input's preprocessing (``meta``, default the model's) when 4-d with the image's channel count (its
        own fixed size, else the chosen input's); the image's width (or height) for an integer per-image
        size named so (widths, lengths, seq_len); 1 for one float named a ratio, scale or factor (a
        matting net's downsample_ratio: 0 would resize to nothing); zeros otherwise (recurrent states)."""
        extras = {}
        inits = G.initializer_names(self.proto.graph)
        meta = meta if meta is not None else getattr(self, "meta", None)
        for inp in self.proto.graph.input:
            if inp.name in inits or inp.name == self.input_name:
                continue
            tt = inp.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
            dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type) if tt.elem_type else np.float32
            chans = (dims[1] if self.input_layout == "NCHW" else dims[3]) if len(dims) == 4 else None
            if len(dims) == 4 and meta is not None and chans == meta.channels:  # a second image
                h, w = (dims[2], dims[3]) if self.input_layout == "NCHW" else (dims[1], dims[2])
                size = (h or meta.input_size[0], w or meta.input_size[1])
                gray = np.full((1, 3) + tuple(size), 0.5, np.float32)
                extras[inp.name] = meta.to_model_input(gray).astype(dtype)
                continue
            shape = [d or 1 for d in dims] or [1]  # a fixed first dim is the input's own (26 style weights), not a batch
            sized = meta is not None and len(dims) <= 2 and np.dtype(dtype).kind in "iu"
            word = _size_word(inp.name) if sized else ""
            if word:  # a per-image length (an OCR recognizer's widths): the whole image is valid, not none of it
                extras[inp.name] = np.full(shape, int(meta.input_size[0 if word == "height" else 1]), dtype)
            elif np.dtype(dtype).kind == "f" and int(np.prod(shape)) == 1 and _ratio_word(inp.name):
                extras[inp.name] = np.ones(shape, dtype)  # a resize ratio or scale factor: 1 leaves the image as it is
            else:  # recurrent states (a video net's r1i..r4i, a tracker's memory) start at zero
                extras[inp.name] = np.zeros(shape, dtype)
        return extras

    def _sourced(self, raw):
        """What producers' metadata and sidecar files say (``preprocessing.sources``), checked against the graph."""
        from .preprocessing import sources

        c, h, w = self._hw()
        return sources.read(raw, self.path, self.proto, self.input_name, self.input_layout, (h, w),
                            1 if c == 1 else 3)

    def _apply_sourced(self, base: ModelMeta) -> ModelMeta:
        from .preprocessing import sources

        meta = sources.apply(base, self.sourced)
        if self.sourced.complete:
            self.meta_source = "sources"
        return meta

    def _inferred_meta(self, base: ModelMeta) -> ModelMeta:
        """Preprocessing inferred from evidence in the file (onnxviz.preprocessing.infer); defaults if that fails.
        With a complete deterministic source the statistics only check it (``sources.with_statistics``)."""
        from .preprocessing import sources
        from .preprocessing.infer import infer

        try:
            found = infer(self, base)
        except Exception as exc:  # noqa: BLE001 - a file onnxruntime cannot run still gets inspected
            log.warning("could not infer the preprocessing of %s (%s); using %s",
                        self.path or "the model", str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                        "its sources" if self.sourced is not None else "defaults")
            return base
        meta, how = sources.with_statistics(base, self.sourced, found)
        self.meta_source = how
        return meta

    def _probe_size(self) -> tuple:
        """(H, W) at which open shapes are measured: the fixed input size, else the metadata's."""
        s = self.input_shape
        if len(s) == 4:
            h, w = (s[2], s[3]) if self.input_layout == "NCHW" else (s[1], s[2])
            if h and w:
                return h, w
        return tuple(self.meta.input_size)


def _ratio_word(name: str) -> bool:
    """Does an input's name say it holds a ratio or scale factor (RVM's downsample_ratio)?"""
    return any(w in name.lower() for w in ("ratio", "scale", "factor"))


def _size_word(name: str) -> str:
    """"width" or "height" when an input's name says it holds a per-image size, else ""."""
    low = name.lower()
    if "height" in low:
        return "height"
    return "width" if any(w in low for w in ("width", "length", "seq_len", "seqlen")) else ""
