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
from collections.abc import Callable, Iterable, Iterator, Sequence
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
from gateway.monitoring.observer import RequestModels, RequestStaging, StagedRequests, Staging, StagingPair
from gateway.monitoring.reference import Reference, bin_index
from gateway.monitoring.regression import RegressionGate
from gateway.monitoring.shift import ShiftDetector
from gateway.monitoring.worker import Worker

if TYPE_CHECKING:
    from gateway.engine import Engine

__all__ = ["Monitor", "MonitorOptions", "request_score_sample"]

_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
#: The counter and gauge families labelled by (model, version) that go with a retired version (not rollout_state).
_VERSION_SERIES = (
    "model_requests", "model_rows", "model_nonfinite_scores", "model_errors", "monitor_dropped_rows",
    "prediction_psi", "prediction_shift_alarm", "feature_drift_alarm", "feature_psi",
)  # fmt: skip


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
    retired_series_s: float = 600.0
    """How long the calls, rows, errors and latency series of a version :meth:`Monitor.follow` stopped watching (it
    no longer serves) stay exported before they are removed: long enough for Prometheus to scrape their last
    values, short enough that a gateway which swaps models all day does not export every version it ever served.
    ``rollout_state`` stays (a rolled-back version's state is worth seeing after it is gone)."""


