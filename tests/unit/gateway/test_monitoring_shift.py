"""Divergences, references (thresholds from reference variability), sliding-window shift and feature drift."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gateway.monitoring import FeatureDrift, Reference, ShiftDetector, jensen_shannon, psi
from gateway.monitoring.reference import chi2_threshold


def _clustered(rng: np.random.Generator, requests: int, rows: int, cols: int, shift: float = 0.0) -> list[np.ndarray]:
    """Request-shaped batches: a per-request offset shared by its rows (rows are not independent) plus noise."""
    return [
        (rng.normal(size=(1, cols)) + 0.5 * rng.normal(size=(rows, cols)) + shift).astype(np.float32)
        for _ in range(requests)
    ]


def test_divergences_of_identical_counts_are_zero_and_grow_with_difference() -> None:
    a = np.array([[10, 20, 30, 40]])
    assert psi(a, a)[0] == pytest.approx(0.0, abs=1e-12)
    assert jensen_shannon(a, a)[0] == pytest.approx(0.0, abs=1e-12)
    b = np.array([[40, 30, 20, 10]])
    c = np.array([[25, 25, 25, 25]])
    assert psi(a, b)[0] > psi(a, c)[0] > 0
    assert psi(a, b)[0] == pytest.approx(psi(b, a)[0])  # symmetric
    assert 0 < jensen_shannon(a, b)[0] <= np.log(2)
    # A bin seen on one side only stays finite (smoothing).
    assert np.isfinite(psi(np.array([[0, 100]]), np.array([[100, 0]]))[0])


def test_chi2_threshold_matches_the_chi_square_quantile_for_chi_square_samples() -> None:
    rng = np.random.default_rng(0)
    samples = rng.chisquare(9, size=(20_000, 1)) * 0.01
    thr = chi2_threshold(samples, alpha=1e-3, max_dof=19)[0]
    empirical = np.quantile(samples[:, 0], 1 - 1e-3)
    assert thr == pytest.approx(empirical, rel=0.1)


def test_reference_thresholds_hold_on_clean_traffic_and_flag_a_shift(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    ref = Reference.record(("a", "b"), _clustered(rng, 2_000, 20, 2), span_rows=4_000)
    assert ref.edges.shape == (2, 19) and ref.counts.sum() == 2 * 40_000
    assert (ref.psi_threshold > ref.psi_spread).all()
    clean = ShiftDetector(ref)
    for batch in _clustered(rng, 4_000, 20, 2):
        clean.add(batch)
    assert clean.alarms == 0 and len(clean.history) > 0
    shifted = ShiftDetector(ref)
    for batch in _clustered(rng, 400, 20, 2):
        shifted.add(batch)
    assert not shifted.alarm
    for batch in _clustered(rng, 600, 20, 2, shift=np.array([0.0, 0.8])):
        shifted.add(batch)
    assert shifted.alarm and shifted.alarms == 1
    assert shifted.latest() is not None and shifted.latest().exceeding == (1,)  # type: ignore[union-attr]
    ref.save(tmp_path / "ref.npz")
    back = Reference.load(tmp_path / "ref.npz")
    assert back.names == ref.names and np.array_equal(back.counts, ref.counts)
    np.testing.assert_array_equal(back.psi_threshold, ref.psi_threshold)


def test_reference_needs_enough_rows_for_its_spans() -> None:
    with pytest.raises(ValueError, match="at least 4 spans"):
        Reference.record(("score",), [np.zeros(100, np.float32)], span_rows=50)


def test_detector_windows_count_rows_and_non_finite_values() -> None:
    rng = np.random.default_rng(2)
    ref = Reference.record(("score",), [rng.random(10_000)], span_rows=1_000)
    d = ShiftDetector(ref, windows=4)
    batch = rng.random(600)
    batch[:3] = np.nan
    assert d.add(batch) == []  # 2.4 windows: nothing to compare yet
    evaluations = d.add(rng.random(1_000))
    assert [e.rows for e in evaluations] == [1_000, 1_250, 1_500]
    assert d.rows == 1_600 and d.nonfinite == 3


def test_feature_drift_names_the_drifting_feature_first() -> None:
    rng = np.random.default_rng(3)
    names = ("user.a", "ad.b", "context.c")
    ref = Reference.record(names, _clustered(rng, 1_000, 8, 3), span_rows=1_600)
    drift = FeatureDrift(ref)
    for batch in _clustered(rng, 400, 8, 3):
        batch[:, 1] = 0.0  # "ad.b" broken: reads its default
        drift.add(batch)
    top = drift.top(3)
    assert drift.alarm and top[0].name == "ad.b" and top[0].ratio > 1.0
    assert all(t.name != "ad.b" for t in top[1:])


@pytest.mark.parametrize("bins", [5, 20, 300])
def test_binning_matches_searchsorted_with_ties_and_non_finite_values(bins: int) -> None:
    from gateway.monitoring.reference import bin_counts

    rng = np.random.default_rng(bins)
    edges = np.sort(rng.integers(0, 50, size=(3, bins - 1)).astype(np.float32), axis=1)  # repeated edges too
    values = rng.integers(-5, 55, size=(4_000, 3)).astype(np.float32)  # many values equal to an edge
    values[7, 1] = np.nan
    values[9, 2] = np.inf
    out = np.zeros((3, bins), np.int64)
    assert bin_counts(edges, values, out) == 2
    want = np.zeros((3, bins), np.int64)
    for j in range(3):
        col = values[:, j][np.isfinite(values[:, j])]
        np.add.at(want[j], np.searchsorted(edges[j], col, side="right"), 1)
    np.testing.assert_array_equal(out, want)
