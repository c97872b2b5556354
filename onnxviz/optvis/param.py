"""How the image is parameterized: pure functions returning ``(params, image_f)``.

``params`` is the list of tensors the optimizer updates; ``image_f()`` renders the batch as an
onnxviz image, (N, 3, H, W) RGB in [0, 1]. The pieces compose as plain functions (Lucid/Lucent):
a pixel or FFT (spectral, 1/f-decayed) parameterization of a *decorrelated* color space, mapped to
RGB by a color matrix, then squashed into [0, 1] by a sigmoid. Every random draw takes an explicit
``torch.Generator`` (on the CPU, so a seed gives the same start on every device).

The color matrix is per model data: Lucid's ImageNet matrix by default, or estimated from a
folder of the model's own kind of images with ``color_matrix_from_images``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import numpy as np
import torch

# Lucid's square root of the ImageNet RGB covariance (columns: decorrelated directions).
IMAGENET_COLOR_MATRIX = np.array([[0.26, 0.09, 0.02],
                                  [0.27, 0.00, -0.05],
                                  [0.27, -0.09, 0.03]], dtype=np.float32)


def normalized_color_matrix(matrix=None) -> torch.Tensor:
    """The color matrix scaled so its largest column norm is 1 (as Lucid does)."""
    m = IMAGENET_COLOR_MATRIX if matrix is None else np.asarray(matrix, dtype=np.float32)
    if m.shape != (3, 3):
        raise ValueError(f"a color matrix is 3x3, got shape {m.shape}")
    m = m / np.max(np.linalg.norm(m, axis=0))
    return torch.from_numpy(np.ascontiguousarray(m, dtype=np.float32))


def color_matrix_from_images(images: Union[str, Path, np.ndarray, Iterable], max_images: int = 500,
                             size: int = 64) -> np.ndarray:
    """Estimate a color matrix (3, 3) from images: U * sqrt(S) of the RGB pixel covariance.

    ``images``: a folder (every image file in it, recursively), or an array (N, 3, H, W) in [0, 1].
    Unreadable files are skipped; none readable -> ImageError.
    """
    from ..errors import ImageError
    from ..preprocessing.images import image_files, load_image

    if isinstance(images, (str, Path)):
        folder = Path(images)
        files = image_files(folder, max_images)
        arrays = []
        for f in files:
            try:
                arrays.append(load_image(f, (size, size)).reshape(3, -1))
            except ImageError:
                continue
        if not arrays:
            raise ImageError(f"no readable images in {folder}")
        pixels = np.concatenate(arrays, axis=1)
    else:
        arr = np.asarray(images, dtype=np.float32)
        pixels = arr.transpose(1, 0, 2, 3).reshape(3, -1)
    cov = np.cov(pixels.astype(np.float64))
    u, s, _ = np.linalg.svd(cov)
    m = u * np.sqrt(np.maximum(s, 1e-12))[None, :]
    # sign convention: first column positive (like Lucid's matrix)
    m = m * np.where(m[0] < 0, -1.0, 1.0)[None, :]
    return m.astype(np.float32)


def _rfft2d_freqs(h: int, w: int) -> np.ndarray:
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[: w // 2 + 1] if w % 2 == 0 else np.fft.fftfreq(w)[: w // 2 + 1]
    return np.sqrt(fx * fx + fy * fy)


def _randn(shape, sd: float, generator: Optional[torch.Generator], device=None) -> torch.Tensor:
    """Normal noise drawn on the CPU (same numbers on every device), then moved to ``device``."""
    t = torch.randn(*shape, generator=generator, dtype=torch.float32) * sd
    return t.to(device) if device is not None else t


def pixel_image(shape: Sequence[int], sd: float = 0.01, generator: Optional[torch.Generator] = None, device=None):
    """Raw pixel parameterization: (params, image_f) with image_f() -> (N, C, H, W), unbounded."""
    tensor = _randn(shape, sd, generator, device).requires_grad_(True)
    return [tensor], lambda: tensor


def fft_image(shape: Sequence[int], sd: float = 0.01, decay_power: float = 1.0,
              generator: Optional[torch.Generator] = None, device=None):
    """Spectral parameterization: Fourier coefficients scaled by 1 / f ** decay_power (Lucid)."""
    n, c, h, w = shape
    freqs = _rfft2d_freqs(h, w)
    spectrum = _randn((n, c) + freqs.shape + (2,), sd, generator, device).requires_grad_(True)
    scale = 1.0 / np.maximum(freqs, 1.0 / max(w, h)) ** decay_power
    # no extra sqrt(w*h) factor: with the orthonormal inverse FFT that would make every step
    # ~w times larger than Lucid's (its irfft2d divides by h*w) and saturate the image
    scale = torch.from_numpy(scale.astype(np.float32))[None, None, :, :, None]
    state = {"scale": scale}

    def inner():
        s = state["scale"]
        if s.device != spectrum.device:
            s = state["scale"] = s.to(spectrum.device)
        scaled = torch.view_as_complex((spectrum * s).contiguous())
        image = torch.fft.irfft2(scaled, s=(h, w), norm="ortho")
        return image[:n, :c, :h, :w] / 4.0

    inner.scale = scale
    return [spectrum], inner


def to_valid_rgb(image_f, decorrelate: bool = True, sigmoid: bool = True, color_matrix=None):
    """Map a parameterized image to RGB in [0, 1]: decorrelated color -> RGB, then sigmoid.

    A one-channel image (grayscale models) is repeated to three equal channels.
    """
    m = normalized_color_matrix(color_matrix)
    state = {"m": m}

    def inner():
        image = image_f()
        if image.shape[1] == 3 and decorrelate:
            mm = state["m"]
            if mm.device != image.device:
                mm = state["m"] = mm.to(image.device)
            image = torch.einsum("nchw,dc->ndhw", image, mm)
        image = torch.sigmoid(image) if sigmoid else (image.clamp(-1, 1) + 1) / 2
        if image.shape[1] == 1:
            image = image.expand(-1, 3, -1, -1)
        return image

    return inner


def image(w: int, h: Optional[int] = None, batch: int = 1, sd: float = 0.01, decorrelate: bool = True,
          fft: bool = True, channels: int = 3, generator: Optional[torch.Generator] = None,
          color_matrix=None, decay_power: float = 1.0, device=None):
    """The standard parameterization (Lucid's ``param.image``): (params, image_f).

    image_f() -> (batch, 3, h, w) RGB in [0, 1]. ``channels=1`` makes a grayscale image (for
    grayscale models, whose input ignores color anyway).
    """
    h = h or w
    shape = (batch, channels, h, w)
    params, image_f = (fft_image(shape, sd, decay_power, generator, device) if fft
                       else pixel_image(shape, sd, generator, device))
    return params, to_valid_rgb(image_f, decorrelate=decorrelate and channels == 3, color_matrix=color_matrix)


def from_photo(photo, fft: bool = True, decorrelate: bool = True, color_matrix=None, batch: int = 1,
               grayscale: bool = False, decay_power: float = 1.0, device=None):
    """A parameterization that starts exactly at ``photo`` ((3, H, W) or (N, 3, H, W) in [0, 1]).

    Inverts the sigmoid, the color matrix and (with ``fft``) the spectral scaling, so image_f()
    returns the photo (clipped to [0.005, 0.995]) before the first step.
    """
    x = torch.as_tensor(np.asarray(photo, dtype=np.float32))
    if x.dim() == 3:
        x = x[None]
    if x.shape[0] == 1 and batch > 1:
        x = x.expand(batch, -1, -1, -1)
    if grayscale:
        x = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    n, c, h, w = x.shape
    y = torch.logit(x.clamp(0.005, 0.995))
    if c == 3 and decorrelate:
        m = normalized_color_matrix(color_matrix)
        y = torch.einsum("nchw,dc->ndhw", y, torch.linalg.inv(m))
    if fft:
        params, base = fft_image((n, c, h, w), sd=0.0, decay_power=decay_power, device=device)
        spec = torch.fft.rfft2(y * 4.0, norm="ortho")
        spec = (torch.view_as_real(spec) / base.scale).to(params[0].device)
        with torch.no_grad():
            params[0].copy_(spec)
    else:
        params, base = pixel_image((n, c, h, w), sd=0.0, device=device)
        with torch.no_grad():
            params[0].copy_(y.to(params[0].device))
    return params, to_valid_rgb(base, decorrelate=decorrelate and c == 3, color_matrix=color_matrix)
