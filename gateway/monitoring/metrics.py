"""Prometheus exposition: the monitor's counters, histograms and gauges under conventional names.

Nothing here sits on the request path: the request path stages raw values (:mod:`gateway.monitoring.observer`),
the worker aggregates them, and this collector reads the aggregates when Prometheus scrapes (a custom collector,
so that no ``prometheus_client`` metric object is touched per request). Names (all prefixed ``scoregate_``)::

    model_latency_seconds{model,version,stage}          histogram   per scoring call
    model_requests_total{model,version,stage}           counter     scoring calls
    model_rows_total{model,version,stage}               counter     rows scored
    model_nonfinite_scores_total{model,version,stage}   counter     NaN/inf scores (never binned)
    model_errors_total{model,version,stage,kind}        counter
    model_batch_size{model,version,stage}               histogram   rows per call
    fallback_total{model,tier}                          counter     answers served by a fallback tier
    pipeline_requests_total / pipeline_degraded_total   counters    whole requests; those with a fallback
    request_stage_latency_seconds{stage}                histogram   whole requests per stage, and stage="total"
    queue_delay_seconds{stage}                          histogram
    feature_lookups_total / feature_missing_total / feature_stale_total{group}   counters (rates by division)
    feature_missing_ratio / feature_stale_ratio{group}  gauges
    cache_hits_total / cache_misses_total{cache}        counters;  cache_hit_ratio{cache} gauge
    rollout_state{model,version,state}                  gauge (1 for the current state)
    prediction_psi{model,version} / prediction_shift_alarm{model,version}        gauges
    feature_drift_alarm{model,version} / feature_psi{model,version,feature}      gauges
    calibration_ratio{model,segment} / calibration_ece{model,segment}            gauges
    labels_total{outcome}                               counter     label join outcomes (joined, unknown, ...)
    monitor_dropped_rows_total{model,version}           counter     rows not staged under overload
    monitor_worker_errors_total                         counter     worker steps that raised

:class:`Counters` is the small thread-safe store behind the counters that other parts of the gateway bump directly
(errors, fallbacks, feature health, cache, rollout state); each bump is one dict update under a lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["Counters", "MonitorCollector", "serve_metrics"]

PREFIX = "scoregate_"


class Counters:
    """Named counters and gauges with label tuples. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[str, tuple[str, ...]], float] = {}

    def add(self, name: str, labels: tuple[str, ...], amount: float = 1.0) -> None:
        key = (name, labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def set(self, name: str, labels: tuple[str, ...], value: float) -> None:
        with self._lock:
            self._values[(name, labels)] = value

    def set_many(self, values: Sequence[tuple[str, tuple[str, ...], float]]) -> None:
        """Several :meth:`set` under one lock (a detector's per-feature gauges)."""
        with self._lock:
            for name, labels, value in values:
                self._values[(name, labels)] = value

    def get(self, name: str, labels: tuple[str, ...]) -> float:
        with self._lock:
            return self._values.get((name, labels), 0.0)

    def forget(self, names: Sequence[str], model: str, version: str) -> int:
        """Remove every series of the families ``names`` (labelled model, version, ...) of ``model`` at ``version``;
        returns how many."""
        wanted = set(names)
        with self._lock:
            keys = [k for k in self._values if k[0] in wanted and k[1][:2] == (model, version)]
            for key in keys:
                del self._values[key]
        return len(keys)

    def series(self, name: str) -> list[tuple[tuple[str, ...], float]]:
        with self._lock:
            return sorted((labels, v) for (n, labels), v in self._values.items() if n == name)


# name -> (kind, help, label names). "counter" names are given without the _total suffix.
FAMILIES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "model_requests": ("counter", "Scoring calls.", ("model", "version", "stage")),
    "model_rows": ("counter", "Rows scored.", ("model", "version", "stage")),
    "model_nonfinite_scores": ("counter", "Scores that were NaN or infinite.", ("model", "version", "stage")),
    "model_errors": ("counter", "Scoring errors by kind.", ("model", "version", "stage", "kind")),
    "fallback": ("counter", "Answers served by a fallback tier.", ("model", "tier")),
    "pipeline_requests": ("counter", "Whole requests answered by the pipeline.", ()),
    "pipeline_degraded": ("counter", "Answers where some model fell back or was late.", ()),
    "feature_lookups": ("counter", "Feature lookups.", ("group",)),
    "feature_missing": ("counter", "Feature lookups that found nothing.", ("group",)),
    "feature_stale": ("counter", "Feature lookups older than their freshness bound.", ("group",)),
    "cache_hits": ("counter", "Cache hits.", ("cache",)),
    "cache_misses": ("counter", "Cache misses.", ("cache",)),
    "labels": ("counter", "Label events by join outcome.", ("outcome",)),
    "monitor_dropped_rows": ("counter", "Rows not staged for monitoring (overload).", ("model", "version")),
    "monitor_worker_errors": ("counter", "Monitor worker steps that raised (kept going).", ()),
    "rollout_state": ("gauge", "1 for a version's current rollout state.", ("model", "version", "state")),
    "prediction_psi": ("gauge", "PSI of the score window against the reference.", ("model", "version")),
    "prediction_shift_alarm": ("gauge", "1 while the score distribution has shifted.", ("model", "version")),
    "feature_drift_alarm": ("gauge", "1 while some input feature drifts.", ("model", "version")),
    "feature_psi": ("gauge", "PSI of a feature's window against its reference.", ("model", "version", "feature")),
    "calibration_ratio": ("gauge", "Mean predicted / observed on matured impressions.", ("model", "segment")),
    "calibration_ece": ("gauge", "Expected calibration error (equal-count bins).", ("model", "segment")),
}  # fmt: skip


HistogramSource = Callable[
    [], Iterator[tuple[str, str, tuple[str, ...], tuple[str, ...], list[tuple[str, float]], float]]
]


class MonitorCollector(Collector):
    """Reads :class:`Counters` and the histogram sources at scrape time.

    ``histograms()`` yields ``(name, help, label_names, label_values, cumulative_buckets, sum)``.
    """

    def __init__(self, counters: Counters, histograms: HistogramSource) -> None:
        self._counters = counters
        self._histograms = histograms

    def collect(self) -> Iterator[Metric]:
        for name, (kind, doc, label_names) in FAMILIES.items():
            family: CounterMetricFamily | GaugeMetricFamily
            if kind == "counter":
                family = CounterMetricFamily(PREFIX + name, doc, labels=label_names)
            else:
                family = GaugeMetricFamily(PREFIX + name, doc, labels=label_names)
            for labels, value in self._counters.series(name):
                family.add_metric(list(labels), value)
            yield family
        families: dict[str, HistogramMetricFamily] = {}
        for name, doc, label_names, labels, buckets, total in self._histograms():
            fam = families.get(name)
            if fam is None:
                fam = families[name] = HistogramMetricFamily(PREFIX + name, doc, labels=label_names)
            fam.add_metric(list(labels), buckets, total)
        yield from families.values()

    def describe(self) -> Iterator[Metric]:
        return iter(())


def serve_metrics(collector: MonitorCollector, port: int, addr: str = "127.0.0.1") -> tuple[Any, Any]:
    """Serve ``/metrics`` on ``addr:port`` (0 picks a free port) from a fresh registry holding ``collector``.

    Returns ``(server, thread)``; ``server.server_port`` is the bound port, ``server.shutdown()`` stops it.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return start_http_server(port, addr=addr, registry=registry)
