"""Small ONNX files, each with one trait that real-world ONNX files have and a loader must cope with.

Every builder writes a file into ``directory`` and returns a ``Trait``: the path, one inner tensor to
check (its raw ONNX name), what onnxviz should report for it (layout, units, spatial size at the
default input size) and the input sizes to run. ``reference`` computes that tensor with plain
onnxruntime on the *original* file (the node exposed by hand), the ground truth the tests compare
onnxviz's activations and torch view with.

(a) nhwc_input            Keras/TF style NHWC input (N, H, W, 3) then Transpose to NCHW, tf2onnx names, MatMul+Add head
(b) weights_as_inputs     initializers also listed among graph inputs (PaddlePaddle, old exporters)
(c) old_opset(9|11|12)    classic torch exporter at an old opset: BatchNorm, Upsample/Resize, Flatten, Gemm
(d) external_data         weights in a separate file (save_as_external_data, one file, threshold 0)
(e) fixed_batch_reshape   batch fixed to 1, Reshape to [1, -1] before the classifier
(f) dynamic_hw            dynamic height and width (and batch)
(g) merged_initializers   classic exporter merging identical initializers behind Identity nodes
                          (torchvision mobilenet_v3_small, random weights, small input)
(h) dynamo                the dynamo exporter's opset 18 file: tests/conftest.py ``digits_onnx_dynamo``
(i) space_to_depth        tf2onnx's SpaceToDepth, then DepthToSpace in DCR (TF's) and CRD (torch's) modes, and a
                          SAME_UPPER AveragePool that does not count its padding
(j) dynamic_clip          Clip whose min and max are computed by nodes (Cast, Mul), not constants
(k) unsorted_nodes        nodes listed out of topological order (onnxruntime runs it; onnx.checker does not)
(l) token_layernorm       conv features reshaped to tokens by a computed shape, then LayerNormalization
                          (shape inference leaves the token dims unknown; dynamic H, W)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

OPSET = 13


@dataclass
class Trait:
    name: str
    path: Path
    tensor: str  # raw ONNX name of an inner tensor to check
    layout: str  # what onnxviz should report for it: "NCHW" | "NHWC" | "NC"
    units: int
    spatial: Optional[tuple]  # (H, W) at the default input size, None for NC layers
    input_layout: str = "NCHW"
    channels: int = 3
    sizes: list = field(default_factory=lambda: [(32, 32)])  # input (H, W) sizes to run
    fixed_batch: bool = False  # the original file only accepts batch 1


# ------------------------------------------------------------------ helpers
def _rng(seed=0):
    return np.random.default_rng(seed)


def _he(rng, *shape):
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


def _init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def _save(model: onnx.ModelProto, path: Path, **kwargs) -> Path:
    if model.ir_version > 8:
        model.ir_version = 8  # what exporters of opset 13 write; onnxruntime 1.31 reads IR <= 13
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path), **kwargs)
    return path


def first_output(path, op_type: str, nth: int = 0) -> str:
    """The output tensor of the nth node of op_type in a file (used to pick tensors of torch exports)."""
    proto = onnx.load(str(path), load_external_data=False)
    outs = [n.output[0] for n in proto.graph.node if n.op_type == op_type]
    return outs[nth]


def reference(path, tensor: str, x: np.ndarray, fixed_batch: bool = False) -> np.ndarray:
    """``tensor`` computed by plain onnxruntime on the original file, exposed as an extra graph output."""
    import onnxruntime as ort

    proto = onnx.load(str(path))  # external data loads relative to the file
    if tensor not in [o.name for o in proto.graph.output]:
        proto.graph.output.append(helper.make_tensor_value_info(tensor, TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feeds = [i.name for i in sess.get_inputs()]
    assert len(feeds) == 1, f"reference runs need one real input, got {feeds}"
    if fixed_batch:
        return np.concatenate([sess.run([tensor], {feeds[0]: x[i:i + 1]})[0] for i in range(len(x))])
    return sess.run([tensor], {feeds[0]: x})[0]


def _conv_classifier_nodes(prefix: str, src: str, rng, inits: list, classes: int = 10, flatten_node=None):
    """Conv(3->8)+Relu, MaxPool, Conv(8->16, stride 2)+Relu, then GlobalAveragePool or a given flatten."""
    nodes = [
        helper.make_node("Conv", [src, f"{prefix}conv1/W", f"{prefix}conv1/b"], [f"{prefix}conv1/BiasAdd:0"],
                         name=f"{prefix}conv1/Conv2D", pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
        helper.make_node("Relu", [f"{prefix}conv1/BiasAdd:0"], [f"{prefix}conv1/Relu:0"], name=f"{prefix}conv1/Relu"),
        helper.make_node("MaxPool", [f"{prefix}conv1/Relu:0"], [f"{prefix}pool1/MaxPool:0"], name=f"{prefix}pool1/MaxPool",
                         kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", [f"{prefix}pool1/MaxPool:0", f"{prefix}conv2/W", f"{prefix}conv2/b"],
                         [f"{prefix}conv2/BiasAdd:0"], name=f"{prefix}conv2/Conv2D", pads=[1, 1, 1, 1],
                         kernel_shape=[3, 3], strides=[2, 2]),
        helper.make_node("Relu", [f"{prefix}conv2/BiasAdd:0"], [f"{prefix}conv2/Relu:0"], name=f"{prefix}conv2/Relu"),
    ]
    inits += [_init(f"{prefix}conv1/W", _he(rng, 8, 3, 3, 3)), _init(f"{prefix}conv1/b", rng.normal(0, .1, 8).astype(np.float32)),
              _init(f"{prefix}conv2/W", _he(rng, 16, 8, 3, 3)), _init(f"{prefix}conv2/b", rng.normal(0, .1, 16).astype(np.float32))]
    return nodes


# ------------------------------------------------------------------ (a) NHWC input
def nhwc_input(directory: Path) -> Trait:
    """tf2onnx-style: input (N, 32, 32, 3) NHWC, Transpose to NCHW, conv stack, MatMul + Add, Softmax."""
    rng = _rng(1)
    p = "StatefulPartitionedCall/model/"
    inits: list = []
    nodes = [helper.make_node("Transpose", ["input_1"], [f"{p}conv1/Conv2D__6:0"], name=f"{p}conv1/Conv2D__6",
                              perm=[0, 3, 1, 2])]
    nodes += _conv_classifier_nodes(p, f"{p}conv1/Conv2D__6:0", rng, inits)
    nodes += [
        helper.make_node("GlobalAveragePool", [f"{p}conv2/Relu:0"], [f"{p}gap/Mean:0"], name=f"{p}gap/Mean"),
        helper.make_node("Squeeze", [f"{p}gap/Mean:0", "sq_axes"], [f"{p}gap/Squeeze:0"], name=f"{p}gap/Squeeze"),
        helper.make_node("MatMul", [f"{p}gap/Squeeze:0", f"{p}dense/W"], [f"{p}dense/MatMul:0"], name=f"{p}dense/MatMul"),
        helper.make_node("Add", [f"{p}dense/MatMul:0", f"{p}dense/b"], [f"{p}dense/BiasAdd:0"], name=f"{p}dense/BiasAdd"),
        helper.make_node("Softmax", [f"{p}dense/BiasAdd:0"], ["dense"], name=f"{p}dense/Softmax", axis=-1),
    ]
    inits += [_init("sq_axes", np.array([2, 3], np.int64)), _init(f"{p}dense/W", _he(rng, 16, 10)),
              _init(f"{p}dense/b", np.zeros(10, np.float32))]
    graph = helper.make_graph(nodes, "tf2onnx", [helper.make_tensor_value_info("input_1", TensorProto.FLOAT,
                                                                               ["unk__12", 32, 32, 3])],
                              [helper.make_tensor_value_info("dense", TensorProto.FLOAT, ["unk__13", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tf2onnx",
                              producer_version="1.16.1")
    path = _save(model, directory / "nhwc_input.onnx")
    return Trait("nhwc_input", path, f"{p}conv1/Relu:0", "NCHW", 8, (32, 32), input_layout="NHWC")


# ------------------------------------------------------------------ (b) weights among graph inputs
def weights_as_inputs(directory: Path) -> Trait:
    rng = _rng(2)
    inits: list = []
    nodes = _conv_classifier_nodes("", "image", rng, inits)
    nodes += [helper.make_node("GlobalAveragePool", ["conv2/Relu:0"], ["gap:0"], name="gap"),
              helper.make_node("Flatten", ["gap:0"], ["flat:0"], name="flatten", axis=1),
              helper.make_node("Gemm", ["flat:0", "fc/W", "fc/b"], ["logits"], name="fc", transB=1)]
    inits += [_init("fc/W", _he(rng, 10, 16)), _init("fc/b", np.zeros(10, np.float32))]
    inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 32, 32])]
    inputs += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in inits]  # old style
    graph = helper.make_graph(nodes, "paddle", inputs,
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], producer_name="PaddlePaddle")
    model.ir_version = 6
    path = _save(model, directory / "weights_as_inputs.onnx")
    return Trait("weights_as_inputs", path, "conv2/Relu:0", "NCHW", 16, (8, 8))


# ------------------------------------------------------------------ torch nets for (c), (d), (f)
class SmallNet(nn.Module):
    """Conv+BN+ReLU, MaxPool, standalone BN (survives folding), Upsample, Conv+ReLU, GAP, Flatten, Linear."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)
        self.bn2 = nn.BatchNorm2d(8)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1, stride=2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.bn1(self.conv1(x))))
        x = self.up(self.bn2(x))
        x = torch.relu(self.conv2(x))
        return self.fc(torch.flatten(self.gap(x), 1))


