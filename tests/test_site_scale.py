"""The site at scale and the unit view's trust row.

- A layer of 1,280 units (a real ONNX graph mined over real digit images; ImageNet labels on its
  1,000-unit head): one data file per layer, no page per unit, search by number and by label, and
  a unit's page with its examples, from file:// in headless Chromium.
- The trust row of issue 12: an FFT render and a MACO render checked against a mining run
  (reliability badges), MACO's importance map, accentuations of the top examples, and the commands
  that make what is missing, all made by the real API on the digits CNN.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

import onnxviz
from onnxviz.preprocessing.meta import ModelMeta
from onnxviz.paths import slug
from onnxviz.site import build_site
from test_site import CHROMIUM, CHROMIUM_ARGS, _browser, check_links, layer_data, watch_errors
from digits import save_digit

WIDE = 1280
LABELS = (Path(onnxviz.__file__).parent / "zoo" / "data" / "imagenet_labels.txt").read_text().splitlines()


def wide_model(path) -> str:
    """3x16x16 -> Conv 3x3 to 1,280 channels -> Relu -> GlobalAveragePool -> Flatten -> Gemm to 1,000
    labelled logits."""
    rng = np.random.default_rng(0)
    X = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 16, 16])
    Y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])
    inits = [numpy_helper.from_array(rng.normal(size=(WIDE, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(size=(WIDE,)).astype(np.float32) * 0.1, "b"),
             numpy_helper.from_array(rng.normal(size=(1000, WIDE)).astype(np.float32) * 0.05, "fc_w"),
             numpy_helper.from_array(np.zeros(1000, np.float32), "fc_b")]
    nodes = [helper.make_node("Conv", ["image", "w", "b"], ["conv"], name="/wide/Conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["conv"], ["wide"], name="/wide/Relu"),
             helper.make_node("GlobalAveragePool", ["wide"], ["pool"], name="/pool/GlobalAveragePool"),
             helper.make_node("Flatten", ["pool"], ["flat"], name="/Flatten"),
             helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], name="/fc/Gemm", transB=1)]
    model = helper.make_model(helper.make_graph(nodes, "wide", [X], [Y], inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    ModelMeta(input_size=(16, 16), labels=LABELS, name="wide").write_to(model)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def _photos(images, folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(images[:n]):
        save_digit(im, folder / f"digit_{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def wide_site(digits_data, tmp_path_factory):
    from onnxviz.mining import mine

    tmp = tmp_path_factory.mktemp("wide")
    path = wide_model(tmp / "wide.onnx")
    m = onnxviz.load(path)
    runs = tmp / "runs"
    mine(m, _photos(digits_data[0], tmp / "photos", 16), runs, top=3, bottom=3, batch_size=16, threads=1, workers=1,
         progress=False)
    out = tmp / "site"
    build_site(m, out, runs, examples_per_unit=3)
    wide = next(lay for lay in m.layers if lay.units == WIDE and len(lay.shape) == 4)
    head = m.layers[-1]
    assert head.units == 1000
    return dict(out=out, model=m, runs=runs, wide=wide.name, head=head.name)


def test_wide_layer_is_one_data_file_not_a_page_per_unit(wide_site):
    from onnxviz.mining import open_results

    out, m = wide_site["out"], wide_site["model"]
    pages = list(out.rglob("*.html"))
    assert len(pages) == 1 + 2 * len(m.layers)  # not 1,280 + 1,000 unit pages
    data = layer_data(out, slug(wide_site["wide"]))
    assert len(data["units"]) == len(data["detail"]) == WIDE
    res = open_results(wide_site["runs"])
    for u in (0, 1234, WIDE - 1):
        top = res.examples(wide_site["wide"], u, direction="top", k=3)
        d = data["detail"][u]
        assert [e[1] for e in d["t"]] == pytest.approx([e.activation for e in top], rel=1e-3)
        assert [data["images"][e[0]][1] for e in d["t"]] == [e.label for e in top]
    assert len(data["images"]) <= 16 and len(list((out / "img" / "ex").iterdir())) <= 16  # each photo once
    head = layer_data(out, slug(wide_site["head"]))
    assert head["units"][207][3] == "golden retriever"
    assert check_links(out) > 5


@pytest.mark.browser
def test_browser_wide_layer_search_and_unit_from_file_url(wide_site):
    sync_api = _browser()
    out = wide_site["out"].resolve()
    errors = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            watch_errors(page, errors)
            page.goto((out / "layers" / slug(wide_site["wide"]) / "index.html").as_uri())  # file://, no server
            page.wait_for_selector("body[data-ready='1']")
            drawn = page.locator("#grid .card").count()
            assert 0 < drawn < WIDE  # only the rows in view (and a few more) exist
            assert "1280 units" in page.inner_text("#count")
            page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
            page.wait_for_selector("#grid .card[data-unit='1279']")  # the last unit is drawn when scrolled to
            page.fill("#filter", "1234")  # search by unit number
            assert page.locator("#grid .card").count() == 1
            page.click("#grid .card[data-unit='1234']")
            page.wait_for_url("**/unit.html?u=1234")
            page.wait_for_selector("body[data-ready='1']")
            assert page.locator(".ex").count() == 6  # 3 top and 3 bottom examples
            page.wait_for_function(
                "[...document.querySelectorAll('.ex img')].every(i => i.complete && i.naturalWidth > 0)")
            assert page.locator(".cropview").count() == 6  # the receptive field, zoomed from the shared photo
            page.goto((out / "layers" / slug(wide_site["head"]) / "index.html").as_uri())
            page.wait_for_selector("body[data-ready='1']")
            page.fill("#filter", "golden retr")  # search by label
            assert page.locator("#grid .card").count() == 1
            assert page.locator("#grid .card").get_attribute("data-unit") == "207"
            page.fill("#filter", "#207")
            page.press("#filter", "Enter")
            page.wait_for_url("**/unit.html?u=207")
            page.wait_for_selector("body[data-ready='1']")
            assert page.inner_text("#unitlabel") == "golden retriever"
        finally:
            browser.close()
    assert errors == []


# --------------------------------------------------------------------------- the trust row (issue 12)
@pytest.fixture(scope="module")
def trust_site(digits_onnx, digits_data, tmp_path_factory):
    from onnxviz.mining import mine
    from onnxviz.runs import render_jobs as R
    from onnxviz.runs.accentuations import accentuate

    tmp = tmp_path_factory.mktemp("trust")
    m = onnxviz.load(digits_onnx)
    runs = tmp / "runs"
    mine(m, _photos(digits_data[0], tmp / "photos", 40), runs, top=4, bottom=2, batch_size=16, threads=1, workers=1,
         progress=False)
    layer = "relu_2"  # the last conv layer (8x8): its examples have receptive fields
    assert m.layer(layer).units == 32
    kw = dict(out=runs / "render", model_arg="digits.onnx", steps=8, progress=False)
    R.target(m, f"{layer}:2", runs=runs, **kw)  # FFT, with the reliability check against the run
    R.target(m, f"{layer}:2", param="maco", runs=runs, **kw)  # MACO: importance map + reliability
    R.target(m, f"{layer}:3", **kw)  # FFT, not checked
    accentuate(m, f"{layer}:2", runs=runs, k=2, **kw)
    out = tmp / "site"
    build_site(m, out, runs, examples_per_unit=3, model_arg="digits.onnx", run_arg="runs/d")
    return dict(out=out, layer=layer, runs=runs)


def test_trust_row_data(trust_site):
    out, layer = trust_site["out"], trust_site["layer"]
    data = layer_data(out, slug(layer))
    d = data["detail"][2]
    fft = [p for p in d["p"] if p.get("param") != "maco"]
    maco = [p for p in d["p"] if p.get("param") == "maco"]
    assert len(fft) == 1 and len(maco) == 1
    rec = json.loads((trust_site["runs"] / "render" / slug(layer) / "channel_2_maco.json").read_text())
    assert maco[0]["rel"]["v"] == rec["reliability"]["verdict"] in ("pass", "suspect")
    assert maco[0]["rel"]["m"] == rec["reliability"]["meaning"] and fft[0]["rel"]["v"] in ("pass", "suspect")
    with Image.open(out / maco[0]["imp"]) as im:  # MACO's importance map, copied beside the render
        assert im.size == (16, 16)
    assert "--param maco" in data["cmds"][maco[0]["c"]]
    acc = d["x"]
    assert len(acc) == 2 and all(a["k"] == "accentuation" and a["acc"]["fd"] is not None for a in acc)
    assert all((out / a["ph"]).is_file() for a in acc)  # the top example it started from (inside the run)
    assert "--accentuate top --run " in data["cmds"][acc[0]["c"]]
    assert data["units"][2][2].endswith("channel_2.png")  # the grid shows the FFT render
    assert data["detail"][3]["p"][0].get("rel", {"v": "unknown"})["v"] == "unknown"  # rendered without a mining run
    assert data["tmpl"]["accentuate"].replace(data["mark"], "3") == \
        f"onnxviz render digits.onnx {layer}:3 --accentuate top --run runs/d"


@pytest.mark.browser
def test_browser_trust_row(trust_site, tmp_path):
    sync_api = _browser()
    out, layer = trust_site["out"].resolve(), trust_site["layer"]
    errors = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            watch_errors(page, errors, console=False)
            page.goto((out / "layers" / slug(layer) / "unit.html").as_uri() + "?u=2")
            page.wait_for_selector("body[data-ready='1']")
            page.wait_for_function(
                "[...document.querySelectorAll('#trust img')].every(i => i.complete && i.naturalWidth > 0)")
            assert page.locator(".cell-fft img").count() == 1
            assert page.locator(".cell-maco img").count() == 2  # the render and its importance map
            assert page.locator(".cell-acc img").count() == 4  # two photos, each with its accentuation
            # the row is side by side: FFT, then MACO, then the accentuations, on one line
            boxes = [page.locator(f".cell-{c}").bounding_box() for c in ("fft", "maco", "acc")]
            assert boxes[0]["x"] < boxes[1]["x"] < boxes[2]["x"] and abs(boxes[0]["y"] - boxes[2]["y"]) < 2
            for cell in ("fft", "maco"):
                badge = page.locator(f".cell-{cell} .badge")
                verdict = badge.get_attribute("data-verdict")
                assert verdict in ("pass", "suspect")
                text = {"pass": "trusted: drives the unit like natural images", "suspect": "suspect: "}[verdict]
                assert badge.inner_text().startswith(text) and "reliability score" in badge.get_attribute("title")
            page.screenshot(path=str(tmp_path / "trust.png"), full_page=True)
            page.goto((out / "layers" / slug(layer) / "unit.html").as_uri() + "?u=3")
            page.wait_for_selector("body[data-ready='1']")
            assert page.inner_text(".cell-fft .badge").startswith("not checked: run with --run")
            assert "--param maco --run runs/d" in page.inner_text(".cell-maco")
            assert "--accentuate top --run runs/d" in page.inner_text(".cell-acc")
        finally:
            browser.close()
    assert errors == []
    if (shots := Path(__file__).parent.parent / "site_screenshots").is_dir():
        for f in tmp_path.glob("*.png"):
            (shots / f.name).write_bytes(f.read_bytes())
