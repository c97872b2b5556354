"""The static site: pages, links, hostile names, and a real headless browser clicking through it."""
from __future__ import annotations

import json
import re
import shutil
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

import onnxviz
from onnxviz.paths import slug
from onnxviz.site import Example, MiningSource, UnsafePathError, build_site, make_server
from onnxviz.runs.render_jobs import render_missing
from onnxviz.site.build import SiteBuilder
from onnxviz.site.data import read_js_data

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


# --------------------------------------------------------------------------- inputs
def write_render(render_dir: Path, model_path, layer: str, unit, kind="channel", size=32, seed=0, **extra) -> Path:
    """One render output in the documented format (PNG + JSON in render/<layer_slug>/)."""
    d = render_dir / slug(layer)
    d.mkdir(parents=True, exist_ok=True)
    stem = f"{kind}-{unit if unit is not None else 'layer'}-s{seed}"
    rng = np.random.default_rng(abs(hash((layer, unit, seed))) % 2**32)
    Image.fromarray((rng.random((size, size, 3)) * 255).astype(np.uint8)).save(d / f"{stem}.png")
    target = f"{layer}:{unit}" if unit is not None else layer
    rec = dict(model=str(model_path), layer=layer, unit=unit, kind=kind, objective=f"{kind}({layer}, {unit})",
               image=f"{stem}.png", command=f"onnxviz render {model_path} {target} --seed {seed}", seed=seed,
               steps=8, size=size, activation_start=0.1, activation_end=2.0, activation_per_step=[0.1, 2.0])
    rec.update(extra)
    (d / f"{stem}.json").write_text(json.dumps(rec))
    return d / f"{stem}.png"


class StatsMining(MiningSource):
    """Dataset examples from the model's real channel statistics on real digits (what mining computes)."""

    command = "onnxviz mine digits.onnx --out runs/digits/mining"

    def __init__(self, model, images):
        self.images = images
        self.layers = tuple(l.name for l in model.layers)
        self.stats = model.channel_stats(model.prepare(images), list(self.layers))

    def scores(self, layer):
        return self.stats[layer]["max"].max(0)

    def examples(self, layer, unit, k):
        a = self.stats[layer]["max"][:, unit]
        order = np.argsort(-a, kind="stable")
        make = lambda i: Example(float(a[i]), image=self.images[i], crop=self.images[i][:, :8, :8], label=f"#{i}")
        return [make(i) for i in order[:k]], [make(i) for i in order[::-1][:k]]


