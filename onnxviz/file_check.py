"""What onnxviz does, with no flags, on an ONNX file: inspect / mine / parity / render, one line each.

``check(path, photos)`` runs each stage through the public API, as a new user would, and gives a
one-line status (``ok ...`` or the error's first line). ``scripts/corpus.py report`` runs it over the
corpus of foreign files (``scripts/corpus_check.py``), and ``tests/test_wild.py`` asserts on it.

- inspect: ``onnxviz.load`` lists layers with units;
- mine: ``onnxviz.mining.mine`` over a handful of real photos (foolbox's ImageNet photos);
- parity: the torch view of an early, a middle and a late layer against onnxruntime on a real photo
  (max |torch - ort| / max(|ort|, 1));
- render: one unit of each of those layers, ``steps`` steps. The unit is one that is alive on the
  photos (its maximum is above zero on at least one photo) and, for a bounded op (Clip, Sigmoid,
  HardSigmoid, Tanh, Softmax), one with room to rise 5x: the ceiling is at least a 5x rise (as
  defined below) from its value on a gray image (about the render's start); among those, the one
  the photos raise most above a gray image. A layer dead on every photo is reported as such.
  rise = 1 + (end - start) / max(start, spread), spread = the standard deviation over the photos
  of the unit's value (the objective: its mean over positions). For a start above the photos'
  spread this is end / start; for a start near zero or below it (a Conv/Add output before its
  activation), where a ratio means nothing, it counts the climb in units of how much real photos
  move the unit: 5x = a climb of four photo spreads. It is continuous at start = 0. Target >= 5x.
  A unit under the target gets a reason: "dead" (no gradient reached the image, or the whole
  layer is zero on every photo), "at its ceiling" (a bounded op that ends within 5% of its upper
  bound), "bounded" (the ceiling itself allows less than 5x from the start: no unit of the layer
  had room), else "low rise".
"""
from __future__ import annotations

import tempfile
import time
import traceback
from pathlib import Path
from typing import Optional

import numpy as np

RISE_TARGET = 5.0
PARITY_TOLERANCE = 1e-3


