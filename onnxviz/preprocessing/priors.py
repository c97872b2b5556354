"""Priors: what a file's producer, architecture and task say about its preprocessing, before any photo.

Each rule reads the graph (producer_name, metadata_props, tensor names, input layout and size,
output heads) and adds a score in nats to the candidates its convention names; ``infer`` adds these
to the statistical evidence. A prior states a habit, not a fact: it decides only where the
statistics are weak (the channel order, most often), so every weight here is at most a few nats,
except a producer's own explicit statement (Ultralytics' metadata).

| rule | what it reads | candidates | nats |
|---|---|---|---|
| base | nothing | RGB before BGR; 0..1, ImageNet mean/std and -1..1 alike (no one of them is commoner); CenterNet's stats are rare | -2..0 |
| Ultralytics metadata | metadata_props author "Ultralytics" or imgsz + stride + names | 0..1 RGB | +6 |
| Ultralytics graph | node names /model.0/ ... /model.N/ | 0..1 RGB | +2.5 |
| Paddle export | producer PaddlePaddle/paddle2onnx, p2o.* dims, *.w_0 (*.w_0_deepcopy_N) / *.tmp_0 names | ImageNet in R,G,B order on BGR, -1..1 BGR | +1.5 each |
| PaddleOCR component | a Paddle export whose head names it: a one-channel map (DB detector); a character sequence (its only 3-D output) or a 2-class head (recognizer, direction classifier) | ImageNet in R,G,B order on BGR; -1..1 BGR | +3 (instead of the Paddle export rule) |
| anchor-free YOLO head | an (N, A, 5 + K) output, A the cells at strides 8, 16, 32 of the fixed input | 0..255 BGR; 0..1 RGB | +1; +0.5 |
| PyTorch classifier | producer pytorch (or torch.onnx's /module.path/Op node names), NCHW, an (N, K) head from Gemm/MatMul, input sides open or >= 64 | ImageNet mean/std, RGB | +1 |
| PyTorch, other | producer pytorch, input sides open or >= 64 | ImageNet mean/std, RGB | +0.4 |
| Keras | keras2onnx/tf2onnx (or TensorFlow op names, whatever the producer) with NHWC input | 0..1 RGB, 0..1 gray; ImageNet mean/std (RGB, BGR, R,G,B on BGR) | +1; -0.5 |
| Keras application family | MobileNet/Inception/Xception layer names; VGG/ResNet50; DenseNet, with a 1000/1001-class head | -1..1 RGB; Caffe BGR; ImageNet RGB | +1.8 |
| Caffe | producer caffe / caffe2 / MMdnn | 0..255 BGR minus Caffe mean | +1.5 |
| text recognizer | a wide (W >= 3H) or open-width input, its only 3-D output (N, T, K >= 30) | -1..1 (either order, gray) | +0.5 |
| CenterNet heads | outputs hm + wh or reg (Cycle-CenterNet has no wh) | CenterNet mean/std, BGR | +3 |
| CenterFace heads | four maps of 1, 2, 2, 10 channels at one stride | 0..255 RGB | +3 |
| RetinaFace heads | outputs loc, conf, landms | 0..255 BGR minus Caffe mean | +3 |
| YuNet heads | outputs cls_8, obj_8, bbox_8, kps_8 (and the 16, 32 strides) | 0..255 BGR | +3 |
| face embedding | one (N, 128/256/512) output, fixed square 96..160 px input | -1..1 RGB; -1..1 BGR | +2.5; +1 |
| 3DDFA head | one (N, 62) output | -1..1 RGB | +3 |
| MTCNN heads | outputs of 2 and 4 (and 10) channels only, an input of at most 48 px or open | -1..1 RGB; -1..1 BGR | +1.5; +0.5 |
| SSD head | exactly two outputs (N, A, K) and (N, A, 4), A >= 1000; or one (N, A, K + 4) whose A is not a YOLO head's cells | -1..1 RGB; -1..1 BGR | +2; +0.7 |
| SCRFD heads | 6 or 9 outputs with last dimensions 1, 4 (and 10), three of each | -1..1 RGB; -1..1 BGR | +2.5; +1 |
| YOLO heads | (N, 3 x cells, 5 + K) or (N, 4 + K, cells), cells at strides 8, 16, 32 | 0..1 RGB | +2 |
| image out | a 3-channel output at the input's size or a multiple | 0..1 (-1..1 after a Tanh), RGB; BGR | +2; +1.3 |
"""
from __future__ import annotations

