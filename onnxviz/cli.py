"""The onnxviz command line: a thin layer over the Python API."""
from __future__ import annotations

import importlib
import sys

import click

from .errors import OnnxVizError


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


# Commands that live in their own modules (render, mine, site, ...) register here.
for _name in ("cli_inspect", "cli_render", "cli_mine", "cli_site"):
    try:
        _module = importlib.import_module(f"onnxviz.{_name}")
    except ModuleNotFoundError as _exc:
        if _exc.name == f"onnxviz.{_name}":
            continue
        raise
    for _command in _module.COMMANDS:
        main.add_command(_command)
