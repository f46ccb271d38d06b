"""Suite ``jmh``: ONNX Runtime's own Java API against Scoregate's JVM transports, in JMH, same model and rows.

What a JVM team would use instead of Scoregate is ONNX Runtime's Java API; this suite measures it and the three
ways a JVM reaches Scoregate, from JMH benchmark threads on the benchmark MLP (:mod:`perf.bench_model`, 64 -> 256 ->
128 -> 1) with the same fixed-seed rows, the same session options, the same batch sizes and thread counts:

* ``ort_java``: ``OrtJavaBenchmark.run``, the usual ``OrtSession.run`` (output allocated by ONNX
  Runtime, scores copied out), in ``java -jar perf/target/benchmarks.jar`` with JMH's own fork.
* ``ort_java_pinned``: ``OrtJavaBenchmark.runPinned``, the output pre-bound to a direct buffer: the
  best the Java API offers (nothing allocated or copied per call), and what the bridge does too.
* ``bridge``: ``InProcessBridgeBenchmark.score``, ``ModelGateways.get().score(request)`` on an arena
  slot, in a Python process that hosts the JVM (JPype) with ``benchmarks.jar`` on its classpath,
  serves the model through :class:`jvm_bridge.inprocess.InProcessHost` (2 workers) and calls JMH's
  ``Runner`` with ``forks=0`` (:mod:`perf.suites.jmh_bridge`). One such Python process is one
  fork (of one thread count). The JMH include pattern names only that class, so ONNX Runtime's
  Java classes (and their native library) never load beside Python's: the child checks its own
  memory map for that.
* ``py4j``: ``RemoteGatewayBenchmark.score``, the out-of-process mode: ``ModelGateways.connect`` to a
  ``python -m gateway serve-py4j`` started for the round, tensors through the shared-memory ring.
* ``grpc``: ``GrpcBenchmark.infer``, a grpc-java client calling ``ModelInfer`` (raw contents) on a
  ``python -m gateway serve-grpc`` started for the round, over loopback.

Forks run as rounds, side by side: per thread count, each round runs every side back to back, in
alternating order from round to round, so machine drift hits both sides of a ratio alike. Both JMH modes run:
``Throughput`` (ops/s, summed over threads; averaged over every measured iteration of every round)
and ``SampleTime`` (per-call latency; percentiles from JMH's merged raw histograms).

Results are in the harness schema: name, params ``batch``/``threads``, ``n`` (latency samples),
p50/p99/p99.9 µs, ``throughput_per_s`` (calls/s, not rows/s), plus ``throughput_per_round``.
Figures: ``bridge_over_ortjava_tput_b{B}_t{T}`` (bridge / ``ort_java`` throughput),
``bridge_over_ortjava_pinned_tput_b{B}_t{T}``, ``py4j_over_ortjava_tput_b{B}_t{T}`` and
``grpc_over_ortjava_tput_b{B}_t{T}`` for (256, 1), (256, 8), (1, 32) and every other measured pair.
``diagnostics`` says what limits the bridge, per case: CPU per call by thread group (Python workers, Java callers,
JIT), cores busy, requests per ONNX Runtime run (micro-batching), and the ONNX Runtime floor of Python's library in
the same process.

``--quick``: 1 round, JMH ``-wi 1 -i 2 -w 1s -r 1s``, threads 1 and 8 at batch 256 and 32 at
batch 1. Full: 2 rounds, ``-wi 3 -i 5 -w 1s -r 1s``, threads 1 (batch 1 and 256), 8 (batch 256) and 32 (batch 1).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from perf.report import document_rows
from perf.suites import ExternalSuite

ROOT = Path(__file__).resolve().parents[2]
JAR = ROOT / "perf" / "target" / "benchmarks.jar"
PACKAGE = "dev.scoregate.perf"

#: Result name -> JMH benchmark (class.method) that measures it.
BENCHMARKS: dict[str, str] = {
    "ort_java": "OrtJavaBenchmark.run",
    "ort_java_pinned": "OrtJavaBenchmark.runPinned",
    "bridge": "InProcessBridgeBenchmark.score",
    "py4j": "RemoteGatewayBenchmark.score",
    "grpc": "GrpcBenchmark.infer",
}
#: The transports compared with ONNX Runtime's Java API, in the order each round starts them.
SIDES = ("ort_java", "bridge", "py4j", "grpc")
#: Python server command of each out-of-process side (``python -m gateway ...``).
_SERVERS = {"py4j": "serve-py4j", "grpc": "serve-grpc"}
#: (batch, threads) of the named figures; every run measures them.
HEADLINE = ((256, 1), (256, 8), (1, 32))

_TPUT_PER_S = {"ops/s": 1.0, "ops/ms": 1e3, "ops/us": 1e6, "ops/ns": 1e9}
_TIME_US = {"s/op": 1e6, "ms/op": 1e3, "us/op": 1.0, "ns/op": 1e-3}
_CHILD_TIMEOUT_S = 3600
_SERVER_START_S = 60.0
#: The benchmark model's name in the servers' model directory (the Java benchmarks' ``model`` param).
MODEL = "bench_mlp"
#: Scoring threads per client of the Py4J server, as the bridge's Python workers (the gRPC server keeps its
#: default handler pool).
SERVER_WORKERS = 2


@dataclass(frozen=True)
class JmhPlan:
    """JMH iteration settings for every case; ``rounds`` is the number of forks of each side."""

    warmup_iterations: int
    measurement_iterations: int
    iteration_seconds: int
    rounds: int

    @staticmethod
    def for_run(quick: bool) -> JmhPlan:
        return JmhPlan(1, 2, 1, 1) if quick else JmhPlan(3, 5, 1, 2)

    def cli(self) -> list[str]:
        """The same settings as ``java -jar benchmarks.jar`` options (one fork per invocation)."""
        s = f"{self.iteration_seconds}s"
        return ["-f", "1", "-wi", str(self.warmup_iterations), "-i", str(self.measurement_iterations), "-w", s, "-r", s]


def sweep(quick: bool) -> dict[int, tuple[int, ...]]:
    """Threads -> batch sizes measured at that thread count (one JMH run per thread count)."""
    if quick:
        return {1: (256,), 8: (256,), 32: (1,)}
    # The named figures' cases plus batch 1 on one thread, for four transports: ~11 minutes. The jar sweeps every
    # @Param (batch 1, 32, 256) when run directly (java -jar perf/target/benchmarks.jar ... -t T).
    return {1: (1, 256), 8: (256,), 32: (1,)}


# -------------------------------------------------------------------------------------- parent
def run(quick: bool, forks: int | None, show_progress: bool) -> dict[str, Any]:
    """Measure every case, ``plan.rounds`` rounds side by side; return the suite's document."""
    from perf.bench_model import bench_mlp_path

    if not JAR.is_file():
        raise FileNotFoundError(f"{JAR} is missing: build it with 'mvn -q -B install -DskipTests' (make setup)")
    plan = JmhPlan.for_run(quick)
    if forks:
        plan = JmhPlan(plan.warmup_iterations, plan.measurement_iterations, plan.iteration_seconds, forks)
    model = bench_mlp_path()
    cases = sweep(quick)
    say: Callable[[str], None] = (lambda line: print(line, flush=True)) if show_progress else (lambda line: None)
    work = Path(tempfile.mkdtemp(prefix="scoregate-jmh-"))
    started = time.perf_counter()
    # The out-of-process servers load a model directory: <root>/<name>/<version>/model.onnx.
    models = work / "models"
    (models / MODEL / "1").mkdir(parents=True)
    (models / MODEL / "1" / "model.onnx").symlink_to(model.resolve())
    try:
        files: list[tuple[int, Path]] = []
        diags: list[dict[str, Any]] = []
        for r in range(plan.rounds):
            for threads, batches in cases.items():
                # Each thread count's pair runs back to back, in alternating order from round to round, so
                # that a noisy neighbour's burst lands on both sides of a ratio alike.
                sides = SIDES if r % 2 == 0 else SIDES[::-1]
                for side in sides:
                    t0 = time.perf_counter()
                    if side == "ort_java":
                        out = work / f"ort-r{r}-t{threads}.json"
                        _java_ort(model, threads, batches, plan, out, work / "ort.log")
                        files.append((r, out))
                    elif side in _SERVERS:
                        out = work / f"{side}-r{r}-t{threads}.json"
                        with _server(side, models, work / f"{side}-server.log") as port:
                            _java_remote(side, port, threads, batches, plan, out, work / f"{side}.log")
                        files.append((r, out))
                    else:
                        out_dir = work / f"bridge-r{r}-t{threads}"
                        _python_bridge({threads: batches}, plan, out_dir, work / "bridge.log")
                        files += [(r, out_dir / f"t{threads}-b{b}.json") for b in batches]
                        diags.append(json.loads((out_dir / "diag.json").read_text(encoding="utf-8")))
                    took = time.perf_counter() - t0
                    say(f"jmh round {r + 1}/{plan.rounds}: {side} threads={threads} batch={list(batches)} {took:.0f} s")
        entries = [(r, entry) for r, f in files for entry in _load(f)]
        rows = aggregate(entries, cases)
    except BaseException:
        for log in sorted(work.glob("*.log")):
            sys.stderr.write(f"--- {log.name} (last 4000 characters)\n{log.read_text(errors='replace')[-4000:]}\n")
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    doc = document_rows("jmh", quick, rows, figures(rows), asdict(plan))
    doc["diagnostics"] = merge_diagnostics(diags)
    doc["meta"].update(
        _jvm_meta(entry for _, entry in entries), elapsed_s=round(time.perf_counter() - started, 1), sweep=cases
    )
    return doc


