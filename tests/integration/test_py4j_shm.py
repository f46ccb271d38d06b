"""The out-of-process transport end to end: a real gateway process (Py4J control, shared-memory
tensors), real client JVMs (``dev.scoregate.bridge.py4j.tools.ShmClientMain``), real ONNX Runtime.

Every gateway and JVM started here is stopped in a ``finally``, and every test checks that the
gateway left nothing in ``/dev/shm``. Waiting is on lines from the processes, with deadlines.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from onnx_builders import logistic_model, reference_scores

from gateway.engine import Engine
from gateway.runtime import ModelRuntime
from jvm_bridge.py4j_server import Py4jServer, Py4jServerOptions, client_classpath
from perf.bench_model import bench_mlp_path

pytest.importorskip("py4j")
ROOT = Path(__file__).resolve().parents[2]
SHM = Path("/dev/shm")
MAIN = "dev.scoregate.bridge.py4j.tools.ShmClientMain"
FEATURES = 16


class Proc:
    """A child process whose stdout lines arrive on a queue, so a test waits for a line with a deadline."""

    def __init__(self, args: list[str]) -> None:
        self.args = args
        self.popen = subprocess.Popen(
            args, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str | None] = []
        assert self.popen.stdout is not None and self.popen.stderr is not None
        self._pumps = [
            threading.Thread(target=self._pump, args=(self.popen.stdout, self._queue.put), daemon=True),
            threading.Thread(target=self._pump, args=(self.popen.stderr, self._stderr.append), daemon=True),
        ]
        for pump in self._pumps:
            pump.start()

    @staticmethod
    def _pump(stream: Any, sink: Any) -> None:
        for line in stream:
            sink(line.rstrip("\n"))
        sink(None)

    def expect(self, prefix: str, timeout: float = 60.0) -> str:
        """The next line starting with ``prefix``; fails at the deadline or if the process ends first."""
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no {prefix!r} line within {timeout} s from {self.args[-6:]}: {self}") from None
            if line is None:
                raise AssertionError(f"process ended before a {prefix!r} line: {self}")
            self.lines.append(line)
            if line.startswith(prefix):
                return line

    def finish(self, timeout: float = 60.0) -> list[str]:
        """Waits for the process to exit (successfully) and returns every stdout line."""
        rc = self.popen.wait(timeout)
        while (line := self._queue.get(timeout=timeout)) is not None:
            self.lines.append(line)
        self._close_streams()
        assert rc == 0, f"exit {rc}: {self}"
        return self.lines

    def stop(self, sig: int = signal.SIGKILL) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            self.popen.wait(30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(30)
        self._close_streams()

    def _close_streams(self) -> None:
        for pump in self._pumps:
            pump.join(30)
        for stream in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            if stream is not None and not stream.closed:
                stream.close()

    def __str__(self) -> str:
        err = [line for line in self._stderr if line is not None]
        return "\n".join([f"{self.args[-7:]}", "stdout:", *self.lines[-20:], "stderr:", *err[-30:]])


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("py4j-models")
    (root / "pctr" / "3").mkdir(parents=True)
    (root / "pctr" / "3" / "model.onnx").write_bytes(logistic_model(FEATURES)[0])
    (root / "bench_mlp" / "1").mkdir(parents=True)
    shutil.copy(bench_mlp_path(), root / "bench_mlp" / "1" / "model.onnx")
    return root


def _gateway(models: Path, port: int = 0, workers: int = 2, *extra: str) -> tuple[Proc, int]:
    args = [sys.executable, "-m", "jvm_bridge.py4j_server", "--models", str(models)]
    proc = Proc([*args, "--port", str(port), "--workers", str(workers), *extra])
    try:
        line = proc.expect("scoregate py4j gateway listening on ", timeout=120)
    except BaseException:
        proc.stop()
        raise
    return proc, int(line.split("127.0.0.1:")[1].split()[0])


def _java(*args: object) -> Proc:
    return Proc(["java", "-cp", os.pathsep.join(client_classpath()), MAIN, *(str(a) for a in args)])


def _leftovers(pid: int) -> list[Path]:
    return sorted(SHM.glob(f"scoregate-{pid}-*"))


@pytest.fixture
def gateway(models: Path) -> Iterator[tuple[Proc, int]]:
    proc, port = _gateway(models, workers=1)
    try:
        yield proc, port
    finally:
        proc.stop(signal.SIGTERM)
        assert proc.popen.returncode == 0, str(proc)
        assert _leftovers(proc.popen.pid) == []


def _echo_inputs(requests: int, rows: int, features: int) -> np.ndarray:
    """ShmClientMain's documented echo inputs: request k, row r, feature f = k/2 + r/4 + (f mod 8)/8."""
    k, r, f = np.meshgrid(np.arange(requests), np.arange(rows), np.arange(features), indexing="ij")
    return (k / 2 + r / 4 + (f % 8) / 8).astype(np.float32).reshape(requests * rows, features)


