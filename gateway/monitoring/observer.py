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
* Non-finite scores are screened on *all* rows with one allocation-free sum (a dot product beyond
  :data:`~gateway.gil.GIL_FREE_ELEMENTS` scores); only a call that has some pays for counting them.
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

from gateway.gil import GIL_FREE_ELEMENTS

__all__ = ["RequestModels", "RequestStaging", "ScoreObserver", "StagedRequests", "Staging", "StagingPair"]


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
        # A sum holds the GIL up to GIL_FREE_ELEMENTS values; beyond, one BLAS dot releases it once either way.
        total = flat.sum() if flat.shape[0] <= GIL_FREE_ELEMENTS else flat.dot(flat)
        bad = 0 if isfinite(total) else flat.shape[0] - int(np.count_nonzero(np.isfinite(flat)))
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


class RequestModels:
    """One pipeline request's model calls, staged at once when it lands (instead of one hook call per model; see
    :meth:`gateway.monitoring.Monitor.watch_requests` for the model order: the retrieval tower, the early-ranking
    model, then the full-scoring models). Views the caller owns, copied before :meth:`RequestStaging.put` returns.
    """

    __slots__ = ("early", "embedding", "features", "full", "latency_ns")

    def __init__(
        self,
        latency_ns: npt.NDArray[np.int64],
        embedding: npt.NDArray[Any],
        early: npt.NDArray[Any],
        full: npt.NDArray[Any],
        features: npt.NDArray[Any],
    ) -> None:
        #: Per model, its scoring call's latency; 0: the model did not serve this request itself (a fallback model
        #: or the static prior did, or it served another version, observed per call instead).
        self.latency_ns = latency_ns
        #: The tower's output: screened for non-finite values, not binned.
        self.embedding = embedding
        #: Early ranking's scores, one per retrieved candidate.
        self.early = early
        #: Full scoring's scores, ``[models, ranked candidates]`` (rows of models not served: anything).
        self.full = full
        #: The first ranked candidate's feature row, in the pipeline's full schema.
        self.features = features


class RequestStaging:
    """Whole requests as they land (the pipeline's responses): each one's stage latencies and its end-to-end latency
    into a preallocated ``[calls, stages + 1]`` array, plus the count of degraded answers; with ``models``, each
    model call's latency and batch size and, on one request in ``every``, the first ``score_sample`` scores of each
    model and the first ranked candidate's feature row. Double-buffered like :class:`StagingPair`; requests beyond
    the buffers between two steps are counted, not staged.

    Every array operation here touches at most :data:`~gateway.gil.GIL_FREE_ELEMENTS` elements (see
    :mod:`gateway.gil`), so scores are screened for non-finite values by the worker, on the staged sample, not here
    on every score."""

    __slots__ = ("_active", "_rows_per_copy", "_spare", "every", "lock", "models", "stages")

    def __init__(
        self,
        stages: tuple[str, ...],
        calls: int,
        models: int = 0,
        score_sample: int = 0,
        width: int = 0,
        sampled: int = 0,
        every: int = 1,
    ) -> None:
        self.stages = stages
        self.models = models
        self.every = max(every, 1)
        self._rows_per_copy = max(1, GIL_FREE_ELEMENTS // max(score_sample, 1))
        shape = (len(stages) + 1, models, score_sample, width, sampled)
        self._active = StagedRequests(calls, *shape)
        self._spare = StagedRequests(calls, *shape)
        self.lock = threading.Lock()

    def put(
        self, stage_ns: tuple[int, ...], total_ns: int, degraded: bool, models: RequestModels | None = None
    ) -> None:
        bad_embedding = False
        if models is not None and self.models:
            emb = models.embedding.reshape(-1)[:GIL_FREE_ELEMENTS]
            bad_embedding = not isfinite(emb.sum())  # the tower's output; scores are screened by the worker
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
            if models is None or not self.models or c >= a.model_latency.shape[0]:
                return
            a.model_latency[c] = models.latency_ns
            batch = a.batch[c]
            batch[0] = models.early.shape[0]
            batch[1] = models.full.shape[1]
            a.n_models = c + 1
            if bad_embedding:
                a.nonfinite[0] += 1
            k = a.n_sampled
            if c % self.every or k >= a.scores.shape[0]:
                return
            block = a.scores[k]
            s = block.shape[1]
            block[1, : min(s, batch[0])] = models.early[:s]
            full = models.full
            step = self._rows_per_copy
            for i in range(0, full.shape[0], step):  # in slices numpy copies without releasing the GIL
                block[2 + i : 2 + i + step, : min(s, batch[1])] = full[i : i + step, :s]
            a.features[k] = models.features
            a.sampled_at[k] = c
            a.n_sampled = k + 1

    def swap(self) -> StagedRequests:
        with self.lock:
            self._active, self._spare = self._spare, self._active
            return self._spare


class StagedRequests:
    __slots__ = (
        "batch", "calls", "degraded", "features", "latency", "model_latency", "n", "n_models", "n_sampled",
        "nonfinite", "sampled_at", "scores",
    )  # fmt: skip

    def __init__(self, calls: int, columns: int, models: int, score_sample: int, width: int, sampled: int) -> None:
        self.latency = np.zeros((calls, columns), dtype=np.int64)
        self.model_latency = np.zeros((calls if models else 0, models), dtype=np.int64)
        self.batch = np.zeros((calls if models else 0, 2), dtype=np.int64)
        self.nonfinite = np.zeros(models, dtype=np.int64)
        # Sampled requests: every model's first scores (row 0, the tower's, stays unused; columns past a short
        # request's candidates stay stale: the worker reads the counts in batch) and one feature row.
        self.scores = np.empty((sampled, models, score_sample), dtype=np.float32)
        self.features = np.empty((sampled, width), dtype=np.float32)
        self.sampled_at = np.zeros(sampled, dtype=np.intp)  # the request (row of model_latency) sampled
        self.calls = self.degraded = self.n = self.n_models = self.n_sampled = 0

    def clear(self) -> None:
        self.calls = self.degraded = self.n = self.n_models = self.n_sampled = 0
        self.nonfinite[:] = 0
