"""Suite ``py4j``: an ad server in its own JVM scoring through the out-of-process gateway.

Every fork is a Python process that serves the benchmark MLP (:mod:`perf.bench_model`, 64 -> 256
-> 128 -> 1) with :class:`jvm_bridge.py4j_server.Py4jServer` (2 workers per session), and drives
it from a separate client JVM (``dev.scoregate.bridge.py4j.tools.ShmClientMain bench``: closed
loop, real Java threads, each with its own arena slot; per-call latencies come back in a file).
Cases, side by side in each fork:

* ``floor``: ONNX Runtime ``run_with_iobinding`` in this process, the Python scoring floor.
* ``shm``: ``ModelGateway.score`` over the shared-memory ring (features copied into the ring,
  scores copied back, no Py4J call per request).
* ``bytes``: the baseline the ring replaces: the same tensors as a Py4J ``byte[]`` argument and
  ``byte[]`` result, one Py4J call per request (``scoreBytes``, which only this suite adds to the
  gateway's entry point). Its time includes copying the features into the ``byte[]`` and the
  scores out, which a Py4J caller cannot avoid.

Figures: ``py4j_shm_overhead_us_b256`` (p50 of ``shm`` minus p50 of ``floor``, one thread, batch
256), ``py4j_shm_over_bytes_tput_b256`` (throughput of ``shm`` over ``bytes``, one thread; also
with 4 threads), and the same at batch 1, where the transport's fixed cost dominates.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import subprocess
import tempfile
import threading
from typing import Any

import numpy as np

from perf.floor import floor_op
from perf.harness import Case, Measurement, Op, Result, Suite

MODEL = "bench_mlp"
FEATURES = 64
WORKERS = 2
_state: dict[str, Any] = {}


def _bench_control() -> type:
    """The gateway's entry point plus the baseline's ``scoreBytes`` (deferred: imports py4j_server)."""
    from jvm_bridge.py4j_server import GatewayControl

    class BenchControl(GatewayControl):
        def __init__(self, server: Any) -> None:
            super().__init__(server)
            self._local = threading.local()

        def scoreBytes(self, model: str, rows: int, features: int, x: bytes) -> bytes:
            # Fair to the baseline: copy into arrays this thread reuses, so ONNX Runtime's binding stays warm.
            key = (model, rows, features)
            cached = getattr(self._local, "arrays", None)
            if cached is None or cached[0] != key:
                cached = self._local.arrays = (key, np.empty((rows, features), np.float32), np.empty(rows, np.float32))
            _, arr, out = cached
            arr.reshape(-1)[:] = np.frombuffer(x, dtype=np.float32)
            self.server.engine.score(model, arr, out)
            return out.tobytes()

    return BenchControl


class _Client:
    """The client JVM, started once per fork and driven over stdin/stdout."""

    def __init__(self, port: int) -> None:
        from jvm_bridge.py4j_server import client_classpath

        self.proc = subprocess.Popen(
            ["java", "-cp", os.pathsep.join(client_classpath()), "dev.scoregate.bridge.py4j.tools.ShmClientMain",
             "bench", "127.0.0.1", str(port), MODEL, str(FEATURES)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        line = self._line()
        if line != "ready":
            raise RuntimeError(f"the client JVM did not start: {line!r}")

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def run(self, path: str, rows: int, threads: int, seconds: float) -> Measurement:
        assert self.proc.stdin is not None
        with tempfile.NamedTemporaryFile(suffix=".lat", delete=False) as tmp:
            out = tmp.name
        try:
            self.proc.stdin.write(f"run {path} {rows} {threads} {seconds} {out}\n")
            self.proc.stdin.flush()
            fields = self._line().split("\t")
            if fields[0] != "done":
                raise RuntimeError(f"client JVM: {fields}")
            errors, first = int(fields[3]), fields[4]
            if errors:
                raise RuntimeError(f"{path} load failed: {errors} errors, first: {first}")
            latencies = np.fromfile(out, dtype="<i8")
        finally:
            os.unlink(out)
        return Measurement(latencies.tolist(), int(fields[2]) / 1e9)

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(BrokenPipeError, OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


def _client() -> _Client:
    """This fork's gateway and client JVM, created once; stopped when the fork exits."""
    if "client" not in _state:
        from gateway.engine import Engine
        from gateway.runtime import ModelRuntime
        from jvm_bridge.py4j_server import Py4jServer, Py4jServerOptions
        from perf.bench_model import bench_mlp_path

        engine = Engine([ModelRuntime.load(bench_mlp_path(), name=MODEL, version="1")])
        server = Py4jServer(engine, Py4jServerOptions(port=0, workers=WORKERS), control=_bench_control()).start()
        atexit.register(server.close)
        client = _Client(server.port)
        atexit.register(client.close)  # runs before server.close (atexit is last in, first out)
        _state.update(server=server, client=client)
    client = _state["client"]
    assert isinstance(client, _Client)
    return client


