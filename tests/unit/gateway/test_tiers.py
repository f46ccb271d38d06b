"""Fallback tiers on a real engine: a failing, slow or unhealthy primary is answered by the lower tiers in time."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from lifecycle_builders import FEATURES, package_dir

from gateway.engine import Engine
from gateway.tiers import Fault, HealthOptions, Tier, TieredScorer, priors_from_store
from models.manager import ManagerOptions
from models.store import ArtifactStore

X = np.zeros((8, FEATURES), np.float32)
P_PRIMARY, P_LITE = 1 / (1 + np.exp(3.0)), 1 / (1 + np.exp(2.0))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    store = ArtifactStore(tmp_path / "store")
    store.publish(package_dir(tmp_path / "src", "pctr", "1", bias=-3.0))
    store.publish(package_dir(tmp_path / "src", "pctr-lite", "1", bias=-2.0))
    return store


@pytest.fixture
def engine(store: ArtifactStore) -> Iterator[Engine]:
    engine = Engine.from_store(store, manager_options=ManagerOptions(interval_s=0.0), require_validation=False)
    yield engine
    engine.close()


def test_policies_come_from_the_manifests(store: ArtifactStore) -> None:
    policies = priors_from_store(store, {"pctr": "pctr-lite"})
    assert policies["pctr"].prior == pytest.approx(0.05) and policies["pctr"].fallback == "pctr-lite"
    assert policies["pctr-lite"].fallback is None


def test_each_tier_answers_in_turn_and_is_counted(store: ArtifactStore, engine: Engine) -> None:
    tiers = TieredScorer(engine, priors_from_store(store, {"pctr": "pctr-lite"}))
    first = tiers.score("pctr", X)
    assert first.tier is Tier.PRIMARY and first.served_by == "pctr" and first.error == ""
    np.testing.assert_allclose(first.scores, P_PRIMARY, rtol=1e-6)
    tiers.inject("pctr", Fault(error="primary broke"))
    out = np.empty(8, np.float32)
    second = tiers.score("pctr", X, out)
    assert second.tier is Tier.FALLBACK_MODEL and second.served_by == "pctr-lite"
    assert second.scores is out and "primary broke" in second.error
    np.testing.assert_allclose(out, P_LITE, rtol=1e-6)
    tiers.inject("pctr-lite", Fault(error="fallback broke too"))
    third = tiers.score("pctr", X)
    assert third.tier is Tier.STATIC_PRIOR and third.served_by == ""
    np.testing.assert_allclose(third.scores, 0.05)
    assert "fallback broke too" in third.error
    assert tiers.counts() == {"pctr": {"primary": 1, "fallback_model": 1, "static_prior": 1}}
    tiers.close()


def test_a_slow_primary_is_answered_by_the_fallback_within_the_deadline(store: ArtifactStore, engine: Engine) -> None:
    tiers = TieredScorer(engine, priors_from_store(store, {"pctr": "pctr-lite"}))
    hold = threading.Event()
    tiers.inject("pctr", Fault(hold=hold))
    deadline = 0.5
    start = time.perf_counter()
    result = tiers.score("pctr", X, deadline_s=deadline)
    elapsed = time.perf_counter() - start
    hold.set()  # let the abandoned primary call finish
    assert result.tier is Tier.FALLBACK_MODEL and "no answer within" in result.error
    assert elapsed < deadline
    np.testing.assert_allclose(result.scores, P_LITE, rtol=1e-6)
    tiers.close()


def test_a_slow_model_without_a_fallback_gets_its_prior_at_the_deadline(store: ArtifactStore, engine: Engine) -> None:
    tiers = TieredScorer(engine, priors_from_store(store))
    hold = threading.Event()
    tiers.inject("pctr", Fault(hold=hold))
    start = time.perf_counter()
    result = tiers.score("pctr", X, deadline_s=0.2)
    elapsed = time.perf_counter() - start
    hold.set()
    assert result.tier is Tier.STATIC_PRIOR and elapsed < 0.2  # the primary had 60 % of it; no fallback model
    tiers.close()


def test_an_unhealthy_primary_is_skipped_until_its_cooldown_ends(store: ArtifactStore, engine: Engine) -> None:
    clock = Clock()
    tiers = TieredScorer(
        engine, priors_from_store(store, {"pctr": "pctr-lite"}), HealthOptions(unhealthy_after=2, cooldown_s=5), clock
    )
    tiers.inject("pctr", Fault(error="down"))
    for _ in range(2):
        assert tiers.score("pctr", X).tier is Tier.FALLBACK_MODEL
    assert not tiers.healthy("pctr")
    tiers.inject("pctr", None)  # it recovered, but nobody tries it during the cooldown
    skipped = tiers.score("pctr", X)
    assert skipped.tier is Tier.FALLBACK_MODEL and "unhealthy" in skipped.error
    clock.now += 5
    assert tiers.score("pctr", X).tier is Tier.PRIMARY  # the probe succeeds: healthy again
    assert tiers.healthy("pctr")
    tiers.close()


def test_a_model_that_does_not_serve_falls_back(store: ArtifactStore, engine: Engine) -> None:
    engine.manager.set_aspired("pctr", [])
    assert engine.manager.converge(30)
    tiers = TieredScorer(engine, priors_from_store(store, {"pctr": "pctr-lite"}))
    result = tiers.score("pctr", X)
    assert result.tier is Tier.FALLBACK_MODEL and "pctr" in result.error
    tiers.close()
