"""Suite ``grpc``: the KServe V2 gRPC endpoint against the scoring floor, and against MLServer.

Cases, one demo model (the GBDT pCTR, 64 float32 features), one client for every server (the
raw stub of :mod:`gateway.grpc.client` on one channel, raw contents in and out):

* **floor**: raw ONNX Runtime in the client's process (:mod:`perf.floor`); no transport at all.
* **scoregate**: ``python -m gateway serve-grpc`` (default options) in its own process.
* **mlserver_pw1**: MLServer 1.7.1 with its default ``parallel_workers=1`` (inference in one worker
  process behind the server process), what users run; **mlserver_pw0**: inference in the server
  process. Full runs only, unless the peer's venv exists already.

MLServer serves the *same ONNX file* through a small custom runtime (ONNX Runtime with the same
session options as Scoregate's: one intra-op thread, no spinning), so the model costs the same on
both sides and the comparison is of the serving stacks alone. Each server's answers are checked
against the floor's (<= 1e-6) before anything is measured.

Groups (interleaved in each fork, see :mod:`perf.harness`): ``b1`` and ``b256`` (one client thread,
closed loop, batch 1 and 256 rows) and ``t8`` (eight client threads, closed loop, batch 1: throughput
and tail latency under concurrency).

Figures: ``grpc_overhead_us_p50_b1`` and ``..._b256`` (Scoregate's p50 minus the floor's: what the
transport adds); ``grpc_tput_over_mlserver`` and ``grpc_p99_over_mlserver`` (Scoregate over MLServer
at its default, at t8; targets >= 2 and < 1), ``..._pw0`` for MLServer without worker processes, and
``grpc_p50_over_mlserver_b1``.

The peer: MLServer never enters Scoregate's dependencies; the suite builds its own venv under
``build/peers/mlserver`` (:data:`MLSERVER_REQUIREMENTS`; ~30 s from PyPI) once and reuses it. A
``--quick`` run creates it too when it is missing, and runs without the peer (saying so on stderr)
if that fails; a full run fails instead. Servers run as child processes of each fork and end with it.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from perf.floor import floor_op
from perf.harness import Case, Measurement, Op, Result, Runner, Suite

ROOT = Path(__file__).resolve().parents[2]
DEMO_DIR = ROOT / "build" / "demo"
WORK_DIR = ROOT / "build" / "perf" / "grpc"
PEER_VENV = ROOT / "build" / "peers" / "mlserver"
MODEL = "pctr_gbdt"
#: The peer's venv. MLServer 1.7.1 starts only with uvloop < 0.22.
MLSERVER_REQUIREMENTS = ("mlserver==1.7.1", "uvloop==0.21.0", "onnxruntime==1.32.0", "numpy==2.4.6")
BATCHES = (1, 256)
THREADS = 8
START_TIMEOUT_S = 120.0

# The custom MLServer runtime: ONNX Runtime with Scoregate's session options (RuntimeOptions defaults).
_MLSERVER_RUNTIME = """
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse
from mlserver.utils import get_model_uri


class OnnxRuntime(MLModel):
    async def load(self) -> bool:
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "0")
        uri = await get_model_uri(self._settings)
        self._session = ort.InferenceSession(uri, so, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name
        self._output = self._session.get_outputs()[0].name
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0])
        y = self._session.run(None, {self._input: x})[0]
        return InferenceResponse(model_name=self.name, outputs=[NumpyCodec.encode_output(self._output, y)])
"""


# ---------------------------------------------------------------------------------------- peer venv
def _stamp() -> Path:
    return PEER_VENV / "scoregate-requirements.txt"


def peer_available() -> bool:
    """Whether the MLServer venv is built with :data:`MLSERVER_REQUIREMENTS`."""
    stamp = _stamp()
    return stamp.is_file() and stamp.read_text(encoding="utf-8").split() == list(MLSERVER_REQUIREMENTS)


def build_peer() -> None:
    """Create (or update) the MLServer venv; idempotent (a stamp records what it holds)."""
    if peer_available():
        return
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(PEER_VENV)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *MLSERVER_REQUIREMENTS],
        check=True,
    )
    _stamp().write_text("\n".join(MLSERVER_REQUIREMENTS) + "\n", encoding="utf-8")


def _prepare(quick: bool) -> None:
    from models.demo import build_demo

    build_demo(DEMO_DIR)
    try:
        build_peer()
    except (OSError, subprocess.CalledProcessError) as exc:
        if not quick:
            raise
        print(f"perf grpc: MLServer venv unavailable ({exc}); quick run without the peer", file=sys.stderr)


# ---------------------------------------------------------------------------------------- servers
def _model_file() -> Path:
    from models.demo import load_demo_manifests

    manifest = {m.name: m for m in load_demo_manifests(DEMO_DIR)}[MODEL]
    return DEMO_DIR / "models" / MODEL / manifest.version / manifest.onnx_file


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_children: list[subprocess.Popen[bytes]] = []
_scratch: list[Path] = []


def _end_children() -> None:
    """At the fork's exit: end its servers, then remove their scratch directories."""
    for proc in _children:
        if proc.poll() is None:
            proc.terminate()
    for proc in _children:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for path in _scratch:
        shutil.rmtree(path, ignore_errors=True)


