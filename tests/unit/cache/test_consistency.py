"""The consistency report: a clean log shows no mismatch; a skew, a missing value or a leaked one is named."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cache.consistency import check, main
from cache.pointintime import FeatureHistory
from cache.registry import Feature, FeatureGroup, FeatureRegistry
from cache.servelog import ServedFeatureLog

NAMES = ["user.a", "user.b", "ad.c", "ad.d"]


def _registry() -> FeatureRegistry:
    return FeatureRegistry(
        [
            FeatureGroup("u", "user", (Feature("a"), Feature("b"))),
            FeatureGroup("ad", "ad", (Feature("c"), Feature("d", 9.0))),
        ]
    )


def _world(rng: np.random.Generator) -> dict[str, FeatureHistory]:
    reg = _registry()
    # users: a snapshot at t=0 and an update at t=1000 for half of them
    u_ids = np.concatenate([np.arange(50), np.arange(0, 50, 2)])
    u_ms = np.concatenate([np.zeros(50, np.int64), np.full(25, 1000)])
    ads_ms = np.where(np.arange(100) < 90, 0, 5000)  # ads 90..99 appear only at t=5000
    return {
        "u": FeatureHistory.from_arrays(reg.group("u"), u_ids, u_ms, rng.normal(size=(75, 2))),
        "ad": FeatureHistory.from_arrays(reg.group("ad"), np.arange(100), ads_ms, rng.normal(size=(100, 2))),
    }


def _serve(tmp_path: Path, hist: dict[str, FeatureHistory], *, skew=None) -> Path:  # type: ignore[no-untyped-def]
    """Log what a correct online path serves (the as-of values), optionally skewed by ``skew(matrix, ads)``."""
    reg = _registry()
    log = ServedFeatureLog(tmp_path, reg, NAMES, sample_rate=1.0, flush_interval_s=0)
    rng = np.random.default_rng(1)
    for r in range(40):
        at = int(rng.integers(0, 3000))
        user = int(rng.integers(0, 50))
        ads = rng.choice(100, 20, replace=False)
        u, up = hist["u"].as_of([user], at)
        a, ap = hist["ad"].as_of(ads, at)
        x = np.empty((20, 4), np.float32)
        x[:, :2] = u[0]
        x[:, 2:] = a
        present = np.column_stack([np.repeat(up, 20), ap])
        if skew is not None:
            skew(x, ads, present)
        log.offer(r, entities={"user": user}, ads=ads, event_ms=at, features=x, present=present)
    log.flush()
    return tmp_path


def test_a_clean_log_has_no_mismatch(tmp_path: Path) -> None:
    hist = _world(np.random.default_rng(0))
    report = check(_serve(tmp_path, hist), _registry(), hist)
    assert report.rows == 800 and report.requests == 40
    assert report.mismatches == 0 and report.skewed == ()
    assert all(f.missing == 0 and f.extra == 0 for f in report.features)
    assert "no skewed feature" in report.render_text()


def test_a_scaled_feature_is_named_with_its_delta(tmp_path: Path) -> None:
    hist = _world(np.random.default_rng(0))

    def scale(x, ads, present):  # type: ignore[no-untyped-def]
        x[:, 3] *= 1.5

    report = check(_serve(tmp_path, hist, skew=scale), _registry(), hist)
    assert report.skewed == ("ad.d",)
    d = {f.feature: f for f in report.features}["ad.d"]
    assert d.mismatch_rate == 1.0 and d.max_abs_delta > 0
    assert "ad.d" in report.render_text()


def test_a_stale_feed_shows_as_mismatches_of_the_updated_group(tmp_path: Path) -> None:
    hist = _world(np.random.default_rng(0))
    reg = _registry()
    snapshot_only = FeatureHistory.from_arrays(
        reg.group("u"), hist["u"].ids[hist["u"].event_ms == 0], 0, hist["u"].values[hist["u"].event_ms == 0]
    )
    served = _serve(tmp_path, {"u": snapshot_only, "ad": hist["ad"]})  # online missed the t=1000 updates
    report = check(served, reg, hist)
    assert set(report.skewed) == {"user.a", "user.b"}


def test_missing_and_extra_values_are_counted_apart_from_mismatches(tmp_path: Path) -> None:
    hist = _world(np.random.default_rng(0))

    def lose_and_leak(x, ads, present):  # type: ignore[no-untyped-def]
        lost = ads == 3
        x[lost, 2:] = (0.0, 9.0)
        present[lost, 1] = False
        leaked = ads >= 90  # online already has ads that offline says appear at t=5000
        present[leaked, 1] = True

    report = check(_serve(tmp_path, hist, skew=lose_and_leak), _registry(), hist)
    d = {f.feature: f for f in report.features}
    assert d["ad.c"].missing > 0 and d["ad.c"].extra > 0 and d["ad.c"].mismatches == 0
    assert set(report.skewed) == {"ad.c", "ad.d"}


def test_the_command_line_prints_json(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    import pyarrow as pa
    import pyarrow.parquet as pq

    hist = _world(np.random.default_rng(0))
    log_dir = _serve(tmp_path / "log", hist)
    sources = []
    for g, h in hist.items():
        cols = {f"{h.group.entity}_id": h.ids, "event_time": pa.array(h.event_ms).cast(pa.timestamp("ms", "UTC"))}
        cols.update({q: h.values[:, j] for j, q in enumerate(h.group.qualified())})
        pq.write_table(pa.table(cols), tmp_path / f"{g}.parquet")
        sources += ["--source", f"{g}={tmp_path / f'{g}.parquet'}"]
    # the marketplace registry has no groups 'u'/'ad': the command rejects them cleanly
    assert main([str(log_dir), *sources, "--json"]) == 2
    assert "unknown feature group" in capsys.readouterr().err
    assert json.loads(json.dumps(check(log_dir, _registry(), hist).to_dict()))["mismatches"] == 0
