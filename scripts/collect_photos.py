"""Gather the real photos that ship inside installed packages into one folder (no download).

    python scripts/collect_photos.py data/photos

Sources (all real photographs, see ../README.md "Data"): foolbox's 20 labelled ImageNet validation
photos, scikit-image's sample photos, scikit-learn's two sample images, matplotlib's Grace Hopper,
and onnxviz's own bundled cat.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def collect(out: Path, jpeg: bool = False) -> list:
    """Copy or write every photo found into ``out``; returns the paths. ``jpeg``: decoded sample
    images are written as JPEG (quality 90) instead of PNG, so every file is a JPEG."""
    out.mkdir(parents=True, exist_ok=True)
    ext, opts = (".jpg", {"quality": 90}) if jpeg else (".png", {})
    written = []
    from export import imagenet_photos  # scripts/export.py: finds foolbox's data without importing foolbox

    labelled = imagenet_photos()
    for p, _ in labelled:
        shutil.copy(p, out / p.name)
        written.append(out / p.name)
    if not labelled:
        print("foolbox not installed: skipping its ImageNet photos", file=sys.stderr)
    try:
        import skimage.data as sd

        for name in ("astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "hubble_deep_field", "retina",
                     "immunohistochemistry", "camera", "coins", "moon", "clock", "brick", "grass", "gravel"):
            try:
                arr = np.asarray(getattr(sd, name)())
            except Exception:  # noqa: BLE001 - some need a download; skip those
                continue
            if arr.ndim == 3 and arr.shape[-1] == 4:
                arr = arr[..., :3]
            Image.fromarray(arr).save(out / f"skimage_{name}{ext}", **opts)
            written.append(out / f"skimage_{name}{ext}")
    except ImportError:
        print("scikit-image not installed: skipping its photos", file=sys.stderr)
    try:
        from sklearn.datasets import load_sample_images

        imgs = load_sample_images()
        for name, arr in zip(imgs.filenames, imgs.images):
            dst = out / f"sklearn_{Path(name).stem}{'.jpg' if jpeg else Path(name).suffix}"
            Image.fromarray(arr).save(dst, **opts)
            written.append(dst)
    except ImportError:
        print("scikit-learn not installed: skipping its sample images", file=sys.stderr)
    try:
        import matplotlib

        src = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
        if src.exists():
            shutil.copy(src, out / "grace_hopper.jpg")
            written.append(out / "grace_hopper.jpg")
    except ImportError:
        pass
    import onnxviz.images

    shutil.copy(onnxviz.images.sample_image_path(), out / "onnxviz_chelsea.jpg")
    written.append(out / "onnxviz_chelsea.jpg")
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "data/photos")
    files = collect(target)
    print(f"{len(files)} real photos in {target}")
