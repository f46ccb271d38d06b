"""Suite ``hotswap``: swap the 24 demo models between two versions under constant open-loop load.

Set-up: the 24 demo models are published twice (versions 1 and 2, each with reference predictions) to a fresh
artifact store under ``build/perf/hotswap``; an :class:`gateway.engine.Engine` serves them from it through the
version manager (one load thread, niced, paced by :data:`LOAD_DUTY`). Request threads score a
model (round-robin over the 24, 16 rows of realistic features) at a constant rate, latency from the intended send
time (:mod:`perf.loadgen`; the same request threads throughout, as a server's). The process freezes its start-up
heap once the models are loaded, as the servers do (:mod:`gateway.heap`).

Measurement, in one process and one run, alternating so the machine's drift hits both alike:

* **steady** windows: load, no swaps;
* **swap** windows: the same load while a swapper thread moves all 24 models to the other version and waits until
  the swap is complete (new version loaded, warmed, live; old one drained and closed), back to back.

Figures (acceptance names):

* ``swap_failed_requests``: requests that raised, over every window (must be 0);
* ``swap_p99_over_steady_p99``: p99 during swap windows over p99 during steady windows; beside it
  ``swap_p99_over_steady_p99_round_median``, the median over rounds of the ratio of a round's two p99s (a burst of
  the machine's own noise moves one round, not the median);
* ``swap_rss_after_over_before``: resident set size after all swaps (and a GC) over before the first swap.

Diagnostics beside them: the scoring call's own service time (``*_service_p50_us`` / ``_p99_us``) in steady windows,
and during swaps for a thread's first call on a new version and for its other calls, with the share of first calls
(``swap_first_call_share``): the cost a swap puts on each serving thread, apart from the loads' interference.

Quick mode (CI): fewer swaps and shorter windows; full mode: 100 swaps. This suite measures itself (it needs the
failure count and the process's RSS), so it runs in this process rather than the harness's forks.
"""

from __future__ import annotations

import gc
import itertools
import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from perf.harness import Result, new_histogram, record_latencies
from perf.loadgen import OpenLoop
from perf.report import document_rows
from perf.suites import ExternalSuite
from perf.suites.demo_store import two_version_store

ROOT = Path(__file__).resolve().parents[2]
DEMO_DIR = ROOT / "build" / "demo"
STORE_DIR = ROOT / "build" / "perf" / "hotswap"
ROWS = 16
#: The manager's pacing (:attr:`models.manager.ManagerOptions.load_duty`); 1: loads at full speed (the default).
LOAD_DUTY = 1.0


@dataclass(frozen=True)
class HotswapPlan:
    swaps: int
    rounds: int
    steady_seconds: float
    chunk_seconds: float
    rate_per_s: float
    workers: int
    load_duty: float

    @staticmethod
    def for_run(quick: bool) -> HotswapPlan:
        if quick:
            return HotswapPlan(
                4, 2, steady_seconds=1.0, chunk_seconds=0.25, rate_per_s=800, workers=2, load_duty=LOAD_DUTY
            )
        return HotswapPlan(
            100, 10, steady_seconds=4.0, chunk_seconds=0.5, rate_per_s=800, workers=2, load_duty=LOAD_DUTY
        )


