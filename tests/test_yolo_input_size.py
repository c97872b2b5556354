"""scripts/yolo_input_size.py: a 640 px Ultralytics YOLO11-seg export rewritten for 1600 px (issue 25, item 6)."""
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import corpus  # noqa: E402
import yolo_input_size as Y  # noqa: E402


def test_anchors_are_cell_centres_at_three_strides():
    pts, strides = Y.anchors(640)
    assert pts.shape == (2, 80 * 80 + 40 * 40 + 20 * 20) and strides.shape == (1, pts.shape[1])
    assert pts[:, 0].tolist() == [0.5, 0.5] and pts[:, 80].tolist() == [0.5, 1.5]  # x then y, row-major
    assert strides[0, 6400] == 16 and strides[0, -1] == 32


@pytest.mark.wild
def test_the_corpus_yolo11s_seg_becomes_a_1600_px_file():
    m = onnx.load(corpus.fetch_one("yolo11s_seg_slider"))
    edits = Y.resize(m, 1600)
    # the attention block's two spatial reshapes, the DFL head's two, the anchors (twice) and the strides
    assert len(edits) == 7, edits
    dims = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 1600, 1600]
    assert [d.dim_value for d in m.graph.output[0].type.tensor_type.shape.dim][2] == 200 ** 2 + 100 ** 2 + 50 ** 2
    assert {p.key: p.value for p in m.metadata_props}["imgsz"] == "[1600, 1600]"
    onnx.checker.check_model(m)
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in m.graph.initializer}
    assert np.allclose(inits["/model.23/Constant_15_output_0"], Y.anchors(1600)[1])
