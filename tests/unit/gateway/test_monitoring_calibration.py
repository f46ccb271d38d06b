"""Label join (maturity, bad input) and calibration figures (ratio, equal-count ECE, normalised entropy)."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.monitoring import CalibrationMonitor, LabelJoin, RatioDrift, calibration_metrics


def test_calibration_metrics_by_hand() -> None:
    p = np.array([0.1, 0.2, 0.3, 0.4])
    y = np.array([0, 0, 1, 1])
    r = calibration_metrics(p, y, bins=2)
    assert r.ratio == pytest.approx(0.25 / 0.5)
    # Equal-count bins: {0.1, 0.2} vs 0 positives, {0.3, 0.4} vs 2.
    assert r.ece == pytest.approx(0.5 * 0.15 + 0.5 * abs(0.35 - 1.0))
    log_loss = -np.mean([np.log(0.9), np.log(0.8), np.log(0.3), np.log(0.4)])
    assert r.normalized_entropy == pytest.approx(log_loss / np.log(2))
    assert r.bin_predicted == pytest.approx((0.15, 0.35)) and r.bin_observed == (0.0, 1.0)


def test_calibrated_scores_are_not_flagged_and_inflated_ones_are() -> None:
    rng = np.random.default_rng(0)
    p = rng.beta(1, 30, size=200_000)
    y = (rng.random(p.shape[0]) < p).astype(np.int8)
    good = calibration_metrics(p, y)
    bad = calibration_metrics(np.minimum(p * 1.5, 1.0), y)
    assert abs(good.ratio - 1) < 0.03 and good.ece < 0.002 and not good.flagged
    assert bad.ratio == pytest.approx(1.5, rel=0.03) and bad.flagged


def test_join_matures_impressions_and_counts_bad_input() -> None:
    join = LabelJoin(maturity_s=10.0)
    join.impressions("m", [1, 2, 3], [0.1, float("nan"), 0.3], at=0.0, segments=["a", "a", "b"])
    join.impressions("m", [1], [0.5], at=1.0)  # the same request twice for one model
    join.impressions("other", [1], [0.2], at=1.0)  # another model's score of the same impression
    join.label(1, at=2.0)
    join.label(1, at=3.0)  # duplicate
    join.label(99, at=3.0)  # unknown request id
    join.label(3, at=10.5)  # after its maturity window
    assert join.advance(9.0) == []
    matured = join.advance(20.0)
    assert sorted((m.model, m.segment, m.score, m.label) for m in matured) == [
        ("m", "a", 0.1, 1), ("m", "b", 0.3, 0), ("other", "", 0.2, 1),
    ]  # fmt: skip
    join.label(1, at=21.0)  # long matured: late, not unknown
    c = join.counters
    assert (c.impressions, c.nonfinite_score, c.duplicate_impression) == (3, 1, 1)
    assert (c.joined, c.duplicate_label, c.unknown_label, c.late_label) == (1, 1, 1, 2)
    assert (c.matured, c.matured_positive, join.pending) == (2, 1, 0)


def test_monitor_reports_per_model_and_segment() -> None:
    join = LabelJoin(maturity_s=1.0)
    cal = CalibrationMonitor(min_positives=1)
    rng = np.random.default_rng(4)
    p = rng.uniform(0.05, 0.3, size=4_000)
    y = rng.random(p.shape[0]) < p
    segments = np.where(np.arange(p.shape[0]) % 2 == 0, "ctv", "web")
    join.impressions("pctr", np.arange(p.shape[0]), p, at=0.0, segments=list(segments))
    for rid in np.flatnonzero(y):
        join.label(int(rid), at=0.5)
    cal.add(join.advance(2.0))
    assert cal.groups() == [("pctr", ""), ("pctr", "ctv"), ("pctr", "web")]
    whole = cal.report("pctr")
    assert whole.n == 4_000 and whole.ratio == pytest.approx(calibration_metrics(p, y).ratio, rel=1e-12)
    ctv = cal.report("pctr", "ctv")
    assert ctv.ece == pytest.approx(calibration_metrics(p[::2], y[::2]).ece, rel=1e-12)


def test_ratio_drift_alarms_on_a_ctr_shift_only() -> None:
    rng = np.random.default_rng(5)

    def run(ctr_factor: float) -> RatioDrift:
        d = RatioDrift(reference_ratio=1.0, reference_positives=20_000, window=2_000, windows=4)
        for _ in range(40):
            p = rng.uniform(0.02, 0.2, size=1_000)
            d.add(p, (rng.random(p.shape[0]) < p * ctr_factor).astype(np.int64))
        return d

    assert run(1.0).alarms == 0
    shifted = run(1.3)
    assert shifted.alarm and shifted.first_alarm_rows is not None and shifted.first_alarm_rows <= 10_000
