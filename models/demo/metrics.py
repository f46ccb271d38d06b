"""Holdout metrics in plain numpy (float64): ROC AUC, log loss, calibration ratio, recall@k.

Conventions (so that anyone can recompute a manifest's numbers):

* :func:`auc` is the Mann-Whitney statistic with tied scores counted as half (as ``sklearn.metrics.roc_auc_score``).
* :func:`log_loss` is the mean negative log-likelihood with probabilities clipped to ``[1e-15, 1 - 1e-15]``.
* :func:`calibration_ratio` is ``mean(p) / mean(y)``: 1.0 is calibrated, above 1.0 over-predicts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from models.manifest import HoldoutMetrics

Scores = npt.NDArray[Any]  # any real dtype; computed in float64
Labels = npt.NDArray[Any]  # 0/1 in any integer, bool or float dtype

EPS = 1e-15


def _check(y: Labels, p: Scores) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    yy = np.asarray(y, dtype=np.float64).ravel()
    pp = np.asarray(p, dtype=np.float64).ravel()
    if yy.shape != pp.shape or yy.shape[0] == 0:
        raise ValueError(f"labels and scores must be non-empty and of equal length, got {yy.shape} and {pp.shape}")
    return yy, pp


def auc(y: Labels, p: Scores) -> float:
    """Area under the ROC curve (``ValueError`` when only one class is present)."""
    yy, pp = _check(y, p)
    n_pos = float(yy.sum())
    n_neg = float(yy.shape[0]) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs both classes")
    _, inverse, counts = np.unique(pp, return_inverse=True, return_counts=True)
    # Average 1-based rank of each distinct score: ties share the mean of the ranks they span.
    ends = np.cumsum(counts).astype(np.float64)
    mean_rank = ends - (counts - 1) / 2.0
    rank_sum = float(mean_rank[inverse][yy == 1].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


def log_loss(y: Labels, p: Scores) -> float:
    """Mean binary cross-entropy of probabilities ``p``."""
    yy, pp = _check(y, p)
    pp = np.clip(pp, EPS, 1.0 - EPS)
    return float(-np.mean(yy * np.log(pp) + (1.0 - yy) * np.log1p(-pp)))


def calibration_ratio(y: Labels, p: Scores) -> float:
    """Mean prediction over mean label (``ValueError`` without positives)."""
    yy, pp = _check(y, p)
    if yy.sum() == 0:
        raise ValueError("calibration ratio needs positives")
    return float(pp.mean() / yy.mean())


def corpus_recall_at_k(
    queries: npt.NDArray[np.float32], corpus: npt.NDArray[np.float32], targets: npt.NDArray[np.integer], k: int
) -> float:
    """Fraction of queries [Q, D] whose target row of ``corpus`` [A, D] is among the ``k`` highest dot products.

    Ties count in the target's favour. Scores are computed 64 queries at a time to bound memory.
    """
    if queries.shape[0] != targets.shape[0] or queries.shape[0] == 0:
        raise ValueError("need one target per query and at least one query")
    hits = 0
    for start in range(0, queries.shape[0], 64):
        scores = queries[start : start + 64] @ corpus.T
        t = targets[start : start + 64]
        target_scores = scores[np.arange(scores.shape[0]), t]
        hits += int(((scores > target_scores[:, None]).sum(axis=1) < k).sum())
    return hits / int(queries.shape[0])


def holdout_metrics(y: Labels, p: Scores, **extra: float) -> HoldoutMetrics:
    """All manifest metrics of probabilities ``p`` against labels ``y``."""
    return HoldoutMetrics(
        auc=auc(y, p),
        log_loss=log_loss(y, p),
        calibration_ratio=calibration_ratio(y, p),
        n=int(np.asarray(y).shape[0]),
        extra=extra,
    )
