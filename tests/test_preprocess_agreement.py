"""The numeric rule that scores inferred preprocessing against the truth (onnxviz.preprocessing.agreement).

Every expected number below is worked out by hand in the comments."""
import json
from pathlib import Path

import pytest

from onnxviz.preprocessing.agreement import Preprocessing, agreement, scale_offset_agree, totals, truth_of

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
ROOT = Path(__file__).resolve().parents[1]


def P(order, lo, hi, mean=(0.0,), std=(1.0,), order_matters=True):
    return Preprocessing(order, (lo, hi), mean, std, order_matters)


def test_identical_maps_agree_on_every_field():
    t = P("RGB", 0, 1, *IMAGENET)
    assert agreement(t, t) == {"scale_offset": True, "channel_order": True, "both": True}


def test_0_255_against_0_1_disagrees():
    # slope 255 against 1: |255 - 1| > 0.2 * 1
    assert not scale_offset_agree(P("RGB", 0, 255), P("RGB", 0, 1))
    assert not scale_offset_agree(P("RGB", 0, 1), P("RGB", 0, 255))


def test_bgr_against_rgb_is_right_in_scale_wrong_in_order():
    r = agreement(P("BGR", -1, 1), P("RGB", -1, 1))
    assert r == {"scale_offset": True, "channel_order": False, "both": False}


def test_imagenet_against_minus1_1_is_outside_20_percent():
    # truth R channel: a = 1/0.229 = 4.367, b = -0.485/0.229 = -2.118; -1..1 gives a = 2, b = -1.
    # |2 - 4.367| = 2.37 > 0.2 * 4.367 = 0.87
    assert not scale_offset_agree(P("RGB", -1, 1), P("RGB", 0, 1, *IMAGENET))
    # the other way: truth a = 2, b = -1; ImageNet a = 4.37 (> 2.4): outside too
    assert not scale_offset_agree(P("RGB", 0, 1, *IMAGENET), P("RGB", -1, 1))


def test_imagenet_listed_rgb_on_bgr_is_within_20_percent_of_the_reversed_statistics():
    # PaddleOCR applies (0.485, 0.456, 0.406)/(0.229, 0.224, 0.225) to B, G, R. The reversed candidate
    # gives channel 0 (B) a = 1/0.225 = 4.444, b = -0.406/0.225 = -1.804 against the truth's
    # a = 4.367, b = -2.118: |da| = 0.078 <= 0.873, |db| = 0.313 <= 0.2 * max(4.367, 2.118) = 0.873
    truth = P("BGR", 0, 1, *IMAGENET)
    reversed_stats = P("BGR", 0, 1, IMAGENET[0][::-1], IMAGENET[1][::-1])
    assert agreement(reversed_stats, truth) == {"scale_offset": True, "channel_order": True, "both": True}


def test_minus1_1_agrees_with_127_5_over_128():
    # (x - 127.5) / 128 on 0..255: a = 255/128 = 1.992, b = -0.996; -1..1: a = 2, b = -1
    assert scale_offset_agree(P("RGB", -1, 1), P("RGB", 0, 255, (127.5,), (128.0,)))


def test_the_caffe_mean_matters():
    # B channel: b = -103.94 against 0; 103.94 > 0.2 * max(255, 103.94) = 51
    caffe = P("BGR", 0, 255, (103.939, 116.779, 123.68))
    assert not scale_offset_agree(P("BGR", 0, 255), caffe)
    assert scale_offset_agree(P("BGR", 0, 255, (104.0, 117.0, 123.0)), caffe)


def test_the_20_percent_boundary_on_slope_and_offset():
    truth = P("RGB", 0, 1)  # a = 1, b = 0
    assert scale_offset_agree(P("RGB", 0, 1.19), truth)  # |1.19 - 1| = 0.19 <= 0.2
    assert not scale_offset_agree(P("RGB", 0, 1.25), truth)  # 0.25 > 0.2
    assert scale_offset_agree(P("RGB", 0.15, 1.15), truth)  # a = 1, |b| = 0.15 <= 0.2 * max(1, 0)
    assert not scale_offset_agree(P("RGB", 0.3, 1.3), truth)  # |b| = 0.3 > 0.2


def test_an_inverted_range_is_not_its_mirror():
    # 1 - p (an ink map): a = -1, b = 1; 0..1 has a = 1: |1 - (-1)| = 2 > 0.2
    ink = P("L", 1, 0)
    assert not scale_offset_agree(P("L", 0, 1), ink)
    assert agreement(P("L", 1, 0), ink) == {"scale_offset": True, "channel_order": None, "both": True}


def test_order_is_not_counted_where_it_does_not_matter_nor_for_gray():
    same_channels = P("RGB", 0, 1, order_matters=False)
    r = agreement(P("BGR", 0, 1), same_channels)
    assert r == {"scale_offset": True, "channel_order": None, "both": True}
    rows = [r, agreement(P("BGR", 0, 255), P("RGB", 0, 1)), agreement(P("L", -1, 1), P("L", -1, 1))]
    assert totals(rows) == {"scale_offset": {"right": 2, "of": 3}, "channel_order": {"right": 0, "of": 1},
                            "both": {"right": 2, "of": 3}}


@pytest.mark.parametrize("manifest", ["corpus.json", "eval_corpus.json"])
def test_every_manifest_truth_is_a_valid_map(manifest):
    path = ROOT / "tests" / manifest
    if not path.exists():
        pytest.fail(f"{path} is missing")
    for e in json.loads(path.read_text())["files"]:
        t = truth_of(e)
        a, b = t.pixel_map()
        assert len(a) == t.channels and all(abs(v) > 0 for v in a), e["name"]
        assert scale_offset_agree(t, t), e["name"]


def test_an_unknown_convention_name_says_what_to_give_instead():
    with pytest.raises(ValueError, match="not an inference candidate"):
        truth_of({"name": "x", "preprocessing": {"convention": "0..42 RGB"}})


def test_sources_and_candidates_use_this_rule():
    """One home for the 20% rule: sources.agree gives its verdict on every pair of
    candidates (a swapped channel order or a gray/colour mismatch never agrees)."""
    from onnxviz.preprocessing import candidates as C
    from onnxviz.preprocessing import sources

    for a in C.ALL:
        for b in C.ALL:
            if (a.channel_order == "L") != (b.channel_order == "L"):
                assert not sources.agree(a.fields(), b.fields())
                continue
            r = agreement(Preprocessing.of(a), Preprocessing.of(b))
            assert sources.agree(a.fields(), b.fields()) == (r["scale_offset"] and r["channel_order"] is not False)