def small_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = SmallNet()
    with torch.no_grad():  # non-trivial BN statistics so folding and BN nodes matter
        for bn in (net.bn1, net.bn2):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 1.5)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.2, 0.2)
    return net.eval()


def _torch_export(net, path: Path, opset: int, size=(32, 32), dynamic_hw=False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {0: "N", 2: "H", 3: "W"} if dynamic_hw else {0: "N"}
    with torch.no_grad():
        torch.onnx.export(net, (torch.zeros(1, 3, *size),), str(path), dynamo=False, opset_version=opset,
                          input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": axes, "logits": {0: "N"}})
    return path


def old_opset(directory: Path, opset: int) -> Trait:
    path = _torch_export(small_net(opset), directory / f"old_opset{opset}.onnx", opset)
    # the last Relu: after BatchNormalization, Upsample/Resize and the strided conv
    return Trait(f"old_opset{opset}", path, first_output(path, "Relu", 1), "NCHW", 16, (16, 16))


# ------------------------------------------------------------------ (d) external data
def external_data(directory: Path) -> Trait:
    tmp = _torch_export(small_net(4), directory / "external_tmp.onnx", 17)
    proto = onnx.load(str(tmp))
    tmp.unlink()
    path = directory / "external" / "external_data.onnx"
    _save(proto, path, save_as_external_data=True, all_tensors_to_one_file=True, location="external_data.onnx.data",
          size_threshold=0)
    return Trait("external_data", path, first_output(path, "Relu", 0), "NCHW", 8, (32, 32))


# ------------------------------------------------------------------ (e) fixed batch 1 + Reshape [1, -1]
def fixed_batch_reshape(directory: Path) -> Trait:
    rng = _rng(5)
    inits: list = []
    nodes = _conv_classifier_nodes("", "data", rng, inits)
    nodes += [helper.make_node("Reshape", ["conv2/Relu:0", "flat_shape"], ["flat:0"], name="flatten/Reshape"),
              helper.make_node("Gemm", ["flat:0", "fc/W", "fc/b"], ["fc:0"], name="fc", transB=1),
              helper.make_node("Softmax", ["fc:0"], ["prob"], name="prob", axis=1)]
    inits += [_init("flat_shape", np.array([1, -1], np.int64)), _init("fc/W", _he(rng, 10, 16 * 8 * 8)),
              _init("fc/b", np.zeros(10, np.float32))]
    graph = helper.make_graph(nodes, "fixed", [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 32, 32])],
                              [helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    path = _save(model, directory / "fixed_batch_reshape.onnx")
    return Trait("fixed_batch_reshape", path, "fc:0", "NC", 10, None, fixed_batch=True)


# ------------------------------------------------------------------ (f) dynamic H, W
def dynamic_hw(directory: Path) -> Trait:
    path = _torch_export(small_net(6), directory / "dynamic_hw.onnx", 17, dynamic_hw=True)
    return Trait("dynamic_hw", path, first_output(path, "Relu", 1), "NCHW", 16, None, sizes=[(32, 32), (48, 64)])


# ------------------------------------------------------------------ (g) identical initializers merged behind Identity
def merged_initializers(directory: Path) -> Trait:
    """torchvision mobilenet_v3_small with random init: BN folding gives many identical all-zero biases,
    which the classic exporter stores once and feeds through Identity nodes."""
    from onnxviz.compat import import_torchvision

    tv = import_torchvision()
    torch.manual_seed(7)
    net = tv.models.mobilenet_v3_small(weights=None).eval()
    path = _torch_export(net, directory / "merged_initializers.onnx", 17, size=(64, 64))
    # a hardswish activation deep in the net: the expansion of block features.5
    return Trait("merged_initializers", path, first_output(path, "HardSwish", 3), "NCHW", 240, (4, 4),
                 sizes=[(64, 64)])


# ------------------------------------------------------------------ (i) SpaceToDepth / DepthToSpace
def _conv(name, src, rng, inits, cin, cout, relu=True) -> list:
    inits += [_init(f"{name}/W", _he(rng, cout, cin, 3, 3)), _init(f"{name}/b", rng.normal(0, .1, cout).astype(np.float32))]
    nodes = [helper.make_node("Conv", [src, f"{name}/W", f"{name}/b"], [f"{name}:0"], name=name, pads=[1, 1, 1, 1],
                              kernel_shape=[3, 3])]
    if relu:
        nodes.append(helper.make_node("Relu", [f"{name}:0"], [f"{name}/Relu:0"], name=f"{name}/Relu"))
    return nodes


def _head(src: str, channels: int, rng, inits) -> list:
    inits += [_init("fc/W", _he(rng, 10, channels)), _init("fc/b", np.zeros(10, np.float32))]
    return [helper.make_node("GlobalAveragePool", [src], ["gap:0"], name="gap"),
            helper.make_node("Flatten", ["gap:0"], ["flat:0"], name="flatten", axis=1),
            helper.make_node("Gemm", ["flat:0", "fc/W", "fc/b"], ["logits"], name="fc", transB=1)]


def _model(nodes, inits, name: str, opset: int = OPSET, producer: str = "") -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 32, 32])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name=producer)


