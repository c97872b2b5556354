"""Image collections for mining: a folder tree, a zip or tar archive, or a list file.

Every source is an ordered list of *items*. An item's position in that list (its *index*) is
its identity during mining: ties between equal activations go to the lower index, shards take
every n-th index, and a resumed run skips the indices already done. The order is the sorted
relative path (folders, archives) or the line order (list files), so it does not depend on the
file system's listing order.

    src = open_source("photos/")           # or "data.zip", "data.tar.gz", "files.txt"
    len(src), src.key(0), src.read(0)       # number of items, a readable key, the file's bytes

``decode_batches`` decodes and preprocesses images in a thread pool ahead of the consumer
(Pillow and numpy release the GIL while decoding and resizing), so onnxruntime never waits for
the decoder; a file that cannot be read is reported as a skip, never an exception.

The sources and their bounded readers live in image_sources.py, the decoding in decoding.py; every
name stays importable from here (MAX_IMAGE_BYTES is read in image_sources).
"""
from __future__ import annotations

from ..errors import DatasetError, ImageError  # noqa: F401
from .decoding import Decoded, decode_batches, decode_bytes, decode_one, to_batch  # noqa: F401
from .image_sources import (  # noqa: F401
    LIST_SUFFIXES, MAX_IMAGE_BYTES, ArchiveSource, FolderSource, ImageSource, KeyReader, ListSource, TarSource,
    ZipSource, is_image_name, key_reader, open_source, parse_shard, read_file, read_tar_member, read_zip_member)
