"""Reading real photos into onnxviz images (float32, RGB, [0, 1]) at a model's input size.

Any file PIL can open works: grayscale, RGBA (composited on white), palette, CMYK, 16-bit,
huge (decoded at reduced size with ``draft``) and tiny images. Anything else raises ImageError,
which callers that walk datasets catch, count and skip.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Union

import numpy as np
from PIL import Image

from ..errors import ImageError

Image.MAX_IMAGE_PIXELS = 400_000_000  # allow big photos; decompression bombs beyond this still fail
# file names that are taken for images when walking folders and archives
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm",
                  ".jfif", ".jpe", ".tga", ".ico"}


def image_files(folder: Union[str, Path], limit: Optional[int] = None) -> list:
    """Every image file under ``folder`` (recursively, by suffix), sorted, the first ``limit`` if given:
    the one listing of a photo folder that renders, checks and benchmarks share."""
    files = sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return files[:limit] if limit else files


_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def open_rgb(source: Union[str, Path, Image.Image, bytes], draft_size: Optional[tuple] = None) -> Image.Image:
    """Open an image file (or bytes, or a PIL image) as an 8-bit RGB PIL image."""
    try:
        if isinstance(source, Image.Image):
            img = source
        else:
            if isinstance(source, (bytes, bytearray)):
                import io

                img = Image.open(io.BytesIO(source))
            else:
                path = Path(source)
                if not path.exists():
                    raise ImageError(f"image file not found: {path}")
                img = Image.open(path)
            if draft_size is not None and img.format == "JPEG":
                img.draft("RGB", (draft_size[1], draft_size[0]))
            _check_pixels(img)
            img.load()
        return _to_rgb(img)
    except ImageError as exc:
        if isinstance(source, (str, Path)) and str(source) not in str(exc):
            raise ImageError(f"{source}: {exc}") from exc
        raise
    except Exception as exc:  # PIL raises many types for bad files
        what = f" {source}" if not isinstance(source, (bytes, bytearray)) else ""  # a dataset names its own key
        why = re.sub(r"<_io\.BytesIO object at 0x[0-9a-f]+>", "the data", str(exc))  # same text in every run
        if isinstance(exc, Image.DecompressionBombError):
            why = "it declares more pixels than any photo (a decompression bomb or a damaged header)"
        raise ImageError(f"cannot read image{what}: {why or type(exc).__name__}") from exc


def _check_pixels(img: Image.Image) -> None:
    """Refuse, before decoding, an image whose header declares more pixels than Image.MAX_IMAGE_PIXELS
    (after JPEG draft, which decodes big photos at reduced size)."""
    w, h = img.size
    if w * h > Image.MAX_IMAGE_PIXELS:
        raise ImageError(f"it declares {w}x{h} pixels, more than {Image.MAX_IMAGE_PIXELS:,} (a decompression bomb "
                         "or a damaged header); skipped")


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        img = Image.fromarray(arr.astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert("RGB")


def _geometry(image_size: tuple, size: tuple, resize: Optional[int]) -> tuple:
    """(resized width, resized height, left, top): the shorter side scaled to ``resize`` (or so that
    the crop fits), then a center crop of ``size`` (h, w) at (left, top) of the resized image."""
    iw, ih = image_size
    h, w = size
    short = resize if resize else max(h, w)
    scale = short / min(iw, ih)
    nw, nh = max(w, round(iw * scale)), max(h, round(ih * scale))
    return nw, nh, (nw - w) // 2, (nh - h) // 2


def fit(img: Image.Image, size: tuple, resize: Optional[int] = None, interpolation: str = "bilinear") -> Image.Image:
    """Resize the shorter side (to ``resize``, or so the crop fits) then center-crop to size (h, w).

    Done as one resize of the cropped region (Pillow's ``box``): the same filter at the same
    positions as resizing the whole image and cropping (values differ by at most 1 in under 1%
    of pixels, from rounding), without resampling the pixels the crop drops: 1.4 -> 0.8 ms per
    photo, a sixth of mining's decode cost."""
    h, w = size
    nw, nh, left, top = _geometry(img.size, size, resize)
    sx, sy = img.size[0] / nw, img.size[1] / nh
    return img.resize((w, h), _RESAMPLE.get(interpolation, Image.Resampling.BILINEAR),
                      box=(left * sx, top * sy, (left + w) * sx, (top + h) * sy))


def crop_box(image_size: tuple, size: tuple, resize: Optional[int] = None) -> tuple:
    """The box (left, top, right, bottom) in original pixels that ``fit`` maps to the model input.

    Mining uses it to turn a position in the model input back into a crop of the original photo.
    """
    iw, ih = image_size
    h, w = size
    nw, nh, left, top = _geometry(image_size, size, resize)
    sx, sy = iw / nw, ih / nh
    return (left * sx, top * sy, (left + w) * sx, (top + h) * sy)


def load_pixels(source, size: Optional[tuple] = None, resize: Optional[int] = None,
                interpolation: str = "bilinear") -> np.ndarray:
    """A photo as uint8 (H, W, 3) RGB, resized and center-cropped when size is given (JPEGs are
    decoded at reduced size with ``draft`` when they are at least twice as large as needed)."""
    img = open_rgb(source, draft_size=(2 * size[0], 2 * size[1]) if size else None)
    if size is not None:
        img = fit(img, size, resize, interpolation)
    return np.asarray(img)


def pixels_to_images(pixels: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W) in [0, 1], in one pass into contiguous memory.

    Mining decodes to uint8 in its threads and converts whole batches here: the same numbers as
    converting image by image, at a fraction of the cost (no strided float arithmetic per image).
    """
    out = np.empty((pixels.shape[0], pixels.shape[3], pixels.shape[1], pixels.shape[2]), np.float32)
    out[...] = pixels.transpose(0, 3, 1, 2)
    out /= np.float32(255.0)
    return out


def load_image(source, size: Optional[tuple] = None, resize: Optional[int] = None,
               interpolation: str = "bilinear") -> np.ndarray:
    """A photo as float32 (3, H, W), RGB in [0, 1]; resized and center-cropped when size is given."""
    return pixels_to_images(load_pixels(source, size, resize, interpolation)[None])[0]


def load_for_model(source, meta) -> np.ndarray:
    """A photo as an onnxviz image (3, H, W) at the model's input size and crop (from its metadata)."""
    return load_image(source, tuple(meta.input_size), meta.resize, meta.interpolation)


def to_pil(array) -> Image.Image:
    """An image array as a PIL image: (3, H, W), (H, W, 3), (H, W) or a batch of one; float in [0, 1] or uint8."""
    arr = np.asarray(array)
    if arr.ndim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
        arr = arr.transpose(1, 2, 0)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.dtype != np.uint8:
        arr = (np.clip(arr.astype(np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)
    return Image.fromarray(arr)


def save_image(array: np.ndarray, path: Union[str, Path]) -> Path:
    """Write an image (see ``to_pil``) as PNG (or whatever the suffix says)."""
    from ..files import save_picture

    return save_picture(to_pil(array), path)


def sample_image_path() -> Path:
    """A real photo that ships with onnxviz (scikit-image's 'chelsea' cat, public domain).

    Used as the real input of the torch/onnxruntime faithfulness check.
    """
    return Path(__file__).resolve().parents[1] / "data" / "chelsea.jpg"


def imagenet_photos() -> list:
    """foolbox's 20 labelled ImageNet validation photos: [(path, class)], or [] without foolbox (export
    checks and benchmarks only: preprocessing inference uses the bundled ``photos``, the same on every install)."""
    import importlib.util

    spec = importlib.util.find_spec("foolbox")
    if spec is None or not spec.submodule_search_locations:
        return []
    base = Path(list(spec.submodule_search_locations)[0]) / "data"
    out = []
    for p in sorted(base.glob("imagenet_*.jpg")):
        m = re.match(r"imagenet_\d+_(\d+)\.jpg$", p.name)
        if m:
            out.append((p, int(m.group(1))))
    return out
