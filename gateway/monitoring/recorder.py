"""``ReferenceRecorder``: record the references a :class:`Monitor` compares with, from traffic replayed through the
serving path.

A reference must come from the same path, with the same sampling, as what the monitor will see: the first
``score_sample`` scores and the first ``feature_sample`` feature rows of each call, in arrival order (spans keep
their request structure; see :mod:`gateway.monitoring.reference`); on the pipeline's request path, the first
``score_sample`` scores of each model and the first ranked candidate's row. Install the recorder where the monitor
will be (:attr:`gateway.engine.Engine.monitor`, or :meth:`gateway.pipeline.Pipeline.attach_recorder`), replay
validation traffic (a held-out day, a clean synthetic stream), then build the references with
:meth:`ReferenceRecorder.references` and hand them to :meth:`Monitor.watch`.

Recording copies per call (a few hundred bytes) and is meant for validation runs, not for serving.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.monitoring.monitor import MonitorOptions, request_score_sample
from gateway.monitoring.observer import RequestModels
from gateway.monitoring.reference import Reference

__all__ = ["ModelReferences", "ReferenceRecorder"]


@dataclass(frozen=True)
class ModelReferences:
    """What :meth:`Monitor.watch` takes for one model version (either may be None: not watched for that)."""

    scores: Reference | None
    features: Reference | None


class ReferenceRecorder:
    """A monitoring hook (``observe`` / ``failed``) that keeps each model's sampled scores and feature rows.

    ``feature_names`` maps a model to the names of its input columns; models not in it get no feature reference.
    Sampling follows ``options`` (:class:`MonitorOptions`: ``score_sample``, ``feature_sample``). Thread-safe.
    """

    def __init__(
        self, feature_names: Mapping[str, Sequence[str]] | None = None, options: MonitorOptions | None = None
    ) -> None:
        self.options = options or MonitorOptions()
        self.feature_names = {k: tuple(v) for k, v in (feature_names or {}).items()}
        self._scores: dict[str, list[npt.NDArray[np.float32]]] = {}
        self._features: dict[str, list[npt.NDArray[np.float32]]] = {}
        self._lock = threading.Lock()
        self._request_models: tuple[tuple[str, npt.NDArray[np.intp] | None], ...] = ()

    def observe(self, model: str, version: str, x: npt.NDArray[Any], out: npt.NDArray[Any], latency_ns: int) -> None:
        o = self.options
        n = out.shape[0]
        flat = out.reshape(-1)
        if flat.shape[0] != n:  # several outputs per row (an embedding): not a score distribution
            return
        scores = np.array(flat[: n if o.score_sample <= 0 else o.score_sample], dtype=np.float32)
        names = self.feature_names.get(model)
        rows = None
        if names and x.ndim == 2 and x.shape[1] == len(names) and o.feature_sample > 0:
            rows = np.array(x[: o.feature_sample], dtype=np.float32)
        with self._lock:
            self._scores.setdefault(model, []).append(scores)
            if rows is not None:
                self._features.setdefault(model, []).append(rows)

    def failed(self, model: str, version: str, error: Exception) -> None:
        """Failed calls carry no scores: nothing to record."""

    def watch_requests(
        self, stages: tuple[str, ...], models: Sequence[tuple[str, str]] = (), schema: Sequence[str] = ()
    ) -> None:
        """Record from whole requests, as :meth:`Monitor.watch_requests` stages them (same model order)."""
        index = {name: i for i, name in enumerate(schema)}
        plan: list[tuple[str, npt.NDArray[np.intp] | None]] = []
        for model, _ in models:
            names = self.feature_names.get(model, ())
            missing = [n for n in names if n not in index]
            if missing:
                raise ValueError(f"{model}: features {missing} are not in the request's schema")
            plan.append((model, np.array([index[n] for n in names], dtype=np.intp) if names else None))
        self._request_models = tuple(plan)

    def observe_request(
        self, stage_ns: tuple[int, ...], total_ns: int, degraded: bool = False, models: RequestModels | None = None
    ) -> None:
        if models is None:
            return
        s = request_score_sample(self.options)
        served = models.latency_ns > 0
        with self._lock:
            for j, (model, cols) in enumerate(self._request_models):
                if not served[j]:
                    continue
                if j > 0:
                    scores = models.early if j == 1 else models.full[j - 2]
                    self._scores.setdefault(model, []).append(np.array(scores[:s], dtype=np.float32))
                if cols is not None:
                    self._features.setdefault(model, []).append(models.features[cols][None, :].astype(np.float32))

    def count_fallback(self, model: str, tier: str) -> None:
        """Fallbacks are the monitor's business, not the reference's."""

    def calls(self, model: str) -> int:
        with self._lock:
            return len(self._scores.get(model, ()))

    def references(self, score_span_calls: int, feature_span_calls: int) -> dict[str, ModelReferences]:
        """Per recorded model, references whose sliding windows span ``score_span_calls`` calls of scores and
        ``feature_span_calls`` calls of feature rows (rounded down to whole detector windows: ``options.windows``
        and ``options.feature_windows``). Each needs at least 4 spans recorded; a model with fewer gets None for
        that reference."""
        o = self.options
        with self._lock:
            scores = {m: list(v) for m, v in self._scores.items()}
            features = {m: list(v) for m, v in self._features.items()}
        out: dict[str, ModelReferences] = {}
        for model, batches in scores.items():
            per_call = max(1, int(np.median([b.shape[0] for b in batches])))
            score_ref = _record(("score",), batches, _windowed(score_span_calls * per_call, o.windows))
            feature_ref = None
            if model in features:
                span = _windowed(feature_span_calls * max(1, o.feature_sample), o.feature_windows)
                feature_ref = _record(self.feature_names[model], features[model], span)
            out[model] = ModelReferences(score_ref, feature_ref)
        return out


def _windowed(rows: int, windows: int) -> int:
    return max(windows, rows - rows % windows)


def _record(names: Sequence[str], batches: list[npt.NDArray[np.float32]], span_rows: int) -> Reference | None:
    if sum(b.shape[0] for b in batches) < 4 * span_rows:
        return None
    return Reference.record(names, batches, span_rows=span_rows)
