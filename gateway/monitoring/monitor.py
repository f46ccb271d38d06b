"""``Monitor``: every watched model version's latency, score shift, feature drift and calibration, in one place.

Assembly of the parts (each in its own module):

* the request path calls :meth:`Monitor.observe` (the :class:`~gateway.monitoring.observer.ScoreObserver` seam),
  which only stages values;
* :meth:`Monitor.step`, on the :class:`~gateway.monitoring.worker.Worker` every ``interval_s`` or by hand,
  drains the staging buffers into the latency histograms, the prediction-shift and feature-drift detectors,
  matures label joins and updates calibration and the Prometheus gauges;
* impressions and label events (:meth:`record_impressions`, :meth:`record_label`) are queued as they arrive and
  joined in the step;
* :meth:`snapshot` returns everything as plain JSON-able data, which ``scoregate monitor report`` renders.

Models must be registered with :meth:`watch` before they are observed; observing an unwatched model counts it
under ``unwatched_calls`` and does nothing else. Thread-safety: ``observe``, ``record_*``, ``count_*``, ``set_*``
and ``snapshot`` may be called from any thread; ``step`` from one thread at a time (the worker's, or the test's).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from gateway.monitoring.calibration import CalibrationMonitor, RatioDrift
from gateway.monitoring.drift import FeatureDrift
from gateway.monitoring.join import LabelJoin
from gateway.monitoring.latency import DEFAULT_BUCKETS_S, LatencyRecorder, SeriesKey
from gateway.monitoring.metrics import Counters, MonitorCollector
from gateway.monitoring.observer import RequestStaging, Staging, StagingPair
from gateway.monitoring.reference import Reference
from gateway.monitoring.regression import RegressionGate
from gateway.monitoring.shift import ShiftDetector
from gateway.monitoring.worker import Worker

if TYPE_CHECKING:
    from gateway.engine import Engine

__all__ = ["Monitor", "MonitorOptions"]

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)


@dataclass(frozen=True)
class MonitorOptions:
    """Documented defaults."""

    interval_s: float = 1.0
    """Worker period; ``<= 0`` starts no thread (call :meth:`Monitor.step` by hand)."""
    staging_rows: int = 262_144
    """Scores staged per model version between two steps; more are dropped (and counted)."""
    sample_every: int = 2
    """Stage scores and feature rows on one scoring call in this many (counts and latencies: every call). The
    worker's binning costs about 6 µs of CPU per staged 200-candidate request; sampling trades that for detection
    delay, in requests."""
    score_sample: int = 32
    """Scores copied per scoring call for prediction shift (the first of the batch; ``<= 0``: all). A reference
    must be recorded with the same sampling."""
    feature_sample: int = 1
    """Feature rows copied per scoring call for drift (the first rows of the batch). One row per request already
    carries the request's user and context features; more rows add ad-feature samples at ~1 µs of worker time
    per row of 64 features."""
    feature_staging_rows: int = 16_384
    staging_calls: int = 65_536
    """Latencies staged per model version between two steps."""
    windows: int = 4
    """Windows per comparison span for prediction shift (the span is the reference's ``span_rows``)."""
    feature_windows: int = 8
    """Windows per span for feature drift (an evaluation every ``span / feature_windows`` rows)."""
    confirm: int = 1
    maturity_s: float = 3_600.0
    """How long an impression waits for its label before it matures (as a negative if none came)."""
    calibration_bins: int = 10
    ratio_tolerance: float = 0.1
    min_positives: int = 100
    latency_buckets_s: tuple[float, ...] = DEFAULT_BUCKETS_S


@dataclass
class _Watched:
    key: SeriesKey
    staging: StagingPair
    shift: ShiftDetector | None
    drift: FeatureDrift | None
    rows: int = 0
    calls: int = 0
    nonfinite_scores: int = 0
    dropped: int = 0
    batch_buckets: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(len(_BATCH_BUCKETS) + 1, np.int64))
    batch_sum: float = 0.0
    shift_times: list[float] = field(default_factory=list)