def request_score_sample(options: MonitorOptions) -> int:
    """Scores staged per model per sampled request on the request path (:meth:`Monitor.watch_requests`):
    ``score_sample``, or 256 when that is ``<= 0`` (all), since the path stages a fixed block per model."""
    return options.score_sample if options.score_sample > 0 else 256


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
        self._request_models: tuple[tuple[str, str], ...] = ()
        self._request_scores: tuple[_ScorePlan, ...] = ()
        self._request_drifts: tuple[tuple[FeatureDrift, npt.NDArray[np.intp], tuple[tuple[str, str], ...]], ...] = ()
        self.requests_seen = 0
        self.requests_degraded = 0
        self._step_lock = threading.Lock()
        self.unwatched_calls = 0
        self.steps = 0
        self._follow: Engine | None = None  # follow(): the engine whose served versions are watched
        self._follow_stage = ""
        self._followed: set[tuple[str, str]] = set()
        self._retired: dict[tuple[str, str], float] = {}  # a followed version that stopped serving -> when
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

    def watch_requests(
        self, stages: tuple[str, ...], models: Sequence[tuple[str, str]] = (), schema: Sequence[str] = ()
    ) -> None:
        """Watch whole requests made of ``stages`` (see :meth:`observe_request`). With ``models`` (``(model,
        version)`` pairs, each already watched: the retrieval tower, the early-ranking model, then the full-scoring
        models, in :class:`~gateway.monitoring.observer.RequestModels` order), each request's model calls are staged
        with the request, once, instead of one hook call per model: latency and batch size per call, non-finite
        scores, and on sampled requests each model's first ``score_sample`` scores and the first ranked candidate's
        row of ``schema``. That row is the request's, whichever model served it: each model's feature drift reads
        its own columns of it (by name), and models with the same feature reference over the same columns share one
        detector, fed once per request (binning and comparing it once per model would cost as much again)."""
        o = self.options
        index = {name: i for i, name in enumerate(schema)}
        groups: dict[tuple[Any, ...], tuple[FeatureDrift, npt.NDArray[np.intp], list[tuple[str, str]]]] = {}
        for model, version in models:
            w = self._watched.get((model, version))
            if w is None:
                raise ValueError(f"watch {model}@{version} before its requests")
            if w.drift is None:
                continue
            missing = [n for n in w.drift.names if n not in index]
            if missing:
                raise ValueError(f"{model}: features {missing} are not in the request's schema")
            # The request's feature row is the same for every model: models with the same reference over the same
            # columns share one detector (the pipeline's full-scoring models mostly read the whole schema).
            group = groups.get(_reference_key(w.drift.detector.reference))
            if group is None:
                cols = np.array([index[n] for n in w.drift.names], dtype=np.intp)
                group = groups[_reference_key(w.drift.detector.reference)] = (w.drift, cols, [])
            w.drift = group[0]
            group[2].append((model, version))
        self._request_models = tuple(models)
        self._request_drifts = tuple((drift, cols, tuple(keys)) for drift, cols, keys in groups.values())
        self._request_scores = _score_plans([(j, self._watched[key].shift) for j, key in enumerate(models) if j > 0])
        sample = request_score_sample(o)
        self._requests = RequestStaging(
            tuple(stages),
            o.staging_calls,
            models=len(models),
            score_sample=sample,
            width=len(schema),
            sampled=max(1, o.staging_rows // sample) if models else 0,
            every=o.sample_every,
        )

    def attach(self, engine: Engine) -> None:
        """Observe every scoring call ``engine`` serves (:attr:`gateway.engine.Engine.monitor`); models must be
        watched, per version, to be measured (others count under ``unwatched_calls``)."""
        engine.monitor = self

    def detach(self, engine: Engine) -> None:
        if engine.monitor is self:
            engine.monitor = None
        if self._follow is engine:
            self._follow = None

    def follow(self, engine: Engine, stage: str = "serving") -> None:
        """Observe every call ``engine`` serves (:meth:`attach`) and watch every version it serves, as versions come
        and go (hot swaps, canaries, rollbacks): what a server's metrics endpoint needs.

        Each step compares the watched versions with ``engine.refs()``: a version that serves is watched under
        ``stage`` (latency, calls, errors and batch sizes; no references, so no shift or drift), and a version this
        method watched that no longer serves is dropped once a step has seen no call of it. A new version's calls
        before the next step count under ``unwatched_calls``. Versions watched by :meth:`watch` stay as they are.
        """
        with self._step_lock:
            self._follow_stage = stage
            self._follow = engine
            self._follow_versions(set())
        self.attach(engine)

    def _follow_versions(self, quiet: set[tuple[str, str]]) -> None:
        """Watch what the followed engine serves; forget what it no longer serves among ``quiet`` (no call staged
        in this step), so a version still draining its last calls keeps its series until they are counted."""
        engine = self._follow
        if engine is None:
            return
        serving = {(name, version) for name, _, version in (ref.partition("@") for ref in engine.refs())}
        for name, version in sorted(serving - self._watched.keys()):
            self.watch(name, version, stage=self._follow_stage)
            self._followed.add((name, version))
            self._retired.pop((name, version), None)  # back again (a rollback to it): its series go on
        gone = {key for key in self._followed - serving if key in quiet}
        now = self.clock()
        if gone:
            self._watched = {k: w for k, w in self._watched.items() if k not in gone}  # replaced whole, as in watch()
            self._followed -= gone
            self._retired.update(dict.fromkeys(gone, now))
        expired = [key for key, since in self._retired.items() if now - since >= self.options.retired_series_s]
        for name, version in expired:
            del self._retired[(name, version)]
            self.counters.forget(_VERSION_SERIES, name, version)
            self.latency.forget(name, version)

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

    def observe_request(
        self, stage_ns: tuple[int, ...], total_ns: int, degraded: bool = False, models: RequestModels | None = None
    ) -> None:
        """One whole request landed: its stages' latencies (in :meth:`watch_requests` order) and end to end;
        ``degraded``: some model fell back or was late; ``models``: its model calls (see :meth:`watch_requests`).
        Bounded and allocation-free, like :meth:`observe`."""
        staging = self._requests
        if staging is not None:
            staging.put(stage_ns, total_ns, degraded, models)

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
            quiet: set[tuple[str, str]] = set()
            for key, w in self._watched.items():
                staged = w.staging.swap()
                if not staged.calls:
                    quiet.add(key)
                try:
                    self._drain(w, staged, t)
                finally:
                    staged.clear()
                time.sleep(0)
            self._follow_versions(quiet)
            self._drain_requests(t)
            self._join(t)
            self.steps += 1
            worker = self._worker
            if worker is not None:
                self.counters.set("monitor_worker_errors", (), float(worker.errors))

    def _drain(self, w: _Watched, s: Staging, now: float) -> None:
        self._count(w, s.calls, s.rows, s.nonfinite, s.dropped, s.latency[: s.n_calls], s.batch[: s.n_calls])
        self._detect(w, s.scores[: s.n_scores] if s.n_scores else None, s.features[: s.n_features], now)

    def _count(
        self,
        w: _Watched,
        calls: int,
        rows: int,
        nonfinite: int,
        dropped: int,
        latency: npt.NDArray[np.int64],
        sizes: npt.NDArray[np.int64],
    ) -> None:
        k = w.key
        labels = (k.model, k.version, k.stage)
        if calls:
            w.calls += calls
            self.counters.add("model_requests", labels, calls)
        if dropped:
            w.dropped += dropped
            self.counters.add("monitor_dropped_rows", (k.model, k.version), dropped)
        if latency.shape[0]:
            self.latency.record(k, latency)
            w.batch_buckets += np.bincount(
                np.searchsorted(np.array(_BATCH_BUCKETS), sizes, side="left"), minlength=w.batch_buckets.shape[0]
            )
            w.batch_sum += float(sizes.sum())
        if rows:
            w.rows += rows
            w.nonfinite_scores += nonfinite
            self.counters.add("model_rows", labels, rows)
            if nonfinite:
                self.counters.add("model_nonfinite_scores", labels, nonfinite)

    def _detect(
        self, w: _Watched, scores: npt.NDArray[np.float32] | None, features: npt.NDArray[np.float32], now: float
    ) -> None:
        """Sampled scores and feature rows into the detectors. Non-finite sampled scores are skipped (counted
        already); gauges move only when a window closed."""
        if scores is not None and scores.shape[0] and w.shift is not None and w.shift.add(scores, now):
            self._shift_gauges(w)
        if features.shape[0] and w.drift is not None:
            self._drift(w.drift, (w,), features, now)

    def _shift_gauges(self, w: _Watched) -> None:
        assert w.shift is not None
        k = w.key
        last = w.shift.history[-1]
        self.counters.set_many(
            [
                ("prediction_psi", (k.model, k.version), float(last.psi[0])),
                ("prediction_shift_alarm", (k.model, k.version), float(w.shift.alarm)),
            ]
        )

    def _drift(
        self, drift: FeatureDrift, watched: Iterable[_Watched], features: npt.NDArray[np.float32], now: float
    ) -> None:
        if not drift.add(features, now):
            return
        last = drift.detector.history[-1]
        psi = last.psi.tolist()
        gauges: list[tuple[str, tuple[str, ...], float]] = []
        for w in watched:
            k = w.key
            gauges.append(("feature_drift_alarm", (k.model, k.version), float(drift.alarm)))
            gauges += [
                ("feature_psi", (k.model, k.version, name), float(p)) for name, p in zip(drift.names, psi, strict=True)
            ]
        self.counters.set_many(gauges)

    def _drain_requests(self, now: float) -> None:
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
            if r.n_models:
                self._drain_request_models(r, now)
        finally:
            r.clear()

    def _drain_request_models(self, r: StagedRequests, now: float) -> None:
        n, k = r.n_models, r.n_sampled
        models = self._request_models
        latency = r.model_latency[:n]
        served = latency > 0
        calls = np.count_nonzero(served, axis=0)
        nonfinite = r.nonfinite.copy()
        binned = [self._bin_request_scores(r, plan) for plan in self._request_scores] if k else []
        for cols, _, counted_bad, *_ in binned:
            nonfinite[cols] += counted_bad
        for j, key in enumerate(models):
            w = self._watched.get(key)
            if w is None:
                continue
            sizes = np.ones(int(calls[j]), np.int64) if j == 0 else r.batch[:n, 0 if j == 1 else 1][served[:, j]]
            self._count(w, int(calls[j]), int(sizes.sum()), int(nonfinite[j]), 0, latency[served[:, j], j], sizes)
        for cols, slots, _, use, flat, refs, bins in binned:
            for i, j in enumerate(cols.tolist()):
                w = self._watched.get(models[j])
                if w is None or w.shift is None:
                    continue
                if w.shift.reference is refs[i]:
                    closed = bool(w.shift.add_slots((slots[use[:, i], i] - i * bins)[:, None], now))
                else:  # watched again with another reference since: binned on its own
                    closed = bool(w.shift.add(flat[use[:, i], i], now))
                if closed:
                    self._shift_gauges(w)
        time.sleep(0)  # let serving threads that wait for the GIL in (see step)
        if k:
            for drift, cols_, keys in self._request_drifts:
                watched = [w for w in (self._watched.get(key) for key in keys) if w is not None and w.drift is drift]
                if watched:
                    self._drift(drift, watched, r.features[:k][:, cols_], now)

    def _bin_request_scores(self, r: StagedRequests, plan: _ScorePlan) -> tuple[Any, ...]:
        """Every scored model's staged sample in one :func:`bin_index` call (their references' edges side by side):
        the models' columns, the slots, the non-finite count per model, which rows each model counts (served, within
        the request's candidates, finite), the values, the references binned with, and the bins."""
        cols, edges, refs, bins = plan
        k = r.n_sampled
        at = r.sampled_at[:k]
        values = r.scores[:k][:, cols, :]  # [k, models, s]
        s = values.shape[2]
        candidates = np.where(cols == 1, r.batch[at, 0:1], r.batch[at, 1:2])  # early ranking's, or full scoring's
        ok = (r.model_latency[at][:, cols] > 0)[:, :, None] & (np.arange(s) < candidates[:, :, None])
        flat = values.transpose(0, 2, 1).reshape(k * s, -1)  # rows in arrival order, one column per model
        okf = ok.transpose(0, 2, 1).reshape(k * s, -1)
        finite = np.isfinite(flat)
        slots, _ = bin_index(edges, flat, bins)
        use = okf & finite
        return cols, slots, np.count_nonzero(okf & ~finite, axis=0), use, flat, refs, bins

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


_ScorePlan = tuple[npt.NDArray[np.intp], npt.NDArray[Any], tuple[Reference, ...], int]


def _score_plans(shifts: list[tuple[int, ShiftDetector | None]]) -> tuple[_ScorePlan, ...]:
    """The request path's scored models, grouped by their references' bin count (one group, normally): each
    group's models (columns), their references' edges side by side (float32 when every one is exact in float32),
    the references and the bins."""
    by_bins: dict[int, list[tuple[int, Reference]]] = {}
    for j, d in shifts:
        if d is not None:
            by_bins.setdefault(d.reference.bins, []).append((j, d.reference))
    plans = []
    for bins, picked in by_bins.items():
        refs = tuple(r for _, r in picked)
        e32 = [e for e in (r.edges32 for r in refs) if e is not None]
        edges = np.concatenate(e32 if len(e32) == len(refs) else [r.edges for r in refs])
        plans.append((np.array([j for j, _ in picked], dtype=np.intp), edges, refs, bins))
    return tuple(plans)


def _reference_key(r: Reference) -> tuple[Any, ...]:
    return (
        r.names, r.span_rows, r.spans, r.edges.tobytes(), r.counts.tobytes(), r.psi_threshold.tobytes(),
        r.js_threshold.tobytes(),
    )  # fmt: skip


def _jsonable(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON-able: {type(value)}")
