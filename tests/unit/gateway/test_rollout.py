"""Canary and shadow rollouts on a real engine: sticky canary share, comparisons, gate-driven rollback, promote."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from lifecycle_builders import FEATURES, logistic, package_dir

from gateway.engine import Engine
from gateway.errors import ScoregateError
from gateway.monitoring.regression import GateDecision
from gateway.rollout import RolloutController, RolloutOptions
from gateway.rollout_compare import ScoreComparison
from models.manager import ManagerOptions
from models.manifest import TensorSpec
from models.package import write_reference
from models.rollout import RolloutState
from models.store import ArtifactStore


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    store = ArtifactStore(tmp_path / "store")
    # 1 and 2: the same model (a good candidate); 3: the same weights with scores shifted up (a bad candidate)
    for version, bias in (("1", -3.0), ("2", -3.0), ("3", -2.3)):
        store.publish(package_dir(tmp_path / "src", "pctr", version, bias=bias))
    # 4: a model of another width (its own reference inputs warm it up), so every call of this traffic fails on it
    wide = FEATURES + 2
    payload, w, b = logistic(features=wide)
    source = package_dir(
        tmp_path / "src",
        "pctr",
        "4",
        onnx_bytes=payload,
        inputs=(TensorSpec("features", "float32", (-1, wide)),),
        feature_names=tuple(f"user.f{i}" for i in range(wide)),
    )
    x = np.random.default_rng(1).normal(size=(32, wide)).astype(np.float32)
    write_reference(source, x, (1 / (1 + np.exp(-(x @ w + b)))).astype(np.float32))
    store.publish(source)
    engine = Engine.from_store(
        store, manager_options=ManagerOptions(interval_s=0.0), require_validation=False, serve_latest=False
    )
    engine.manager.set_aspired("pctr", ["1"])
    assert engine.manager.converge(30)
    return engine


def _batches(n: int, rows: int = 16) -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [rng.normal(size=(rows, FEATURES)).astype(np.float32) for _ in range(n)]


def test_a_ten_percent_canary_serves_ten_percent_of_100k_keyed_requests_sticky(engine: Engine) -> None:
    rollouts = RolloutController(engine, start_worker=False)
    applied = rollouts.deploy("pctr", "2", canary_pct=10.0)
    assert applied.ok, applied.error
    keys = [f"user-{i}".encode() for i in range(100_000)]
    chosen = []
    for key in keys:
        harness = engine.acquire("pctr", key)
        chosen.append(harness.id.version)
        harness.release()
    share = chosen.count("2") / len(keys)
    assert 0.09 <= share <= 0.11, share
    for i in range(0, 100_000, 997):  # sticky
        harness = engine.acquire("pctr", keys[i])
        assert harness.id.version == chosen[i]
        harness.release()
    # through score(): the calls are counted per version and canary calls are compared with live
    x = _batches(1)[0]
    for key in keys[:2000]:
        engine.score("pctr", x, key=key)
    status = rollouts.status("pctr")
    assert status.served["candidate"] == chosen[:2000].count("2")
    assert status.served["live"] == 2000 - status.served["candidate"]
    assert rollouts.step() == status.served["candidate"]
    assert rollouts.status("pctr").comparison["requests"] == status.served["candidate"]
    rollouts.close()
    engine.close()


def test_a_shifted_candidate_is_rolled_back_by_its_gate(engine: Engine) -> None:
    rollouts = RolloutController(engine, start_worker=False)
    heard: list[tuple[RolloutState, str]] = []
    rollouts.on_rollback.append(lambda state, reason: heard.append((state, reason)))
    assert rollouts.deploy("pctr", "3", shadow=True, shadow_sample=1.0).ok
    assert engine.refs() == ("pctr@1", "pctr@3")
    for x in _batches(200):
        assert engine.score("pctr", x).shape == (16,)  # live answers every request
        rollouts.step()
        if heard:
            break
    assert heard, rollouts.status("pctr")
    state, reason = heard[0]
    assert state == RolloutState("pctr", "1", revision=2)
    assert "mean score changed" in reason
    assert rollouts.state("pctr") == state
    assert "rolled back pctr@3" in rollouts.status("pctr").last_event
    assert engine.manager.converge(30)
    assert engine.refs() == ("pctr@1",)  # the candidate drained and unloaded; live never stopped
    rollouts.close()
    engine.close()


def test_a_good_shadow_passes_compares_and_is_promoted(engine: Engine) -> None:
    rollouts = RolloutController(engine, RolloutOptions(queue_size=4096))
    assert rollouts.deploy("pctr", "2", shadow=True, shadow_sample=1.0).ok
    for x in _batches(120):
        engine.score("pctr", x)
    assert rollouts.wait_idle(30)
    status = rollouts.status("pctr")
    assert status.served["mirrored"] + status.served["dropped"] == 120
    assert status.served["candidate"] == 0  # a shadow answers nobody
    assert rollouts.gate_decision("pctr") is GateDecision.PASS
    assert status.comparison["rank_correlation"] == pytest.approx(1.0)
    assert status.comparison["jensen_shannon"] == pytest.approx(0.0, abs=1e-9)
    applied = rollouts.promote("pctr")
    assert applied.ok and applied.state == RolloutState("pctr", "2", revision=2)
    assert engine.manager.converge(30)
    assert engine.refs() == ("pctr@2",)
    assert engine.runtime("pctr").version == "2"
    rollouts.close()
    engine.close()


def test_a_candidate_that_fails_to_load_changes_nothing(engine: Engine) -> None:
    rollouts = RolloutController(engine, start_worker=False)
    applied = rollouts.deploy("pctr", "9", canary_pct=50.0)
    assert not applied.ok and "pctr@9" in applied.error
    assert engine.manager.converge(30)
    assert engine.refs() == ("pctr@1",)
    harness = engine.acquire("pctr", b"any")
    assert harness.id.version == "1"
    harness.release()
    assert rollouts.state("pctr") is None
    rollouts.close()
    engine.close()


@pytest.mark.parametrize("path", ["score", "run"])
def test_a_canary_that_fails_its_calls_is_rolled_back(engine: Engine, path: str) -> None:
    """On the scoring path and on ``Engine.run`` (the gRPC endpoint's path for multi-input models) alike."""
    rollouts = RolloutController(engine, RolloutOptions(max_candidate_errors=3), start_worker=False)
    rolled_back = threading.Event()
    rollouts.on_rollback.append(lambda state, reason: rolled_back.set())
    assert rollouts.deploy("pctr", "4", canary_pct=100.0).ok
    x = _batches(1)[0]
    for i in range(3):
        with pytest.raises(ScoregateError):
            if path == "score":
                engine.score("pctr", x, key=b"user-%d" % i)
            else:
                engine.run("pctr", {"features": x}, key=b"user-%d" % i)
    assert rolled_back.wait(10)
    assert rollouts.current("pctr") == RolloutState("pctr", "1", revision=2)
    assert "candidate failed 3 call(s)" in rollouts.status("pctr").last_event
    assert engine.score("pctr", x, key=b"user-0").shape == (16,)  # live answers the same key now
    assert engine.run_served("pctr", {"features": x}, key=b"user-0")[1] == "1"
    rollouts.close()
    engine.close()


def test_comparison_reports_distance_rank_and_calibration() -> None:
    comparison = ScoreComparison(bins=10)
    live = np.linspace(0.01, 0.5, 40)
    comparison.add(live, live[::-1])
    comparison.add_labels(np.full(100, 0.1), np.r_[np.ones(5), np.zeros(95)])
    summary = comparison.summary()
    assert summary["rank_correlation"] == pytest.approx(-1.0)
    assert summary["jensen_shannon"] == pytest.approx(0.0, abs=1e-9)  # same distribution, reversed order
    assert summary["calibration_ratio"] == pytest.approx(2.0)
    comparison.add(live, live * 1.8)
    assert comparison.summary()["jensen_shannon"] > 0.01


def test_batched_comparisons_decide_and_describe_as_one_by_one(engine: Engine) -> None:
    """The worker compares what queued meanwhile in one run per version: the same description and the same gate
    decision, reached at the same request, as comparing each call on its own (calls of different sizes fall back
    to per-call ranks)."""
    outcomes = []
    for batch in (1, 64):
        outcome: list[object] = []
        for candidate in ("2", "3"):  # a good shadow, then a shifted one
            rollouts = RolloutController(engine, start_worker=False)
            rollouts.on_rollback.append(lambda state, reason, heard=outcome: heard.append(reason))
            assert rollouts.deploy("pctr", candidate, shadow=True, shadow_sample=1.0).ok
            for i, x in enumerate(_batches(120) + _batches(3, rows=9)):
                engine.score("pctr", x)
                if (i + 1) % batch == 0:
                    rollouts.step()
            rollouts.step()
            status = rollouts.status("pctr")
            if candidate == "2":
                outcome += [status.gate["decision"], status.gate["requests"], status.comparison]
            rollouts.close()
            engine.manager.set_aspired("pctr", ["1"])
            assert engine.manager.converge(30)
        outcomes.append(outcome)
    (decision1, requests1, comparison1, reason1), (decision64, requests64, comparison64, reason64) = outcomes
    assert decision1 == decision64 == "pass" and requests1 == requests64
    assert reason1 == reason64 and "mean score changed" in str(reason1)
    assert isinstance(comparison1, dict) and isinstance(comparison64, dict)
    for key in ("requests", "rows", "rank_correlation", "mean_live", "mean_candidate", "jensen_shannon"):
        assert comparison1[key] == pytest.approx(comparison64[key], rel=1e-6, abs=1e-12), key  # float32 sums
    assert comparison1["requests"] == 123
    engine.close()


def test_a_rollout_comparison_copies_the_call_in_slices_the_gil_stays_with() -> None:
    from gateway.gil import GIL_FREE_ELEMENTS, copy_in_slices
    from gateway.monitoring.divergence import spearman, spearman_rows

    rng = np.random.default_rng(2)
    for shape in ((16, 64), (3,), (7, 501), (200, 200)):
        a = rng.normal(size=shape).astype(np.float32)
        b = copy_in_slices(a)
        assert b.flags.c_contiguous and np.array_equal(a, b) and not np.shares_memory(a, b)
    view = rng.normal(size=(40, 40))[:, ::2]  # not contiguous: one copy
    assert np.array_equal(copy_in_slices(view), view) and GIL_FREE_ELEMENTS == 500
    a, c = rng.random((5, 16)), rng.random((5, 16))
    c[2] = a[2]
    rho = spearman_rows(a, c)
    assert rho[2] == pytest.approx(1.0)
    assert rho.tolist() == pytest.approx([spearman(x, y) for x, y in zip(a, c, strict=True)])
