"""Building blocks of interpretability: attribution, activation grids and the activation atlas.

    from onnxviz import load
    from onnxviz import attribution as A
    m = load("models/mobilenet_v2.onnx")
    ig = A.integrated_gradients(m, "cat.jpg", "logits:285", smooth=8)   # .maps (N,3,H,W), .heat, .record
    gx = A.gradient_x_input(m, "cat.jpg", "logits:285")
    la = A.layer_attribution(m, "cat.jpg", "logits:285", "block_7")     # .spatial (N,H,W), .channels (N,C)
    bb = A.building_blocks(m, "cat.jpg", "logits:285", "block_7", k=6)   # top channels + their renders
    g = A.activation_grid(m, "cat.jpg", "block_7")                       # .picture(), .to_json()
    a = A.build_atlas(m, "runs/mnv2", "block_7", grid=20)                # after mine --atlas-layers block_7
    A.write_atlas(a, "runs/mnv2/atlas/block_7")

Targets: "layer:unit" (a class logit for (N, C) layers, a channel's mean otherwise), a bare class
index, or any optvis Objective (e.g. ``objectives.direction(layer, vec)``). Everything is in image
space (RGB in [0, 1]) with the model's preprocessing inside the gradient, so it works for any
layout, channel order and value range a model has.
"""
from .atlas import Atlas, build_atlas, write_atlas
from .core import direction_target, output_layer, parse_target
from .grid import GridResult, activation_grid
from .input import InputAttribution, gradient_x_input, integrated_gradients
from .layer import LayerAttribution, building_blocks, layer_attribution

__all__ = ["integrated_gradients", "gradient_x_input", "layer_attribution", "building_blocks", "activation_grid",
           "build_atlas", "write_atlas", "parse_target", "direction_target", "output_layer", "InputAttribution",
           "LayerAttribution", "GridResult", "Atlas"]