class Monitor:
    def __init__(self, options: MonitorOptions | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.options = o = options or MonitorOptions()
        self.clock = clock
        self.counters = Counters()
        self.latency = LatencyRecorder(o.latency_buckets_s)
        self.join = LabelJoin(o.maturity_s)
        self.calibration = CalibrationMonitor(
            bins=o.calibration_bins, ratio_tolerance=o.ratio_tolerance, min_positives=o.min_positives
        )
        self._watched: dict[tuple[str, str], _Watched] = {}
        self._gates: list[RegressionGate] = []
        self._events: deque[tuple[Any, ...]] = deque()
        self._queue_delay = LatencyRecorder(o.latency_buckets_s)
        #: Whole requests (:meth:`watch_requests`): per-stage and end-to-end latency.
        self.requests = LatencyRecorder(o.latency_buckets_s)
        self._requests: RequestStaging | None = None
        self.requests_seen = 0
        self.requests_degraded = 0
        self._step_lock = threading.Lock()
        self.unwatched_calls = 0
        self.steps = 0
        self._worker: Worker | None = None
        self._worker = Worker(self.step, o.interval_s)

    # ------------------------------------------------------------------ registration
    def watch(
        self,
        model: str,
        version: str,
        *,
        stage: str = "full_scoring",
        n_features: int = 0,
        score_reference: Reference | None = None,
        feature_reference: Reference | None = None,
        calibration_reference: tuple[float, int] | None = None,
    ) -> None:
        """Watch a model version. ``calibration_reference`` is ``(ratio, positives)`` measured at validation."""
        o = self.options
        if feature_reference is not None:
            n_features = len(feature_reference.names)
        shift = None
        if score_reference is not None:
            shift = ShiftDetector(score_reference, windows=o.windows, confirm=o.confirm)
        drift = None
        if feature_reference is not None:
            drift = FeatureDrift(feature_reference, windows=o.feature_windows, confirm=o.confirm)
        sample = o.feature_sample if feature_reference is not None else 0
        score_sample = o.score_sample if shift is not None else None  # no reference: nothing to compare scores with
        staging = StagingPair(
            o.staging_rows, o.feature_staging_rows, n_features, o.staging_calls, sample, score_sample, o.sample_every
        )
        watched = _Watched(SeriesKey(model, version, stage), staging, shift, drift)
        if calibration_reference is not None:
            ratio, positives = calibration_reference
            self.calibration.watch(model, RatioDrift(ratio, positives))
        d = dict(self._watched)
        d[(model, version)] = watched
        self._watched = d  # replaced whole: observe() reads it without a lock

    def watch_requests(self, stages: tuple[str, ...]) -> None:
        """Watch whole requests made of ``stages`` (see :meth:`observe_request`)."""
        self._requests = RequestStaging(tuple(stages), self.options.staging_calls)

    def attach(self, engine: Engine) -> None:
        """Observe every scoring call ``engine`` serves (:attr:`gateway.engine.Engine.monitor`); models must be
        watched, per version, to be measured (others count under ``unwatched_calls``)."""
        engine.monitor = self

    def detach(self, engine: Engine) -> None:
        if engine.monitor is self:
            engine.monitor = None

    def add_gate(self, gate: RegressionGate) -> RegressionGate:
        """Report ``gate`` with the monitor's figures (the lifecycle drives it)."""
        self._gates.append(gate)
        return gate

    # ------------------------------------------------------------------ request path
    def observe(self, model: str, version: str, x: npt.NDArray[Any], out: npt.NDArray[Any], latency_ns: int) -> None:
        """The :class:`~gateway.monitoring.observer.ScoreObserver` call: stage and return (see that module)."""
        w = self._watched.get((model, version))
        if w is None:
            self.unwatched_calls += 1
            return
        w.staging.put(x, out, latency_ns)

    def failed(self, model: str, version: str, error: Exception) -> None:
        """A scoring call raised ``error`` (the engine's hook; counted by exception type)."""
        w = self._watched.get((model, version))
        self.count_error(model, version, w.key.stage if w is not None else "", type(error).__name__)

    def observe_request(self, stage_ns: tuple[int, ...], total_ns: int, degraded: bool = False) -> None:
        """One whole request landed: its stages' latencies (in :meth:`watch_requests` order) and end to end;
        ``degraded``: some model fell back or was late. Bounded and allocation-free, like :meth:`observe`."""
        staging = self._requests
        if staging is not None:
            staging.put(stage_ns, total_ns, degraded)

    def record_impressions(
        self,
        model: str,
        request_ids: npt.NDArray[Any] | Iterable[int],
        scores: npt.NDArray[Any] | Iterable[float],
        segments: Iterable[str] | str = "",
        at: float | None = None,
    ) -> None:
        """The shown impressions and the scores ``model`` gave them, for the label join (queued)."""
        self._events.append(("imp", model, np.asarray(request_ids), np.asarray(scores), segments, self._now(at)))

    def record_label(self, request_id: int, value: int = 1, at: float | None = None) -> None:
        """A delayed label event (a click, a completion) for ``request_id`` (queued)."""
        self._events.append(("label", int(request_id), value, self._now(at)))

    def count_error(self, model: str, version: str, stage: str, kind: str) -> None:
        self.counters.add("model_errors", (model, version, stage, kind))

    def count_fallback(self, model: str, tier: str) -> None:
        self.counters.add("fallback", (model, tier))

    def record_queue_delay(self, stage: str, delay_ns: int) -> None:
        self._queue_delay.record(SeriesKey("", "", stage), np.array([delay_ns], dtype=np.int64))

    def record_feature_health(self, group: str, lookups: int, missing: int, stale: int) -> None:
        c = self.counters
        c.add("feature_lookups", (group,), lookups)
        c.add("feature_missing", (group,), missing)
        c.add("feature_stale", (group,), stale)

    def record_cache(self, cache: str, hits: int, misses: int) -> None:
        self.counters.add("cache_hits", (cache,), hits)
        self.counters.add("cache_misses", (cache,), misses)

    def set_rollout_state(self, model: str, version: str, state: str) -> None:
        for labels, _ in self.counters.series("rollout_state"):
            if labels[:2] == (model, version):
                self.counters.set("rollout_state", labels, 0.0)
        self.counters.set("rollout_state", (model, version, state), 1.0)

    def _now(self, at: float | None) -> float:
        return self.clock() if at is None else at

    # ------------------------------------------------------------------ worker
    def step(self, now: float | None = None) -> None:
        """Drain staging and events; update detectors, joins, calibration and gauges."""
        with self._step_lock:
            t = self._now(now)
            for w in self._watched.values():
                staged = w.staging.swap()
                try:
                    self._drain(w, staged, t)
                finally:
                    staged.clear()
            self._drain_requests()
            self._join(t)
            self.steps += 1
            worker = self._worker
            if worker is not None:
                self.counters.set("monitor_worker_errors", (), float(worker.errors))

    def _drain(self, w: _Watched, s: Staging, now: float) -> None:
        k = w.key
        labels = (k.model, k.version, k.stage)
        if s.calls:
            w.calls += s.calls
            self.counters.add("model_requests", labels, s.calls)
        if s.dropped:
            w.dropped += s.dropped
            self.counters.add("monitor_dropped_rows", (k.model, k.version), s.dropped)
        if s.n_calls:
            self.latency.record(k, s.latency[: s.n_calls])
            sizes = s.batch[: s.n_calls]
            w.batch_buckets += np.bincount(
                np.searchsorted(np.array(_BATCH_BUCKETS), sizes, side="left"), minlength=w.batch_buckets.shape[0]
            )
            w.batch_sum += float(sizes.sum())
        if s.rows:
            w.rows += s.rows
            w.nonfinite_scores += s.nonfinite
            self.counters.add("model_rows", labels, s.rows)
            if s.nonfinite:
                self.counters.add("model_nonfinite_scores", labels, s.nonfinite)
        # Non-finite sampled scores are skipped (counted above); gauges move only when a window closed.
        if s.n_scores and w.shift is not None and w.shift.add(s.scores[: s.n_scores], now):
            last = w.shift.history[-1]
            self.counters.set_many(
                [
                    ("prediction_psi", (k.model, k.version), float(last.psi[0])),
                    ("prediction_shift_alarm", (k.model, k.version), float(w.shift.alarm)),
                ]
            )
        if s.n_features and w.drift is not None and w.drift.add(s.features[: s.n_features], now):
            last = w.drift.detector.history[-1]
            gauges: list[tuple[str, tuple[str, ...], float]] = [
                ("feature_drift_alarm", (k.model, k.version), float(w.drift.alarm))
            ]
            gauges += [
                ("feature_psi", (k.model, k.version, name), float(p))
                for name, p in zip(w.drift.names, last.psi.tolist(), strict=True)
            ]
            self.counters.set_many(gauges)

    def _drain_requests(self) -> None:
        staging = self._requests
        if staging is None:
            return
        r = staging.swap()
        try:
            self.requests_seen += r.calls
            self.requests_degraded += r.degraded
            if r.calls:
                self.counters.add("pipeline_requests", (), r.calls)
            if r.degraded:
                self.counters.add("pipeline_degraded", (), r.degraded)
            if r.n:
                for j, stage in enumerate((*staging.stages, "total")):
                    self.requests.record(SeriesKey("", "", stage), np.ascontiguousarray(r.latency[: r.n, j]))
        finally:
            r.clear()

    def _join(self, now: float) -> None:
        events = self._events
        join = self.join
        for _ in range(len(events)):
            e = events.popleft()
            if e[0] == "imp":
                _, model, rids, scores, segments, at = e
                join.impressions(model, rids, scores, at, segments)
            else:
                _, rid, value, at = e
                join.label(rid, at, value)
        matured = join.advance(now)
        if matured:
            self.calibration.add(matured)
            for model, segment in self.calibration.groups():
                r = self.calibration.report(model, segment)
                self.counters.set("calibration_ratio", (model, segment), r.ratio)
                self.counters.set("calibration_ece", (model, segment), r.ece)
        c = join.counters
        for outcome, value in (
            ("joined", c.joined), ("unknown", c.unknown_label), ("duplicate", c.duplicate_label),
            ("late", c.late_label),
        ):  # fmt: skip
            self.counters.set("labels", (outcome,), float(value))

    # ------------------------------------------------------------------ reading
    def collector(self) -> MonitorCollector:
        return MonitorCollector(self.counters, self._histograms)

    def _histograms(
        self,
    ) -> Iterator[tuple[str, str, tuple[str, ...], tuple[str, ...], list[tuple[str, float]], float]]:
        for key in self.latency.series():
            buckets, total = self.latency.prometheus(key)
            yield ("model_latency_seconds", "Scoring call latency.", ("model", "version", "stage"),
                   (key.model, key.version, key.stage), buckets, total)  # fmt: skip
        for key in self._queue_delay.series():
            buckets, total = self._queue_delay.prometheus(key)
            yield ("queue_delay_seconds", "Time queued before scoring.", ("stage",), (key.stage,), buckets, total)
        for key in self.requests.series():
            buckets, total = self.requests.prometheus(key)
            yield ("request_stage_latency_seconds", "Whole requests: latency per stage, and 'total' end to end.",
                   ("stage",), (key.stage,), buckets, total)  # fmt: skip
        for w in list(self._watched.values()):
            cumulative = np.cumsum(w.batch_buckets)
            les = [str(b) for b in _BATCH_BUCKETS] + ["+Inf"]
            yield ("model_batch_size", "Rows per scoring call.", ("model", "version", "stage"),
                   (w.key.model, w.key.version, w.key.stage),
                   [(le, float(c)) for le, c in zip(les, cumulative, strict=True)], w.batch_sum)  # fmt: skip

    def watched(self, model: str, version: str) -> _Watched:
        return self._watched[(model, version)]

    def snapshot(self) -> dict[str, Any]:
        """Everything, as JSON-able data (see :mod:`gateway.monitoring.report` for its use)."""
        from gateway.monitoring.report import build_snapshot

        return build_snapshot(self)

    def write_snapshot(self, path: str | os.PathLike[str]) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.snapshot(), indent=1, default=_jsonable), encoding="utf-8")
        return p

    @property
    def gates(self) -> list[RegressionGate]:
        return list(self._gates)

    def close(self) -> None:
        """Stop the worker (staged values not yet stepped stay staged: call :meth:`step` to drain them)."""
        if self._worker is not None:
            self._worker.close()


def _jsonable(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON-able: {type(value)}")
