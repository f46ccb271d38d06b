"""Rollout states and the canary router: pure logic, tested with plain keys."""

from __future__ import annotations

import pytest

from models.ids import UnsafeNameError
from models.registry import Registry
from models.rollout import BUCKETS, RolloutRouter, RolloutState, bucket

KEYS = [f"user-{i}".encode() for i in range(100_000)]


def test_a_ten_percent_canary_gets_ten_percent_of_keys_and_each_key_sticks() -> None:
    router = RolloutRouter()
    router.set(RolloutState("pctr", "1", "2", canary_pct=10.0))
    first = [router.route("pctr", "1", k) for k in KEYS]
    share = first.count("2") / len(KEYS)
    assert 0.09 <= share <= 0.11, share
    again = [router.route("pctr", "1", k) for k in KEYS]
    assert again == first  # sticky: the same key, the same version
    assert RolloutRouter().route("pctr", "1", KEYS[0]) == "1"  # another process, no rollout: live
    other = RolloutRouter()
    other.set(RolloutState("pctr", "1", "2", canary_pct=10.0))
    assert [other.route("pctr", "1", k) for k in KEYS[:1000]] == first[:1000]  # the same on every replica


def test_raising_the_percentage_only_moves_keys_to_the_candidate() -> None:
    router = RolloutRouter()
    router.set(RolloutState("pctr", "1", "2", canary_pct=5.0))
    at5 = {k for k in KEYS[:20_000] if router.route("pctr", "1", k) == "2"}
    router.set(RolloutState("pctr", "1", "2", canary_pct=20.0))
    at20 = {k for k in KEYS[:20_000] if router.route("pctr", "1", k) == "2"}
    assert at5 < at20
    assert 0.18 <= len(at20) / 20_000 <= 0.22


def test_requests_without_a_key_and_other_models_go_live() -> None:
    router = RolloutRouter()
    router.set(RolloutState("pctr", "1", "2", canary_pct=100.0))
    assert router.route("pctr", "1", None) == "1"
    assert router.route("pcvr", "4", b"k") == "4"
    assert router.route("pctr", "1", b"k") == "2"
    router.clear("pctr")
    assert router.route("pctr", "1", b"k") == "1"


def test_buckets_are_stable_numbers() -> None:
    assert 0 <= bucket(b"") < BUCKETS
    assert bucket(b"user-1") == bucket(b"user-1")
    assert len({bucket(k) for k in KEYS[:5000]}) > 3000


def test_states_refuse_nonsense_and_round_trip_as_json() -> None:
    state = RolloutState("pctr", "1", "2", canary_pct=12.5, shadow=True, shadow_sample=0.25, revision=3)
    assert RolloutState.from_json(state.to_json()) == state
    assert state.versions == {"1", "2"}
    assert state.promoted() == RolloutState("pctr", "2", revision=4)
    assert state.rolled_back() == RolloutState("pctr", "1", revision=4)
    with pytest.raises(ValueError, match="already the live"):
        RolloutState("pctr", "1", "1")
    with pytest.raises(ValueError, match="needs a candidate"):
        RolloutState("pctr", "1", canary_pct=5)
    with pytest.raises(ValueError, match="canary_pct"):
        RolloutState("pctr", "1", "2", canary_pct=101)
    with pytest.raises(UnsafeNameError):
        RolloutState("../etc", "1")
    with pytest.raises(UnsafeNameError):
        RolloutState("pctr", "1", "2/../../x")
    assert RolloutState("pctr", "1", "2", shadow=True).shadow_sample == 0.1
    with pytest.raises(ValueError, match="unknown"):
        RolloutState.from_json('{"name": "pctr", "live": "1", "evil": 1}')


def test_the_registry_routes_through_the_rollout_router() -> None:
    from models.handle import Harness
    from models.ids import ModelId
    from models.policy import State

    class Closable:
        def close(self) -> None:
            pass

    registry: Registry[Closable] = Registry(RolloutRouter())
    h1 = Harness(ModelId("pctr", "1"), Closable(), State.READY)
    h2 = Harness(ModelId("pctr", "2"), Closable(), State.READY)
    registry.publish({"pctr": {"1": h1, "2": h2}}, {"pctr": "1"})
    assert isinstance(registry.router, RolloutRouter)
    registry.router.set(RolloutState("pctr", "1", "2", canary_pct=50.0))
    chosen = {registry.resolve("pctr", k).id.version for k in KEYS[:100]}
    assert chosen == {"1", "2"}
    assert registry.resolve("pctr@1", KEYS[0]) is h1


def test_buckets_are_the_ones_java_computes() -> None:
    """``dev.scoregate.bridge.Routing.bucket`` pins the same values (RoutingTest): a key routes alike in Java."""
    assert [bucket(k) for k in (b"user-42", b"42", b"", "é".encode())] == [6429, 307, 2227, 9146]
