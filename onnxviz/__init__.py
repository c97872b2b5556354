"""onnxviz: feature visualization and dataset examples for any ONNX vision model."""
from .errors import (ConversionError, FaithfulnessError, ImageError, ModelLoadError, ObjectiveError,
                     OnnxVizError, UnknownNodeError)
from .preprocessing.meta import ModelMeta
from .model import Layer, Model, load

__all__ = ["load", "Model", "Layer", "ModelMeta", "OnnxVizError", "ModelLoadError", "UnknownNodeError",
           "ConversionError", "FaithfulnessError", "ImageError", "ObjectiveError"]
__version__ = "0.1.0"
