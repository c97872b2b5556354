"""Concepts: dictionaries over a layer's activation vectors, encoded in the graph, mined like units."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner

import onnxviz
from onnxviz import concepts
from onnxviz.cli import main
from onnxviz.concepts import Dictionary, NotEnoughVectors
from onnxviz.mining import mine
from onnxviz.mining.datasets import open_source
from onnxviz.mining.results import open_results
from onnxviz.preprocessing.images import load_for_model

from digits import save_digit_folder

LAYER = "relu_2"  # 32 channels, 8x8 positions
N = 120


@pytest.fixture(scope="module")
def concept_run(digits_onnx, digits_data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("concepts")
    (tmp / "digits").mkdir()
    folder = save_digit_folder(digits_data[0], digits_data[1], tmp / "digits", N)
    run = tmp / "run"
    mine(digits_onnx, folder, run, layers=[LAYER], top=3, bottom=3, batch_size=40, progress=False, thumbs=False,
         spectrum=0, atlas_layers=[LAYER], atlas_per_image=16, seed=0)
    return run


def test_nmf_concepts_explain_the_layer_and_are_reproducible(concept_run):
    d = concepts.learn_from_run(concept_run, LAYER, method="nmf", concepts=16, seed=0, progress=False)
    m = d.metrics
    assert m["vectors"] == N * 16 and d.concepts == 16 and d.decoder.shape == (16, 32)
    assert 0.6 < m["explained_variance"] <= 1.0
    assert 0 < m["mean_l0"] <= 16 and 0 <= m["dead"] < 16 and 0.3 < m["stability"] <= 1.0
    # a shuffled dictionary (the same atoms, each scrambled across channels) explains far less
    rng = np.random.default_rng(0)
    scrambled = Dictionary(LAYER, "nmf", np.stack([rng.permutation(a) for a in d.decoder]), d.weight, d.bias,
                           scale=d.scale, split_sign=d.split_sign)
    x = concepts.vectors_of_run(concept_run, LAYER)[1]
    assert concepts.quality(scrambled, x)["explained_variance"] < m["explained_variance"] - 0.2
    # stored in the run; asking again returns the stored dictionary instead of learning anew
    stored = concept_run / "concepts" / LAYER / "nmf16.json"
    before = stored.stat().st_mtime_ns
    again = concepts.learn_from_run(concept_run, LAYER, method="nmf", concepts=16, seed=0, progress=False)
    np.testing.assert_array_equal(again.decoder, d.decoder)
    assert stored.stat().st_mtime_ns == before
    fresh = concepts.learn(x, LAYER, method="nmf", concepts=16, seed=0, stability=False, progress=False)
    np.testing.assert_allclose(fresh.decoder, d.decoder, rtol=1e-5, atol=1e-6)


def test_sae_keeps_top_k_codes_and_directions_are_units(concept_run):
    d = concepts.learn_from_run(concept_run, LAYER, method="sae", concepts=32, seed=0, top_k=4, epochs=20,
                                progress=False, stability=False)
    assert d.top_k == 4 and d.metrics["mean_l0"] <= 4.0 + 1e-9
    assert d.metrics["explained_variance"] > 0.5
    x = concepts.vectors_of_run(concept_run, LAYER)[1]
    z = d.encode(x)
    assert ((z > 0).sum(1) <= 4).all()
    for k in range(3):
        assert abs(np.linalg.norm(d.direction(k)) - 1.0) < 1e-5
    units = d.top_units(0, n=3)
    assert len(units) == 3 and abs(units[0][1]) >= abs(units[-1][1])


@pytest.mark.parametrize("method", ["nmf", "sae"])
def test_encoder_in_the_graph_equals_the_numpy_encoder(concept_run, digits_onnx, digits_data, tmp_path, method):
    model = onnxviz.load(digits_onnx)
    d = concepts.learn_from_run(concept_run, LAYER, method=method, concepts=16, seed=1, top_k=3, epochs=3,
                                progress=False, stability=False, save=False)
    path = concepts.concept_model(model, d, tmp_path / "with_concepts.onnx")
    cm = onnxviz.load(path)
    assert cm.meta.preprocessing_source == "file"  # the model's own metadata travels: nothing re-inferred
    x = cm.prepare(digits_data[0][:6])
    tensor = cm.meta.aliases[concepts.concept_name(d)]
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    codes = sess.run([tensor], {sess.get_inputs()[0].name: x})[0]  # (6, 16, 8, 8)
    maps = model.activations(x, [LAYER])[LAYER]
    want = d.encode(maps.transpose(0, 2, 3, 1).reshape(-1, maps.shape[1])).reshape(6, 8, 8, 16).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(codes, want, rtol=1e-4, atol=1e-4)
    assert codes.max() > 0


def test_mined_concepts_rank_images_by_their_codes(concept_run, digits_onnx):
    model = onnxviz.load(digits_onnx)
    d = concepts.learn_from_run(concept_run, LAYER, method="nmf", concepts=16, seed=0, progress=False)
    s = concepts.mine_concepts(model, d, concept_run, top=3, bottom=3, batch_size=40, progress=False, thumbs=False,
                               spectrum=0)
    assert s.complete and s.images == N
    # brute force: every image's mean code of each concept, from the layer's maps through the numpy encoder
    src = open_source(concept_run.parent / "digits")
    x = model.prepare(np.stack([load_for_model(concept_run.parent / "digits" / src.key(i), model.meta)
                                for i in range(len(src))]))
    maps = model.activations(x, [LAYER])[LAYER]
    codes = d.encode(maps.transpose(0, 2, 3, 1).reshape(-1, maps.shape[1])).reshape(len(x), -1, d.concepts)
    mean = codes.mean(1)  # (N, K)
    res = open_results(concepts.mined_folder(concept_run, d))
    try:
        name = res.name(concepts.concept_name(d))
        assert res.units(name) == 16
        for k in range(16):
            top = res.examples(name, k, direction="top")
            assert top[0].index == int(np.argmax(mean[:, k])) or mean[top[0].index, k] == mean[:, k].max()
            assert abs(top[0].activation - mean[:, k].max()) < 1e-3 * max(1.0, mean[:, k].max())
    finally:
        res.close()


def test_too_few_vectors_is_one_line_with_the_command(concept_run, digits_onnx, tmp_path):
    with pytest.raises(NotEnoughVectors, match="needed"):
        concepts.learn_from_run(concept_run, LAYER, method="nmf", concepts=10_000, progress=False)
    r = CliRunner().invoke(main, ["concepts", str(digits_onnx), "--run", str(concept_run), "--layer", LAYER,
                                  "--concepts", "10000", "--no-progress"])
    assert r.exit_code != 0 and "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1
    # 200,000 vectors over 120 images: every one of the 64 positions, and 26 augmented views of each image
    assert "--atlas-layers relu_2 --atlas-per-image 64 --atlas-views 26 --overwrite" in r.output and "needed" in r.output
    # a run mined without --atlas-layers: the same line (4 x 32 concepts x 20 vectors over 10 images: 256 each)
    mine(digits_onnx, concept_run.parent / "digits", tmp_path / "bare", layers=[LAYER], limit=10, progress=False,
         thumbs=False, spectrum=0)
    r = CliRunner().invoke(main, ["concepts", str(digits_onnx), "--run", str(tmp_path / "bare"), "--layer", LAYER,
                                  "--no-progress"])
    assert r.exit_code != 0 and "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1
    assert "has 0 sampled" in r.output and "--atlas-per-image 64 --atlas-views 3 --overwrite" in r.output


def test_augmented_views_add_seeded_vectors_and_leave_the_examples(concept_run, digits_onnx, tmp_path):
    """mine --atlas-views: each view's rows are the layer's activations of that seeded crop/flip of the image,
    the same at any batch size; the photos' own rows and dataset examples are those of a run without views."""
    from onnxviz.mining.views import input_axes, view_batch

    folder = concept_run.parent / "digits"
    kw = dict(layers=[LAYER], top=3, bottom=3, progress=False, thumbs=False, spectrum=0, atlas_layers=[LAYER],
              atlas_per_image=4, seed=5)
    mine(digits_onnx, folder, tmp_path / "v", batch_size=40, atlas_views=2, **kw)
    mine(digits_onnx, folder, tmp_path / "v7", batch_size=7, atlas_views=2, **kw)
    mine(digits_onnx, folder, tmp_path / "plain", batch_size=40, **kw)
    v, v7, plain = (open_results(tmp_path / n) for n in ("v", "v7", "plain"))
    s = v.atlas_samples(LAYER)
    assert s["vectors"].shape == (N * 4 * 3, 32)
    assert np.array_equal(s["vectors"], v7.atlas_samples(LAYER)["vectors"])  # merge-exact: any batch size
    own = plain.atlas_samples(LAYER)["vectors"]
    assert np.array_equal(s["vectors"].reshape(N, 12, 32)[:, :4], own.reshape(N, 4, 32))  # slots 0-3: the photo
    ex = lambda r: [(e.index, e.activation) for e in r.examples(r.name(LAYER), 0, direction="top")]  # noqa: E731
    assert ex(v) == ex(plain)
    m = onnxviz.load(digits_onnx)
    src = open_source(folder)
    from onnxviz.mining.mine import pixel_feed

    photos = np.stack([load_for_model(folder / src.key(i), m.meta) for i in range(2)])  # (2, 3, H, W) in [0, 1]
    fed = pixel_feed(m, None)  # the batch mining runs: uint8 (B, H, W, 3) pixels, or the model's input
    batch = np.rint(photos * 255).astype(np.uint8).transpose(0, 2, 3, 1) if fed else m.prepare(photos)
    for view in (1, 2):
        seen = view_batch(batch, [0, 1], view, 5, input_axes(m.meta, fed))
        x = m.prepare(seen.transpose(0, 3, 1, 2).astype(np.float32) / 255) if fed else seen
        acts = m.activations(x, [LAYER])[LAYER]
        for i in range(2):
            for slot in range(view * 4, view * 4 + 4):
                j = i * 12 + slot
                assert np.allclose(s["vectors"][j], acts[i, :, s["y"][j], s["x"][j]], rtol=2e-3, atol=2e-3)
    assert not np.allclose(s["vectors"][4:8], s["vectors"][8:12])  # two different views
    for r in (v, v7, plain):
        r.close()


