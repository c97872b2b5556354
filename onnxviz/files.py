"""Atomic writes: a file is written under a temporary name beside it and renamed when complete.

A run killed at any moment (SIGKILL, power cut of the process, a full disk) leaves either the old
file or the new one, never a partial file that a resumed run, the site or ``check`` would take for
a finished one. Temporary names start with a dot and end in ``.tmp``, so no reader's ``*.png`` or
``*.json`` pattern picks them up; the site builder prunes leftovers. Every writer of run, site
and atlas files goes through here (SQLite checkpoints are transactions of their own).
"""
from __future__ import annotations

import contextlib
import glob
import json
import os
import uuid
from pathlib import Path
from typing import Iterator, Union

PathLike = Union[str, Path]


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """A temporary path to write ``path``'s content to; renamed to ``path`` when the block succeeds,
    removed when it fails. The folder is created if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name[:100]}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        if path.is_symlink():  # replace a link itself, never write through it
            path.unlink()
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def remove_leftovers(folder: PathLike, names) -> int:
    """Remove the temporary files that killed writes of ``names`` (file names in ``folder``) left
    behind; returns how many. Call it only where no other process is writing those names."""
    n = 0
    for name in names:
        for tmp in Path(folder).glob(f".{glob.escape(name[:100])}.*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()
                n += 1
    return n


def write_bytes(path: PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: PathLike, data, **kwargs) -> Path:
    """``json.dumps(data, **kwargs)`` written atomically (indent=1 unless given)."""
    kwargs.setdefault("indent", 1)
    return write_text(path, json.dumps(data, **kwargs))


def save_picture(img, path: PathLike, format: str = None, **kwargs) -> Path:
    """A PIL image saved atomically; the format comes from ``path``'s suffix unless given."""
    from PIL import Image

    path = Path(path)
    if format is None:
        format = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    with atomic_path(path) as tmp:
        img.save(tmp, format, **kwargs)
    return path
