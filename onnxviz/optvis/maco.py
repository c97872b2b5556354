"""MACO (Fel et al. 2023): optimize the Fourier *phase* only, the magnitude fixed to a photo spectrum.

Lucid's FFT parameterization lets every Fourier coefficient move; deep and transformer models then
pull the image towards high-frequency texture. MACO keeps the amplitude spectrum of natural photos
and optimizes only the phase, so every render has a photo's power at every frequency:

    params, image_f = maco(224, generator=g)           # phase (N, 3, H, W//2+1), magnitude fixed
    render(model, "block_7:12", param_f=lambda g, dev: maco(224, generator=g, device=dev))

The spectrum is data: ``spectrum_from_images(folder, size)`` estimates one (mean magnitude of the
2-D real FFT, per decorrelated color channel); ``default_spectrum()`` reads the one that ships in
``onnxviz/data/maco_spectrum.npz``, computed by ``scripts/make_spectrum.py`` from the real photos
that ship in pip packages. Nothing is downloaded.

The transparency map (MACO's pixel importance) is the |gradient| of the objective w.r.t. the image
accumulated over the optimization: ``render`` returns it as ``RenderResult.importance``;
``importance_png`` writes it beside the image.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from . import param as param_mod

LR = 0.2  # Adam step on the phase (radians): best of 0.05 / 0.2 / 0.5 on MobileNetV2 units, 64 steps
SPECTRUM_FILE = Path(__file__).resolve().parent.parent / "data" / "maco_spectrum.npz"


def _decorrelate(rgb: np.ndarray, color_matrix=None) -> np.ndarray:
    """(N, 3, H, W) RGB in [0, 1] -> the decorrelated color space ``to_valid_rgb`` maps back from."""
    m = param_mod.normalized_color_matrix(color_matrix).numpy()
    centered = rgb - rgb.mean(axis=(2, 3), keepdims=True)
    return np.einsum("nchw,dc->ndhw", centered, np.linalg.inv(m))


def spectrum_from_images(images: Union[str, Path, np.ndarray, Iterable], size: int = 224, max_images: int = 1000,
                         color_matrix=None) -> np.ndarray:
    """Mean Fourier magnitude (3, size, size//2+1) of photos, per decorrelated color channel.

    ``images``: a folder (every image file in it, recursively), a list of paths, or an array
    (N, 3, size, size) in [0, 1]. Photos are resized and center-cropped to size x size. Unreadable
    files are skipped; none readable -> ImageError.
    """
    from ..errors import ImageError
    from ..preprocessing.images import image_files, load_image

    if isinstance(images, np.ndarray):
        arr = np.asarray(images, dtype=np.float32)
    else:
        if isinstance(images, (str, Path)):
            folder = Path(images)
            files = image_files(folder)
            where = str(folder)
        else:
            files, where = [Path(p) for p in images], "the given paths"
        arrays = []
        for f in files[:max_images]:
            try:
                arrays.append(load_image(f, (size, size)))
            except ImageError:
                continue
        if not arrays:
            raise ImageError(f"no readable images in {where}")
        arr = np.stack(arrays)
    if arr.ndim != 4 or arr.shape[1] != 3:
        raise ImageError(f"spectrum_from_images needs (N, 3, H, W) images, got shape {arr.shape}")
    mags = np.abs(np.fft.rfft2(_decorrelate(arr.astype(np.float64), color_matrix), norm="ortho"))
    return mags.mean(axis=0).astype(np.float32)


def save_spectrum(spectrum: np.ndarray, path, sources: Iterable = ()) -> Path:
    """Write a spectrum as a small .npz (float16 magnitude + the list of source photos)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    import io

    from ..files import write_bytes

    buf = io.BytesIO()
    np.savez_compressed(buf, magnitude=np.asarray(spectrum, dtype=np.float16),
                        sources=np.asarray([str(s) for s in sources], dtype=str))
    write_bytes(path, buf.getvalue())
    return path


def load_spectrum(path) -> np.ndarray:
    """A spectrum from ``save_spectrum``'s .npz or a plain .npy, as float32 (3, H, W//2+1)."""
    path = Path(path)
    data = np.load(path, allow_pickle=False)
    mag = data["magnitude"] if isinstance(data, np.lib.npyio.NpzFile) else data
    mag = np.asarray(mag, dtype=np.float32)
    if mag.ndim != 3 or mag.shape[0] != 3:
        from ..errors import ImageError

        raise ImageError(f"{path}: a MACO spectrum is (3, H, W//2+1), got shape {mag.shape}")
    return mag


def default_spectrum() -> np.ndarray:
    """The spectrum that ships with onnxviz (real photos from pip packages; see scripts/make_spectrum.py)."""
    return load_spectrum(SPECTRUM_FILE)


def resize_spectrum(spectrum: np.ndarray, h: int, w: int) -> torch.Tensor:
    """A (3, H0, W0//2+1) magnitude resampled to (3, h, w//2+1) on the frequency grid (fftshifted in y)."""
    mag = torch.as_tensor(np.asarray(spectrum, dtype=np.float32))
    if tuple(mag.shape[-2:]) == (h, w // 2 + 1):
        return mag.clone()
    shifted = torch.fft.fftshift(mag, dim=-2)[None]
    out = F.interpolate(shifted, size=(h, w // 2 + 1), mode="bilinear", align_corners=True)[0]
    return torch.fft.ifftshift(out, dim=-2).clamp_min(0)


def maco(w: int, h: Optional[int] = None, batch: int = 1, spectrum=None, generator: Optional[torch.Generator] = None,
         device=None, color_matrix=None, phase_sd: float = 1.0):
    """MACO parameterization: (params, image_f); params = [phase (batch, 3, h, w//2+1)].

    image_f() -> (batch, 3, h, w) RGB in [0, 1]: irfft2(magnitude * exp(i * phase)), standardized
    per image, recorrelated with the color matrix, then a sigmoid (as in Fel et al.'s code).
    ``spectrum``: a (3, H, W//2+1) magnitude (array or .npz/.npy path), default ``default_spectrum()``;
    it is resampled to the size. ``image_f.magnitude`` is the fixed magnitude tensor (never a param).
    """
    h = h or w
    if spectrum is None:
        spectrum = default_spectrum()
    elif isinstance(spectrum, (str, Path)):
        spectrum = load_spectrum(spectrum)
    magnitude = resize_spectrum(spectrum, h, w)
    if device is not None:
        magnitude = magnitude.to(device)
    phase = param_mod._randn((batch, 3, h, w // 2 + 1), phase_sd, generator, device).requires_grad_(True)
    state = {"mag": magnitude}

    def image():
        mag = state["mag"]
        if mag.device != phase.device:
            mag = state["mag"] = mag.to(phase.device)
        spec = torch.polar(mag.expand_as(phase), phase)
        img = torch.fft.irfft2(spec, s=(h, w), norm="ortho")
        flat = img.flatten(1)
        img = (img - flat.mean(1).view(-1, 1, 1, 1)) / (flat.std(1).view(-1, 1, 1, 1) + 1e-8)
        return img

    image_f = param_mod.to_valid_rgb(image, decorrelate=True, color_matrix=color_matrix)
    image_f.magnitude = magnitude
    image_f.phase = phase
    return [phase], image_f


def maco_param_f(size, spectrum=None, color_matrix=None):
    """A ``render`` param_f ``(generator, device) -> (params, image_f)``; batch fixed at call time."""
    h, w = (size, size) if isinstance(size, int) else tuple(size)

    def param_f(generator, device, batch: int = 1):
        return maco(w, h, batch=batch, spectrum=spectrum, generator=generator, device=device,
                    color_matrix=color_matrix)

    param_f.__name__ = "maco, decorrelated color, phase sd 1.0"
    param_f.takes_batch = True
    return param_f


def importance_image(importance: np.ndarray, percentile: float = 99.0) -> np.ndarray:
    """An accumulated |gradient| map (H, W) -> (H, W) in [0, 1] (clipped at ``percentile``), for a PNG."""
    imp = np.asarray(importance, dtype=np.float64)
    top = np.percentile(imp, percentile) if imp.size else 0.0
    if not top > 0:
        return np.zeros_like(imp, dtype=np.float32)
    return np.clip(imp / top, 0, 1).astype(np.float32)


def transparent(image: np.ndarray, importance: np.ndarray) -> np.ndarray:
    """The render with its importance as alpha: (H, W, 4) uint8 RGBA (MACO's transparency view)."""
    rgb = (np.clip(np.asarray(image, dtype=np.float32).transpose(1, 2, 0), 0, 1) * 255 + 0.5).astype(np.uint8)
    alpha = (importance_image(importance) * 255 + 0.5).astype(np.uint8)
    return np.dstack([rgb, alpha])
