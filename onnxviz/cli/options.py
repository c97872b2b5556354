"""Every option two commands share, spelled and explained once: the run directory, metadata overrides,
threads, device, seed, progress, engines; and defaults read from the Python API (``ApiDefault``).

Old spellings (``--runs``, ``mine --out``, ``render --out``, ``attribute --out``) still work for a
release as hidden aliases; ``--help`` shows only the new ones.
"""
from __future__ import annotations

import functools
import importlib
from typing import Optional

import click

from ..model import load
from ..runs.command import api_default


def option_group(*decorators):
    """Several option decorators as one; ``--help`` lists the options in the order given."""
    def apply(f):
        for decorator in reversed(decorators):
            f = decorator(f)
        return f

    return apply


def meta_options(f):
    """Options that override a model's preprocessing metadata (for foreign files that lack it)."""
    return option_group(
        click.option("--input-size", type=(int, int), default=None, help="Model input height and width."),
        click.option("--value-range", type=(float, float), default=None,
                     help="Range that pixel values 0..1 map to before mean/std (e.g. 0 255)."),
        click.option("--mean", type=str, default=None, help="Per-channel mean, comma-separated."),
        click.option("--std", type=str, default=None, help="Per-channel std, comma-separated."),
        click.option("--channel-order", type=click.Choice(["RGB", "BGR", "L"]), default=None,
                     help="Channel order the model expects (L: one grayscale channel)."),
        click.option("--input", "input_name", type=str, default=None,
                     help="With several image inputs: the one to optimize and mine (the others get a mid-gray "
                          "image through the same preprocessing)."),
        click.option("--labels", "labels_file", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="Text file with one class name per line."),
    )(f)


def meta_overrides(input_size=None, value_range=None, mean=None, std=None, channel_order=None,
                   labels_file=None, input_name=None) -> dict:
    """The CLI's metadata options as keyword overrides for ``onnxviz.load``."""
    out = {"input_size": input_size, "value_range": value_range, "channel_order": channel_order}
    if mean:
        out["mean"] = _numbers(mean, "--mean")
    if std:
        out["std"] = _numbers(std, "--std")
    if labels_file:
        with open(labels_file, encoding="utf-8") as fh:
            out["labels"] = [line.rstrip("\n") for line in fh if line.strip()]
    return {k: v for k, v in out.items() if v is not None}


def _numbers(text: str, option: str) -> list:
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise click.BadParameter(f"{text!r}: give comma-separated numbers, e.g. 0.485,0.456,0.406",
                                 param_hint=option) from None


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
    return option_group(
        click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                     help="Run in this process, or on Ray workers (this machine or a cluster)."),
        click.option("--address", default=None,
                     help="ray: the cluster to join ('auto' on a node of a `ray start` cluster, or HOST:PORT); "
                          "default: start Ray on this machine."),
        click.option("--gpus-per-worker", default=0.0, type=click.FloatRange(0), show_default=True,
                     help="ray: GPUs per worker (e.g. 1: one onnxruntime CUDA session per GPU)."),
        click.option("--block-size", default=None, type=click.IntRange(1),
                     help="ray: images per block (the unit of work and of resume; default 8 batches)."),
    )(f)


# ----------------------------------------------------------------------------- defaults from the API
class ApiDefault:
    """A CLI default that the Python API owns: ``ApiDefault("onnxviz.optvis.recipes:deepdream", "steps")``.

    Click calls it when the option is not given and prints it (``str``) in ``--help``; the function is
    imported only then, so the CLI starts without torch and the two can never differ.
    """

    def __init__(self, target: str, param: str):
        self.target, self.param = target, param

    def __call__(self):
        module, _, name = self.target.partition(":")
        owner = getattr(importlib.import_module(module), name)  # a function, or a module constant such as LR
        return api_default(owner, self.param) if callable(owner) else owner

    def __str__(self) -> str:
        return str(self())


