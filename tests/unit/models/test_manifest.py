"""The package format: JSON round trip, stable bytes, strict parsing with clear errors, artifact checks."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from models.manifest import (
    FORMAT,
    Fallback,
    HoldoutMetrics,
    LatencyBudget,
    Manifest,
    ManifestError,
    OutputSemantics,
    Stage,
    Task,
    TensorSpec,
    TrainingWindow,
    load,
    save,
    sha256_file,
)

PAYLOAD = b"not really onnx"


def make(**changes: Any) -> Manifest:
    base = Manifest(
        name="pctr_gbdt",
        version="1",
        task=Task.PCTR,
        stage=Stage.FULL_SCORING,
        framework="lightgbm",
        inputs=(TensorSpec("features", "float32", (-1, 3)),),
        outputs=(TensorSpec("score", "float32", (-1,)),),
        feature_names=("user.a", "ad.b", "context.c"),
        output_semantics=OutputSemantics.PROBABILITY,
        label="click",
        segment={"region": "eu", "objective": "cpc"},
        owner="scoregate-demo",
        training_window=TrainingWindow(datetime(2025, 1, 6, tzinfo=UTC), datetime(2025, 1, 13, tzinfo=UTC)),
        holdout=HoldoutMetrics(auc=0.73, log_loss=0.108, calibration_ratio=0.98, n=37310, extra={"oracle_auc": 0.85}),
        latency_budget=LatencyBudget(p99_us=4000, batch=256),
        fallback=Fallback("static_prior", 0.025),
        seed=0,
        onnx_sha256=hashlib.sha256(PAYLOAD).hexdigest(),
    )
    return replace(base, **changes)


def test_json_round_trip_is_lossless_and_stable() -> None:
    m = make()
    text = m.to_json()
    back = Manifest.from_json(text)
    assert back == m
    assert back.to_json() == text
    assert hash(back) == hash(m)
    assert list(json.loads(text))[:3] == ["format", "name", "version"]
    assert json.loads(text)["format"] == FORMAT
    # mapping fields are sorted, so insertion order does not change the bytes
    assert make(segment={"objective": "cpc", "region": "eu"}).to_json() == text
    assert list(json.loads(text)["segment"]) == ["objective", "region"]
    assert back.training_window.start == datetime(2025, 1, 6, tzinfo=UTC)
    assert json.loads(text)["training_window"]["start"] == "2025-01-06T00:00:00Z"
    assert back.task is Task.PCTR and back.stage == "full_scoring"


def test_save_load_and_artifact_check(tmp_path: Path) -> None:
    m = make()
    (tmp_path / "model.onnx").write_bytes(PAYLOAD)
    path = save(m, tmp_path)
    assert path == tmp_path / "manifest.json"
    assert load(tmp_path) == m == Manifest.load(tmp_path)
    assert m.check_artifact(tmp_path) == tmp_path / "model.onnx"
    assert sha256_file(tmp_path / "model.onnx") == m.onnx_sha256
    (tmp_path / "model.onnx").write_bytes(PAYLOAD + b"!")
    with pytest.raises(ManifestError, match="SHA-256"):
        m.check_artifact(tmp_path)
    (tmp_path / "model.onnx").unlink()
    with pytest.raises(ManifestError, match="missing"):
        m.check_artifact(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]  # no temp files left behind


def test_load_of_a_missing_manifest_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load(tmp_path)


def _mutated(path: tuple[str, ...], value: Any) -> str:
    d = make().to_dict()
    target = d
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(d)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected an object"),
        (_mutated(("format",), "scoregate.model/2"), "format"),
        (_mutated(("name",), KeyError), "missing keys \\['name'\\]"),
        (_mutated(("surprise",), 1), "unknown keys \\['surprise'\\]"),
        (_mutated(("version",), 1), "'version'.*expected str"),
        (_mutated(("version",), "v1"), "decimal"),
        (_mutated(("name",), "../escape"), "'name'"),
        (_mutated(("task",), "astrology"), "'task'"),
        (_mutated(("stage",), "late"), "'stage'"),
        (_mutated(("output_semantics",), "vibes"), "'output_semantics'"),
        (_mutated(("seed",), True), "'seed'.*expected int"),
        (_mutated(("seed",), 1.5), "'seed'.*expected int"),
        (_mutated(("onnx_sha256",), "abc"), "onnx_sha256"),
        (_mutated(("onnx_file",), "../model.onnx"), "onnx_file"),
        (_mutated(("feature_names",), ["a", "b"]), "2 names for input width 3"),
        (_mutated(("feature_names",), ["a", "a", "b"]), "unique"),
        (_mutated(("inputs",), [{"name": "features", "dtype": "float32", "shape": [-1, 0]}]), "dims must be"),
        (_mutated(("inputs",), [{"name": "features", "dtype": "complex", "shape": [-1, 3]}]), "dtype"),
        (_mutated(("inputs",), []), "at least one input"),
        (_mutated(("holdout", "auc"), 1.5), "holdout.auc"),
        (_mutated(("holdout", "auc"), "0.7"), "holdout.auc"),
        (_mutated(("holdout", "n"), KeyError), "missing keys \\['n'\\]"),
        (_mutated(("holdout", "log_loss"), float("nan")), "finite"),
        (_mutated(("latency_budget", "p99_us"), 0), "latency_budget"),
        (_mutated(("fallback",), {"kind": "static_prior"}), "missing keys \\['value'\\]"),
        (_mutated(("training_window", "start"), "2025-01-06T00:00:00"), "timezone"),
        (_mutated(("training_window", "start"), "yesterday"), "training_window.start"),
        (_mutated(("training_window", "start"), "2025-02-01T00:00:00Z"), "after end"),
        (_mutated(("segment",), {"region": 3}), "segment"),
    ],
)
def test_malformed_manifests_raise_a_value_error_naming_the_problem(text: str, match: str) -> None:
    with pytest.raises(ManifestError, match=match) as info:
        Manifest.from_json(text)
    assert isinstance(info.value, ValueError)


def test_serving_conventions() -> None:
    make().validate_serving()
    tower = make(
        task=Task.RETRIEVAL_USER,
        stage=Stage.RETRIEVAL,
        outputs=(TensorSpec("embedding", "float32", (-1, 16)),),
        output_semantics=OutputSemantics.EMBEDDING,
    )
    tower.validate_serving()
    with pytest.raises(ManifestError, match="score"):
        make(outputs=(TensorSpec("probabilities", "float32", (-1, 2)),)).validate_serving()
    with pytest.raises(ManifestError, match="features"):
        make(inputs=(TensorSpec("x", "float32", (-1, 3)),)).validate_serving()
    with pytest.raises(ManifestError, match="features"):
        make(inputs=(TensorSpec("features", "float32", (8, 3)),)).validate_serving()


def test_manifests_are_immutable_values() -> None:
    m = make()
    with pytest.raises(AttributeError):
        m.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        m.segment["region"] = "na"  # type: ignore[index]
    assert m.key == ("pctr_gbdt", "1")
    assert {m, make()} == {m}
