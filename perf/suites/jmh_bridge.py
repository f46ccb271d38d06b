"""One bridge fork of suite ``jmh`` (:mod:`perf.suites.jmh`): JMH inside a JVM that Python hosts.

``python -m perf.suites.jmh_bridge --out-dir DIR --plan JSON --sweep JSON`` (the parent runs it):

1. start the JVM (JPype) with ``benchmarks.jar`` on the classpath and serve the benchmark MLP
   through :class:`jvm_bridge.inprocess.InProcessHost` under the name ``bench_mlp``;
2. for each (threads, batch) run JMH's ``Runner`` in this JVM (``forks=0``) on
   ``InProcessBridgeBenchmark.score`` only, writing ``DIR/t{T}-b{B}.json`` (JMH's JSON);
3. around each run, account where the CPU went and how well requests were batched (``DIR/diag.json``):
   CPU seconds per thread group from ``/proc/self/task`` and ``getrusage`` (the Python workers, the
   Java request threads, JIT compilers, the rest) and the host's request and ONNX-run counters;
4. measure the ONNX Runtime floor of *this* process's library (Python's onnxruntime,
   ``run_with_iobinding``, one thread, same session options) per batch size: what the workers'
   ONNX Runtime runs cost, so that the bridge's overhead is what remains;
5. fail if ONNX Runtime's Java JNI library was mapped into the process: only the include pattern
   and lazy class loading keep ``OrtJavaBenchmark`` out, and two ONNX Runtime native libraries must
   not share a process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
JAR = ROOT / "perf" / "target" / "benchmarks.jar"
BENCHMARK = r"dev\.scoregate\.perf\.InProcessBridgeBenchmark\.score$"
MODEL = "bench_mlp"
WORKERS = 2
_FLOOR_SECONDS = 0.5


def run_fork(out_dir: Path, plan: Mapping[str, int], cases: Mapping[int, Sequence[int]]) -> None:
    """Steps 1-5 of the module doc. ``plan``: warmup_iterations, measurement_iterations, iteration_seconds."""
    import jpype

    from gateway.engine import Engine
    from gateway.runtime import ModelRuntime
    from jvm_bridge.inprocess import InProcessHost, InProcessOptions
    from jvm_bridge.jvm import start_jvm
    from perf.bench_model import bench_mlp_path

    start_jvm([JAR])
    engine = Engine([ModelRuntime.load(bench_mlp_path(), name=MODEL, version="1")])
    options = jpype.JPackage("org.openjdk.jmh.runner.options")
    formats = jpype.JPackage("org.openjdk.jmh.results.format")
    runner = jpype.JClass("org.openjdk.jmh.runner.Runner")
    seconds = options.TimeValue.seconds(plan["iteration_seconds"])
    diagnostics: list[dict[str, Any]] = []
    with InProcessHost(engine, InProcessOptions(workers=WORKERS)) as host:
        for threads, batches in cases.items():
            for batch in batches:
                opts = (
                    options.OptionsBuilder()
                    .include(BENCHMARK)
                    .param("batch", jpype.JArray(jpype.JString)([str(batch)]))
                    .param("model", jpype.JArray(jpype.JString)([MODEL]))
                    .threads(threads)
                    .forks(0)
                    .warmupIterations(plan["warmup_iterations"])
                    .measurementIterations(plan["measurement_iterations"])
                    .warmupTime(seconds)
                    .measurementTime(seconds)
                    .shouldFailOnError(True)
                    .resultFormat(formats.ResultFormatType.JSON)
                    .result(str(out_dir / f"t{threads}-b{batch}.json"))
                    .build()
                )
                meter = CpuMeter(host)
                runner(opts).run()
                diagnostics.append({"batch": batch, "threads": threads, **meter.stop()})
    floors = [ort_python_floor(batch) for batch in sorted({b for bs in cases.values() for b in bs})]
    (out_dir / "diag.json").write_text(json.dumps({"bridge": diagnostics, "ort_python": floors}), encoding="utf-8")
    loaded = java_ort_mapped()
    if loaded:
        raise RuntimeError(f"ONNX Runtime's Java native library was loaded into the bridge process: {loaded}")


class CpuMeter:
    """CPU seconds per thread group and the host's counters, from construction to :meth:`stop`.

    Groups: ``python_workers`` (the host's scoring threads: Python, JPype, the lane's Java code and
    the ONNX Runtime runs), ``java_callers`` (threads that appeared during the run: JMH's benchmark
    threads, whose CPU is counted after they exit as the process total minus the threads that were
    there before), ``jit`` (C1/C2 compiler threads), ``other`` (GC, the JMH control thread, ...).
    """

    def __init__(self, host: Any) -> None:
        self.host = host
        self.workers = {t.native_id for t in threading.enumerate() if t.name.startswith("scoregate-inprocess")}
        self.stats = host.stats()
        self.threads = _thread_cpu()
        self.total = _process_cpu()
        self.wall = time.perf_counter()

    def stop(self) -> dict[str, Any]:
        wall = time.perf_counter() - self.wall
        total = _process_cpu() - self.total
        after = _thread_cpu()
        stats = self.host.stats()
        groups = dict.fromkeys(("python_workers", "java_callers", "jit", "other"), 0.0)
        for tid, (comm, before) in self.threads.items():
            spent = after.get(tid, (comm, before))[1] - before
            if tid in self.workers:
                groups["python_workers"] += spent
            elif comm.startswith(("C1 Compiler", "C2 Compiler")):
                groups["jit"] += spent
            else:
                groups["other"] += spent
        groups["java_callers"] = max(0.0, total - sum(groups.values()))
        requests = stats["requests"] - self.stats["requests"]
        runs = stats["batches"] - self.stats["batches"]
        per_call = {k: round(v / requests * 1e6, 2) if requests else 0.0 for k, v in groups.items()}
        return {
            "wall_s": round(wall, 3),
            "requests": requests,
            "onnx_runs": runs,
            "requests_per_onnx_run": round(requests / runs, 3) if runs else 0.0,
            "cores_busy": round(total / wall, 3) if wall else 0.0,
            "cpu_us_per_call": per_call,
            "cpu_us_per_call_total": round(total / requests * 1e6, 2) if requests else 0.0,
        }


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _thread_cpu() -> dict[int, tuple[str, float]]:
    """Thread id -> (name, user + system CPU seconds) of every live thread of this process."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[str, float]] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue  # exited meanwhile
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(task.name)] = (comm, (int(fields[11]) + int(fields[12])) / tick)
    return out


