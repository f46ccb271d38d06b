"""JMH-style benchmark runs from Python: warm-up, measurement, forks, HdrHistogram latencies.

A *suite* is a list of :class:`Case` objects plus a function that turns results into named
figures. Cases that share a ``group`` are compared with each other, so they run **side by side**:
inside each fork, iteration *k* of every case in the group runs before iteration *k + 1* of any, in
alternating order (A B, B A, ...), so slow drift of a noisy machine (another process, thermal state,
page cache) hits all of them alike and their *ratios* stay meaningful.

Every fork is a separate Python process (``python -m perf fork ...``), as JMH forks separate JVMs:
JIT-free as Python is, a process still carries allocator state, import order and CPU-cache
placement that a fresh one re-rolls. Histograms from every fork are merged.

Latencies are recorded per operation in nanoseconds into a preallocated list during an iteration
and moved into the HdrHistogram after it, so the histogram's own cost never sits inside a timed
region.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

__all__ = [
    "Case",
    "Measurement",
    "Plan",
    "Result",
    "Suite",
    "closed_loop",
    "closed_loop_threads",
    "new_histogram",
    "record_latencies",
    "run_suite",
]

#: A benchmarked operation: called with no arguments, its return value is ignored.
Op = Callable[[], object]

_LOWEST_NS = 1
_HIGHEST_NS = 600 * 1_000_000_000
_SIGNIFICANT = 3


def new_histogram() -> HdrHistogram:
    """A histogram in nanoseconds from 1 ns to 10 minutes, 3 significant digits."""
    return HdrHistogram(_LOWEST_NS, _HIGHEST_NS, _SIGNIFICANT)


@dataclass(frozen=True)
class Measurement:
    """What one iteration of a case produced: per-operation latencies and the wall time spent."""

    latencies_ns: Sequence[int]
    elapsed_s: float
    #: Operations refused by the system under test (open loop only), not in ``latencies_ns``.
    refused: int = 0


#: Measures a case for about ``seconds``; the default runs the op back to back (closed loop).
Runner = Callable[[Op, float], Measurement]


def record_latencies(hist: HdrHistogram, latencies_ns: Sequence[int]) -> None:
    """Record ``latencies_ns`` into ``hist``, clamped to its range (1 ns to 10 minutes)."""
    for value in latencies_ns:
        hist.record_value(max(_LOWEST_NS, min(int(value), _HIGHEST_NS)))


def closed_loop(op: Op, seconds: float) -> Measurement:
    """Call ``op`` back to back for ``seconds``; latency is each call's own duration."""
    clock = time.perf_counter_ns
    samples: list[int] = []
    append = samples.append
    start = clock()
    deadline = start + int(seconds * 1e9)
    now = start
    while now < deadline:
        t0 = clock()
        op()
        now = clock()
        append(now - t0)
    return Measurement(samples, (now - start) / 1e9)


def closed_loop_threads(op: Op, seconds: float, threads: int) -> Measurement:
    """``threads`` closed loops of ``op`` at once for ``seconds``: merged latencies, wall time of the slowest."""
    import threading

    results: list[Measurement] = []
    lock = threading.Lock()

    def loop() -> None:
        m = closed_loop(op, seconds)
        with lock:
            results.append(m)

    workers = [threading.Thread(target=loop, name=f"perf-loop-{i}") for i in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return Measurement([x for m in results for x in m.latencies_ns], time.perf_counter() - start)


@dataclass(frozen=True)
class Case:
    """One benchmark: a name, its parameters, and how to build the operation inside a fork.

    ``setup`` runs once per fork (it may load models, allocate buffers) and returns the op.
    ``runner`` decides how the op is driven; see :mod:`perf.loadgen` for open-loop runners.
    """

    name: str
    params: Mapping[str, Any]
    setup: Callable[[], Op]
    group: str = ""
    runner: Runner = closed_loop

    @property
    def key(self) -> str:
        inner = ",".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.name}[{inner}]"


@dataclass(frozen=True)
class Plan:
    """Iteration counts and durations; ``quick`` plans are shorter, never different in kind."""

    warmup_iterations: int
    measurement_iterations: int
    iteration_seconds: float
    forks: int

    @staticmethod
    def for_run(quick: bool) -> Plan:
        return Plan(1, 3, 0.25, 2) if quick else Plan(3, 5, 1.0, 3)


