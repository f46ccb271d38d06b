"""The demo job behind ``make run``: load the demo models and drive ad-request traffic through them.

Each request is one user, one context and ``candidates`` ads. Its full feature matrix (from the
synthetic marketplace) is scored by every ranking model: for each model, the model's own columns
are gathered into a preallocated per-thread input buffer and scored into a preallocated output
buffer, the same buffers every time (as the JVM bridge's arena slots will be). A line of live
figures is printed every ``report_every_s``; a per-model table closes the run.

Later issues put the Java ad server, the bridge, the Hazelcast feature path and the gRPC door in
front of this; the job stays the same shape.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from hdrh.histogram import HdrHistogram

from gateway.blas import single_threaded_blas
from gateway.engine import Engine
from gateway.errors import ScoregateError

__all__ = ["DemoOptions", "DemoSummary", "run_demo"]


@dataclass(frozen=True)
class DemoOptions:
    """What the demo drives. ``demo_dir`` holds ``models/`` and ``data/`` as ``models.demo`` builds."""

    demo_dir: Path
    duration_s: float = 20.0
    threads: int = 2
    candidates: int = 200
    report_every_s: float = 1.0
    #: Distinct prepared requests cycled through (feature generation is not what is measured).
    request_pool: int = 32
    seed: int = 7


@dataclass
class DemoSummary:
    requests: int = 0
    model_calls: int = 0
    rows_scored: int = 0
    errors: int = 0
    elapsed_s: float = 0.0
    request_latency: HdrHistogram = field(default_factory=lambda: HdrHistogram(1, 60_000_000_000, 3))
    per_model: dict[str, HdrHistogram] = field(default_factory=dict)

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.elapsed_s if self.elapsed_s else 0.0


@dataclass
class _Model:
    name: str
    columns: np.ndarray[Any, np.dtype[np.intp]]


class _Worker(threading.Thread):
    """One request thread: its own buffers, its own latency samples (swapped out by the reporter)."""

    def __init__(
        self,
        k: int,
        engine: Engine,
        models: Sequence[_Model],
        pool: Sequence[np.ndarray[Any, Any]],
        stop: threading.Event,
    ) -> None:
        super().__init__(name=f"demo-{k}", daemon=True)
        self.k = k
        self.engine = engine
        self.models = models
        self.pool = pool
        self.stop = stop
        rows = pool[0].shape[0]
        self.inputs = [np.empty((rows, len(m.columns)), dtype=np.float32) for m in models]
        self.outputs = [np.empty(rows, dtype=np.float32) for _ in models]
        self.samples: list[int] = []
        self.model_samples: list[list[int]] = [[] for _ in models]
        self.errors = 0

    def run(self) -> None:
        clock = time.perf_counter_ns
        runtimes = [self.engine.runtime(m.name) for m in self.models]
        i = self.k
        while not self.stop.is_set():
            full = self.pool[i % len(self.pool)]
            i += 1
            t0 = clock()
            try:
                for j, model in enumerate(self.models):
                    m0 = clock()
                    np.take(full, model.columns, axis=1, out=self.inputs[j])
                    runtimes[j].score(self.inputs[j], self.outputs[j])
                    self.model_samples[j].append(clock() - m0)
            except ScoregateError:
                self.errors += 1
                continue
            self.samples.append(clock() - t0)

    def drain(self) -> tuple[list[int], list[list[int]]]:
        samples, self.samples = self.samples, []
        per_model, self.model_samples = self.model_samples, [[] for _ in self.models]
        return samples, per_model


def run_demo(options: DemoOptions, out: TextIO = sys.stdout) -> DemoSummary:
    """Run the demo for ``options.duration_s`` seconds, printing live figures to ``out``."""
    from models.demo import demo_request_features, load_demo_manifests

    single_threaded_blas()
    manifests = [m for m in load_demo_manifests(options.demo_dir) if m.stage in ("early_ranking", "full_scoring")]
    engine = Engine.from_directory(options.demo_dir / "models")
    from models.synth import feature_indices

    models = [_Model(m.name, feature_indices(m.feature_names)) for m in manifests]
    pool = [
        demo_request_features(options.demo_dir, candidates=options.candidates, seed=options.seed + k)
        for k in range(options.request_pool)
    ]
    print(
        f"scoregate demo: {len(engine)} models loaded, {len(models)} ranking models per request, "
        f"{options.candidates} candidates/request, {options.threads} request threads, {options.duration_s:g} s",
        file=out,
    )
    stop = threading.Event()
    workers = [_Worker(k, engine, models, pool, stop) for k in range(options.threads)]
    summary = DemoSummary(per_model={m.name: HdrHistogram(1, 60_000_000_000, 3) for m in models})
    start = time.perf_counter()
    for w in workers:
        w.start()
    next_report = start + options.report_every_s
    try:
        while (now := time.perf_counter()) < start + options.duration_s:
            stop.wait(max(0.0, min(next_report, start + options.duration_s) - now))
            interval = HdrHistogram(1, 60_000_000_000, 3)
            count = 0
            for w in workers:
                samples, per_model = w.drain()
                count += len(samples)
                for v in samples:
                    interval.record_value(max(1, v))
                for model, values in zip(models, per_model, strict=True):
                    hist = summary.per_model[model.name]
                    for v in values:
                        hist.record_value(max(1, v))
            summary.request_latency.add(interval)
            summary.requests += count
            span = time.perf_counter() - (next_report - options.report_every_s)
            next_report += options.report_every_s
            rps = count / span if span > 0 else 0.0
            _live_line(
                out, time.perf_counter() - start, rps, interval, n_models=len(models), candidates=options.candidates
            )
    except KeyboardInterrupt:
        print("interrupted", file=out)
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=10)
    summary.elapsed_s = time.perf_counter() - start
    summary.errors = sum(w.errors for w in workers)
    summary.model_calls = summary.requests * len(models)
    summary.rows_scored = summary.model_calls * options.candidates
    _closing_table(out, summary)
    engine.close()
    return summary


def _live_line(out: TextIO, t: float, rps: float, hist: HdrHistogram, *, n_models: int, candidates: int) -> None:
    def ms(p: float) -> float:
        return float(hist.get_value_at_percentile(p)) / 1e6

    rows = rps * n_models * candidates
    print(
        f"t={t:5.1f}s  requests/s {rps:7,.0f}  model calls/s {rps * n_models:9,.0f}  rows/s {rows / 1e6:5.2f}M  "
        f"request p50 {ms(50):6.2f} ms  p99 {ms(99):6.2f} ms  p99.9 {ms(99.9):6.2f} ms",
        file=out,
        flush=True,
    )


def _closing_table(out: TextIO, s: DemoSummary) -> None:
    h = s.request_latency
    print(
        f"\n{s.requests:,} requests in {s.elapsed_s:.1f} s ({s.requests_per_s:,.0f}/s), "
        f"{s.model_calls:,} model calls, {s.rows_scored:,} rows scored, {s.errors} errors; "
        f"request latency p50 {h.get_value_at_percentile(50) / 1e6:.2f} ms, "
        f"p99 {h.get_value_at_percentile(99) / 1e6:.2f} ms",
        file=out,
    )
    print(f"\n{'model':28s} {'calls':>9s} {'p50 µs':>9s} {'p99 µs':>9s}", file=out)
    for name, hist in s.per_model.items():
        print(
            f"{name:28s} {hist.get_total_count():9,d} {hist.get_value_at_percentile(50) / 1e3:9.1f} "
            f"{hist.get_value_at_percentile(99) / 1e3:9.1f}",
            file=out,
        )
    out.flush()
