"""The marketplace: determinism, feature matrices, ground truth and labels, Parquet tables."""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from models.synth import (
    AD_FEATURES,
    CONTEXT_FEATURES,
    FEATURE_NAMES,
    LABELS,
    USER_FEATURES,
    ImpressionConfig,
    Impressions,
    World,
    WorldConfig,
    candidate_matrix,
    feature_indices,
    impression_matrix,
    make_world,
    sample_impressions,
)
from models.synth.tables import write_tables

SMALL = {"n_users": 3_000, "n_advertisers": 300, "n_campaigns": 1_000, "n_ads": 5_000, "n_placements": 200}


@pytest.fixture(scope="module")
def world() -> World:
    return make_world(WorldConfig(seed=11))


@pytest.fixture(scope="module")
def impressions(world: World) -> Impressions:
    return sample_impressions(world, ImpressionConfig(n=200_000))


def _arrays(w: World) -> dict[str, np.ndarray]:
    return {f.name: getattr(w, f.name) for f in fields(w) if isinstance(getattr(w, f.name), np.ndarray)}


def test_same_seed_gives_identical_arrays_and_another_seed_differs() -> None:
    a, b = make_world(WorldConfig(seed=3, **SMALL)), make_world(WorldConfig(seed=3, **SMALL))
    c = make_world(WorldConfig(seed=4, **SMALL))
    for name, arr in _arrays(a).items():
        assert np.array_equal(arr, _arrays(b)[name]), name
    assert not np.array_equal(a.user_features, c.user_features)
    assert not np.array_equal(a.ad_features, c.ad_features)
    ia, ib = sample_impressions(a, ImpressionConfig(n=5_000)), sample_impressions(b, ImpressionConfig(n=5_000))
    ic = sample_impressions(c, ImpressionConfig(n=5_000))
    assert np.array_equal(ia.matrix(a), ib.matrix(b))
    assert np.array_equal(ia.click, ib.click) and np.array_equal(ia.event_time_ms, ib.event_time_ms)
    assert not np.array_equal(ia.ad_id, ic.ad_id)


def test_default_world_is_marketplace_sized(world: World) -> None:
    assert world.n_ads >= 100_000
    assert world.ad_features.shape == (world.n_ads, 24)
    assert world.user_features.shape == (world.n_users, 24)
    assert not world.ad_features.flags.writeable  # shared read-only
    assert set(np.unique(world.user_region)) == {0, 1, 2, 3}
    assert set(np.unique(world.ad_objective)) == {0, 1, 2, 3}
    assert np.all(world.ad_creative_len_s[world.ad_format == 0] == 0)
    assert np.all(world.ad_format[world.ad_objective == 3] == 1)  # ctv_completion runs video only


def test_feature_list_is_grouped_by_entity() -> None:
    assert (len(USER_FEATURES), len(AD_FEATURES), len(CONTEXT_FEATURES), len(FEATURE_NAMES)) == (24, 24, 16, 64)
    assert all(n.startswith("user.") for n in USER_FEATURES)
    assert all(n.startswith("ad.") for n in AD_FEATURES)
    assert all(n.startswith("context.") for n in CONTEXT_FEATURES)
    assert FEATURE_NAMES == USER_FEATURES + AD_FEATURES + CONTEXT_FEATURES
    assert feature_indices(["context.pod_len", "user.interest_0", "ad.log_bid"]).tolist() == [61, 0, 32]
    with pytest.raises(KeyError, match=r"user\.nope"):
        feature_indices(["user.nope"])


def _assert_well_formed(x: np.ndarray, rows: int) -> None:
    assert x.shape == (rows, 64)
    assert x.dtype == np.float32
    assert x.dtype.byteorder in ("=", "<" if sys.byteorder == "little" else ">")
    assert x.flags.c_contiguous
    assert np.isfinite(x).all()


def test_candidate_matrix_is_float32_c_contiguous_and_matches_impression_rows(
    world: World, impressions: Impressions
) -> None:
    i = 123
    user, ctx = int(impressions.user_id[i]), impressions.contexts.row(i)
    ads = np.array([impressions.ad_id[i], 7, 99_999], dtype=np.int32)
    x = candidate_matrix(world, user, ctx, ads)
    _assert_well_formed(x, 3)
    assert np.array_equal(x[0], impressions.matrix(world)[i])
    assert np.array_equal(x[1:, :24], np.broadcast_to(x[0, :24], (2, 24)))  # one user ...
    assert np.array_equal(x[1:, 48:], np.broadcast_to(x[0, 48:], (2, 16)))  # ... one context
    assert np.array_equal(x[:, 24:48], world.ad_features[ads])
    out = np.empty((3, 64), dtype=np.float32)
    assert candidate_matrix(world, user, ctx.features(), ads, out=out) is out
    assert np.array_equal(out, x)
    with pytest.raises(ValueError, match="C-contiguous float32"):
        candidate_matrix(world, user, ctx, ads, out=np.empty((3, 64), dtype=np.float64))


