"""What the site needs from mining results: ``MiningSource`` (an interface) and ``Example``.

``mining_source.py`` adapts ``onnxviz.mining`` results to it; tests and other stores can plug in
their own. Renders are read by ``onnxviz.runs.collect_renders``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional


@dataclass
class Example:
    """One dataset example of a unit: the whole image, the crop around the maximum, the activation."""

    activation: float
    image: Any = None  # path or PIL image of the whole (model-sized) image
    crop: Any = None  # path or PIL image of the receptive-field crop around the spatial maximum
    box: Optional[tuple] = None  # (left, top, right, bottom) of the crop in the whole image
    position: Optional[tuple] = None  # (y, x) of the maximum in the activation map
    label: str = ""  # the image's name or class, shown as a caption
    frame: Optional[tuple] = None  # (width, height) of the space ``box`` is in, when it is not the image's own
    site_image: str = ""
    site_crop: str = ""  # the site's copies (set by the builder)


class MiningSource:
    """What the site needs from mining results; subclasses adapt a concrete store.

    ``layers`` are the mined layer names; ``scores(layer)`` gives one number per unit (the top
    activation, used to sort the layer grid) or None; ``examples(layer, unit, k)`` gives
    ``(top, bottom)`` lists of :class:`Example`, best first; ``command`` reproduces the mining.
    """

    layers: tuple = ()
    command: str = ""
    statistic: str = "mean"  # which activation statistic the examples are ranked by

    def scores(self, layer: str):
        return None

    def examples(self, layer: str, unit: int, k: int) -> tuple:
        return [], []