def _java_ort(model: Path, threads: int, batches: Sequence[int], plan: JmhPlan, out: Path, log: Path) -> None:
    java = shutil.which("java")
    if java is None:
        raise FileNotFoundError("no 'java' on the PATH (a JDK 17 is needed, as for the Maven build)")
    cmd = [
        java, "-jar", str(JAR),
        rf"{PACKAGE}\.OrtJavaBenchmark\.(run|runPinned)$",
        "-p", f"model={model}", "-p", "batch=" + ",".join(map(str, batches)),
        "-t", str(threads), *plan.cli(), "-foe", "true", "-rf", "json", "-rff", str(out),
    ]  # fmt: skip
    _call(cmd, log)


def _java_remote(
    side: str, port: int, threads: int, batches: Sequence[int], plan: JmhPlan, out: Path, log: Path
) -> None:
    """The JMH benchmark of ``side`` against a Python server on 127.0.0.1:``port``, in JMH's own fork."""
    java = shutil.which("java")
    if java is None:
        raise FileNotFoundError("no 'java' on the PATH (a JDK 17 is needed, as for the Maven build)")
    bench = BENCHMARKS[side].replace(".", r"\.")
    cmd = [
        java, "-jar", str(JAR), rf"{PACKAGE}\.{bench}$",
        "-p", f"port={port}", "-p", f"model={MODEL}", "-p", "batch=" + ",".join(map(str, batches)),
        "-t", str(threads), *plan.cli(), "-foe", "true", "-rf", "json", "-rff", str(out),
    ]  # fmt: skip
    _call(cmd, log)


