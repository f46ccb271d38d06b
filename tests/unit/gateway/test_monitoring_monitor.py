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


def _request_rig(
    options: MonitorOptions,
) -> tuple[Monitor, list[tuple[str, str]], tuple[str, ...], np.random.Generator]:
    """A monitor watching a pipeline's request path: a tower (no references), an early-ranking model and three
    full-scoring models; two of those read the whole schema with the same feature reference."""
    rng = np.random.default_rng(3)
    schema = ("u0", "a0", "a1", "c0")
    monitor = Monitor(options)
    whole = Reference.record(schema, [rng.normal(size=(4_000, 4))], span_rows=400)
    part = Reference.record(("a1", "u0"), [rng.normal(size=(4_000, 2))], span_rows=400)
    models = [("tower", "1"), ("early", "1"), ("pctr", "1"), ("pcvr", "2"), ("safety", "1")]
    monitor.watch("tower", "1", stage="retrieval")
    for name, version in models[1:]:
        score_ref = Reference.record(("score",), [rng.beta(2, 20, size=8_000)], span_rows=800)
        monitor.watch(
            name,
            version,
            score_reference=score_ref,
            feature_reference=part if name == "safety" else whole,
        )
    monitor.watch_requests(("retrieval", "early_ranking", "full_scoring", "auction"), models, schema)
    return monitor, models, schema, rng


def test_request_path_stages_every_model_call_once_per_request() -> None:
    from gateway.monitoring import RequestModels

    options = MonitorOptions(interval_s=0, sample_every=1, score_sample=16)
    monitor, _, _, rng = _request_rig(options)
    # The same traffic, binned model by model: what the vectorised request path must reproduce exactly.
    check, _, _, _ = _request_rig(options)
    n_requests, n_early, n_full = 120, 50, 20
    expected: dict[str, list[np.ndarray]] = {"early": [], "pctr": [], "pcvr": [], "safety": []}
    for i in range(n_requests):
        short = i % 10 == 9  # a short request: fewer candidates than the sample
        full = rng.beta(2, 20, size=(3, 8 if short else n_full)).astype(np.float32)
        early = rng.beta(2, 20, size=n_early).astype(np.float32)
        if i == 7:
            full[1, 3] = np.nan  # counted for pcvr, skipped by its detector
        latency = np.array([10_000, 20_000, 30_000, 40_000, 0 if i % 4 == 0 else 50_000], np.int64)  # safety: prior
        features = rng.normal(size=4).astype(np.float32)
        monitor.observe_request((1, 2, 3, 4), 10, latency[4] == 0, RequestModels(
            latency, np.zeros((1, 16), np.float32), early, full, features
        ))  # fmt: skip
        expected["early"].append(early[:16])
        for name, row in zip(("pctr", "pcvr", "safety"), full, strict=True):
            if name != "safety" or latency[4]:
                expected[name].append(row[:16])
    monitor.step()
    for name, version in (("early", "1"), ("pctr", "1"), ("pcvr", "2"), ("safety", "1")):
        w = monitor.watched(name, version)
        values = np.concatenate(expected[name])
        c = check.watched(name, version)
        assert c.shift is not None and w.shift is not None
        c.shift.add(values[np.isfinite(values)])
        assert w.shift.rows == c.shift.rows and np.array_equal(w.shift._sum, c.shift._sum)
        assert [e.psi.tolist() for e in w.shift.history] == [e.psi.tolist() for e in c.shift.history]
    assert monitor.watched("tower", "1").calls == n_requests and monitor.watched("tower", "1").rows == n_requests
    early = monitor.watched("early", "1")
    assert (early.calls, early.rows) == (n_requests, n_requests * n_early)
    safety = monitor.watched("safety", "1")
    assert safety.calls == n_requests - n_requests // 4  # the static prior served the rest: not its calls
    assert monitor.watched("pcvr", "2").nonfinite_scores == 1
    assert monitor.latency.percentiles_us(safety.key)["p50"] == pytest.approx(50.0, rel=1e-3)
    # The request's feature row is binned once for the models sharing a reference over the same columns.
    pctr, pcvr = monitor.watched("pctr", "1"), monitor.watched("pcvr", "2")
    assert pctr.drift is pcvr.drift and pctr.drift is not safety.drift and early.drift is pctr.drift
    assert pctr.drift is not None and pctr.drift.detector.rows == n_requests
    assert safety.drift is not None and safety.drift.names == ("a1", "u0")
    assert monitor.unwatched_calls == 0 and (monitor.requests_seen, monitor.requests_degraded) == (120, 30)


def test_request_path_refuses_unwatched_models_and_features_outside_the_schema() -> None:
    options = MonitorOptions(interval_s=0)
    monitor, models, schema, _ = _request_rig(options)
    with pytest.raises(ValueError, match="watch nobody@1 before its requests"):
        monitor.watch_requests(("scoring",), [*models, ("nobody", "1")], schema)
    with pytest.raises(ValueError, match=r"features \['c0'\] are not in the request's schema"):
        monitor.watch_requests(("scoring",), models, ("u0", "a0", "a1"))


def test_reference_recorder_records_the_request_path_as_the_monitor_stages_it() -> None:
    from gateway.monitoring import ReferenceRecorder, RequestModels

    options = MonitorOptions(score_sample=4)
    recorder = ReferenceRecorder({"early": ("a0",), "pctr": ("a1", "u0")}, options)
    recorder.watch_requests(("scoring",), [("tower", "1"), ("early", "1"), ("pctr", "1")], ("u0", "a0", "a1"))
    rng = np.random.default_rng(4)
    rows = []
    for i in range(200):
        features = rng.normal(size=3).astype(np.float32)
        rows.append(features)
        latency = np.array([1, 1, 0 if i % 2 else 1], np.int64)  # pctr served every other request itself
        full = rng.random((1, 10), np.float32)
        recorder.observe_request((1,), 1, False, RequestModels(latency, np.zeros((1, 8), np.float32),
                                                               rng.random(30, np.float32), full, features))  # fmt: skip
    refs = recorder.references(score_span_calls=10, feature_span_calls=16)
    assert set(refs) == {"early", "pctr"}  # the tower's output is an embedding: no score reference
    early, pctr = refs["early"], refs["pctr"]
    assert early.scores is not None and early.scores.span_rows == 40  # 10 requests x 4 scores
    assert pctr.features is not None and pctr.features.names == ("a1", "u0")
    assert early.features is not None and early.features.span_rows == 16
    expected = Reference.record(("a1", "u0"), [np.stack(rows[::2])[:, [2, 0]]], span_rows=16)
    assert np.array_equal(pctr.features.edges, expected.edges)  # the served requests' rows, its columns
    with pytest.raises(ValueError, match="not in the request's schema"):
        recorder.watch_requests(("scoring",), [("tower", "1"), ("early", "1"), ("pctr", "1")], ("u0", "a1"))
