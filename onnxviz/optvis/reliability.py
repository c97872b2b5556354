"""Can this visualization be trusted? Does it drive the unit along the same path as natural images?

Geirhos et al. (2023, "Don't trust your eyes") built networks whose feature visualizations show
anything they like while the unit behaves as before on natural images: a hidden branch answers a
synthetic pattern that photos never contain. A render of such a unit reaches a high activation by
a route natural images never take. The check compares the route:

- **path similarity**, per earlier layer feeding the unit: how the unit's input is made up there
  (gradient x activation of the unit w.r.t. that layer, summed over positions: one contribution
  per channel), cosine against the mean of the top examples'. A top example compared with the
  other top examples gives the natural level of agreement.
- **explained**: how much of the unit's activation on the render the path through the earlier
  layers accounts for (the same sum, plus what it leaves out on natural images). A hidden branch
  that bypasses the network's features leaves most of the render's activation unexplained.
- **activation ratio**: the unit's activation on the render over its best dataset example.

``score`` = path similarity / natural level x min(1, explained) (about 1: the render is built like
the top examples; near 0: it is not). ``verdict`` "pass" when the score is at least ``THRESHOLD``,
else "suspect", with one sentence that says what it means. Runs in torch (the converted model).

    report = check(model, render_image, "block_7", 12, top_images)
    report["score"], report["verdict"], report["layers"]
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..errors import OnnxVizError

THRESHOLD = 0.3  # docs/beyond_lucid.md "Reliability check": a fooled MobileNetV2 unit scores 0.09, honest renders 0.5-0.9
N_LAYERS = 4  # earlier layers compared by default
MEANING = {
    "pass": "the picture drives the unit through earlier features like its top dataset examples do",
    "suspect": "the picture reaches the unit by a route its top dataset examples do not take: it may not "
               "show what the unit responds to in natural images",
}


def feeding_layers(model, layer: str, k: int = N_LAYERS) -> list:
    """``k`` spatial layers before ``layer`` (evenly spaced over the second half of the layers before it,
    the last one just before it): the features the unit is built from."""
    names = [lay.name for lay in model.layers]
    target = model.layer(layer).name
    before = [n for n in names[:names.index(target)] if len(model.layer(n).shape or ()) == 4]
    if not before:
        return []
    half = before[len(before) // 2:]
    idx = np.unique(np.linspace(0, len(half) - 1, min(k, len(half))).round().astype(int))
    return [half[i] for i in idx]


def contributions(model, images: np.ndarray, layer: str, unit, layers: list, device=None, *,
                  fwd=None, batch: int = 8) -> tuple:
    """(unit activations (N,), {earlier layer: (N, C) contributions}): gradient x activation of the unit's
    channel mean w.r.t. each earlier layer, summed over positions: how the unit's input is made up.
    ``unit``: a channel index, a (C,) direction array (a concept: ``onnxviz.concepts``), or a list with
    one of those per image (images of several units in one pass: ``check_units``). ``batch`` images go
    through the model per forward/backward pass; each image's numbers are its own (the model runs in
    eval mode, so an image's gradient does not depend on the others in its pass). ``fwd``: a
    ``Forward`` for ``layers`` + ``layer`` built before (one per layer, reused over its units)."""
    import torch

    from .forward import Forward

    names = list(dict.fromkeys(layers + [layer]))
    fwd = fwd if fwd is not None else Forward(model, names, device)
    per_image = unit if isinstance(unit, list) else [unit] * len(images)
    units, contrib = [], {n: [] for n in layers}
    for i in range(0, len(images), max(1, int(batch))):
        x = torch.from_numpy(np.asarray(images[i:i + batch], dtype=np.float32)).to(fwd.device).requires_grad_(True)
        T = fwd(x)
        get = {n: T(n) for n in names}
        value = _unit_values(get[layer], per_image[i:i + batch])
        grads = torch.autograd.grad(value.sum(), [get[n] for n in layers], allow_unused=True)
        for n, g in zip(layers, grads):
            g = torch.zeros_like(get[n]) if g is None else g
            contrib[n].append((g * get[n]).flatten(2).sum(2).detach().cpu().double().numpy())
        units.append(value.detach().cpu().double().numpy())
    return np.concatenate(units), {n: np.concatenate(v) for n, v in contrib.items()}


def _unit_values(acts, units: list):
    """``_unit_value`` of image j for ``units[j]``: one gather when every unit is a channel."""
    import torch

    if all(u is units[0] for u in units):  # one unit (or one concept's direction) for the whole pass
        return _unit_value(acts, units[0])
    if all(isinstance(u, (int, np.integer)) for u in units):
        idx = torch.as_tensor([int(u) for u in units], device=acts.device)
        a = acts[torch.arange(len(units), device=acts.device), idx]
        return a.flatten(1).mean(1) if a.dim() > 1 else a
    return torch.cat([_unit_value(acts[j:j + 1], u) for j, u in enumerate(units)])


def _unit_value(acts, unit):
    """The value checked, per image: a channel's mean, or (``unit`` a (C,) vector: a concept's direction)
    the mean over positions of the activation vectors' projection on it."""
    import torch

    if isinstance(unit, (int, np.integer)):
        a = acts[:, int(unit)]
    else:
        v = torch.as_tensor(np.asarray(unit, np.float32), dtype=acts.dtype, device=acts.device)
        a = (acts * v.reshape(1, -1, *[1] * (acts.dim() - 2))).sum(1)
    return a.flatten(1).mean(1) if a.dim() > 1 else a


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na > 0 and nb > 0 else 0.0


