"""Kill storm: SIGKILL `mine` (local and Ray), `render --layer L --all`, `atlas` and `site` at seeded random
moments, many times each, resume, and compare with an uninterrupted run.

    python scripts/kill_storm.py --seed 0 --kills 10 --work /tmp/storm --json docs/kill_storm.json
    python scripts/kill_storm.py --seed 1 --kills 3 --jobs mine,site          # a short one

The model is the tests' digits CNN (trained in seconds on scikit-learn's real handwritten digits,
tests/digits.py), the photos its digits as PNGs. Exit code 1 when any job's outputs differ, a kill
left a partial file that looks finished, or a resume failed. The library is onnxviz.fuzz.storm.
"""
from __future__ import annotations

import argparse
import json
import random
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from onnxviz.fuzz import storm  # noqa: E402

JOBS = ("mine", "mine-ray", "render", "atlas", "site")
MINE_KW = dict(top=4, bottom=4, batch_size=4, progress=False, spectrum=16, atlas_layers="relu_2", atlas_per_image=2,
               checkpoint_seconds=0)


def _mine_argv(model, photos, out, ray_address=None) -> list:
    if ray_address:
        call = f"from onnxviz.engines.ray import mine; mine(*sys.argv[1:4], address={ray_address!r}, workers=1, " \
               f"block_size=16, **{MINE_KW!r})"
    else:
        call = f"from onnxviz.mining import mine; mine(*sys.argv[1:4], threads=1, **{MINE_KW!r})"
    return [sys.executable, "-c", "import sys; " + call, str(model), str(photos), str(out)]


def _cli(*args) -> list:
    return [sys.executable, "-m", "onnxviz", *[str(a) for a in args]]


def _timed(argv: list) -> float:
    t = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kills", type=int, default=10, help="SIGKILLs per job.")
    ap.add_argument("--images", type=int, default=400, help="Photos mined.")
    ap.add_argument("--jobs", default=",".join(JOBS), help=f"Comma-separated, of {', '.join(JOBS)}.")
    ap.add_argument("--work", type=Path, default=Path("/tmp/onnxviz-storm"))
    ap.add_argument("--json", type=Path, default=None, help="Write the results here.")
    args = ap.parse_args()
    jobs = [j.strip() for j in args.jobs.split(",") if j.strip()]
    unknown = sorted(set(jobs) - set(JOBS))
    if unknown:
        ap.error(f"unknown jobs {unknown}; choose from {', '.join(JOBS)}")
    from digits import digits_images, export_digits, save_digit_folder, train_digits

    shutil.rmtree(args.work, ignore_errors=True)
    w = args.work
    (w / "photos").mkdir(parents=True)
    model = export_digits(train_digits()[0], w / "digits.onnx")
    images, labels = digits_images()
    photos = save_digit_folder(images, labels, w / "photos", args.images)
    run = w / "ref" / "run"  # the reference: mined and rendered without a kill; what atlas and site read
    render = lambda out: _cli("render", model, "--layer", "relu_2", "--all", "--batch-size", "2",  # noqa: E731
                              "--steps", "8", "--size", "16", "--run", out, "--threads", "1", "--no-progress")
    atlas = lambda out: _cli("atlas", model, "--run", run, "--layer", "relu_2", "--grid", "6",  # noqa: E731
                             "--method", "pca", "--steps", "16", "--size", "16", "--batch-size", "4",
                             "--threads", "1", "--no-progress", "--out", out)
    site = lambda out: _cli("site", model, "--run", run, "--out", out, "--examples", "4")  # noqa: E731
    seconds = {"mine": _timed(_mine_argv(model, photos, w / "ref" / "mine")),
               "render": _timed(render(w / "ref" / "render"))}
    shutil.copytree(w / "ref" / "mine", run)  # what atlas and site read (they add pictures to it)
    _timed(render(run))  # the site's renders, beside the mining they are checked against
    seconds["mine-ray"] = seconds["mine"]
    seconds["atlas"] = _timed(atlas(w / "ref" / "atlas"))
    seconds["site"] = _timed(site(w / "ref" / "site"))
    units = 32  # relu_2 of the digits CNN: one record (PNG + JSON) per unit, written by batches of 2
    ray = None
    if "mine-ray" in jobs:
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    new_files = lambda out, before: sum(before.get(k) != v for k, v in storm.files(out).items())  # noqa: E731
    s = w / "storm"
    table = {
        "mine": storm.Job("mine", _mine_argv(model, photos, s / "mine"), s / "mine" / "mining",
                          w / "ref" / "mine" / "mining",
                          lambda out, b: storm.mined(out / "mining.sqlite"), args.images),
        "mine-ray": storm.Job("mine-ray", _mine_argv(model, photos, s / "mine-ray",
                                                     ray.get_runtime_context().gcs_address if ray else None),
                              s / "mine-ray" / "mining", w / "ref" / "mine" / "mining",
                              lambda out, b: storm.mined(out / "mining.sqlite"), args.images),
        "render": storm.Job("render", render(s / "render"), s / "render" / "render", w / "ref" / "render" / "render",
                            lambda out, b: len(list(out.rglob("*.json"))), units),
        "atlas": storm.Job("atlas", atlas(s / "atlas"), s / "atlas", w / "ref" / "atlas", None, None, False,
                           "atlas.json"),
        "site": storm.Job("site", site(s / "site"), s / "site", w / "ref" / "site", new_files,
                          len(storm.files(w / "ref" / "site")), False, "index.html"),
    }
    rng = random.Random(args.seed)
    results = []
    try:
        for name in jobs:
            r = storm.storm(table[name], args.kills, random.Random(rng.randrange(2**32)), seconds[name])
            r["uninterrupted_seconds"] = round(seconds[name], 1)
            results.append(r)
            print(f"{name:9s} kills {r['kills']}/{r['asked']}  identical: {r['identical']}  "
                  f"({r['seconds']} s; uninterrupted {r['uninterrupted_seconds']} s)"
                  + "".join(f"\n    {d}" for d in r["differences"] + r["problems"]), flush=True)
    finally:
        if ray is not None:
            ray.shutdown()
    command = "python " + " ".join(shlex.quote(a) for a in ["scripts/kill_storm.py"] + sys.argv[1:])
    if args.json:
        args.json.write_text(json.dumps({"command": command, "seed": args.seed, "results": results}, indent=1) + "\n")
    return 0 if all(r["identical"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