atexit.register(_end_children)


def _spawn(cmd: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    _children.append(proc)
    return proc


def _wait_ready(address: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until ``MODEL`` is ready at ``address``; fails with the server's log if it dies or takes too long."""
    import grpc

    from gateway.grpc.client import InferenceStub
    from gateway.grpc.protos import inference_pb2 as pb

    deadline = time.monotonic() + START_TIMEOUT_S
    with grpc.insecure_channel(address) as channel:
        stub = InferenceStub(channel)
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            with contextlib.suppress(grpc.RpcError):
                if stub.ModelReady(pb.ModelReadyRequest(name=MODEL), timeout=1.0, wait_for_ready=True).ready:
                    return
    tail = log.read_text(encoding="utf-8", errors="replace")[-3000:] if log.is_file() else ""
    raise RuntimeError(f"server at {address} not ready (exit {proc.poll()}):\n{tail}")


@functools.cache
def _scoregate() -> str:
    """Start ``serve-grpc`` on the one model (default options); its address."""
    models = WORK_DIR / f"scoregate-{os.getpid()}" / "models" / MODEL
    models.mkdir(parents=True, exist_ok=True)
    _scratch.append(models.parents[1])
    version = models / "1"
    if not version.exists():
        version.mkdir()
        (version / "model.onnx").symlink_to(_model_file())
    port = _free_port()
    log = models.parents[1] / "server.log"
    cmd = [sys.executable, "-m", "gateway", "serve-grpc", "--models", str(models.parent), "--port", str(port)]
    proc = _spawn(cmd, log, ROOT)
    address = f"127.0.0.1:{port}"
    _wait_ready(address, proc, log)
    return address


@functools.cache
def _mlserver(parallel_workers: int) -> str:
    """Start MLServer with ``parallel_workers`` on the same model file; its gRPC address."""
    root = WORK_DIR / f"mlserver-pw{parallel_workers}-{os.getpid()}"
    model_dir = root / MODEL
    model_dir.mkdir(parents=True, exist_ok=True)
    _scratch.append(root)
    grpc_port, http_port, metrics_port = _free_port(), _free_port(), _free_port()
    settings = {
        "host": "127.0.0.1",
        "grpc_port": grpc_port,
        "http_port": http_port,
        "metrics_port": metrics_port,
        "parallel_workers": parallel_workers,
        "debug": False,
    }
    (root / "settings.json").write_text(json.dumps(settings), encoding="utf-8")
    model_settings = {
        "name": MODEL,
        "implementation": "onnx_runtime.OnnxRuntime",
        "parameters": {"uri": str(_model_file()), "version": "1"},
    }
    (model_dir / "model-settings.json").write_text(json.dumps(model_settings), encoding="utf-8")
    (model_dir / "onnx_runtime.py").write_text(_MLSERVER_RUNTIME, encoding="utf-8")
    log = root / "server.log"
    proc = _spawn([str(PEER_VENV / "bin" / "mlserver"), "start", str(root)], log, root)
    address = f"127.0.0.1:{grpc_port}"
    _wait_ready(address, proc, log)
    return address


@functools.cache
def _channel(address: str) -> Any:
    import grpc

    return grpc.insecure_channel(address)


# ---------------------------------------------------------------------------------------- cases
def _rows(batch: int) -> np.ndarray[Any, Any]:
    from models.demo import demo_features, load_demo_manifests

    manifest = {m.name: m for m in load_demo_manifests(DEMO_DIR)}[MODEL]
    return demo_features(DEMO_DIR, manifest, rows=batch, seed=1234)


def _floor(batch: int) -> Op:
    return floor_op(_model_file(), _rows(batch))


def _remote(server: str, batch: int) -> Op:
    """An op sending one raw-contents ``ModelInfer`` for ``batch`` rows; answers checked once first."""
    from gateway.grpc.client import InferenceStub, infer_request, raw_outputs

    address = _scoregate() if server == "scoregate" else _mlserver(int(server[-1]))
    x = _rows(batch)
    request = infer_request(MODEL, {"features": x})
    call = InferenceStub(_channel(address)).ModelInfer
    want = _direct(x)
    # MLServer's NumpyCodec answers a [batch] output as [batch, 1]: compare values row by row.
    got = raw_outputs(call(request, timeout=30.0))["score"].reshape(-1)
    if got.shape != want.shape or not np.allclose(got, want, atol=1e-6, rtol=0):
        raise AssertionError(f"{server} answers differ from ONNX Runtime's: max |d| {np.abs(got - want).max()}")

    def op() -> object:
        return call(request)

    return op


def _direct(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(_model_file()), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"features": x})[0])