def check(model, renders, layer: str, unit: int, examples, layers: Optional[Sequence[str]] = None,
          best: Optional[float] = None, device=None) -> dict:
    """Reliability of rendered images of ``layer:unit`` (channel mean; ``unit`` may be a (C,) direction,
    a concept, whose value is the mean projection of the layer's activation vectors on it).

    ``renders``: (N, 3, H, W) images in [0, 1] at the model's input size (or one (3, H, W)).
    ``examples``: the unit's top dataset examples, same format (at least 2). ``best``: the best
    example's recorded activation (default: the best over ``examples``). Returns a dict (a list
    under "renders" for several): score, verdict, meaning, path_similarity, natural_similarity,
    activation, best_example, ratio, layers [{layer, similarity, natural}].
    """
    return check_units(model, layer, [(unit, renders, examples, best)], layers=layers, device=device)[0]


def check_units(model, layer: str, items: Sequence[tuple], layers: Optional[Sequence[str]] = None, device=None,
                batch: int = 8) -> list:
    """``check`` of many units of one layer in shared passes: ``items`` [(unit, renders, examples, best)];
    returns ``check``'s report for each, in order.

    One torch view for the layer, and ``batch`` images (renders and examples of several units mixed)
    per forward/backward pass instead of one small pass per unit: the same numbers as checking one
    unit at a time, up to float rounding (tests/test_render_scale.py holds them to 1e-4)."""
    from .forward import Forward

    lay = model.layer(layer)
    prepared = []
    for unit, renders, examples, best in items:
        renders = np.asarray(renders, dtype=np.float32)
        renders = renders[None] if renders.ndim == 3 else renders
        examples = np.asarray(examples, dtype=np.float32)
        if examples.ndim != 4 or len(examples) < 2:
            what = f"{lay.name}:{unit}" if isinstance(unit, (int, np.integer)) else f"a direction in {lay.name}"
            raise OnnxVizError(f"the reliability check needs at least 2 top examples of {what}")
        prepared.append((unit, renders, examples, best))
    layers = [model.layer(n).name for n in layers] if layers else feeding_layers(model, lay.name)
    if not layers:
        raise OnnxVizError(f"layer {lay.name!r} has no earlier spatial layer to compare")
    if not prepared:
        return []
    fwd = Forward(model, list(dict.fromkeys(layers + [lay.name])), device)
    images = np.concatenate([np.concatenate([r, e]) for _, r, e, _ in prepared])
    per_image = [u for u, r, e, _ in prepared for _ in range(len(r) + len(e))]
    acts, contrib = contributions(model, images, lay.name, per_image, layers, fwd=fwd, batch=batch)
    out, at = [], 0
    for unit, renders, examples, best in prepared:
        n_r, n_e = len(renders), len(examples)
        cut = lambda a, lo, hi: a[at + lo:at + hi]  # noqa: E731
        out.append(_report(layers, cut(acts, 0, n_r), {k: cut(v, 0, n_r) for k, v in contrib.items()},
                           cut(acts, n_r, n_r + n_e), {k: cut(v, n_r, n_r + n_e) for k, v in contrib.items()},
                           best))
        at += n_r + n_e
    return out


