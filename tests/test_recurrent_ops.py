"""onnxviz's LSTM, GRU and RNN converters (backends/recurrent_ops.py) against onnxruntime on one-node graphs
with seeded random weights: every output within 1e-4, and a gradient reaching the input through the recurrence
(what rendering a unit in or after a CRNN's head needs)."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from onnxviz.backends.converters import unconvertible_nodes
from onnxviz.backends.fx import convert

SEQ, BATCH, IN, HIDDEN = 5, 2, 3, 4
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def _model(op, opset=14, direction="forward", bias=True, init=False, peep=False, lens=None, layout=0,
           outputs=("Y", "Y_h", "Y_c"), feed_h=False, seed=0, **attrs):
    """(model, feeds, node outputs): one ``op`` node; ``feed_h`` makes initial_h a graph input, not a constant."""
    rng = np.random.default_rng(seed)
    dirs, g = 2 if direction == "bidirectional" else 1, GATES[op]
    x_shape = (BATCH, SEQ, IN) if layout else (SEQ, BATCH, IN)
    state = (BATCH, dirs, HIDDEN) if layout else (dirs, BATCH, HIDDEN)
    x = rng.normal(0, 1, x_shape).astype(np.float32)
    consts = {"W": rng.normal(0, 0.5, (dirs, g * HIDDEN, IN)), "R": rng.normal(0, 0.5, (dirs, g * HIDDEN, HIDDEN))}
    if bias:
        consts["B"] = rng.normal(0, 0.5, (dirs, 2 * g * HIDDEN))
    if lens is not None:
        consts["sequence_lens"] = np.asarray(lens, np.int32)
    if init:
        consts["initial_h"] = rng.normal(0, 0.5, state)
        if op == "LSTM":
            consts["initial_c"] = rng.normal(0, 0.5, state)
    if peep:
        consts["P"] = rng.normal(0, 0.5, (dirs, 3 * HIDDEN))
    feeds, graph_inputs = {"x": x}, [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))]
    if feed_h:
        feeds["h0"] = rng.normal(0, 0.5, state).astype(np.float32)
        graph_inputs.append(helper.make_tensor_value_info("h0", TensorProto.FLOAT, list(state)))
    slots = ["W", "R", "B", "sequence_lens", "initial_h"] + (["initial_c", "P"] if op == "LSTM" else [])
    names = ["x"] + [("h0" if feed_h and s == "initial_h" else s if s in consts else "") for s in slots]
    while not names[-1]:
        names.pop()
    outs = [o if o in outputs else "" for o in ("Y", "Y_h", "Y_c")[:3 if op == "LSTM" else 2]]
    while not outs[-1]:
        outs.pop()
    if layout:
        attrs["layout"] = layout
    node = helper.make_node(op, names, outs, hidden_size=HIDDEN, direction=direction, **attrs)
    inits = [numpy_helper.from_array(v.astype(np.float32) if v.dtype == np.float64 else v, k)
             for k, v in consts.items()]
    graph = helper.make_graph([node], "g", graph_inputs,
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outs if o], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=10), feeds, outs


def _seq_first(proto):
    """The layout-1 node as layout 0 between Transposes (onnxruntime runs only layout 0): the reference."""
    ref = onnx.ModelProto()
    ref.CopyFrom(proto)
    graph, node = ref.graph, ref.graph.node[0]
    if not any(a.name == "layout" and a.i for a in node.attribute):
        return proto
    node.attribute.remove(next(a for a in node.attribute if a.name == "layout"))
    before, after = [], []
    for k, name in enumerate(node.input):
        if name and k in (0, 5, 6):  # X, initial_h, initial_c: batch and seq (or directions) swapped
            before.append(helper.make_node("Transpose", [name], [name + "_t"], perm=[1, 0, 2]))
            node.input[k] = name + "_t"
    for k, name in enumerate(node.output):
        if name:
            perm = [2, 0, 1, 3] if k == 0 else [1, 0, 2]
            after.append(helper.make_node("Transpose", [name + "_t"], [name], perm=perm))
            node.output[k] = name + "_t"
    nodes = before + [node] + after
    del graph.node[:]
    graph.node.extend(nodes)
    return ref


def _parity(proto, feeds, outs):
    assert not unconvertible_nodes(proto)
    names = [o for o in outs if o]
    want = ort.InferenceSession(_seq_first(proto).SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(names, feeds)
    xt = torch.from_numpy(feeds["x"]).requires_grad_(True)
    rest = [torch.from_numpy(v) for k, v in feeds.items() if k != "x"]
    got = convert(proto)[0](xt, *rest)
    got = got if isinstance(got, (tuple, list)) else (got,)
    loss = 0
    for name, w in zip(names, want):
        g = got[outs.index(name)]
        assert g.shape == w.shape, (name, g.shape, w.shape)
        assert float((g.detach() - torch.from_numpy(w)).abs().max()) < 1e-4, name
        loss = loss + (g ** 2).sum()
    loss.backward()
    assert xt.grad is not None and float(xt.grad.abs().sum()) > 0


@pytest.mark.parametrize("opset", [7, 14, 22])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_lstm_directions_and_versions(opset, direction):
    _parity(*_model("LSTM", opset, direction, bias=opset != 7, init=opset != 14))


@pytest.mark.parametrize("config", [
    dict(direction="bidirectional", peep=True, init=True),
    dict(direction="reverse", peep=True, clip=0.7),
    dict(direction="forward", input_forget=1, peep=True),
    dict(direction="bidirectional", init=True, layout=1),
    dict(direction="bidirectional", lens=[SEQ, 3]),
    dict(direction="bidirectional", outputs=("Y_h",), feed_h=True),
    dict(direction="forward", activations=["HardSigmoid", "Relu", "Tanh"], activation_alpha=[0.3],
         activation_beta=[0.4]),
])
def test_lstm_options(config):
    _parity(*_model("LSTM", 14, **config))


@pytest.mark.parametrize("lbr", [0, 1])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_gru(direction, lbr):
    _parity(*_model("GRU", 14, direction, init=direction != "forward", linear_before_reset=lbr))


@pytest.mark.parametrize("config", [
    dict(opset=7, direction="bidirectional", bias=False, linear_before_reset=1),
    dict(opset=22, direction="bidirectional", init=True, layout=1, linear_before_reset=1),
    dict(opset=14, direction="reverse", clip=0.5, lens=[3, SEQ], linear_before_reset=0),
    dict(opset=14, direction="forward", outputs=("Y",), feed_h=True),
])
def test_gru_options(config):
    _parity(*_model("GRU", **config))


@pytest.mark.parametrize("config", [
    dict(opset=7, direction="forward", bias=False),
    dict(opset=14, direction="reverse", init=True, activations=["Relu"]),
    dict(opset=22, direction="bidirectional", init=True, layout=1, clip=0.8),
    dict(opset=14, direction="bidirectional", lens=[2, 4], outputs=("Y_h",)),
])
def test_rnn(config):
    _parity(*_model("RNN", **config))


@pytest.mark.parametrize("op,config", [
    ("RNN", dict(activations=["ScaledTanh"], activation_alpha=[0.8], activation_beta=[1.3])),
    ("RNN", dict(activations=["Affine"], activation_alpha=[0.5], activation_beta=[0.1])),
    ("RNN", dict(activations=["ThresholdedRelu"], activation_alpha=[0.2])),
    ("RNN", dict(activations=["LeakyRelu"], activation_alpha=[0.1])),
    ("RNN", dict(activations=["Elu"], activation_alpha=[0.7])),
    ("RNN", dict(activations=["Softsign"])),
    ("RNN", dict(activations=["Softplus"])),
    # alphas and betas are consumed in order by the activations that take them, across both directions
    ("GRU", dict(direction="bidirectional", activations=["HardSigmoid", "Tanh", "Sigmoid", "ScaledTanh"],
                 activation_alpha=[0.3, 0.9], activation_beta=[0.45, 1.1])),
])
def test_activations(op, config):
    _parity(*_model(op, 14, **config))


def test_unsupported_activation_is_refused():
    from onnxviz.errors import ConversionError

    proto, _, _ = _model("RNN", 14, activations=["Gelu"])
    with pytest.raises(ConversionError, match="activation 'Gelu'"):
        convert(proto)


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
def test_torch_exported_crnn_renders_a_unit_after_the_head(cell, tmp_path):
    """A tiny CRNN exported by torch (conv, columns as time steps, a bidirectional recurrent head, per-column
    logits) through onnxviz's own API: the torch view of the logits passes onnxviz's faithfulness check against
    onnxruntime, and gradient ascent raises one logit."""
    import onnxviz
    from onnxviz.optvis import objectives as obj
    from onnxviz.optvis import render

    class CRNN(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 2, 1), torch.nn.ReLU())
            self.rnn = getattr(torch.nn, cell)(8 * 8, 6, bidirectional=True)
            self.fc = torch.nn.Linear(12, 5)

        def forward(self, x):
            f = self.conv(x)  # (N, 8, 8, 16): 16 columns
            seq = f.flatten(1, 2).permute(2, 0, 1)  # (T, N, C)
            return self.fc(self.rnn(seq)[0]).permute(1, 0, 2)  # (N, T, classes)

    torch.manual_seed(0)
    path = tmp_path / f"crnn_{cell.lower()}.onnx"
    with torch.no_grad():
        torch.onnx.export(CRNN().eval(), (torch.zeros(1, 3, 16, 32),), str(path), dynamo=False, opset_version=14,
                          input_names=["image"], output_names=["logits"], dynamic_axes={"image": {0: "N"}})
    assert cell in {n.op_type for n in onnx.load(str(path)).graph.node}
    m = onnxviz.load(path)
    lay = m.layer("logits")
    m.torch_view([lay.name])  # check=True: compared with onnxruntime on a real photo, raises when they differ
    r = render(m, obj.channel(lay.name, 2), steps=8, seed=0, device="cpu")
    assert r.record["activation_end"][0] > r.record["activation_start"][0]
