"""The command that reproduces a picture: one builder for every `onnxviz ...` line onnxviz writes.

Render records, mining runs and site pages all show the exact CLI line behind what they show.
``command("render", "m.onnx", "block_7:12", steps=256, seed=0)`` ->
``onnxviz render m.onnx block_7:12 --steps 256 --seed 0``: options in the order given, ``None`` and
``False`` left out, ``True`` as a flag, tuples and lists as several values, every part shell-quoted.
"""
from __future__ import annotations

import inspect
import shlex

# keyword -> flag where the flag is not the keyword with '-' for '_'
_FLAGS = {"labels_file": "--labels", "input_name": "--input"}


def flag(key: str) -> str:
    """The CLI flag of a keyword argument ('batch_size' -> '--batch-size')."""
    return _FLAGS.get(key, "--" + key.replace("_", "-"))


def command(name: str, *args, **options) -> str:
    """The `onnxviz NAME ARGS OPTIONS` line (see the module docstring); arguments that are None are left out."""
    parts = ["onnxviz", *name.split()]
    parts.extend(str(a) for a in args if a is not None)
    for key, value in options.items():
        if value is None or value is False:
            continue
        if value is True:
            parts.append(flag(key))
        elif isinstance(value, (tuple, list)):
            parts.append(flag(key))
            parts.extend(str(v) for v in value)
        else:
            parts.extend([flag(key), str(value)])
    return " ".join(shlex.quote(p) for p in parts)


def api_default(func, param: str, fallback=None):
    """The default of ``func``'s ``param`` as its signature says (``fallback``'s when ``func`` passes it on
    in ``**kwargs``): the Python API owns every default; jobs record the number, the CLI shows it."""
    params = inspect.signature(func).parameters
    if param not in params and fallback is not None:
        return api_default(fallback, param)
    return params[param].default
