"""A server's metrics endpoint: the monitor follows the versions an engine serves through hot swaps, and a scrape
over HTTP shows each version's calls, errors and latency."""

from __future__ import annotations

import urllib.request
from collections.abc import Callable

import numpy as np
import pytest

from gateway.engine import Engine
from gateway.errors import ScoregateError
from gateway.monitoring import Monitor, MonitorOptions
from gateway.monitoring.endpoint import MetricsEndpoint
from gateway.runtime import ModelRuntime


def _runtime(model: bytes, version: str) -> ModelRuntime:
    return ModelRuntime.load(model, name="pctr", version=version)


def _scrape(endpoint: MetricsEndpoint) -> str:
    with urllib.request.urlopen(endpoint.url, timeout=10) as resp:
        assert resp.status == 200
        return str(resp.read().decode())


def _series(text: str, name: str, version: str) -> float:
    """The value of ``scoregate_<name>{model="pctr",stage="serving",version=...}`` in a scrape (0 if absent)."""
    line = f'scoregate_{name}{{model="pctr",stage="serving",version="{version}"}} '
    for row in text.splitlines():
        if row.startswith(line):
            return float(row[len(line) :])
    return 0.0


def test_the_monitor_follows_versions_through_a_hot_swap(
    logistic: tuple[bytes, np.ndarray, float], batch: Callable[[int], np.ndarray]
) -> None:
    engine = Engine([_runtime(logistic[0], "1")])
    monitor = Monitor(MonitorOptions(interval_s=0))
    try:
        monitor.follow(engine)
        x = batch(8)
        for _ in range(3):
            engine.score("pctr", x)
        monitor.step()
        assert monitor.watched("pctr", "1").calls == 3
        engine.add(_runtime(logistic[0], "2"))  # version 2 goes live, version 1 drains and closes
        engine.score("pctr", x)  # before the next step: counted as unwatched
        monitor.step()
        assert monitor.unwatched_calls == 1
        for _ in range(2):
            engine.score("pctr", x)
        monitor.step()
        assert monitor.watched("pctr", "2").calls == 2
        assert monitor.watched("pctr", "2").key.stage == "serving"
        # Version 1 serves no more and saw no call in the last step: dropped from the watch list (its counters stay
        # for MonitorOptions.retired_series_s).
        with pytest.raises(KeyError):
            monitor.watched("pctr", "1")
        assert monitor.counters.get("model_requests", ("pctr", "1", "serving")) == 3
    finally:
        monitor.detach(engine)
        monitor.close()
        engine.close()


def test_a_retired_versions_series_are_removed_after_the_retention(
    logistic: tuple[bytes, np.ndarray, float], batch: Callable[[int], np.ndarray]
) -> None:
    """A gateway that swaps all day must not export every version it ever served: a version that stopped serving
    keeps its series for ``retired_series_s`` (Prometheus scrapes their last values), then they go; its rollout
    state stays."""
    now = [1000.0]
    engine = Engine([_runtime(logistic[0], "1")])
    monitor = Monitor(MonitorOptions(interval_s=0, retired_series_s=60.0), clock=lambda: now[0])
    try:
        monitor.follow(engine)
        x = batch(8)
        engine.score("pctr", x)
        engine.score("pctr", x[:1])
        with pytest.raises(ScoregateError):
            engine.score("pctr", x[:, :3])
        monitor.step()
        monitor.counters.set("rollout_state", ("pctr", "1", "rolled_back"), 1.0)
        engine.add(_runtime(logistic[0], "2"))
        monitor.step()  # version 1 saw no call in this step: dropped from the watch list, its series kept
        engine.score("pctr", x)
        monitor.step()
        v1 = ("pctr", "1", "serving")
        assert monitor.counters.get("model_requests", v1) == 2
        assert monitor.counters.get("model_errors", (*v1, "InputShapeError")) == 1
        assert [(k.model, k.version) for k in monitor.latency.series()] == [("pctr", "1"), ("pctr", "2")]
        now[0] += 61
        monitor.step()
        assert monitor.counters.get("model_requests", v1) == 0
        assert monitor.counters.series("model_errors") == []
        assert [(k.model, k.version) for k in monitor.latency.series()] == [("pctr", "2")]
        assert monitor.counters.get("model_requests", ("pctr", "2", "serving")) == 1
        assert monitor.counters.get("rollout_state", ("pctr", "1", "rolled_back")) == 1.0
    finally:
        monitor.detach(engine)
        monitor.close()
        engine.close()


def test_a_scrape_shows_each_served_version_its_errors_and_latency(
    logistic: tuple[bytes, np.ndarray, float], batch: Callable[[int], np.ndarray]
) -> None:
    engine = Engine([_runtime(logistic[0], "1")])
    with MetricsEndpoint(engine, port=0, options=MonitorOptions(interval_s=0)) as endpoint:
        assert endpoint.url == f"http://127.0.0.1:{endpoint.port}/metrics" and endpoint.port > 0
        for rows in (1, 16, 16):
            engine.score("pctr", batch(rows))
        with pytest.raises(ScoregateError):
            engine.score("pctr", batch(4).astype(np.float64))  # wrong dtype: a clear error, counted by kind
        endpoint.monitor.step()
        text = _scrape(endpoint)
        assert _series(text, "model_requests_total", "1") == 3
        assert _series(text, "model_rows_total", "1") == 33
        assert _series(text, "model_latency_seconds_count", "1") == 3
        errors = 'scoregate_model_errors_total{kind="InputDtypeError",model="pctr",stage="serving",version="1"} 1.0'
        assert errors in text
        engine.add(_runtime(logistic[0], "2"))
        endpoint.monitor.step()  # the step that sees version 2 serving watches it
        engine.score("pctr", batch(2))
        endpoint.monitor.step()
        text = _scrape(endpoint)
        assert _series(text, "model_requests_total", "2") == 1
        assert _series(text, "model_requests_total", "1") == 3  # counters of the retired version stay
    assert engine.monitor is None  # closed: the engine's hook is off again
    with pytest.raises(OSError):
        urllib.request.urlopen(endpoint.url, timeout=2)
    engine.close()


def test_a_port_in_use_is_a_clear_error_and_leaves_the_engine_unobserved(
    logistic: tuple[bytes, np.ndarray, float],
) -> None:
    engine = Engine([_runtime(logistic[0], "1")])
    with MetricsEndpoint(engine, port=0, options=MonitorOptions(interval_s=0)) as first:
        with pytest.raises(OSError):
            MetricsEndpoint(engine, port=first.port, options=MonitorOptions(interval_s=0))
        assert engine.monitor is first.monitor  # the failed one did not take the hook
    engine.close()
