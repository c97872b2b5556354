"""Options every command that reads a model shares: metadata overrides for foreign files, and loading."""
from __future__ import annotations

import click

from ..model import load


def meta_options(f):
    """Options that override a model's preprocessing metadata (for foreign files that lack it)."""
    options = [
        click.option("--input-size", type=(int, int), default=None, help="Model input height and width."),
        click.option("--value-range", type=(float, float), default=None,
                     help="Range that pixel values 0..1 map to before mean/std (e.g. 0 255)."),
        click.option("--mean", type=str, default=None, help="Per-channel mean, comma-separated."),
        click.option("--std", type=str, default=None, help="Per-channel std, comma-separated."),
        click.option("--channel-order", type=click.Choice(["RGB", "BGR", "L"]), default=None),
        click.option("--input", "input_name", type=str, default=None,
                     help="With several image inputs: the one to optimize and mine (the others get a mid-gray "
                          "image through the same preprocessing)."),
        click.option("--labels", "labels_file", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="Text file with one class name per line."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def meta_overrides(input_size=None, value_range=None, mean=None, std=None, channel_order=None,
                   labels_file=None, input_name=None) -> dict:
    """The CLI's metadata options as keyword overrides for ``onnxviz.load``."""
    out = {"input_size": input_size, "value_range": value_range, "channel_order": channel_order}
    if mean:
        out["mean"] = [float(v) for v in mean.split(",")]
    if std:
        out["std"] = [float(v) for v in std.split(",")]
    if labels_file:
        with open(labels_file, encoding="utf-8") as fh:
            out["labels"] = [line.rstrip("\n") for line in fh if line.strip()]
    return {k: v for k, v in out.items() if v is not None}


def load_model(model_path, **meta_kwargs) -> tuple:
    """(Model with the overrides applied, the overrides as given: options for a recorded command)."""
    given = {k: v for k, v in meta_kwargs.items() if v is not None}
    return load(model_path, input=meta_kwargs.get("input_name"), **meta_overrides(**meta_kwargs)), given



def warn_uncertain(model, model_path) -> None:
    """One visible line (stderr) when the preprocessing is uncertain or conflicts with a source."""
    from ..preprocessing.uncertainty import notice

    line = notice(model.meta, str(model_path))
    if line:
        click.secho(f"warning: {line}", err=True, fg="yellow")


def engine_options(f):
    """--engine local|ray and where Ray runs (shared by mine and render)."""
    f = click.option("--block-size", default=None, type=click.IntRange(1),
                     help="ray: images per block (the unit of work and of resume; default 8 batches).")(f)
    f = click.option("--gpus-per-worker", default=0.0, type=click.FloatRange(0), show_default=True,
                     help="ray: GPUs per worker (e.g. 1: one onnxruntime CUDA session per GPU).")(f)
    f = click.option("--address", default=None,
                     help="ray: the cluster to join ('auto' on a node of a `ray start` cluster, or HOST:PORT); "
                          "default: start Ray on this machine.")(f)
    return click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                        help="Run in this process, or on Ray workers (this machine or a cluster).")(f)
