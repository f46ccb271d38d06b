"""Distances between binned distributions (population stability index, Jensen-Shannon divergence), and the rank
correlation of two score lists.

Both take count (or proportion) arrays whose last axis is the bins, so one call scores every feature of a
``[features, bins]`` table. Empty bins are smoothed with ``eps`` (a proportion) so that a bin seen on one side only
gives a large but finite term instead of infinity; both sides are renormalised after smoothing.

Pure functions of their inputs; thread-safe.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "jensen_shannon", "jensen_shannon_of", "proportions", "psi", "psi_and_js", "psi_of", "spearman", "spearman_rows",
]  # fmt: skip

F64 = npt.NDArray[np.float64]
EPS = 1e-4


def proportions(counts: npt.NDArray[Any], eps: float = EPS) -> F64:
    """Counts along the last axis as smoothed proportions (each row sums to 1; an all-zero row is uniform):
    ``(c / total + eps) / (1 + bins * eps)``, the proportions plus ``eps`` renormalised, in two array operations."""
    c = np.asarray(counts, dtype=np.float64)
    bins = c.shape[-1]
    total = c.sum(axis=-1, keepdims=True)
    norm = 1.0 + bins * eps
    if total.all():
        p: F64 = c * (1.0 / (total * norm))
        p += eps / norm
        return p
    p = np.divide(c, total, out=np.full_like(c, 1.0 / bins), where=total > 0)
    p += eps
    p /= norm
    return p


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


def psi_and_js(a: F64, e: F64, log_e: F64) -> tuple[F64, F64]:
    """:func:`psi_of` and :func:`jensen_shannon_of` at once, sharing the logarithms (``log_e = log(e)``, kept by a
    detector with its reference): the detectors' evaluation, several times per second per watched model."""
    log_a = np.log(a)
    d = log_a - log_e
    p = ((a - e) * d).sum(axis=-1)
    m = a + e
    m *= 0.5
    log_m = np.log(m)
    js = (a * (log_a - log_m) + e * (log_e - log_m)).sum(axis=-1)
    js *= 0.5
    return p, js


def spearman(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> float:
    """Spearman rank correlation of two equally long score lists (ties by position); 1.0 below 3 rows or when
    either list is constant."""
    if a.shape[0] < 3:
        return 1.0
    ra = np.argsort(np.argsort(a, kind="stable"), kind="stable").astype(np.float64)
    rb = np.argsort(np.argsort(b, kind="stable"), kind="stable").astype(np.float64)
    ra -= ra.mean()
    rb -= rb.mean()
    den = float(np.sqrt(float(ra @ ra) * float(rb @ rb)))
    return float(ra @ rb) / den if den > 0 else 1.0


def spearman_rows(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """:func:`spearman` of each row pair of two ``[k, n]`` arrays at once (one value per row)."""
    if a.shape[1] < 3:
        return np.ones(a.shape[0])
    ra = np.argsort(np.argsort(a, axis=1, kind="stable"), axis=1, kind="stable").astype(np.float64)
    rb = np.argsort(np.argsort(b, axis=1, kind="stable"), axis=1, kind="stable").astype(np.float64)
    ra -= ra.mean(axis=1, keepdims=True)
    rb -= rb.mean(axis=1, keepdims=True)
    den = np.sqrt(np.einsum("ij,ij->i", ra, ra) * np.einsum("ij,ij->i", rb, rb))
    num = np.einsum("ij,ij->i", ra, rb)
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)