def space_to_depth(directory: Path) -> Trait:
    rng = _rng(8)
    inits: list = []
    nodes = _conv("conv1", "image", rng, inits, 3, 8)
    nodes += [helper.make_node("SpaceToDepth", ["conv1/Relu:0"], ["s2d:0"], name="s2d", blocksize=2)]  # 32 x 16 x 16
    nodes += _conv("conv2", "s2d:0", rng, inits, 32, 16)
    nodes += [helper.make_node("DepthToSpace", ["conv2/Relu:0"], ["d2s_dcr:0"], name="d2s_dcr", blocksize=2),
              helper.make_node("DepthToSpace", ["conv2/Relu:0"], ["d2s_crd:0"], name="d2s_crd", blocksize=2,
                               mode="CRD"),
              helper.make_node("Concat", ["d2s_dcr:0", "d2s_crd:0"], ["both:0"], name="both", axis=1)]  # 8 x 32 x 32
    nodes += _conv("conv3", "both:0", rng, inits, 8, 12)
    # tf2onnx's SAME average pool: the padded border does not count in the average
    nodes += [helper.make_node("AveragePool", ["conv3/Relu:0"], ["pool:0"], name="pool", kernel_shape=[3, 3],
                               strides=[2, 2], auto_pad="SAME_UPPER")]
    nodes += _head("pool:0", 12, rng, inits)
    path = _save(_model(nodes, inits, "tf2onnx", producer="tf2onnx"), directory / "space_to_depth.onnx")
    return Trait("space_to_depth", path, "pool:0", "NCHW", 12, (16, 16))


