"""The CLI's shared options: every option explained, defaults owned by the Python API, old spellings kept."""
from __future__ import annotations

import json

import click
import numpy as np
from click.testing import CliRunner

from onnxviz.cli import main
from onnxviz.optvis import recipes
from onnxviz.runs import RunDir, api_default

# old spellings accepted for a release, hidden from --help
LEGACY = {("render", "--runs"), ("render", "--out"), ("check", "--runs"), ("site", "--runs"), ("atlas", "--runs"),
          ("mine", "--out"), ("mine-merge", "--out"), ("attribute", "--out"), ("attribute", "--steps"),
          ("grid", "--out")}


def _commands(group: click.Group, prefix: str = ""):
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", cmd


def test_every_option_of_every_command_has_help():
    missing, hidden = [], set()
    for name, cmd in _commands(main):
        for p in cmd.params:
            if not isinstance(p, click.Option):
                continue
            if p.hidden:
                hidden.update((name, o) for o in p.opts)
            elif not (p.help or "").strip():
                missing.append(f"{name} {'/'.join(p.opts)}")
    assert missing == []
    assert hidden <= LEGACY  # nothing else is hidden from --help


def test_every_command_has_one_run_option_spelled_run():
    for name, cmd in _commands(main):
        opts = {o for p in cmd.params if isinstance(p, click.Option) and not p.hidden for o in p.opts}
        assert "--runs" not in opts, name
        if name in ("render", "mine", "mine-merge", "examples", "site", "atlas", "check", "attribute", "grid"):
            assert "--run" in opts, name


def test_defaults_in_help_are_the_apis(digits_onnx):
    res = CliRunner().invoke(main, ["render", digits_onnx, "--help"], terminal_width=200)
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert f"--deepdream {api_default(recipes.deepdream, 'steps')}" in text
    assert f"unit {api_default(recipes.render, 'steps')}" in text


def test_render_deepdream_default_steps_are_the_apis(digits_onnx, digits_data, tmp_path):
    from digits import save_digit

    photo = tmp_path / "digit.png"
    save_digit(digits_data[0][0], photo)
    run = tmp_path / "run"
    res = CliRunner().invoke(main, ["render", digits_onnx, "--deepdream", "relu_2", "--image", str(photo),
                                    "--run", str(run), "--no-progress"])
    assert res.exit_code == 0, res.output
    rec = json.loads((RunDir(run).render_layer("relu_2") / "deepdream_digit.json").read_text())
    steps = api_default(recipes.deepdream, "steps")
    assert rec["steps"] == steps and f"--steps {steps}" in rec["command"]
    assert len(rec["activation_per_step"]) == steps


def test_old_spellings_still_work(digits_onnx, tmp_path):
    """render --out (the render folder) and attribute --steps (integrated-gradients steps) as before."""
    res = CliRunner().invoke(main, ["render", digits_onnx, "relu_2:3", "--steps", "2", "--out", str(tmp_path / "o"),
                                    "--no-progress"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "o" / "relu_2" / "channel_3.png").is_file()
    photo = tmp_path / "p.png"
    from digits import save_digit

    save_digit(np.full((3, 16, 16), 0.5, np.float32), photo)
    res = CliRunner().invoke(main, ["attribute", digits_onnx, str(photo), "--method", "ig", "--steps", "4",
                                    "--run", str(tmp_path / "r"), "--no-progress"])
    assert res.exit_code == 0, res.output
    rec = json.loads((RunDir(tmp_path / "r").attribution / "p" / "attribution.json").read_text())
    assert "--ig-steps 4" in rec["command"] and rec["integrated_gradients"]["steps"] >= 4
    res = CliRunner().invoke(main, ["attribute", digits_onnx, str(photo), "--steps", "4", "--ig-steps", "8"])
    assert res.exit_code == 2 and "old spelling" in res.output


def test_commands_that_need_a_run_say_so(digits_onnx):
    res = CliRunner().invoke(main, ["atlas", digits_onnx, "--layer", "relu_2"])
    assert res.exit_code == 2 and "--run RUN" in res.output
