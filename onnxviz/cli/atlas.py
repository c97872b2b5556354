"""`onnxviz atlas`: the activation atlas of a layer from a mining run.

    onnxviz mine model.onnx photos/ --out runs/m --atlas-layers block_7    # samples vectors while mining
    onnxviz atlas model.onnx --run runs/m --layer block_7 --grid 20        # atlas.png/.json/.html

Files: ``<out>/atlas.png`` (and ``atlas_classes.png`` for classifiers), ``atlas.json``, a pannable,
zoomable ``atlas.html``; ``<out>`` defaults to ``<run>/atlas/<layer>``.
"""
from __future__ import annotations

from pathlib import Path

import click

from ..paths import slug
from ..runs import command
from .options import load_model, meta_options


@click.command()
@click.argument("model_path", type=click.Path())
@click.option("--run", "--runs", "run_dir", required=True, type=click.Path(file_okay=False, exists=True),
              help="A mining run made with --atlas-layers LAYER.")
@click.option("--layer", "layer_name", required=True)
@click.option("--grid", "grid_size", default=20, show_default=True, type=click.IntRange(2), help="Cells per side.")
@click.option("--method", type=click.Choice(["auto", "umap", "tsne", "pca"]), default="auto", show_default=True,
              help="2-D layout (auto: umap-learn when installed, else t-SNE).")
@click.option("--min-count", default=2, show_default=True, type=click.IntRange(1), help="Vectors a cell needs.")
@click.option("--size", default=64, show_default=True, type=click.IntRange(8), help="Pixels per cell render.")
@click.option("--steps", default=128, show_default=True, type=click.IntRange(1))
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(1), help="Cells per optimization.")
@click.option("--max-samples", default=None, type=click.IntRange(3), help="Use at most this many vectors (seeded).")
@click.option("--no-classes", is_flag=True, help="Skip the class support (class atlas).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--device", default=None)
@click.option("--threads", type=click.IntRange(1), default=None)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Output folder (default RUN/atlas/<layer>).")
@click.option("--no-progress", is_flag=True)
@meta_options
def atlas(model_path, run_dir, layer_name, grid_size, method, min_count, size, steps, batch_size, max_samples,
          no_classes, seed, device, threads, out_dir, no_progress, **meta_kwargs):
    """Activation atlas of --layer: sampled activation vectors laid out in 2-D, binned, each cell rendered."""
    import json

    from ..attribution.atlas import build_atlas, write_atlas

    if threads:
        import torch

        torch.set_num_threads(threads)
    model, meta_opts = load_model(model_path, **meta_kwargs)
    name = model.layer(layer_name).name
    out = Path(out_dir) if out_dir else Path(run_dir) / "atlas" / slug(name)
    a = build_atlas(model, run_dir, name, grid=grid_size, method=method, min_count=min_count, size=size, steps=steps,
                    batch=batch_size, seed=seed, classes=not no_classes, max_samples=max_samples, device=device,
                    progress=not no_progress)
    a.record["command"] = command("atlas", model_path, run=run_dir, layer=layer_name, grid=grid_size, method=method,
                                  min_count=min_count, size=size, steps=steps, batch_size=batch_size,
                                  max_samples=max_samples, no_classes=no_classes, seed=seed, out=out_dir, **meta_opts)
    paths = write_atlas(a, out)
    r = a.record
    click.echo(f"atlas of {name}: {r['cells_rendered']} cells from {r['samples']} vectors ({r['layout']['method']}"
               f"{'; ' + r['layout']['note'] if r['layout']['note'] else ''}); class support: {r['class_support']}; "
               f"{r['seconds']['total']:.1f} s")
    click.echo(json.dumps({k: str(v) for k, v in paths.items()}))


COMMANDS = [atlas]
