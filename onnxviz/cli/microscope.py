"""`onnxviz microscope`: a whole model in one resumable command (onnxviz.microscope does the work).

    onnxviz microscope models/mobilenet_v2.onnx data/photos --out runs/mnv2_microscope
    onnxviz microscope model.onnx photos/ --out runs/m --layers block_7,block_14 --units 0-15 --maco
    onnxviz microscope model.onnx photos/ --out runs/m --plan-only      # the plan and its time estimate
"""
from __future__ import annotations

import click

from .options import (ApiDefault, device_option, load_model, meta_options, no_progress_option, seed_option,
                      set_torch_threads, speed_options, threads_option, warn_uncertain)


@click.command()
@click.argument("model_path", type=click.Path())
@click.argument("images", type=click.Path())
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="The run directory: plan.json, mining/, render/, site/, stages.json, summary.json.")
@click.option("--layers", default=None, help="Comma-separated layers (default: every layer with units).")
@click.option("--units", default=None, help="Units of every chosen layer, e.g. 0-15 (default: all).")
@click.option("--steps", type=click.IntRange(1), default=ApiDefault("onnxviz.optvis.render:render", "steps"),
              show_default=True, help="Optimization steps per render.")
@click.option("--maco", is_flag=True, help="Also render every unit with MACO (and its importance map).")
@click.option("--concepts", type=click.IntRange(0), default=0, show_default=True,
              help="Learn N NMF concepts of --concept-layers and mine them (0: none).")
@click.option("--concept-layers", default=None, help="Layers for --concepts (default: the last chosen layer).")
@click.option("--top", type=click.IntRange(2), default=8, show_default=True,
              help="Top and bottom dataset examples per unit.")
@click.option("--batch-size", type=click.IntRange(1), default=None,
              help="Units per render batch (default: chosen by a short calibration on this machine).")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Mine and render in this process, or on Ray workers on this machine.")
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True, help="--engine ray: workers.")
@click.option("--plan-only", is_flag=True, help="Print and write the plan (plan.json) with its estimate; run nothing.")
@device_option
@speed_options
@threads_option("torch and onnxruntime")
@seed_option()
@no_progress_option
@meta_options
def microscope(model_path, images, out, layers, units, steps, maco, concepts, concept_layers, top, batch_size, engine,
               workers, plan_only, device, precision, channels_last, threads, seed, no_progress, **meta_kwargs):
    """Mine, render, check and publish every unit of MODEL_PATH over IMAGES; rerun to resume."""
    from ..microscope import microscope as run_microscope

    set_torch_threads(threads)
    model, meta_opts = load_model(model_path, **meta_kwargs)
    warn_uncertain(model, model_path)
    run_microscope(model_path, images, out, model=model, echo=click.echo, plan_only=plan_only,
                   progress=not no_progress, workers=workers, threads=threads, layers=layers, units=units,
                   steps=steps, maco=maco, concepts=concepts, concept_layers=concept_layers, engine=engine,
                   device=device, batch_size=batch_size, top=top, seed=seed, meta_opts=meta_opts,
                   precision=precision, channels_last=channels_last)


COMMANDS = [microscope]
