"""Hydration through the Java reader (JPype, Hazelcast Java client) against a real 2-member cluster.

The Python client writes (keys as Java ``Long``), the Java client reads: the two sides agree on
keys and layout, and the Java path fills the same matrix as the Python path.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

from cache.client import connect
from cache.hydrate import Hydrator
from cache.member import HazelcastMember
from cache.registry import FeatureRegistry
from cache.store import FeatureWriter
from models.synth import FEATURE_NAMES, WorldConfig, candidate_matrix, make_world, sample_contexts

hazelcast = pytest.importorskip("hazelcast")
pytest.importorskip("jpype")
N_USERS, N_ADS = 200, 1000


@pytest.fixture(scope="module")
def world():  # type: ignore[no-untyped-def]
    return make_world(
        WorldConfig(seed=5, n_users=N_USERS, n_advertisers=50, n_campaigns=200, n_ads=N_ADS, n_placements=20)
    )


@pytest.fixture(scope="module")
def py_client(cluster: list[HazelcastMember]) -> Iterator[object]:
    c = connect(cluster[0].options.cluster_name, [m.address for m in cluster])
    try:
        yield c
    finally:
        c.shutdown()


@pytest.fixture(scope="module")
def registry(py_client: object, world) -> FeatureRegistry:  # type: ignore[no-untyped-def]
    reg = FeatureRegistry.marketplace()
    writer = FeatureWriter(py_client, reg)
    now_ms = int(time.time() * 1000)
    writer.put_many("user_profile", np.arange(N_USERS), world.user_features, now_ms)
    writer.put_many("ad_profile", np.arange(N_ADS - 5), world.ad_features[: N_ADS - 5], now_ms)
    return reg


@pytest.fixture(scope="module")
def java_client(cluster: list[HazelcastMember], registry: FeatureRegistry) -> Iterator[object]:
    from jvm_bridge.features import JavaFeatureClient

    c = JavaFeatureClient(
        cluster[0].options.cluster_name, [m.address for m in cluster], near_cache=[registry.group("ad_profile")]
    )
    try:
        yield c
    finally:
        c.shutdown()


def _context(world):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    return sample_contexts(world, np.array([3]), np.array([world.config.start_epoch_s + 3600.0]), rng).row(0)


def test_java_path_fills_the_marketplace_rows_like_the_python_path(  # type: ignore[no-untyped-def]
    py_client: object, java_client, registry: FeatureRegistry, world
) -> None:
    from jvm_bridge.features import JavaHydrator

    ctx = _context(world)
    ads = np.random.default_rng(2).choice(N_ADS - 5, size=300, replace=False)
    inline = {"context_profile": ctx.features()}
    hyd = JavaHydrator(java_client.instance, registry, FEATURE_NAMES, max_rows=512, slots=2)
    try:
        with hyd.lease() as lease:
            x, report = hyd.hydrate(lease, entities={"user": 11}, ads=ads, inline=inline, timeout_s=5.0)
            assert x.shape == (300, 64) and np.shares_memory(x, lease.features)
            np.testing.assert_array_equal(x, candidate_matrix(world, 11, ctx, ads))
            assert not report.degraded and report.missing == {"user_profile": 0, "ad_profile": 0}
        out = np.empty((300, 64), dtype=np.float32)
        Hydrator(py_client, registry, FEATURE_NAMES).hydrate(
            entities={"user": 11}, ads=ads, out=out, inline=inline, timeout_s=5.0
        )
        with hyd.lease() as lease:
            x, _ = hyd.hydrate(lease, entities={"user": 11}, ads=ads, inline=inline, timeout_s=5.0)
            np.testing.assert_array_equal(x, out)
    finally:
        hyd.close()


def test_keys_agree_as_long_and_an_integer_key_is_not_found(  # type: ignore[no-untyped-def]
    cluster: list[HazelcastMember], java_client, registry: FeatureRegistry
) -> None:
    from jvm_bridge.features import JavaHydrator

    user = registry.group("user_profile")
    names = [f"user.{f.name}" for f in user.features]
    int_client = hazelcast.HazelcastClient(
        cluster_name=cluster[0].options.cluster_name,
        cluster_members=[m.address for m in cluster],
        statistics_enabled=False,
    )
    from cache.codec import encode

    try:
        # The Python client's default: the int is a Java Integer, another key than the Long the readers use.
        int_client.get_map(user.map_name).blocking().put(50_001, encode(user, np.full(24, 4.0, np.float32), 1))
    finally:
        int_client.shutdown()
    hyd = JavaHydrator(java_client.instance, registry, names, max_rows=4, slots=1)
    try:
        with hyd.lease() as lease:
            x, report = hyd.hydrate(lease, entities={"user": 50_001}, ads=[0], timeout_s=5.0)
            assert report.missing == {"user_profile": 1}
            np.testing.assert_array_equal(x[0], user.defaults)
            x, report = hyd.hydrate(lease, entities={"user": 7}, ads=[0], timeout_s=5.0)
            assert report.missing == {"user_profile": 0}
    finally:
        hyd.close()


def test_missing_stale_near_cache_and_bounds(  # type: ignore[no-untyped-def]
    java_client, registry: FeatureRegistry, world
) -> None:
    from jvm_bridge.features import JavaHydrator

    later = time.time() + 7 * 3600  # past the user group's 6 h SLO, within the ad group's 24 h
    inline = {"context_profile": _context(world).features()}
    hyd = JavaHydrator(java_client.instance, registry, FEATURE_NAMES, max_rows=100, slots=1, clock=lambda: later)
    ad_group = registry.group("ad_profile")
    try:
        ads = np.array([0, N_ADS - 1, 5, N_ADS - 2])
        with hyd.lease() as lease:
            hits = java_client.near_cache_hits(ad_group)
            for _ in range(2):
                x, report = hyd.hydrate(lease, entities={"user": 1}, ads=ads, inline=inline, timeout_s=5.0)
            assert java_client.near_cache_hits(ad_group) - hits >= 2, "the second read hits the near cache"
            assert report.missing == {"user_profile": 0, "ad_profile": 2}
            assert report.stale == {"user_profile": 1, "ad_profile": 0}
            np.testing.assert_array_equal(x[1, 24:48], ad_group.defaults)
            np.testing.assert_array_equal(x[0, 24:48], world.ad_features[0])
            with pytest.raises(ValueError, match="at most 100"):
                hyd.hydrate(lease, entities={"user": 1}, ads=np.arange(101), inline=inline)
    finally:
        hyd.close()
