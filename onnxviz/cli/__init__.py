"""The onnxviz command line: a thin layer over the Python API, one module per command.

Each module exports ``COMMANDS``; the group is built from the explicit list below, so a broken
command module fails loudly instead of silently disappearing. Shared options (metadata overrides
and model loading) live in ``options.py``.
"""
from __future__ import annotations

import sys

import click

from ..errors import OnnxVizError
from . import check, inspect, mine, render, site


class _Group(click.Group):
    """Reports OnnxVizError as a one-line message (exit code 2) instead of a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except OnnxVizError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(package_name="onnxviz")
def main():
    """Feature visualization and dataset examples for any ONNX vision model."""


for _module in (inspect, render, mine, site, check):
    for _command in _module.COMMANDS:
        main.add_command(_command)