def rss_bytes() -> int:
    """Resident set size of this process (Linux ``/proc/self/statm``; 0 elsewhere)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def _prepare_store() -> Any:
    return two_version_store(STORE_DIR)


def run(quick: bool, forks: int | None, show_progress: bool) -> dict[str, Any]:
    """Run the suite (``forks`` is ignored: the figures need one process); returns the document."""
    from tqdm import tqdm

    from gateway.engine import Engine
    from gateway.heap import freeze_startup_heap
    from models.demo import demo_features, load_demo_manifests
    from models.manager import ManagerOptions

    plan = HotswapPlan.for_run(quick)
    store = _prepare_store()
    manifests = {m.name: m for m in load_demo_manifests(DEMO_DIR)}
    names = sorted(store.names())
    # The gates are not what this suite measures (and take ~1 s per model): serve the packages unvalidated.
    engine = Engine.from_store(
        store,
        manager_options=ManagerOptions(interval_s=0.0, load_threads=1, load_duty=plan.load_duty),
        require_validation=False,
    )
    manager = engine.manager
    for name in names:
        manager.set_aspired(name, ["1"])
    assert manager.converge(120), "initial load did not converge"
    freeze_startup_heap()  # as the servers do once loaded (gateway.heap)
    inputs = {n: np.ascontiguousarray(demo_features(DEMO_DIR, manifests[n], rows=ROWS, seed=7)) for n in names}
    counter = itertools.count()
    failures: list[str] = []
    local = threading.local()
    # Scoring-call service times (the runtime's own call, not the open-loop latency) by phase and by whether the
    # call was its thread's first on that version: what a swap costs each thread apart from the loads' interference.
    service: dict[str, list[int]] = {"steady": [], "swap_first": [], "swap_other": []}
    phase = ["steady"]

    def op() -> None:
        name = names[next(counter) % len(names)]
        outs: dict[str, np.ndarray[Any, Any]] | None = getattr(local, "outs", None)
        if outs is None:  # caller-owned output buffers, one set per request thread, as a transport keeps them
            outs = local.outs = {}
            local.last = {}  # name -> the version this thread last scored it with
        try:
            out = outs.get(name)
            result, served, latency_ns = engine.score_served(name, inputs[name], out)
            if out is None:
                outs[name] = result
            first = local.last.get(name) != served  # every swap flips each model's version (1 <-> 2)
            local.last[name] = served
            if phase[0] == "steady":
                service["steady"].append(latency_ns)
            else:
                service["swap_first" if first else "swap_other"].append(latency_ns)
        except Exception as exc:  # counted, never raised: an open-loop driver must keep its schedule
            failures.append(f"{name}: {type(exc).__name__}: {exc}")

    loop = OpenLoop(plan.rate_per_s, plan.workers)
    steady, swapping = new_histogram(), new_histogram()
    elapsed = {"steady": 0.0, "swap": 0.0}

    loop.run(op, plan.steady_seconds)  # warm-up: threads, bindings, allocator
    service["steady"].clear()
    gc.collect()
    rss_before = rss_bytes()
    version = "1"
    swap_seconds: list[float] = []
    round_ratios: list[float] = []  # per round: p99 during its swaps over p99 of its steady window
    per_round = [plan.swaps // plan.rounds + (1 if i < plan.swaps % plan.rounds else 0) for i in range(plan.rounds)]
    bar = tqdm(total=plan.swaps, desc="perf hotswap", unit="swap", disable=not show_progress)
    try:
        for swaps in per_round:
            m = loop.run(op, plan.steady_seconds)
            record_latencies(steady, m.latencies_ns)
            elapsed["steady"] += m.elapsed_s
            round_steady = m.latencies_ns
            round_swap: list[int] = []
            done = threading.Event()
            errors: list[BaseException] = []

            def swapper(n: int = swaps, done: threading.Event = done, errors: list[BaseException] = errors) -> None:
                nonlocal version
                try:
                    for _ in range(n):
                        version = "2" if version == "1" else "1"
                        start = time.perf_counter()
                        for name in names:
                            manager.set_aspired(name, [version])
                        if not manager.converge(120):
                            raise RuntimeError("a swap did not converge within 120 s")
                        swap_seconds.append(time.perf_counter() - start)
                        bar.update(1)
                except BaseException as exc:
                    errors.append(exc)
                finally:
                    done.set()

            thread = threading.Thread(target=swapper, name="swapper")
            phase[0] = "swap"
            thread.start()
            while not done.is_set():
                m = loop.run(op, plan.chunk_seconds)
                record_latencies(swapping, m.latencies_ns)
                elapsed["swap"] += m.elapsed_s
                round_swap.extend(m.latencies_ns)
            thread.join()
            phase[0] = "steady"
            round_ratios.append(float(np.percentile(round_swap, 99) / np.percentile(round_steady, 99)))
            if errors:
                raise errors[0]
    finally:
        bar.close()
    live_versions = set(manager.live().values())
    gc.collect()
    rss_after = rss_bytes()  # the same 24 models serve as before the swaps
    engine.close()
    assert live_versions == {version}, f"live versions {live_versions} after the swaps, expected {version}"

    params = {"models": len(names), "rows": ROWS, "rate_per_s": plan.rate_per_s, "workers": plan.workers}
    rows = [
        Result("steady", params, steady, elapsed["steady"]).to_json(),
        Result("swapping", params, swapping, elapsed["swap"]).to_json(),
    ]
    figures = {
        "swap_failed_requests": float(len(failures)),
        "swap_p99_over_steady_p99": rows[1]["p99_us"] / rows[0]["p99_us"],
        "swap_p99_over_steady_p99_round_median": float(np.median(round_ratios)),
        "swap_rss_after_over_before": rss_after / rss_before if rss_before else 0.0,
        "swaps": float(len(swap_seconds)),
        "swap_seconds_p50": float(np.percentile(swap_seconds, 50)) if swap_seconds else 0.0,
        "swap_seconds_max": max(swap_seconds, default=0.0),
        "steady_p99_us": rows[0]["p99_us"],
        "swap_p99_us": rows[1]["p99_us"],
        "rss_before_mb": rss_before / 2**20,
        "rss_after_mb": rss_after / 2**20,
        # Diagnostics: the scoring call alone (no queueing), steady windows against a thread's first call on a new
        # version and its other calls during swaps.
        "swap_first_call_share": len(service["swap_first"])
        / max(1, len(service["swap_first"]) + len(service["swap_other"])),
        **{
            f"{kind}_service_{q}_us": float(np.percentile(service[kind], int(q[1:]))) / 1e3 if service[kind] else 0.0
            for kind in ("steady", "swap_first", "swap_other")
            for q in ("p50", "p99")
        },
    }
    doc = document_rows("hotswap", quick, rows, figures, asdict(plan))
    doc["failures"] = failures[:20]
    return doc


def notes(doc: Any) -> str:
    f = doc["figures"]
    return (
        f"\n{int(f['swaps'])} swaps of {doc['results'][0]['params']['models']} models; a swap (load, warm, switch, "
        f"drain, close all models) took {f['swap_seconds_p50']:.3f} s at the median, {f['swap_seconds_max']:.3f} s "
        f"at most. RSS {f['rss_before_mb']:.1f} MiB before the swaps, {f['rss_after_mb']:.1f} MiB after.\n"
        f"\nThe scoring call alone (µs, p50 / p99): steady {f['steady_service_p50_us']:.0f} / "
        f"{f['steady_service_p99_us']:.0f}; during swaps, a thread's first call on a new version "
        f"{f['swap_first_service_p50_us']:.0f} / {f['swap_first_service_p99_us']:.0f} "
        f"({100 * f['swap_first_call_share']:.0f} % of the calls), its other calls "
        f"{f['swap_other_service_p50_us']:.0f} / {f['swap_other_service_p99_us']:.0f}.\n"
    )


SUITE = ExternalSuite(
    name="hotswap",
    description="24 demo models swapped between two versions under open-loop load: failures, p99, RSS",
    run=run,
    notes=notes,
)