def ort_python_floor(batch: int, seconds: float = _FLOOR_SECONDS) -> dict[str, float]:
    """One thread, ``run_with_iobinding`` back to back: this process's ONNX Runtime at its cheapest."""
    import onnxruntime as ort

    from gateway.options import RuntimeOptions
    from gateway.runtime import session_options
    from perf.bench_model import FEATURES, bench_mlp_path

    session = ort.InferenceSession(
        str(bench_mlp_path()), session_options(RuntimeOptions()), providers=["CPUExecutionProvider"]
    )
    x = np.random.default_rng(11).normal(size=(batch, FEATURES)).astype(np.float32)
    out = np.empty(batch, dtype=np.float32)
    binding = session.io_binding()
    binding.bind_input("features", "cpu", 0, np.float32, x.shape, x.ctypes.data)
    binding.bind_output("score", "cpu", 0, np.float32, out.shape, out.ctypes.data)
    for _ in range(100):
        session.run_with_iobinding(binding)
    calls = 0
    cpu = time.thread_time()
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        session.run_with_iobinding(binding)
        calls += 1
    wall = time.perf_counter() - start
    return {
        "batch": batch,
        "throughput_per_s": round(calls / wall, 1),
        "us_per_call": round(wall / calls * 1e6, 2),
        "cpu_us_per_call": round((time.thread_time() - cpu) / calls * 1e6, 2),
    }


def java_ort_mapped() -> list[str]:
    """Mappings of ONNX Runtime's Java JNI library in this process (Python's ONNX Runtime is another file)."""
    maps = Path("/proc/self/maps")
    if not maps.exists():
        return []
    return sorted({line.split()[-1] for line in maps.read_text().splitlines() if "onnxruntime4j" in line})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m perf.suites.jmh_bridge", description="one bridge fork of suite jmh")
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--plan", required=True, help="JSON: warmup_iterations, measurement_iterations, iteration_seconds")
    p.add_argument("--sweep", required=True, help='JSON: {"threads": [batch, ...], ...}')
    args = p.parse_args(argv)
    cases = {int(t): tuple(int(b) for b in bs) for t, bs in json.loads(args.sweep).items()}
    run_fork(args.out_dir, json.loads(args.plan), cases)
    return 0


if __name__ == "__main__":
    sys.exit(main())
