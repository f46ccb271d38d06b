"""Online/offline consistency end to end against a real member.

The marketplace's tables are loaded into the cluster, a stream of updates follows (and is logged
as the offline side's update table), requests are hydrated and their served rows logged; the
report recomputes every logged row as of its request time. Clean: 0 mismatches. A skew injected
online (one ad feature scaled at load) is found and named; so is a stale feed (updates that never
reached the cluster).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cache.client import connect
from cache.consistency import check
from cache.hydrate import Hydrator
from cache.ingest import load_parquet
from cache.member import start_cluster
from cache.pointintime import FeatureHistory
from cache.registry import FeatureRegistry
from cache.servelog import ServedFeatureLog
from cache.store import FeatureWriter
from gateway.cli import main as cli_main
from models.synth import FEATURE_NAMES, USER_FEATURES, WorldConfig, make_world, sample_contexts
from models.synth.tables import ads_table, users_table

pytest.importorskip("hazelcast")
N_USERS, N_ADS = 120, 400


@pytest.fixture(scope="module")
def world():  # type: ignore[no-untyped-def]
    return make_world(
        WorldConfig(seed=8, n_users=N_USERS, n_advertisers=20, n_campaigns=60, n_ads=N_ADS, n_placements=10)
    )


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    (member,) = start_cluster(1)
    c = connect(member.options.cluster_name, [member.address])
    try:
        yield c
    finally:
        c.shutdown()
        member.stop()


def _updates(world, tables: Path) -> Path:  # type: ignore[no-untyped-def]
    """A streaming feed: new user vectors for every third user, 10 minutes after the snapshot."""
    rng = np.random.default_rng(2)
    ids = np.arange(0, N_USERS, 3)
    t0 = world.config.start_epoch_s * 1000
    cols: dict[str, object] = {
        "user_id": pa.array(ids.astype(np.int64)),
        "event_time": pa.array(np.full(ids.shape, t0 + 600_000, np.int64)).cast(pa.timestamp("ms", "UTC")),
    }
    cols.update({n: pa.array(rng.normal(size=ids.shape[0]).astype(np.float32)) for n in USER_FEATURES})
    path = tables / "user_updates.parquet"
    pq.write_table(pa.table(cols), path)
    return path


def _load(client, world, tables: Path, updates: Path | None, ad_scale: tuple[str, float] | None) -> None:  # type: ignore[no-untyped-def]
    reg = FeatureRegistry.marketplace()
    writer = FeatureWriter(client, reg)
    load_parquet(writer, "user_profile", tables / "users.parquet")
    ads = tables / "ads.parquet"
    if ad_scale is not None:  # the skew: the online copy of one ad feature scaled
        t = pq.read_table(ads)
        col, factor = ad_scale
        t = t.set_column(t.column_names.index(col), col, pa.array(t.column(col).to_numpy() * factor))
        ads = tables / "ads_skewed.parquet"
        pq.write_table(t, ads)
    load_parquet(writer, "ad_profile", ads)
    if updates is not None:  # the stream path, event by event, event-time ordered
        up = pq.read_table(updates)
        ms = up.column("event_time").cast(pa.int64()).to_numpy()
        vals = np.column_stack([up.column(n).to_numpy() for n in USER_FEATURES])
        for i, uid in enumerate(up.column("user_id").to_numpy().tolist()):
            assert writer.update("user_profile", uid, vals[i], int(ms[i]))


def _serve(client, world, log_dir: Path, requests: int = 60) -> ServedFeatureLog:  # type: ignore[no-untyped-def]
    reg = FeatureRegistry.marketplace()
    t0 = world.config.start_epoch_s
    now = [float(t0)]
    hyd = Hydrator(client, reg, FEATURE_NAMES, clock=lambda: now[0])
    rng = np.random.default_rng(5)
    log = ServedFeatureLog(log_dir, reg, FEATURE_NAMES, sample_rate=0.5, flush_interval_s=0)
    out = np.empty((50, len(FEATURE_NAMES)), np.float32)
    present = np.empty((50, len(hyd.groups)), np.bool_)
    for r in range(requests):
        now[0] = t0 + 1200.0 + r  # after the updates
        user = int(rng.integers(0, N_USERS))
        ads = rng.choice(N_ADS + 10, 50, replace=False)  # a few ids the cluster has never seen
        ctx = sample_contexts(world, np.array([1]), np.array([now[0]]), rng).row(0)
        report = hyd.hydrate(
            entities={"user": user},
            ads=ads,
            out=out,
            inline={"context_profile": ctx.features()},
            timeout_s=5.0,
            present_out=present,
        )
        assert not report.timed_out and not report.failed
        log.offer(r, entities={"user": user}, ads=ads, event_ms=int(now[0] * 1000), features=out, present=present)
    log.flush()
    return log


@pytest.fixture(scope="module")
def tables(world, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    d = tmp_path_factory.mktemp("tables")
    pq.write_table(users_table(world), d / "users.parquet")
    pq.write_table(ads_table(world), d / "ads.parquet")
    _updates(world, d)
    return d


def _histories(tables: Path) -> dict[str, FeatureHistory]:
    reg = FeatureRegistry.marketplace()
    return {
        "user_profile": FeatureHistory.from_parquet(
            reg.group("user_profile"), [tables / "users.parquet", tables / "user_updates.parquet"]
        ),
        "ad_profile": FeatureHistory.from_parquet(reg.group("ad_profile"), [tables / "ads.parquet"]),
    }


def test_clean_run_has_no_mismatch_and_the_cli_agrees(client, world, tables: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    _load(client, world, tables, tables / "user_updates.parquet", None)
    log = _serve(client, world, tmp_path / "log")
    assert 0.3 < log.stats.sampled / log.stats.offered < 0.7 and log.stats.dropped == 0
    report = check(tmp_path / "log", FeatureRegistry.marketplace(), _histories(tables))
    assert report.rows == log.stats.rows_written > 0
    assert report.mismatches == 0 and report.skewed == ()
    unknown_ads = {f.feature: f for f in report.features}["ad.log_bid"]
    assert unknown_ads.missing == 0 and unknown_ads.extra == 0  # ids unseen on both sides: defaults, agreed
    assert all(n.startswith("context.") for n in report.not_recomputed)
    code = cli_main(
        ["features", "consistency", str(tmp_path / "log"), "--tables", str(tables),
         "--source", f"user_profile={tables / 'user_updates.parquet'}", "--fail-on-skew"]
    )  # fmt: skip
    assert code == 0 and "no skewed feature" in capsys.readouterr().out


def test_injected_skews_are_named(client, world, tables: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    hist = _histories(tables)
    reg = FeatureRegistry.marketplace()
    scaled = "ad.log_bid"
    _load(client, world, tables, tables / "user_updates.parquet", (scaled, 1.25))
    _serve(client, world, tmp_path / "scaled")
    report = check(tmp_path / "scaled", reg, hist)
    assert report.skewed[:1] == (scaled,) and set(report.skewed) == {scaled}
    # a stale feed: the cluster reloaded from the snapshot, the updates never arrived
    for m in ("fg.user_profile.v1", "fg.ad_profile.v1"):
        client.get_map(m).blocking().clear()  # type: ignore[attr-defined]
    _load(client, world, tables, None, None)
    _serve(client, world, tmp_path / "stale")
    stale = check(tmp_path / "stale", reg, hist)
    assert stale.skewed and {n.split(".")[0] for n in stale.skewed} == {"user"}
