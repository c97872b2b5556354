"""Feature visualization by gradient ascent: objectives, image parameterizations, transforms, render.

    from onnxviz import load
    from onnxviz.optvis import render, objectives as obj
    model = load("models/mobilenet_v2.onnx")
    result = render(model, obj.channel("block_7", 12) - 0.5 * obj.channel("block_7", 3), steps=256, seed=0)
    result.images        # (1, 3, 224, 224) RGB in [0, 1]
    result.record        # objective, settings, activation at start/end/per step, dead units
"""
from . import objectives, param, recipes, transforms
from .objectives import Objective, as_objective
from .redirect import redirected_relus
from .render import RenderResult, render

__all__ = ["render", "RenderResult", "Objective", "as_objective", "objectives", "param", "transforms",
           "recipes", "redirected_relus"]