@contextlib.contextmanager
def _server(side: str, models: Path, log: Path) -> Iterator[int]:
    """``python -m gateway serve-py4j|serve-grpc`` on a free loopback port, up until the block ends."""
    port = _free_port()
    cmd = [
        sys.executable, "-m", "gateway", _SERVERS[side], "--models", str(models), "--port", str(port),
        *(["--workers", str(SERVER_WORKERS)] if side == "py4j" else []),
    ]  # fmt: skip
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with log.open("a", encoding="utf-8") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT)
        try:
            _wait_listening(port, proc, _SERVER_START_S)
            yield port
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before listening on port {port}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)  # polling a port that is not open yet: nothing to wait on instead
    raise TimeoutError(f"no server on 127.0.0.1:{port} after {timeout_s:.0f} s")


def _python_bridge(cases: Mapping[int, Sequence[int]], plan: JmhPlan, out_dir: Path, log: Path) -> None:
    out_dir.mkdir(parents=True)
    cmd = [
        sys.executable, "-m", "perf.suites.jmh_bridge",
        "--out-dir", str(out_dir),
        "--plan", json.dumps(asdict(plan)),
        "--sweep", json.dumps({str(t): list(b) for t, b in cases.items()}),
    ]  # fmt: skip
    _call(cmd, log)