import re

import onnx

BASE = {
    "0..1 RGB": 0.0, "ImageNet mean/std, RGB": 0.0, "-1..1 RGB": 0.0, "0..255 BGR minus Caffe mean": -0.3,
    "0..255 RGB": -0.5, "0..1 BGR": -0.7, "ImageNet mean/std, BGR": -1.0,
    "ImageNet mean/std in R,G,B order on BGR": -0.7, "-1..1 BGR": -0.7, "0..255 BGR": -0.7,
    "CenterNet mean/std, BGR": -2.0, "0..1 gray": 0.0, "-1..1 gray": 0.0, "0..255 gray": -0.3,
}
_PADDLE_NAME = re.compile(r"(\.(w|b)_\d+(_deepcopy_\d+)?|\.tmp_\d+|^save_infer_model/)$|^save_infer_model/")
_KERAS_FAMILIES = (
    (("block_1_expand", "conv_dw_1", "expanded_conv", "mixed0", "mixed_5b", "block1_sepconv1", "conv2_block1_preact"),
     "Keras application of the MobileNet/Inception/Xception/ResNetV2 family ('tf' mode)", {"-1..1 RGB": 1.8}),
    (("conv1_conv", "block1_conv1"), "Keras application of the VGG/ResNet50 family ('caffe' mode)",
     {"0..255 BGR minus Caffe mean": 1.8}),
    (("pool2_conv", "conv1/conv"), "Keras application of the DenseNet family ('torch' mode)",
     {"ImageNet mean/std, RGB": 1.8}),
)


def _dims(vi) -> list:
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in vi.type.tensor_type.shape.dim]


def _names(proto: onnx.ModelProto) -> list:
    g = proto.graph
    return [n.name for n in g.node] + [o for n in g.node for o in n.output] + [t.name for t in g.initializer]


