"""The served-feature log: sampling by key hash, a bounded queue, Parquet files read back as written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cache.registry import Feature, FeatureGroup, FeatureRegistry
from cache.servelog import ServedFeatureLog, read_served

NAMES = ["user.a", "ad.c", "user.b"]


def _registry() -> FeatureRegistry:
    return FeatureRegistry(
        [
            FeatureGroup("u", "user", (Feature("a"), Feature("b"))),
            FeatureGroup("ad", "ad", (Feature("c"),)),
        ]
    )


def test_sampling_is_a_deterministic_fraction_of_request_ids(tmp_path: Path) -> None:
    log = ServedFeatureLog(tmp_path, _registry(), NAMES, sample_rate=0.25, flush_interval_s=0)
    again = ServedFeatureLog(tmp_path, _registry(), NAMES, sample_rate=0.25, flush_interval_s=0)
    picked = np.array([log.sampled(i) for i in range(20_000)])
    assert 0.23 < picked.mean() < 0.27
    assert all(again.sampled(i) == bool(picked[i]) for i in range(0, 20_000, 97))
    assert not ServedFeatureLog(tmp_path, _registry(), NAMES, sample_rate=0.0, flush_interval_s=0).sampled(1)


def test_rows_round_trip_and_the_caller_may_reuse_its_buffer(tmp_path: Path) -> None:
    log = ServedFeatureLog(tmp_path, _registry(), NAMES, sample_rate=1.0, flush_interval_s=0)
    buf = np.arange(12, dtype=np.float32).reshape(4, 3)
    present = np.array([[True, True], [True, False], [True, True], [True, True]])
    assert log.offer(11, entities={"user": 3}, ads=[5, 6, 7, 8], event_ms=1000, features=buf, present=present)
    buf[:] = -1  # the next request overwrites the score buffer
    assert log.offer(12, entities={"user": 4}, ads=[9], event_ms=2000, features=buf[:1])
    log.flush()
    rows = read_served(tmp_path)
    assert len(rows) == 5 and rows.feature_names == tuple(NAMES) and rows.groups == ("u", "ad")
    np.testing.assert_array_equal(rows.features[:4], np.arange(12, dtype=np.float32).reshape(4, 3))
    np.testing.assert_array_equal(rows.features[4], [-1, -1, -1])
    np.testing.assert_array_equal(rows.keys["user"], [3, 3, 3, 3, 4])
    np.testing.assert_array_equal(rows.keys["ad"], [5, 6, 7, 8, 9])
    np.testing.assert_array_equal(rows.event_ms, [1000] * 4 + [2000])
    np.testing.assert_array_equal(rows.present_known, [True] * 4 + [False])
    np.testing.assert_array_equal(rows.present[1], [True, False])
    assert log.stats.rows_written == 5 and log.stats.files == 1


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    log = ServedFeatureLog(tmp_path, _registry(), NAMES, sample_rate=1.0, queue_requests=2, flush_interval_s=0)
    x = np.zeros((1, 3), dtype=np.float32)
    queued = [log.offer(i, entities={"user": 1}, ads=[1], event_ms=0, features=x) for i in range(5)]
    assert queued == [True, True, False, False, False]
    assert (log.stats.sampled, log.stats.dropped) == (5, 3)
    log.flush()
    assert len(read_served(tmp_path)) == 2


def test_the_background_writer_rotates_files_and_flushes_on_close(tmp_path: Path) -> None:
    x = np.ones((10, 3), dtype=np.float32)
    with ServedFeatureLog(tmp_path, _registry(), NAMES, sample_rate=1.0, rows_per_file=25) as log:
        for i in range(7):
            log.offer(i, entities={"user": i}, ads=np.arange(10), event_ms=i, features=x)
    assert log.stats.rows_written == 70 and log.stats.files >= 3
    assert len(read_served(tmp_path)) == 70
    assert not list(tmp_path.glob(".*.tmp"))


def test_bad_shapes_are_the_callers_error(tmp_path: Path) -> None:
    log = ServedFeatureLog(tmp_path, _registry(), NAMES, sample_rate=1.0, flush_interval_s=0)
    with pytest.raises(ValueError, match="features"):
        log.offer(1, entities={"user": 1}, ads=[1, 2], event_ms=0, features=np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="sample_rate"):
        ServedFeatureLog(tmp_path, _registry(), NAMES, sample_rate=2.0)