def _call(cmd: Sequence[str], log: Path) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with log.open("a", encoding="utf-8") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=_CHILD_TIMEOUT_S, check=False
        )
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} {cmd[1]} ... exited {proc.returncode}; see the log above")


def _load(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, list) or not data:
        raise RuntimeError(f"{path.name}: JMH wrote no results")
    return data


# ------------------------------------------------------------------------------------ analysis
def aggregate(
    entries: Iterable[tuple[int, Mapping[str, Any]]], cases: Mapping[int, Sequence[int]]
) -> list[dict[str, Any]]:
    """Rows in the results schema, one per (name, batch, threads), from ``(round, JMH entry)`` pairs.

    Throughput: mean over every measured iteration of every round (each iteration's score is already
    summed over threads). Latency: percentiles of the SampleTime histograms of every iteration merged.
    Raises if a swept case has no throughput result.
    """
    names = {f"{PACKAGE}.{bench}": name for name, bench in BENCHMARKS.items()}
    tput: dict[tuple[str, int, int], dict[int, list[float]]] = {}
    hist: dict[tuple[str, int, int], dict[float, int]] = {}
    for rnd, e in entries:
        name = names.get(str(e["benchmark"]))
        if name is None:
            continue
        key = (name, int(e["params"]["batch"]), int(e["threads"]))
        metric = e["primaryMetric"]
        unit = str(metric["scoreUnit"])
        if e["mode"] == "thrpt":
            scale = _TPUT_PER_S[unit]
            per_round = tput.setdefault(key, {}).setdefault(rnd, [])
            per_round += [float(v) * scale for fork in metric["rawData"] for v in fork]
        elif e["mode"] == "sample":
            scale = _TIME_US[unit]
            merged = hist.setdefault(key, {})
            for fork in metric["rawDataHistogram"]:
                for iteration in fork:
                    for value, count in iteration:
                        us = float(value) * scale
                        merged[us] = merged.get(us, 0) + int(count)
    rows: list[dict[str, Any]] = []
    for name in BENCHMARKS:
        for threads, batches in cases.items():
            for batch in batches:
                key = (name, batch, threads)
                if key not in tput:
                    raise RuntimeError(f"no JMH throughput result for {name} batch={batch} threads={threads}")
                rounds = [sum(v) / len(v) for _, v in sorted(tput[key].items())]
                everything = [x for _, v in sorted(tput[key].items()) for x in v]
                h = hist.get(key, {})
                rows.append(
                    {
                        "name": name,
                        "params": {"batch": batch, "threads": threads},
                        "n": sum(h.values()),
                        "p50_us": round(percentile(h, 50.0), 3),
                        "p99_us": round(percentile(h, 99.0), 3),
                        "p999_us": round(percentile(h, 99.9), 3),
                        "throughput_per_s": round(sum(everything) / len(everything), 1),
                        "throughput_per_round": [round(x, 1) for x in rounds],
                    }
                )
    return rows