# ------------------------------------------------------------------ (j) Clip bounds computed in the graph
def dynamic_clip(directory: Path) -> Trait:
    rng = _rng(9)
    inits: list = [_init("lo64", np.array(0.05, np.float64)), _init("half", np.array(0.3, np.float32)),
                   _init("two", np.array(2.0, np.float32))]
    nodes = _conv("conv1", "image", rng, inits, 3, 8, relu=False)
    nodes += [helper.make_node("Cast", ["lo64"], ["lo:0"], name="lo", to=TensorProto.FLOAT),
              helper.make_node("Mul", ["half", "two"], ["hi:0"], name="hi"),
              helper.make_node("Clip", ["conv1:0", "lo:0", "hi:0"], ["clip:0"], name="clip")]
    nodes += _conv("conv2", "clip:0", rng, inits, 8, 16)
    nodes += _head("conv2/Relu:0", 16, rng, inits)
    path = _save(_model(nodes, inits, "clip"), directory / "dynamic_clip.onnx")
    return Trait("dynamic_clip", path, "conv2/Relu:0", "NCHW", 16, (32, 32))


# ------------------------------------------------------------------ (k) nodes out of topological order
def unsorted_nodes(directory: Path) -> Trait:
    rng = _rng(10)
    inits: list = []
    nodes = _conv("conv1", "image", rng, inits, 3, 8) + _conv("conv2", "conv1/Relu:0", rng, inits, 8, 16)
    nodes += _head("conv2/Relu:0", 16, rng, inits)
    model = _model(list(reversed(nodes)), inits, "unsorted")
    model.ir_version = 8
    path = directory / "unsorted_nodes.onnx"  # not _save: onnx.checker rejects the order, onnxruntime does not
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return Trait("unsorted_nodes", path, "conv2/Relu:0", "NCHW", 16, (32, 32))


