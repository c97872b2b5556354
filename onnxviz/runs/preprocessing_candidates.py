"""`render --preprocessing candidates`: one unit rendered under the top three preprocessings, side by
side, so a person can see which one the model was trained with (a wrong scale renders gray and muddy).

Writes ``<out>/candidates/<target>.png`` (the renders in a row, each captioned with the candidate,
its score and the activation rise) and ``.json`` (each candidate's name, fields, score, rise and
its own render's path, plus the command that sets the chosen one).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..paths import slug


def render_candidates(model_path, model, spec: str, kind: str, *, out: Path, model_arg: str, load_kw: dict,
                      k: int = 3, **common) -> tuple:
    """(png, json path) for ``spec`` 'layer:unit' rendered under each of the top ``k`` candidates."""
    from PIL import Image, ImageDraw

    from ..model import load
    from ..preprocessing.uncertainty import ranked_candidates
    from . import render_jobs

    cands = ranked_candidates(model, k)
    root = Path(out) / "candidates"
    rows, tiles = [], []
    base_opts = common.pop("meta_opts", None) or {}
    for i, (name, fields, score) in enumerate(cands):
        m = load(model_path, **{**load_kw, **fields})
        opts = {"value_range": list(fields["value_range"]), "mean": ",".join(f"{v:g}" for v in fields["mean"]),
                "std": ",".join(f"{v:g}" for v in fields["std"]), "channel_order": fields["channel_order"]}
        w = render_jobs.target(m, spec, kind, out=root / f"{i + 1}_{slug(name)}", model_arg=model_arg,
                               meta_opts={**base_opts, **opts}, **common)
        s, e = w.activation
        rows.append({"rank": i + 1, "candidate": name, "score": score, "fields": {
            k_: list(v) if isinstance(v, tuple) else v for k_, v in fields.items()},
            "activation": [s, e], "rise": (e / s) if s > 0 and e > 0 else None, "png": str(w.png),
            "flags": f"--value-range {opts['value_range'][0]:g} {opts['value_range'][1]:g} --mean {opts['mean']} "
                     f"--std {opts['std']} --channel-order {opts['channel_order']}"})
        tiles.append(Image.open(w.png).convert("RGB"))
    size = max(t.height for t in tiles)
    cap = 46
    sheet = Image.new("RGB", (sum(max(t.width, 220) for t in tiles) + 8 * (len(tiles) - 1), size + cap), "white")
    draw, x = ImageDraw.Draw(sheet), 0
    for t, r in zip(tiles, rows):
        sheet.paste(t, (x, 0))
        s_, e_ = r["activation"]
        rise = f"{s_:.3g} -> {e_:.3g}" + (f" ({r['rise']:.1f}x)" if r["rise"] else "")
        draw.text((x + 2, size + 2), f"{r['rank']}. {r['candidate']}"[:40], fill="black")
        draw.text((x + 2, size + 16), f"{r['score']}"[:40], fill="black")
        draw.text((x + 2, size + 30), f"activation {rise}", fill="black")
        x += max(t.width, 220) + 8
    stem = slug(spec.replace(":", "_"))
    png = root / f"{stem}.png"
    sheet.save(png)
    doc = {"target": spec, "kind": kind, "model": model_arg, "candidates": rows,
           "how_to_pick": "rerun with the flags of the candidate whose picture looks like a natural image"}
    jpath = png.with_suffix(".json")
    jpath.write_text(json.dumps(doc, indent=1, default=lambda o: float(o) if isinstance(o, np.floating) else str(o)))
    return png, jpath
