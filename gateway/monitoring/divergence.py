"""Distances between binned distributions: population stability index and Jensen-Shannon divergence.

Both take count (or proportion) arrays whose last axis is the bins, so one call scores every feature of a
``[features, bins]`` table. Empty bins are smoothed with ``eps`` (a proportion) so that a bin seen on one side only
gives a large but finite term instead of infinity; both sides are renormalised after smoothing.

Pure functions of their inputs; thread-safe.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["jensen_shannon", "jensen_shannon_of", "proportions", "psi", "psi_of"]

F64 = npt.NDArray[np.float64]
EPS = 1e-4


def proportions(counts: npt.NDArray[Any], eps: float = EPS) -> F64:
    """Counts along the last axis as smoothed proportions (each row sums to 1; an all-zero row is uniform)."""
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum(axis=-1, keepdims=True)
    p = np.divide(c, total, out=np.full_like(c, 1.0 / c.shape[-1]), where=total > 0)
    p = p + eps
    p /= p.sum(axis=-1, keepdims=True)
    return np.asarray(p, dtype=np.float64)


def psi(actual: npt.NDArray[Any], expected: npt.NDArray[Any], eps: float = EPS) -> F64:
    """Population stability index ``sum((a - e) * ln(a / e))`` per row (a symmetric KL divergence)."""
    return psi_of(proportions(actual, eps), proportions(expected, eps))


def jensen_shannon(actual: npt.NDArray[Any], expected: npt.NDArray[Any], eps: float = EPS) -> F64:
    """Jensen-Shannon divergence (natural log, in ``[0, ln 2]``) per row."""
    return jensen_shannon_of(proportions(actual, eps), proportions(expected, eps))


def psi_of(a: F64, e: F64) -> F64:
    """:func:`psi` of smoothed proportions (a detector keeps its reference's proportions once)."""
    return np.asarray(np.sum((a - e) * np.log(a / e), axis=-1), dtype=np.float64)


def jensen_shannon_of(a: F64, e: F64) -> F64:
    """:func:`jensen_shannon` of smoothed proportions."""
    m = (a + e) / 2.0
    return np.asarray(0.5 * np.sum(a * np.log(a / m) + e * np.log(e / m), axis=-1), dtype=np.float64)
