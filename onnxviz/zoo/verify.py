"""Checks that an export is faithful: onnxruntime against the framework model on real labelled photos,
and every alias of the recipe resolving in the exported file.

The photos are foolbox's 20 ImageNet validation images (class in the file name), which ship in a
pip package; without foolbox the bundled cat photo is used.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..preprocessing.images import imagenet_photos
from .registry import ExportError

# onnxruntime vs framework: max |difference| of the outputs allowed, relative to the largest |output|
# (plus 1e-6 absolute)
RTOL = 1e-3


def photo_batch(meta, paths) -> np.ndarray:
    """Model input for photos, exactly as onnxviz prepares it (load_for_model + to_model_input)."""
    from ..preprocessing.images import load_for_model

    images = np.stack([load_for_model(p, meta) for p in paths]).astype(np.float32)
    return meta.to_model_input(images)


def default_photos() -> list:
    photos = imagenet_photos()
    if not photos:
        from ..preprocessing.images import sample_image_path

        photos = [(sample_image_path(), -1)]
    return photos


def ort_session(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def verify(model, onnx_path: Path, meta, photos=None, rtol: float = RTOL) -> dict:
    """Compare onnxruntime with the framework model on real photos; raise ExportError when they disagree.

    Returns n, max_abs_diff, scale (largest |output|), rel_diff, top1_agree (argmax identical on
    every photo) and top1_torch / top1_ort (correct count on labelled ImageNet photos; only
    meaningful for a 1000-class output). Beyond ``rtol`` the float64 outputs decide: onnxruntime
    passes when it is as close to them as the framework's own float32 result (ort_vs_float64,
    torch_vs_float64 are then added).
    """
    import torch

    photos = default_photos() if photos is None else photos
    x = photo_batch(meta, [p for p, _ in photos])
    with torch.no_grad():
        ref = np.concatenate([model(torch.from_numpy(x[i:i + 8])).numpy() for i in range(0, len(x), 8)])
    sess = ort_session(onnx_path)
    name = sess.get_inputs()[0].name
    got = np.concatenate([sess.run(None, {name: x[i:i + 8]})[0] for i in range(0, len(x), 8)])
    ref, got = ref.reshape(len(x), -1), got.reshape(len(x), -1)
    labels = np.array([c for _, c in photos])
    diff = float(np.abs(ref - got).max())
    scale = float(max(1e-3, np.abs(ref).max()))
    result = {
        "n": len(photos), "max_abs_diff": diff, "scale": scale, "rel_diff": diff / scale,
        "top1_agree": bool((ref.argmax(1) == got.argmax(1)).all()),
        "top1_torch": int((ref.argmax(1) == labels).sum()), "top1_ort": int((got.argmax(1) == labels).sum()),
    }
    if diff > rtol * scale + 1e-6:
        # deep nets with random weights amplify float32 rounding: then judge both against float64
        exact = _float64_outputs(model, x)
        if exact is None:
            raise ExportError(f"onnxruntime disagrees with the framework model: max |diff| {diff:.3g} > "
                              f"{rtol:g} x {scale:.3g}")
        ort_err, torch_err = float(np.abs(got - exact).max()), float(np.abs(ref - exact).max())
        result.update(ort_vs_float64=ort_err / scale, torch_vs_float64=torch_err / scale)
        if ort_err > max(rtol * scale, 2 * torch_err) + 1e-6:
            raise ExportError(f"onnxruntime disagrees with the framework model: max |diff| {diff:.3g} > "
                              f"{rtol:g} x {scale:.3g}; vs float64: onnxruntime {ort_err:.3g}, "
                              f"framework float32 {torch_err:.3g}")
    return result


def _float64_outputs(model, x: np.ndarray):
    """The model's outputs computed in float64 (None when the model cannot be cast)."""
    import copy

    import torch

    try:
        exact = copy.deepcopy(model).double()
        with torch.no_grad():
            out = np.concatenate([exact(torch.from_numpy(x[i:i + 8]).double()).numpy()
                                  for i in range(0, len(x), 8)])
    except (RuntimeError, TypeError, AttributeError):
        return None
    return out.reshape(len(x), -1)


def check_aliases(onnx_path: Path, meta) -> list:
    """Aliases that onnxviz cannot resolve in the exported file."""
    from ..model import load

    m = load(str(onnx_path))
    bad = []
    for alias in meta.aliases:
        try:
            m.layer(alias)
        except Exception:  # noqa: BLE001 - report every alias that fails, whatever the reason
            bad.append(alias)
    return bad
