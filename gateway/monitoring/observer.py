"""The request-path seam: ``ScoreObserver``, and the bounded staging buffers that make observing cheap.

A transport (or, later, the engine itself) calls ``observer.observe(model, version, x, out, latency_ns)`` after
each scoring call, on the scoring thread. The contract:

* ``x`` and ``out`` are views the caller owns; the observer copies what it needs before it returns and keeps no
  reference (the JVM bridge reuses its arena slots for the next request at once).
* The call is bounded, allocation-free array arithmetic: it copies the latency (every call) and, on one call in
  ``every``, the first ``score_sample`` scores and the first ``feature_sample`` feature rows into preallocated
  staging arrays under one short lock per model, and never bins, sorts, logs or raises. Candidates arrive in no
  particular order, and the rows of one request are strongly correlated (same user, same context), so the first
  rows of each call are a fair sample that loses little: the detectors need many requests, not every candidate.
* Non-finite scores are screened on *all* rows with one allocation-free dot product (as the runtime screens its
  inputs); only a call that has some pays for counting them.
* When a staging buffer is full, the rows are counted as ``dropped`` (the monitor samples under overload rather
  than slowing scoring down).
* Everything else (binning, windows, divergences, histograms, joins) runs on the monitor's worker, which swaps the
  filled buffers for empty ones (double buffering) and processes them off the request path.
"""

from __future__ import annotations

import threading
from math import isfinite
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["RequestStaging", "ScoreObserver", "Staging", "StagingPair"]


class ScoreObserver(Protocol):
    """Called after every scoring call; must be cheap and must not raise (see the module docstring)."""

    def observe(
        self,
        model: str,
        version: str,
        x: npt.NDArray[Any],
        out: npt.NDArray[Any],
        latency_ns: int,
    ) -> None: ...


class Staging:
    """Preallocated arrays for one model version: scores, sampled feature rows, per-call latency and batch size."""

    __slots__ = (
        "batch", "calls", "dropped", "features", "latency", "n_calls", "n_features", "n_scores", "nonfinite", "rows",
        "scores",
    )  # fmt: skip

    def __init__(self, score_rows: int, feature_rows: int, n_features: int, calls: int) -> None:
        self.scores = np.empty(score_rows, dtype=np.float32)
        self.features = np.empty((feature_rows, max(n_features, 1)), dtype=np.float32)
        self.latency = np.empty(calls, dtype=np.int64)
        self.batch = np.empty(calls, dtype=np.int64)
        self.n_scores = 0
        self.n_features = 0
        self.n_calls = 0
        self.calls = 0
        self.rows = 0
        self.nonfinite = 0
        self.dropped = 0

    def clear(self) -> None:
        self.n_scores = self.n_features = self.n_calls = self.calls = self.rows = self.nonfinite = self.dropped = 0


class StagingPair:
    """The active buffer the request path writes and the spare the worker drains, swapped under ``lock``."""

    __slots__ = ("active", "every", "feature_sample", "lock", "score_sample", "spare")

    def __init__(
        self,
        score_rows: int,
        feature_rows: int,
        n_features: int,
        calls: int,
        feature_sample: int,
        score_sample: int | None,
        every: int = 1,
    ) -> None:
        self.active = Staging(score_rows, feature_rows, n_features, calls)
        self.spare = Staging(score_rows, feature_rows, n_features, calls)
        self.lock = threading.Lock()
        self.feature_sample = feature_sample
        self.score_sample = score_sample
        self.every = max(every, 1)

    def put(self, x: npt.NDArray[Any], out: npt.NDArray[Any], latency_ns: int) -> None:
        """The hot path. Every call: counts, the latency and the non-finite screen. One call in ``every``: up to
        ``score_sample`` scores (``<= 0``: all; None, or an output with several columns per row: none) and up to
        ``feature_sample`` rows of ``x`` into ``active``."""
        n = out.shape[0]
        flat = out if out.ndim == 1 else out.reshape(-1)  # [n, k] outputs (embeddings): every value screened
        bad = 0 if isfinite(flat.dot(flat)) else flat.shape[0] - int(np.count_nonzero(np.isfinite(flat)))
        with self.lock:
            a = self.active
            c = a.calls
            a.calls = c + 1
            a.rows += n
            if bad:
                a.nonfinite += bad
            if c < a.latency.shape[0]:
                a.latency[c] = latency_ns
                a.batch[c] = n
                a.n_calls = c + 1
            if c % self.every:
                return
            if self.score_sample is not None and flat.shape[0] == n:
                m = n if self.score_sample <= 0 else min(n, self.score_sample)
                i = a.n_scores
                if i + m <= a.scores.shape[0]:
                    a.scores[i : i + m] = flat[:m]
                    a.n_scores = i + m
                else:
                    a.dropped += n
            k = self.feature_sample
            if k:
                k = min(k, x.shape[0])
                j = a.n_features
                if j + k <= a.features.shape[0] and x.ndim == 2 and x.shape[1] == a.features.shape[1]:
                    a.features[j : j + k] = x[:k]
                    a.n_features = j + k

    def swap(self) -> Staging:
        """Worker side: take the filled buffer (the caller clears it before the next swap)."""
        with self.lock:
            self.active, self.spare = self.spare, self.active
            return self.spare


class RequestStaging:
    """Whole requests as they land (the pipeline's responses): each one's stage latencies and its end-to-end latency
    into a preallocated ``[calls, stages + 1]`` array, plus the count of degraded answers. Double-buffered like
    :class:`StagingPair`; requests beyond the buffer between two steps are counted, not staged."""

    __slots__ = ("_active", "_spare", "lock", "stages")

    def __init__(self, stages: tuple[str, ...], calls: int) -> None:
        self.stages = stages
        self._active = _Requests(calls, len(stages) + 1)
        self._spare = _Requests(calls, len(stages) + 1)
        self.lock = threading.Lock()

    def put(self, stage_ns: tuple[int, ...], total_ns: int, degraded: bool) -> None:
        with self.lock:
            a = self._active
            c = a.calls
            a.calls = c + 1
            if degraded:
                a.degraded += 1
            if c < a.latency.shape[0]:
                row = a.latency[c]
                row[: len(stage_ns)] = stage_ns
                row[-1] = total_ns
                a.n = c + 1

    def swap(self) -> _Requests:
        with self.lock:
            self._active, self._spare = self._spare, self._active
            return self._spare


class _Requests:
    __slots__ = ("calls", "degraded", "latency", "n")

    def __init__(self, calls: int, columns: int) -> None:
        self.latency = np.zeros((calls, columns), dtype=np.int64)
        self.calls = self.degraded = self.n = 0

    def clear(self) -> None:
        self.calls = self.degraded = self.n = 0
