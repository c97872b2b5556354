"""The usable report's one-line reason for a failed CLI run (scripts/corpus_scores.py)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import corpus_scores  # noqa: E402

NOTICE = "onnxruntime: CUDAExecutionProvider not usable here; running on CPUExecutionProvider\n"


def test_a_failed_run_is_named_by_its_signal_or_its_last_real_line():
    def reason(code, err):
        return corpus_scores._exit_reason(subprocess.CompletedProcess([], code, "", err))
    # killed by the kernel (vectify_v8_sr4x_extdata's render at 18 GB): the signal, not the provider notice
    assert reason(-9, NOTICE) == "killed by signal 9 (out of memory?)"
    assert reason(3, NOTICE + "error: model.onnx: no such layer\n") == "error: model.onnx: no such layer"
    assert reason(4, NOTICE) == "exit 4"
    # the same notice for another provider, or one the user asked for
    other = "onnxruntime: TensorrtExecutionProvider cannot load here; running on CPUExecutionProvider\n"
    assert reason(4, other) == "exit 4"
