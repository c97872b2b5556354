"""Concepts: dictionaries learned over a layer's activation vectors (NMF neuron groups, TopK sparse
autoencoders), each concept browsable like a unit.

    from onnxviz import concepts
    d = concepts.learn_from_run("runs/mnv2", "block_14", method="nmf", concepts=64)  # stored in the run
    d.metrics                                   # explained variance, mean L0, dead, stability
    concepts.mine_concepts(model, d, "runs/mnv2")  # top/bottom examples of every concept, in the graph
    render(model, concepts.objective(d, 3))     # a feature visualization of concept 3
"""
from __future__ import annotations

import numpy as np

from .dictionary import Dictionary, folder_of, stored
from .learn import METHODS, NMF_SOLVERS, NotEnoughVectors, learn, match_cosine, quality
from .mine import concept_model, concept_name, mine_concepts, mined_folder


def vectors_of_run(run_dir, layer: str):
    """The activation vectors of ``layer`` sampled during mining (``mine --atlas-layers``): (M, C)."""
    from ..mining.results import open_results

    res = open_results(run_dir)
    try:
        name = res.name(layer)
        return name, res.atlas_samples(name)["vectors"]
    finally:
        res.close()


def learn_from_run(run_dir, layer: str, method: str = "nmf", concepts=None, seed: int = 0, save: bool = True,
                   **kwargs) -> Dictionary:
    """Learn a dictionary from the vectors a mining run sampled for ``layer``; stored in the run
    (``<run>/concepts/<layer>/<method><K>.json``). An existing one with the same settings is returned
    as it is (the result of a finished run is kept, so a killed and rerun command continues)."""
    name, vecs = vectors_of_run(run_dir, layer)
    k = int(concepts) if concepts else (4 * vecs.shape[1] if vecs.size else None)  # None: no vectors, channels unknown
    for path in stored(run_dir, name):
        d = Dictionary.load(path)
        solver_ok = method != "nmf" or d.settings.get("solver", "cd") == kwargs.get("solver", "cd")
        if d.method == method and d.concepts == k and d.settings.get("seed") == seed \
                and d.settings.get("vectors") == len(vecs) and solver_ok:
            return d
    d = learn(vecs, name, method=method, concepts=k, seed=seed, **kwargs)
    d.settings["run"] = str(run_dir)
    if save:
        d.save(run_dir)
    return d


def name_concepts(model, d: Dictionary, run_dir, top: int = 3, save: bool = True):
    """Label each concept with the classes it promotes through the model's labelled head
    (``attribution.labels``); stays None for a model without one. Returns ``d.labels``."""
    from ..attribution.labels import promoted_classes

    _, vecs = vectors_of_run(run_dir, d.layer)
    d.labels = promoted_classes(model, d.layer, np.stack([d.direction(k) for k in range(d.concepts)]), vecs, top=top)
    if save and d.labels is not None:
        d.save(run_dir)
    return d.labels


def name_units(model, run_dir, layer: str, top: int = 3, save: bool = True):
    """Label each unit of ``layer`` like a concept (the classes it promotes through the labelled head),
    stored as ``<run>/concepts/<layer>/unit_labels.json`` for the site; None for a model without one."""
    from ..attribution.labels import promoted_classes, unit_directions
    from ..files import write_json

    name, vecs = vectors_of_run(run_dir, layer)
    labels = promoted_classes(model, name, unit_directions(vecs.shape[1]), vecs, top=top)
    if save and labels is not None:
        write_json(unit_labels_path(run_dir, name), {"layer": name, "labels": labels})
    return labels


def unit_labels_path(run_dir, layer: str):
    """Where ``name_units`` stores a layer's unit labels."""
    return folder_of(run_dir, layer) / "unit_labels.json"


def objective(d: Dictionary, k: int, cossim_pow: float = 0.0):
    """Concept ``k`` as a render objective: its direction in the layer's channel space."""
    from ..optvis.objectives import direction

    return direction(d.layer, d.direction(k), cossim_pow=cossim_pow)


__all__ = ["Dictionary", "METHODS", "NMF_SOLVERS", "NotEnoughVectors", "concept_model", "concept_name", "folder_of", "learn",
           "learn_from_run", "match_cosine", "mine_concepts", "mined_folder", "name_concepts", "name_units", "objective", "quality", "stored",
           "unit_labels_path", "vectors_of_run"]
