"""The engine over versioned packages: live and pinned versions, hot-swaps under load, refusals that serve on."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from lifecycle_builders import FEATURES, custom_op_model, package_dir
from onnx_builders import logistic_model

from gateway.engine import Engine
from gateway.errors import ModelNotFoundError, UnavailableError
from gateway.runtime import ModelRuntime
from models.manager import ManagerOptions
from models.manifest import TensorSpec
from models.policy import State
from models.store import ArtifactStore
from models.validate import ValidationOptions, validate_package


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    store = ArtifactStore(tmp_path / "store")
    for version, bias in (("1", -3.0), ("2", 1.0)):
        store.publish(package_dir(tmp_path / "src", "pctr", version, bias=bias))
    return store


def _engine(store: ArtifactStore, **options: object) -> Engine:
    return Engine.from_store(
        store,
        manager_options=ManagerOptions(interval_s=0.0, **options),  # type: ignore[arg-type]
        require_validation=False,
    )


X = np.zeros((4, FEATURES), np.float32)
P1, P2 = 1 / (1 + np.exp(3.0)), 1 / (1 + np.exp(-1.0))  # sigmoid(bias) at x = 0


def test_serves_the_latest_version_and_pins_by_name_at_version(store: ArtifactStore) -> None:
    engine = _engine(store)
    assert engine.names() == ("pctr",)
    np.testing.assert_allclose(engine.score("pctr", X), P2, rtol=1e-6)
    engine.manager.set_aspired("pctr", ["1", "2"], live="2")
    assert engine.manager.converge(10)
    assert engine.refs() == ("pctr@1", "pctr@2")
    np.testing.assert_allclose(engine.score("pctr@1", X), P1, rtol=1e-6)
    assert engine.runtime("pctr@1").version == "1"
    assert engine.runtime("pctr").version == "2"
    out = engine.run("pctr@1", {"features": X})
    np.testing.assert_allclose(out["score"], P1, rtol=1e-6)
    with pytest.raises(ModelNotFoundError, match="pctr@7"):
        engine.score("pctr@7", X)
    engine.close()


def test_hot_swaps_under_concurrent_scoring_fail_no_request(store: ArtifactStore) -> None:
    engine = _engine(store)
    stop = threading.Event()
    errors: list[BaseException] = []
    seen: set[float] = set()
    calls = [0]

    def score() -> None:
        x = np.zeros((4, FEATURES), np.float32)
        out = np.empty(4, np.float32)
        while not stop.is_set():
            try:
                engine.score("pctr", x, out)
                seen.add(round(float(out[0]), 5))
                calls[0] += 1
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=score) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for i in range(20):
            version = "1" if i % 2 == 0 else "2"
            engine.manager.set_aspired("pctr", [version])
            assert engine.manager.converge(10)
            assert engine.runtime("pctr").version == version
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert calls[0] > 0
    assert seen <= {round(P1, 5), round(P2, 5)}
    assert [(s.version, s.state) for s in engine.manager.status()] == [("2", State.READY)]
    engine.close()


def test_a_lying_manifest_does_not_serve_and_the_previous_version_stays(store: ArtifactStore, tmp_path: Path) -> None:
    engine = _engine(store)
    store.publish(
        package_dir(
            tmp_path / "liar",
            "pctr",
            "3",
            inputs=(TensorSpec("features", "float32", (-1, FEATURES + 1)),),
            feature_names=tuple(f"user.f{i}" for i in range(FEATURES + 1)),
        )
    )
    engine.manager.set_aspired("pctr", ["3"])
    assert engine.manager.converge(10)
    status = {s.version: s for s in engine.manager.status()}
    assert status["3"].state is State.ERROR
    assert "differs from the manifest" in status["3"].error
    assert engine.runtime("pctr").version == "2"
    np.testing.assert_allclose(engine.score("pctr", X), P2, rtol=1e-6)
    engine.close()


def test_a_model_over_the_memory_limit_is_refused_and_nothing_serving_changes(store: ArtifactStore) -> None:
    engine = _engine(store, max_model_bytes=10)
    assert engine.names() == ()
    (status,) = engine.manager.status()
    assert status.state is State.ERROR and "over the configured limit" in status.error
    engine.close()


def test_add_replaces_and_closes_the_previous_runtime_once_idle() -> None:
    payload = logistic_model()[0]
    first = ModelRuntime.load(payload, name="pctr", version="1")
    engine = Engine([first])
    harness = engine.acquire("pctr")
    engine.add(ModelRuntime.load(payload, name="pctr", version="2"))
    assert engine.runtime("pctr").version == "2"
    assert not first.closed  # a call still holds it
    harness.release()
    assert engine.manager.converge(10)
    assert first.closed
    with pytest.raises(UnavailableError):
        first.score(np.zeros((1, 16), np.float32))
    assert len(engine) == 1
    engine.close()


def test_a_custom_op_model_published_without_validation_fails_to_load_and_changes_nothing(
    store: ArtifactStore, tmp_path: Path
) -> None:
    engine = _engine(store)
    store.publish(package_dir(tmp_path / "custom", "pctr", "3", onnx_bytes=custom_op_model()))
    engine.manager.set_aspired("pctr", ["3"])
    assert engine.manager.converge(10)
    status = {s.version: s for s in engine.manager.status()}
    assert status["3"].state is State.ERROR and "cannot load model 'pctr'" in status["3"].error
    assert engine.runtime("pctr").version == "2"
    np.testing.assert_allclose(engine.score("pctr", X), P2, rtol=1e-6)
    engine.close()


def test_only_validated_versions_serve_when_validation_is_required(store: ArtifactStore) -> None:
    report = validate_package(store.get("pctr", "1"), ValidationOptions(fuzz_rows=64, latency_calls=20))
    assert report.passed, report.render()
    store.save_report("pctr", "1", report.to_json())
    engine = Engine.from_store(store, manager_options=ManagerOptions(interval_s=0.0), serve_latest=False)
    engine.manager.set_aspired("pctr", ["1"])
    assert engine.manager.converge(10)
    assert engine.runtime("pctr").version == "1"
    engine.manager.set_aspired("pctr", ["2"])  # published, never validated
    assert engine.manager.converge(10)
    status = {s.version: s for s in engine.manager.status()}
    assert status["2"].state is State.ERROR and "not validated" in status["2"].error
    assert engine.runtime("pctr").version == "1"
    engine.close()
