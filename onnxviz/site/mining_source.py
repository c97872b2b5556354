"""Adapt the mining results (``onnxviz.mining.open_results``) to the site's MiningSource interface."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

from ..errors import OnnxVizError
from ..mining import DEFAULT_STAT, open_results
from ..runs import command
from .collect import Example, MiningSource

log = logging.getLogger(__name__)


class ResultsSource(MiningSource):
    """Dataset examples from ``runs/<name>/mining`` (ranked by the channel mean over space, "mean": the same statistic as the channel objective of a render, so their ratio compares like with like)."""

    def __init__(self, results, model=None, statistic: str = DEFAULT_STAT):
        self.results = results
        self.statistic = statistic
        self.command = results.command or self._command(results)
        names = set(l.name for l in model.layers) if model is not None else None
        self.layers = tuple(n for n in results.layers if names is None or n in names)
        self._thumbs: dict = {}  # image index -> thumbnail path: an image is an example of thousands of units
        self._frame = tuple(results.meta.input_size[::-1])

    def _thumbnail(self, index: int):
        if index not in self._thumbs:
            self._thumbs[index] = self.results.thumbnail(index)
        return self._thumbs[index]

    @staticmethod
    def _command(results) -> str:
        """The `onnxviz mine` line, rebuilt from the stored settings when the run recorded none."""
        c = results.config
        if not c.get("model") or not c.get("source"):
            return ""
        return command("mine", c["model"], c["source"], run=results.run_dir, top=c.get("top"), bottom=c.get("bottom"))

    def scores(self, layer: str):
        return [float("nan") if v is None else v for v in self.results.scores(layer, self.statistic)]

    def examples(self, layer: str, unit: int, k: int) -> tuple:
        out = []
        for direction in ("top", "bottom"):
            items = []
            for e in self.results.examples(layer, unit, stat=self.statistic, direction=direction, k=k):
                if e.activation is None or e.activation != e.activation:  # NaN: nothing to show
                    continue
                image = None
                try:
                    # the image as the model saw it: shared by every unit it is an example of
                    image = self._thumbnail(e.index)
                except Exception as exc:  # noqa: BLE001 - the source photos may be gone; show what is left
                    log.warning("example %s of %s:%d: %s", e.key, layer, unit, exc)
                # the crop is shown from that shared image by the browser (a box in model-input pixels),
                # not written as a file per unit: a large model has hundreds of thousands of examples
                box = e.input_box if e.position is not None else None
                items.append(Example(activation=float(e.activation), image=image, crop=None, box=box,
                                     position=e.position, label=e.label,
                                     frame=self._frame))
            out.append(items)
        return out[0], out[1]


    def spectrum(self, layer: str, unit: int) -> tuple:
        """(examples near quantiles of the unit's activation, most negative first; a note on their accuracy)."""
        items = []
        spec = self.results.spectrum(layer, unit, stat=self.statistic)
        for e in spec:
            try:
                image = self._thumbnail(e["index"])
            except Exception as exc:  # noqa: BLE001 - the source photos may be gone
                log.warning("spectrum example %s of %s:%d: %s", e.get("key"), layer, unit, exc)
                image = None
            items.append(Example(activation=e["value"], image=image, label=f"{100 * e['quantile']:g}%"))
        if not spec:
            return [], ""
        e = spec[0]
        note = (f"exact quantiles of all {e['sample']} images" if e["exact"] else
                f"quantiles of a uniform sample of {e['sample']} images: each within ±{100 * e['rank_error']:.0f} "
                "percentile points of the stated one (95%, DKW bound)")
        return items, note


def open_mining(mining_dir, model=None) -> Optional[MiningSource]:
    """A MiningSource for ``runs/<name>/mining``, or None when there is none.

    A mining folder whose results cannot be read is an error (a site without its examples must
    not look like a success).
    """
    mining_dir = Path(mining_dir)
    if not mining_dir.is_dir():
        return None
    try:
        return ResultsSource(open_results(mining_dir.parent), model)
    except OnnxVizError:
        raise
    except Exception as exc:  # noqa: BLE001 - sqlite, JSON: say which file, not a traceback
        raise OnnxVizError(f"cannot read the mining results in {mining_dir} ({str(exc)[:200] or 'unreadable'}): the "
                           "run is damaged or partial; mine again with --overwrite (or build the site without "
                           "--run)") from exc
