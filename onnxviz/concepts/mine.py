"""Dataset examples of concepts, mined in the graph: the model with the encoder appended, mined as usual.

``concept_model`` writes the model with a dictionary's encoder appended to its layer
(``onnxviz.graph.encoder``) and the codes as one more output, whose alias is ``<layer>/<name>``
(``block_14/nmf640``); its onnxviz metadata is the original model's, so nothing is re-inferred.
``mine_concepts`` mines that output over the run's images with the ordinary mining loop (local or
Ray, resumable), into ``<run>/concepts/<layer>/<name>/``: each concept then has top and bottom
examples, the crops where it fires and its spectrum, exactly like a unit.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import onnx

from ..graph.encoder import append_encoder
from .dictionary import Dictionary


def concept_name(d: Dictionary) -> str:
    """How the concept layer is named in the concept model: ``<layer>/<method><K>``."""
    return f"{d.layer}/{d.name}"


def concept_model(model, d: Dictionary, out_path) -> Path:
    """Write ``model`` (an onnxviz Model) with ``d``'s encoder appended to its layer; returns the path."""
    lay = model.layer(d.layer)
    tensor = f"onnxviz_concepts_{d.name}"
    proto = append_encoder(model.proto, lay.tensor, d.weight, d.bias, scale=d.scale, split_sign=d.split_sign,
                           top_k=d.top_k, layout=lay.layout, output=tensor)
    meta = model.meta.replace(aliases={**model.meta.aliases, concept_name(d): tensor})
    meta.write_to(proto)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.tmp")
    onnx.save(proto, str(tmp))
    tmp.replace(out_path)
    return out_path


def mined_folder(run_dir, d: Dictionary) -> Path:
    """The run directory of a dictionary's concept set (``<run>/concepts/<layer>/<name>``, RunDir.concept_set):
    its mining and its renders."""
    from ..runs.layout import RunDir

    return RunDir(run_dir).concept_set(d.layer, d.name).root


def mine_concepts(model, d: Dictionary, run_dir, source=None, top: int = 16, bottom: int = 16,
                  batch_size: int = 32, progress: bool = True, engine: str = "local", workers: Optional[int] = None,
                  **kwargs):
    """Mine the concepts of ``d`` over ``source`` (default: the images of the run at ``run_dir``).

    Returns the mining Summary; the results open with ``onnxviz.open_results(mined_folder(run, d))``."""
    from ..engines import mine
    from ..mining.results import open_results

    if source is None:
        res = open_results(run_dir)
        try:
            source = res.config["source"]
        finally:
            res.close()
    folder = mined_folder(run_dir, d)
    path = concept_model(model, d, folder / "model.onnx")
    if engine == "ray" and workers is not None:
        kwargs["workers"] = workers
    return mine(path, source, folder, engine=engine, layers=[concept_name(d)], top=top, bottom=bottom,
                batch_size=batch_size, progress=progress, **kwargs)
