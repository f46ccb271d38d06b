"""Validation gates on real ONNX models: a good package passes; each kind of bad one fails its gate, readably."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import onnx
import pytest
from lifecycle_builders import FEATURES, custom_op_model, logistic, package_dir

from models.manifest import LatencyBudget, TensorSpec
from models.package import Package
from models.store import ArtifactStore
from models.validate import GATES, ValidationOptions, validate_package

FAST = ValidationOptions(fuzz_rows=64, latency_calls=50)


def _publish(tmp_path: Path, **kwargs: object) -> Package:
    store = ArtifactStore(tmp_path / "store")
    store.publish(package_dir(tmp_path / "src", **kwargs))  # type: ignore[arg-type]
    return store.get("pctr", "1")


def _swap_op(op: str) -> bytes:
    model = onnx.load_from_string(logistic()[0])
    for node in model.graph.node:
        if node.op_type == "Sigmoid":
            node.op_type = op
    return bytes(model.SerializeToString())


def test_a_good_package_passes_every_gate(tmp_path: Path) -> None:
    progress: list[str] = []
    report = validate_package(_publish(tmp_path), FAST, progress.append)
    assert report.passed, report.render()
    assert [g.gate for g in report.gates] == list(GATES) == progress
    text = report.render()
    assert "verdict: PASS" in text and "parity" in text
    assert report.to_dict()["passed"] is True


def _failed(package: Package) -> list[str]:
    report = validate_package(package, FAST)
    assert not report.passed
    assert "verdict: FAIL" in report.render()
    return [g.gate for g in report.failed]


def test_custom_op_model_fails_checker_and_skips_the_rest(tmp_path: Path) -> None:
    package = _publish(tmp_path, onnx_bytes=custom_op_model())
    report = validate_package(package, FAST)
    by_gate = {g.gate: g for g in report.gates}
    assert not by_gate["checker"].passed
    assert by_gate["operators"].skipped and by_gate["parity"].skipped
    assert not report.passed


def test_custom_op_domain_is_named_by_the_operator_gate(tmp_path: Path) -> None:
    # A graph ONNX Runtime loads, but which imports a custom domain: refused by the allow-list.
    model = onnx.load_from_string(logistic()[0])
    model.opset_import.append(onnx.helper.make_opsetid("com.example.ops", 1))
    package = _publish(tmp_path, onnx_bytes=model.SerializeToString())
    report = validate_package(package, FAST)
    (failed,) = report.failed
    assert failed.gate == "operators" and "com.example.ops" in failed.detail


def test_a_manifest_that_lies_about_the_signature_fails(tmp_path: Path) -> None:
    package = _publish(
        tmp_path,
        inputs=(TensorSpec("features", "float32", (-1, FEATURES + 1)),),
        feature_names=tuple(f"user.f{i}" for i in range(FEATURES + 1)),
    )
    report = validate_package(package, FAST)
    assert next(g.gate for g in report.failed) == "signature"
    assert "manifest says [-1, 9]" in report.render()


def test_parity_against_shipped_reference_predictions(tmp_path: Path) -> None:
    assert _failed(_publish(tmp_path, expected_shift=1e-3)) == ["parity"]


def test_out_of_range_probabilities_fail(tmp_path: Path) -> None:
    failed = _failed(_publish(tmp_path, onnx_bytes=_swap_op("Identity")))
    assert "range" in failed


def test_non_finite_outputs_on_fuzzed_inputs_fail(tmp_path: Path) -> None:
    failed = _failed(_publish(tmp_path, onnx_bytes=_swap_op("Log")))
    assert "finite" in failed


def test_latency_over_budget_fails(tmp_path: Path) -> None:
    assert _failed(_publish(tmp_path, latency_budget=LatencyBudget(p99_us=1, batch=64))) == ["latency"]


def test_miscalibrated_holdout_fails(tmp_path: Path) -> None:
    base = _publish(tmp_path)
    holdout = dataclasses.replace(base.manifest.holdout, calibration_ratio=1.6)
    package = _publish(tmp_path / "b", holdout=holdout)
    report = validate_package(package, FAST)
    assert [g.gate for g in report.failed] == ["calibration"]
    assert "1.6000" in report.render()


@pytest.mark.parametrize("bad", [b"", b"\x08\x07garbage"])
def test_corrupt_onnx_with_a_matching_checksum_fails_the_checker(tmp_path: Path, bad: bytes) -> None:
    report = validate_package(_publish(tmp_path, onnx_bytes=bad or b"\x00"), FAST)
    assert report.gates[0].gate == "checker" and not report.gates[0].passed