@dataclass
class Result:
    """Merged measurements of one case over every fork and iteration."""

    name: str
    params: dict[str, Any]
    histogram: HdrHistogram
    elapsed_s: float = 0.0

    @property
    def n(self) -> int:
        return int(self.histogram.get_total_count())

    def percentile_us(self, p: float) -> float:
        return float(self.histogram.get_value_at_percentile(p)) / 1000.0

    @property
    def throughput_per_s(self) -> float:
        return self.n / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "params": self.params,
            "n": self.n,
            "p50_us": round(self.percentile_us(50.0), 3),
            "p99_us": round(self.percentile_us(99.0), 3),
            "p999_us": round(self.percentile_us(99.9), 3),
            "throughput_per_s": round(self.throughput_per_s, 1),
        }


@dataclass(frozen=True)
class Suite:
    """A named list of cases and the figures derived from their results.

    ``cases(quick)`` must return the same cases, in the same order, in the parent and in every
    fork: the fork finds its cases by index.
    """

    name: str
    description: str
    cases: Callable[[bool], list[Case]]
    figures: Callable[[list[Result]], dict[str, float]] = field(default=lambda results: {})
    #: Prepares shared inputs once in the parent before forking (e.g. builds demo models).
    prepare: Callable[[bool], None] = field(default=lambda quick: None)


# ---------------------------------------------------------------------------------------- fork
def run_fork(suite: Suite, quick: bool, plan: Plan, progress: Callable[[int], None]) -> dict[str, Any]:
    """Run every case of ``suite`` once in this process; return encoded histograms per case key."""
    cases = suite.cases(quick)
    groups: dict[str, list[tuple[Case, Op]]] = {}
    for case in cases:
        groups.setdefault(case.group or case.key, []).append((case, case.setup()))
    out: dict[str, Any] = {}
    for members in groups.values():
        hists = {case.key: new_histogram() for case, _ in members}
        elapsed = dict.fromkeys(hists, 0.0)
        for _ in range(plan.warmup_iterations):
            for case, op in members:
                case.runner(op, plan.iteration_seconds)
            progress(1)
        for k in range(plan.measurement_iterations):
            # A B, B A, ...: a case that always ran first (or right after a heavier one) would carry that bias.
            for case, op in members if k % 2 == 0 else members[::-1]:
                m = case.runner(op, plan.iteration_seconds)
                record_latencies(hists[case.key], m.latencies_ns)
                elapsed[case.key] += m.elapsed_s
            progress(1)
        for key, hist in hists.items():
            out[key] = {"histogram": hist.encode().decode("ascii"), "elapsed_s": elapsed[key]}
    return out


def fork_main(suite: Suite, quick: bool, plan: Plan, out_path: str) -> None:
    """Entry point of a forked process: writes its results to ``out_path``; progress on stdout."""

    def progress(step: int) -> None:
        print(f"progress {step}", flush=True)

    result = run_fork(suite, quick, plan, progress)
    with open(out_path, "w", encoding="utf-8") as fh:
        json.dump(result, fh)


# -------------------------------------------------------------------------------------- parent
def run_suite(
    suite: Suite,
    *,
    quick: bool,
    plan: Plan | None = None,
    show_progress: bool = True,
) -> list[Result]:
    """Run ``suite`` in ``plan.forks`` separate processes and merge their histograms."""
    from tqdm import tqdm  # progress bars only where a person watches

    plan = plan or Plan.for_run(quick)
    suite.prepare(quick)
    cases = suite.cases(quick)
    groups = {c.group or c.key for c in cases}
    steps_per_fork = len(groups) * (plan.warmup_iterations + plan.measurement_iterations)
    merged: dict[str, Result] = {c.key: Result(c.name, dict(c.params), new_histogram()) for c in cases}
    bar = tqdm(total=steps_per_fork * plan.forks, desc=f"perf {suite.name}", unit="iter", disable=not show_progress)
    try:
        for fork in range(plan.forks):
            with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as tmp:
                out_path = tmp.name
            try:
                cmd = [
                    sys.executable, "-m", "perf", "fork", suite.name,
                    "--out", out_path,
                    "--plan", json.dumps(plan.__dict__),
                ] + (["--quick"] if quick else [])  # fmt: skip
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=_fork_env())
                assert proc.stdout is not None
                for line in proc.stdout:
                    if line.startswith("progress "):
                        bar.update(int(line.split()[1]))
                if proc.wait() != 0:
                    raise RuntimeError(f"fork {fork} of suite {suite.name!r} failed (exit {proc.returncode})")
                with open(out_path, encoding="utf-8") as fh:
                    data = json.load(fh)
            finally:
                os.unlink(out_path)
            for key, entry in data.items():
                merged[key].histogram.add(HdrHistogram.decode(entry["histogram"]))
                merged[key].elapsed_s += entry["elapsed_s"]
    finally:
        bar.close()
    return [merged[c.key] for c in cases]


def _fork_env() -> dict[str, str]:
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env
