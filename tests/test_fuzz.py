"""The fuzz harness (onnxviz.fuzz): a fixed-seed smoke of mutated inputs through every command, and
the classifier and mutators it relies on."""
from __future__ import annotations

import random

import onnx
import pytest

import onnxviz

from onnxviz.errors import ModelLoadError
from onnxviz.fuzz import models as fm
from onnxviz.fuzz import runner
from onnxviz.fuzz.outcome import classify


def test_classifier_tells_a_clear_line_from_a_generic_one():
    assert classify(0, "wrote out") == "ok"
    assert classify(1, "3 checked, 1 suspect") == "ok"
    assert classify(3, "error: model.onnx: node 'fc' (Gemm) reads tensor 'x', which no node provides") == "clear"
    assert classify(2, "Usage: onnxviz render\nError: Invalid value for '--steps'") == "clear"
    assert classify(3, "error: inspect failed: TypeError: 'int' object is not a mapping") == "generic"
    assert classify(3, "error: ValueError: layout must be one of ('NCHW', 'NHWC')") == "generic"
    assert classify(4, "error: internal error in `onnxviz mine` (KeyError: 'x'). This is a bug") == "internal"
    assert classify(1, "Traceback (most recent call last):\n  File ...\nKeyError: 1") == "traceback"
    assert classify(None, "", signal=11) == "crash"
    assert classify(None, "", timed_out=True) == "hang"


def test_mutants_are_seeded_and_each_broken_graph_is_refused_naming_the_node(tmp_path):
    base = fm.base_model()
    a = fm.mutate_model(base, random.Random("s:1"), tmp_path / "a")
    b = fm.mutate_model(base, random.Random("s:1"), tmp_path / "b")
    assert a[0] == b[0] and a[1].read_bytes() == b[1].read_bytes()  # same seed, same mutant
    for mutator, named in [("dangling", "reads tensor"), ("cycle", "cycle"), ("duplicate_output", "produced twice"),
                           ("drop_initializer", "reads tensor")]:
        m = onnx.ModelProto()
        m.CopyFrom(base)
        fm.PROTO_MUTATORS[mutator](random.Random(0), m)
        path = tmp_path / f"{mutator}.onnx"
        onnx.save(m, path)
        with pytest.raises(ModelLoadError, match=named) as err:
            onnxviz.load(path)
        assert str(path) in str(err.value) and "node '" in str(err.value)


@pytest.mark.slow
def test_fixed_seed_smoke_has_no_traceback_crash_hang_or_generic_line(tmp_path):
    """About 100 mutated inputs (ONNX files, images, folders, archives, run directories, options) through
    inspect, mine, render, attribute, site, check and atlas in worker subprocesses."""
    results = runner.run(seed=0, count=100, work=tmp_path, per_worker=50)
    s = runner.summary(results)
    assert s["cases"] == 100
    assert not s["findings"], runner.markdown(s, "pytest")
    assert s["outcomes"]["clear"] >= 30 and s["outcomes"]["ok"] >= 20  # the inputs really were broken, and not all
    assert set(s["by_family"]) >= {"onnx", "image", "dataset", "run"}
    assert set(s["by_command"]) >= {"inspect", "mine", "render", "site", "check", "atlas", "attribute"}
