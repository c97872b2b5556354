"""Augmented views of the mined images: more activation vectors per photo for concepts and atlases.

A deep layer has few positions (MobileNetV2's block_14: 7x7 at 224 px), so a few hundred photos give
a few ten thousand vectors, too few for a 4x overcomplete dictionary. ``mine --atlas-views N`` runs
N more forward passes of every batch, each over a seeded random crop (60-100% of each side, anywhere
in the picture, resized back to the input size) flipped left-right half of the time, and samples the
atlas layers of each view as it samples the photo itself. The statistics of the views are not used:
dataset examples, top-k lists and spectra stay those of the photos.

Every draw comes from a generator keyed by (seed, image index, view), so a view is the same whatever
the batch size, interruption, shard or engine (samplers.py: merge-exact). A crop of the model input
is a crop of the photo: preprocessing is a per-channel affine map, which commutes with cropping and
(bilinear) resizing. View v's rows take slots ``v * per_image ...`` of the image (atlas_samples.py);
their (y, x) are positions in the view, not in the photo.
"""
from __future__ import annotations

import numpy as np

VIEW_KEY = 0x71E35  # separates these draws from the samplers' own (same seed)
SIDE = (0.6, 1.0)  # the crop's share of each side


def input_axes(meta, pixels: bool) -> tuple:
    """(height axis, width axis) of a batch: uint8 pixels are (B, H, W, 3); model input follows its layout."""
    return (1, 2) if pixels or meta.layout == "NHWC" else (2, 3)


def crop_box(seed: int, index: int, view: int, h: int, w: int) -> tuple:
    """(top, left, height, width, flip) of view ``view`` of image ``index``: its own generator, so the
    same image and view give the same crop in any batch."""
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, VIEW_KEY, int(index), int(view)])
    ch = max(1, int(round(h * rng.uniform(*SIDE))))
    cw = max(1, int(round(w * rng.uniform(*SIDE))))
    top = int(rng.integers(0, h - ch + 1))
    left = int(rng.integers(0, w - cw + 1))
    return top, left, ch, cw, bool(rng.random() < 0.5)


def _resize_axis(a: np.ndarray, axis: int, start: int, length: int, size: int) -> np.ndarray:
    """Bilinear resampling of ``a[start:start+length]`` along ``axis`` to ``size`` samples (pixel centres)."""
    pos = (np.arange(size, dtype=np.float64) + 0.5) * (length / size) - 0.5
    pos = np.clip(pos, 0, length - 1) + start
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, start + length - 1)
    t = (pos - lo).astype(np.float32)
    shape = [1] * a.ndim
    shape[axis] = size
    t = t.reshape(shape)
    return np.take(a, lo, axis=axis) * (1 - t) + np.take(a, hi, axis=axis) * t


def view_batch(batch: np.ndarray, indices, view: int, seed: int, axes: tuple) -> np.ndarray:
    """View ``view`` (>= 1) of every image of ``batch`` (their indices ``indices``), same shape and dtype."""
    batch = np.asarray(batch)
    ya, xa = axes
    h, w = batch.shape[ya], batch.shape[xa]
    out = np.empty_like(batch)
    for b, idx in enumerate(np.asarray(indices, np.int64)):
        top, left, ch, cw, flip = crop_box(seed, int(idx), view, h, w)
        img = batch[b].astype(np.float32)
        img = _resize_axis(img, ya - 1, top, ch, h)
        img = _resize_axis(img, xa - 1, left, cw, w)
        if flip:
            img = np.flip(img, axis=xa - 1)
        out[b] = np.clip(np.rint(img), 0, 255) if batch.dtype == np.uint8 else img
    return out


def view_maps(samplers, run, batch: np.ndarray, indices, axes: tuple) -> list:
    """[(view, atlas maps)] of the ``samplers.views`` augmented views of one batch (``run``: the runner's
    ``run``, returning (stats, maps) with ``maps=True``); [] when the run asked for none."""
    if samplers is None or not samplers.views or not samplers.atlas:
        return []
    return [(view, run(view_batch(batch, indices, view, samplers.seed, axes), maps=True)[1])
            for view in range(1, samplers.views + 1)]


def offer_views(samplers, run, batch: np.ndarray, indices, axes: tuple) -> None:
    """Run one batch's augmented views and offer their atlas maps to the samplers (``view_maps``)."""
    for view, maps in view_maps(samplers, run, batch, indices, axes):
        samplers.offer_view(maps, indices, view)


__all__ = ["crop_box", "input_axes", "offer_views", "view_batch", "view_maps"]
