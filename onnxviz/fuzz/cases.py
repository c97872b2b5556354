"""Fuzz cases: each is built from (seed, index) alone, so any case can be rebuilt and rerun by number.

A case is a mutated input plus the onnxviz command that reads it: mutant ONNX files through
inspect, mine, render, attribute and site; damaged images through attribute and render
--deepdream; damaged folders and archives through mine; damaged run directories through site,
check, atlas and a resumed mine; odd option values through every command (usage errors).
"""
from __future__ import annotations

import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

FAMILIES = {"onnx": 0.45, "image": 0.1, "dataset": 0.2, "run": 0.2, "options": 0.05}
QUIET = ["--no-progress"]


@dataclass
class Case:
    index: int
    family: str
    label: str
    argv: list
    timeout: float = 60.0
    files: list = field(default_factory=list)  # the mutated inputs (kept when the case is a finding)


def base_assets(work: Path) -> dict:
    """The unmutated inputs, built once per work folder: model.onnx, photos/, run/ (mined + rendered)."""
    from ..cli import main
    from .inputs import encode, photos
    from .models import base_model

    base = work / "base"
    paths = {"model": base / "model.onnx", "photos": base / "photos", "run": base / "run"}
    if (base / "done").exists():
        return {k: str(v) for k, v in paths.items()}
    shutil.rmtree(base, ignore_errors=True)
    paths["photos"].mkdir(parents=True)
    paths["model"].write_bytes(base_model().SerializeToString())
    for i, img in enumerate(photos(10, seed=1)):
        (paths["photos"] / f"photo_{i}.jpg").write_bytes(encode(img))
    model, run = str(paths["model"]), str(paths["run"])
    for argv in (["mine", model, str(paths["photos"]), "--out", run, "--top", "3", "--bottom", "3", "--batch-size", "4",
                  "--atlas-layers", "relu2", "--spectrum", "4"] + QUIET,
                 ["render", model, "--layer", "relu2", "--units", "0-2", "--steps", "3", "--out", run + "/render"] + QUIET):
        try:
            main.main(args=argv, prog_name="onnxviz", standalone_mode=True)
        except SystemExit as exc:
            if exc.code:
                raise RuntimeError(f"fuzz base assets: `onnxviz {' '.join(argv)}` exited with {exc.code}") from None
    (base / "done").write_text("ok")
    return {k: str(v) for k, v in paths.items()}


def _family(rng: random.Random) -> str:
    return rng.choices(list(FAMILIES), weights=list(FAMILIES.values()))[0]


def make_case(seed: int, index: int, base: dict, folder: Path) -> Case:
    """Case ``index`` of the run seeded ``seed``, its inputs written into ``folder``."""
    from . import inputs, models

    rng = random.Random(f"{seed}:{index}")
    folder.mkdir(parents=True, exist_ok=True)
    out = str(folder / "out")
    family = _family(rng)
    model, photos, run = base["model"], base["photos"], base["run"]
    if family == "onnx":
        import onnx

        label, path = models.mutate_model(onnx.load(model), rng, folder / "m")
        m = str(path)
        command = rng.choices(["inspect", "mine", "render", "attribute", "site"], weights=[6, 1.5, 1, 0.5, 1])[0]
        argv = {"inspect": ["inspect", m] + (["--json"] if rng.random() < 0.3 else []),
                "mine": ["mine", m, photos, "--out", out, "--limit", "4", "--batch-size", "2", "--top", "2",
                         "--bottom", "2"] + QUIET,
                "render": ["render", m, rng.choice(["relu2:1", "conv1:0", "logits:2"]), "--steps", "2", "--out",
                           out] + QUIET,
                "attribute": ["attribute", m, str(Path(photos) / "photo_0.jpg"), "--steps", "2", "--channels", "0",
                              "--out", out] + QUIET,
                "site": ["site", m, "--run", run, "--out", out, "--examples", "2"]}[command]
        return Case(index, family, label, argv, files=[m])
    if family == "image":
        label, name, data = inputs.damaged_image(rng, inputs.photos(1, seed=rng.randrange(1000))[0])
        path = folder / "img" / name
        path.parent.mkdir()
        try:
            path.write_bytes(data)
        except OSError:
            path = path.with_name("renamed.jpg")
            path.write_bytes(data)
        if rng.random() < 0.6:
            argv = ["attribute", model, str(path), "--steps", "2", "--channels", "0", "--out", out] + QUIET
        else:
            argv = ["render", model, "--deepdream", "relu2", "--image", str(path), "--steps", "2", "--out", out] + QUIET
        return Case(index, family, label, argv, files=[str(path)])
    if family == "dataset":
        label, source = inputs.dataset(rng, folder)
        argv = ["mine", model, str(source), "--out", out, "--batch-size", rng.choice(["2", "3"]), "--top", "2",
                "--bottom", "2", "--spectrum", "2"] + QUIET
        if rng.random() < 0.3:
            argv += ["--decoder", "processes", "--workers", "1"]
        return Case(index, family, label, argv, timeout=90.0, files=[str(source)])
    if family == "run":
        copy = folder / "run"
        shutil.copytree(run, copy)
        label = inputs.damage_run(rng, copy)
        if rng.random() < 0.3:
            label += "; " + inputs.damage_run(rng, copy)
        command = rng.choice(["site", "site", "check", "atlas", "mine"])
        argv = {"site": ["site", model, "--run", str(copy), "--out", out, "--examples", "2"],
                "check": ["check", model, str(copy / "render"), "--run", str(copy), "--top", "2"],
                "atlas": ["atlas", model, "--run", str(copy), "--layer", "relu2", "--grid", "2", "--steps", "2",
                          "--size", "16", "--min-count", "1", "--out", out] + QUIET,
                "mine": ["mine", model, photos, "--out", str(copy), "--top", "3", "--bottom", "3", "--batch-size", "4",
                         "--atlas-layers", "relu2", "--spectrum", "4"] + QUIET}[command]
        if command == "check" and not (copy / "render").exists():
            argv[2] = str(copy)
        return Case(index, family, label, argv, files=[str(copy)])
    return _options_case(rng, index, base, folder, out)


