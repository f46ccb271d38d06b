"""Suite ``rotation``: what a rolling deploy costs gRPC clients when replicas leave the rotation to load.

Set-up: the 24 demo models are published twice (versions 1 and 2) to a fresh artifact store under
``build/perf/rotation``; two Hazelcast members (child JVMs on loopback) and two ``serve-grpc`` replicas (processes)
of their cluster, started with ``--rotate-out-s`` (:class:`gateway.rollout_control.Rotation`): a replica that must
load a version sets its gRPC health NOT_SERVING, drains, loads, warms, swaps and comes back, one replica at a time.

Two clients load the replicas at the same time, each at half the rate (open loop, 16 rows of ``pctr_gbdt`` per call,
latency from the intended send time), both round-robin over the two replicas:

* **rotation**: gRPC client-side health checking on (``healthCheckConfig``): it sends no call to a replica out of
  rotation;
* **in place** (the baseline): the same channel without health checking, as a client that ignores the rotation:
  half its calls go to the replica that is loading, as they would without ``--rotate-out-s``.

Each round: steady windows, then a deploy that moves all 24 models to the other version (24 desired-state changes
written back to back) with windows until both replicas report every change, and one more window. Both clients meet
the same swaps and the same machine. Figures: ``rotation_swap_p99_over_steady_p99`` and
``inplace_swap_p99_over_steady_p99`` (p99 of the swap windows over p99 of the steady windows, per client), their
failed calls, and ``rotation_deploy_seconds_p50`` (from the first change to the last report).

On two cores the replica that loads still takes CPU from the one that serves, so the rotation client is not spared
the whole cost; on a machine per replica (a fleet) it would be. Quick mode (CI): two rounds, short windows.
"""

from __future__ import annotations

import json
import subprocess
import sys
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
from perf.suites.demo_store import constant, stop_processes, two_version_store

ROOT = Path(__file__).resolve().parents[2]
DEMO_DIR = ROOT / "build" / "demo"
STORE_DIR = ROOT / "build" / "perf" / "rotation"
MODEL = "pctr_gbdt"
ROWS = 16
REPLICAS = 2
DRAIN_S = 0.2


@dataclass(frozen=True)
class RotationPlan:
    rounds: int
    steady_windows: int
    window_seconds: float
    rate_per_s: float
    workers: int

    @staticmethod
    def for_run(quick: bool) -> RotationPlan:
        if quick:
            return RotationPlan(rounds=2, steady_windows=2, window_seconds=0.5, rate_per_s=400, workers=2)
        return RotationPlan(rounds=20, steady_windows=6, window_seconds=0.5, rate_per_s=600, workers=2)


def _prepare_store() -> list[str]:
    """The store; returns the model names."""
    store = two_version_store(STORE_DIR)
    return list(store.names())


