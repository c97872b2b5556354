"""Decoding mining items into model input, ahead of the consumer.

``decode_batches`` decodes and preprocesses images in a thread pool (Pillow and numpy release the
GIL while decoding and resizing) or in decoder processes (decoders.py), so onnxruntime never waits
for the decoder; a file that cannot be read is reported as a skip, never an exception.
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import io
from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import numpy as np

from ..errors import ImageError
from .image_sources import ImageSource


@dataclass
class Decoded:
    index: int
    x: Optional[np.ndarray]  # model input for one image (no batch axis), None when skipped
    size: Optional[tuple]  # (width, height) of the original image
    error: str = ""
    pixels: Optional[np.ndarray] = None  # uint8 (H, W, 3) at the model's input size, before batching


def decode_one(source: ImageSource, index: int, model_meta, pixels: bool = False) -> Decoded:
    """Read, decode, resize/crop and preprocess one item; failures come back as ``error``."""
    try:
        data = source.read(index)
    except ImageError as exc:
        return Decoded(index, None, None, _reason(exc))
    return decode_bytes(index, data, model_meta, pixels)


def decode_bytes(index: int, data: bytes, model_meta, pixels: bool = False) -> Decoded:
    """Decode one file's bytes into model input (what ``decode_one`` does after reading).

    ``pixels``: stop at the uint8 image (``Decoded.pixels``, ``x`` None) and leave the float
    conversion to ``to_batch``, which does it for a whole batch at once."""
    from PIL import Image

    from ..preprocessing.images import load_pixels

    try:
        size = _original_size(data)
        # exactly what onnxviz.preprocessing.images.load_for_model gives for the file
        px = load_pixels(data, tuple(model_meta.input_size), model_meta.resize, model_meta.interpolation)
        if pixels:
            return Decoded(index, None, size, pixels=px)
        return Decoded(index, to_batch([px], model_meta)[0], size)
    except (ImageError, Image.DecompressionBombError, OSError, ValueError, MemoryError) as exc:
        return Decoded(index, None, None, _reason(exc))


def to_batch(pixels: list, model_meta) -> np.ndarray:
    """uint8 (H, W, 3) images -> the model's float32 input batch (N, ...), contiguous."""
    from ..preprocessing.images import pixels_to_images

    x = model_meta.to_model_input(pixels_to_images(np.stack(pixels)))
    return np.ascontiguousarray(x, dtype=np.float32)


def _reason(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__


def _original_size(data: bytes) -> Optional[tuple]:
    """(w, h) of the file itself (draft decoding may have shrunk the decoded image)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except Exception:  # noqa: BLE001
        return None


def decode_batches(source: ImageSource, indices: Sequence[int], model_meta, batch_size: int,
                   workers: int = 2, prefetch: int = 3, decoder=None, pixels: bool = False) -> Iterator[tuple]:
    """Yield (batch: (B, ...) float32 model input, decoded: list[Decoded]) in index order.

    ``decoded`` lists every item of the chunk, the skipped ones included (x None, error set);
    ``batch`` stacks only the readable ones (B may be 0; their ``x`` are views of it). Up to
    ``prefetch`` batches are decoded ahead by ``workers`` threads (Pillow releases the GIL while
    decoding and resizing) while the caller runs the model; each thread stops at uint8 pixels
    and the float conversion, if any, is done per batch. ``decoder``: a decoders.ProcessDecoder to decode
    in its processes instead (each batch cut into one piece per process). ``pixels``: batches stay
    uint8 (B, H, W, 3), for a session that preprocesses in its graph (pixelfeed.py).
    """
    indices = list(indices)
    chunks = [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]
    if decoder is not None:
        yield from _decode_in_processes(decoder, chunks, model_meta, prefetch, pixels)
        return
    if workers <= 0:
        for chunk in chunks:
            yield _stack([decode_one(source, i, model_meta, True) for i in chunk], model_meta, pixels)
        return
    with cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="onnxviz-decode") as pool:
        pending: collections.deque = collections.deque()
        it = iter(chunks)
        try:
            for chunk in it:
                pending.append([pool.submit(decode_one, source, i, model_meta, True) for i in chunk])
                if len(pending) > prefetch:
                    yield _stack([f.result() for f in pending.popleft()], model_meta, pixels)
            while pending:
                yield _stack([f.result() for f in pending.popleft()], model_meta, pixels)
        finally:
            for futs in pending:
                for f in futs:
                    f.cancel()


def _decode_in_processes(decoder, chunks: list, model_meta, prefetch: int, pixels: bool) -> Iterator[tuple]:
    pending: collections.deque = collections.deque()
    step = lambda chunk: max(1, -(-len(chunk) // decoder.workers))  # noqa: E731
    try:
        for chunk in chunks:
            pending.append([decoder.submit(chunk[i:i + step(chunk)]) for i in range(0, len(chunk), step(chunk))])
            if len(pending) > prefetch:
                yield _stack([d for f in pending.popleft() for d in f.result()], model_meta, pixels)
        while pending:
            yield _stack([d for f in pending.popleft() for d in f.result()], model_meta, pixels)
    finally:
        for futs in pending:
            for f in futs:
                f.cancel()


def _stack(decoded: list, model_meta, pixels: bool = False) -> tuple:
    good = [d for d in decoded if d.pixels is not None]
    batch = None
    if good:
        batch = np.stack([d.pixels for d in good]) if pixels else to_batch([d.pixels for d in good], model_meta)
    for i, d in enumerate(good):
        d.x, d.pixels = batch[i], None
    return batch, decoded
