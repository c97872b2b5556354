"""A small real CNN for tests: trained in seconds on scikit-learn's 1,797 handwritten digits.

Images are the 8x8 digits upsampled to 16x16, one grayscale channel in [0, 1], so the model
also exercises the non-RGB input path (metadata channel_order "L").
"""
from __future__ import annotations

import numpy as np
import onnx
import torch
from torch import nn

from onnxviz.preprocessing.meta import ModelMeta

DIGITS_META = ModelMeta(input_size=(16, 16), channel_order="L", value_range=(0.0, 1.0), mean=(0.0,), std=(1.0,),
                        labels=[str(i) for i in range(10)], name="digits_cnn", source="trained in tests on sklearn digits")


class DigitsNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(32, 32, 3, padding=1)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.relu(self.conv3(x))
        x = torch.flatten(self.gap(x), 1)
        return self.fc(x)


def save_digit(image: np.ndarray, path) -> None:
    """Write one digits image (1x16x16 floats in 0..1) as an 8-bit PNG, the way a user's folder holds it."""
    from PIL import Image

    Image.fromarray((image.transpose(1, 2, 0) * 255 + 0.5).astype(np.uint8)).save(path)


def save_digit_folder(images: np.ndarray, labels: np.ndarray, root, n: int):
    """The first ``n`` digits as ``root/000_<label>.png`` ...: a user's image folder for mining tests."""
    for i in range(n):
        save_digit(images[i], root / f"{i:03d}_{labels[i]}.png")
    return root


def digits_images() -> tuple:
    """(images (N, 3, 16, 16) RGB in [0, 1] as onnxviz images, labels (N,))."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16.0
    x = torch.nn.functional.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False)
    return x.repeat(1, 3, 1, 1).numpy(), d.target.astype(np.int64)


def train_digits(epochs: int = 12, seed: int = 0) -> tuple:
    """Train DigitsNet; returns (model in eval mode, held-out accuracy)."""
    torch.manual_seed(seed)
    images, labels = digits_images()
    x = torch.from_numpy(DIGITS_META.to_model_input(images))
    y = torch.from_numpy(labels)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    train, test = perm[:1500], perm[1500:]
    model = DigitsNet()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for idx in train[torch.randperm(len(train), generator=g)].split(64):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x[test]).argmax(1) == y[test]).float().mean().item()
    return model, acc


def export_digits(model: nn.Module, path, dynamo: bool = False) -> str:
    """Export with the classic exporter (dynamic batch, opset 17) or the dynamo one (fixed batch 1, opset 18)."""
    dummy = torch.zeros(1, 1, 16, 16)
    if dynamo:
        torch.onnx.export(model, (dummy,), str(path), dynamo=True, external_data=False,
                          input_names=["image"], output_names=["logits"])
    else:
        torch.onnx.export(model, dummy, str(path), dynamo=False, opset_version=17,
                          input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}})
    proto = onnx.load(str(path))
    DIGITS_META.write_to(proto)
    onnx.save(proto, str(path))
    return str(path)