def rules(proto: onnx.ModelProto, input_name: str, layout: str) -> list:
    """[(why, {candidate name: nats})] for the priors that apply to this file (the base prior first)."""
    out = [("base prior: RGB before BGR; 0..1, ImageNet mean/std and -1..1 alike", dict(BASE))]
    producer = (proto.producer_name or "").strip()
    prod = producer.lower()
    meta = {p.key: p.value for p in proto.metadata_props}
    names = _names(proto)
    g = proto.graph
    inp = next((i for i in g.input if i.name == input_name), None)
    in_dims = _dims(inp) if inp is not None else []
    outs = outputs(proto)
    if meta.get("author", "").lower().startswith("ultralytics") or {"imgsz", "stride", "names"} <= set(meta):
        out.append(("Ultralytics export (its metadata_props): Ultralytics feeds 0..1 RGB", {"0..1 RGB": 6.0}))
    elif sum(1 for n in g.node if re.match(r"^/model\.\d+/", n.name)) >= 10:
        out.append(("an Ultralytics-shaped graph (/model.N/ layer names): Ultralytics feeds 0..1 RGB",
                    {"0..1 RGB": 2.5}))
    paddle = prod in ("paddlepaddle", "paddle2onnx") or any(isinstance(d, str) and d.startswith("p2o.")
                                                              for _, ds in outs for d in ds)
    paddle = paddle or sum(1 for n in names if _PADDLE_NAME.search(n)) >= 5
    if paddle:
        out.append(_paddle_rule(outs))
    # tf2onnx names nodes after TensorFlow ops ("model/conv2d/BiasAdd", ".../FusedBatchNormV3") and its open
    # dims "unk__N"; a tool that rewrites producer_name (onnx.utils.extract_model, an optimizer) keeps both
    keras = prod.startswith(("keras2onnx", "tf2onnx")) or (layout == "NHWC" and _tensorflow_named(names, in_dims))
    # torch.onnx names nodes after module paths ("/body/body.0/Conv"); a quantizer or converter that
    # rewrites producer_name keeps them
    torch_names = sum(1 for n in g.node if re.match(r"^/[\w.]+/", n.name)) >= 3
    if (prod == "pytorch" or (torch_names and not prod.startswith(("tf2onnx", "keras2onnx")))) and layout == "NCHW" \
            and _backbone_sized(in_dims, layout):
        prods = {o: n for n in g.node for o in n.output}
        head = False
        for name, dims in outs:
            node = prods.get(name)
            while node is not None and node.op_type in ("Identity", "Reshape", "Flatten", "Softmax", "Sigmoid"):
                node = prods.get(node.input[0])
            head = head or (len(dims) == 2 and node is not None and node.op_type in ("Gemm", "MatMul", "Add"))
        if head:
            out.append(("a PyTorch classifier (NCHW, an (N, K) head): torchvision/timm feed ImageNet mean/std RGB",
                        {"ImageNet mean/std, RGB": 1.0}))
        else:
            out.append(("a PyTorch export: ImageNet mean/std RGB is its commonest convention",
                        {"ImageNet mean/std, RGB": 0.4}))
    if keras and layout == "NHWC":
        # Keras's own examples and ImageDataGenerator(rescale=1/255) feed x / 255; (x - 127.5) / 127.5 is the
        # applications' 'tf' mode (the family rule below, +1.8 so that it outweighs this one)
        out.append(("a Keras export (NHWC): Keras nets trained from scratch are mostly fed x / 255 (RGB or gray); "
                    "ImageNet mean/std is only DenseNet's ('torch' mode, RGB), and never applied to BGR",
                    {"0..1 RGB": 1.0, "0..1 gray": 1.0, "ImageNet mean/std, RGB": -0.5, "ImageNet mean/std, BGR": -0.5,
                     "ImageNet mean/std in R,G,B order on BGR": -0.5}))
        low = " ".join(names).lower()
        imagenet_head = any(len(ds) == 2 and ds[1] in (1000, 1001) for _, ds in outs)
        for keys, why, bonus in _KERAS_FAMILIES if imagenet_head else ():
            if any(k in low for k in keys):
                out.append((why, bonus))
                break
    if any(k in prod for k in ("caffe", "mmdnn")):
        out.append((f"a Caffe model ({producer}): Caffe feeds 0..255 BGR minus the mean",
                    {"0..255 BGR minus Caffe mean": 1.5}))
    if len(in_dims) == 4:
        h, w = _sides(in_dims, layout)
        wide = not isinstance(w, int) or (isinstance(h, int) and w >= 3 * h)
        if wide and character_sequence(outs):
            out.append(("a text recognizer (a wide line in, a character sequence out): CRNNs are fed (x - 0.5) / 0.5",
                        {"-1..1 RGB": 0.5, "-1..1 BGR": 0.5, "-1..1 gray": 0.5}))
    if _anchor_free_yolo(in_dims, layout, outs):
        out.append(("an anchor-free YOLO head (N, A, 5 + K), A cells at strides 8, 16, 32: YOLOX's own demo feeds "
                    "the cv2 BGR image 0..255 unnormalized, YOLOv6 0..1 RGB", {"0..255 BGR": 1.0, "0..1 RGB": 0.5}))
    onames = {n.split("/")[-1].lower() for n, _ in outs}
    if "hm" in onames and onames & {"wh", "reg"}:  # every CenterNet variant keeps hm and reg or wh
        out.append(("CenterNet heads (hm with wh or reg): CenterNet's own mean/std on cv2 BGR",
                    {"CenterNet mean/std, BGR": 3.0}))
    elif _centerface(outs):
        out.append(("CenterFace heads (heatmap, scale, offset, 5 landmarks: 1, 2, 2, 10 channels at one stride): "
                    "CenterFace's demo feeds cv2.dnn.blobFromImage(scalefactor 1, mean 0, swapRB) of the cv2 image, "
                    "0..255 RGB", {"0..255 RGB": 3.0}))
    out.extend(_task_heads(proto, in_dims, layout, outs))
    if {"cls_8", "obj_8", "bbox_8", "kps_8"} <= onames:
        out.append(("YuNet heads (cls, obj, bbox, kps at strides 8, 16, 32): OpenCV's FaceDetectorYN feeds "
                    "blobFromImage of the cv2 image, 0..255 BGR, no mean", {"0..255 BGR": 3.0}))
    if {"loc", "conf", "landms"} <= onames:
        out.append(("RetinaFace heads (loc, conf, landms): Pytorch_Retinaface's detect.py subtracts (104, 117, 123) "
                    "from the cv2 BGR image, 0..255", {"0..255 BGR minus Caffe mean": 3.0}))
    return out


