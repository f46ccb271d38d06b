"""Monitoring wired into the real scoring core: the Monitor attached to an Engine (every ``Engine.score`` observed),
real demo models and marketplace streams, and the ``monitor report`` command."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gateway.engine import Engine
from gateway.monitoring import Monitor, MonitorOptions, Reference
from gateway.runtime import ModelRuntime
from models.demo import load_demo_manifests
from models.demo.inputs import feature_columns, world_for_seed
from models.synth import BrokenFeature, RequestStream, StreamConfig

ROOT = Path(__file__).resolve().parents[2]
MODEL = "pctr_gbdt"


@pytest.fixture(scope="module")
def served(demo_dir: Path) -> tuple[Engine, Any, Any]:
    manifest = {m.name: m for m in load_demo_manifests(demo_dir)}[MODEL]
    rt = ModelRuntime.load(demo_dir / "models" / MODEL / manifest.version / "model.onnx", name=MODEL, version="1")
    return Engine([rt]), manifest, world_for_seed(manifest.seed)


def _requests(engine: Engine, manifest: Any, stream: RequestStream, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    cols = feature_columns(manifest)
    out = []
    for i, r in enumerate(stream):
        if i >= n:
            break
        x = np.ascontiguousarray(stream.features(r)[:, cols])
        out.append((x, engine.score(MODEL, x)))
    return out


def test_monitor_names_a_broken_feature_in_scored_traffic(served: tuple[Engine, Any, Any]) -> None:
    engine, manifest, world = served
    sample = 16
    clean = RequestStream(world, StreamConfig(rate_rps=50, duration_s=40, seed=11))
    ref_batches = _requests(engine, manifest, clean, 1_600)
    features = Reference.record(manifest.feature_names, [x[:sample] for x, _ in ref_batches], span_rows=200 * sample)
    scores = Reference.record(("score",), [s[:64] for _, s in ref_batches], span_rows=100 * 64)
    monitor = Monitor(MonitorOptions(interval_s=0, feature_sample=sample, score_sample=64))
    monitor.watch(MODEL, "1", score_reference=scores, feature_reference=features)
    broken = RequestStream(
        world, StreamConfig(rate_rps=50, duration_s=30, seed=12, drifts=(BrokenFeature("user.hist_ctr", 4.0),))
    )
    cols = feature_columns(manifest)
    out = np.empty(200, np.float32)
    monitor.attach(engine)
    try:
        for i, r in enumerate(broken):
            if i >= 900:
                break
            x = np.ascontiguousarray(broken.features(r)[:, cols])
            engine.score(MODEL, x, out[: x.shape[0]])
            if i % 50 == 49:
                monitor.step()
    finally:
        monitor.detach(engine)
    w = monitor.watched(MODEL, "1")
    assert w.calls == 900 and w.drift is not None and w.drift.alarm
    assert w.drift.top(1)[0].name == "user.hist_ctr"
    assert monitor.latency.percentiles_us(w.key)["count"] == 900


def test_concurrent_scoring_threads_with_the_worker_running(served: tuple[Engine, Any, Any]) -> None:
    engine, manifest, world = served
    stream = RequestStream(world, StreamConfig(rate_rps=50, duration_s=10, seed=13))
    batches = [x for x, _ in _requests(engine, manifest, stream, 64)]
    monitor = Monitor(MonitorOptions(interval_s=0.005))
    monitor.watch(MODEL, "1")
    per_thread = 300

    def run() -> None:
        out = np.empty(200, np.float32)
        for k in range(per_thread):
            x = batches[k % len(batches)]
            engine.score(MODEL, x, out[: x.shape[0]])

    monitor.attach(engine)
    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    monitor.detach(engine)
    monitor.close()
    monitor.step()  # drain what the worker had not taken yet
    w = monitor.watched(MODEL, "1")
    expected_rows = 2 * sum(batches[k % len(batches)].shape[0] for k in range(per_thread))
    assert (w.calls, w.rows, w.dropped) == (2 * per_thread, expected_rows, 0)
    assert monitor.steps > 1


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway", "monitor", "report", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_monitor_report_command(tmp_path: Path) -> None:
    clock = {"t": 0.0}
    monitor = Monitor(MonitorOptions(interval_s=0, maturity_s=5.0, min_positives=1), lambda: clock["t"])
    monitor.watch(MODEL, "1")
    rng = np.random.default_rng(0)
    for _ in range(20):
        monitor.observe(MODEL, "1", np.zeros((4, 3), np.float32), rng.random(4).astype(np.float32), 40_000)
    monitor.record_impressions(MODEL, np.arange(100), np.full(100, 0.2))
    for rid in range(0, 100, 4):
        monitor.record_label(rid)
    monitor.record_label(10_000)
    clock["t"] = 10.0
    monitor.step()
    snap = monitor.write_snapshot(tmp_path / "snap.json")

    text = _cli(str(snap), "--plots", str(tmp_path / "plots"))
    assert text.returncode == 0, text.stderr
    assert "pctr_gbdt" in text.stdout and "unknown_label 1" in text.stdout
    assert "0.800" in text.stdout  # calibration ratio 0.2 / 0.25
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["drift.png", "latency.png", "reliability.png"]

    as_json = _cli(str(snap), "--json")
    assert as_json.returncode == 0, as_json.stderr
    doc = json.loads(as_json.stdout)
    assert doc["calibration"][0]["ratio"] == pytest.approx(0.8) and doc["models"][0]["calls"] == 20

    (tmp_path / "bad.json").write_text("{}")
    bad = _cli(str(tmp_path / "bad.json"))
    assert bad.returncode == 2 and "not a monitor snapshot" in bad.stderr
