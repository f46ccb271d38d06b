"""Monitor assembly: staging on the request path, stepping by hand, the worker, Prometheus, snapshots, reports."""

from __future__ import annotations

import json
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from gateway.monitoring import Monitor, MonitorOptions, Reference, RegressionGate
from gateway.monitoring.metrics import serve_metrics
from gateway.monitoring.report import plot_all, render_text
from gateway.monitoring.worker import Worker


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _monitor(**options: object) -> tuple[Monitor, FakeClock, np.random.Generator]:
    rng = np.random.default_rng(0)
    clock = FakeClock()
    monitor = Monitor(MonitorOptions(interval_s=0, maturity_s=10.0, min_positives=1, **options), clock)  # type: ignore[arg-type]
    scores = Reference.record(("score",), [rng.beta(2, 20, size=20_000)], span_rows=2_000)
    feats = Reference.record(("f0", "f1"), [rng.normal(size=(8_000, 2))], span_rows=800)
    monitor.watch("pctr", "1", score_reference=scores, feature_reference=feats, calibration_reference=(1.0, 1000))
    return monitor, clock, rng


def test_observe_only_stages_and_step_aggregates() -> None:
    monitor, _, rng = _monitor()
    x = rng.normal(size=(100, 2)).astype(np.float32)
    out = rng.beta(2, 20, size=100).astype(np.float32)
    out[0] = np.nan
    for _ in range(30):
        monitor.observe("pctr", "1", x, out, 50_000)
    monitor.observe("unknown", "1", x, out, 50_000)
    w = monitor.watched("pctr", "1")
    assert w.rows == 0 and w.shift is not None and w.shift.rows == 0  # nothing aggregated before a step
    monitor.step()
    assert (w.calls, w.rows, w.nonfinite_scores, monitor.unwatched_calls) == (30, 3_000, 30, 1)
    # The first scores and feature rows of each call are binned (the NaN among them is skipped).
    o = monitor.options
    staged = len(range(0, 30, o.sample_every))  # one call in sample_every is staged
    assert w.shift.rows == staged * o.score_sample and w.shift.nonfinite == staged
    assert w.drift is not None and w.drift.detector.rows == staged * o.feature_sample
    pct = monitor.latency.percentiles_us(w.key)
    assert pct["count"] == 30 and pct["p50"] == pytest.approx(50.0, rel=1e-3)


def test_full_staging_drops_rows_and_counts_them() -> None:
    monitor, _, rng = _monitor(staging_rows=250, score_sample=0, sample_every=1)
    x = rng.normal(size=(100, 2)).astype(np.float32)
    out = rng.random(100).astype(np.float32)
    for _ in range(3):
        monitor.observe("pctr", "1", x, out, 1_000)
    monitor.step()
    w = monitor.watched("pctr", "1")
    assert (w.rows, w.dropped) == (300, 100) and w.shift is not None and w.shift.rows == 200
    assert monitor.counters.get("monitor_dropped_rows", ("pctr", "1")) == 100


def test_labels_join_on_the_injected_clock_and_reach_calibration() -> None:
    monitor, clock, _ = _monitor()
    monitor.record_impressions("pctr", [1, 2, 3, 4], [0.5, 0.5, 0.5, 0.5], "web")
    clock.now = 5.0
    monitor.record_label(1)
    monitor.record_label(1)
    monitor.record_label(77)
    monitor.step()
    assert monitor.calibration.groups() == []  # not matured yet
    clock.now = 11.0
    monitor.step()
    report = monitor.calibration.report("pctr", "web")
    assert (report.n, report.positives, report.ratio) == (4, 1, 2.0)
    c = monitor.join.counters
    assert (c.duplicate_label, c.unknown_label) == (1, 1)
    assert monitor.counters.get("calibration_ratio", ("pctr", "web")) == 2.0


