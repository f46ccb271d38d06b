"""Suite ``monitoring``: what monitoring costs on the scoring path, and how well it catches bad models.

Timed cases, whole pipeline (side by side in each fork: one pipeline, the monitor attached in one case's
iterations and not in the other's):

* **pipeline_monitor_off** / **pipeline_monitor_on**: ``Pipeline.run`` of demo ad requests (retrieval, early
  ranking, 20 models over 200 candidates, auction) from 3 closed-loop request threads, the pipeline's highest
  in-budget load on 2 cores (see ``PIPELINE_THREADS``). With the monitor on (``Pipeline.attach_monitor``, score
  and feature references recorded first from the same pipeline by a ``ReferenceRecorder``), each response stages
  its 22 model calls at once through ``Monitor.observe_request``, the worker steps every second in the same
  process, and each iteration ends with a step inside its timed window so it pays for what it staged. Figure
  ``monitoring_on_over_off_tput`` (target >= 0.98), with ``monitoring_on_over_off_p50`` and ``_p99``.

Timed cases, one scoring call (side by side in each fork, same model, same inputs):

* **monitor_off**: ``ModelRuntime.score`` of one ad request (200 candidates, ``pctr_gbdt``), features copied
  into the request's arena buffer first, as a transport does;
* **monitor_on**: the same, timed, then ``Monitor.observe`` (the request-path hook), with the monitor's worker
  thread running every 50 ms in the same process (binning, windows, PSI/JS, HdrHistograms), so its cost counts;
* **observe_only**: the hook alone on already scored rows (its absolute cost; the worker runs too).

Figure ``scoring_call_on_over_off_tput`` = throughput on / off. On a 2-core machine that other jobs share, that ratio
moves by several percent from run to run, so the suite also reports the costs it is made of: ``observe_p50_us``
(the hook), ``worker_us_per_request`` (the worker's CPU per observed request, thread CPU time) and
``monitoring_cost_estimate_pct`` (both over the scoring call's p50: the throughput a saturated machine loses).
The monitor runs with its defaults (``MonitorOptions``: one request in two staged, 32 scores and 1 feature row).

Evaluations (run once in the parent, replaying marketplace streams on the stream's own clock through a real
``Monitor`` and the real exported model; sizes shrink with ``--quick``):

* **drift**: references recorded on a clean validation stream; then, for each injected drift (``FeatureShift``,
  ``BrokenFeature``, ``CtrShift``) at three magnitudes, the requests between onset and the first alarm
  (``drift_delay_requests_<kind>_<size>``, -1 when not detected within the run), ``drift_missed_large``
  (missed drifts of the two larger magnitudes) and ``drift_false_alarms_per_million`` (alarms per million
  requests of drift-free streams). Feature drifts show in feature drift and score shift; a CTR drift changes only
  the truth, so it shows in the calibration ratio once labels mature (its delay includes the maturity window).
* **calibration**: calibration ratio and ECE reported by the monitor against the same figures computed offline
  from the same events (``calibration_ratio_rel_err``, ``calibration_ece_rel_err``), the ratio against the known
  truth, and a miscalibrated copy of the model (scores x1.5) flagged (``miscalibrated_flagged`` = 1). Bad input
  (unknown ids, duplicate and late labels, NaN scores) is injected and ``bad_input_counted`` = 1 when every
  counter equals what was injected.
* **regression**: a canary whose pCTR is +20 % against live on the canary's requests (live scores them in shadow):
  ``bad_canary_rollback_requests``; 20 identical canaries on 20 streams: ``good_canary_false_rollbacks``.

The calibration run's monitor snapshot is written to ``perf/out/monitoring[-quick]-snapshot.json``, for
``scoregate monitor report``.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from perf.harness import Case, Measurement, Op, Result, Suite, closed_loop_threads

ROOT = Path(__file__).resolve().parents[2]
DEMO_DIR = ROOT / "build" / "demo"
MODEL = "pctr_gbdt"
CANDIDATES = 200
FEATURE_SAMPLE = 1
SCORE_SAMPLE = 32
SCORE_SPAN_REQUESTS = 200
#: The whole-pipeline cases: closed-loop request threads, iteration length over the plan's (a pipeline request is
#: ~100x a scoring call), requests replayed for references. Three threads are the pipeline's knee on 2 cores: its
#: highest throughput inside its 20 ms budget (measured, monitor off: 1 thread 246 req/s, p99 7.3 ms; 2: 269/s,
#: 13.3 ms, 0.1 % of answers degraded; 3: 333/s, 15.4 ms, 1.1 %; 4: 298/s, p99 20.6 ms past the budget, 17 % of
#: answers degraded by late models). Beyond the knee the pipeline is overloaded and deadline misses set its pace.
PIPELINE_THREADS = 3
PIPELINE_ITERATION_SCALE = 3
PIPELINE_REFERENCE_CALLS = 1_600
FEATURE_SPAN_REQUESTS = 1600
SHOWN = 4
RATE_RPS = 50.0
MATURITY_S = 30.0
F32 = npt.NDArray[np.float32]


_RUN = {"quick": False}  # set by prepare() in the parent, where the figures are computed too


def _prepare(quick: bool) -> None:
    from models.demo import build_demo

    _RUN["quick"] = quick
    build_demo(DEMO_DIR)


# ---------------------------------------------------------------------------------------------- timed cases
def _runtime_and_pool(pool: int = 32) -> tuple[Any, str, list[F32]]:
    from gateway.runtime import ModelRuntime
    from models.demo import load_demo_manifests
    from models.demo.inputs import demo_request_features, feature_columns

    manifest = {m.name: m for m in load_demo_manifests(DEMO_DIR)}[MODEL]
    rt = ModelRuntime.load(DEMO_DIR / "models" / MODEL / manifest.version / manifest.onnx_file, name=MODEL)
    cols = feature_columns(manifest)
    xs = [np.ascontiguousarray(demo_request_features(DEMO_DIR, CANDIDATES, seed)[:, cols]) for seed in range(pool)]
    return rt, manifest.version, xs


def _off() -> Op:
    rt, _, pool = _runtime_and_pool()
    x = np.empty_like(pool[0])
    out = np.empty(CANDIDATES, dtype=np.float32)
    score = rt.score
    it = iter(range(1 << 62))

    def op() -> object:
        np.copyto(x, pool[next(it) % len(pool)])
        return score(x, out)

    return op


def _on() -> Op:
    from gateway.monitoring import Monitor, MonitorOptions

    rt, version, pool = _runtime_and_pool()
    ref = _references(quick=True)
    monitor = Monitor(MonitorOptions(interval_s=0.05, feature_sample=FEATURE_SAMPLE, score_sample=SCORE_SAMPLE))
    monitor.watch(
        MODEL, version, n_features=pool[0].shape[1], score_reference=ref.scores, feature_reference=ref.features
    )
    x = np.empty_like(pool[0])
    out = np.empty(CANDIDATES, dtype=np.float32)
    score = rt.score
    observe = monitor.observe
    clock = time.perf_counter_ns
    it = iter(range(1 << 62))

    def op() -> object:
        np.copyto(x, pool[next(it) % len(pool)])
        t0 = clock()
        score(x, out)
        observe(MODEL, version, x, out, clock() - t0)
        return out

    return op


def _observe_only() -> Op:
    """The hook alone, on already scored rows: its absolute cost per call."""
    from gateway.monitoring import Monitor, MonitorOptions

    rt, version, pool = _runtime_and_pool(4)
    ref = _references(quick=True)
    monitor = Monitor(MonitorOptions(interval_s=0.05, feature_sample=FEATURE_SAMPLE, score_sample=SCORE_SAMPLE))
    monitor.watch(MODEL, version, score_reference=ref.scores, feature_reference=ref.features)
    x = pool[0]
    out = rt.score(x, np.empty(CANDIDATES, dtype=np.float32))
    observe = monitor.observe

    def op() -> object:
        observe(MODEL, version, x, out, 100_000)
        return out

    return op


# ---------------------------------------------------------------------------------------------- whole pipeline
class _PipelineRig:
    """One pipeline over the demo models, its traffic, and a monitor watching all 22 models with references recorded
    from the same pipeline (scores and feature rows, with the monitor's sampling)."""

    def __init__(self, quick: bool) -> None:
        from gateway.engine import Engine
        from gateway.errors import ScoregateError
        from gateway.monitoring import Monitor, ReferenceRecorder
        from gateway.pipeline import AdRequest, Pipeline

        self.engine = Engine.from_directory(DEMO_DIR / "models")
        self.pipeline = p = Pipeline.for_demo(self.engine, DEMO_DIR)
        self._requests = [AdRequest(i, context=i) for i in range(p.features.n_contexts)]
        self.failed = 0
        self._error = ScoregateError
        self._next = iter(range(1 << 62))
        recorder = ReferenceRecorder({m: p.model_features(m) for m in p.spec.models()})
        p.attach_recorder(recorder)
        calls = PIPELINE_REFERENCE_CALLS // (4 if quick else 1)
        for _ in range(calls):
            self.op()
        p.detach_monitor()
        self.references = recorder.references(calls // 8, calls // 4)  # 8 score spans, 4 feature spans
        self.monitor = Monitor()  # the defaults: worker every second, one request in two staged

    def op(self) -> object:
        try:
            return self.pipeline.run(self._requests[next(self._next) % len(self._requests)])
        except self._error:  # a budget spent before full scoring on an overloaded machine: counted, not fatal
            self.failed += 1
            return None

    def run(self, seconds: float, monitored: bool) -> Measurement:
        """Saturate the pipeline (closed loops) for ``seconds``, with the monitor attached or not. With it, the
        worker's backlog is drained inside the timed window, so this iteration pays for what it staged."""
        p = self.pipeline
        if monitored:
            p.attach_monitor(self.monitor, self.references)
        else:
            p.detach_monitor()
        start = time.perf_counter()
        m = closed_loop_threads(self.op, seconds * PIPELINE_ITERATION_SCALE, PIPELINE_THREADS)
        if monitored:
            p.detach_monitor()
            self.monitor.step()
        return Measurement(m.latencies_ns, time.perf_counter() - start)


@functools.cache
def _rig() -> _PipelineRig:
    return _PipelineRig(_RUN["quick"])


def _pipeline_case(monitored: bool) -> Case:
    params = {"models": 22, "candidates": CANDIDATES, "threads": PIPELINE_THREADS}
    return Case(
        "pipeline_monitor_on" if monitored else "pipeline_monitor_off",
        params,
        lambda: _rig().op,
        group="pipeline_overhead",
        runner=lambda op, seconds: _rig().run(seconds, monitored),
    )


def _cases(quick: bool) -> list[Case]:
    _RUN["quick"] = quick
    params = {"model": MODEL, "batch": CANDIDATES}
    return [
        _pipeline_case(monitored=False),
        _pipeline_case(monitored=True),
        Case("monitor_off", params, _off, group="overhead"),
        Case("monitor_on", params, _on, group="overhead"),
        Case("observe_only", params, _observe_only),
    ]


# ---------------------------------------------------------------------------------------------- replays
@dataclass(frozen=True)
class _Refs:
    scores: Any
    features: Any
    calibration: tuple[float, int]


class _Model:
    """The exported model and the marketplace it was trained on."""

    def __init__(self) -> None:
        from gateway.runtime import ModelRuntime
        from models.demo import load_demo_manifests
        from models.demo.inputs import feature_columns, world_for_seed

        self.manifest = {m.name: m for m in load_demo_manifests(DEMO_DIR)}[MODEL]
        path = DEMO_DIR / "models" / MODEL / self.manifest.version / self.manifest.onnx_file
        self.runtime = ModelRuntime.load(path, name=MODEL)
        self.version = self.manifest.version
        self.columns = feature_columns(self.manifest)
        self.world = world_for_seed(self.manifest.seed)
        self.out = np.empty(CANDIDATES, dtype=np.float32)
        self.latency_ns = 0

    def stream(self, seed: int, duration_s: float, drifts: tuple[Any, ...] = ()) -> Any:
        from models.synth import RequestStream, StreamConfig

        cfg = StreamConfig(rate_rps=RATE_RPS, duration_s=duration_s, n_candidates=CANDIDATES, seed=seed, drifts=drifts)
        return RequestStream(self.world, cfg)

    def requests(self, stream: Any) -> Iterator[tuple[Any, F32, F32]]:
        """(request, x, scores) per request; ``scores`` is reused: copy what you keep. The scoring call's
        latency is in :attr:`latency_ns` until the next request."""
        for r in stream:
            x = np.ascontiguousarray(stream.features(r)[:, self.columns])
            out = self.out[: x.shape[0]]
            t0 = time.perf_counter_ns()
            self.runtime.score(x, out)
            self.latency_ns = time.perf_counter_ns() - t0
            yield r, x, out


@functools.lru_cache(maxsize=2)
def _references(quick: bool) -> _Refs:
    """Validation references: a clean stream replayed through the model (seed 1000)."""
    from gateway.monitoring import Reference, calibration_metrics

    m = _Model()
    n_req = (8 if quick else 16) * FEATURE_SPAN_REQUESTS
    scores, feats, shown_p, shown_y = [], [], [], []
    stream = m.stream(1000, n_req / RATE_RPS * 1.3)
    for i, (r, x, out) in enumerate(m.requests(stream)):
        if i >= n_req:
            break
        scores.append(out[:SCORE_SAMPLE].copy())
        feats.append(x[:FEATURE_SAMPLE].copy())
        top = np.argsort(-out)[:SHOWN]
        shown_p.append(out[top].astype(np.float64))
        shown_y.append(stream.outcomes(r, r.candidate_ad_ids[top]).click)
    score_ref = Reference.record(("score",), scores, span_rows=SCORE_SPAN_REQUESTS * SCORE_SAMPLE)
    feature_ref = Reference.record(m.manifest.feature_names, feats, span_rows=FEATURE_SPAN_REQUESTS * FEATURE_SAMPLE)
    cal = calibration_metrics(np.concatenate(shown_p), np.concatenate(shown_y))
    # The requests at validation are sent in order, as live ones: spans keep their request structure.
    return _Refs(score_ref, feature_ref, (cal.ratio, cal.positives))


def _replay(
    m: _Model, refs: _Refs, stream: Any, n_requests: int, onset: int | None = None
) -> tuple[Any, dict[str, int | None]]:
    """Replay a stream through a stepped Monitor; labels of the shown ads arrive within half the maturity window.

    Returns the monitor and, per detector, the request index of its first alarm (None: never).
    """
    from gateway.monitoring import Monitor, MonitorOptions

    options = MonitorOptions(
        interval_s=0, feature_sample=FEATURE_SAMPLE, score_sample=SCORE_SAMPLE, maturity_s=MATURITY_S
    )
    monitor = Monitor(options)
    monitor.watch(
        MODEL, m.version, score_reference=refs.scores, feature_reference=refs.features,
        calibration_reference=refs.calibration,
    )  # fmt: skip
    w = monitor.watched(MODEL, m.version)
    drift = monitor.calibration.drift(MODEL)
    assert drift is not None and w.shift is not None and w.drift is not None
    first: dict[str, int | None] = {"score": None, "features": None, "calibration": None}
    rng = np.random.default_rng(stream.config.seed + 77)
    pending: list[tuple[float, int]] = []
    step_every = 10
    for i, (r, x, out) in enumerate(m.requests(stream)):
        if i >= n_requests:
            break
        monitor.observe(MODEL, m.version, x, out, m.latency_ns)
        top = np.argsort(-out)[:SHOWN]
        ids = r.request_id * 8 + np.arange(SHOWN)
        monitor.record_impressions(MODEL, ids, out[top], at=r.send_time_s)
        clicks = stream.outcomes(r, r.candidate_ad_ids[top]).click
        for k in np.flatnonzero(clicks):
            pending.append((r.send_time_s + rng.uniform(0, MATURITY_S / 2), int(ids[k])))
        if i % step_every == step_every - 1:
            now = r.send_time_s
            pending.sort()
            while pending and pending[0][0] <= now:
                at, rid = pending.pop(0)
                monitor.record_label(rid, at=at)
            monitor.step(now)
            for name, alarmed in (("score", w.shift.alarm), ("features", w.drift.alarm), ("calibration", drift.alarm)):
                if alarmed and first[name] is None and (onset is None or i >= onset):
                    first[name] = i
    return monitor, first


# ---------------------------------------------------------------------------------------------- evaluations
def _drift_figures(quick: bool) -> dict[str, float]:
    from models.synth import BrokenFeature, CtrShift, FeatureShift

    m = _Model()
    refs = _references(quick)
    figures: dict[str, float] = {}
    every = _every()
    onset = FEATURE_SPAN_REQUESTS * every + 200  # after the detectors have filled their first span
    after = (2_500 if quick else 6_000) * every
    ctr_after = 6_000 if quick else 15_000
    feature = "ad.quality"
    broken = "user.hist_ctr"
    onset_s = onset / RATE_RPS
    sizes = ("small", "medium", "large")
    kinds: dict[str, tuple[Any, ...]] = {
        "feature_shift": tuple(FeatureShift(feature, onset_s, mag) for mag in (0.1, 0.3, 1.0)),
        "broken_feature": tuple(BrokenFeature(broken, onset_s, mag) for mag in (0.1, 0.3, 1.0)),
        "ctr_shift": tuple(CtrShift(onset_s, mag) for mag in (0.1, 0.3, 0.7)),
    }
    missed = {False: 0, True: 0}  # by "of the two larger magnitudes"
    for kind, drifts in kinds.items():
        for size, d in zip(sizes, drifts, strict=True):
            n = onset + (ctr_after if kind == "ctr_shift" else after)
            stream = m.stream(2000 + len(figures), n / RATE_RPS * 1.5, (d,))
            # Requests are indexed from 0; the drift starts at the first request sent at or after onset_s.
            start = next(i for i, r in enumerate(stream) if r.send_time_s >= onset_s)
            _, first = _replay(m, refs, stream, n, onset=start)
            hits = [v for v in first.values() if v is not None]
            figures[f"drift_delay_requests_{kind}_{size}"] = float(min(hits) - start) if hits else -1.0
            if not hits:
                missed[size != "small"] += 1
    figures["drift_missed_small"] = float(missed[False])
    figures["drift_missed_large"] = float(missed[True])
    clean_requests = 0
    alarms = 0
    worst = 0.0
    for seed in range(3000, 3002 if quick else 3006):
        n = (4_000 if quick else 12_000) * _every()
        monitor, _ = _replay(m, refs, m.stream(seed, n / RATE_RPS * 1.2), n)
        w = monitor.watched(MODEL, m.version)
        drift = monitor.calibration.drift(MODEL)
        assert w.shift is not None and w.drift is not None and drift is not None
        alarms += w.shift.alarms + w.drift.detector.alarms + drift.alarms
        clean_requests += min(n, w.calls)
        ratios = [float(e.ratio.max()) for e in (*w.shift.history, *w.drift.detector.history)]
        ratios += [abs(z) / drift.z for _, _, z in drift.history]
        worst = max(worst, *ratios)
    figures["drift_clean_requests"] = float(clean_requests)
    figures["drift_false_alarms_per_million"] = alarms / clean_requests * 1e6
    figures["drift_clean_max_ratio"] = worst
    figures["drift_false_alarm_budget_per_million"] = _designed_false_alarms_per_million(refs)
    return figures


def _every() -> int:
    """The monitor's default request sampling (``MonitorOptions.sample_every``), which the replays use."""
    from gateway.monitoring import MonitorOptions

    return MonitorOptions().sample_every


def _designed_false_alarms_per_million(refs: _Refs) -> float:
    """What the thresholds were set for: per million requests, evaluations x columns x alpha (PSI alone; the
    detector also needs JS past its threshold, so this is an upper bound), plus the calibration z-test."""
    from statistics import NormalDist

    from gateway.monitoring import MonitorOptions
    from gateway.monitoring.reference import DEFAULT_ALPHA

    options = MonitorOptions()
    score_evals = 1e6 / (SCORE_SPAN_REQUESTS * options.sample_every / options.windows)
    feature_evals = 1e6 / (FEATURE_SPAN_REQUESTS * options.sample_every / options.feature_windows)
    calibration_evals = 1e6 * SHOWN / 2_000  # RatioDrift windows of 2,000 matured impressions
    p_z = 2 * (1 - NormalDist().cdf(5.0))
    return (score_evals + feature_evals * len(refs.features.names)) * DEFAULT_ALPHA + calibration_evals * p_z


def _calibration_figures(quick: bool, snapshot_path: Path | None) -> dict[str, float]:
    """Random shown impressions (no selection by score), labels from the marketplace's truth, bad input injected."""
    from gateway.monitoring import Monitor, MonitorOptions, calibration_metrics

    m = _Model()
    n = 6_000 if quick else 20_000
    shown = 8
    figures: dict[str, float] = {}
    refs = _references(quick)
    options = MonitorOptions(
        interval_s=0, feature_sample=FEATURE_SAMPLE, score_sample=SCORE_SAMPLE, maturity_s=MATURITY_S, min_positives=50
    )
    monitor = Monitor(options)
    monitor.watch(MODEL, m.version, score_reference=refs.scores, feature_reference=refs.features)
    monitor.watch("pctr_gbdt_x1.5", m.version)
    stream = m.stream(4000, n / RATE_RPS * 1.2)
    rng = np.random.default_rng(4000)
    ps, ys, truth = [], [], []
    injected = {"unknown_label": 0, "duplicate_label": 0, "late_label": 0, "nonfinite_score": 0}
    labels: list[tuple[float, int]] = []
    last = 0.0
    for i, (r, x, out) in enumerate(m.requests(stream)):
        if i >= n:
            break
        monitor.observe(MODEL, m.version, x, out, m.latency_ns)
        pick = rng.choice(out.shape[0], size=shown, replace=False)
        ids = r.request_id * 16 + np.arange(shown)
        scores = out[pick].astype(np.float64)
        segment = "ctv" if r.context.device == 2 else "web"
        if i % 500 == 7:  # a NaN score from a broken caller: counted, dropped
            scores = scores.copy()
            scores[0] = np.nan
            injected["nonfinite_score"] += 2  # both models get the NaN
        monitor.record_impressions(MODEL, ids, scores, segment, at=r.send_time_s)
        monitor.record_impressions("pctr_gbdt_x1.5", ids, np.minimum(scores * 1.5, 1.0), segment, at=r.send_time_s)
        o = stream.outcomes(r, r.candidate_ad_ids[pick])
        finite = np.isfinite(scores)
        ps.append(scores[finite])
        ys.append(o.click[finite])
        truth.append(o.p_click[finite])
        for k in np.flatnonzero(o.click):
            labels.append((r.send_time_s + rng.uniform(0.0, MATURITY_S * 0.9), int(ids[k])))
            if not finite[k]:  # the click of an impression the join dropped (NaN score): unknown to it
                injected["unknown_label"] += 1
            if i % 97 == 0:
                labels.append((r.send_time_s + MATURITY_S * 0.95, int(ids[k])))
                injected["duplicate_label" if finite[k] else "unknown_label"] += 1
        if i % 300 == 11:
            labels.append((r.send_time_s, 10**15 + i))
            injected["unknown_label"] += 1
        if i % 400 == 13 and not o.click[0]:
            labels.append((r.send_time_s + MATURITY_S * 1.5, int(ids[0])))
            injected["late_label"] += 1
        last = r.send_time_s
        if i % 20 == 19:
            labels.sort()
            while labels and labels[0][0] <= last:
                at, rid = labels.pop(0)
                monitor.record_label(rid, at=at)
            monitor.step(last)
    for at, rid in sorted(labels):
        monitor.record_label(rid, at=at)
    monitor.step(last + 10 * MATURITY_S)
    p, y, t = np.concatenate(ps), np.concatenate(ys), np.concatenate(truth)
    offline = calibration_metrics(p, y)
    online = monitor.calibration.report(MODEL)
    bad = monitor.calibration.report("pctr_gbdt_x1.5")
    figures["calibration_impressions"] = float(online.n)
    figures["calibration_ratio"] = online.ratio
    figures["calibration_ece"] = online.ece
    figures["calibration_ratio_rel_err"] = abs(online.ratio / offline.ratio - 1.0)
    figures["calibration_ece_rel_err"] = abs(online.ece / offline.ece - 1.0)
    figures["calibration_ratio_vs_truth"] = float(p.mean() / t.mean())
    figures["calibration_flagged_good"] = float(online.flagged)
    figures["miscalibrated_ratio"] = bad.ratio
    figures["miscalibrated_flagged"] = float(bad.flagged)
    counters = monitor.join.counters
    figures["bad_input_counted"] = float(all(getattr(counters, k) == v for k, v in injected.items()))
    if snapshot_path is not None:
        monitor.write_snapshot(snapshot_path)
    return figures


class _Rollbacks:
    """The lifecycle's side of the seam, as the suite sees it: remembers what it was asked to roll back."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def rollback(self, model: str, candidate_version: str, reason: str) -> None:
        self.calls.append((model, candidate_version, reason))


def _regression_figures(quick: bool) -> dict[str, float]:
    """Canary on 10 % of requests; live scores the canary's requests in shadow (same rows)."""
    from gateway.monitoring import GateDecision, RegressionGate
    from gateway.runtime import ModelRuntime

    m = _Model()
    path = DEMO_DIR / "models" / MODEL / m.version / m.manifest.onnx_file
    canary_rt = ModelRuntime.load(path, name=MODEL, version="2")
    cand = np.empty(CANDIDATES, dtype=np.float32)
    figures: dict[str, float] = {}

    def trial(seed: int, factor: float, limit: int) -> tuple[GateDecision, int, int]:
        handler = _Rollbacks()
        gate = RegressionGate(MODEL, m.version, "2", on_rollback=handler)
        canary_requests = 0
        stream = m.stream(seed, limit * 12 / RATE_RPS)
        for r, x, live in m.requests(stream):
            if (r.request_id * 2654435761) % 10:  # 10 % of requests go to the canary
                continue
            out = cand[: x.shape[0]]
            canary_rt.score(x, out)
            if factor != 1.0:
                np.minimum(out * np.float32(factor), np.float32(1.0), out=out)
            canary_requests += 1
            if gate.observe(live, out) is not GateDecision.CONTINUE or canary_requests >= limit:
                break
        return gate.decision, canary_requests, len(handler.calls)

    decision, served, calls = trial(5000, 1.2, 20_000)
    figures["bad_canary_rollback_requests"] = float(served if decision is GateDecision.ROLLBACK else float("inf"))
    figures["bad_canary_rollback_calls"] = float(calls)
    false_rollbacks = 0
    for k in range(20):
        decision, _, _ = trial(6000 + k, 1.0, 300 if quick else 2_000)
        false_rollbacks += decision is GateDecision.ROLLBACK
    figures["good_canary_false_rollbacks"] = float(false_rollbacks)
    figures["good_canary_trials"] = 20.0
    return figures


def _worker_cost_us(quick: bool) -> float:
    """CPU microseconds of worker time (``Monitor.step``) per observed 200-candidate request, on real scores."""
    from gateway.monitoring import Monitor, MonitorOptions

    m = _Model()
    refs = _references(quick)
    monitor = Monitor(MonitorOptions(interval_s=0, feature_sample=FEATURE_SAMPLE, score_sample=SCORE_SAMPLE))
    monitor.watch(MODEL, m.version, score_reference=refs.scores, feature_reference=refs.features)
    batches = [
        (x.copy(), out.copy()) for _, (_, x, out) in zip(range(100), m.requests(m.stream(7000, 10.0)), strict=False)
    ]
    spent = 0.0
    rounds = 20 if quick else 100
    for _ in range(rounds):
        for x, out in batches:
            monitor.observe(MODEL, m.version, x, out, 100_000)
        t0 = time.thread_time()  # CPU time: the worker's yields must not count the other threads' turns
        monitor.step()
        spent += time.thread_time() - t0
    return spent / (rounds * len(batches)) * 1e6


def _figures(results: list[Result]) -> dict[str, float]:
    quick = _RUN["quick"]
    by = {r.name: r for r in results}
    on, off = by["pipeline_monitor_on"], by["pipeline_monitor_off"]
    out = {
        "monitoring_on_over_off_tput": on.throughput_per_s / off.throughput_per_s,
        "monitoring_on_over_off_p50": on.percentile_us(50.0) / off.percentile_us(50.0),
        "monitoring_on_over_off_p99": on.percentile_us(99.0) / off.percentile_us(99.0),
        "pipeline_rps_monitor_off": off.throughput_per_s,
        "scoring_call_on_over_off_tput": by["monitor_on"].throughput_per_s / by["monitor_off"].throughput_per_s,
        "scoring_call_on_over_off_p50": by["monitor_on"].percentile_us(50.0) / by["monitor_off"].percentile_us(50.0),
        "observe_p50_us": by["observe_only"].percentile_us(50.0),
        "worker_us_per_request": _worker_cost_us(quick),
    }
    # What a saturated machine would pay, where no spare core hides the worker: the hook's and the worker's CPU
    # per request over the scoring call's own time (robust where the throughput ratio is at the mercy of load).
    out["monitoring_cost_estimate_pct"] = (
        100.0 * (out["observe_p50_us"] + out["worker_us_per_request"]) / by["monitor_off"].percentile_us(50.0)
    )
    out.update(_drift_figures(quick))
    snapshot = ROOT / "perf" / "out" / f"monitoring{'-quick' if quick else ''}-snapshot.json"
    out.update(_calibration_figures(quick, snapshot))
    out.update(_regression_figures(quick))
    return out


SUITE = Suite(
    name="monitoring",
    description="monitoring overhead on the scoring path; drift, calibration and canary-regression detection",
    cases=_cases,
    figures=_figures,
    prepare=_prepare,
)