def percentile(histogram: Mapping[float, int], p: float) -> float:
    """The smallest recorded value with at least ``p`` % of the samples at or below it; 0 if none."""
    total = sum(histogram.values())
    if total == 0:
        return 0.0
    rank = p / 100.0 * total
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return max(histogram)


def figures(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Bridge throughput over each ONNX Runtime Java variant's, for every (batch, threads) measured."""
    by = {(r["name"], r["params"]["batch"], r["params"]["threads"]): float(r["throughput_per_s"]) for r in rows}
    measured = {(b, t) for _, b, t in by}
    pairs = [*HEADLINE, *sorted(measured - set(HEADLINE))]
    out: dict[str, float] = {}
    for other, label in (("ort_java", "ortjava"), ("ort_java_pinned", "ortjava_pinned")):
        for batch, threads in pairs:
            bridge = by[("bridge", batch, threads)]
            out[f"bridge_over_{label}_tput_b{batch}_t{threads}"] = bridge / by[(other, batch, threads)]
    for side in ("py4j", "grpc"):
        for batch, threads in pairs:
            if (side, batch, threads) in by:
                ratio = by[(side, batch, threads)] / by[("ort_java", batch, threads)]
                out[f"{side}_over_ortjava_tput_b{batch}_t{threads}"] = ratio
    return out


def merge_diagnostics(rounds: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The bridge forks' diagnostics (:mod:`perf.suites.jmh_bridge`), each number averaged over rounds."""

    def mean(items: Sequence[Mapping[str, Any]], key: tuple[str, ...]) -> list[dict[str, Any]]:
        groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
        for item in items:
            groups.setdefault(tuple(item[k] for k in key), []).append(item)
        return [_mean_dicts(g) for g in groups.values()]

    return {
        "bridge": mean([d for r in rounds for d in r["bridge"]], ("batch", "threads")),
        "ort_python": mean([d for r in rounds for d in r["ort_python"]], ("batch",)),
    }


def _mean_dicts(items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, first in items[0].items():
        if isinstance(first, Mapping):
            out[key] = _mean_dicts([i[key] for i in items])
        elif isinstance(first, int | float) and key not in ("batch", "threads"):
            out[key] = round(sum(float(i[key]) for i in items) / len(items), 3)
        else:
            out[key] = first
    return out


def notes(doc: Mapping[str, Any]) -> str:
    """Markdown: where the bridge's CPU went, per case, beside this process's ONNX Runtime floor."""
    diag = doc.get("diagnostics")
    if not diag:
        return ""
    floor = {d["batch"]: d for d in diag["ort_python"]}
    lines = [
        "",
        "Bridge diagnostics (CPU per call by thread group, from /proc; ONNX Runtime floor of the Python library,",
        "one thread, same session options, in the bridge process):",
        "",
        "| batch | threads | requests / ONNX run | cores busy | Python workers µs | Java callers µs | JIT µs "
        "| other µs | total µs | ORT-Python floor µs (cpu) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for d in diag["bridge"]:
        c = d["cpu_us_per_call"]
        f = floor.get(d["batch"], {"us_per_call": 0.0, "cpu_us_per_call": 0.0})
        lines.append(
            f"| {d['batch']} | {d['threads']} | {d['requests_per_onnx_run']:.2f} | {d['cores_busy']:.2f} "
            f"| {c['python_workers']:.1f} | {c['java_callers']:.1f} | {c['jit']:.1f} | {c['other']:.1f} "
            f"| {d['cpu_us_per_call_total']:.1f} | {f['us_per_call']:.1f} ({f['cpu_us_per_call']:.1f}) |"
        )
    return "\n".join(lines) + "\n"


def _jvm_meta(entries: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    for e in entries:
        return {"jmh": e.get("jmhVersion"), "jvm": f"{e.get('vmName')} {e.get('vmVersion')}"}
    return {}


SUITE = ExternalSuite(
    name="jmh",
    description="JMH: ONNX Runtime's Java API vs the in-process bridge (bench MLP, batch x Java threads)",
    run=run,
    notes=notes,
)
