"""``onnxviz.file_check``: what onnxviz does with no flags on a file (the corpus report's checks)."""
from __future__ import annotations

import math

from digits import save_digit

from onnxviz.file_check import RISE_TARGET, check, markdown, rise


def test_rise_is_a_ratio_above_the_spread_and_a_climb_in_spreads_below_it():
    assert rise(2.0, 10.0) == 5.0  # end / start
    assert rise(0.0, 2.0, spread=0.5) == 5.0  # four photo spreads from zero
    assert rise(-1.0, 1.0, spread=0.5) == 5.0  # a pre-activation: the climb counts, not the ratio
    assert rise(0.0, 1.0) == math.inf and rise(0.0, 0.0) == 1.0


def test_check_runs_every_stage_on_a_real_small_model(digits_onnx, digits_data, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(6):
        save_digit(digits_data[0][i], photos / f"{i}.png")
    row = check(digits_onnx, photos, steps=24, work=tmp_path / "work")
    for stage in ("inspect", "mine", "parity", "render"):
        assert str(row[stage]).startswith(("ok", "part")), (stage, row)
    assert len(row["units"]) == len(row["rise"]) == len(row["picked"]) >= 2
    assert any(r is not None and r >= RISE_TARGET for r in row["rise"])  # a live unit of a trained CNN rises
    table = markdown([dict(row, file="digits", producer="pytorch", traits=["trained"])])
    assert "| digits | pytorch | trained |" in table and "1 files" in table