def first_line(exc: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def pick_layers(model) -> list:
    """An early, a middle and a late layer (distinct, with units)."""
    layers = [lay for lay in model.layers if lay.units]
    if not layers:
        return []
    idx = sorted({int(round(f * (len(layers) - 1))) for f in (0.15, 0.5, 0.9)})
    return [layers[i] for i in idx]


BOUNDED = ("Clip", "Sigmoid", "HardSigmoid", "Softmax", "Tanh")


def rise(start: float, end: float, spread: float = 0.0) -> float:
    """1 + (end - start) / max(start, spread): end / start for a start above the photos' spread; for a
    start at or below zero (a pre-activation), the climb in units of the photos' spread."""
    scale = max(start, float(spread or 0.0))
    if scale == 0:
        return float("inf") if end > start else 1.0
    return 1.0 + (end - start) / scale


def ceiling(m, lay) -> Optional[float]:
    """The upper bound of a bounded layer (Clip's max, 1 for Sigmoid/HardSigmoid/Softmax/Tanh)."""
    if lay.op in ("Sigmoid", "HardSigmoid", "Softmax", "Tanh"):
        return 1.0
    if lay.op != "Clip":
        return None
    from onnx import numpy_helper

    node = next((n for n in m.proto.graph.node if lay.tensor in n.output), None)
    if node is None:
        return None
    for a in node.attribute:
        if a.name == "max":
            return float(a.f)
    if len(node.input) > 2 and node.input[2]:
        for t in m.proto.graph.initializer:
            if t.name == node.input[2]:
                return float(numpy_helper.to_array(t).reshape(-1)[0])
        for n in m.proto.graph.node:
            if n.op_type == "Constant" and node.input[2] in n.output:
                return float(numpy_helper.to_array(n.attribute[0].t).reshape(-1)[0])
    return None


def pick_unit(m, lay, stats: Optional[dict], base: Optional[dict]) -> tuple:
    """(unit, spread over the photos, note): an alive unit, not at its ceiling, photos raise most."""
    if stats is None:
        return 0, 0.0, None
    mean, mx = np.asarray(stats["mean"], np.float64), np.asarray(stats.get("max", stats["mean"]), np.float64)
    alive = mx.max(0) > 0
    if not alive.any():
        return 0, float(mean[:, 0].std()), "dead layer (zero on every photo)"
    ok = alive.copy()
    top = ceiling(m, lay)
    if top is not None:
        # room to rise 5x: the render starts from a near-gray image, so the gray value is about its start
        start = np.asarray(base["mean"][0], np.float64) if base is not None else mean.mean(0)
        spread = mean.std(0)
        room = alive & (mean.mean(0) < 0.5 * top) & np.asarray(
            [rise(float(a), top, float(b)) >= RISE_TARGET for a, b in zip(start, spread)])
        if not room.any():  # none has room: the one with the most (its reason will say the ceiling caps it)
            room = alive & (start <= start[alive].min())
        ok = room
    score = mean.mean(0) - (np.asarray(base["mean"][0], np.float64) if base is not None else 0.0)
    score = np.where(ok, score, -np.inf)
    unit = int(np.argmax(score))
    return unit, float(mean[:, unit].std()), None


def check(path, photos: Path, steps: int = 48, work: Optional[Path] = None) -> dict:
    """Every check on the ONNX file ``path`` with the photos in folder ``photos``; never raises.

    Returns a row: inspect, mine, parity, render (each "ok ..." or the failure's first line), rise
    (per picked unit), units, picked layers, seconds per stage, and a short traceback when one failed.
    """
    import onnxviz

    row = {"inspect": None, "mine": None, "parity": None, "render": None, "rise": [], "units": [], "seconds": {}}
    work = Path(work or tempfile.mkdtemp(prefix="onnxviz-check-"))
    t = time.perf_counter()
    try:
        m = onnxviz.load(path)
        with_units = [lay for lay in m.layers if lay.units]
        if not with_units:
            raise RuntimeError("no layer with units")
        row["inspect"] = f"ok: {len(with_units)} layers"
        row["layers"] = len(with_units)
    except Exception as exc:  # noqa: BLE001 - the report records every failure
        row["inspect"] = "FAIL " + first_line(exc)
        row["trace"] = traceback.format_exc(limit=-3)
        return row
    finally:
        row["seconds"]["inspect"] = round(time.perf_counter() - t, 2)

    chosen = pick_layers(m)
    row["picked"] = [lay.name for lay in chosen]
    t = time.perf_counter()
    try:
        from onnxviz.mining import mine

        s = mine(m, str(photos), out=str(work / "run"), layers=[lay.name for lay in chosen], top=3, bottom=0,
                 batch_size=8, progress=False, thumbs=False)
        row["mine"] = f"ok: {getattr(s, 'images', '?')} photos"
    except Exception as exc:  # noqa: BLE001
        row["mine"] = "FAIL " + first_line(exc)
        row["trace"] = traceback.format_exc(limit=-3)
    stats, base = {}, {}
    try:  # per unit on the photos and on a gray image: the unit to render and its spread (pick_unit)
        imgs = m.load_images(sorted(photos.iterdir()))
        x = m.prepare(imgs)
        gray = m.prepare(np.full_like(imgs[:1], 0.5))
        stats = m.channel_stats(x, [lay.name for lay in chosen])
        base = m.channel_stats(gray, [lay.name for lay in chosen])
    except Exception:  # noqa: BLE001
        pass
    row["seconds"]["mine"] = round(time.perf_counter() - t, 2)

    t = time.perf_counter()
    converted = []
    errors = []
    for lay in chosen:
        try:
            m.torch_view([lay.name], check=True)
            converted.append(lay)
            errors.append(max(0.0, _last_error(m, lay)))
        except Exception as exc:  # noqa: BLE001
            errors.append(None)
            row.setdefault("parity_errors", {})[lay.name] = first_line(exc)
    if converted:
        bad = [n for n, msg in row.get("parity_errors", {}).items()]
        detail = "; ".join(row["parity_errors"][b] for b in bad)[:200]
        row["parity"] = f"ok: {len(converted)}/{len(chosen)} layers" + (f" ({detail})" if bad else "")
    else:
        row["parity"] = "FAIL " + next(iter(row.get("parity_errors", {}).values()), "no layer")
    fv = getattr(m, "float_view_error", None)
    if fv:  # quantized / fp16: how far the float view (what torch runs) is from the file itself
        row["float_view_error"] = {k: round(float(v), 4) for k, v in fv.items()}
        row["parity"] += f"; float view vs the file: max {max(fv.values()):.3g}"
    row["seconds"]["parity"] = round(time.perf_counter() - t, 2)

    t = time.perf_counter()
    from onnxviz.optvis import objectives as obj
    from onnxviz.optvis import render

    results = []
    for lay in chosen:
        unit, spread, note = pick_unit(m, lay, stats.get(lay.name), base.get(lay.name))
        row["units"].append(f"{lay.name}:{unit}")
        row.setdefault("spread", []).append(round(spread, 5))
        try:
            r = render(m, obj.channel(lay.name, unit), steps=steps, seed=0, device="cpu")
            s, e_ = r.record["activation_start"][0], r.record["activation_end"][0]
            ri = rise(s, e_, spread)
            row.setdefault("start_end", []).append([round(s, 5), round(e_, 5)])
            row["rise"].append(round(ri, 2))
            why = note or _why_low(m, lay, r.record, spread)
            results.append("ok" if ri >= RISE_TARGET else f"{why} at {lay.name}:{unit} "
                           f"({s:.3g} -> {e_:.3g}, photo spread {spread:.3g})")
        except Exception as exc:  # noqa: BLE001
            row["rise"].append(None)
            results.append(f"{lay.name}: " + first_line(exc))
    good = sum(1 for r in results if r == "ok")
    row["render"] = (f"ok: {good}/{len(chosen)}" if good == len(chosen) else
                     f"{'FAIL' if good == 0 else 'part'} {good}/{len(chosen)}: " +
                     "; ".join(r for r in results if r != "ok"))
    row["seconds"]["render"] = round(time.perf_counter() - t, 2)
    return row


def _why_low(m, lay, record, spread: float = 0.0) -> str:
    """A one-line reason for a rise under the target: dead, at its ceiling, else "low rise" (a failure)."""
    if any(record.get("dead") or []):
        return "dead unit"
    top = ceiling(m, lay)
    if top is not None:
        start = record["activation_start"][0]
        most = rise(start, top, spread)
        if most < RISE_TARGET:
            return f"bounded: its ceiling ({lay.op} <= {top:g}) allows at most {most:.2g}x from its start"
        if record["activation_end"][0] >= 0.95 * top:
            return f"at its ceiling ({lay.op} <= {top:g})"
    return "low rise"


def _last_error(m, lay) -> float:
    """The parity error of one layer against onnxruntime on the bundled photo."""
    import torch

    from onnxviz.preprocessing.images import load_for_model, sample_image_path

    x = m.prepare(load_for_model(sample_image_path(), m.meta)[None])
    ref = m.activations(x, [lay.name])[lay.name]
    view = m.torch_view([lay.name], check=False)
    with torch.no_grad():
        got = view(torch.from_numpy(x))[lay.name]
    got = got.detach().float().numpy()
    return float(np.abs(got - ref).max() / max(float(np.abs(ref).max()), 1.0))


def _cell(s) -> str:
    return str(s).replace("|", "/").replace("\n", " ")[:160] if s is not None else "-"


def markdown(rows: list) -> str:
    head = ("| file | producer | traits | inspect | mine | parity | render | rise |\n"
            "|---|---|---|---|---|---|---|---|\n")
    out = []
    for r in rows:
        rise_ = ", ".join("-" if x is None else f"{x:.1f}x" for x in r["rise"]) or "-"
        out.append(f"| {r['file']} | {_cell(r['producer'])} | {', '.join(r['traits'])} | {_cell(r['inspect'])} | "
                   f"{_cell(r['mine'])} | {_cell(r['parity'])} | {_cell(r['render'])} | {rise_} |")
    ok = lambda k: sum(1 for r in rows if str(r[k] or "").startswith("ok"))  # noqa: E731
    units = [(x, r["render"]) for r in rows for x in r["rise"]]
    any_ = sum(1 for r in rows if any(x is not None and x >= RISE_TARGET for x in r["rise"]))
    explained = sum(1 for r in rows if str(r["render"] or "").startswith("ok") or (
        "low rise" not in str(r["render"]) and None not in r["rise"]))
    low = sum(str(r["render"]).count("low rise") for r in rows)
    t = f"{RISE_TARGET:g}x"
    summary = (f"\n{len(rows)} files: inspect ok {ok('inspect')}, mine ok {ok('mine')}, parity ok {ok('parity')}, "
               f"render ok (every picked unit >= {t}) {ok('render')}, any unit >= {t} {any_}, "
               f"every picked unit >= {t} or a reason it cannot (dead, bounded, at its ceiling) {explained}; "
               f"{sum(1 for x, _ in units if x is not None and x >= RISE_TARGET)}/{len(units)} units >= "
               f"{RISE_TARGET:g}x, {low} low rise\n")
    return head + "\n".join(out) + "\n" + summary