def hostile_model(path) -> str:
    """A valid ONNX model whose node, tensor, graph and producer names are hostile."""
    X = helper.make_tensor_value_info("in<img src=x onerror=alert(1)>", TensorProto.FLOAT, ["N", 3, 8, 8])
    Y = helper.make_tensor_value_info("../../evil_out", TensorProto.FLOAT, ["N", 4])
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w\"'><b>")
    w2 = numpy_helper.from_array(rng.normal(size=(4, 4, 3, 3)).astype(np.float32), "w2")
    nodes = [
        helper.make_node("Conv", [X.name, w.name], ["conv_out"], name="/evil/Conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv_out"], ["../../x"], name="<script>alert(1)</script>"),
        helper.make_node("Conv", ["../../x", "w2"], ["c2"], name="/../../../etc/Conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["/etc/passwd"], name="..\\..\\win"),
        helper.make_node("GlobalAveragePool", ["/etc/passwd"], ["gap\"onmouseover=\"alert(2)"], name="gap<svg onload=alert(3)>"),
        helper.make_node("Flatten", ["gap\"onmouseover=\"alert(2)"], [Y.name], name="flat"),
    ]
    graph = helper.make_graph(nodes, "g</title><script>alert(4)</script>", [X], [Y], [w, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="<script>alert(5)</script>")
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


# --------------------------------------------------------------------------- helpers
class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.scripts = [], []

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("href", "src") and v is not None:
                self.links.append((tag, v))


def page_links(page: Path) -> list:
    p = _Links()
    p.feed(page.read_text(encoding="utf-8"))
    return p.links


def check_links(site: Path) -> int:
    """Every href/src of every page is relative and points at an existing file inside the site."""
    n = 0
    root = site.resolve()
    for page in site.rglob("*.html"):
        for tag, url in page_links(page):
            parts = urlsplit(url)
            if url.startswith("data:") or url.startswith("#"):
                continue
            assert not parts.scheme and not parts.netloc and not url.startswith("/"), f"{page}: absolute link {url}"
            target = (page.parent / parts.path).resolve()
            assert target.is_relative_to(root), f"{page}: {url} leaves the site"
            assert target.is_file(), f"{page}: broken link {url}"
            n += 1
    return n


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def digits_site(digits_onnx, digits_data, tmp_path_factory):
    """The digits CNN site: some units rendered (plus a deepdream and a caricature), all layers mined."""
    tmp = tmp_path_factory.mktemp("site")
    runs = tmp / "runs"
    m = onnxviz.load(digits_onnx)
    first = m.layers[0].name
    for u in (0, 1, 3):
        write_render(runs / "render", digits_onnx, first, u)
    write_render(runs / "render", digits_onnx, first, 1, kind="diversity", seed=1, activation_end=1.0)
    write_render(runs / "render", digits_onnx, first, None, kind="deepdream")
    write_render(runs / "render", digits_onnx, first, None, kind="caricature", activation_end=None)
    last = m.layers[-1].name
    assert render_missing(m, runs, layers=[last], steps=8, model_arg="digits.onnx", progress=False) == m.layers[-1].units
    mining = StatsMining(m, digits_data[0][:120])
    out = tmp / "site"
    build_site(m, out, runs, mining=mining, page_size=12, examples_per_unit=4, model_arg="digits.onnx", run_arg="runs/d")
    return dict(out=out, model=m, runs=runs, mining=mining, first=first, last=last)


def layer_data(out: Path, layer_slug: str) -> dict:
    """The layer's data.js (``window.ONNXVIZ_LAYER = JSON.parse("...");``) as a dict."""
    path = out / "layers" / layer_slug / "data.js"
    assert "<" not in path.read_text()
    return read_js_data(path)


def unit_command(data: dict, which: str, unit: int) -> str:
    return data["tmpl"][which].replace(data["mark"], str(unit))


# --------------------------------------------------------------------------- tests
def test_pages_exist_and_links_resolve(digits_site):
    out, m = digits_site["out"], digits_site["model"]
    index = (out / "index.html").read_text()
    for layer in m.layers:
        s = slug(layer.name)
        assert f'href="layers/{s}/index.html"' in index
        for name in ("index.html", "unit.html", "data.js"):
            assert (out / "layers" / s / name).is_file()
        assert not (out / "layers" / s / "units").exists()  # no page per unit
        assert len(layer_data(out, s)["units"]) == layer.units
    assert check_links(out) > 20
    # model facts: opset, input, preprocessing from the metadata
    assert "ai.onnx 17" in index and "16×16" in index and "digits_cnn" in index
    assert re.search(r"Channel order</th><td>L<", index)


def test_one_unit_page_and_one_data_file_per_layer(digits_site):
    out, m = digits_site["out"], digits_site["model"]
    pages = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.html"))
    assert len(pages) == 1 + 2 * len(m.layers)  # model page + (layer page, unit page) per layer
    assert len(list(out.rglob("*.js"))) == len(m.layers) + 2  # data.js per layer + site.js + unit.js
    layer = next(l for l in m.layers if l.units == 32)
    page = (out / "layers" / slug(layer.name) / "index.html").read_text()
    assert 'id="grid"' in page and 'src="data.js"' in page and "step: 12" in page  # page_size: units drawn per step
    unit = (out / "layers" / slug(layer.name) / "unit.html").read_text()
    assert 'src="data.js"' in unit and "static/unit.js" in unit and 'href="index.html"' in unit


def test_rebuild_removes_what_an_older_build_left(digits_site, tmp_path):
    """A rebuild over an old site (a page per unit, images since deleted) equals a fresh build,
    and files the builder does not own stay."""
    import shutil

    out, m = tmp_path / "site", digits_site["model"]
    shutil.copytree(digits_site["out"], out)
    fresh = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    s = slug(digits_site["first"])
    stale = [out / "layers" / s / "units" / "3.html", out / "img" / s / "old.png", out / "static" / "old.css"]
    for f in stale:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("stale")
    (out / "NOTES.txt").write_text("mine")
    build_site(m, out, digits_site["runs"], mining=digits_site["mining"], page_size=12, examples_per_unit=4,
               model_arg="digits.onnx", run_arg="runs/d")
    assert not any(f.exists() for f in stale) and not (out / "layers" / s / "units").exists()
    assert (out / "NOTES.txt").read_text() == "mine"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(fresh + ["NOTES.txt"])


def test_unit_data_renders_examples_ratio_and_commands(digits_site):
    out, first, mining = digits_site["out"], digits_site["first"], digits_site["mining"]
    data = layer_data(out, slug(first))
    d = data["detail"][1]
    assert [p["k"] for p in d["p"]] == ["channel", "diversity"]
    assert [p["k"] for p in data["caricatures"]] == ["caricature"]
    cmds = [data["cmds"][p["c"]] for p in d["p"]]
    assert cmds[0].endswith(f"{first}:1 --seed 0") and cmds[1].endswith(f"{first}:1 --seed 1")  # each picture's command
    best = float(mining.stats[first]["max"][:, 1].max())
    assert d["p"][0]["r"] == pytest.approx(2.0 / best, rel=1e-2) and d["best"] == pytest.approx(best, rel=1e-3)
    assert len(d["t"]) == 4 and len(d["b"]) == 4
    assert [e[1] for e in d["t"]] == pytest.approx(sorted(mining.stats[first]["max"][:, 1], reverse=True)[:4], rel=1e-3)
    for e in d["t"] + d["b"]:
        assert (out / data["images"][e[0]][0]).is_file() and (out / e[4]).is_file()  # the image and its crop
    assert data["mine"] == "onnxviz mine digits.onnx --out runs/digits/mining"
    # an unrendered unit: no pictures, and the exact render command from the layer's template
    assert "p" not in data["detail"][2]
    assert unit_command(data, "render", 2) == f"onnxviz render digits.onnx {first}:2 --run runs/d"
    assert unit_command(data, "maco", 2) == \
        f"onnxviz render digits.onnx {first}:2 --param maco --run runs/d"


def test_real_renders_from_the_render_api(digits_site):
    """The last layer was rendered with the render API (--render-missing): real images, real activations."""
    out, last, mining, runs = digits_site["out"], digits_site["last"], digits_site["mining"], digits_site["runs"]
    rec = json.loads((runs / "render" / slug(last) / "channel_7.json").read_text())
    assert rec["layer"] == last and rec["unit"] == 7 and rec["kind"] == "channel" and rec["steps"] == 8
    assert rec["activation_end"] > rec["activation_start"]  # the optimization did something
    data = layer_data(out, slug(last))
    p = data["detail"][7]["p"][0]
    assert data["cmds"][p["c"]] == (f"onnxviz render digits.onnx --layer {last} --units 0,1,2,3,4,5,6,7,8,9 "
                                    f"--batch-size 16 --steps 8 --seed 0 --lr 0.05 --run {runs}")
    best = float(mining.stats[last]["max"][:, 7].max())
    assert p["r"] == pytest.approx(rec["activation_end"] / best, rel=1e-2)
    assert data["units"][7][3] == "7"  # class label of a logit unit, from the metadata
    assert all(u[2] for u in data["units"])  # every unit has its thumbnail
    with Image.open(out / "img" / slug(last) / "channel_7.png") as im:
        assert im.size == (16, 16) and np.asarray(im).std() > 0
    with Image.open(out / data["units"][7][2]) as im:
        assert im.size == (16, 16)  # a 16 px render is not blown up to the card's size: the browser scales it


def test_render_cli_outputs(digits_onnx, digits_data, tmp_path):
    """What `onnxviz render` writes (a DeepDream, diverse images, a caricature) shows up on the pages."""
    from onnxviz.cli import main
    from onnxviz.preprocessing.images import sample_image_path

    m = onnxviz.load(digits_onnx)
    layer = m.layers[1].name
    render_out = tmp_path / "runs" / "render"
    photo = str(sample_image_path())
    for args in (["--deepdream", layer, "--image", photo], [f"{layer}:5", "--diversity", "2"],
                 ["--caricature", layer, "--image", photo]):
        res = CliRunner().invoke(main, ["render", str(digits_onnx), *args, "--steps", "4", "--out", str(render_out),
                                        "--no-progress"])
        assert res.exit_code == 0, res.output
    out = tmp_path / "site"
    build_site(m, out, tmp_path / "runs", mining=StatsMining(m, digits_data[0][:50]), examples_per_unit=2)
    s = slug(layer)
    data = layer_data(out, s)
    pics = data["detail"][5]["p"]
    assert [p["k"] for p in pics] == ["diversity", "diversity"] and "--diversity 2" in data["cmds"][pics[0]["c"]]
    assert all("r" in p for p in pics)  # × best example
    assert "--caricature" in data["cmds"][data["caricatures"][0]["c"]]
    assert "p" not in data["detail"][4]
    index = (out / "index.html").read_text()
    assert f'src="img/{s}/layer.png"' in index  # the DeepDream is the layer's thumbnail
    layer_page = (out / "layers" / s / "index.html").read_text()
    assert "<b>deepdream</b>" in layer_page and "DeepDream of a photo" not in layer_page
    assert check_links(out) > 10


def test_real_mining_results(digits_onnx, digits_data, tmp_path):
    """`onnxviz.mining.mine` over a folder of real digit images: its examples go into the layer's data."""
    from onnxviz import mining
    photos = tmp_path / "photos"
    photos.mkdir()
    images = digits_data[0][:40]
    for i, im in enumerate(images):
        Image.fromarray((im.transpose(1, 2, 0) * 255).astype(np.uint8)).resize((32, 32)).save(photos / f"d{i:03d}.png")
    runs = tmp_path / "runs"
    mining.mine(str(digits_onnx), str(photos), out=str(runs), top=3, bottom=3, batch_size=16, progress=False)
    m = onnxviz.load(digits_onnx)
    out = tmp_path / "site"
    build_site(m, out, runs, examples_per_unit=3)
    res = mining.open_results(runs)
    layer = m.layers[0].name
    top = res.examples(layer, 2, stat="mean", direction="top", k=3)
    data = layer_data(out, slug(layer))
    d = data["detail"][2]
    assert len(d["t"]) == 3 and len(d["b"]) == 3
    assert d["t"][0][1] == pytest.approx(top[0].activation, rel=1e-3)
    assert data["images"][d["t"][0][0]][1] == top[0].label
    # crops of conv-layer examples: a box of the shared image (the browser zooms into it), not a file per unit
    assert d["t"][0][2] == [round(v) for v in top[0].input_box] and d["t"][0][3] == list(top[0].position)
    assert data["frame"] == [16, 16] and len(d["t"][0]) == 4
    assert len({e[0] for e in d["t"] + d["b"]}) <= len(data["images"]) <= 40  # each photo listed once
    assert len(list((out / "img" / "ex").glob("*.jpg"))) <= 40  # and stored once for the whole site
    assert f"onnxviz mine {digits_onnx} {photos}" in data["mine"] and "--top 3 --bottom 3" in data["mine"]
    np.testing.assert_allclose([u[1] for u in data["units"]], res.scores(layer, "mean"), rtol=1e-3)
    assert check_links(out) > 10


def test_layer_grid_thumbnails_and_scores(digits_site):
    out, first, mining = digits_site["out"], digits_site["first"], digits_site["mining"]
    data = layer_data(out, slug(first))
    scores = [u[1] for u in data["units"]]
    np.testing.assert_allclose(scores, mining.stats[first]["max"].max(0), rtol=1e-3)
    thumbs = [u[2] for u in data["units"]]
    assert [bool(t) for t in thumbs[:4]] == [True, True, False, True]
    assert thumbs[1].endswith("channel-1-s0.png")  # the plain render, not the diverse one
    with Image.open(out / thumbs[0]) as im:
        assert max(im.size) <= 144  # stored no larger than the card shows it
    index = (out / "index.html").read_text()
    assert f'src="img/{slug(first)}/layer.png"' in index  # the deepdream thumbnail of the layer
    with Image.open(out / "img" / slug(first) / "layer.png") as im:
        assert im.size == (64, 64)


def test_hostile_names_escaped_and_contained(tmp_path):
    path = hostile_model(tmp_path / "hostile.onnx")
    m = onnxviz.load(path)
    runs = tmp_path / "runs"
    layer = next(l for l in m.layers if "script" in l.node)
    write_render(runs / "render", path, layer.name, 0)
    # a render record that tries to read a file outside its folder, and one for a layer that does not exist
    evil = runs / "render" / slug(layer.name) / "evil.json"
    evil.write_text(json.dumps(dict(layer=layer.name, unit=1, kind="channel", image="../../../../secret.png",
                                    command="<script>alert(6)</script>")))
    (tmp_path / "secret.png").write_bytes((runs / "render" / slug(layer.name) / "channel-0-s0.png").read_bytes())
    # an accentuation whose photo and importance map point outside the run: never copied into the site
    write_render(runs / "render", path, layer.name, 1, kind="accentuation", photo=str(tmp_path / "secret.png"),
                 importance="../../../secret.png")
    out = tmp_path / "deep" / "site"
    before = {p for p in tmp_path.rglob("*")}
    build_site(m, out, runs, page_size=2)
    created = {p for p in tmp_path.rglob("*")} - before - {tmp_path / "deep"}
    assert created and all(p.resolve().is_relative_to(out.resolve()) for p in created)
    assert not (tmp_path / "x").exists() and not (tmp_path / "deep" / "x").exists()
    for page in out.rglob("*.html"):
        text = page.read_text()
        assert "<script>alert" not in text and "<svg" not in text and "<img src=x" not in text, page
        assert 'onmouseover="' not in text and "'><b>" not in text
        assert "secret" not in text and "alert(6)" not in text
    for js in out.rglob("*.js"):
        assert "<" not in js.read_text() or js.parent.name == "static"
        assert "secret" not in js.read_text()
    data = layer_data(out, slug(layer.name))
    assert data["detail"][1]["x"][0].get("ph") is None and "imp" not in data["detail"][1]["x"][0]
    index = (out / "index.html").read_text()
    assert "&lt;script&gt;alert(1)" in index  # the name is shown, escaped
    assert check_links(out) > 10
    builder = SiteBuilder(m, out)
    with pytest.raises(UnsafePathError):
        builder.path("../../x.html")
    with pytest.raises(UnsafePathError):
        builder.path("/etc/passwd")


def test_cli_site_and_server(digits_site, digits_onnx, tmp_path):
    from onnxviz.cli import main

    out = tmp_path / "cli_site"
    res = CliRunner().invoke(main, ["site", str(digits_onnx), "--runs", str(digits_site["runs"]), "--out", str(out),
                                    "--page-size", "64", "--examples", "2"])
    assert res.exit_code == 0, res.output
    assert (out / "index.html").is_file() and (out / "static" / "style.css").is_file()
    assert (out / "layers" / slug(digits_site["first"]) / "unit.html").is_file()
    server = make_server(out, port=0, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        import urllib.request
        import urllib.error

        base = f"http://127.0.0.1:{server.server_port}/"
        with urllib.request.urlopen(base + "index.html") as r:
            assert r.status == 200 and b"onnxviz" in r.read()
        with urllib.request.urlopen(base + f"layers/{slug(digits_site['first'])}/unit.html?u=3") as r:
            assert r.status == 200
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(base + "../../etc/passwd")
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(base + "layers/")  # no directory listings
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------- browser
def _browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not installed (run scripts/install_browser.sh)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")
    return sync_api


def watch_errors(page, errors: list, console: bool = True) -> None:
    """Collect the page's script errors, failed requests and (optionally) console errors in ``errors``."""
    if console:
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("requestfailed", lambda req: errors.append(f"failed: {req.url}"))


@pytest.fixture()
def served(request):
    servers = []

    def serve(directory):
        server = make_server(directory, port=0, quiet=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/"

    yield serve
    for s in servers:
        s.shutdown()
        s.server_close()


def _all_images_loaded(page) -> None:
    page.wait_for_load_state("networkidle")
    page.evaluate("() => Promise.all([...document.images].map(i => { i.loading = 'eager'; return i.decode().catch(() => null); }))")
    broken = page.evaluate("() => [...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
    assert broken == [], f"images not loaded on {page.url}: {broken}"


@pytest.mark.browser
def test_browser_click_through(digits_site, served, tmp_path):
    sync_api = _browser()
    out, first = digits_site["out"], digits_site["first"]
    base = served(out)
    errors, dialogs = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            watch_errors(page, errors)
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.goto(base + "index.html")
            _all_images_loaded(page)
            assert page.locator("table.layers tbody tr").count() == len(digits_site["model"].layers)
            page.screenshot(path=str(tmp_path / "model.png"), full_page=True)
            page.click(f"td.lname a:text-is('{first}')")
            page.wait_for_url(f"**/layers/{slug(first)}/index.html")
            page.wait_for_selector("body[data-ready='1']")
            _all_images_loaded(page)
            assert page.locator("#grid .card").count() == 16  # 16 units: all fit on the screen
            assert page.locator(".crumbs a").first.inner_text() == "digits_cnn"
            # sort by top activation: the first card is the unit with the highest score
            page.select_option("#sort", "score-desc")
            best = int(np.argmax(digits_site["mining"].stats[first]["max"].max(0)))
            assert page.locator("#grid .card").first.get_attribute("data-unit") == str(best)
            # search by unit number
            page.select_option("#sort", "index")
            page.fill("#filter", "15")
            assert page.locator("#grid .card").count() == 1 and "1 of 16 units" in page.inner_text("#count")
            page.fill("#filter", "")
            page.check("#rendered-only")
            assert page.locator("#grid .card").count() == 3
            _all_images_loaded(page)
            page.screenshot(path=str(tmp_path / "layer.png"), full_page=True)
            page.click("#grid .card[data-unit='1']")
            page.wait_for_url(f"**/layers/{slug(first)}/unit.html?u=1")
            page.wait_for_selector("body[data-ready='1']")
            _all_images_loaded(page)
            assert page.locator(".cell-fft img").count() == 1 and page.locator("#more .pic.big").count() == 1
            assert page.locator("#caricatures .pic.big").count() == 1
            assert page.locator(".ex img").count() == 16  # 4 + 4 examples: crop and whole image each
            assert "× best example" in page.inner_text(".cell-fft") and "not checked" in page.inner_text(".cell-fft .badge")
            assert page.title().startswith(f"{first}:1 ")
            page.screenshot(path=str(tmp_path / "unit.png"), full_page=True)
            page.click("a#next")
            page.wait_for_url("**/unit.html?u=2")
            page.wait_for_selector("body[data-ready='1']")
            assert "No FFT render" in page.inner_text(".cell-fft")
            assert f"onnxviz render digits.onnx {first}:2 --run runs/d" in page.inner_text(".cell-fft")
            page.click(".crumbs a >> nth=1")
            page.wait_for_url(f"**/layers/{slug(first)}/index.html")
            page.wait_for_selector("body[data-ready='1']")
            page.goto(base + f"layers/{slug(first)}/index.html?rendered=1")  # a link that keeps the view
            page.wait_for_selector("body[data-ready='1']")
            assert page.is_checked("#rendered-only") and page.locator("#grid .card").count() == 3
            page.fill("#filter", "7")
            page.press("#filter", "Enter")  # Enter on a unit number opens its page
            page.wait_for_url("**/unit.html?u=7")
            page.wait_for_selector("body[data-ready='1']")
            _all_images_loaded(page)
            page.goto(base + f"layers/{slug(first)}/unit.html?u=99")
            assert "No unit 99" in page.inner_text("#nounit")
        finally:
            browser.close()
    assert errors == [] and dialogs == []
    if (shots := Path(__file__).parent.parent / "site_screenshots").is_dir():  # opt-in: keep the screenshots
        for f in tmp_path.glob("*.png"):
            shutil.copy(f, shots / f.name)


@pytest.mark.browser
@pytest.mark.slow
def test_browser_hostile_site_runs_no_script(tmp_path, served):
    sync_api = _browser()
    path = hostile_model(tmp_path / "hostile.onnx")
    m = onnxviz.load(path, labels=[f"<img src=x onerror=alert({i})>" for i in range(4)])  # labels are untrusted too
    runs = tmp_path / "runs"
    for layer in m.layers:
        write_render(runs / "render", path, layer.name, 0, objective="<img src=x onerror=alert(7)>")
    out = tmp_path / "site"
    build_site(m, out, runs, page_size=2)
    base = served(out)
    dialogs, errors = [], []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            pages = [base + p.relative_to(out).as_posix() for p in out.rglob("*.html")]
            for url in pages:
                page.goto(url)
                if "unit.html" in url or "layers/" in url:
                    page.wait_for_selector("body[data-ready='1']")
                _all_images_loaded(page)
                page.mouse.move(10, 10)
                page.hover("h1")
            page.goto(pages[0])
            page.goto(base + "index.html")
            page.click("td.lname a >> nth=0")
            page.fill("#filter", "0")  # the JS-built grid, too
            assert page.locator("#grid .card").count() == 1
            assert "<script>alert(1)" in page.inner_text("h1") or "<script>alert(1)" in page.inner_text(".crumbs")
            last = slug(m.layers[-1].name)
            page.goto(base + f"layers/{last}/index.html")
            page.fill("#filter", "onerror")  # search by label
            assert page.locator("#grid .card").count() == 4
            assert page.locator("#grid .card .label").first.inner_text() == "<img src=x onerror=alert(0)>"
            page.goto(base + f"layers/{last}/unit.html?u=0")
            page.wait_for_selector("body[data-ready='1']")
            assert page.inner_text("#unitlabel") == "<img src=x onerror=alert(0)>"
            assert "<img src=x onerror=alert(7)>" in page.inner_text(".cell-fft")
        finally:
            browser.close()
    assert dialogs == [] and errors == []
