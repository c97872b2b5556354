"""Lucid's and Microscope's layer names, as aliases onto the layers of the framework ports.

A Microscope user knows ``mixed4a:97``, not ``inception4a:97``. Lucid's modelzoo named its layers
after the TensorFlow/Caffe graphs it imported (``lucid/modelzoo/other_models/InceptionV1.py``,
``caffe_models/others.py``, ``slim_models/Inception.py``, ``slim_models/ResNetV2.py``); each table
here maps those names onto the onnxviz short names (or raw tensor names) of our exports. The
architectures match block for block; what differs inside a block is said next to each table and
in the recipe's ``notes``. Unit numbers index the same concatenation order ([1x1, 3x3, 5x5, pool]
for Inception blocks), but with other weights the same unit is another feature.
"""
from __future__ import annotations

# ---------------------------------------------------------------- InceptionV1 (GoogLeNet)
# Lucid's InceptionV1 is the 2014 TF "inception5h" graph: no BatchNorm, LRN after conv2d0 and
# conv2d2, 5x5 convolutions in the third branch, 1008 output classes. torchvision's googlenet
# adds BatchNorm after every convolution, has no LRN, uses a 3x3 kernel where the paper's 5x5
# branch is (a known quirk of its port) and pools with ceil_mode. Channel counts match except
# mixed4a (Lucid 508 = 192+204+48+64, torchvision 512 = 192+208+48+64), so mixed4a units past
# 192+204 are shifted by 4.
_V1_BLOCKS = ["3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"]
# Lucid's branch names inside a block -> torchvision's branch modules
_V1_BRANCHES = {"1x1": "branch1", "3x3_bottleneck": "branch2.0", "3x3": "branch2.1",
                "5x5_bottleneck": "branch3.0", "5x5": "branch3.1", "pool_reduce": "branch4.1"}


def inception_v1() -> dict:
    aliases = {"conv2d0": "conv1", "conv2d1": "conv2", "conv2d2": "conv3",
               # Lucid numbers its pools by op index: maxpool0, maxpool1, maxpool4, maxpool10
               "maxpool0": "maxpool1", "maxpool1": "maxpool2", "maxpool4": "maxpool3", "maxpool10": "maxpool4",
               "avgpool0": "avgpool", "softmax2_pre_activation": "fc"}
    for b in _V1_BLOCKS:
        aliases[f"mixed{b}"] = f"inception{b}"
        for lucid, tv in _V1_BRANCHES.items():
            aliases[f"mixed{b}_{lucid}"] = f"inception{b}.{tv}"
    return aliases


def inception_v1_caffe() -> dict:
    """Lucid's InceptionV1_caffe / _Places365 names (BVLC Caffe GoogLeNet): conv1_7x7_s2 .. inception_5b_output."""
    aliases = {"conv1_7x7_s2": "conv1", "conv2_3x3_reduce": "conv2", "conv2_3x3": "conv3", "prob": "fc"}
    for b in _V1_BLOCKS:
        aliases[f"inception_{b}_output"] = f"inception{b}"
    return aliases


# ---------------------------------------------------------------- VGG19
# Lucid's VGG19_caffe (the Oxford Caffe model): conv1_1/conv1_1 .. conv5_4/conv5_4 are the ReLU
# outputs; Keras names the same layers block1_conv1 .. block5_conv4. torchvision's vgg19 has the
# same layers in ``features`` (Conv at even positions of each block, ReLU right after).
_VGG19_CONVS = [(1, 2), (2, 2), (3, 4), (4, 4), (5, 4)]


def vgg19(with_classifier: bool = True) -> dict:
    aliases, i = {}, 0
    for block, n in _VGG19_CONVS:
        for k in range(1, n + 1):
            relu = f"/features/features.{i + 1}/Relu_output_0"  # tensor names: short names drop
            # the common ``features`` prefix when the model has nothing else
            aliases[f"conv{block}_{k}"] = relu
            aliases[f"block{block}_conv{k}"] = relu
            i += 2
        pool = f"/features/features.{i}/MaxPool_output_0"
        aliases[f"pool{block}"] = pool
        aliases[f"block{block}_pool"] = pool
        i += 1
    if not with_classifier:  # features only: pool5 is the graph's output
        aliases["pool5"] = aliases["block5_pool"] = "features"
    if with_classifier:
        aliases.update({"fc6": "classifier.1", "fc7": "classifier.4", "fc8": "classifier.6"})
    return aliases


# ---------------------------------------------------------------- AlexNet
# Lucid's AlexNet is the 2012 two-tower model (96/256/384/384/256 channels, grouped convolutions,
# LRN); only conv5_1 (256) and the dense layers are listed there. torchvision's alexnet is the
# single-tower "one weird trick" variant (64/192/384/256/256, no groups, no LRN): the names match
# by position, the channels of conv1-conv4 do not.
def alexnet() -> dict:
    return {"conv1": "features.1", "conv2": "features.4", "conv3": "features.7", "conv4": "features.9",
            "conv5": "features.11", "conv5_1": "features.11", "pool5": "features.12",
            "fc6": "classifier.2", "fc7": "classifier.5", "fc8": "classifier.6"}


