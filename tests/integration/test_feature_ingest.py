"""Batch loads from the marketplace's Parquet tables, and bad input at every door, against a real member."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cache.client import connect
from cache.codec import CodecError
from cache.hydrate import Hydrator
from cache.ingest import load_parquet
from cache.member import start_cluster
from cache.registry import FeatureRegistry, UnknownFeatureGroupError
from cache.store import FeatureWriter
from models.synth import FEATURE_NAMES, WorldConfig, candidate_matrix, make_world, sample_contexts
from models.synth.tables import ads_table, users_table

pytest.importorskip("hazelcast")


@pytest.fixture(scope="module")
def world():  # type: ignore[no-untyped-def]
    return make_world(WorldConfig(seed=4, n_users=300, n_advertisers=30, n_campaigns=100, n_ads=700, n_placements=10))


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    (member,) = start_cluster(1)
    c = connect(member.options.cluster_name, [member.address])
    try:
        yield c
    finally:
        c.shutdown()
        member.stop()


def test_loads_the_marketplace_tables_and_serves_them(client: object, world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pq.write_table(users_table(world), tmp_path / "users.parquet")
    pq.write_table(ads_table(world), tmp_path / "ads.parquet")
    reg = FeatureRegistry.marketplace()
    writer = FeatureWriter(client, reg)
    users = load_parquet(writer, "user_profile", tmp_path / "users.parquet", batch_rows=128)
    ads = load_parquet(writer, "ad_profile", tmp_path / "ads.parquet", batch_rows=256, progress=True)
    assert (users.rows, ads.rows) == (300, 700) and not users.replaced and not ads.replaced
    ctx = sample_contexts(world, np.array([2]), np.array([world.config.start_epoch_s + 60.0]), np.random.default_rng(0))
    row = ctx.row(0)
    picks = np.arange(0, 700, 7)
    out = np.empty((len(picks), 64), dtype=np.float32)
    # the tables' event time is the world's start: judge freshness as of then
    hyd = Hydrator(client, reg, FEATURE_NAMES, clock=lambda: world.config.start_epoch_s + 60.0)
    report = hyd.hydrate(
        entities={"user": 5}, ads=picks, out=out, inline={"context_profile": row.features()}, timeout_s=5.0
    )
    assert not report.degraded
    np.testing.assert_array_equal(out, candidate_matrix(world, 5, row, picks))


def _table(n: int, width: int, values: np.ndarray, *, as_int: bool = False) -> pa.Table:
    reg = FeatureRegistry.marketplace()
    cols: dict[str, pa.Array] = {"user_id": pa.array(np.arange(50_000, 50_000 + n, dtype=np.int64))}
    for j, name in enumerate(reg.group("user_profile").qualified()[:width]):
        col = values[:, j]
        cols[name] = pa.array(col.astype(np.int32) if as_int else col)
    ms = np.full(n, int(time.time() * 1000), dtype=np.int64)
    cols["event_time"] = pa.array(ms).cast(pa.timestamp("ms", "UTC"))
    return pa.table(cols)


def test_nan_policy_reject_or_default(client: object, tmp_path: Path) -> None:
    reg = FeatureRegistry.marketplace()
    writer = FeatureWriter(client, reg)
    values = np.ones((10, 24), dtype=np.float32)
    values[3, 2] = np.nan
    values[7, 2] = np.inf
    pq.write_table(_table(10, 24, values), tmp_path / "nan.parquet")
    with pytest.raises(CodecError, match="NaN or inf"):
        load_parquet(writer, "user_profile", tmp_path / "nan.parquet", id_column="user_id")
    stored = client.get_map("fg.user_profile.v1").blocking()  # type: ignore[attr-defined]
    assert stored.get(50_003) is None and stored.get(50_000) is None, "nothing of the rejected batch is written"
    report = load_parquet(writer, "user_profile", tmp_path / "nan.parquet", nan="default")
    name = reg.group("user_profile").qualified()[2]
    assert report.rows == 10 and report.replaced == {name: 2}
    out = np.empty((1, 24), dtype=np.float32)
    Hydrator(client, reg, list(reg.group("user_profile").qualified())).hydrate(
        entities={"user": 50_003}, ads=[0], out=out, timeout_s=5.0
    )
    assert out[0, 2] == reg.group("user_profile").defaults[2] and out[0, 3] == 1.0


def test_bad_tables_and_bad_writes_are_clear_errors(client: object, tmp_path: Path) -> None:
    reg = FeatureRegistry.marketplace()
    writer = FeatureWriter(client, reg)
    pq.write_table(_table(4, 20, np.ones((4, 24), np.float32)), tmp_path / "narrow.parquet")
    with pytest.raises(CodecError, match="lacks"):
        load_parquet(writer, "user_profile", tmp_path / "narrow.parquet")
    pq.write_table(_table(4, 24, np.ones((4, 24), np.float32), as_int=True), tmp_path / "ints.parquet")
    with pytest.raises(CodecError, match="not floating point"):
        load_parquet(writer, "user_profile", tmp_path / "ints.parquet")
    with pytest.raises(UnknownFeatureGroupError):
        load_parquet(writer, "no_such_group", tmp_path / "ints.parquet")
    with pytest.raises(CodecError, match="floating point"):
        writer.put_many("user_profile", [1], np.ones((1, 24), dtype=np.int32), 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="values must be"):
        writer.put_many("user_profile", [1, 2], np.ones((1, 24), dtype=np.float32), 0)


def test_huge_requests_are_bounded(client: object) -> None:
    reg = FeatureRegistry.marketplace()
    hyd = Hydrator(client, reg, FEATURE_NAMES, max_rows=1000)
    out = np.empty((1001, 64), dtype=np.float32)
    with pytest.raises(ValueError, match="at most 1000"):
        hyd.hydrate(entities={"user": 1, "context": 1}, ads=np.arange(1001), out=out)
