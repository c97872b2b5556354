"""Adapt the mining store (onnxviz.mining) to the site's MiningSource interface."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from .collect import MiningSource

log = logging.getLogger(__name__)


def open_mining(mining_dir, model=None) -> Optional[MiningSource]:
    """A MiningSource for ``runs/<name>/mining``, or None when there is none."""
    mining_dir = Path(mining_dir)
    if not mining_dir.is_dir():
        return None
    # TODO(site): adapt onnxviz.mining's reader (top/bottom examples per unit, crops) once it lands.
    log.warning("%s: mining results found but not yet read by the site (no mining reader API); "
                "dataset examples are not shown", mining_dir)
    return None