_TF_NAME = re.compile(r"/(Conv2D|BiasAdd|FusedBatchNorm(V3)?|depthwise|ReadVariableOp)(:0)?$")


def _tensorflow_named(names: list, in_dims: list) -> bool:
    """At least 10 tensor names end in a TensorFlow op (Conv2D, BiasAdd, FusedBatchNormV3, depthwise,
    ReadVariableOp), or the input has tf2onnx's "unk__N" batch dim and 3 such names."""
    tf = sum(1 for n in names if _TF_NAME.search(n))
    unk = any(isinstance(d, str) and d.startswith("unk__") for d in in_dims)
    return tf >= 10 or (unk and tf >= 3)


def _task_heads(proto: onnx.ModelProto, in_dims: list, layout: str, outs: list) -> list:
    """Priors from heads whose task has one habit across the code that trains and feeds it.

    - a face embedding: one (N, 128 | 256 | 512) output of a fixed square 96..160 px input (ArcFace,
      InsightFace, MobileFaceNet, FaceNet): (x - 127.5) / 128 or / 127.5, RGB;
    - 3DDFA's 62 3DMM parameters, its only output: 3DDFA and 3DDFA_V2 normalize (x - 127.5) / 128;
    - MTCNN's P-, R- and O-Net (a face score, a box, and O-Net's landmarks, nothing else): (x - 127.5) / 128;
    - an SSD head, exactly two (N, A, K) and (N, A, 4) outputs over A >= 1000 anchors (pytorch-ssd,
      UltraFace, MobileNet-SSD, TF Object Detection's SSDs): (x - 127) / 128 or 2x / 255 - 1;
    - SCRFD's score, box and landmark maps per stride (InsightFace): (x - 127.5) / 128;
    - a YOLOv5-style or YOLOv8-style head on the stride 8/16/32 cells (YOLOv5, YOLOv7, Ultralytics): 0..1 RGB;
    - an image out, three channels at the input's size or a multiple (super-resolution, denoising, image
      translation): the net's output domain is its input's, 0..1, or -1..1 when a Tanh makes the image."""
    out = []
    hw = _hw(in_dims, layout)
    single = len(outs) == 1 and len(outs[0][1]) == 2 and outs[0][1][1]
    if single in (128, 256, 512) and hw and hw[0] == hw[1] and 96 <= hw[0] <= 160:
        out.append((f"a face embedding ({single} values from a {hw[0]} px square): ArcFace, MobileFaceNet and FaceNet "
                    "are fed (x - 127.5) / 128, RGB", {"-1..1 RGB": 2.5, "-1..1 BGR": 1.0}))
    elif single == 62:
        out.append(("3DDFA's 62 3DMM parameters (pose 12, shape 40, expression 10): 3DDFA normalizes "
                    "(x - 127.5) / 128, RGB", {"-1..1 RGB": 3.0}))
    if _mtcnn(in_dims, layout, outs):
        out.append(("MTCNN heads (a face score of 2, a box of 4 and 5 landmarks of 10 channels, a <= 48 px crop or "
                    "an open size): MTCNN (Caffe, facenet-pytorch, ipazc's Keras port) feeds (x - 127.5) / 128, RGB",
                    {"-1..1 RGB": 1.5, "-1..1 BGR": 0.5}))
    seqs = [ds for _, ds in outs if len(ds) == 3]
    if len(outs) == 2 and len(seqs) == 2 and seqs[0][1] == seqs[1][1] and isinstance(seqs[0][1], int) \
            and seqs[0][1] >= 1000 and sorted(isinstance(d[2], int) and d[2] == 4 for d in seqs) == [False, True]:
        out.append(("an SSD head (class scores and 4 box offsets per anchor): pytorch-ssd, UltraFace and "
                    "MobileNet-SSD are fed (x - 127) / 128, RGB", {"-1..1 RGB": 2.0, "-1..1 BGR": 0.7}))
    elif _ssd_concatenated(in_dims, layout, outs):
        out.append(("an SSD head in one tensor (N, A, K + 4) over A >= 1000 anchors that are not a YOLO head's cells "
                    "(UltraFace's Keras/TF port concatenates scores and boxes): fed (x - 127) / 128, RGB",
                    {"-1..1 RGB": 2.0, "-1..1 BGR": 0.7}))
    if _scrfd(outs):
        out.append(("SCRFD heads (scores, boxes and 5 landmarks at strides 8, 16, 32): InsightFace feeds SCRFD "
                    "(x - 127.5) / 128, RGB", {"-1..1 RGB": 2.5, "-1..1 BGR": 1.0}))
    yolo = _yolo_head(in_dims, layout, outs)
    if yolo:
        out.append((f"a {yolo} head on the cells at strides 8, 16, 32: YOLOv5, YOLOv7 and Ultralytics feed 0..1 RGB",
                    {"0..1 RGB": 2.0}))
    if _image_out(in_dims, layout, outs):
        tanh = _ends_in(proto, "Tanh")
        out.append(("an image out (3 channels at the input's size or a multiple: super-resolution, restoration, "
                    "translation): fed in its output's domain, " + ("-1..1 (a Tanh makes it)" if tanh else "0..1"),
                    {"-1..1 RGB": 2.0, "-1..1 BGR": 1.3} if tanh else {"0..1 RGB": 2.0, "0..1 BGR": 1.3}))
    return out