# ---------------------------------------------------------------- InceptionV3
# Lucid's InceptionV3_slim: InceptionV3/InceptionV3/Conv2d_1a_3x3/Relu .. Mixed_7c/concat.
# torchvision's inception_v3 already uses those block names (Conv2d_1a_3x3, Mixed_5b, ...).
V3_BLOCKS = ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
             "Mixed_7a", "Mixed_7b", "Mixed_7c"]
V3_STEM = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]


def inception_v3(layer_of=None) -> dict:
    """Lucid's full names and lower-case short forms; ``layer_of(slim_name)`` gives our layer."""
    layer_of = layer_of or (lambda name: name)
    aliases = {}
    for name in V3_STEM:
        aliases[f"InceptionV3/InceptionV3/{name}/Relu"] = layer_of(name)
        aliases[name.lower()] = layer_of(name)
    for name in V3_BLOCKS:
        aliases[f"InceptionV3/InceptionV3/{name}/concat"] = layer_of(name)
        aliases[name.lower()] = layer_of(name)
    return {k: v for k, v in aliases.items() if k != v}


# The 2015 TensorFlow graph (inception-2015-12-05, the FID network) names the same blocks
# conv, conv_1 .. conv_4, mixed, mixed_1 .. mixed_10.
_V3_2015 = dict(zip(V3_STEM, ["conv", "conv_1", "conv_2", "conv_3", "conv_4"]))
_V3_2015.update(zip(V3_BLOCKS, ["mixed"] + [f"mixed_{i}" for i in range(1, 11)]))


def inception_v3_2015(scope: str = "/net/layers/") -> dict:
    """Slim/Lucid names and the 2015 names for the 2015 graph's layers, as tensor names under ``scope``."""
    def tensor(slim_name):
        own = _V3_2015[slim_name]
        return f"{scope}{own}/{'Relu' if own.startswith('conv') else 'Concat'}_output_0"

    aliases = inception_v3(tensor)
    for name in V3_STEM + V3_BLOCKS:
        aliases[name] = tensor(name)
        aliases[_V3_2015[name]] = tensor(name)
    aliases["pool_3"] = f"{scope}pool2/AveragePool_output_0"  # the 2048-d global pool the FID uses
    return aliases


# ---------------------------------------------------------------- InceptionV4
# Lucid's InceptionV4_slim: Conv2d_1a_3x3 .. Mixed_3a, Mixed_4a, Mixed_5a..e, Mixed_6a..h,
# Mixed_7a..d. timm's inception_v4 (a port of the same TF-slim weights) keeps them in ``features``.
_V4 = (["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Mixed_3a", "Mixed_4a", "Mixed_5a"]
       + [f"Mixed_5{c}" for c in "bcde"] + ["Mixed_6a"] + [f"Mixed_6{c}" for c in "bcdefgh"]
       + ["Mixed_7a"] + [f"Mixed_7{c}" for c in "bcd"])


def inception_v4() -> dict:
    aliases = {}
    for i, name in enumerate(_V4):
        suffix = "Relu" if name.startswith("Conv") else "concat"
        aliases[name] = f"features.{i}"
        aliases[name.lower()] = f"features.{i}"
        aliases[f"InceptionV4/InceptionV4/{name}/{suffix}"] = f"features.{i}"
    return aliases


# ---------------------------------------------------------------- ResNet v2 50
# Lucid's ResnetV2_50_slim: resnet_v2_50/blockB/unit_U/bottleneck_v2/{preact/Relu, add} and
# postnorm/Relu. timm's resnetv2_50 is the same pre-activation bottleneck net: stage S-1 is block S,
# block U-1 is unit U, norm1 (BatchNorm + ReLU) is preact. Slim downsamples in the last unit of
# blocks 1-3, timm in the first unit of stages 2-4: the spatial size of some units differs.
_R50_UNITS = [3, 4, 6, 3]


def resnet_v2_50() -> dict:
    aliases = {"postnorm": "norm", "resnet_v2_50/postnorm/Relu": "norm"}
    for b, units in enumerate(_R50_UNITS, start=1):
        for u in range(1, units + 1):
            scope = f"/stages/stages.{b - 1}/blocks/blocks.{u - 1}"
            add = f"{scope}/Add_output_0"  # tensor names: the last block's short name is the stage's
            preact = f"{scope}/norm1/act/Relu_output_0"
            lucid = f"resnet_v2_50/block{b}/unit_{u}/bottleneck_v2"
            aliases[f"block{b}_unit_{u}"] = add
            aliases[f"{lucid}/add"] = add
            aliases[f"block{b}_unit_{u}_preact"] = preact
            aliases[f"{lucid}/preact/Relu"] = preact
    return aliases
