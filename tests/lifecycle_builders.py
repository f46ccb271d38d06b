"""Model packages for lifecycle tests: a real logistic ONNX model, its manifest and reference predictions."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper
from onnx_builders import logistic_model, reference_scores

from gateway.engine import Engine
from models.manager import ManagerOptions
from models.manifest import (
    Fallback,
    HoldoutMetrics,
    LatencyBudget,
    Manifest,
    OutputSemantics,
    Stage,
    Task,
    TensorSpec,
    TrainingWindow,
)
from models.package import write_reference
from models.store import ArtifactStore

FEATURES = 8


def logistic(features: int = FEATURES, seed: int = 7, bias: float = -3.0) -> tuple[bytes, np.ndarray, float]:
    """A logistic model with small weights and a low base rate (probabilities like a CTR's)."""
    return logistic_model(features, seed, scale=0.3, bias=bias)


def custom_op_model(features: int = FEATURES) -> bytes:
    """A graph whose only node is an operator of a custom domain (it would need a custom-op library)."""
    graph = helper.make_graph(
        [helper.make_node("FastScore", ["features"], ["score"], domain="com.example.ops")],
        "custom",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example.ops", 1)]
    )
    model.ir_version = 8
    return bytes(model.SerializeToString())


def manifest_for(onnx_bytes: bytes, name: str = "pctr", version: str = "1", **changes: Any) -> Manifest:
    base = Manifest(
        name=name,
        version=version,
        task=Task.PCTR,
        stage=Stage.FULL_SCORING,
        framework="numpy",
        inputs=(TensorSpec("features", "float32", (-1, FEATURES)),),
        outputs=(TensorSpec("score", "float32", (-1,)),),
        feature_names=tuple(f"user.f{i}" for i in range(FEATURES)),
        output_semantics=OutputSemantics.PROBABILITY,
        label="click",
        owner="lifecycle-tests",
        training_window=TrainingWindow(datetime(2025, 1, 6, tzinfo=UTC), datetime(2025, 1, 13, tzinfo=UTC)),
        holdout=HoldoutMetrics(auc=0.7, log_loss=0.2, calibration_ratio=1.01, n=100_000),
        latency_budget=LatencyBudget(p99_us=50_000, batch=64),
        fallback=Fallback("static_prior", 0.05),
        seed=0,
        onnx_sha256=hashlib.sha256(onnx_bytes).hexdigest(),
    )
    return replace(base, **changes)


def package_dir(
    root: Path,
    name: str = "pctr",
    version: str = "1",
    *,
    seed: int = 7,
    bias: float = -3.0,
    onnx_bytes: bytes | None = None,
    expected_shift: float = 0.0,
    **manifest_changes: Any,
) -> Path:
    """Write ``root/<name>/<version>/{model.onnx, manifest.json, reference.npz}``; returns the directory."""
    payload, w, b = logistic(seed=seed, bias=bias)
    payload = payload if onnx_bytes is None else onnx_bytes
    directory = root / name / version
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "model.onnx").write_bytes(payload)
    manifest_for(payload, name, version, **manifest_changes).save(directory)
    x = np.random.default_rng(seed + 1).normal(size=(32, FEATURES)).astype(np.float32)
    write_reference(directory, x, reference_scores(x, w, b).astype(np.float32) + expected_shift)
    return directory


def checked_model(payload: bytes) -> bytes:
    onnx.checker.check_model(onnx.load_from_string(payload))
    return payload


#: The versions :func:`two_version_engine` publishes, by their bias, and their score at x = 0 (sigmoid of the bias).
TWO_VERSIONS = {"1": -3.0, "2": 1.0}
TWO_VERSION_SCORES = {v: 1 / (1 + np.exp(-b)) for v, b in TWO_VERSIONS.items()}


def two_version_engine(root: Path, aspired: tuple[str, ...] = ("1",), live: str | None = None) -> Engine:
    """An engine over a store under ``root`` holding ``pctr`` at versions 1 and 2 (different scores), served
    unvalidated, with the versions in ``aspired`` loaded and ``live`` (default: the last of them) live."""
    store = ArtifactStore(root / "store")
    for version, bias in TWO_VERSIONS.items():
        store.publish(package_dir(root / "src", "pctr", version, bias=bias))
    engine = Engine.from_store(
        store, manager_options=ManagerOptions(interval_s=0.0), require_validation=False, serve_latest=False
    )
    engine.manager.set_aspired("pctr", list(aspired), live=live)
    assert engine.manager.converge(30)
    return engine
