"""Large inputs: fixed-size graphs made dynamic where onnxruntime agrees, renders sized by the receptive
field, and mining batches sized by memory (halved when onnxruntime runs out)."""
from __future__ import annotations

import logging

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import onnxviz
from onnxviz.backends.ort import Runner
from onnxviz.errors import RuntimeModelError
from onnxviz.mining import batching
from onnxviz.mining.mine import mine
from onnxviz.mining.run import MiningError
from onnxviz.optvis import objectives as obj
from onnxviz.optvis.render import render
from onnxviz.optvis.render_size import default_size, rule_for
from onnxviz.preprocessing.images import load_image, sample_image_path

SIDE = 640  # dynamic_size.LARGE: the smallest fixed side that is made dynamic


class SmallUNet(nn.Module):
    """Two stride-2 convs, an upsample to the skip's size, a skip add; ``head``: a fixed-size head."""

    def __init__(self, head: str = ""):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.c, self.d = nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.head = head

    def forward(self, x):
        if self.head == "reshape":  # a constant reshape before everything: no layer can change size
            x = x.reshape(1, 3, SIDE * SIDE).reshape(1, 3, SIDE, SIDE)
        a = F.relu(self.a(x))
        b = F.relu(self.b(a))
        c = F.relu(self.c(b))
        u = F.interpolate(c, size=b.shape[2:], mode="nearest")  # exported as Resize with sizes
        d = F.relu(self.d(u + b))
        if self.head == "gemm":  # pooled by a fixed kernel, flattened, a matrix: the classic fixed head
            return torch.flatten(F.avg_pool2d(d, SIDE // 16), 1) @ torch.ones(8 * 64, 4)
        return d


def _export(tmp_path, head: str = ""):
    path = tmp_path / f"unet_{head or 'conv'}.onnx"
    torch.onnx.export(SmallUNet(head).eval(), torch.rand(1, 3, SIDE, SIDE), str(path), dynamo=False,
                      opset_version=17, input_names=["x"])
    return path


def _photo(size):
    return load_image(sample_image_path(), size, None)[None].astype(np.float32)


@pytest.fixture(scope="module")
def unet(tmp_path_factory):
    path = _export(tmp_path_factory.mktemp("large"))
    return path, onnxviz.load(path, mean=(0.0,), std=(1.0,))


def test_fixed_size_unet_is_made_dynamic_with_parity_on_a_real_photo(unet):
    path, m = unet
    assert "made dynamic" in m.size_note and m.input_rule.stride == (4, 4), m.size_note
    assert not m.fixed_size_tensors
    opts = ort.SessionOptions()
    original = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    edited = ort.InferenceSession(m.proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    x = _photo((SIDE, SIDE))
    assert np.allclose(edited.run(None, {"x": x})[0], original.run(None, {"x": x})[0], atol=1e-5)
    small = edited.run(None, {"x": _photo((256, 320))})[0]  # the skip add holds: Resize follows the size
    assert small.shape == (1, 8, 128, 160)
    with pytest.raises(Exception):  # the file itself refuses another size: the edit is what makes it run
        original.run(None, {"x": _photo((256, 256))})
    assert m.describe()["input_sizes"]["stride"] == [4, 4]


def test_render_size_follows_the_receptive_field_and_is_recorded(unet):
    _, m = unet
    layer = m.layers[2].name  # relu after the second stride-2 conv: a 9 px field
    size, why = default_size(m, [layer])
    assert size == (224, 224) and "receptive field 9x9" in why
    res = render(m, obj.channel(layer, [0, 1]), steps=2, device="cpu")
    assert res.images.shape[-2:] == (224, 224)
    assert res.record["size"] == [224, 224] and "receptive field" in res.record["size_choice"]
    given = render(m, obj.channel(layer, [0]), steps=1, device="cpu", size=320)
    assert given.images.shape[-2:] == (320, 320) and given.record["size_choice"] == "given (--size)"


def test_a_fixed_head_keeps_its_size_and_the_backbone_goes_dynamic(tmp_path):
    m = onnxviz.load(_export(tmp_path, "gemm"), mean=(0.0,), std=(1.0,))
    assert "MatMul" in m.size_note and "fixed-size head" in m.size_note, m.size_note
    head = m.layers[-1]
    conv = m.layers[1]
    assert head.tensor in m.fixed_size_tensors and conv.tensor not in m.fixed_size_tensors
    assert rule_for(m, [head.name]).stride == (None, None)
    assert default_size(m, [head.name])[0] == (SIDE, SIDE)
    assert default_size(m, [conv.name])[0] == (224, 224)
    # the full model still runs at its own size after the edit
    out = Runner(m.proto, threads=1, input_name=m.input_name).run(_photo((SIDE, SIDE)))
    assert next(iter(out.values())).shape == (1, 4)


def test_a_constant_reshape_before_every_layer_keeps_the_file_fixed(tmp_path):
    m = onnxviz.load(_export(tmp_path, "reshape"), mean=(0.0,), std=(1.0,))
    assert m.size_note.startswith(f"kept at {SIDE}x{SIDE}") and "Reshape" in m.size_note, m.size_note
    assert m.input_rule.stride == (None, None)
    assert default_size(m, [m.layers[2].name])[0] == (SIDE, SIDE)


class Attention(nn.Module):
    """A conv, then attention over its positions with the shapes written as numbers at export (as
    Ultralytics' C2PSA: (B, C, H, W) -> (B, heads, d, H*W) and back), a residual add, and a dilated conv
    whose field (over 512 px) is what a render size is capped against."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Conv2d(3, 8, 3, stride=8, padding=1)
        self.far = nn.Conv2d(8, 8, 3, padding=40, dilation=40)

    def forward(self, x):
        a = F.relu(self.a(x))
        n, c, h, w = (int(v) for v in a.shape)
        q = a.reshape(n, 2, c // 2, h * w)
        att = torch.softmax(q.transpose(-1, -2) @ q, -1)
        y = (q @ att).reshape(n, c, h, w)
        return F.relu(self.far(a + y))


def test_attention_reshapes_written_as_numbers_follow_the_size_and_wide_fields_are_capped(tmp_path):
    path = tmp_path / "attention.onnx"
    torch.onnx.export(Attention().eval(), torch.rand(1, 3, SIDE, SIDE), str(path), dynamo=False, opset_version=17,
                      input_names=["x"])
    m = onnxviz.load(path, mean=(0.0,), std=(1.0,))
    assert "made dynamic" in m.size_note and not m.fixed_size_tensors, m.size_note
    out = Runner(m.proto, threads=1, input_name=m.input_name).run(_photo((320, 320)))
    assert next(iter(out.values())).shape == (1, 8, 40, 40)
    x = _photo((SIDE, SIDE))  # parity at the file's own size
    original = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.allclose(Runner(m.proto, threads=1, input_name=m.input_name).run(x)[m.proto.graph.output[0].name],
                       original, atol=1e-5)
    size, why = default_size(m, [m.layers[-1].name])  # field 8 * (2 * 40 + 1) + ... > 512 px
    assert size == (512, 512) and "capped at 512" in why, why


def test_a_reshaped_constant_does_not_stop_the_edit(tmp_path):
    """A Reshape of an initializer (YOLOX's anchor grid, exported by the dynamo exporter) is no map: the
    edit leaves it alone instead of failing on it."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(np.arange(4, dtype=np.float32), "grid"),
             numpy_helper.from_array(np.array([1, 4, 1, 1], np.int64), "shape")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Reshape", ["grid", "shape"], ["g"]),
             helper.make_node("Add", ["c", "g"], ["y"]), helper.make_node("Relu", ["y"], ["out"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, SIDE, SIDE])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], inits)
    path = tmp_path / "grid.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    m = onnxviz.load(path, mean=(0.0,), std=(1.0,))
    assert "made dynamic" in m.size_note, m.size_note


def test_a_batch_over_the_pixel_budget_runs_in_slices_with_the_same_outputs(unet, monkeypatch):
    from onnxviz.backends import ort as backend

    _, m = unet
    runner = Runner(m.proto, threads=1, input_name=m.input_name)
    x = np.concatenate([_photo((256, 256)), _photo((256, 256))[:, :, ::-1]] * 2)
    whole = runner.run(x)
    monkeypatch.setattr(backend, "MAX_PIXELS", 2 * 256 * 256)
    calls = []
    real = runner._run
    monkeypatch.setattr(runner, "_run", lambda xs, names, feeds=None: calls.append(len(xs)) or real(xs, names, feeds))
    sliced = runner.run(x)
    assert calls == [2, 2]
    for k in whole:
        assert np.allclose(whole[k], sliced[k], atol=1e-6)


# ---------------------------------------------------------------------------- mining batches
@pytest.fixture(scope="module")
def digit_photos(digits_data, tmp_path_factory):
    from digits import save_digit

    images, labels = digits_data
    root = tmp_path_factory.mktemp("digit_photos")
    for i in range(40):
        save_digit(images[i], root / f"{i:03d}_{labels[i]}.png")
    return root


def _rows(run_dir):
    import sqlite3

    db = sqlite3.connect(run_dir / "mining" / "mining.sqlite")
    try:
        return db.execute("SELECT layer, unit, stat, dir, rank, image FROM examples ORDER BY 1, 2, 3, 4, 5").fetchall()
    finally:
        db.close()


def test_batch_shrinks_under_a_small_memory_budget_with_the_same_examples(digits_onnx, digit_photos, tmp_path,
                                                                          caplog):
    m = onnxviz.load(digits_onnx)
    names = [lay.name for lay in m.layers]
    need = batching.per_image(m, names)
    assert need > 0
    batch, note = batching.choose_batch(m, names, 32, memory=need * 5)
    assert batch == 5 and "instead of 32" in note
    assert batching.choose_batch(m, names, 32, memory=need * 64) == (32, "")
    kw = dict(top=3, bottom=2, batch_size=32, threads=1, progress=False, thumbs=False, spectrum=0)
    mine(m, digit_photos, tmp_path / "big", **kw)
    with caplog.at_level(logging.WARNING, logger="onnxviz"):
        mine(m, digit_photos, tmp_path / "small", memory=need * 5, **kw)
    assert any("mining batch 5 instead of 32" in r.getMessage() for r in caplog.records)
    assert _rows(tmp_path / "small") == _rows(tmp_path / "big")


def test_maps_that_cannot_fit_name_the_layers_that_do(digits_onnx):
    m = onnxviz.load(digits_onnx)
    peaks = batching.peak_bytes(m)
    first, last = m.layers[0], m.layers[-1]
    budget = peaks[first.tensor]
    assert peaks[last.tensor] > budget
    with pytest.raises(MiningError) as err:
        batching.choose_batch(m, [last.name], 8, memory=budget)
    text = str(err.value)
    assert "per image" in text and "--layers" in text and first.name in text and "\n" not in text


class _Tight:
    """A StatsRunner on a machine where onnxruntime cannot allocate more than 3 images of maps."""

    def __init__(self, runner):
        self.runner, self.layers, self.calls = runner, runner.layers, []

    def run(self, x, maps=False):
        self.calls.append(len(x))
        if len(x) > 3:
            raise RuntimeModelError("onnxruntime failed on an input of shape (8, 3, 16, 16): "
                                    "Failed to allocate memory for requested buffer of size 123456789")
        return self.runner.run(x, maps=maps)


def test_out_of_memory_halves_the_batch_and_gives_the_same_statistics(digits_onnx, digits_data, caplog):
    m = onnxviz.load(digits_onnx)
    x = m.prepare(digits_data[0][:8])
    runner = m.stats_runner(None, threads=1)
    tight = _Tight(runner)
    halving = batching.Halving(tight)
    with caplog.at_level(logging.WARNING, logger="onnxviz"):
        got = halving.run(x)
    want = runner.run(x)
    assert halving.chunk == 2 and any("retrying 2 at a time" in r.getMessage() for r in caplog.records)
    for name in want:
        for stat in want[name]:
            assert np.array_equal(got[name][stat], want[name][stat]), (name, stat)
    tight.calls.clear()
    halving.run(x)  # the smaller size sticks: no failing call first
    assert tight.calls == [2, 2, 2, 2]
    with pytest.raises(RuntimeModelError):  # other failures are not retried
        batching.Halving(_Broken(runner)).run(x)


class _Broken(_Tight):
    def run(self, x, maps=False):
        raise RuntimeModelError("onnxruntime failed: Non-zero status code returned while running Conv node")


class FullResolutionBody(nn.Module):
    """A super-resolution-like body: 64 channels at full resolution, no downsampling."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.head = nn.Conv2d(3, 64, 3, padding=1)
        self.body = nn.ModuleList(nn.Conv2d(64, 64, 3, padding=1) for _ in range(8))
        self.down = nn.Conv2d(64, 64, 3, stride=2, padding=1)

    def forward(self, x):
        x = F.relu(self.head(x))
        for conv in self.body:
            x = F.relu(conv(x))
        return F.relu(self.down(x))


def test_a_layer_that_costs_much_per_pixel_renders_under_the_floor(tmp_path):
    from onnxviz.optvis.render_size import RENDER_MACS, macs_per_pixel

    path = tmp_path / "body.onnx"
    torch.onnx.export(FullResolutionBody().eval(), torch.rand(1, 3, 64, 64), str(path), dynamo=False, opset_version=17,
                      input_names=["x"], dynamic_axes={"x": {2: "h", 3: "w"}})
    m = onnxviz.load(path, mean=(0.0,), std=(1.0,))
    relus = [lay.name for lay in m.layers if lay.op == "Relu"]  # one after each convolution
    first, last_body, down = relus[0], relus[8], relus[9]
    per_conv = 64 * 64 * 9
    assert macs_per_pixel(m, [first]) == 3 * 64 * 9
    assert macs_per_pixel(m, [last_body]) == 3 * 64 * 9 + 8 * per_conv
    assert macs_per_pixel(m, [down]) == 3 * 64 * 9 + 8 * per_conv + per_conv / 4  # a quarter of the positions
    assert default_size(m, [first])[0] == (224, 224)  # cheap: the floor holds
    size, why = default_size(m, [last_body])
    side = (RENDER_MACS / macs_per_pixel(m, [last_body])) ** 0.5
    assert size[0] == size[1] == int(np.ceil(side)) < 224, (size, why)
    assert "multiply-accumulates per pixel" in why