def _mtcnn(in_dims: list, layout: str, outs: list) -> bool:
    """Outputs of 2 and 4 channels (and 10), nothing else, all of one rank, from an open or <= 48 px input:
    MTCNN's face/non-face score, box regression and O-Net's landmarks (channels last in 2-D and NHWC
    outputs, second in NCHW maps)."""
    if len(in_dims) != 4 or len({len(ds) for _, ds in outs}) != 1 or len(outs[0][1]) not in (2, 4):
        return False
    hw = _sides(in_dims, layout)
    if any(isinstance(v, int) and v > 48 for v in hw):
        return False
    chans = sorted(ds[1] if len(ds) == 4 and layout == "NCHW" else ds[-1] for _, ds in outs)
    return chans in ([2, 4], [2, 4, 10])


def _scrfd(outs: list) -> bool:
    """Six or nine outputs whose last dimensions are 1, 4 (and 10) three times each: SCRFD's score, box and
    landmark maps per stride, flattened to (A, k) or (N, A, k)."""
    last = sorted(ds[-1] for _, ds in outs if len(ds) in (2, 3) and isinstance(ds[-1], int))
    return len(last) == len(outs) and last in ([1, 1, 1, 4, 4, 4], [1, 1, 1, 4, 4, 4, 10, 10, 10])


def _yolo_head(in_dims: list, layout: str, outs: list) -> str:
    """"YOLOv5-style" for an (N, 3 x cells, 5 + K) output (three anchors per cell), "YOLOv8-style" for
    (N, 4 + K, cells) (Ultralytics' anchor-free head, also with mask or keypoint channels); cells are those
    at strides 8, 16 and 32 of the fixed input. YOLOX's (N, cells, 5 + K) is ``_anchor_free_yolo``."""
    cells = _cells(_hw(in_dims, layout))
    for _, ds in outs if cells else ():
        if len(ds) == 3 and ds[1] == 3 * cells and isinstance(ds[2], int) and 6 <= ds[2] <= 300:
            return "YOLOv5-style"
        if len(ds) == 3 and ds[2] == cells and isinstance(ds[1], int) and 5 <= ds[1] <= 400:
            return "YOLOv8-style"
    return ""


