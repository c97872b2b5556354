"""Preprocessing inferred for real foreign files (tests/corpus.json), against each package's own code.

Marker ``wild``: the files come from the corpus cache (``scripts/corpus.py fetch``). The truths below
were read from the preprocessing code of the package that ships each file; ``scripts/corpus.py
preprocess`` prints the whole corpus against them. Only quick files are checked here.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

import onnxviz
from onnxviz.preprocessing import infer as P

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import corpus  # noqa: E402

pytestmark = pytest.mark.wild


def _infer(name):
    m = onnxviz.load(corpus.fetch_one(name), infer=False)
    return P.infer(m, m.meta)


def _convention(c: P.Candidate) -> tuple:
    rounded = lambda vs: tuple(round(v, 3) for v in vs)  # noqa: E731
    return c.channel_order, tuple(c.value_range), rounded(c.mean), rounded(c.std)


def _truth(name: str) -> P.Candidate:
    return corpus.truth(corpus.entry(name))


@pytest.mark.parametrize("name", ["orinet", "orinet_fp16", "orinet_qdq"])
def test_orinet_and_its_fp16_and_qdq_copies_get_imagenet_normalization(name):
    """No labels, no BatchNorm: activation balance alone favours 0..255 input; the prior of a PyTorch
    classifier (read from torch.onnx's node names when a quantizer rewrote producer_name) and the
    4-class head, more certain under every 0..255 candidate than under any unit-scale one, outweigh it.
    The copies are judged on their float view."""
    found = _infer(name)
    assert _convention(found.candidate) == _convention(_truth(name)), found.evidence
    sat = found.scores["head_saturation"]
    assert min(v for k, v in sat.items() if "0..255" in k) > max(v for k, v in sat.items() if "0..255" not in k)
    assert any("PyTorch classifier" in line for line in found.evidence)
    if name != "orinet":
        assert "judged on the float32 view" in found.evidence[0]


def test_captcha_crnn_in_graph_normalization_does_not_claim_a_channel_order():
    """Its 'means' (266.7, 84.2, 59.8) are a folded input BatchNorm, not photo means: the order is open
    (the package feeds BGR; nothing in the file tells, so the evidence says it is undecided)."""
    found = _infer("captcha_crnn")
    assert found.candidate.value_range == (0.0, 255.0)
    assert "not photo channel means" in found.evidence[0] and "R>G>B" not in found.evidence[0]
    assert any("channel order not decided" in line for line in found.evidence)
    assert found.confidence <= 0.6  # two candidates left, neither preferred: about one half each


@pytest.mark.parametrize("name", ["mtcnn_rnet", "mtcnn_onet", "open_nsfw_tf", "ddddocr_int8", "ppocr_v3_det",
                                  # wrong before the 67-file priors (ImageNet statistics, the Caffe mean, 0..1)
                                  "mtcnn_pnet", "centerface", "plate_retinaface", "vtop_captcha_crnn"])
def test_files_found_right_stay_right(name):
    """Right by the rule the corpus is scored with (a numeric truth such as CenterFace's 0..255 with
    mean (0, 0, 0) is no candidate's exact fields)."""
    from onnxviz.preprocessing import agreement as A

    found = _infer(name)
    verdict = A.agreement(A.Preprocessing.of(found.candidate), A.truth_of(corpus.entry(name)))
    assert verdict["both"], found.evidence


def test_every_corpus_file_names_its_package_preprocessing():
    for e in corpus.manifest():
        want = _truth(e["name"])
        assert want.channel_order in ("RGB", "BGR", "L") and e["preprocessing"]["source"], e["name"]
        # low > high is a real map (trueocr's ink map, 1 - gray / 255); ModelMeta asks only low != high
        assert len(want.value_range) == 2 and want.value_range[0] != want.value_range[1], e["name"]
        assert len(want.mean) in (1, 3) and len(want.std) in (1, 3) and all(s > 0 for s in want.std), e["name"]
