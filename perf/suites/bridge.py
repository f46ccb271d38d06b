"""Suite ``bridge``: Java threads scoring through the in-process (JPype) bridge, against the floor.

Every fork is a Python process that hosts a JVM (JPype), serves the benchmark MLP
(:mod:`perf.bench_model`, 64 -> 256 -> 128 -> 1) through :class:`jvm_bridge.inprocess.InProcessHost`,
and drives it from real Java threads with ``dev.scoregate.bridge.inprocess.LoadDriver`` (closed
loop; each thread writes its rows into its own arena slot, then calls ``ModelGateway.score``).

* ``floor`` vs ``bridge`` at batch 256, one Java thread, side by side: the cost of crossing from
  Java to ONNX Runtime and back (figure ``bridge_over_floor_p50_b256``).
* ``bridge`` at batch 1 with 1, 8 and 32 Java threads: does throughput hold as Java threads are
  added (the naive per-call proxy design collapses from 19k to 12k req/s at 8 threads)?
  Figures ``bridge_tput_t8_over_t1``, ``bridge_tput_t32_over_t1``, ``bridge_p99_over_p50_t32``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from perf.floor import floor_op
from perf.harness import Case, Measurement, Op, Result, Suite

WORKERS = 2
_state: dict[str, Any] = {}


class _JavaLoad:
    """An 'op' whose runner hands the whole measurement to Java (see :func:`_java_runner`)."""

    def __init__(self, threads: int, rows: int) -> None:
        self.threads = threads
        self.rows = rows

    def __call__(self) -> object:
        raise TypeError("a Java load is measured with its own runner")

    def measure(self, seconds: float) -> Measurement:
        import jpype

        _, inputs, n_rows = _host()
        driver = jpype.JClass("dev.scoregate.bridge.inprocess.LoadDriver")
        gateway = jpype.JClass("dev.scoregate.bridge.ModelGateways").get()
        models = jpype.JArray(jpype.JString)(["bench_mlp"])
        report = driver.run(
            gateway, models, 64, self.rows, inputs, n_rows, None, 0.0,
            self.threads, jpype.JLong(2**62), int(seconds * 1e9), 5000, 7,
        )  # fmt: skip
        if report.errors() > 0:
            raise RuntimeError(f"bridge load failed: {report.errors()} errors, first: {report.firstError()}")
        latencies = np.asarray(report.latenciesNanos(), dtype=np.int64)
        return Measurement(latencies.tolist(), report.elapsedNanos() / 1e9)


def _java_runner(op: Op, seconds: float) -> Measurement:
    assert isinstance(op, _JavaLoad)
    return op.measure(seconds)


def _host() -> tuple[Any, Any, int]:
    """This fork's JVM, host and shared input matrix (direct buffer), created once."""
    if "host" not in _state:
        import jpype

        from gateway.engine import Engine
        from gateway.runtime import ModelRuntime
        from jvm_bridge.inprocess import InProcessHost, InProcessOptions
        from jvm_bridge.jvm import start_jvm
        from perf.bench_model import bench_mlp_path

        start_jvm()
        engine = Engine([ModelRuntime.load(bench_mlp_path(), name="bench_mlp", version="1")])
        host = InProcessHost(engine, InProcessOptions(workers=WORKERS)).start()
        n_rows = 4096
        x = np.random.default_rng(11).normal(size=(n_rows, 64)).astype(np.float32)
        nio = jpype.JPackage("java.nio")
        buf = nio.ByteBuffer.allocateDirect(x.nbytes).order(nio.ByteOrder.nativeOrder())
        np.frombuffer(memoryview(buf), dtype=np.float32)[:] = x.reshape(-1)
        _state.update(host=host, inputs=buf, rows=n_rows)
    return _state["host"], _state["inputs"], _state["rows"]


def _floor(batch: int) -> Op:
    from perf.bench_model import bench_mlp_path

    return floor_op(bench_mlp_path(), np.random.default_rng(11).normal(size=(batch, 64)).astype(np.float32))


def _bridge(threads: int, rows: int) -> Op:
    _host()
    return _JavaLoad(threads, rows)


def _prepare(quick: bool) -> None:
    from perf.bench_model import bench_mlp_path

    bench_mlp_path()


def _cases(quick: bool) -> list[Case]:
    cases = [
        Case("floor", {"batch": 256, "threads": 1}, functools.partial(_floor, 256), "b256"),
        Case("bridge", {"batch": 256, "threads": 1}, functools.partial(_bridge, 1, 256), "b256", _java_runner),
    ]
    for threads in (1, 8, 32):
        params = {"batch": 1, "threads": threads}
        cases.append(Case("bridge", params, functools.partial(_bridge, threads, 1), "b1", _java_runner))
    return cases


def _figures(results: list[Result]) -> dict[str, float]:
    by = {(r.name, r.params["batch"], r.params["threads"]): r for r in results}
    t1 = by[("bridge", 1, 1)]
    t32 = by[("bridge", 1, 32)]
    return {
        "bridge_over_floor_p50_b256": by[("bridge", 256, 1)].percentile_us(50)
        / by[("floor", 256, 1)].percentile_us(50),
        "bridge_tput_t1_b1": t1.throughput_per_s,
        "bridge_tput_t8_over_t1": by[("bridge", 1, 8)].throughput_per_s / t1.throughput_per_s,
        "bridge_tput_t32_over_t1": t32.throughput_per_s / t1.throughput_per_s,
        "bridge_p99_over_p50_t32": t32.percentile_us(99) / t32.percentile_us(50),
    }


SUITE = Suite(
    name="bridge",
    description="Java threads through the in-process JPype bridge vs the ONNX Runtime floor (bench MLP)",
    cases=_cases,
    figures=_figures,
    prepare=_prepare,
)