def _cells(hw) -> int:
    """Cells of a detection head at strides 8, 16 and 32 of an (H, W) input (0 without a fixed size)."""
    return sum((-(-hw[0] // s)) * (-(-hw[1] // s)) for s in (8, 16, 32)) if hw else 0


def _sides(in_dims: list, layout: str):
    """(H, W) of a 4-D input as declared (an open side is its name or None)."""
    return (in_dims[2], in_dims[3]) if layout == "NCHW" else (in_dims[1], in_dims[2])


def _hw(in_dims: list, layout: str):
    """(H, W) of a fixed 4-D input, else None."""
    if len(in_dims) != 4:
        return None
    hw = _sides(in_dims, layout)
    return hw if all(isinstance(v, int) and v > 0 for v in hw) else None


def _image_out(in_dims: list, layout: str, outs: list) -> bool:
    """An output of 3 channels whose H and W are the input's (the same names when open) or one integer multiple of
    them (fixed sizes, or "4*height" written by the torch exporter)."""
    if len(in_dims) != 4:
        return False
    ihw = _sides(in_dims, layout)
    for _, ds in outs:
        if len(ds) != 4:
            continue
        c, ohw = (ds[1], (ds[2], ds[3])) if layout == "NCHW" else (ds[3], (ds[1], ds[2]))
        if c != 3:
            continue
        factors = {_multiple(a, b) for a, b in zip(ihw, ohw)}
        if len(factors) == 1 and None not in factors:
            return True
    return False


def _multiple(side, out_side):
    """k when ``out_side`` is k times ``side`` (k >= 1): fixed sides, the same open name, or the torch exporter's
    symbolic "4*height" of an open "height"; else None."""
    if isinstance(side, int) and isinstance(out_side, int):
        return out_side // side if side > 0 and out_side >= side and out_side % side == 0 else None
    if not isinstance(side, str) or not isinstance(out_side, str):
        return None
    if out_side == side:
        return 1
    m = re.fullmatch(rf"\s*(\d+)\s*\*\s*{re.escape(side)}\s*|\s*{re.escape(side)}\s*\*\s*(\d+)\s*", out_side)
    return int(m.group(1) or m.group(2)) if m else None


def _ends_in(proto: onnx.ModelProto, op: str) -> bool:
    """Is ``op`` among the last few nodes before a graph output (past reshapes, clips and scalings)?"""
    prods = {o: n for n in proto.graph.node for o in n.output}
    for o in proto.graph.output:
        node, hops = prods.get(o.name), 0
        while node is not None and hops < 4:
            if node.op_type == op:
                return True
            node, hops = prods.get(node.input[0]) if node.input else None, hops + 1
    return False


def _centerface(outs: list) -> bool:
    """Four 4-D outputs of 1, 2, 2 and 10 channels at one resolution: CenterFace's heatmap, box scale,
    box offset and five landmarks (its ONNX file names them by number: 537..540)."""
    maps = [ds for _, ds in outs if len(ds) == 4]
    return (len(maps) == len(outs) == 4 and all(isinstance(ds[1], int) for ds in maps)
            and sorted(ds[1] for ds in maps) == [1, 2, 2, 10]
            and len({(str(ds[2]), str(ds[3])) for ds in maps}) == 1)


def _backbone_sized(in_dims: list, layout: str) -> bool:
    """Is the input big enough for an ImageNet backbone (both sides open or at least 64 px)? Those
    downsample 32 times; a net for 16 px-high thumbnails or 32 px crops was built from scratch, and
    torchvision's habit (ImageNet mean/std) says nothing about it."""
    if len(in_dims) != 4:
        return True
    hw = _sides(in_dims, layout)
    return all(not isinstance(v, int) or v <= 0 or v >= 64 for v in hw)


def _paddle_rule(outs: list) -> tuple:
    """The Paddle prior, sharpened by the head when it names the PaddleOCR component: a one-channel map
    is a DB text detector (NormalizeImage: ImageNet's list on the cv2 BGR image), a character sequence
    (``character_sequence``) a recognizer and a 2-class head the text-line direction classifier (both (x - 0.5) / 0.5
    on BGR, rec_image_shape / cls_image_shape in PaddleOCR's code)."""
    dense = any(len(ds) == 4 and ds[1] == 1 for _, ds in outs)
    text = character_sequence(outs) or any(len(ds) == 2 and ds[1] == 2 for _, ds in outs)
    if dense and not text:
        return ("a PaddleOCR text detector (a Paddle export with a one-channel map out): NormalizeImage lists "
                "ImageNet's mean/std and applies it to the cv2 BGR image", {"ImageNet mean/std in R,G,B order on BGR": 3.0})
    if text and not dense:
        return ("a PaddleOCR recognizer or direction classifier (a Paddle export with a character sequence or a "
                "2-class head out): PaddleOCR feeds its text-line nets (x - 0.5) / 0.5 on the cv2 BGR image",
                {"-1..1 BGR": 3.0})
    return ("a Paddle export: Paddle's NormalizeImage lists ImageNet's mean/std and is applied to cv2 BGR "
            "images, its text nets use (x - 0.5) / 0.5", {"ImageNet mean/std in R,G,B order on BGR": 1.5, "-1..1 BGR": 1.5})


def outputs(proto: onnx.ModelProto) -> list:
    """[(name, dims)] of the graph's outputs (an open dimension is its name or None)."""
    return [(o.name, _dims(o)) for o in proto.graph.output]


def character_sequence(outs: list) -> bool:
    """Is the graph's only 3-D output per-position character scores (N, T, K), K >= 30 classes?

    A text recognizer (CRNN, SVTR) returns its character scores and nothing else. Sequences beside
    other sequences are something else: PaddleOCR's table-structure recognizer SLANet returns a
    (N, 501, 30) token sequence with a (N, 501, 4) box sequence, a PP-PicoDet layout detector
    (N, A, K) class scores and (N, A, 32) box distributions per stride. T >= 1000 is an anchor grid."""
    seqs = [ds for _, ds in outs if len(ds) == 3]
    if len(seqs) != 1:
        return False
    t, k = seqs[0][1], seqs[0][2]
    return isinstance(k, int) and k >= 30 and not (isinstance(t, int) and t >= 1000)


def _ssd_concatenated(in_dims: list, layout: str, outs: list) -> bool:
    """One (N, A, K + 4) output, 6 <= K + 4 <= 25, A >= 1000 and neither the cells at strides 8, 16, 32 of
    a fixed input nor three times them (YOLOX's and YOLOv5's rows): an SSD's scores and boxes in one tensor."""
    if len(outs) != 1 or len(outs[0][1]) != 3:
        return False
    a, k = outs[0][1][1:]
    cells = _cells(_hw(in_dims, layout))
    return isinstance(a, int) and isinstance(k, int) and a >= 1000 and 6 <= k <= 25 and bool(cells) \
        and a not in (cells, 3 * cells)


def _anchor_free_yolo(in_dims: list, layout: str, outs: list) -> bool:
    """An (N, A, 5 + K) output whose A is the number of cells at strides 8, 16 and 32 of a fixed input
    (YOLOX, YOLOv6; YOLOv5's anchor-based head has three times as many rows, Ultralytics' v8+ is (N, 4 + K, A))."""
    cells = _cells(_hw(in_dims, layout))
    return bool(cells) and any(len(ds) == 3 and ds[1] == cells and isinstance(ds[2], int) and 6 <= ds[2] <= 300
                               for _, ds in outs)


def prior_scores(proto: onnx.ModelProto, input_name: str, layout: str, cands: list) -> tuple:
    """({candidate name: summed prior in nats}, [evidence lines]) for ``cands``."""
    score = {c.name: 0.0 for c in cands}
    lines = []
    for why, bonus in rules(proto, input_name, layout):
        hit = [c.name for c in cands if c.name in bonus and bonus[c.name]]
        for n in hit:
            score[n] += bonus[n]
        if hit and not why.startswith("base"):
            lines.append(f"prior: {why} (" + ", ".join(f"{n} {bonus[n]:+g}" for n in hit) + " nats)")
    return score, lines
