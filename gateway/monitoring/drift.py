"""``FeatureDrift``: per-feature shift detection against the training reference, naming the top drifting features.

One :class:`~gateway.monitoring.shift.ShiftDetector` over all of a model's input columns (the reference stores the
feature names in the model's column order). Features are ranked by PSI over their own threshold, so a feature that
is naturally noisy does not crowd out one that moved. Not thread-safe: the monitor's worker owns it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.monitoring.reference import Reference
from gateway.monitoring.shift import Evaluation, ShiftDetector

__all__ = ["DriftingFeature", "FeatureDrift"]


@dataclass(frozen=True)
class DriftingFeature:
    name: str
    psi: float
    js: float
    ratio: float
    """PSI over the feature's threshold (> 1: drifting)."""


class FeatureDrift:
    def __init__(self, reference: Reference, *, windows: int = 4, confirm: int = 1) -> None:
        self.detector = ShiftDetector(reference, windows=windows, confirm=confirm)

    @property
    def names(self) -> tuple[str, ...]:
        return self.detector.reference.names

    @property
    def alarm(self) -> bool:
        return self.detector.alarm

    def add(self, rows: npt.NDArray[Any], now: float = 0.0) -> list[Evaluation]:
        """Bin sampled input rows (``[n, F]``, the model's column order)."""
        return self.detector.add(rows, now)

    def top(self, k: int = 5, *, drifting_only: bool = True) -> list[DriftingFeature]:
        """The ``k`` features furthest past their thresholds in the latest evaluation (only those past it by
        default), most drifting first."""
        last = self.detector.latest()
        if last is None:
            return []
        order = np.argsort(-last.ratio, kind="stable").tolist()
        picked = [i for i in order if not drifting_only or i in last.exceeding][:k]
        return [
            DriftingFeature(self.names[i], float(last.psi[i]), float(last.js[i]), float(last.ratio[i])) for i in picked
        ]
