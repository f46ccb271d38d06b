"""Fixtures for tests of the scoring core: small real ONNX models and feature batches."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from onnx_builders import FEATURES, logistic_model


@pytest.fixture(scope="session")
def logistic() -> tuple[bytes, np.ndarray, float]:
    return logistic_model()


@pytest.fixture
def model_file(tmp_path: Path, logistic: tuple[bytes, np.ndarray, float]) -> Path:
    path = tmp_path / "logistic.onnx"
    path.write_bytes(logistic[0])
    return path


@pytest.fixture
def batch() -> Callable[[int], np.ndarray]:
    rng = np.random.default_rng(11)

    def make(rows: int) -> np.ndarray:
        return rng.normal(size=(rows, FEATURES)).astype(np.float32)

    return make
