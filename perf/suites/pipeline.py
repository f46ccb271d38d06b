"""Suite ``pipeline``: whole ad requests (retrieval over 100k ads, early ranking of 2,000, 20 models over 200) on
this machine, at 50 %, 80 % and 100 % of its measured saturation.

1. **Saturation**: closed loop with 1, 2 and 4 request threads for a few seconds each (the pipeline fans full
   scoring out over its own pool, one thread per core); the best throughput of complete answers (no model late or
   fallen back: a pipeline that drops models can always go faster) is the saturation rate.
2. **Load levels**: open loop (:class:`perf.loadgen.OpenLoop`, latency from each request's *intended* send time, so
   queueing shows) at 50 %, 80 %, 100 % and 200 % (overload) of it. A request refused by admission control
   (``max_in_flight``) counts as rejected and is left out of the latency percentiles (they describe what was
   served); one that failed (a stage deadline) counts as failed; a response where some model was late or fell back
   counts as degraded. Overload figure: ``pipeline_p99_at_200pct_over_80pct`` (target <= 2: shedding keeps the
   served requests' tail bounded).

Everything runs in one process, one level after another, after a warm-up (the JVM-free pipeline does not need forks
to be fair to anything: there is no second side to interleave with). Figures: ``pipeline_saturation_rps``,
``pipeline_p50_ms_at_{50,80,100}pct``, ``pipeline_p99_ms_at_{50,80,100}pct`` (target: p99 <= 20 ms at 80 %),
``pipeline_failed_share_at_*``, ``pipeline_degraded_share_at_*`` and ``cores_per_million_rps`` (cores needed for 1M
ad requests per second at the measured per-core saturation throughput).

``--quick``: 1 s per saturation step and 2 s per level (about 20 s with set-up).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from perf.harness import Measurement, Result, closed_loop_threads, new_histogram, record_latencies
from perf.loadgen import OpenLoop
from perf.report import document_rows
from perf.suites import ExternalSuite

LEVELS = (0.5, 0.8, 1.0, 2.0)
CONCURRENCY = (1, 2, 4)
#: Open-loop driver threads: enough that a slow request never holds up the next one's send time.
DRIVERS = 16


@dataclass(frozen=True)
class PipelinePlan:
    warmup_requests: int
    saturation_seconds: float
    level_seconds: float

    @staticmethod
    def for_run(quick: bool) -> PipelinePlan:
        return PipelinePlan(50, 1.0, 2.0) if quick else PipelinePlan(300, 4.0, 15.0)


class _Traffic:
    """Cycles through the marketplace's request contexts; counts failures and degraded answers."""

    def __init__(self, pipeline: Any, contexts: int) -> None:
        from gateway.errors import ScoregateError, UnavailableError
        from gateway.pipeline import AdRequest

        self._pipeline = pipeline
        self._requests = [AdRequest(i, context=i) for i in range(contexts)]
        self._next = itertools.count()
        self._lock = threading.Lock()
        self._error = ScoregateError
        self._refused = UnavailableError
        self.failed = 0
        self.rejected = 0
        self.degraded = 0
        self.served = 0
        self.latencies_ns: list[int] = []

    def reset(self) -> None:
        with self._lock:
            self.failed = self.rejected = self.degraded = self.served = 0
            self.latencies_ns = []

    def op(self) -> bool:
        """One request; False if admission control refused it (the open loop then leaves its latency out)."""
        request = self._requests[next(self._next) % len(self._requests)]
        try:
            response = self._pipeline.run(request)
        except self._refused:
            with self._lock:
                self.rejected += 1
            return False
        except self._error:
            with self._lock:
                self.failed += 1
            return True
        with self._lock:
            self.served += 1
            self.degraded += int(response.degraded)
        return True


def _row(name: str, params: dict[str, Any], m: Measurement, extra: dict[str, Any]) -> dict[str, Any]:
    hist = new_histogram()
    record_latencies(hist, m.latencies_ns)
    return {**Result(name, params, hist, m.elapsed_s).to_json(), **extra}


def run(quick: bool, forks: int | None, show_progress: bool) -> dict[str, Any]:
    from gateway.engine import Engine
    from gateway.pipeline import Pipeline
    from models.demo import build_demo, is_complete
    from perf.suites.scoring import DEMO_DIR

    del forks  # one process (see the module docstring)
    plan = PipelinePlan.for_run(quick)
    say: Callable[[str], None] = (lambda line: print(line, flush=True)) if show_progress else (lambda line: None)
    root = DEMO_DIR
    if not is_complete(root, seed=0):
        build_demo(root)
    engine = Engine.from_directory(root / "models")
    rows: list[dict[str, Any]] = []
    figures: dict[str, float] = {}
    cores = len(os.sched_getaffinity(0))
    try:
        with Pipeline.for_demo(engine, root) as pipeline:
            traffic = _Traffic(pipeline, pipeline.features.n_contexts)
            for _ in range(plan.warmup_requests):
                traffic.op()
            best = 0.0
            for c in CONCURRENCY:
                traffic.reset()
                m = closed_loop_threads(traffic.op, plan.saturation_seconds, c)
                rps = (traffic.served - traffic.degraded) / m.elapsed_s  # complete answers only
                rows.append(_row("closed_loop", {"threads": c}, m, _counts(traffic)))
                say(f"pipeline saturation: {c} threads {rps:.0f} requests/s")
                best = max(best, rps)
            figures["pipeline_saturation_rps"] = best
            figures["cores_per_million_rps"] = 1e6 / (best / cores)
            for level in LEVELS:
                rate = best * level
                traffic.reset()
                m = OpenLoop(rate, workers=DRIVERS).run(traffic.op, plan.level_seconds)
                pct = round(level * 100)
                rows.append(_row("open_loop", {"load_pct": pct, "rate_per_s": round(rate, 1)}, m, _counts(traffic)))
                r = rows[-1]
                total = max(1, traffic.served + traffic.failed + traffic.rejected)
                figures[f"pipeline_p50_ms_at_{pct}pct"] = r["p50_us"] / 1000
                figures[f"pipeline_p99_ms_at_{pct}pct"] = r["p99_us"] / 1000
                figures[f"pipeline_failed_share_at_{pct}pct"] = traffic.failed / total
                figures[f"pipeline_rejected_share_at_{pct}pct"] = traffic.rejected / total
                figures[f"pipeline_degraded_share_at_{pct}pct"] = traffic.degraded / total
                say(f"pipeline {pct}%: {rate:.0f}/s p50 {r['p50_us'] / 1000:.2f} ms p99 {r['p99_us'] / 1000:.2f} ms")
            if "pipeline_p99_ms_at_80pct" in figures:
                figures["pipeline_p99_at_200pct_over_80pct"] = (
                    figures["pipeline_p99_ms_at_200pct"] / figures["pipeline_p99_ms_at_80pct"]
                )
    finally:
        engine.close()
    doc = document_rows("pipeline", quick, rows, figures, plan.__dict__)
    doc["meta"].update(cores_used=cores, spec="gateway/pipeline/ads.json")
    return doc


def _counts(traffic: _Traffic) -> dict[str, Any]:
    return {
        "served": traffic.served,
        "failed": traffic.failed,
        "rejected": traffic.rejected,
        "degraded": traffic.degraded,
    }


SUITE = ExternalSuite(
    "pipeline",
    "whole ad requests (retrieval 100k, early ranking 2k, 20 models x 200) at 50/80/100/200 % of saturation",
    run,
)