def test_worker_steps_on_its_own_and_survives_errors() -> None:
    stepped = threading.Event()
    calls = {"n": 0}

    def step() -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("one bad batch")
        stepped.set()

    worker = Worker(step, interval_s=0.001)
    try:
        assert stepped.wait(10.0)
    finally:
        worker.close()
    assert worker.errors == 1 and isinstance(worker.last_error, RuntimeError) and not worker.running
    assert not Worker(step, interval_s=0).running  # <= 0: stepped by hand


def test_prometheus_endpoint_serves_conventional_names() -> None:
    monitor, _, rng = _monitor()
    x = rng.normal(size=(10, 2)).astype(np.float32)
    out = rng.random(10).astype(np.float32)
    monitor.observe("pctr", "1", x, out, 120_000)
    monitor.count_error("pctr", "1", "full_scoring", "invalid_input")
    monitor.count_fallback("pctr", "static_prior")
    monitor.record_cache("features", hits=9, misses=1)
    monitor.record_feature_health("user", lookups=10, missing=2, stale=1)
    monitor.record_queue_delay("full_scoring", 30_000)
    monitor.set_rollout_state("pctr", "1", "canary")
    monitor.set_rollout_state("pctr", "1", "live")
    monitor.step()
    server, thread = serve_metrics(monitor.collector(), 0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/metrics", timeout=10) as resp:
            text = resp.read().decode()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    labels = 'model="pctr",stage="full_scoring",version="1"'
    assert f'scoregate_model_latency_seconds_bucket{{le="0.00025",{labels}}} 1.0' in text
    assert f"scoregate_model_requests_total{{{labels}}} 1.0" in text
    assert f'scoregate_model_batch_size_bucket{{le="16",{labels}}} 1.0' in text
    errors = 'scoregate_model_errors_total{kind="invalid_input",model="pctr",stage="full_scoring",version="1"} 1.0'
    assert errors in text
    assert 'scoregate_fallback_total{model="pctr",tier="static_prior"} 1.0' in text
    assert 'scoregate_cache_hits_total{cache="features"} 9.0' in text
    assert 'scoregate_feature_missing_total{group="user"} 2.0' in text
    assert 'scoregate_queue_delay_seconds_count{stage="full_scoring"} 1.0' in text
    assert 'scoregate_rollout_state{model="pctr",state="live",version="1"} 1.0' in text
    assert 'scoregate_rollout_state{model="pctr",state="canary",version="1"} 0.0' in text


def test_snapshot_renders_as_text_json_and_plots(tmp_path: Path) -> None:
    monitor, clock, rng = _monitor()
    x = rng.normal(size=(100, 2)).astype(np.float32)
    for _ in range(60):
        monitor.observe("pctr", "1", x, rng.beta(2, 20, size=100).astype(np.float32), int(rng.integers(10_000, 90_000)))
    monitor.record_impressions("pctr", np.arange(50), rng.uniform(0.1, 0.3, 50))
    for rid in range(0, 50, 5):
        monitor.record_label(rid)
    gate = monitor.add_gate(RegressionGate("pctr", "1", "2"))
    gate.observe(np.full(10, 0.1), np.full(10, 0.1))
    clock.now = 20.0
    monitor.step()
    path = monitor.write_snapshot(tmp_path / "snap.json")
    snap = json.loads(path.read_text())
    assert snap["models"][0]["calls"] == 60 and snap["labels"]["joined"] == 10
    text = render_text(snap)
    assert "pctr" in text and "calibration" in text and "gate pctr 1 -> 2: continue" in text
    pngs = plot_all(snap, tmp_path / "plots")
    assert [p.name for p in pngs] == ["latency.png", "drift.png", "reliability.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_vectorised_hdr_recording_matches_record_value() -> None:
    from gateway.monitoring.latency import new_histogram, record_many

    rng = np.random.default_rng(9)
    values = np.concatenate(
        [rng.integers(1, 10**6, 3_000), rng.lognormal(11, 2, 3_000).astype(np.int64), [0, 1, 2047, 2048, 10**13]]
    )
    one_by_one, vectorised = new_histogram(), new_histogram()
    for v in np.clip(values, 1, 600 * 10**9).tolist():
        one_by_one.record_value(v)
    record_many(vectorised, values)
    assert list(one_by_one.counts) == list(vectorised.counts)
    assert one_by_one.get_total_count() == vectorised.get_total_count() == values.shape[0]
    assert (one_by_one.get_min_value(), one_by_one.get_max_value()) == (
        vectorised.get_min_value(), vectorised.get_max_value(),
    )  # fmt: skip


def test_embedding_outputs_are_counted_and_screened_not_binned() -> None:
    monitor, _, _ = _monitor(sample_every=1)
    monitor.watch("tower", "1")  # no references: latency, rows and non-finite values only
    emb = np.ones((4, 16), np.float32)
    emb[2, 3] = np.nan
    monitor.observe("tower", "1", np.zeros((4, 8), np.float32), emb, 1_000)
    monitor.failed("tower", "1", ValueError("boom"))
    monitor.step()
    w = monitor.watched("tower", "1")
    assert (w.calls, w.rows, w.nonfinite_scores, w.shift) == (1, 4, 1, None)
    assert monitor.counters.get("model_errors", ("tower", "1", "full_scoring", "ValueError")) == 1


def test_whole_requests_stage_per_stage_latencies_and_degraded_counts() -> None:
    monitor, _, _ = _monitor(staging_calls=3)
    monitor.observe_request((1, 2), 3)  # not watching requests yet: ignored
    monitor.watch_requests(("retrieval", "scoring"))
    for i in range(5):  # two beyond the staging buffer: counted, not timed
        monitor.observe_request((1_000 * (i + 1), 2_000), 5_000, degraded=i == 0)
    monitor.step()
    assert (monitor.requests_seen, monitor.requests_degraded) == (5, 1)
    lat = monitor.snapshot()["requests"]["latency_us"]
    assert list(lat) == ["retrieval", "scoring", "total"]
    assert lat["retrieval"]["count"] == 3 and lat["total"]["p50"] == pytest.approx(5.0, rel=0.01)
    assert "pipeline_requests" in {n for n, *_ in _families(monitor)}
    assert "5 answered, 1 degraded" in render_text(monitor.snapshot())


def _families(monitor: Monitor) -> list[tuple[str, ...]]:
    return [(m.name.removeprefix("scoregate_"),) for m in monitor.collector().collect() if m.samples]


def test_reference_recorder_builds_what_the_monitor_compares_with() -> None:
    from gateway.monitoring import ReferenceRecorder

    rng = np.random.default_rng(1)
    options = MonitorOptions(score_sample=8, feature_sample=1)
    recorder = ReferenceRecorder({"pctr": ("f0", "f1")}, options)
    for _ in range(400):
        recorder.observe("pctr", "1", rng.normal(size=(20, 2)).astype(np.float32), rng.random(20, np.float32), 1)
        recorder.observe("tower", "1", np.zeros((1, 3), np.float32), np.zeros((1, 16), np.float32), 1)  # skipped
        recorder.observe("rare", "1", np.zeros((1, 3), np.float32), np.zeros(1, np.float32), 1)
    refs = recorder.references(score_span_calls=50, feature_span_calls=90)
    assert set(refs) == {"pctr", "rare"}
    r = refs["pctr"]
    assert r.scores is not None and r.scores.span_rows == 400  # 50 calls x 8 scores
    assert r.features is not None and r.features.names == ("f0", "f1")
    assert r.features.span_rows == 88  # 90 rounded down to whole windows of the feature detector (8)
    assert refs["rare"].scores is not None and refs["rare"].features is None
    assert recorder.references(score_span_calls=200, feature_span_calls=200)["pctr"].features is None  # < 4 spans
    monitor = Monitor(options)
    monitor.watch("pctr", "1", score_reference=r.scores, feature_reference=r.features)  # accepted as they are
