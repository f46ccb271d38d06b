"""Feature writes and hydration against a real 2-member Hazelcast cluster on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

from cache.client import connect
from cache.hydrate import Hydrator
from cache.member import HazelcastMember, start_cluster
from cache.registry import FeatureRegistry
from cache.store import FeatureWriter
from models.synth import FEATURE_NAMES, WorldConfig, candidate_matrix, make_world, sample_contexts

hazelcast = pytest.importorskip("hazelcast")
N_USERS, N_ADS = 500, 3000


@pytest.fixture(scope="module")
def world():  # type: ignore[no-untyped-def]
    return make_world(
        WorldConfig(seed=3, n_users=N_USERS, n_advertisers=100, n_campaigns=400, n_ads=N_ADS, n_placements=50)
    )


@pytest.fixture(scope="module")
def client(cluster: list[HazelcastMember]) -> Iterator[object]:
    c = connect(cluster[0].options.cluster_name, [m.address for m in cluster])
    try:
        yield c
    finally:
        c.shutdown()


@pytest.fixture(scope="module")
def loaded(client: object, world) -> FeatureRegistry:  # type: ignore[no-untyped-def]
    reg = FeatureRegistry.marketplace()
    writer = FeatureWriter(client, reg)
    now_ms = int(time.time() * 1000)
    assert writer.put_many("user_profile", np.arange(N_USERS), world.user_features, now_ms) == N_USERS
    # every ad but the last 10, which stay missing
    assert writer.put_many("ad_profile", np.arange(N_ADS - 10), world.ad_features[: N_ADS - 10], now_ms) == N_ADS - 10
    return reg


def _context(world):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    return sample_contexts(world, np.array([7]), np.array([world.config.start_epoch_s + 3600.0]), rng).row(0)


def test_hydrated_matrix_equals_the_marketplace_rows(client: object, loaded: FeatureRegistry, world) -> None:  # type: ignore[no-untyped-def]
    ctx = _context(world)
    ads = np.random.default_rng(2).choice(N_ADS - 10, size=500, replace=False)
    hyd = Hydrator(client, loaded, FEATURE_NAMES)
    out = np.empty((500, 64), dtype=np.float32)
    report = hyd.hydrate(
        entities={"user": 7}, ads=ads, out=out, inline={"context_profile": ctx.features()}, timeout_s=5.0
    )
    np.testing.assert_array_equal(out, candidate_matrix(world, 7, ctx, ads))
    assert not report.degraded and report.rows == 500


def test_missing_ads_get_defaults_and_are_counted(client: object, loaded: FeatureRegistry, world) -> None:  # type: ignore[no-untyped-def]
    ctx = _context(world)
    ads = np.array([0, N_ADS - 1, 5, N_ADS - 2])  # two of them never written
    hyd = Hydrator(client, loaded, FEATURE_NAMES)
    out = np.empty((4, 64), dtype=np.float32)
    report = hyd.hydrate(
        entities={"user": 3}, ads=ads, out=out, inline={"context_profile": ctx.features()}, timeout_s=5.0
    )
    assert report.missing == {"user_profile": 0, "ad_profile": 2}
    defaults = loaded.group("ad_profile").defaults
    np.testing.assert_array_equal(out[1, 24:48], defaults)
    np.testing.assert_array_equal(out[0, 24:48], world.ad_features[0])


def test_stale_values_are_served_and_flagged(client: object, loaded: FeatureRegistry, world) -> None:  # type: ignore[no-untyped-def]
    ctx = _context(world)
    later = time.time() + 7 * 3600  # past the user group's 6 h SLO, within the ad group's 24 h
    hyd = Hydrator(client, loaded, FEATURE_NAMES, clock=lambda: later)
    out = np.empty((2, 64), dtype=np.float32)
    report = hyd.hydrate(
        entities={"user": 1}, ads=[1, 2], out=out, inline={"context_profile": ctx.features()}, timeout_s=5.0
    )
    assert report.stale == {"user_profile": 1, "ad_profile": 0}
    np.testing.assert_array_equal(out[0, :24], world.user_features[1])


def test_streaming_updates_never_go_back_in_time(client: object, loaded: FeatureRegistry) -> None:
    writer = FeatureWriter(client, loaded)
    v1, v2, v3 = (np.full(24, x, dtype=np.float32) for x in (1.0, 2.0, 3.0))
    assert writer.update("user_profile", 10_000, v2, event_ms=2_000)  # new entity
    assert not writer.update("user_profile", 10_000, v1, event_ms=1_000)  # older: dropped
    assert not writer.update("user_profile", 10_000, v1, event_ms=2_000)  # same time: dropped
    assert writer.update("user_profile", 10_000, v3, event_ms=3_000)
    hyd = Hydrator(client, loaded, [f"user.{f.name}" for f in loaded.group("user_profile").features])
    out = np.empty((1, 24), dtype=np.float32)
    hyd.hydrate(entities={"user": 10_000}, ads=[0], out=out, timeout_s=5.0)
    np.testing.assert_array_equal(out[0], v3)


def test_bad_writes_are_rejected_before_anything_is_written(client: object, loaded: FeatureRegistry) -> None:
    from cache.codec import CodecError
    from cache.registry import UnknownFeatureGroupError

    writer = FeatureWriter(client, loaded)
    with pytest.raises(UnknownFeatureGroupError):
        writer.put_many("nope", [1], np.zeros((1, 24), np.float32), 0)
    bad = np.zeros((3, 24), np.float32)
    bad[2, 5] = np.nan
    with pytest.raises(CodecError, match="NaN"):
        writer.put_many("user_profile", [20_001, 20_002, 20_003], bad, 0)
    assert client.get_map("fg.user_profile.v1").blocking().get(20_001) is None  # type: ignore[attr-defined]
    with pytest.raises(CodecError, match="expected 24 values"):
        writer.update("user_profile", 1, np.zeros(23, np.float32), 5)


def test_dead_cluster_answers_within_the_deadline_with_defaults(world) -> None:  # type: ignore[no-untyped-def]
    (member,) = start_cluster(1)
    c = connect(member.options.cluster_name, [member.address], cluster_connect_timeout=5, invocation_timeout=2)
    try:
        reg = FeatureRegistry.marketplace()
        FeatureWriter(c, reg).put_many("ad_profile", np.arange(100), world.ad_features[:100], int(time.time() * 1000))
        hyd = Hydrator(c, reg, FEATURE_NAMES)
        ctx = _context(world).features()
        out = np.empty((50, 64), dtype=np.float32)
        member.kill()
        t0 = time.perf_counter()
        report = hyd.hydrate(
            entities={"user": 1}, ads=np.arange(50), out=out, inline={"context_profile": ctx}, timeout_s=0.05
        )
        took = time.perf_counter() - t0
        assert took < 0.5, took
        assert report.degraded and report.missing["ad_profile"] == 50 and report.missing["user_profile"] == 1
        np.testing.assert_array_equal(out[:, 24:48], np.broadcast_to(reg.group("ad_profile").defaults, (50, 24)))
    finally:
        member.stop()
        c.shutdown()


def test_a_client_writing_integer_keys_is_refused(cluster: list[HazelcastMember]) -> None:
    c = hazelcast.HazelcastClient(
        cluster_name=cluster[0].options.cluster_name,
        cluster_members=[m.address for m in cluster],
        statistics_enabled=False,
    )
    try:
        with pytest.raises(ValueError, match="Long"):
            FeatureWriter(c, FeatureRegistry.marketplace())
        with pytest.raises(ValueError, match="Long"):
            Hydrator(c, FeatureRegistry.marketplace(), FEATURE_NAMES)
    finally:
        c.shutdown()