def test_metrics_endpoint_counts_what_java_scored_through_shared_memory(models: Path) -> None:
    proc, port = _gateway(models, 0, 1, "--metrics-port", "0")
    try:
        banner = proc.lines[-1]
        assert "; metrics on http://127.0.0.1:" in banner, banner
        url = banner.split("; metrics on ")[1].strip()
        java = _java("echo", "127.0.0.1", port, "pctr", 2, 3)
        try:
            assert java.finish()[-1] == "OK"
        finally:
            java.stop()
        # echo scores 3 requests of 2 rows, then one more asynchronously: 4 calls, 8 rows
        series = 'scoregate_model_requests_total{model="pctr",stage="serving",version="3"} 4.0'
        deadline = time.monotonic() + 30  # the monitor's worker aggregates once a second
        while True:
            with urllib.request.urlopen(url, timeout=10) as resp:
                text = resp.read().decode()
            if series in text or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert series in text, text[-2000:]
        assert 'scoregate_model_rows_total{model="pctr",stage="serving",version="3"} 8.0' in text
    finally:
        proc.stop(signal.SIGTERM)
    assert proc.popen.returncode == 0, str(proc)


@pytest.mark.parametrize(("model", "rows", "requests"), [("pctr", 2, 3), ("bench_mlp", 256, 2)])
def test_java_scores_through_shared_memory_as_onnx_runtime_does(
    gateway: tuple[Proc, int], models: Path, model: str, rows: int, requests: int
) -> None:
    java = _java("echo", "127.0.0.1", gateway[1], model, rows, requests)
    try:
        lines = java.finish()
    finally:
        java.stop()
    assert lines[-1] == "OK"
    assert lines[0] == "models\tbench_mlp,pctr"
    assert "describe\tpctr@3\t16\t1\tfeatures: float32[batch, 16] -> score: float32[batch]" in lines
    got = np.array([float(v) for v in lines if v[:1].isdigit() or v[:1] == "-"], dtype=np.float32)
    version = "3" if model == "pctr" else "1"
    assert [v for v in lines if v.startswith("servedBy")] == [f"servedBy\t{model}@{version}"] * requests
    session = ort.InferenceSession(str(models / model / version / "model.onnx"))
    x = _echo_inputs(requests, rows, int(session.get_inputs()[0].shape[1]))
    want = session.run(None, {"features": x})[0]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    if model == "pctr":
        _, w, b = logistic_model(FEATURES)
        np.testing.assert_allclose(got, reference_scores(x, w, b), rtol=1e-5, atol=1e-6)
    assert float(next(v for v in lines if v.startswith("async")).split("\t")[1]) == got[-rows]


def test_failures_become_the_typed_java_exceptions(gateway: tuple[Proc, int]) -> None:
    java = _java("errors", "127.0.0.1", gateway[1], "pctr")
    try:
        lines = java.finish()
    finally:
        java.stop()
    cases = {name: (kind, message) for _, name, kind, message in (x.split("\t", 3) for x in lines if x[:5] == "case\t")}
    # Python's checks, mapped through the one error tree:
    nan = "model 'pctr' input 'features': 1 non-finite value(s) (NaN/inf), first at index (0, 5)"
    shape = "model 'pctr' input 'features': input feature count is 8, expected 16 (features: float32[batch, 16])"
    assert cases["nan"] == ("InvalidInputException", nan)
    assert cases["shape"] == ("InvalidInputException", shape)
    # A pinned version goes to the gateway, which answers that it does not serve (the client's table is from connect;
    # a hot swap may have loaded it since):
    assert cases["version"] == ("UnknownModelException", "unknown model 'pctr@999'; loaded: bench_mlp@1, pctr@3")
    # The client's own checks, before anything is sent:
    assert cases["unknown"] == ("UnknownModelException", "unknown model 'nope'; loaded: bench_mlp@1, pctr@3")
    assert cases["rows"][0] == "InvalidInputException" and "exceed a shared-memory slot" in cases["rows"][1]
    assert cases["expired"][0] == "DeadlineExceededException" and "before the request was sent" in cases["expired"][1]
    assert cases["after"] == ("ok", "-")
    health = dict(line.split("\t")[1:3] for line in lines if line.startswith("health\t"))
    assert health["status"] == "serving" and int(health["sessions"]) == 1 and int(health["failed"]) == 3, health