def _start_replica(cluster: str, members: str, name: str) -> tuple[subprocess.Popen[str], str]:
    args = ["--store", str(STORE_DIR), "--no-validate", "--port", "0", "--workers", "4"]
    args += ["--cluster", cluster, "--members", members, "--replica", name, "--rotate-out-s", str(DRAIN_S)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve-grpc", *args], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "listening on " not in line:
        proc.kill()
        raise RuntimeError(f"replica {name} did not start: {line!r}")
    return proc, line.split("listening on ")[1].split()[0]


class _Client:
    """One gRPC client over every replica, round robin, with or without client-side health checking."""

    def __init__(self, addresses: list[str], health_checked: bool, request: Any) -> None:
        import grpc

        from gateway.grpc.client import InferenceStub

        config: dict[str, Any] = {"loadBalancingConfig": [{"round_robin": {}}]}
        if health_checked:
            config["healthCheckConfig"] = {"serviceName": ""}
        self.channel = grpc.insecure_channel(
            "ipv4:" + ",".join(addresses), options=[("grpc.service_config", json.dumps(config))]
        )
        self.stub = InferenceStub(self.channel)
        self.request = request
        self.failed = 0
        self.errors: list[str] = []

    def op(self) -> None:
        import grpc

        try:
            self.stub.ModelInfer(self.request, timeout=10)
        except grpc.RpcError as exc:  # counted, and kept in the latencies (a failed call took that long)
            self.failed += 1
            if len(self.errors) < 5:
                self.errors.append(f"{exc.code()}: {exc.details()}")


def _deploy(client: Any, names: list[str], version: str, replicas: int = REPLICAS) -> float:
    """Move every model to ``version`` (one desired-state change each, back to back); seconds until ``replicas``
    replicas reported every change."""
    from gateway.rollout_control import ConvergenceWaiter, change_desired
    from models.rollout import RolloutState

    start = time.perf_counter()
    with ConvergenceWaiter(client) as waiter:
        wanted = [change_desired(client, n, constant(RolloutState(n, version))) for n in names]
        for state in wanted if replicas else ():
            reports = waiter.wait(state.name, state.revision, replicas, timeout=120)
            if len(reports) < replicas or not all(r.ok for r in reports):
                raise RuntimeError(f"{state.name}@{version} did not converge: {reports}")
    return time.perf_counter() - start


def run(quick: bool, forks: int | None, show_progress: bool) -> dict[str, Any]:
    """Run the suite (``forks`` is ignored: replicas are processes of their own); returns the document."""
    from hazelcast.client import HazelcastClient
    from tqdm import tqdm

    from cache.member import start_cluster
    from gateway.grpc.client import infer_request
    from models.demo import demo_features, load_demo_manifests

    plan = RotationPlan.for_run(quick)
    names = _prepare_store()
    manifest = next(m for m in load_demo_manifests(DEMO_DIR) if m.name == MODEL)
    x = np.ascontiguousarray(demo_features(DEMO_DIR, manifest, rows=ROWS, seed=7))
    members = start_cluster(2)
    procs: list[subprocess.Popen[str]] = []
    client = None
    try:
        addresses = ",".join(m.address for m in members)
        cluster = members[0].options.cluster_name
        client = HazelcastClient(cluster_name=cluster, cluster_members=addresses.split(","), statistics_enabled=False)
        _deploy(client, names, "1", replicas=0)  # the replicas start on version 1 (the store's latest is 2)
        started = [_start_replica(cluster, addresses, f"rot{i}") for i in range(REPLICAS)]
        procs = [p for p, _ in started]
        request = infer_request(MODEL, {"features": x})
        clients = {
            "rotation": _Client([a for _, a in started], True, request),
            "inplace": _Client([a for _, a in started], False, request),
        }
        loops = {label: OpenLoop(plan.rate_per_s / 2, plan.workers) for label in clients}
        hists = {(label, kind): new_histogram() for label in clients for kind in ("warm", "steady", "swap")}
        elapsed = {key: 0.0 for key in hists}

        def window(kind: str) -> None:
            measured: dict[str, Any] = {}

            def drive(label: str) -> None:
                measured[label] = loops[label].run(clients[label].op, plan.window_seconds)

            threads = [threading.Thread(target=drive, args=(label,)) for label in clients]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for label, m in measured.items():
                record_latencies(hists[(label, kind)], m.latencies_ns)
                elapsed[(label, kind)] += m.elapsed_s

        for _ in range(4):  # warm-up: channels connected, every thread's first calls made
            window("warm")  # recorded under its own key, never reported
        deploys: list[float] = []
        for r in tqdm(range(plan.rounds), desc="perf rotation", unit="deploy", disable=not show_progress):
            for _ in range(plan.steady_windows):
                window("steady")
            took: list[float] = []
            version = "2" if r % 2 == 0 else "1"
            deployer = threading.Thread(target=lambda: took.append(_deploy(client, names, version)))  # noqa: B023
            deployer.start()
            while deployer.is_alive():
                window("swap")
            window("swap")  # the replicas are back: the calls right after the last rejoin
            deployer.join()
            if not took:
                raise RuntimeError("a deploy failed (see the replicas' output)")
            deploys.extend(took)
        for c in clients.values():
            c.channel.close()
    finally:
        if client is not None:
            client.shutdown()
        stop_processes(procs, subprocess.Popen.terminate)
        for member in members:
            member.stop()

    params = {"rows": ROWS, "rate_per_s": plan.rate_per_s / 2, "replicas": REPLICAS, "drain_s": DRAIN_S}
    rows = [
        Result(f"{label}_{kind}", params, hists[(label, kind)], elapsed[(label, kind)]).to_json()
        for label in clients
        for kind in ("steady", "swap")
    ]
    p99 = {row["name"]: row["p99_us"] for row in rows}
    figures = {
        "rotation_swap_p99_over_steady_p99": p99["rotation_swap"] / p99["rotation_steady"],
        "inplace_swap_p99_over_steady_p99": p99["inplace_swap"] / p99["inplace_steady"],
        "rotation_failed_calls": float(clients["rotation"].failed),
        "inplace_failed_calls": float(clients["inplace"].failed),
        "rotation_deploy_seconds_p50": float(np.percentile(deploys, 50)),
        "rotation_deploys": float(len(deploys)),
    }
    doc = document_rows("rotation", quick, rows, figures, asdict(plan))
    doc["meta"]["errors"] = {label: c.errors for label, c in clients.items()}
    return doc


def notes(doc: Any) -> str:
    f = doc["figures"]
    return (
        f"\n{int(f['rotation_deploys'])} deploys of the 24 demo models on {REPLICAS} `serve-grpc` replicas that leave "
        f"the rotation to load (drain {DRAIN_S} s; a deploy took {f['rotation_deploy_seconds_p50']:.2f} s at the "
        f"median). p99 during deploys over steady p99: x{f['rotation_swap_p99_over_steady_p99']:.2f} for the client "
        f"that checks health, x{f['inplace_swap_p99_over_steady_p99']:.2f} for the one that does not (the baseline: "
        f"loads in rotation). Failed calls: {int(f['rotation_failed_calls'])} and "
        f"{int(f['inplace_failed_calls'])}.\n"
    )


SUITE = ExternalSuite(
    name="rotation",
    description="rolling deploys across gRPC replicas that leave the rotation to load, against clients that ignore it",
    run=run,
    notes=notes,
)
