"""Calibration of matured impressions: calibration ratio, ECE over equal-count bins, normalised entropy.

:func:`calibration_metrics` is the definition, a pure function of scores and labels:

* **calibration ratio** = mean predicted / mean observed (1.0: calibrated; 1.2: over-predicts by 20 %);
* **ECE** over ``bins`` equal-count bins of the sorted scores: ``sum_b n_b / N * |mean p_b - mean y_b|``
  (equal-count, not equal-width: pCTRs crowd near zero, where equal-width bins put almost everything in one);
* **normalised entropy** = log loss / entropy of the observed base rate (< 1: better than predicting the rate).

:class:`CalibrationMonitor` keeps, per model and segment (``""`` is the whole model), every matured score and label
up to ``keep`` of them (the oldest are dropped past that, and the figures then cover the most recent ``keep``),
and flags a model whose ratio is off by more than ``ratio_tolerance`` (beyond the noise of its label count) once
it has ``min_positives`` positives.
It also watches the ratio over a sliding window of matured impressions against the ratio recorded at validation
(:meth:`CalibrationMonitor.watch`), which is how a shift of the true CTR, invisible in scores and features, shows.
Not thread-safe: the monitor's worker owns it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from math import sqrt
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.monitoring.join import Matured

__all__ = ["CalibrationMonitor", "CalibrationReport", "RatioDrift", "calibration_metrics"]

_CLIP = 1e-7


@dataclass(frozen=True)
class CalibrationReport:
    n: int
    positives: int
    mean_predicted: float
    mean_observed: float
    ratio: float
    ece: float
    normalized_entropy: float
    bin_predicted: tuple[float, ...]
    """Mean score per equal-count bin (the reliability diagram's x)."""
    bin_observed: tuple[float, ...]
    """Observed rate per bin (its y)."""
    flagged: bool = False


def calibration_metrics(
    scores: npt.NDArray[Any],
    labels: npt.NDArray[Any],
    bins: int = 10,
    ratio_tolerance: float = 0.1,
    z_flag: float = 3.0,
) -> CalibrationReport:
    """The calibration figures of ``scores`` against 0/1 ``labels`` (see the module docstring).

    ``flagged``: the ratio is outside ``1 +- ratio_tolerance`` by more than ``z_flag`` standard errors.
    """
    p = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    n = int(p.shape[0])
    positives = int(y.sum())
    if n == 0:
        nan = float("nan")
        return CalibrationReport(0, 0, nan, nan, nan, nan, nan, (), ())
    mp, my = float(p.mean()), float(y.mean())
    ratio = mp / my if my > 0 else float("inf")
    order = np.argsort(p, kind="stable")
    groups = np.array_split(order, min(bins, n))
    bp = np.array([p[g].mean() for g in groups])
    by = np.array([y[g].mean() for g in groups])
    sizes = np.array([g.shape[0] for g in groups], dtype=np.float64)
    ece = float(np.sum(sizes / n * np.abs(bp - by)))
    pc = np.clip(p, _CLIP, 1.0 - _CLIP)
    log_loss = float(-np.mean(y * np.log(pc) + (1.0 - y) * np.log(1.0 - pc)))
    base = min(max(my, _CLIP), 1.0 - _CLIP)
    entropy = -(base * np.log(base) + (1.0 - base) * np.log(1.0 - base))
    return CalibrationReport(
        n,
        positives,
        mp,
        my,
        ratio,
        ece,
        float(log_loss / entropy),
        tuple(float(v) for v in bp),
        tuple(float(v) for v in by),
        flagged=_outside(ratio, positives, ratio_tolerance, z_flag),
    )


def _outside(ratio: float, positives: int, tolerance: float, z: float) -> bool:
    """True when the ratio is outside ``[1 - tol, 1 + tol]`` by more than its own noise: the observed count's
    relative standard error is about ``1 / sqrt(positives)``, so a ratio off by 12 % on 100 positives is not
    evidence of anything."""
    if positives == 0 or not np.isfinite(ratio):
        return False
    excess = max(ratio / (1.0 + tolerance), (1.0 - tolerance) / ratio)
    return bool(excess > 1.0 + z / sqrt(positives))


@dataclass
class RatioDrift:
    """Sliding-window test of the calibration ratio against the ratio recorded at validation.

    Matured impressions fill windows of ``window`` rows; over the last ``windows`` of them, the observed positives
    are compared with the positives the reference ratio predicts, ``E = sum(p) / reference_ratio``. The spread
    allowed is the Poisson spread of the window plus the uncertainty of the reference ratio itself
    (``reference_positives`` positives measured it): ``var = E + E^2 / reference_positives``. The window alarms
    when ``|observed - E| > z * sqrt(var)``.
    """

    reference_ratio: float
    reference_positives: int
    window: int = 2_000
    windows: int = 4
    z: float = 5.0

    def __post_init__(self) -> None:
        self._ring: deque[tuple[float, int]] = deque(maxlen=self.windows)
        self._p = 0.0
        self._y = 0
        self._n = 0
        self.alarm = False
        self.alarms = 0
        self.rows = 0
        self.first_alarm_rows: int | None = None
        self.history: deque[tuple[int, float, float]] = deque(maxlen=4096)
        """(rows, observed ratio, z) per evaluation."""

    def add(self, scores: npt.NDArray[np.float64], labels: npt.NDArray[np.int64]) -> None:
        start = 0
        while start < scores.shape[0]:
            take = min(scores.shape[0] - start, self.window - self._n)
            self._p += float(scores[start : start + take].sum())
            self._y += int(labels[start : start + take].sum())
            self._n += take
            self.rows += take
            start += take
            if self._n == self.window:
                self._ring.append((self._p, self._y))
                self._p, self._y, self._n = 0.0, 0, 0
                if len(self._ring) == self.windows:
                    self._evaluate()

    def _evaluate(self) -> None:
        sum_p = sum(p for p, _ in self._ring)
        observed = sum(y for _, y in self._ring)
        expected = sum_p / self.reference_ratio
        z = (observed - expected) / sqrt(expected + expected * expected / max(self.reference_positives, 1))
        alarm = abs(z) > self.z
        if alarm and not self.alarm:
            self.alarms += 1
            if self.first_alarm_rows is None:
                self.first_alarm_rows = self.rows
        self.alarm = alarm
        self.history.append((self.rows, sum_p / observed if observed else float("inf"), z))


class CalibrationMonitor:
    def __init__(
        self, *, keep: int = 2_000_000, bins: int = 10, ratio_tolerance: float = 0.1, min_positives: int = 100
    ) -> None:
        self.keep = keep
        self.bins = bins
        self.ratio_tolerance = ratio_tolerance
        self.min_positives = min_positives
        self._scores: dict[tuple[str, str], deque[float]] = {}
        self._labels: dict[tuple[str, str], deque[int]] = {}
        self._drift: dict[str, RatioDrift] = {}

    def watch(self, model: str, drift: RatioDrift) -> None:
        """Watch ``model``'s ratio over a sliding window against its validation ratio."""
        self._drift[model] = drift

    def drift(self, model: str) -> RatioDrift | None:
        return self._drift.get(model)

    def add(self, matured: Iterable[Matured]) -> None:
        by_model: dict[str, tuple[list[float], list[int]]] = {}
        for m in matured:
            keys = [(m.model, "")] + ([(m.model, m.segment)] if m.segment else [])
            for key in keys:
                if key not in self._scores:
                    self._scores[key] = deque(maxlen=self.keep)
                    self._labels[key] = deque(maxlen=self.keep)
                self._scores[key].append(m.score)
                self._labels[key].append(m.label)
            ps, ys = by_model.setdefault(m.model, ([], []))
            ps.append(m.score)
            ys.append(m.label)
        for model, (ps, ys) in by_model.items():
            d = self._drift.get(model)
            if d is not None:
                d.add(np.array(ps, dtype=np.float64), np.array(ys, dtype=np.int64))

    def groups(self) -> list[tuple[str, str]]:
        return sorted(self._scores)

    def report(self, model: str, segment: str = "") -> CalibrationReport:
        key = (model, segment)
        p = np.fromiter(self._scores.get(key, ()), dtype=np.float64)
        y = np.fromiter(self._labels.get(key, ()), dtype=np.int64)
        r = calibration_metrics(p, y, self.bins, self.ratio_tolerance)
        if r.positives < self.min_positives and r.flagged:
            r = CalibrationReport(**{**r.__dict__, "flagged": False})
        return r
