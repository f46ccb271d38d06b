"""``ScoreComparison``: a candidate version against live on the same rows, for rollout reports.

Accumulates, request after request: both versions' score histograms over [0, 1] (for the Jensen-Shannon divergence
and the population stability index, :mod:`gateway.monitoring.divergence`), the mean Spearman rank correlation per
request, both means, and, once labels mature, the candidate's calibration ratio (predicted over observed positives).
The regression gate (:mod:`gateway.monitoring.regression`) decides; this only describes.

Thread-safe (one lock).
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.monitoring.divergence import jensen_shannon, psi, spearman

__all__ = ["ScoreComparison"]


class ScoreComparison:
    """Candidate against live on the same rows: distribution distance, rank correlation, mean ratio, calibration.

    Thread-safe (one lock); :meth:`add` is called by the comparison worker only.
    """

    def __init__(self, bins: int = 50) -> None:
        self._bins = bins
        self._lock = threading.Lock()
        self._live = np.zeros(bins, np.int64)
        self._cand = np.zeros(bins, np.int64)
        self._requests = 0
        self._rank_sum = 0.0
        self._sum_live = 0.0
        self._sum_cand = 0.0
        self._rows = 0
        self._label_scores = 0.0
        self._label_positives = 0
        self._label_rows = 0

    def _hist(self, scores: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        idx = np.clip((np.asarray(scores, np.float64) * self._bins).astype(np.int64), 0, self._bins - 1)
        return np.bincount(idx, minlength=self._bins)

    def add(self, live: npt.NDArray[Any], candidate: npt.NDArray[Any], rank_correlation: float | None = None) -> None:
        live, candidate = np.ravel(live), np.ravel(candidate)
        rho = spearman(live, candidate) if rank_correlation is None else rank_correlation
        hl, hc = self._hist(live), self._hist(candidate)
        with self._lock:
            self._live += hl
            self._cand += hc
            self._requests += 1
            self._rank_sum += rho
            self._sum_live += float(live.sum())
            self._sum_cand += float(candidate.sum())
            self._rows += live.shape[0]

    def add_many(
        self, live: list[npt.NDArray[Any]], candidate: list[npt.NDArray[Any]], rank_correlations: npt.NDArray[Any]
    ) -> None:
        """:meth:`add` for several requests at once (the comparison worker's batches)."""
        lv, cv = np.concatenate([np.ravel(a) for a in live]), np.concatenate([np.ravel(a) for a in candidate])
        hl, hc = self._hist(lv), self._hist(cv)
        with self._lock:
            self._live += hl
            self._cand += hc
            self._requests += len(live)
            self._rank_sum += float(np.sum(rank_correlations))
            self._sum_live += float(lv.sum())
            self._sum_cand += float(cv.sum())
            self._rows += lv.shape[0]

    def add_labels(self, candidate: npt.NDArray[Any], labels: npt.NDArray[Any]) -> None:
        with self._lock:
            self._label_scores += float(np.sum(candidate))
            self._label_positives += int(np.sum(labels))
            self._label_rows += int(np.size(labels))

    def summary(self) -> dict[str, Any]:
        with self._lock:
            n, rows = self._requests, self._rows
            return {
                "requests": n,
                "rows": rows,
                "jensen_shannon": float(jensen_shannon(self._cand, self._live)) if n else 0.0,
                "psi": float(psi(self._cand, self._live)) if n else 0.0,
                "rank_correlation": self._rank_sum / n if n else 1.0,
                "mean_live": self._sum_live / rows if rows else 0.0,
                "mean_candidate": self._sum_cand / rows if rows else 0.0,
                "mean_ratio": self._sum_cand / self._sum_live if self._sum_live > 0 else 0.0,
                # predicted over observed positives on labelled candidate rows (1.0 is calibrated)
                "calibration_ratio": (self._label_scores / self._label_positives if self._label_positives else None),
                "labelled_rows": self._label_rows,
            }
