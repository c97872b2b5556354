"""Results show themselves in Jupyter: ``_repr_png_`` gives real PNG pictures of the result, ``_repr_html_``
a table with the result's names (escaped). Checked on the real small CNN trained on sklearn digits."""
from __future__ import annotations

import html
import io

import numpy as np
import pytest
from PIL import Image

import onnxviz
from onnxviz import attribution as A
from onnxviz import display
from onnxviz.mining import mine, open_results
from onnxviz.mining.results import Examples
from onnxviz.optvis import objectives as obj
from onnxviz.optvis import render
from onnxviz.preprocessing.images import to_pil
from digits import save_digit_folder

N = 24


def _png(data: bytes) -> Image.Image:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    im = Image.open(io.BytesIO(data))
    im.load()
    return im.convert("RGB")


def _cell(sheet: Image.Image, i: int, size: int, cell: int = 128, head: int = 0) -> np.ndarray:
    """Pixels of picture i (size x size, pasted centered in its cell) of a ``display.strip``."""
    x, y = 4 + i * (cell + 4) + (cell - size) // 2, head + 4 + (cell - size) // 2
    return np.asarray(sheet.crop((x, y, x + size, y + size)))


@pytest.fixture(scope="module")
def digits(digits_onnx):
    return onnxviz.load(digits_onnx)


@pytest.fixture(scope="module")
def run(digits, digits_data, tmp_path_factory):
    images, labels = digits_data
    folder = tmp_path_factory.mktemp("digits_display")
    save_digit_folder(images, labels, folder, N)
    out = tmp_path_factory.mktemp("run_display")
    mine(digits, folder, out, top=4, bottom=2, batch_size=8, threads=1, workers=1, progress=False,
         atlas_layers=["relu_2"], atlas_per_image=4, seed=0)
    return out


def test_render_result_png_shows_each_rendered_image(digits):
    r = render(digits, obj.channel("relu_2", [3, 5]), steps=2, size=16, seed=0, progress=False)
    sheet = _png(r._repr_png_())
    assert sheet.size == (2 * 132 + 4, 128 + 26 + 8)
    for i in range(2):  # the pictures in the strip are the rendered images, pixel for pixel
        assert np.array_equal(_cell(sheet, i, 16), np.asarray(to_pil(r.images[i]).convert("RGB")))


def test_model_html_is_the_layer_table(digits):
    page = digits._repr_html_()
    assert page.startswith("<table>") and "digits" in page
    for lay in digits.layers:
        assert f"<td style='text-align:left'>{lay.name}</td>" in page
    assert "<td style='text-align:left'>32</td>" in page  # relu_2's unit count
    assert "evidence" not in page  # the file's own metadata: nothing was inferred


def test_model_html_shows_the_evidence_of_inferred_preprocessing(digits_onnx, tmp_path):
    import onnx

    proto = onnx.load(digits_onnx)
    del proto.metadata_props[:]  # a foreign file: no onnxviz metadata, so the preprocessing is inferred
    onnx.save(proto, tmp_path / "foreign.onnx")
    m = onnxviz.load(tmp_path / "foreign.onnx")
    assert m.meta.evidence
    page = m._repr_html_()
    assert "evidence for the preprocessing" in page and html.escape(m.meta.evidence[0]) in page


def test_table_escapes_names_from_files():
    page = display.table(["layer"], [["<script>alert(1)</script>"]], caption="a & b")
    assert "<script>" not in page and "&lt;script&gt;" in page and "a &amp; b" in page


def test_mining_results_html_and_examples_png(run):
    r = open_results(run)
    page = r._repr_html_()
    assert f"{N} images" in page and "relu_2" in page and "incomplete" not in page
    ex = r.examples("relu_2", 5, k=3)
    assert isinstance(ex, Examples) and isinstance(ex, list) and len(ex) == 3
    sheet = _png(ex._repr_png_())
    assert sheet.size == (3 * 132 + 4, 16 + 128 + 26 + 8)  # a title line, three cells
    assert ex[0]._repr_png_() == ex[0].crop.read_bytes()
    crop = np.asarray(Image.open(ex[0].crop).convert("RGB"))
    h, w = crop.shape[:2]
    x, y = 4 + (128 - w) // 2, 16 + 4 + (128 - h) // 2
    assert np.array_equal(np.asarray(sheet.crop((x, y, x + w, y + h))), crop)
    assert Examples()._repr_png_() is None  # nothing to show: Jupyter falls back to the list's repr


def test_attribution_results_png(digits, digits_data, run):
    images, labels = digits_data
    gx = A.gradient_x_input(digits, images[:2], str(labels[0]))
    sheet = _png(gx._repr_png_())
    assert sheet.size == (4 * 132 + 4, 128 + 26 + 8)  # photo, heat map; photo, heat map
    assert np.array_equal(_cell(sheet, 2, 16), np.asarray(to_pil(images[1]).convert("RGB")))
    heat = _cell(sheet, 3, 16).astype(int)
    assert (heat[..., 0] != heat[..., 2]).any()  # red/blue evidence over the photo, not a gray copy

    la = A.layer_attribution(digits, images[:1], "fc:7", "relu_1")
    assert _png(la._repr_png_()).size == (132 + 4, 128 + 26 + 8)
    flat = A.LayerAttribution("gap", np.ones((1, 32), np.float32), np.ones((1, 32), np.float32), images[:1])
    assert flat._repr_png_() is None  # no positions to show: Jupyter falls back to the repr

    g = A.activation_grid(digits, images[0], "relu_2", size=16, steps=2, batch=64, max_cells=4, min_norm=0.0)
    assert _png(g._repr_png_()).size == g.picture().size

    a = A.build_atlas(digits, run, "relu_2", grid=3, method="pca", min_count=1, size=16, steps=2, batch=64)
    pic = _png(a._repr_png_())
    assert pic.size == (3 * 48, 3 * 48) and np.asarray(pic).std() > 0
