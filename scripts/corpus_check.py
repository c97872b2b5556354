"""What onnxviz does, with no flags, on each corpus file: inspect / mine / parity / render.

Used by ``scripts/corpus.py report`` and by ``tests/test_wild.py``. Each check is run through the
public API, as a new user would, and yields a one-line status (``ok ...`` or the error's first line).

- inspect: ``onnxviz.load`` lists layers with units;
- mine: ``onnxviz.mining.mine`` over a handful of real photos (foolbox's ImageNet photos);
- parity: the torch view of an early, a middle and a late layer against onnxruntime on a real photo
  (max |torch - ort| / max(|ort|, 1));
- render: one unit of each of those layers (the unit with the highest mean activation on the
  photos, so a dead unit is not picked by accident), ``steps`` steps, rise = 1 + (end - start) / |start|
  (= end / start for a positive start); the target is >= 5x.
"""
from __future__ import annotations

import json
import shutil
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

import corpus

RISE_TARGET = 5.0
PARITY_TOLERANCE = 1e-3


def _line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def photo_folder(n: int = 6) -> Path:
    """A temp folder with ``n`` of foolbox's ImageNet photos (the same every run)."""
    d = Path(tempfile.mkdtemp(prefix="onnxviz-corpus-photos-"))
    for p in sorted(corpus.foolbox_data().glob("imagenet_*.jpg"))[:n]:
        shutil.copy(p, d / p.name)
    return d


def pick_layers(model) -> list:
    """An early, a middle and a late layer (distinct, with units)."""
    layers = [lay for lay in model.layers if lay.units]
    if not layers:
        return []
    idx = sorted({int(round(f * (len(layers) - 1))) for f in (0.15, 0.5, 0.9)})
    return [layers[i] for i in idx]


def rise(start: float, end: float) -> float:
    if start == 0:
        return float("inf") if end > 0 else 1.0
    return 1.0 + (end - start) / abs(start)


def check_file(name: str, photos: Path, steps: int = 48, work: Path | None = None) -> dict:
    """Run every check on corpus file ``name``; never raises."""
    import onnxviz

    e = corpus.entry(name)
    row = {"file": name, "package": e.get("package") or f"derived from {e['derived_from']}",
           "producer": e["producer"], "traits": e["traits"], "inspect": None, "mine": None, "parity": None,
           "render": None, "rise": [], "units": [], "seconds": {}}
    work = Path(work or tempfile.mkdtemp(prefix=f"onnxviz-corpus-{name}-"))
    t = time.perf_counter()
    try:
        path = corpus.fetch_one(name)
        m = onnxviz.load(path)
        with_units = [lay for lay in m.layers if lay.units]
        if not with_units:
            raise RuntimeError("no layer with units")
        row["inspect"] = f"ok: {len(with_units)} layers"
        row["layers"] = len(with_units)
    except Exception as exc:  # noqa: BLE001 - the report records every failure
        row["inspect"] = "FAIL " + _line(exc)
        row["trace"] = traceback.format_exc(limit=-3)
        return row
    finally:
        row["seconds"]["inspect"] = round(time.perf_counter() - t, 2)

    chosen = pick_layers(m)
    row["picked"] = [lay.name for lay in chosen]
    t = time.perf_counter()
    means = {}
    try:
        from onnxviz.mining import mine

        s = mine(m, str(photos), out=str(work / "run"), layers=[lay.name for lay in chosen], top=3, bottom=0,
                 batch_size=8, progress=False, thumbs=False)
        row["mine"] = f"ok: {getattr(s, 'images', '?')} photos"
    except Exception as exc:  # noqa: BLE001
        row["mine"] = "FAIL " + _line(exc)
        row["trace"] = traceback.format_exc(limit=-3)
    try:  # the unit to render: the one photos raise most above a gray image (responsive, not saturated)
        imgs = m.load_images(sorted(photos.iterdir()))
        x = m.prepare(imgs)
        gray = m.prepare(np.full_like(imgs[:1], 0.5))
        stats = m.channel_stats(x, [lay.name for lay in chosen])
        base = m.channel_stats(gray, [lay.name for lay in chosen])
        means = {k: v["mean"].mean(0) - base[k]["mean"][0] for k, v in stats.items()}
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
            row.setdefault("parity_errors", {})[lay.name] = _line(exc)
    if converted:
        bad = [n for n, msg in row.get("parity_errors", {}).items()]
        row["parity"] = f"ok: {len(converted)}/{len(chosen)} layers" + (f" ({'; '.join(row['parity_errors'][b] for b in bad)[:200]})" if bad else "")
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
        ms = means.get(lay.name)
        unit = int(np.argmax(ms)) if ms is not None and len(ms) else 0
        row["units"].append(f"{lay.name}:{unit}")
        try:
            r = render(m, obj.channel(lay.name, unit), steps=steps, seed=0, device="cpu")
            s, e_ = r.record["activation_start"][0], r.record["activation_end"][0]
            ri = rise(s, e_)
            row["rise"].append(round(ri, 2))
            results.append("ok" if ri >= RISE_TARGET else f"{_why_low(lay, r.record)} at {lay.name}:{unit} "
                           f"({s:.3g} -> {e_:.3g})")
        except Exception as exc:  # noqa: BLE001
            row["rise"].append(None)
            results.append(f"{lay.name}: " + _line(exc))
    good = sum(1 for r in results if r == "ok")
    row["render"] = (f"ok: {good}/{len(chosen)}" if good == len(chosen) else
                     f"{'FAIL' if good == 0 else 'part'} {good}/{len(chosen)}: " +
                     "; ".join(r for r in results if r != "ok"))
    row["seconds"]["render"] = round(time.perf_counter() - t, 2)
    return row