def _report(layers: list, acts, r: dict, ex_acts, e: dict, best: Optional[float]) -> dict:
    """``check``'s report from the contributions of the renders (``acts``, ``r``) and the examples."""
    n_examples, n_renders = len(ex_acts), len(acts)
    rows = []
    for name in layers:
        centre = e[name].mean(0)
        natural = float(np.median([_cos(e[name][i], np.delete(e[name], i, 0).mean(0)) for i in range(n_examples)]))
        # what the path through this layer does not account for on natural images (biases, other branches)
        offset = float((ex_acts - e[name].sum(1)).mean())
        explained = [float((r[name][j].sum() + offset) / acts[j]) if acts[j] > 0 else 0.0
                     for j in range(n_renders)]
        rows.append({"layer": name, "similarity": [_cos(r[name][j], centre) for j in range(n_renders)],
                     "natural": natural, "explained": explained})
    natural = float(np.mean([row["natural"] for row in rows]))
    best = float(ex_acts.max()) if best is None else float(best)
    out = []
    for j in range(n_renders):
        sim = float(np.mean([row["similarity"][j] for row in rows]))
        explained = float(max(row["explained"][j] for row in rows))
        score = sim / max(natural, 0.05) * float(np.clip(explained, 0, 1))
        verdict = "pass" if score >= THRESHOLD else "suspect"
        out.append({
            "score": round(score, 4), "verdict": verdict, "meaning": MEANING[verdict],
            "path_similarity": round(sim, 4), "natural_similarity": round(natural, 4),
            "explained": round(explained, 4),
            "activation": round(float(acts[j]), 6), "best_example": round(best, 6),
            "ratio": round(float(acts[j]) / best, 4) if best > 0 else None,
            "layers": [{"layer": row["layer"], "similarity": round(row["similarity"][j], 4),
                        "natural": round(row["natural"], 4), "explained": round(row["explained"][j], 4)}
                       for row in rows],
            "threshold": THRESHOLD,
        })
    return out[0] if len(out) == 1 else {"renders": out}


def check_with_run(model, renders, layer: str, unit: int, run_dir, k: int = 8, device=None) -> dict:
    """``check`` with the top ``k`` examples of a mining run."""
    report = check_units_with_run(model, layer, [(unit, renders)], run_dir, k=k, device=device)[0]
    if isinstance(report, OnnxVizError):
        raise report
    return report


def check_units_with_run(model, layer: str, items: Sequence[tuple], run_dir, k: int = 8, device=None,
                         batch: int = 8) -> list:
    """``check_units`` of [(unit, renders)] of one layer against each unit's top ``k`` examples of a mining
    run (the run opened once, each example photo loaded once). Returns per item its report, or the
    OnnxVizError that says why that unit cannot be checked (fewer than 2 examples)."""
    from ..mining import open_results

    results = open_results(run_dir)
    try:
        name = results.name(model.layer(layer).name)
        tops = {}
        for unit, _ in items:
            tops[unit] = results.examples(name, unit, direction="top", k=k)
    finally:
        results.close()
    paths = list(dict.fromkeys(ex.image for top in tops.values() for ex in top))
    loaded = dict(zip(paths, model.load_images(paths))) if paths else {}
    ok, out = [], []
    for unit, renders in items:
        top = tops[unit]
        if len(top) < 2:
            out.append(OnnxVizError(f"{run_dir}: fewer than 2 top examples of {name}:{unit}"))
            continue
        ok.append(len(out))
        out.append((unit, renders, np.stack([loaded[ex.image] for ex in top]), top[0].activation))
    reports = check_units(model, layer, [out[i] for i in ok], device=device, batch=batch)
    for i, report in zip(ok, reports):
        top = tops[out[i][0]]
        report["run"] = str(run_dir)
        report["examples"] = [Path(ex.key).name for ex in top]
        out[i] = report
    return out