def test_cli_learns_and_mines(concept_run, digits_onnx):
    r = CliRunner().invoke(main, ["concepts", str(digits_onnx), "--run", str(concept_run), "--layer", LAYER,
                                  "--concepts", "8", "--no-stability", "--top", "2", "--bottom", "2", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "8 nmf concepts of relu_2" in r.output and "explained_variance" in r.output
    assert "labels from the model's head: 0: " in r.output
    assert (concept_run / "concepts" / LAYER / "nmf8.json").exists()
    assert (concept_run / "concepts" / LAYER / "nmf8" / "mining").is_dir()


def test_labels_from_the_head_name_a_class_direction_by_its_class(concept_run, digits_onnx, digits_data):
    from onnxviz.attribution.labels import caption, promoted_classes, unit_directions

    model = onnxviz.load(digits_onnx)
    x = concepts.vectors_of_run(concept_run, LAYER)[1]
    # the direction from the mean vector to the mean vector of each digit's photos
    maps = model.activations(model.prepare(digits_data[0][:N]), [LAYER])[LAYER].mean((2, 3))  # (N, C)
    labels = digits_data[1][:N]
    dirs = np.stack([maps[labels == c].mean(0) - maps.mean(0) for c in range(10)])
    found = promoted_classes(model, LAYER, dirs, x, top=2)
    assert found is not None and len(found) == 10
    assert sum(f[0]["label"] == str(c) for c, f in enumerate(found)) >= 8
    assert caption(found[3]).startswith(found[3][0]["label"] + " (+")
    units = promoted_classes(model, LAYER, unit_directions(x.shape[1]), x)
    assert len(units) == x.shape[1] and all(len(u) == 3 for u in units)
    # no labels, no names
    bare = onnxviz.load(digits_onnx, labels=None)
    bare.meta.labels = None
    assert promoted_classes(bare, LAYER, dirs, x) is None


def test_cli_renders_concepts_like_units(concept_run, digits_onnx):
    """--render: each concept's direction as a picture in the concept set's run directory, checked for
    reliability against its examples mined in the graph (which have crops and a spectrum like a unit's)."""
    import json

    from onnxviz.paths import slug

    args = ["concepts", str(digits_onnx), "--run", str(concept_run), "--layer", LAYER, "--concepts", "12",
            "--no-stability", "--top", "3", "--bottom", "2", "--render", "0,1", "--steps", "12", "--no-progress"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "rendered 2 concepts" in r.output and "reliability:" in r.output
    cset = concept_run / "concepts" / LAYER / "nmf12"
    folder = cset / "render" / slug(f"{LAYER}/nmf12")
    for k in (0, 1):
        rec = json.loads((folder / f"concept_{k}.json").read_text())
        assert (folder / f"concept_{k}.png").exists()
        assert rec["kind"] == "concept" and rec["unit"] == k and rec["layer"] == f"{LAYER}/nmf12"
        assert rec["activation_end"] > rec["activation_start"]
        assert rec["reliability"]["verdict"] in ("pass", "suspect") and len(rec["reliability"]["examples"]) >= 2
        assert rec["concept"]["label"] and len(rec["concept"]["top_units"]) == 5
        assert rec["command"].startswith("onnxviz concepts ") and "--render 0,1" in rec["command"]
    res = open_results(cset)
    try:
        name = res.name(f"{LAYER}/nmf12")
        assert res.examples(name, 0, direction="top")[0].crop.exists()
        assert res.examples(name, 0, direction="bottom")
        assert res.spectrum(name, 0)
    finally:
        res.close()
    # the same command again keeps the pictures; MACO adds the importance map
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "2 kept from an earlier run" in again.output
    r = CliRunner().invoke(main, args[:-5] + ["--no-mine", "--render", "2", "--param", "maco", "--steps", "8",
                                             "--no-progress"])
    assert r.exit_code == 0, r.output
    rec = json.loads((folder / "concept_2_maco.json").read_text())
    assert rec["param"] == "maco" and (folder / rec["importance"]).exists()
    bad = CliRunner().invoke(main, args[:-5] + ["--no-mine", "--render", "40", "--no-progress"])
    assert bad.exit_code != 0 and "no concept 40" in bad.output and "Traceback" not in bad.output


def test_minibatch_nmf_is_its_own_dictionary(concept_run):
    d = concepts.learn_from_run(concept_run, LAYER, method="nmf", concepts=16, seed=0, solver="minibatch", epochs=5,
                                progress=False, stability=False)
    assert d.name == "nmfmb16" and d.settings["solver"] == "minibatch" and d.metrics["explained_variance"] > 0.5
    assert (concept_run / "concepts" / LAYER / "nmfmb16.json").exists()
    cd = concepts.learn_from_run(concept_run, LAYER, method="nmf", concepts=16, seed=0, progress=False)
    assert cd.name == "nmf16" and cd.settings["solver"] == "cd"


def test_site_shows_concepts_like_units_with_labels(concept_run, digits_onnx, tmp_path):
    """A layer's concept set is a page of its own with the unit templates (grid data, unit page data: render with
    its badge, examples, spectrum, strongest units), linked from the layer page and the model page; unit and
    concept labels from the head are in the data the grid search reads."""
    from onnxviz.paths import slug
    from onnxviz.site import build_site
    from onnxviz.site.data import read_js_data

    r = CliRunner().invoke(main, ["concepts", str(digits_onnx), "--run", str(concept_run), "--layer", LAYER,
                                  "--concepts", "10", "--no-stability", "--top", "3", "--bottom", "2", "--render", "0",
                                  "--steps", "8", "--no-progress"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "site"
    build_site(digits_onnx, out, run=concept_run, examples_per_unit=3)
    cslug = slug(f"{LAYER}/nmf10")
    layer_page = (out / "layers" / LAYER / "index.html").read_text()
    assert f'href="../{cslug}/index.html"' in layer_page and "explained variance" in layer_page
    assert f'href="layers/{cslug}/index.html"' in (out / "index.html").read_text()
    assert (out / "layers" / cslug / "unit.html").exists()
    data = read_js_data(out / "layers" / cslug / "data.js")
    assert data["units_n"] == 10 and data["base"] == {"layer": LAYER, "slug": LAYER}
    labels = [u[3] for u in data["units"]]
    assert all(labels) and all(" (" in text for text in labels)  # "7 (+1.23)": the class it promotes
    first = data["detail"][0]
    assert first["p"][0]["k"] == "concept" and first["p"][0]["rel"]["v"] in ("pass", "suspect")
    assert (out / first["p"][0]["i"]).exists() and data["units"][0][2]  # the render, and the grid's thumbnail
    assert len(first["t"]) == 3 and len(first["b"]) == 2 and first["s"]
    assert len(first["cu"]) == 5 and all(0 <= u < 32 for u, _ in first["cu"])
    assert "--render @@UNIT@@" in data["tmpl"]["render"]
    units = read_js_data(out / "layers" / LAYER / "data.js")
    assert all(u[3] for u in units["units"])  # the layer's units are labelled from the head too
    # the layer's own grid holds its concepts beside its units: the same rows as the set's page, each card
    # opening the set's unit page, with the set's render template; the page offers the "show" menu
    cset = next(c for c in units["sets"] if c["name"] == "nmf10")  # (earlier tests stored other sets too)
    assert cset["name"] == "nmf10" and cset["slug"] == cslug and cset["units"] == data["units"]
    assert cset["tmpl"]["render"] == data["tmpl"]["render"] and "explained variance" in cset["line"]
    assert '<select id="show">' in layer_page and '<option value="nmf10">' in layer_page
    js = (out / "static" / "site.js").read_text()
    assert "data.sets" in js and '"../" + set.slug + "/"' in js
    # the grid's search matches a label's text, of units and concepts alike (site.js: the label contains the query)
    q = labels[0].split(" (")[0]
    assert "u[3]).toLowerCase().indexOf(q)" in js
    assert any(q in text for text in labels)
    dom = _dump_dom(out / "layers" / LAYER / "index.html")  # the page as a browser draws it (skipped without one)
    if dom is not None:
        total = 32 + sum(len(c["units"]) for c in units["sets"])
        assert dom.count('data-unit="') == 32 and f"{total} units and concepts" in dom  # every unit ...
        assert dom.count('data-set="nmf10"') == 10 and f'href="../{cslug}/unit.html?u=0"' in dom  # ... and concept
        only = _dump_dom(out / "layers" / LAYER / "index.html", "?show=nmf10&q=" + q.replace(" ", "+"))
        # the concepts the grid's search keeps (site.js): a number the query begins, or a label holding it
        matching = sum(str(u[0]).startswith(q) or q.lower() in str(u[3]).lower() for u in data["units"])
        assert 'data-unit="' not in only and only.count('data-set="nmf10"') == matching > 0
        assert f"{matching} of 10 nmf10 concepts" in only


def _dump_dom(page, query: str = ""):
    """The page's DOM after its scripts ran, from headless chromium (None when it is not installed)."""
    import shutil
    import subprocess

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        return None
    out = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,4000",
                          "--dump-dom", page.as_uri() + query], capture_output=True, text=True, timeout=60)
    return out.stdout


def test_atlas_of_concepts(concept_run, digits_onnx):
    """onnxviz atlas --concepts NAME: laid out by concept codes, each cell the reconstruction of its mean code."""
    import json

    d = concepts.learn_from_run(concept_run, LAYER, method="nmf", concepts=16, seed=0, progress=False)
    concepts.name_concepts(onnxviz.load(digits_onnx), d, concept_run)
    base = ["atlas", str(digits_onnx), "--run", str(concept_run), "--layer", LAYER, "--grid", "3", "--steps", "2",
            "--size", "16", "--method", "pca", "--no-classes", "--no-progress"]
    r = CliRunner().invoke(main, base + ["--concepts", "nmf16"])
    assert r.exit_code == 0, r.output
    doc = json.loads((concept_run / "concepts" / LAYER / "nmf16" / "atlas" / LAYER / "atlas.json").read_text())
    assert doc["space"] == "concepts nmf16" and "--concepts nmf16" in doc["command"]
    x = concepts.vectors_of_run(concept_run, LAYER)[1]
    codes = d.encode(x)
    for c in doc["cells"]:
        assert c["top_concepts"] and all(0 <= k["concept"] < 16 and k["code"] > 0 and k["label"] for k in c["top_concepts"])
        assert c["top_concepts"][0]["code"] >= c["top_concepts"][-1]["code"]
    # a cell's vector is the decoder's reconstruction of a mean code: a non-negative mix of the atoms
    means = np.array([c["mean_activation"] for c in doc["cells"]], np.float32)
    mix, *_ = np.linalg.lstsq(d.decoder.T.astype(np.float64), (means / d.scale).T.astype(np.float64), rcond=None)
    assert np.allclose(d.decoder.T @ mix, (means / d.scale).T, atol=1e-3) and codes.max() > 0
    # the site shows it: the set's page links its atlas page, and so does the layer page
    from onnxviz.paths import slug
    from onnxviz.site import build_site

    site = concept_run / "site_atlas"
    build_site(digits_onnx, site, run=concept_run, examples_per_unit=0)
    cslug = slug(f"{LAYER}/nmf16")
    assert (site / "layers" / cslug / "atlas" / "index.html").is_file()
    assert 'href="atlas/index.html"' in (site / "layers" / cslug / "index.html").read_text()
    assert f'href="../{cslug}/atlas/index.html"' in (site / "layers" / LAYER / "index.html").read_text()
    bad = CliRunner().invoke(main, base + ["--concepts", "sae999"])
    assert bad.exit_code != 0 and "stored: " in bad.output and "nmf16" in bad.output and "Traceback" not in bad.output
