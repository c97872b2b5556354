"""A browsable, static, Microscope-like site for an ONNX model and its render/mining runs."""
from .build import PAGE_SIZE, SiteBuilder, UnsafePathError, build_site
from .collect import Example, MiningSource, Picture, collect_renders
from .serve import make_server, serve

__all__ = ["PAGE_SIZE", "SiteBuilder", "UnsafePathError", "build_site", "Example", "MiningSource", "Picture",
           "collect_renders", "make_server", "serve"]
