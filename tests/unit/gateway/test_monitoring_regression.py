"""Regression gate: SPRT on the score ratio, rank agreement, label check, the rollback seam."""

from __future__ import annotations

import numpy as np

from gateway.monitoring import GateDecision, GateOptions, RegressionGate


class Recorder:
    """A rollback handler (the lifecycle's side of the seam) that records its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def rollback(self, model: str, candidate_version: str, reason: str) -> None:
        self.calls.append((model, candidate_version, reason))


def _requests(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    return [rng.beta(1, 40, size=200).astype(np.float32) for _ in range(n)]


def test_shifted_canary_is_rolled_back_once_with_a_reason() -> None:
    rng = np.random.default_rng(0)
    handler = Recorder()
    gate = RegressionGate("pctr", "1", "2", on_rollback=handler)
    decisions = [gate.observe(live, np.minimum(live * 1.2, 1.0)) for live in _requests(rng, 200)]
    first = decisions.index(GateDecision.ROLLBACK)
    assert first + 1 == GateOptions().min_requests
    assert len(handler.calls) == 1 and handler.calls[0][:2] == ("pctr", "2") and "+20.0%" in handler.calls[0][2]
    status = gate.status()
    assert status.decision is GateDecision.ROLLBACK and status.decided_at_request == first + 1


def test_noisy_equivalent_candidates_pass_and_stay_within_the_false_alarm_budget() -> None:
    rng = np.random.default_rng(1)
    rollbacks = 0
    for _ in range(60):
        gate = RegressionGate("pctr", "1", "2")
        for live in _requests(rng, 400):
            cand = np.clip(live * rng.lognormal(0.0, 0.05, size=live.shape[0]), 0, 1).astype(np.float32)
            if gate.observe(live, cand) is not GateDecision.CONTINUE:
                break
        rollbacks += gate.decision is GateDecision.ROLLBACK
        assert gate.decision is not GateDecision.CONTINUE
    assert rollbacks == 0


def test_reordered_candidates_fail_the_rank_check() -> None:
    rng = np.random.default_rng(2)
    gate = RegressionGate("pctr", "1", "2")
    for live in _requests(rng, 60):
        gate.observe(live, rng.permutation(live))
    assert gate.decision is GateDecision.ROLLBACK and "rank correlation" in gate.status().reason


def test_candidate_miscalibrated_on_matured_labels_is_rolled_back() -> None:
    rng = np.random.default_rng(3)
    gate = RegressionGate("pctr", "1", "2", GateOptions(min_requests=1))
    live = _requests(rng, 1)[0]
    p = rng.uniform(0.02, 0.1, size=20_000)
    y = rng.random(p.shape[0]) < p
    assert gate.observe_labels(p, y) is GateDecision.CONTINUE  # calibrated, no score evidence yet
    assert gate.observe_labels(p * 1.6, y) is GateDecision.ROLLBACK
    assert "calibration ratio" in gate.status().reason
    assert gate.observe(live, live) is GateDecision.ROLLBACK  # final
