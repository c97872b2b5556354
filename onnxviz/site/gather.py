"""What the site shows, gathered from the model, the run's renders and the mining results.

One :class:`~onnxviz.site.parts.LayerInfo` per layer with its units (labels, scores, pictures,
accentuations) and the commands that make what is missing; nothing is written here.
"""
from __future__ import annotations

import numpy as np

from ..paths import slug
from ..runs import UNIT_KINDS, RunDir, collect_renders
from .parts import LayerInfo, UnitInfo

UNIT_MARK = "@@UNIT@@"  # where the unit number goes in a command template
ACCENTUATION = "accentuation"


def layer_infos(builder) -> list:
    """A LayerInfo per layer of ``builder.model``, with unique (case-insensitive) slugs and command templates."""
    model = builder.model
    infos, used = [], set()
    labels = list(getattr(model.meta, "labels", None) or [])
    last = model.layers[-1].name if model.layers else None
    runs = builder.run_arg if builder.mining is not None else None
    for layer in model.layers:
        s = slug(layer.name)
        base, n = s, 1
        while s.lower() in used:  # case-insensitive filesystems
            n += 1
            s = f"{base}-{n}"
        used.add(s.lower())
        info = LayerInfo(layer=layer, slug=s)
        units = int(layer.units or 0)
        head = layer.name == last or layer.op in ("Gemm", "MatMul", "Softmax")
        show_labels = labels and len(labels) == units and head
        info.units = [UnitInfo(index=u, label=str(labels[u]) if show_labels else "") for u in range(units)]
        target = f"{layer.name}:{UNIT_MARK}"
        info.templates = {
            "render": builder.render_command(target),
            "checked": builder.render_command(target) if runs else "",  # --run with mining: checked
            "maco": builder.render_command(target, param="maco"),
            "accentuate": builder.render_command(target, accentuate="top") if runs else "",
        }
        info.command_all = builder.render_command(layer=layer.name, all=True)
        info.command_dream = builder.render_command(deepdream=layer.name, image="PHOTO.jpg")
        info.command_caricature = builder.render_command(caricature=layer.name, image="PHOTO.jpg")
        infos.append(info)
    return infos


def attach_pictures(builder, infos: list) -> None:
    """Each render of the run to its unit (feature visualizations, accentuations) or to its layer."""
    pics = {}
    if builder.run is not None:
        pics = collect_renders(RunDir(builder.run).render, [i.name for i in infos])
    for info in infos:
        for pic in pics.get(info.name, []):
            in_range = pic.unit is not None and 0 <= pic.unit < len(info.units)
            if in_range and pic.kind in UNIT_KINDS:
                info.units[pic.unit].pictures.append(pic)
            elif in_range and pic.kind == ACCENTUATION:
                info.units[pic.unit].accentuations.append(pic)
            elif pic.kind != ACCENTUATION:
                info.layer_pictures.append(pic)


def attach_scores(mining, infos: list) -> None:
    """Each unit's top activation (for sorting), from the mining results."""
    if mining is None:
        return
    mined = set(mining.layers)
    for info in infos:
        if info.name not in mined:
            continue
        info.mined = True
        scores = mining.scores(info.name)
        if scores is None:
            continue
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        for u in info.units:
            if u.index < len(scores) and np.isfinite(scores[u.index]):
                u.score = float(scores[u.index])


def is_maco(pic) -> bool:
    """A MACO render: its record's ``param`` says so ("maco" or "maco, decorrelated color, ...")."""
    param = pic.record.get("param")
    return isinstance(param, str) and param.split(",")[0].strip() == "maco"


def main_picture(pictures: list):
    """The unit's thumbnail picture: its FFT render when there is one, else its first picture."""
    plain = [p for p in pictures if not is_maco(p) and p.kind != "diversity"]
    return (plain or pictures or [None])[0]
