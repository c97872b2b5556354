"""File names from untrusted names: filesystem- and URL-safe slugs, and a check that a path stays inside a folder.

Layer names come from ONNX files (data from strangers) and end up as folder names of run
directories and sites; both sides use these two functions.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def slug(name: str) -> str:
    """A filesystem- and URL-safe name: no '/', no '..', no leading dot; stable and short."""
    s = _SAFE.sub("_", name).strip("._-")
    s = re.sub(r"\.{2,}", ".", s)
    if not s:
        s = "x"
    if s != name or len(s) > 80:
        digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:6]
        s = f"{s[:70]}-{digest}" if s != name else s[:70] + "-" + digest
    return s


def inside(path: Path, root: Path) -> bool:
    """Whether ``path`` (symlinks resolved) lies inside ``root``."""
    try:
        Path(path).resolve().relative_to(Path(root).resolve())
        return True
    except (ValueError, OSError):
        return False
