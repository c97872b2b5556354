"""Gather the real photos that ship inside installed packages into one folder.

    python scripts/collect_photos.py data/photos               # Python packages + Debian packages
    python scripts/collect_photos.py data/photos --no-debian   # installed Python packages only

Debian packages (``apt-get download``, cached in data/.debcache, unpacked with ``dpkg -x``, never
installed): tuxpaint-stamps-default (about 700 photographic cut-outs of animals, food, plants,
vehicles, composited on white by the loader), opencv-doc's example photos, and the photo
wallpapers of mate-backgrounds, gnome-backgrounds, plasma-workspace-wallpapers and
sway-backgrounds (the largest size of each). Every photo is stored as a JPEG at most 512 px on
its long side: mining decodes it at 224 px anyway, and small files keep the demo fast on 2 cores.

Sources (all real photographs, see ../docs/zoo.md "Data and weights that ship offline"): foolbox's 20 labelled ImageNet validation
photos, scikit-image's sample photos, scikit-learn's two sample images, matplotlib's Grace Hopper,
and onnxviz's own bundled cat.
"""
from __future__ import annotations

import os
import re
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
    from onnxviz.zoo import imagenet_photos  # finds foolbox's data without importing foolbox

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
    import onnxviz.preprocessing.images

    shutil.copy(onnxviz.preprocessing.images.sample_image_path(), out / "onnxviz_chelsea.jpg")
    written.append(out / "onnxviz_chelsea.jpg")
    return written


DEBIAN = ("tuxpaint-stamps-default", "opencv-doc", "mate-backgrounds", "gnome-backgrounds",
          "plasma-workspace-wallpapers", "sway-backgrounds")
_SKIP = re.compile(r"(left|right)\d|chessboard|calib|pattern|mask|_mirror|thumb|icon|logo|text|aloe|graf|"
                   r"box|templ|digits|alpha|symbol|\bkeyboard", re.I)
MAX_SIDE = 512


def debian_photos(out: Path, cache: Path) -> list:
    """Photos from Debian packages (downloaded once into ``cache``, unpacked, never installed)."""
    import subprocess

    if not shutil.which("apt-get") or not shutil.which("dpkg"):
        print("apt-get/dpkg not found: skipping the Debian packages' photos", file=sys.stderr)
        return []
    cache.mkdir(parents=True, exist_ok=True)
    written = []
    for pkg in DEBIAN:
        debs = sorted(cache.glob(f"{pkg}_*.deb"))
        if not debs:
            r = subprocess.run(["apt-get", "download", pkg], cwd=cache, capture_output=True, text=True)
            debs = sorted(cache.glob(f"{pkg}_*.deb"))
            if r.returncode or not debs:
                print(f"cannot download {pkg}: {(r.stderr or r.stdout).strip().splitlines()[-1:]}", file=sys.stderr)
                continue
        root = cache / pkg
        if not root.exists():
            subprocess.run(["dpkg", "-x", str(debs[-1]), str(root)], check=True)
        for src in _pick(pkg, root):
            dst = out / f"{pkg.split('-')[0]}_{re.sub(r'[^A-Za-z0-9._-]+', '_', str(src.relative_to(root)))[-80:]}"
            dst = dst.with_suffix(".jpg")
            if _save_small(src, dst):
                written.append(dst)
        print(f"{pkg}: {sum(1 for w in written if w.name.startswith(pkg.split('-')[0] + '_'))} photos")
    return written


def _pick(pkg: str, root: Path) -> list:
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
    if pkg == "tuxpaint-stamps-default":
        return [p for p in files if "/stamps/" in p.as_posix() and not _SKIP.search(p.as_posix())]
    if pkg == "opencv-doc":
        return [p for p in files if "/examples/data/" in p.as_posix() and p.suffix.lower() == ".jpg"
                and not _SKIP.search(p.name)]
    if pkg == "plasma-workspace-wallpapers":  # one (the largest) size per wallpaper
        best: dict = {}
        for p in files:
            parts = p.parts
            name = parts[parts.index("wallpapers") + 1] if "wallpapers" in parts else p.parent.name
            if name not in best or p.stat().st_size > best[name].stat().st_size:
                best[name] = p
        return sorted(best.values())
    return [p for p in files if "backgrounds" in p.as_posix() or "wallpapers" in p.as_posix()]


def _save_small(src: Path, dst: Path) -> bool:
    """A JPEG of at most MAX_SIDE px (transparent cut-outs on white); False for tiny or unreadable files."""
    import onnxviz.preprocessing.images

    try:
        with Image.open(src) as im:
            if min(im.size) < 96:
                return False
            im.draft("RGB", (MAX_SIDE, MAX_SIDE))
            rgb = onnxviz.preprocessing.images._to_rgb(im)
        rgb.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.BICUBIC)
        rgb.save(dst, quality=90)
        return True
    except Exception as exc:  # noqa: BLE001 - a package's odd file is skipped, not fatal
        print(f"skipped {src.name}: {exc}", file=sys.stderr)
        return False


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    target = Path(args[0] if args else "data/photos")
    files = collect(target)
    if "--no-debian" not in sys.argv:
        files += debian_photos(target, Path(os.environ.get("ONNXVIZ_DEB_CACHE", "data/.debcache")))
    print(f"{len(files)} real photos in {target}")
