"""Feature visualizations of concepts: each concept's direction rendered and checked like a unit.

A concept is a direction in its layer's channel space (``Dictionary.direction``); its picture
maximizes the mean projection of the layer's activation vectors on it (``optvis.objectives.direction``),
several concepts per batch (image i follows concept i), with Lucid's FFT or MACO. Pictures go into
the concept set's run directory the way unit renders go into a run
(``<run>/concepts/<layer>/<name>/render/<layer>_<name>/concept_<k>.png`` and ``.json``: the fields of
``onnxviz.runs`` with kind "concept", plus ``concept`` {dictionary, label, classes, top_units}), and
each is checked for reliability against the concept's top examples mined in the graph
(``mine_concepts``): the unit's route test, with the concept's direction as the unit.
"""
from __future__ import annotations

import json
from typing import Iterator, Optional, Sequence

import numpy as np

from ..errors import OnnxVizError
from ..runs.layout import RunDir
from .dictionary import Dictionary
from .mine import concept_name, mined_folder

KIND = "concept"
NOT_MINED = ("not checked: the concepts have no mined examples yet (run onnxviz concepts ... without --no-mine, "
             "then render again)")


def stem(k: int, param: str = "fft") -> str:
    """``concept_<k>``, ``concept_<k>_maco``: the file names of a concept's picture."""
    return f"{KIND}_{k}" + ("" if param == "fft" else f"_{param}")


def concept_set(run_dir, d: Dictionary) -> RunDir:
    """The run directory of ``d``'s concepts (their mining and their renders)."""
    return RunDir(mined_folder(run_dir, d))


def concept_info(d: Dictionary, k: int) -> dict:
    """What a page shows about concept ``k`` besides its picture: its label from the head and strongest units."""
    from ..attribution.labels import caption

    classes = d.labels[k] if d.labels is not None and k < len(d.labels) else None
    return {"layer": d.layer, "dictionary": d.name, "method": d.method, "index": int(k),
            "label": caption(classes) or None, "classes": classes,
            "top_units": [{"unit": u, "weight": w} for u, w in d.top_units(k)]}


def check_concept(model, d: Dictionary, k: int, images, run_dir, top: int = 8, device=None) -> dict:
    """The reliability check of pictures of concept ``k`` (``optvis.reliability.check`` with its direction)
    against its top examples mined in the graph; {"verdict": "unknown", ...} when they are missing."""
    from ..mining import open_results
    from ..optvis.reliability import check
    from ..runs.trust import unknown

    folder = concept_set(run_dir, d)
    if not folder.has_mining():
        return unknown(NOT_MINED)
    res = open_results(folder)
    try:
        found = res.name(concept_name(d))
        examples = res.examples(found, k, direction="top", k=top)
        if len(examples) < 2:
            return unknown(f"not checked: concept {k} has fewer than 2 top examples (a dead concept?)")
        report = check(model, images, d.layer, d.direction(k), model.load_images([e.image for e in examples]),
                       device=device)
    except OnnxVizError as exc:
        return unknown(f"no reliability check: {exc}")
    finally:
        res.close()
    report["run"] = str(folder)
    report["examples"] = [e.key for e in examples]
    return report


def render_concepts(model, d: Dictionary, run_dir, concepts: Optional[Sequence[int]] = None, *, param: str = "fft",
                    batch_size: int = 16, steps: Optional[int] = None, size=None, seed: int = 0,
                    lr: Optional[float] = None, device=None, spectrum=None, model_arg=None,
                    meta_opts: Optional[dict] = None, check: bool = True, keep: bool = True) -> Iterator[list]:
    """Render ``concepts`` (default all) of ``d``, ``batch_size`` per batch; yields each batch's written PNGs.

    ``param``: "fft" or "maco" (which writes ``concept_<k>_maco_importance.png`` beside it). ``check``:
    the reliability check of each picture against the concept's mined top examples (``check_concept``).
    ``keep``: a batch whose pictures were made by the same command is not rendered again (resume)."""
    from ..optvis import objectives as obj
    from ..optvis import render
    from ..runs import trust
    from ..runs.command import api_default, command
    from ..runs.render_jobs import param_kw
    from ..runs.render_records import write_render

    todo = list(range(d.concepts)) if concepts is None else [int(k) for k in concepts]
    bad = [k for k in todo if not 0 <= k < d.concepts]
    if bad:
        raise OnnxVizError(f"{d.layer} has {d.concepts} {d.method} concepts (0-{d.concepts - 1}); no concept {bad[0]}")
    steps = api_default(render, "steps") if steps is None else int(steps)
    pkw = param_kw(model, param, spectrum, size, lr)
    layer = concept_name(d)
    out = concept_set(run_dir, d).render
    folder = RunDir.layer_folder(out, layer)
    model_arg = str(model_arg or model.path)

    def cmd_of(chunk) -> str:
        return command("concepts", model_arg, run=str(run_dir), layer=d.layer, method=d.method, concepts=d.concepts,
                       nmf_solver=d.settings.get("solver") if d.settings.get("solver") == "minibatch" else None,
                       seed=d.settings.get("seed", 0), render=",".join(map(str, chunk)), render_batch=batch_size,
                       param=None if param == "fft" else param, steps=steps, size=size, render_seed=seed,
                       **(meta_opts or {}))

    def done(chunk) -> bool:
        try:
            return keep and all(json.loads((folder / f"{stem(k, param)}.json").read_text())["command"] == cmd_of(chunk)
                                and (folder / f"{stem(k, param)}.png").exists() for k in chunk)
        except (OSError, ValueError, KeyError):
            return False

    for i in range(0, len(todo), batch_size):
        chunk = todo[i:i + batch_size]
        if done(chunk):
            yield []
            continue
        objective = obj.direction(d.layer, np.stack([d.direction(k) for k in chunk]))
        kw = dict(steps=steps, seed=seed, device=device, batch=len(chunk), **pkw)
        if size:
            kw["size"] = size
        result = render(model, objective, **kw)
        written = []
        for j, k in enumerate(chunk):
            image = np.asarray(result.images[j])
            info = {"model": model_arg, "model_name": model.meta.name or model_arg, "layer": layer, "unit": k,
                    "kind": KIND, "objective": f"direction({d.layer!r}, concept {k} of {d.name})",
                    "command": cmd_of(chunk), "concept": concept_info(d, k),
                    "reliability": trust.unknown("not checked yet")}
            if param != "fft":
                info["param"] = param
            png = write_render(out, layer, stem(k, param), image, result.record, j, info)
            fields = {}
            if result.importance is not None:
                fields["importance"] = trust.write_importance(png, result.importance[j]).name
            fields["reliability"] = (check_concept(model, d, k, image[None], run_dir, device=device) if check
                                     else trust.unknown("not checked (check=False)"))
            trust.update_record(png, **fields)
            written.append(png)
        yield written


__all__ = ["KIND", "check_concept", "concept_info", "concept_set", "render_concepts", "stem"]
