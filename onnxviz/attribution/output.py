"""Writing attribution and activation-grid results as PNG + JSON (what `onnxviz attribute` and
`onnxviz grid` write, and what the site shows).

    <out>/<photo stem>/attribution.json     target, values, completeness, top channels, files
    <out>/<photo stem>/photo.png            the photo as the model saw it
    <out>/<photo stem>/input_ig.png         integrated gradients over the photo (red +, blue -)
    <out>/<photo stem>/input_gxi.png        gradient x input
    <out>/<photo stem>/spatial_<layer>.png  activation x gradient at the layer, summed over channels
    <out>/<photo stem>/channels_<layer>.png the top channels: feature visualization, attribution, where
    <out>/<photo stem>/grid_<layer>.png/.json  the activation grid
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np

from ..paths import slug
from .core import output_layer, parse_target
from ..preprocessing.images import to_pil
from .pictures import heat_overlay, strip
from ..files import save_picture, write_json


def predicted_target(model, image: np.ndarray) -> str:
    """"<output>:<top-1 class>" for a classifier (the default target), from onnxruntime."""
    out = output_layer(model)
    if out is None:
        from ..errors import ObjectiveError

        raise ObjectiveError("this model has no (N, classes) output: give --target LAYER:UNIT")
    logits = model.activations(model.prepare(image[None]), [out.name])[out.name][0]
    return f"{out.name}:{int(np.argmax(logits))}"


def _display(heat: np.ndarray) -> np.ndarray:
    """Pixel attributions lightly smoothed for the overlay (per-pixel maps read as noise; the numbers
    in the JSON and the API are not smoothed)."""
    from scipy.ndimage import uniform_filter

    k = max(3, (min(heat.shape) // 64) | 1)
    return uniform_filter(heat.astype(np.float32), size=k, mode="nearest")


def _json(path: Path, data: dict) -> None:
    write_json(path, data, default=float)


def attribute_photo(model, photo, out_dir, target: Optional[str] = None, layer: Optional[str] = None,
                    methods=("ig", "gxi"), steps: int = 32, smooth: int = 0, noise: float = 0.1,
                    baseline="blur", channels: int = 6, render_steps: int = 128, render_size: int = 96,
                    seed: int = 0, device=None, command: str = "", progress: bool = False) -> dict:
    """Every attribution of one photo, written under ``out_dir/<photo stem>/``; returns the JSON record."""
    from .input import gradient_x_input, integrated_gradients
    from .layer import building_blocks, layer_attribution

    t0 = time.perf_counter()
    image = model.load_images([photo])[0] if not isinstance(photo, np.ndarray) else photo.astype(np.float32)
    stem = slug(Path(str(photo)).stem) if not isinstance(photo, np.ndarray) else "photo"
    folder = Path(out_dir) / stem
    folder.mkdir(parents=True, exist_ok=True)
    spec = target or predicted_target(model, image)
    objective = parse_target(model, spec)
    label = None
    if objective.kind == "class_logit" and model.meta.labels:
        label = model.meta.label(int(objective.unit))
    save_picture(to_pil(image), folder / "photo.png")
    rec = {"photo": str(photo) if not isinstance(photo, np.ndarray) else None, "target": spec,
           "target_objective": objective.name, "label": label, "predicted_default": target is None,
           "command": command, "files": {"photo": "photo.png"}}
    if "ig" in methods:
        ig = integrated_gradients(model, image, objective, baseline=baseline, steps=steps, smooth=smooth, noise=noise,
                                  seed=seed, device=device)
        save_picture(heat_overlay(image, _display(ig.heat[0])), folder / "input_ig.png")
        rec["integrated_gradients"] = {k: v for k, v in ig.record.items() if k != "images"} | ig.record["images"][0]
        rec["files"]["input_ig"] = "input_ig.png"
    if "gxi" in methods:
        gx = gradient_x_input(model, image, objective, baseline=baseline, device=device)
        save_picture(heat_overlay(image, _display(gx.heat[0])), folder / "input_gxi.png")
        rec["gradient_x_input"] = gx.record
        rec["files"]["input_gxi"] = "input_gxi.png"
    if layer:
        if channels > 0:
            bb = building_blocks(model, image, objective, layer, k=channels, steps=render_steps, size=render_size,
                                 seed=seed, device=device, progress=progress)
            la = bb["attribution"]
        else:
            bb, la = None, layer_attribution(model, image, objective, layer, device=device)
        name = slug(la.layer)
        entry = {"layer": la.layer, "value": la.record["value"][0], "channel_sum": la.record["channel_sum"][0],
                 "top_channels": [{"channel": u, "attribution": a} for u, a in la.top_channels(0, 10)],
                 "bottom_channels": [{"channel": u, "attribution": a} for u, a in la.top_channels(0, 5, sign=-1)],
                 "channels": np.round(la.channels[0], 6).tolist()}
        if la.spatial is not None:
            save_picture(heat_overlay(image, la.spatial[0]), folder / f"spatial_{name}.png")
            rec["files"]["spatial"] = f"spatial_{name}.png"
            entry["spatial"] = np.round(la.spatial[0], 5).tolist()
        if bb is not None:
            pics, caps = [], []
            for c in bb["channels"]:
                pics.append(c["image"])
                caps.append(f"ch {c['channel']}\nattr {c['attribution']:.3g}")
                if c["map"] is not None:
                    pics.append(heat_overlay(image, c["map"]))
                    caps.append(f"where ch {c['channel']}\n")
            save_picture(strip(pics, caps, cell=render_size, title=f"{la.layer}: top channels for {objective.name}"),
                         folder / f"channels_{name}.png")
            rec["files"]["channels"] = f"channels_{name}.png"
            entry["render"] = bb["record"]
        rec["layer"] = entry
    rec["seconds"] = round(time.perf_counter() - t0, 2)
    _json(folder / "attribution.json", rec)
    return rec


def grid_photo(model, photo, out_dir, layer: str, command: str = "", **kwargs) -> dict:
    """The activation grid of one photo at ``layer``: grid_<layer>.png and .json under ``out_dir/<stem>/``."""
    from .grid import activation_grid

    g = activation_grid(model, photo, layer, **kwargs)
    stem = slug(Path(str(photo)).stem) if not isinstance(photo, np.ndarray) else "photo"
    folder = Path(out_dir) / stem
    folder.mkdir(parents=True, exist_ok=True)
    name = slug(g.layer)
    cell = max(32, int(kwargs.get("size", 64)))
    save_picture(g.picture(cell), folder / f"grid_{name}.png")
    data = g.to_json() | {"photo": str(photo), "image": f"grid_{name}.png", "cell_pixels": cell, "command": command}
    _json(folder / f"grid_{name}.json", data)
    return data