def _options_case(rng, index, base, folder, out) -> Case:
    """Odd option values: usage errors (exit 2) and bad values (exit 3), never a traceback."""
    model, photos, run = base["model"], base["photos"], base["run"]
    empty = folder / "labels.txt"
    empty.write_text("", encoding="utf-8")
    choices = [
        ["inspect", model, "--input-size", "0", "0"], ["inspect", model, "--mean", "a,b"],
        ["inspect", model, "--std", "0,0,0"], ["inspect", model, "--mean", "1,2"], ["inspect", model, "--labels", str(empty)],
        ["inspect", model, "--input", "nope"], ["inspect", str(folder)], ["inspect", str(folder / "missing.onnx")],
        ["mine", model, photos, "--out", out, "--shard", "5/2"], ["mine", model, photos, "--out", out, "--layers", "nope"],
        ["mine", model, photos, "--out", model], ["mine", model, str(folder / "none"), "--out", out],
        ["render", model, "relu2:99999", "--steps", "2", "--out", out], ["render", model, "relu2", "--steps", "2"],
        ["render", model, "relu2:-1", "--steps", "2", "--out", out], ["render", model, "relu2:1", "--steps", "0",
                                                                      "--out", out],
        ["render", model, "relu2:1", "--steps", "-5", "--out", out], ["render", model, "relu2:1", "--size", "1",
                                                                      "--steps", "2", "--out", out],
        ["render", model, "--layer", "relu2", "--units", "5-2", "--out", out],
        ["render", model, "--layer", "relu2", "--units", "a", "--out", out],
        ["atlas", model, "--run", run, "--layer", "logits", "--out", out],
        ["atlas", model, "--run", str(folder), "--layer", "relu2", "--out", out],
        ["check", model, str(Path(photos) / "photo_0.jpg"), "--run", run],
        ["site", model, "--out", model], ["site", model, "--run", str(folder / "nope"), "--out", out],
        ["attribute", model, str(Path(photos) / "photo_0.jpg"), "--target", "nope:1", "--out", out],
        ["attribute", model, str(Path(photos) / "photo_0.jpg"), "--target", "logits:x", "--out", out],
        ["attribute", model, str(folder / "missing.jpg"), "--out", out], ["no-such-command"],
        ["mine", model, photos, "--out", out, "--threads", "0"], ["render", model, "relu2:1", "--threads", "-1",
                                                                  "--steps", "2", "--out", out],
    ]
    argv = rng.choice(choices)
    return Case(index, "options", "options:" + " ".join(a if not a.startswith("/") else Path(a).name for a in argv[:1]
                                                      + argv[2:]), argv)
