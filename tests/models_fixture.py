"""Session-wide exports of the real pretrained models (scripts/export.py), each done once per test run.

Import the fixtures into a test module with ``from models_fixture import *  # noqa``, or by name.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def export_script():
    """scripts/export.py as a module (it is a script, not part of the package)."""
    name = "onnxviz_export_script"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / "export.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_cache: dict = {}


def exported(name: str, tmp_path_factory, random: bool = False) -> dict:
    """Export recipe ``name`` once per session; returns the summary (path, numbers) plus the built model."""
    key = (name, random)
    if key not in _cache:
        ex = export_script()
        recipe = ex.load_recipe(name)
        try:
            ex.resolve_weights(recipe, None, random)
        except ex.ExportError as exc:
            pytest.skip(f"weights for {name} are not installed: {exc}")
        out = tmp_path_factory.mktemp(f"export_{name}")
        built = ex.build(recipe, random=random)
        meta = ex.make_meta(recipe, built)
        path = ex.export_onnx(built.model, meta, out / f"{name}.onnx")
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
    return exported("googlenet", tmp_path_factory, random=True)