def threaded(threads: int) -> Runner:
    """A closed-loop runner with ``threads`` client threads sharing the op; latency is each call's own."""

    def run(op: Op, seconds: float) -> Measurement:
        clock = time.perf_counter_ns
        samples: list[list[int]] = [[] for _ in range(threads)]
        start_line = threading.Barrier(threads + 1)
        ends = [0] * threads

        def work(k: int) -> None:
            append = samples[k].append
            start_line.wait()
            deadline = clock() + int(seconds * 1e9)
            now = clock()
            while now < deadline:
                t0 = clock()
                op()
                now = clock()
                append(now - t0)
            ends[k] = now

        workers = [threading.Thread(target=work, args=(k,), name=f"client-{k}") for k in range(threads)]
        for t in workers:
            t.start()
        start_line.wait()
        start = clock()
        for t in workers:
            t.join()
        return Measurement([v for s in samples for v in s], (max(ends) - start) / 1e9)

    return run


def _servers(quick: bool) -> list[str]:
    peers = ["mlserver_pw1"] if quick else ["mlserver_pw1", "mlserver_pw0"]
    return ["scoregate", *(peers if peer_available() else [])]


def _cases(quick: bool) -> list[Case]:
    servers = _servers(quick)
    cases: list[Case] = []
    for batch in BATCHES:
        params = {"batch": batch, "threads": 1}
        cases.append(Case("floor", params, functools.partial(_floor, batch), group=f"b{batch}"))
        for server in servers:
            cases.append(Case(server, params, functools.partial(_remote, server, batch), group=f"b{batch}"))
    params = {"batch": 1, "threads": THREADS}
    for server in servers:
        cases.append(
            Case(server, params, functools.partial(_remote, server, 1), group=f"t{THREADS}", runner=threaded(THREADS))
        )
    return cases


def _figures(results: list[Result]) -> dict[str, float]:
    by = {(r.name, r.params["batch"], r.params["threads"]): r for r in results}
    figures: dict[str, float] = {}
    for batch in BATCHES:
        floor = by[("floor", batch, 1)].percentile_us(50.0)
        ours = by[("scoregate", batch, 1)].percentile_us(50.0)
        figures[f"grpc_overhead_us_p50_b{batch}"] = ours - floor
        figures[f"grpc_p50_us_b{batch}"] = ours
    sg = by[("scoregate", 1, THREADS)]
    figures[f"grpc_tput_per_s_t{THREADS}"] = sg.throughput_per_s
    for peer, suffix in (("mlserver_pw1", ""), ("mlserver_pw0", "_pw0")):
        other = by.get((peer, 1, THREADS))
        if other is None:
            continue
        figures[f"grpc_tput_over_mlserver{suffix}"] = sg.throughput_per_s / other.throughput_per_s
        figures[f"grpc_p99_over_mlserver{suffix}"] = sg.percentile_us(99.0) / other.percentile_us(99.0)
        single = by[(peer, 1, 1)]
        figures[f"grpc_p50_over_mlserver_b1{suffix}"] = by[("scoregate", 1, 1)].percentile_us(50.0) / (
            single.percentile_us(50.0)
        )
    return figures


SUITE = Suite(
    name="grpc",
    description="KServe V2 gRPC endpoint vs the floor (batch 1/256) and vs MLServer 1.7.1 (8 client threads)",
    cases=_cases,
    figures=_figures,
    prepare=_prepare,
)