class Blocking(ModelRuntime):
    """A real model that waits, inside the gateway's worker, until the test lets it score."""

    entered = threading.Event()
    release = threading.Event()

    def score(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        self.entered.set()
        assert self.release.wait(60)
        return super().score(x, out)


def test_a_request_that_waits_past_its_deadline_fails_and_is_never_scored(models: Path) -> None:
    engine = Engine.from_directory(models)
    pctr = engine.runtime("pctr")
    engine.add(Blocking(pctr._session, "slow", pctr.options, "1"))  # type: ignore[arg-type]
    with Py4jServer(engine, Py4jServerOptions(port=0, workers=1)) as server:
        java = _java("deadline", "127.0.0.1", server.port, "pctr", "slow")
        try:
            java.expect("sent")
            assert Blocking.entered.wait(30), "the slow request should reach the model"
            assert java.popen.stdin is not None
            java.popen.stdin.write("go\n")
            java.popen.stdin.flush()
            line = java.expect("case\tdeadline")
            (session,) = server.sessions()
            assert session.stats().expired == 0, "still queued behind the slow request"
            Blocking.release.set()
            lines = java.finish()
        finally:
            Blocking.release.set()
            java.stop()
        stats = session.stats()
    engine.close()
    _, _, kind, message = line.split("\t", 3)
    assert kind == "DeadlineExceededException", line
    assert message.startswith("model 'pctr': deadline exceeded: the gateway did not answer within ")
    assert "case\tslow\tok\t-" in lines and "case\tafter\tok\t-" in lines
    # The gateway reached it after its deadline and skipped it: it was never scored.
    assert (stats.expired, stats.scored) == (1, 2), stats
    assert _leftovers(os.getpid()) == []


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_gateway_restart_under_load_fails_calls_fast_and_the_client_reconnects(models: Path, how: str) -> None:
    timeout_ms = 250
    first, port = _gateway(models)
    second: Proc | None = None
    java = _java("restart", "127.0.0.1", port, "pctr", 4, timeout_ms, 200)
    try:
        java.expect("READY")
        assert _leftovers(first.popen.pid) == [], "the ring's names are unlinked once the client attached"
        first.stop(getattr(signal, how))
        java.expect("DOWN")
        second, second_port = _gateway(models, port=port)
        assert second_port == port
        java.expect("RECONNECTED", timeout=60)
        summary = dict(kv.split("=") for kv in java.expect("SUMMARY", timeout=120).split("\t")[1:])
        java.finish()
    finally:
        java.stop()
        first.stop()
        if second is not None:
            second.stop(signal.SIGTERM)
    counts = {k: int(v) for k, v in summary.items()}
    assert counts["unavailable"] >= 1 and counts["other"] == 0 and counts["mismatches"] == 0, counts
    # Every failure came within its deadline (plus 50 ms of scheduling slack), as unavailable. Only a call in flight
    # at the kill may instead reach its deadline first: a killed process's sockets close only once the kernel has
    # torn it down (~75 ms here), so at most one per load thread.
    assert counts["late"] == 0 and counts["deadline"] <= 4, counts
    assert counts["sessions"] == 2 and counts["ok_after"] >= 200, counts
    assert _leftovers(first.popen.pid) == [] and _leftovers(second.popen.pid) == []


def test_a_vanished_client_loses_its_session_and_leaves_no_files(models: Path) -> None:
    """In-process gateway with a short lease; the client JVM is killed without closing its session."""
    engine = Engine.from_directory(models)
    options = Py4jServerOptions(port=0, lease_s=0.5, heartbeat_ms=20)
    with Py4jServer(engine, options) as server:
        java = _java("bench", "127.0.0.1", server.port, "pctr", FEATURES)
        try:
            java.expect("ready")
            (session,) = server.sessions()
            assert not session.ring.path.exists(), "unlinked once attached"
            assert "sessions\t1" in server.health()
        finally:
            java.stop(signal.SIGKILL)
        assert session.closed.wait(30), "the lease should close the session of a client that is gone"
        assert server.sessions() == []
    engine.close()
    assert _leftovers(os.getpid()) == []


@pytest.mark.slow
def test_py4j_suite_quick(tmp_path: Path) -> None:
    out = tmp_path / "py4j.json"
    proc = subprocess.run(
        [sys.executable, "-m", "perf", "run", "py4j", "--quick", "--json", str(out), "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["suite"] == "py4j" and doc["quick"] is True
    figures = doc["figures"]
    assert figures["py4j_shm_overhead_us_b256"] > 0
    # Loose guard for shared CI machines; the measured figure is in the report.
    assert figures["py4j_shm_over_bytes_tput_b256"] > 1.0
    cases = {(r["name"], r["params"]["threads"]) for r in doc["results"]}
    assert {("floor", 1), ("shm", 1), ("bytes", 1)} <= cases
    assert all(r["n"] > 20 for r in doc["results"])
