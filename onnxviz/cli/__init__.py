"""The onnxviz command line: a thin layer over the Python API, one module per command.

Each module exports ``COMMANDS``; the group is built from the explicit list below, so a broken
command module fails loudly instead of silently disappearing. Shared options (metadata overrides
and model loading) live in ``options.py``.

Exit codes: 0 done (``check``: 1 when a render is suspect), 2 usage error, 3 bad input (one line
naming the file, field, node or image and what to do), 4 internal error (a bug: the line says so
and how to report it). ``ONNXVIZ_DEBUG=1`` prints the traceback behind any error line.
"""
from __future__ import annotations

import os
import sqlite3
import sys
import traceback

import click

from ..errors import DEBUG_ENV, EXIT_BAD_INPUT, EXIT_INTERNAL, OnnxVizError, describe_os_error
from . import atlas, attribute, check, concepts, inspect, microscope, mine, render, site

_OS_ERRORS = (PermissionError, FileNotFoundError, IsADirectoryError, NotADirectoryError, FileExistsError)


class _Group(click.Group):
    """Bad input is one line and exit code 3; anything else is an internal error (exit code 4)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, SystemExit, KeyboardInterrupt, click.UsageError):
            raise
        except click.ClickException as exc:  # a command's own one-line error about its input
            exc.exit_code = EXIT_BAD_INPUT
            raise
        except OnnxVizError as exc:
            _fail(f"error: {exc}", EXIT_BAD_INPUT)
        except _OS_ERRORS as exc:  # the user's files and folders: the path and what the system said
            _fail(f"error: {describe_os_error(exc)}", EXIT_BAD_INPUT)
        except sqlite3.Error as exc:  # a damaged mining database found after it opened
            _fail(f"error: a mining database of this run is damaged ({exc}); mine again with --overwrite (or into "
                  "a new --out folder)", EXIT_BAD_INPUT)
        except MemoryError:
            _fail("error: out of memory; pick fewer layers (--layers), a smaller --batch-size or a smaller input "
                  "size, or run on a machine with more memory", EXIT_BAD_INPUT)
        except OSError as exc:
            if exc.errno is not None and exc.filename is not None:  # disk full, read-only, ...
                _fail(f"error: {describe_os_error(exc)}", EXIT_BAD_INPUT)
            _internal(ctx, exc)
        except Exception as exc:  # noqa: BLE001 - a bug: say so, never a traceback (unless ONNXVIZ_DEBUG=1)
            _internal(ctx, exc)


def _debug() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip() not in ("", "0", "false", "no")


def _fail(line: str, code: int) -> None:
    if _debug():
        traceback.print_exc()
    click.echo(line, err=True)
    sys.exit(code)


def _internal(ctx, exc: BaseException) -> None:
    command = ctx.invoked_subcommand or "onnxviz"
    _fail(f"error: internal error in `onnxviz {command}` ({_one_line(exc)}). This is a bug in onnxviz, not a "
          f"problem with your input: please report it to the onnxviz maintainers with the command line and what "
          f"`{DEBUG_ENV}=1 onnxviz {command} ...` prints (the traceback).", EXIT_INTERNAL)


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


for _module in (inspect, render, mine, site, attribute, atlas, concepts, check, microscope):
    for _command in _module.COMMANDS:
        main.add_command(_command)
