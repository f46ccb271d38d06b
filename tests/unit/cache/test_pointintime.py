"""The as-of join and the training-set builder, checked against a plain per-row scan."""

from __future__ import annotations

import numpy as np
import pytest

from cache.codec import CodecError
from cache.pointintime import FeatureHistory, as_of_index, build_training_set
from cache.registry import Feature, FeatureGroup, FeatureRegistry


def _scan(h_ids, h_ms, q_ids, q_ms):  # type: ignore[no-untyped-def]
    out = []
    for qi, qt in zip(q_ids.tolist(), q_ms.tolist(), strict=True):
        best, best_t = -1, None
        for i, (hi, ht) in enumerate(zip(h_ids.tolist(), h_ms.tolist(), strict=True)):
            if hi == qi and ht <= qt and (best_t is None or ht >= best_t):
                best, best_t = i, ht
        out.append(best)
    return np.array(out)


def test_as_of_index_matches_a_scan() -> None:
    rng = np.random.default_rng(3)
    h_ids = rng.integers(0, 20, 300)
    h_ms = rng.choice(10_000, 300, replace=False)  # distinct times: the scan's tie rule does not matter
    q_ids = rng.integers(0, 25, 500)  # ids 20..24 have no history
    q_ms = rng.integers(-100, 10_100, 500)
    got = as_of_index(h_ids, h_ms, q_ids, q_ms)
    np.testing.assert_array_equal(got, _scan(h_ids, h_ms, q_ids, q_ms))
    assert (got == -1).any() and (got >= 0).any()


def test_as_of_includes_the_exact_time_and_never_reads_the_future() -> None:
    got = as_of_index(np.array([1, 1]), np.array([100, 200]), np.array([1, 1, 1, 1]), np.array([99, 100, 199, 200]))
    np.testing.assert_array_equal(got, [-1, 0, 0, 1])


def _registry() -> FeatureRegistry:
    return FeatureRegistry(
        [
            FeatureGroup("u", "user", (Feature("a", -1.0), Feature("b", -2.0))),
            FeatureGroup("ad", "ad", (Feature("c", 5.0),)),
        ]
    )


def test_history_keeps_the_first_of_equal_event_times_like_the_stream_path() -> None:
    g = _registry().group("u")
    hist = FeatureHistory.from_arrays(g, [7, 7, 7], [10, 10, 20], [[1, 1], [2, 2], [3, 3]])
    values, present = hist.as_of([7, 7, 8], [15, 25, 25])
    np.testing.assert_array_equal(values, [[1, 1], [3, 3], [-1, -2]])
    np.testing.assert_array_equal(present, [True, True, False])


def test_training_set_reads_each_row_as_of_its_time_in_model_order() -> None:
    reg = _registry()
    hist = {
        "u": FeatureHistory.from_arrays(reg.group("u"), [1, 1], [0, 100], [[1, 2], [10, 20]]),
        "ad": FeatureHistory.from_arrays(reg.group("ad"), [5], [50], [[7]]),
    }
    names = ["ad.c", "user.b", "user.a"]
    got = build_training_set(reg, names, {"user": [1, 1, 1], "ad": [5, 5, 6]}, [10, 60, 150], hist)
    np.testing.assert_array_equal(got.matrix, [[5, 2, 1], [7, 2, 1], [5, 20, 10]])
    assert got.groups == ("ad", "u")
    np.testing.assert_array_equal(got.present, [[False, True], [True, True], [False, True]])


def test_training_set_rejects_what_it_cannot_build() -> None:
    reg = _registry()
    with pytest.raises(ValueError, match="no history"):
        build_training_set(reg, ["user.a"], {"user": [1]}, [0], {})
    with pytest.raises(CodecError):
        build_training_set(reg, ["user.a"], {"user": [1]}, [0], {}, inline={"u": np.zeros((2, 2))})
    with pytest.raises(KeyError):
        build_training_set(reg, ["nope.x"], {}, [0], {})


def test_the_marketplace_training_set_equals_the_impressions_features(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Built from the Parquet tables, as of each impression's time: the matrix the marketplace's truth uses."""
    from cache.pointintime import training_set_from_impressions
    from models.synth import FEATURE_NAMES, WorldConfig, make_world
    from models.synth.features import impression_matrix
    from models.synth.impressions import ImpressionConfig, sample_impressions
    from models.synth.tables import write_tables

    world = make_world(WorldConfig(seed=2, n_users=200, n_advertisers=20, n_campaigns=50, n_ads=300, n_placements=8))
    imps = sample_impressions(world, ImpressionConfig(n=2000, days=2, holdout_days=1))
    paths = write_tables(world, imps, tmp_path)
    reg = FeatureRegistry.marketplace()
    hist = {
        g: FeatureHistory.from_parquet(reg.group(g), [paths[t]])
        for g, t in (("user_profile", "users"), ("ad_profile", "ads"))
    }
    table, feats = training_set_from_impressions(reg, FEATURE_NAMES, paths["impressions"], hist)
    assert table.num_rows == 2000 and feats.present.all()
    np.testing.assert_array_equal(feats.matrix, impression_matrix(world, imps.user_id, imps.ad_id, imps.contexts))
    assert table.column_names[:2] == ["impression_id", "click"] and table.column_names[-1] == FEATURE_NAMES[-1]
