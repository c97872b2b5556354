"""The errors onnxviz raises: each says what went wrong and what to do about it."""
from __future__ import annotations

import difflib


class OnnxVizError(Exception):
    """Base class: a problem with the user's input, reported without a traceback by the CLI."""


class ModelLoadError(OnnxVizError):
    """The file is missing, is not ONNX, is truncated or is not a valid model."""


class UnknownNodeError(OnnxVizError, KeyError):
    """A layer/node name that the model does not have; the message lists close matches."""

    def __init__(self, name: str, known: list, what: str = "layer"):
        self.name = name
        close = difflib.get_close_matches(name, known, n=8, cutoff=0.5)
        if not close:
            close = [k for k in known if name.lower() in k.lower()][:8]
        hint = f" Close matches: {', '.join(close)}." if close else ""
        shown = ", ".join(known[:30]) + (" ..." if len(known) > 30 else "")
        super().__init__(f"no {what} named {name!r} in this model.{hint} Known {what}s: {shown}"
                         f" (`onnxviz inspect` lists them all)")

    def __str__(self):  # KeyError would quote the message
        return self.args[0]


class ConversionError(OnnxVizError):
    """The model cannot be converted to torch (render needs it); onnxruntime features still work."""


class FaithfulnessError(OnnxVizError):
    """The converted torch module disagrees with onnxruntime beyond tolerance."""


class ImageError(OnnxVizError):
    """An image file that cannot be read or decoded."""


class ObjectiveError(OnnxVizError):
    """An objective that names a layer or unit the model does not have, or is malformed."""


class RuntimeModelError(OnnxVizError):
    """onnxruntime refused the model or an input (its message names the node and the shapes)."""


class DatasetError(OnnxVizError):
    """An image source that cannot be used at all (missing, empty, no images)."""


class MiningError(OnnxVizError):
    """A mining run that cannot start or go on (mismatched resume, bad shard set, ...)."""


class RayError(OnnxVizError):
    """Ray is missing or the cluster cannot be reached."""


class ExportError(OnnxVizError):
    """A recipe, weights file or verification problem (the CLI prints it on one line, exit code 2)."""


class UnsafePathError(OnnxVizError, ValueError):
    """A write would land outside the output folder (a site page or image path from untrusted names)."""


class NotEnoughVectors(OnnxVizError):
    """Too few sampled activation vectors for the concept dictionary asked for."""

    def __init__(self, layer: str, have: int, need: int, per_concept: int):
        self.layer, self.have, self.need = layer, have, need  # need 0: unknown (no vectors to count channels)
        needed = f"{need:,} are needed" if need else "some are needed"
        super().__init__(f"layer {layer!r} has {have:,} sampled activation vectors; {needed} ({per_concept} per concept)")


# ---------------------------------------------------------------- exit codes (the CLI's contract)
EXIT_USAGE = 2  # a command line that cannot be run as given (click's usage errors)
EXIT_BAD_INPUT = 3  # an OnnxVizError: a file, folder, field or value the user can fix
EXIT_INTERNAL = 4  # a bug in onnxviz: the line says so and how to report it
DEBUG_ENV = "ONNXVIZ_DEBUG"  # ONNXVIZ_DEBUG=1 prints the traceback behind any error line


class RunDirError(OnnxVizError):
    """A run directory (or a file in it) that is missing, partial or corrupt; names the file and the fix."""


def describe_os_error(exc: OSError, doing: str = "use") -> str:
    """One sentence for an OSError from the user's environment: the path, what the system said, what to do."""
    path = exc.filename if exc.filename is not None else "a file"
    reason = exc.strerror or str(exc) or "an operating-system error"
    hint = {"ENOSPC": "free some disk space", "EACCES": "check its permissions", "EPERM": "check its permissions",
            "ENOENT": "check the path", "EROFS": "write somewhere writable"}.get(_errno_name(exc), "check the path")
    return f"cannot {doing} {path}: {reason} ({hint} and run the command again)"


def _errno_name(exc: OSError) -> str:
    import errno

    return errno.errorcode.get(exc.errno or 0, "")


class MetadataError(OnnxVizError, ValueError):
    """A preprocessing/metadata field with a wrong type or an impossible value; names the field."""
