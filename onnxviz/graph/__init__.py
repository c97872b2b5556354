"""ONNX graph edits: normalise real-world files, expose any node, in-graph reductions, the uint8 pixel
feed, float32 views of quantized or float16 files, and the input sizes a graph accepts."""
