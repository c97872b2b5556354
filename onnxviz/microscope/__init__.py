"""A whole Microscope in one command: every unit of every chosen layer mined, rendered, checked, and a site.

    onnxviz microscope models/mobilenet_v2.onnx data/photos --out runs/mnv2_microscope --layers block_7

``plan.py`` (what will be done and plan.json), ``calibration.py`` (what it costs on this machine),
``stages.py`` (each stage: a call of the existing API, resumable), ``run.py`` (the job: progress view,
stages.json, summary.json). Measurements: docs/microscope.md.
"""
from .plan import Plan
from .run import make_plan, microscope

__all__ = ["Plan", "make_plan", "microscope"]
