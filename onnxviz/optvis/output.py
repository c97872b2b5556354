"""Writing a render as files: PNG + JSON in ``<out>/<layer_slug>/<stem>.{png,json}``.

One writer for the CLI and the site's ``--render-missing``, so every render on disk has the same
fields (see docs/API_CONTRACT.md): the settings, the seed, the activation at start, end and per
step, and the command that reproduces the picture.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..images import save_image
from ..names import slug

_SETTINGS = ("steps", "size", "seed", "lr", "batch", "device", "param", "transforms", "regularizers",
             "redirect_steps", "fit_input", "ms_per_step", "seconds", "activation_per_step_note",
             "diversity_weight", "diversity_layer", "preprocessing")


def write_render(out_dir, layer: str, stem: str, image: np.ndarray, record: dict, index: int, base: dict) -> Path:
    """Write image ``index`` of a render batch; ``base`` holds model/layer/unit/kind/objective/command."""
    folder = Path(out_dir) / slug(layer)
    png = save_image(image, folder / f"{stem}.png")
    entry = dict(base)
    entry.update({
        "image": png.name,
        "activation_start": record["activation_start"][index],
        "activation_end": record["activation_end"][index],
        "activation_per_step": [step[index] for step in record["activation_per_step"]],
        "dead": record["dead"][index],
        "warnings": [w for w in record["warnings"] if w.startswith(f"image {index}:")],
        "batch_index": index,
    })
    for key in _SETTINGS:
        if key in record:
            entry.setdefault(key, record[key])
    folder.joinpath(f"{stem}.json").write_text(json.dumps(entry, indent=1), encoding="utf-8")
    return png
