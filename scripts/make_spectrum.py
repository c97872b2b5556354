"""Compute MACO's default spectrum from the real photos that ship in pip packages (no download).

    python scripts/make_spectrum.py                      # -> onnxviz/data/maco_spectrum.npz
    python scripts/make_spectrum.py --photos data/photos --size 224 --out my_spectrum.npz

Photos: scripts/collect_photos.py's set (foolbox's ImageNet photos, scikit-image, scikit-learn,
matplotlib's Grace Hopper, onnxviz's cat), or any folder. Grayscale and texture-free scans
(camera, coins, moon, hubble, retina) are left out by default: a color spectrum of color photos.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

SKIP = ("camera", "coins", "moon", "hubble", "retina", "immunohistochemistry")


def main() -> None:
    from onnxviz.optvis.maco import SPECTRUM_FILE, save_spectrum, spectrum_from_images

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", help="folder of photos (default: collect the packaged ones)")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--out", default=str(SPECTRUM_FILE))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.photos:
            files = sorted(p for p in Path(args.photos).rglob("*") if p.is_file())
        else:
            from collect_photos import collect

            files = [p for p in collect(Path(tmp)) if not any(s in p.name for s in SKIP)]
        spectrum = spectrum_from_images(files, size=args.size)
        out = save_spectrum(spectrum, args.out, sources=[p.name for p in files])
    print(f"{len(files)} photos -> {out} {tuple(spectrum.shape)} ({out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
