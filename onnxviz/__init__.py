"""onnxviz: feature visualization and dataset examples for any ONNX vision model."""