def _why_low(lay, record) -> str:
    """A one-line reason for a rise under the target."""
    if any(record.get("dead") or []):
        return "dead unit"
    if lay.op in ("Clip", "Sigmoid", "HardSigmoid", "Softmax", "Tanh"):
        return f"bounded ({lay.op}): its ceiling caps the rise"
    return "low rise"


def _last_error(m, lay) -> float:
    """The parity error of one layer against onnxruntime on the bundled photo."""
    import torch

    from onnxviz.images import load_for_model, sample_image_path

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
    summary = (f"\n{len(rows)} files: inspect ok {ok('inspect')}, mine ok {ok('mine')}, parity ok {ok('parity')}, "
               f"render ok (every picked unit >= {RISE_TARGET:g}x) {ok('render')}\n")
    return head + "\n".join(out) + "\n" + summary


def report_cli(names: list, out: Path, steps: int = 48) -> int:
    import logging

    logging.getLogger("onnxviz").setLevel(logging.ERROR)
    out.mkdir(parents=True, exist_ok=True)
    photos = photo_folder()
    rows = []
    for e in corpus.manifest():
        if names and e["name"] not in names:
            continue
        t = time.perf_counter()
        row = check_file(e["name"], photos, steps=steps)
        row["seconds"]["total"] = round(time.perf_counter() - t, 1)
        rows.append(row)
        print(f"{row['file']:18s} {row['seconds']['total']:6.1f}s | {row['inspect']} | {row['mine']} | "
              f"{row['parity']} | {row['render']} | {row['rise']}", flush=True)
        (out / "rows").mkdir(exist_ok=True)
        (out / "rows" / f"{row['file']}.json").write_text(json.dumps(row, indent=1, default=str))
    # the table covers every file checked into this folder so far (a report can be built file by file)
    order = [e["name"] for e in corpus.manifest()]
    rows = [json.loads((out / "rows" / f"{n}.json").read_text()) for n in order if (out / "rows" / f"{n}.json").exists()]
    (out / "report.json").write_text(json.dumps(rows, indent=1, default=str))
    (out / "report.md").write_text(markdown(rows))
    print(markdown(rows))
    return 0