# ------------------------------------------------------------------ (l) LayerNormalization of tokens of unknown shape
def token_layernorm(directory: Path) -> Trait:
    rng = _rng(11)
    inits: list = [_init("starts", np.array([0], np.int64)), _init("ends", np.array([2], np.int64)),
                   _init("rest", np.array([-1], np.int64)), _init("ln/scale", rng.uniform(0.5, 1.5, 8).astype(np.float32)),
                   _init("ln/bias", rng.normal(0, 0.1, 8).astype(np.float32)),
                   _init("fc/W", _he(rng, 10, 8)), _init("fc/b", np.zeros(10, np.float32))]
    nodes = _conv("conv1", "image", rng, inits, 3, 8)
    nodes += [helper.make_node("Shape", ["conv1/Relu:0"], ["shape:0"], name="shape"),
              helper.make_node("Slice", ["shape:0", "starts", "ends"], ["nc:0"], name="nc"),
              helper.make_node("Concat", ["nc:0", "rest"], ["target:0"], name="target", axis=0),
              helper.make_node("Reshape", ["conv1/Relu:0", "target:0"], ["flat:0"], name="flat"),
              helper.make_node("Transpose", ["flat:0"], ["tokens:0"], name="tokens", perm=[0, 2, 1]),
              helper.make_node("LayerNormalization", ["tokens:0", "ln/scale", "ln/bias"], ["ln:0"], name="ln",
                               axis=-1, epsilon=1e-5),
              helper.make_node("ReduceMean", ["ln:0"], ["pool:0"], name="pool", axes=[1], keepdims=0),
              helper.make_node("Gemm", ["pool:0", "fc/W", "fc/b"], ["logits"], name="fc", transB=1)]
    graph = helper.make_graph(nodes, "tokens", [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                                                              ["N", 3, "H", "W"])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = _save(model, directory / "token_layernorm.onnx")
    return Trait("token_layernorm", path, "ln:0", "NLC", 8, None, sizes=[(32, 32), (24, 40)])


def has_identity_initializers(path) -> int:
    """How many Identity nodes read an initializer (the trait (g) is really present when > 0)."""
    proto = onnx.load(str(path), load_external_data=False)
    names = {t.name for t in proto.graph.initializer}
    return sum(1 for n in proto.graph.node if n.op_type == "Identity" and n.input[0] in names)


BUILDERS = {
    "nhwc_input": nhwc_input,
    "weights_as_inputs": weights_as_inputs,
    "old_opset9": lambda d: old_opset(d, 9),
    "old_opset11": lambda d: old_opset(d, 11),
    "old_opset12": lambda d: old_opset(d, 12),
    "external_data": external_data,
    "fixed_batch_reshape": fixed_batch_reshape,
    "dynamic_hw": dynamic_hw,
    "merged_initializers": merged_initializers,
    "space_to_depth": space_to_depth,
    "dynamic_clip": dynamic_clip,
    "unsorted_nodes": unsorted_nodes,
    "token_layernorm": token_layernorm,
}
