"""A browsable, static, Microscope-like site for an ONNX model and its run directory."""
from .build import PAGE_SIZE, SiteBuilder, UnsafePathError, build_site
from .collect import Example, MiningSource
from .serve import make_server, serve

__all__ = ["PAGE_SIZE", "SiteBuilder", "UnsafePathError", "build_site", "Example", "MiningSource", "make_server",
           "serve"]
