"""uint8 pixels in, preprocessing in the graph (pixelfeed.py): the model must see the same input,
bit for bit, as from ``ModelMeta.to_model_input``, and mining must give the same examples."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import onnxviz
from onnxviz.backends.ort import Runner
from onnxviz.preprocessing.images import pixels_to_images
from onnxviz.preprocessing.meta import ModelMeta
from onnxviz.mining import MiningError, mine
from onnxviz.mining.mine import pixel_feed
from onnxviz.graph.pixelfeed import PIXELS, add_pixel_input, why_not
from digits import save_digit_folder


def _identity(shape, elem=TensorProto.FLOAT) -> onnx.ModelProto:
    """input -> Identity -> output: the session returns the model input the nodes in front computed."""
    x = helper.make_tensor_value_info("input", elem, shape)
    y = helper.make_tensor_value_info("output", elem, shape)
    g = helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "id", [x], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 7
    return m


CASES = [("NCHW", "RGB", (0.0, 1.0), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
         ("NCHW", "BGR", (0.0, 255.0), (103.939, 116.779, 123.68), (1.0, 1.0, 1.0)),
         ("NHWC", "RGB", (-1.0, 1.0), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)),
         ("NHWC", "BGR", (0.0, 1.0), (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)),
         ("NCHW", "L", (0.0, 1.0), (0.1307,), (0.3081,)),
         ("NHWC", "L", (0.0, 255.0), (0.0,), (1.0,))]


@pytest.mark.parametrize("elem", [TensorProto.FLOAT, TensorProto.FLOAT16])
@pytest.mark.parametrize("layout,order,value_range,mean,std", CASES)
def test_graph_preprocessing_is_bit_identical_to_to_model_input(layout, order, value_range, mean, std, elem):
    c = 1 if order == "L" else 3
    h, w = 5, 7
    meta = ModelMeta(input_size=(h, w), layout=layout, channel_order=order, value_range=value_range,
                     mean=mean, std=std)
    shape = ["n", c, h, w] if layout == "NCHW" else ["n", h, w, c]
    edited = add_pixel_input(_identity(shape, elem), "input", meta)
    onnx.checker.check_model(edited)
    assert [i.name for i in edited.graph.input] == [PIXELS]
    runner = Runner(edited, threads=1, input_name=PIXELS)
    assert runner.input_dtype == np.uint8
    px = np.random.default_rng(0).integers(0, 256, (4, h, w, 3), dtype=np.uint8)
    px[0, 0, 0] = (0, 128, 255)
    got = runner.session.run(None, {PIXELS: px})[0]
    want = meta.to_model_input(pixels_to_images(px))
    if elem == TensorProto.FLOAT16:
        want = want.astype(np.float16)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got.view(np.uint16 if elem == TensorProto.FLOAT16 else np.uint32),
                          want.view(np.uint16 if elem == TensorProto.FLOAT16 else np.uint32))


def test_inputs_that_cannot_take_pixels_say_why():
    meta = ModelMeta(input_size=(4, 4))
    assert why_not(_identity(["n", 3, 4, 4]), "input", meta) is None
    assert "UINT8" in why_not(_identity(["n", 3, 4, 4], TensorProto.UINT8), "input", meta)
    assert "rank 2" in why_not(_identity(["n", 48]), "input", meta)
    assert "4 channels" in why_not(_identity(["n", 4, 4, 4]), "input", meta)
    with pytest.raises(ValueError, match="rank 2"):
        add_pixel_input(_identity(["n", 48]), "input", meta)


def _rows(run_dir) -> list:
    db = sqlite3.connect(Path(run_dir) / "mining" / "mining.sqlite")
    try:
        return db.execute("SELECT * FROM examples ORDER BY layer, unit, stat, dir, rank").fetchall()
    finally:
        db.close()


def test_mining_with_pixels_equals_mining_with_floats(digits_onnx, digits_data, tmp_path):
    model = onnxviz.load(digits_onnx)
    (tmp_path / "digits").mkdir()
    folder = save_digit_folder(*digits_data, tmp_path / "digits", 40)
    assert pixel_feed(model, None) is True  # the default feeds pixels to this model
    runner = model.stats_runner(pixels=True)
    assert runner.runner.input_dtype == np.uint8 and runner.runner.input_name == PIXELS
    kw = dict(top=3, bottom=2, batch_size=8, threads=1, workers=2, progress=False, thumbs=False)
    a = mine(model, folder, tmp_path / "floats", pixels=False, **kw)
    b = mine(model, folder, tmp_path / "pixels", **kw)
    assert a.complete and b.complete and a.images == b.images == 40
    assert {"decoded batches", "inference", "pass 2", "examples table"} <= set(b.stages)
    rows = _rows(tmp_path / "pixels")
    assert len(rows) > 0 and rows == _rows(tmp_path / "floats")


def test_mining_a_model_that_cannot_take_pixels_says_why(tmp_path):
    path = tmp_path / "int_input.onnx"
    onnx.save(_identity(["n", 3, 8, 8], TensorProto.UINT8), str(path))
    model = onnxviz.load(path)
    assert pixel_feed(model, None) is False
    with pytest.raises(MiningError, match="cannot feed .* uint8 pixels: input 'input' is UINT8"):
        pixel_feed(model, True)


def test_fit_resizes_only_the_crop_and_matches_resize_then_crop():
    """Mining's decode resizes just the region the center crop keeps (Pillow's box): the same numbers as
    resizing the whole photo and cropping, up to rounding (at most 1, in under 1% of the values)."""
    from onnxviz.preprocessing.images import _RESAMPLE, _geometry, fit, imagenet_photos, open_rgb, sample_image_path

    photos = [sample_image_path()] + [p for p, _ in imagenet_photos()][:6]
    assert len(photos) >= 3
    for path in photos:
        img = open_rgb(path)
        for size, resize, interp in (((224, 224), 256, "bilinear"), ((96, 128), None, "bicubic")):
            nw, nh, left, top = _geometry(img.size, size, resize)
            full = img.resize((nw, nh), _RESAMPLE[interp]).crop((left, top, left + size[1], top + size[0]))
            got = np.asarray(fit(img, size, resize, interp)).astype(int)
            diff = np.abs(got - np.asarray(full).astype(int))
            assert got.shape == (size[0], size[1], 3)
            assert diff.max() <= 1 and (diff > 0).mean() < 0.01, (path, size, diff.max(), (diff > 0).mean())
