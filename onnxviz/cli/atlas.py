"""`onnxviz atlas`: the activation atlas of a layer from a mining run.

    onnxviz mine model.onnx photos/ --run runs/m --atlas-layers block_7    # samples vectors while mining
    onnxviz atlas model.onnx --run runs/m --layer block_7 --grid 20        # atlas.png/.json/.html
    onnxviz atlas model.onnx --run runs/m --layer block_7 --concepts sae256  # laid out by concept codes

Files: ``<run>/atlas/<layer>/atlas.png`` (with ``--concepts NAME``: in the concept set,
``<run>/concepts/<layer>/<NAME>/atlas/<layer>/``) (and ``atlas_classes.png`` for classifiers), ``atlas.json``, a
pannable, zoomable ``atlas.html`` (``--out`` writes them elsewhere).
"""
from __future__ import annotations

from pathlib import Path

import click

from ..runs import RunDir, command
from .options import (ApiDefault, load_model, meta_options, no_progress_option, run_option, set_torch_threads,
                      torch_options)

_ATLAS = "onnxviz.attribution.atlas:build_atlas"


@click.command()
@click.argument("model_path", type=click.Path())
@run_option("A mining run made with `onnxviz mine --atlas-layers LAYER`.", required=True, exists=True)
@click.option("--layer", "layer_name", required=True, help="The layer whose sampled activation vectors to lay out.")
@click.option("--grid", "grid_size", default=ApiDefault(_ATLAS, "grid"), show_default=True, type=click.IntRange(2),
              help="Cells per side.")
@click.option("--method", type=click.Choice(["auto", "umap", "tsne", "pca"]), default=ApiDefault(_ATLAS, "method"),
              show_default=True, help="2-D layout (auto: umap-learn when installed, else t-SNE).")
@click.option("--min-count", default=ApiDefault(_ATLAS, "min_count"), show_default=True, type=click.IntRange(1),
              help="Vectors a cell needs.")
@click.option("--size", default=ApiDefault(_ATLAS, "size"), show_default=True, type=click.IntRange(8),
              help="Pixels per cell render.")
@click.option("--steps", default=ApiDefault(_ATLAS, "steps"), show_default=True, type=click.IntRange(1),
              help="Optimization steps of each cell's render.")
@click.option("--batch-size", default=ApiDefault(_ATLAS, "batch"), show_default=True, type=click.IntRange(1),
              help="Cells per optimization.")
@click.option("--max-samples", default=None, type=click.IntRange(3), help="Use at most this many vectors (seeded).")
@click.option("--no-classes", is_flag=True, help="Skip the class support (class atlas).")
@click.option("--concepts", "concepts_name", default=None, metavar="NAME",
              help="The atlas of concepts: lay the vectors out by their codes in this dictionary of --layer (as "
              "`onnxviz concepts` named it, e.g. sae256); each cell shows the reconstruction of its mean code "
              "and names its strongest concepts.")
@torch_options("the sampling, the layout and the cell renders")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Write the atlas here instead of RUN/atlas/<layer>.")
@no_progress_option
@meta_options
def atlas(model_path, run, layer_name, grid_size, method, min_count, size, steps, batch_size, max_samples,
          no_classes, concepts_name, seed, device, threads, out_dir, no_progress, **meta_kwargs):
    """Activation atlas of --layer: sampled activation vectors laid out in 2-D, binned, each cell rendered."""
    import json

    from ..attribution.atlas import build_atlas, write_atlas

    set_torch_threads(threads)
    model, meta_opts = load_model(model_path, **meta_kwargs)
    name = model.layer(layer_name).name
    d = _dictionary(run, name, concepts_name) if concepts_name else None
    home = RunDir(run).concept_set(name, d.name) if d is not None else RunDir(run)
    out = Path(out_dir) if out_dir else home.atlas(name)
    a = build_atlas(model, run, name, grid=grid_size, method=method, min_count=min_count, size=size, steps=steps,
                    batch=batch_size, seed=seed, classes=not no_classes, max_samples=max_samples, device=device,
                    progress=not no_progress, concepts=d)
    a.record["command"] = command("atlas", model_path, run=run, layer=layer_name, grid=grid_size, method=method,
                                  min_count=min_count, size=size, steps=steps, batch_size=batch_size,
                                  max_samples=max_samples, no_classes=no_classes, concepts=concepts_name, seed=seed,
                                  out=out_dir, **meta_opts)
    paths = write_atlas(a, out)
    r = a.record
    click.echo(f"atlas of {name}{' in concepts ' + d.name if d is not None else ''}: {r['cells_rendered']} cells from {r['samples']} vectors ({r['layout']['method']}"
               f"{'; ' + r['layout']['note'] if r['layout']['note'] else ''}); class support: {r['class_support']}; "
               f"{r['seconds']['total']:.1f} s")
    click.echo(json.dumps({k: str(v) for k, v in paths.items()}))


def _dictionary(run, layer: str, name: str):
    """The stored dictionary ``name`` of ``layer`` in ``run``, or one sentence naming those there are."""
    from ..concepts import Dictionary, stored
    from ..errors import OnnxVizError

    found = {Dictionary.load(p).name: p for p in stored(run, layer)}
    if name not in found:
        have = ", ".join(sorted(found)) or "none"
        raise OnnxVizError(f"no concepts {name!r} of {layer} in {run} (stored: {have}); learn them with "
                           f"onnxviz concepts MODEL --run {run} --layer {layer}")
    return Dictionary.load(found[name])


COMMANDS = [atlas]
