"""A serving gateway as a replica of the cluster: ``serve-grpc --store S --cluster C --members M`` starts on the
cluster's desired state, follows canaries, promotions and rollbacks, and reports what it serves; real Hazelcast
members, a real server process, tritonclient."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lifecycle_builders import FEATURES, package_dir

from cache.member import HazelcastMember
from gateway.rollout_control import change_desired, read_reports
from models.rollout import RolloutState, bucket
from models.store import ArtifactStore
from models.validate import ValidationOptions, validate_package

hazelcast = pytest.importorskip("hazelcast")
tritonclient_grpc = pytest.importorskip("tritonclient.grpc")
ROOT = Path(__file__).resolve().parents[2]
MODEL = "gctr"  # a name of its own in the cluster's desired map
SCORE = 1 / (1 + np.exp(3.0))  # both versions' score at x = 0: the same model, a good candidate (its gate passes)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("replica")
    store = ArtifactStore(root / "store")
    for version in ("1", "2"):
        store.publish(package_dir(root / "src", MODEL, version))
        report = validate_package(store.get(MODEL, version), ValidationOptions())
        assert report.passed, report.render()
        store.save_report(MODEL, version, report.to_json())
    return root / "store"


def _start(
    cluster: list[HazelcastMember], store: Path, command: str, replica: str, *extra: str
) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            command,
            "--store",
            str(store),
            "--port",
            "0",
            "--cluster",
            cluster[0].options.cluster_name,
            "--members",
            ",".join(m.address for m in cluster),
            "--replica",
            replica,
            *extra,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # once listening (or "" if it died)
    assert "listening on " in line and f"replica {replica} of cluster" in line, line
    return proc, line.split("listening on ")[1].split()[0]


def _stop(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stdout is not None:
            proc.stdout.close()


def _wait_report(client: Any, replica: str, state: RolloutState) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        mine = [r for r in read_reports(client, MODEL) if r.replica == replica and r.revision >= state.revision]
        if mine:
            assert mine[0].ok and (mine[0].live, mine[0].candidate) == (state.live, state.candidate), mine
            return
        time.sleep(0.05)
    raise AssertionError(f"{replica} did not report revision {state.revision}")


def _versions(triton: Any, keys: list[str]) -> dict[str, str]:
    x = np.zeros((2, FEATURES), np.float32)
    out = {}
    for key in keys:
        inp = tritonclient_grpc.InferInput("features", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        result = triton.infer(MODEL, [inp], parameters={"routing_key": key})
        out[key] = result.get_response().model_version
        np.testing.assert_allclose(result.as_numpy("score"), SCORE, rtol=1e-5)
    return out


def test_a_grpc_server_follows_the_clusters_rollouts(
    cluster: list[HazelcastMember], store: Path, cluster_client: Any
) -> None:
    # The cluster wants version 1 live, although 2 is the latest published: the replica must start on 1.
    live = change_desired(cluster_client, MODEL, lambda cur: RolloutState(MODEL, "1"))
    proc, address = _start(cluster, store, "serve-grpc", "g1")
    try:
        _wait_report(cluster_client, "g1", live)
        triton = tritonclient_grpc.InferenceServerClient(address)
        keys = [f"user-{i}" for i in range(200)]
        assert set(_versions(triton, keys[:20]).values()) == {"1"}
        assert triton.get_model_metadata(MODEL).versions == ["1"]

        canary = change_desired(cluster_client, MODEL, lambda cur: RolloutState(MODEL, "1", "2", canary_pct=40.0))
        _wait_report(cluster_client, "g1", canary)
        served = _versions(triton, keys)
        assert served == {k: "2" if bucket(k.encode()) < canary.threshold else "1" for k in keys}
        assert 0.25 < list(served.values()).count("2") / len(keys) < 0.55

        promoted = change_desired(cluster_client, MODEL, lambda cur: RolloutState(MODEL, "2"))
        _wait_report(cluster_client, "g1", promoted)
        assert set(_versions(triton, keys[:20]).values()) == {"2"}
        triton.close()
    finally:
        code = _stop(proc)
    assert code == 0


def test_a_grpc_replica_leaves_the_rotation_while_it_loads(
    cluster: list[HazelcastMember], store: Path, cluster_client: Any
) -> None:
    """``--rotate-out-s``: health goes NOT_SERVING before the load of a new version and SERVING after it; calls
    that still come in the meantime are answered."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    change_desired(cluster_client, MODEL, lambda cur: RolloutState(MODEL, "1"))
    proc, address = _start(cluster, store, "serve-grpc", "g2", "--rotate-out-s", "0.3")
    statuses: list[int] = []
    try:
        with grpc.insecure_channel(address) as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(), timeout=120)

            def follow() -> None:
                with contextlib.suppress(grpc.RpcError):  # cancelled at the end
                    for update in watch:
                        statuses.append(update.status)

            follower = threading.Thread(target=follow, daemon=True)
            follower.start()
            triton = tritonclient_grpc.InferenceServerClient(address)
            canary = change_desired(cluster_client, MODEL, lambda cur: RolloutState(MODEL, "1", "2", canary_pct=40.0))
            while not read_reports(cluster_client, MODEL) or not any(
                r.replica == "g2" and r.revision >= canary.revision for r in read_reports(cluster_client, MODEL)
            ):
                assert set(_versions(triton, ["user-1"]).values()) <= {"1", "2"}  # answered throughout
            _wait_report(cluster_client, "g2", canary)
            give_up = time.monotonic() + 30
            serving, not_serving = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
            while statuses[-1:] != [serving] or not_serving not in statuses:
                assert time.monotonic() < give_up, statuses
                time.sleep(0.01)
            assert statuses == [serving, not_serving, serving], statuses  # left once, for the load, and came back
            assert triton.is_server_ready()
            triton.close()
            watch.cancel()
    finally:
        code = _stop(proc)
    assert code == 0


def test_a_py4j_server_is_a_replica_too(cluster: list[HazelcastMember], store: Path, cluster_client: Any) -> None:
    state = change_desired(cluster_client, MODEL, lambda cur: RolloutState(MODEL, "1"))
    proc, _ = _start(cluster, store, "serve-py4j", "p1")
    try:
        _wait_report(cluster_client, "p1", state)
    finally:
        code = _stop(proc)
    assert code == 0