class PerModeDefault(ApiDefault):
    """A default that depends on the mode (e.g. render steps: a unit, --deepdream, --accentuate): the
    command receives None and the API function of the mode uses its own; ``--help`` lists them."""

    def __init__(self, param: str, **modes: str):
        self.param, self.modes = param, modes

    def __call__(self):
        return None

    def __str__(self) -> str:
        return "; ".join(f"{mode} {ApiDefault(target, self.param)()}" for mode, target in self.modes.items())


# ----------------------------------------------------------------------------- the run directory
def hidden_alias(spelling: str, dest: str, **option_kw):
    """Accept ``spelling``, an old name of the option stored in ``dest``, for a release; ``--help`` hides it."""
    alias = f"{dest}__old_{spelling.strip('-').replace('-', '_')}"

    def decorator(f):
        @functools.wraps(f)
        def wrapper(*args, **kwargs):
            value = kwargs.pop(alias)
            if value is not None:
                ctx = click.get_current_context()
                given = ctx.get_parameter_source(dest) == click.core.ParameterSource.COMMANDLINE
                if given and kwargs.get(dest) != value:
                    raise click.UsageError(f"{spelling} is the old spelling of the option given as well; give one")
                kwargs[dest] = value
            return f(*args, **kwargs)

        return click.option(spelling, alias, default=None, hidden=True, **option_kw)(wrapper)

    return decorator


def run_option(help: str, legacy: tuple = ("--runs",), required: bool = False, exists: bool = False):
    """``--run RUN`` (the function receives ``run``), with ``legacy`` spellings accepted but hidden.

    ``required``: a clear usage error when no spelling is given (click cannot require one of several).
    """
    kind = click.Path(file_okay=False, exists=exists)

    def decorator(f):
        @functools.wraps(f)
        def check(*args, **kwargs):
            if required and kwargs.get("run") is None:
                raise click.UsageError("missing option --run RUN (the run directory)")
            return f(*args, **kwargs)

        wrapper = check
        for spelling in legacy:
            wrapper = hidden_alias(spelling, "run", type=kind)(wrapper)
        return click.option("--run", "run", type=kind, default=None, help=help)(wrapper)

    return decorator


# ----------------------------------------------------------------------------- shared options
def threads_option(what: str = "torch"):
    """``--threads N``: CPU threads of the engine that does the work (``what``: torch or onnxruntime)."""
    return click.option("--threads", type=click.IntRange(1), default=None,
                        help=f"CPU threads for {what} (default: its own choice, usually every core).")


def set_torch_threads(threads: Optional[int]) -> None:
    """Apply ``--threads`` to torch (imported only when given)."""
    if threads:
        import torch

        torch.set_num_threads(threads)


device_option = click.option("--device", default=None,
                             help="torch device, e.g. cpu, cuda, cuda:1 (default: cuda if torch sees it, else cpu).")
no_progress_option = click.option("--no-progress", is_flag=True, help="No progress bar.")


def seed_option(what: str = "the random start and every transform"):
    """``--seed``: one seeded generator, so the same command gives the same pictures."""
    return click.option("--seed", type=int, default=0, show_default=True, help=f"Seed of {what}.")


def speed_options(f):
    """``--precision`` and ``--channels-last/--no-channels-last``: how a batch of unit renders computes
    (``onnxviz.optvis.render``'s ``precision`` and ``channels_last``; docs/bench_render.md measures them)."""
    return option_group(
        click.option("--precision", type=click.Choice(["fp32", "bf16", "fp16"]),
                     default=ApiDefault("onnxviz.optvis.render:render", "precision"), show_default=True,
                     help="Arithmetic of each step's forward pass (autocast); the image and optimizer stay fp32."),
        click.option("--channels-last/--no-channels-last", default=ApiDefault("onnxviz.optvis.render:render",
                                                                              "channels_last"), show_default=True,
                     help="Run the convolutions in channels-last memory order."),
    )(f)


def torch_options(seed_of: str = "the random start and every transform"):
    """``--seed``, ``--device``, ``--threads``: what every command that optimizes images with torch takes."""
    return option_group(seed_option(seed_of), device_option, threads_option("torch"))
