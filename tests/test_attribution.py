"""Attribution, activation grid, activation atlas and the spectrum sampler on the real digits CNN,
an NHWC/BGR/0..255 file, and (slow) the real pretrained MobileNetV2 on real labelled photos."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import onnxviz
from onnxviz import attribution as A
from onnxviz.errors import ObjectiveError, OnnxVizError
from onnxviz.mining import mine, merge_runs, open_results
from onnxviz.mining import spectrum as SP
from digits import save_digit_folder

N = 60


@pytest.fixture(scope="module")
def digits(digits_onnx):
    return onnxviz.load(digits_onnx)


@pytest.fixture(scope="module")
def folder(digits_data, tmp_path_factory):
    images, labels = digits_data
    root = tmp_path_factory.mktemp("digits_attr")
    save_digit_folder(images, labels, root, N)
    return root


@pytest.fixture(scope="module")
def run(digits, folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("run_atlas")
    s = mine(digits, folder, out, top=3, bottom=3, batch_size=16, threads=1, workers=1, progress=False,
             spectrum=N + 10, atlas_layers=["relu_2"], atlas_per_image=6, seed=3)
    assert s.complete
    return out


# ---------------------------------------------------------------------------- input attribution
def test_integrated_gradients_completeness_and_seeded_smoothing(digits, digits_data):
    images, labels = digits_data
    ig = A.integrated_gradients(digits, images[:3], str(labels[0]), steps=8, tolerance=0.01)
    assert ig.maps.shape == (3, 3, 16, 16)
    for rec in ig.record["images"]:  # the defining property, on the real trained net
        assert rec["complete"] and rec["completeness_error"] < 0.01
        assert abs(rec["attribution_sum"] - rec["target_difference"]) <= 0.01 * abs(rec["target_difference"])
    a = A.integrated_gradients(digits, images[:1], "fc:3", smooth=3, noise=0.1, seed=5, steps=8)
    b = A.integrated_gradients(digits, images[:1], "fc:3", smooth=3, noise=0.1, seed=5, steps=8)
    c = A.integrated_gradients(digits, images[:1], "fc:3", smooth=3, noise=0.1, seed=6, steps=8)
    assert np.array_equal(a.maps, b.maps) and not np.array_equal(a.maps, c.maps)
    assert a.record["images"][0]["completeness_error"] < 0.01 and a.record["method"].endswith("smoothgrad")
    g = A.gradient_x_input(digits, images[:2], "fc:3")
    assert g.heat.shape == (2, 16, 16) and np.isfinite(g.maps).all()


def test_true_class_evidence_beats_another_class(digits, digits_data):
    """Deleting the pixels IG credits to the true digit lowers its logit more than deleting the
    pixels credited to another digit (on held-in real digits, mean over 10 images)."""
    images, labels = digits_data
    view = digits.torch_view(["fc"])
    drops = {"true": [], "other": []}
    for i in range(10):
        x = images[i]
        for key, cls in (("true", labels[i]), ("other", (labels[i] + 5) % 10)):
            heat = A.integrated_gradients(digits, x, f"fc:{cls}", steps=16, tolerance=None).heat[0]
            mask = np.zeros(heat.size, bool)
            mask[np.argsort(-heat.ravel())[:40]] = True
            deleted = x * (1 - mask.reshape(1, 16, 16))
            with torch.no_grad():
                logits = view(torch.from_numpy(digits.prepare(np.stack([x, deleted]))))["fc"][:, labels[i]]
            drops[key].append(float(logits[0] - logits[1]))
    assert np.mean(drops["true"]) > np.mean(drops["other"])


# ---------------------------------------------------------------------------- layer attribution
def test_layer_attribution_is_exact_for_a_linear_head(digits, digits_data):
    images, labels = digits_data
    la = A.layer_attribution(digits, images[:4], "fc:7", "gap")
    assert la.attr.shape == (4, 32, 1, 1) and la.channels.shape == (4, 32)
    bias = digits.torch_module().state_dict()
    b = [v for k, v in bias.items() if k.endswith("bias") and v.numel() == 10][0][7].item()
    # the logit is linear in the pooled activations: activation x gradient sums to logit - bias exactly
    assert np.allclose(la.channels.sum(1), np.array(la.record["value"]) - b, atol=1e-4)
    sp = A.layer_attribution(digits, images[:2], "fc:7", "relu_1")
    assert sp.spatial.shape == (2, 16, 16)
    top = sp.top_channels(0, 3)
    assert top[0][1] >= top[1][1] >= top[2][1]
    with pytest.raises(ObjectiveError, match="before"):
        A.layer_attribution(digits, images[:1], "relu:2", "relu_2")


def test_head_module_equals_the_rest_of_the_model(digits):
    from onnxviz.attribution.head import head_module

    head = head_module(digits, "relu_2", "fc")
    x = torch.rand(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    v = digits.torch_view(["relu_2", "fc"])(x)
    assert torch.allclose(head(v["relu_2"]), v["fc"], atol=1e-5)


# ---------------------------------------------------------------------------- spectrum and atlas samples
def test_spectrum_is_exact_on_a_small_dataset_and_independent_of_batches_and_shards(digits, folder, run, tmp_path):
    r = open_results(run)
    src_images = digits.load_images(sorted(folder.glob("*.png")))
    means = digits.channel_stats(digits.prepare(src_images), ["relu_2"])["relu_2"]["mean"]
    spec = r.spectrum("relu_2", 5)
    assert [e["quantile"] for e in spec] == list(SP.QUANTILES)
    assert all(e["exact"] and e["rank_error"] == 0 for e in spec)
    vals = np.sort(means[:, 5])
    for e in spec:  # exact sample quantiles: the value at rank round(q (n - 1)) of the whole dataset
        assert e["value"] == pytest.approx(vals[int(round(e["quantile"] * (N - 1)))], rel=1e-5)
        assert e["key"].endswith(".png")
    assert [e["value"] for e in spec] == sorted(e["value"] for e in spec)
    # a sampled reservoir: pure updates give the same state whatever the batching or sharding
    stats = {"L": {"mean": means}}
    one = SP.update(SP.empty(16, seed=1), stats, np.arange(N))
    many = SP.empty(16, seed=1)
    for s in range(0, N, 7):
        many = SP.update(many, {"L": {"mean": means[s:s + 7]}}, np.arange(s, min(N, s + 7)))
    a = SP.update(SP.empty(16, seed=1), {"L": {"mean": means[::2]}}, np.arange(0, N, 2))
    b = SP.update(SP.empty(16, seed=1), {"L": {"mean": means[1::2]}}, np.arange(1, N, 2))
    for other in (many, SP.merge(b, a)):
        assert np.array_equal(one.index, other.index) and np.array_equal(one.values[("L", "mean")],
                                                                          other.values[("L", "mean")])
        assert other.seen == N
    q = SP.quantile_examples(one, "L", 5)
    assert not q[0]["exact"] and 0 < q[0]["rank_error"] < 1 and q[0]["sample"] == 16


def test_atlas_samples_are_the_real_activations_and_survive_shards(digits, folder, run, tmp_path):
    r = open_results(run)
    s = r.atlas_samples("relu_2")
    assert s["vectors"].shape == (N * 6, 32) and r.atlas_layers == ["relu_2"]
    files = sorted(folder.glob("*.png"))
    acts = digits.activations(digits.prepare(digits.load_images(files[:5])), ["relu_2"])["relu_2"]
    for j in range(30):
        i, y, x = s["image"][j], s["y"][j], s["x"][j]
        assert np.allclose(s["vectors"][j], acts[i, :, y, x], rtol=2e-3, atol=2e-3)  # float16 storage
    assert len({(y, x) for y, x in zip(s["y"][:6], s["x"][:6])}) == 6  # without replacement
    for i in range(2):
        mine(digits, folder, tmp_path / f"s{i}", top=3, bottom=3, batch_size=5, threads=1, progress=False,
             thumbs=False, shard=f"{i}/2", spectrum=N + 10, atlas_layers=["relu_2"], atlas_per_image=6, seed=3)
    merge_runs([tmp_path / "s0", tmp_path / "s1"], tmp_path / "m", thumbs=False)
    m = open_results(tmp_path / "m")
    assert np.array_equal(m.atlas_samples("relu_2")["vectors"], s["vectors"])
    assert m.spectrum("relu_2", 5) == r.spectrum("relu_2", 5)


def test_atlas_with_class_support_and_page(digits, run, tmp_path):
    a = A.build_atlas(digits, run, "relu_2", grid=4, method="pca", min_count=1, size=16, steps=2, batch=64)
    data = a.to_json()
    assert data["layout"]["method"] == "pca" and data["samples"] == N * 6
    assert sum(c["count"] for c in data["cells"]) == N * 6 and len(a.icons) == len(a.cells)
    assert all(len(c["classes"]) == 3 and c["classes"][0]["label"] in "0123456789" for c in data["cells"])
    paths = A.write_atlas(a, tmp_path / "atlas", cell=16)
    assert Image.open(paths["png"]).size == (64, 64) and paths["classes_png"].exists()
    page = paths["html"].read_text()
    assert "atlas.png" in page and '"cells"' in page and "mean_activation" not in page
    with pytest.raises(OnnxVizError, match="atlas-layers"):
        A.build_atlas(digits, run, "relu_1", grid=4, method="pca")


def test_activation_grid(digits, digits_data):
    images, _ = digits_data
    g = A.activation_grid(digits, images[0], "relu_2", size=16, steps=2, batch=64, max_cells=4, min_norm=0.0)
    assert g.vectors.shape == (4, 4, 32) and len(g.icons) == 16 and g.record["pooled"]
    cells = g.to_json()["cells"]
    assert len(cells) == 16 and len(cells[0]["top_channels"]) == 3
    assert g.picture(16).size == (64, 64)


# ---------------------------------------------------------------------------- CLI
def test_cli_attribute_grid_atlas(digits_onnx, folder, run, tmp_path):
    from onnxviz.cli import main

    photo = str(sorted(folder.glob("*.png"))[0])
    cli = CliRunner()
    res = cli.invoke(main, ["attribute", digits_onnx, photo, "--layer", "relu_2", "--channels", "2", "--render-steps",
                            "2", "--render-size", "16", "--out", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    rec = json.loads(next((tmp_path / "a").glob("*/attribution.json")).read_text())
    assert rec["predicted_default"] and rec["integrated_gradients"]["completeness_error"] < 0.01
    assert {"input_ig", "input_gxi", "spatial", "channels"} <= set(rec["files"]) and "onnxviz attribute" in rec["command"]
    res = cli.invoke(main, ["grid", digits_onnx, photo, "--layer", "relu_2", "--steps", "2", "--size", "16",
                            "--max-cells", "2", "--out", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    res = cli.invoke(main, ["atlas", digits_onnx, "--runs", str(run), "--layer", "relu_2", "--grid", "3", "--method",
                            "pca", "--steps", "2", "--size", "16", "--out", str(tmp_path / "atlas")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "atlas" / "atlas.json").read_text())["grid"] == 3
    res = cli.invoke(main, ["attribute", digits_onnx, photo, "--layer", "nope"])
    assert res.exit_code == 3 and res.output.startswith("error: no layer named 'nope'")


# ---------------------------------------------------------------------------- NHWC, BGR, 0..255
def test_nhwc_bgr_file(tmp_path):
    from onnx_traits import nhwc_input

    trait = nhwc_input(tmp_path)
    m = onnxviz.load(trait.path, channel_order="BGR", value_range=(0, 255), mean=[103.9, 116.8, 123.7])
    rng = np.random.default_rng(0)
    img = rng.random((3, 32, 32), dtype=np.float32)
    out = A.output_layer(m).name
    ig = A.integrated_gradients(m, img, f"{out}:4", steps=16)
    rec = ig.record["images"][0]
    ref = m.activations(m.prepare(img[None]), [out])[out][0, 4]  # onnxruntime, the model's own preprocessing
    assert rec["value"] == pytest.approx(float(ref), rel=1e-4, abs=1e-5) and rec["completeness_error"] < 0.01
    la = A.layer_attribution(m, img, f"{out}:4", trait.tensor)
    assert la.spatial.shape == (1, 32, 32)
    g = A.activation_grid(m, img, trait.tensor, size=16, steps=2, batch=64, max_cells=2)
    assert g.vectors.shape == (2, 2, 8)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(6):
        Image.fromarray((rng.random((32, 32, 3)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    mine(m, folder, tmp_path / "run", top=2, bottom=2, progress=False, atlas_layers=[trait.tensor], atlas_per_image=2)
    s = open_results(tmp_path / "run").atlas_samples(trait.tensor)
    acts = m.activations(m.prepare(m.load_images(sorted(folder.glob("*.png")))), [trait.tensor])[m.layer(trait.tensor).name]
    assert np.allclose(s["vectors"][0], acts[s["image"][0], :, s["y"][0], s["x"][0]], rtol=2e-3, atol=2e-3)


# ---------------------------------------------------------------------------- real MobileNetV2
@pytest.mark.slow
@pytest.mark.weights
def test_mobilenet_v2_true_class_attribution_on_labelled_photos(tmp_path_factory):
    from models_fixture import exported

    from onnxviz.preprocessing.images import imagenet_photos

    photos = imagenet_photos()[:3]
    if not photos:
        pytest.skip("foolbox (its ImageNet photos) is not installed")
    m = onnxviz.load(exported("mobilenet_v2", tmp_path_factory)["path"])
    out = A.output_layer(m).name
    view = m.torch_view([out])
    for path, label in photos[:2]:  # completeness within 1% on real photos
        ig = A.integrated_gradients(m, str(path), f"{out}:{label}", view=view)
        assert ig.record["images"][0]["completeness_error"] < 0.01
    la = A.layer_attribution(m, str(photos[0][0]), f"{out}:{photos[0][1]}", "block_7")
    assert la.spatial.shape == (1, 14, 14)
    g = A.activation_grid(m, str(photos[0][0]), "block_7", size=32, steps=4, batch=64, max_cells=3)
    assert len(g.icons) >= 1


# ---------------------------------------------------------------------------- site
@pytest.fixture(scope="module")
def blocks_site(digits, digits_onnx, folder, run, tmp_path_factory):
    from onnxviz.attribution.output import attribute_photo, grid_photo
    from onnxviz.site import build_site

    photo = sorted(folder.glob("*.png"))[0]
    attribute_photo(digits, photo, run / "attribution", layer="relu_2", channels=2, render_steps=2, render_size=16)
    grid_photo(digits, photo, run / "attribution", "relu_2", size=16, steps=2, batch=64, max_cells=3)
    a = A.build_atlas(digits, run, "relu_2", grid=4, method="pca", min_count=1, size=16, steps=2, batch=64)
    A.write_atlas(a, run / "atlas" / "relu_2", cell=32)
    out = tmp_path_factory.mktemp("site")
    build_site(digits, out, run, examples_per_unit=3)
    return {"out": out, "photo": photo.stem}


def test_site_shows_spectrum_attribution_grid_and_atlas(blocks_site):
    out = blocks_site["out"]
    layer = (out / "layers" / "relu_2" / "index.html").read_text()
    assert "Attribution and activation grid" in layer and 'href="atlas/index.html"' in layer
    assert "activation grid" in layer and f'id="attr-{blocks_site["photo"]}"' in layer
    from onnxviz.site.data import read_js_data

    data = read_js_data(out / "layers" / "relu_2" / "data.js")  # what the unit pages draw
    assert data["spectrum_note"] == "exact quantiles of all 60 images" and len(data["detail"][0]["s"]) == 5
    assert [v["name"] for v in data["views"]] == [blocks_site["photo"]] and len(data["views"][0]["channels"]) == 32
    page = (out / "layers" / "relu_2" / "atlas" / "index.html").read_text()
    assert 'src="atlas.png"' in page and (out / "layers" / "relu_2" / "atlas" / "atlas.png").exists()
    other = (out / "layers" / "relu" / "index.html").read_text()
    assert "atlas/index.html" not in other


@pytest.mark.browser
def test_browser_atlas_page_pans_and_zooms(blocks_site, tmp_path):
    from pathlib import Path

    chromium = "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip(f"{chromium} not installed (run scripts/install_browser.sh)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    from onnxviz.site import make_server
    import threading

    server = make_server(blocks_site["out"], port=0, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    errors = []
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox", "--disable-gpu"])
            try:
                page = browser.new_page(viewport={"width": 900, "height": 700})
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("response", lambda r: errors.append(r.url) if r.status >= 400 else None)
                page.goto(f"http://127.0.0.1:{server.server_port}/layers/relu_2/index.html")
                page.click("a[href='atlas/index.html']")
                page.wait_for_url("**/atlas/index.html")
                page.wait_for_function("document.getElementById('atlas').naturalWidth > 0")
                s0 = page.evaluate("atlasView.state()")
                page.mouse.move(450, 400)
                page.mouse.wheel(0, -300)
                s1 = page.evaluate("atlasView.state()")
                assert s1["s"] > s0["s"]  # zoomed in about the pointer
                page.mouse.down()
                page.mouse.move(350, 300)
                page.mouse.up()
                s2 = page.evaluate("atlasView.state()")
                assert (s2["tx"], s2["ty"]) == pytest.approx((s1["tx"] - 100, s1["ty"] - 100))
                page.evaluate("atlasView.fit()")
                box = page.locator("#atlas").bounding_box()
                cells = page.evaluate("JSON.parse(document.getElementById('atlas-data').textContent).cells")
                c = cells[0]
                size = box["width"] / 4
                page.mouse.move(box["x"] + (c["col"] + 0.5) * size, box["y"] + (c["row"] + 0.5) * size)
                assert page.locator("#tip").is_visible() and "supports:" in page.inner_text("#tip")
                page.check("#classes")
                assert page.evaluate("document.getElementById('atlas').src").endswith("atlas_classes.png")
            finally:
                browser.close()
    finally:
        server.shutdown()
        server.server_close()
    assert errors == []


def test_atlas_layout_frames_the_dense_region_despite_a_far_cluster():
    from onnxviz.attribution.atlas import canvas_fill, normalize_layout

    rng = np.random.default_rng(0)
    blob = rng.normal(size=(1000, 2))
    far = rng.normal(size=(60, 2)) * 0.1 + 40.0  # 6% of the points, far away (more than a 1% percentile clips)
    coords = np.concatenate([blob, far])
    framed = normalize_layout(coords)
    lo, hi = np.percentile(coords, 1, axis=0), np.percentile(coords, 99, axis=0)
    lucid = np.clip((coords - lo) / (hi - lo), 0, 1)  # the old framing
    assert canvas_fill(lucid[:1000], 20) < 0.05  # the blob squeezed into a corner
    assert canvas_fill(framed[:1000], 20) > 0.4  # the blob spread over the canvas
    assert (framed[1000:] == 1.0).all()  # the far cluster clipped to the border
    assert framed.min() >= 0 and framed.max() <= 1
