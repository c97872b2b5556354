"""Shared fixtures: a real small CNN trained on scikit-learn digits, exported both ways."""
from __future__ import annotations

import pytest

from digits import digits_images, export_digits, train_digits


@pytest.fixture(scope="session")
def digits_torch():
    """(trained DigitsNet in eval mode, held-out accuracy)."""
    return train_digits()


@pytest.fixture(scope="session")
def digits_data():
    """(images (N, 3, 16, 16) in [0, 1], labels (N,))."""
    return digits_images()


@pytest.fixture(scope="session")
def digits_onnx(digits_torch, tmp_path_factory):
    """Path of the digits CNN exported with the classic torch exporter (opset 17, dynamic batch)."""
    return export_digits(digits_torch[0], tmp_path_factory.mktemp("digits") / "digits_classic.onnx")


@pytest.fixture(scope="session")
def digits_onnx_dynamo(digits_torch, tmp_path_factory):
    """Path of the digits CNN exported with the dynamo exporter (opset 18, fixed batch 1)."""
    return export_digits(digits_torch[0], tmp_path_factory.mktemp("digits") / "digits_dynamo.onnx", dynamo=True)