def test_impression_matrix(world: World, impressions: Impressions) -> None:
    n = 1_000
    users, ads = impressions.user_id[:n], impressions.ad_id[:n]
    x = impression_matrix(world, users, ads, impressions.contexts.take(np.arange(n)))
    _assert_well_formed(x, n)
    by_block = impression_matrix(world, users, ads, impressions.contexts.features()[:n])
    assert np.array_equal(x, by_block)
    ctx = x[:, 48:]
    assert np.all(ctx[:, 0:3].sum(axis=1) == 1)  # device one-hot
    assert np.all(ctx[:, 6:11].sum(axis=1) == 1)  # genre one-hot
    pods = ctx[:, 12] == 1
    assert np.array_equal(pods, ctx[:, 2] == 1)  # CTV requests are ad breaks
    assert np.all(world.ad_format[impressions.ad_id[:n][pods]] == 1)  # which only video ads fill


def test_ground_truth_is_in_range_and_labels_follow_it(impressions: Impressions) -> None:
    n = len(impressions)
    for label in LABELS:
        p, y = impressions.p_true(label), impressions.label(label)
        assert np.all((p > 0) & (p < 1)), label
        assert set(np.unique(y)) <= {0, 1}
        # mean label within 4 binomial standard errors of the mean true probability
        se = np.sqrt(np.sum(p * (1 - p))) / n
        assert abs(y.mean() - p.mean()) < 4 * se, label
        # and within bins of p as well (calibration of the labels against the truth)
        top = p > np.quantile(p, 0.9)
        assert abs(y[top].mean() - p[top].mean()) < 4 * np.sqrt(np.sum(p[top] * (1 - p[top]))) / top.sum()
    ctr = impressions.p_true("click").mean()
    assert 0.005 <= ctr <= 0.05
    assert np.all(impressions.conversion <= impressions.click)  # a conversion needs a click
    t = impressions.truth
    assert np.allclose(t.p_conversion, t.p_click * t.p_cvr)


def test_holdout_is_the_last_day(impressions: Impressions) -> None:
    h = impressions.holdout_mask()
    assert np.all(np.diff(impressions.event_time_ms) >= 0)
    assert 0.08 < h.mean() < 0.17  # 1 of 8 days
    assert impressions.event_time_ms[~h].max() < impressions.holdout_start_ms <= impressions.event_time_ms[h].min()
    assert impressions.window_ms[1] - impressions.holdout_start_ms == 86_400_000


def test_parquet_tables_are_readable(tmp_path: Path) -> None:
    w = make_world(WorldConfig(seed=5, **SMALL))
    imps = sample_impressions(w, ImpressionConfig(n=4_000))
    paths = write_tables(w, imps, tmp_path / "data")
    assert sorted(paths) == ["ads", "campaigns", "contexts", "impressions", "users"]
    users, ads = pq.read_table(paths["users"]), pq.read_table(paths["ads"])
    assert users.num_rows == w.n_users and ads.num_rows == w.n_ads
    assert set(USER_FEATURES) <= set(users.column_names)
    assert set(AD_FEATURES) <= set(ads.column_names)
    assert np.array_equal(ads.column("ad.log_bid").to_numpy(), w.ad_features[:, 8])
    assert set(ads.column("objective").to_pylist()) <= {"cpc", "cpa", "awareness", "ctv_completion"}
    assert str(ads.schema.field("event_time").type) == "timestamp[ms, tz=UTC]"
    im = pq.read_table(paths["impressions"])
    assert im.num_rows == 4_000
    assert str(im.schema.field("event_time").type) == "timestamp[ms, tz=UTC]"
    assert np.array_equal(im.column("p_click_true").to_numpy(), imps.p_true("click"))
    assert np.array_equal(im.column("click").to_numpy(), imps.click)
    assert set(CONTEXT_FEATURES) <= set(im.column_names)
    assert pq.read_table(paths["contexts"]).num_rows == w.n_placements
    assert pq.read_table(paths["campaigns"]).num_rows == w.campaign_advertiser.shape[0]
    assert not list(tmp_path.glob("data/.*"))  # no temp files left behind
