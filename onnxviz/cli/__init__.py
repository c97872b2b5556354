"""The onnxviz command line: a thin layer over the Python API, one module per command.

Each module exports ``COMMANDS``; the group is built from the explicit list below, so a broken
command module fails loudly instead of silently disappearing. Shared options (metadata overrides
and model loading) live in ``options.py``.
"""
from __future__ import annotations

import sys

import click

from ..errors import OnnxVizError
from . import atlas, attribute, check, concepts, inspect, mine, render, site


class _Group(click.Group):
    """Reports OnnxVizError as a one-line message (exit code 2) instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except OnnxVizError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit,
                KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - never a traceback: one line naming what failed
            command = ctx.invoked_subcommand or "onnxviz"
            click.echo(f"error: {command} failed: {_one_line(exc)}. {_STILL_WORKS.get(command, '')}".rstrip(),
                       err=True)
            sys.exit(2)


_STILL_WORKS = {
    "render": "Inspect and mining run on onnxruntime and may still work.",
    "site": "Inspect, mine and render may still work on their own.",
    "mine": "Inspect (and render, which runs on torch) may still work.",
}


def _one_line(exc: BaseException) -> str:
    """The exception as one line: its type, and the first line of its message (what onnxruntime,
    onnx2torch or torch said: usually the op, node and shapes)."""
    import re

    text = " ".join(str(exc).split("\n")[:2]).strip()
    text = re.sub(r"/onnxruntime_src/\S+ ", "", text)
    return f"{type(exc).__name__}: {text[:400]}" if text else type(exc).__name__


@click.group(cls=_Group)
@click.version_option(package_name="onnxviz")
def main():
    """Feature visualization and dataset examples for any ONNX vision model."""


for _module in (inspect, render, mine, site, attribute, atlas, concepts, check):
    for _command in _module.COMMANDS:
        main.add_command(_command)