class _JavaLoad:
    """An 'op' whose runner hands the whole measurement to the client JVM (see :func:`_java_runner`)."""

    def __init__(self, path: str, rows: int, threads: int) -> None:
        self.path, self.rows, self.threads = path, rows, threads

    def __call__(self) -> object:
        raise TypeError("a Java load is measured with its own runner")


def _java_runner(op: Op, seconds: float) -> Measurement:
    assert isinstance(op, _JavaLoad)
    return _client().run(op.path, op.rows, op.threads, seconds)


def _java(path: str, rows: int, threads: int) -> Op:
    _client()
    return _JavaLoad(path, rows, threads)


def _floor(batch: int) -> Op:
    from perf.bench_model import bench_mlp_path

    return floor_op(bench_mlp_path(), np.random.default_rng(11).normal(size=(batch, FEATURES)).astype(np.float32))


def _prepare(quick: bool) -> None:
    from jvm_bridge.py4j_server import client_classpath
    from perf.bench_model import bench_mlp_path

    bench_mlp_path()
    client_classpath()  # fails early, in the parent, when the Java modules are not built


def _cases(quick: bool) -> list[Case]:
    cases = []
    for batch in (256, 1):
        group = f"b{batch}"
        cases.append(Case("floor", {"batch": batch, "threads": 1}, functools.partial(_floor, batch), group))
        for path in ("shm", "bytes"):
            for threads in (1, 4) if batch == 256 else (1,):
                params = {"batch": batch, "threads": threads}
                setup = functools.partial(_java, path, batch, threads)
                cases.append(Case(path, params, setup, group, _java_runner))
    return cases


def _figures(results: list[Result]) -> dict[str, float]:
    by = {(r.name, r.params["batch"], r.params["threads"]): r for r in results}

    def overhead(batch: int) -> float:
        return by[("shm", batch, 1)].percentile_us(50) - by[("floor", batch, 1)].percentile_us(50)

    def ratio(batch: int, threads: int) -> float:
        return by[("shm", batch, threads)].throughput_per_s / by[("bytes", batch, threads)].throughput_per_s

    return {
        "py4j_shm_overhead_us_b256": overhead(256),
        "py4j_shm_over_bytes_tput_b256": ratio(256, 1),
        "py4j_shm_over_bytes_tput_b256_t4": ratio(256, 4),
        "py4j_shm_overhead_us_b1": overhead(1),
        "py4j_shm_over_bytes_tput_b1": ratio(1, 1),
        "py4j_bytes_overhead_us_b256": by[("bytes", 256, 1)].percentile_us(50)
        - by[("floor", 256, 1)].percentile_us(50),
    }


SUITE = Suite(
    name="py4j",
    description="a client JVM through the out-of-process gateway: shared-memory ring vs Py4J byte[] vs the floor",
    cases=_cases,
    figures=_figures,
    prepare=_prepare,
)
