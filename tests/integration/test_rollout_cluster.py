"""Three gateway replicas (processes) on one real Hazelcast cluster converge on the desired rollout state."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lifecycle_builders import FEATURES, package_dir

from cache.member import HazelcastMember
from gateway.cli import main
from gateway.engine import Engine
from gateway.rollout import RolloutController
from gateway.rollout_control import ControlPlane, change_desired, read_desired, wait_converged
from models.rollout import RolloutState
from models.store import ArtifactStore
from models.validate import ValidationOptions, validate_package

hazelcast = pytest.importorskip("hazelcast")
ROOT = Path(__file__).resolve().parents[2]
REPLICAS = 3


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rollout")
    store = ArtifactStore(root / "store")
    for version in ("1", "2"):
        store.publish(package_dir(root / "src", "pctr", version))
        report = validate_package(store.get("pctr", version), ValidationOptions())
        assert report.passed, report.render()
        store.save_report("pctr", version, report.to_json())
    for version, bias in (("1", -3.0), ("2", -2.3)):  # pcvr@2: scores shifted up, a bad candidate
        store.publish(package_dir(root / "src", "pcvr", version, bias=bias))
        report = validate_package(store.get("pcvr", version), ValidationOptions())
        store.save_report("pcvr", version, report.to_json())
    return root / "store"


@pytest.fixture(scope="module")
def replicas(cluster: list[HazelcastMember], store: Path) -> Iterator[list[subprocess.Popen[str]]]:
    members = ",".join(m.address for m in cluster)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gateway.rollout_control",
                "--store",
                str(store),
                "--cluster",
                cluster[0].options.cluster_name,
                "--members",
                members,
                "--replica",
                f"r{i}",
                "--resync",
                "0.5",
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(REPLICAS)
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # blocks until the replica serves (or dies: then "")
            assert line.startswith("ready"), line
        yield procs
    finally:
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.close()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


def _reports_at(client: hazelcast.HazelcastClient, state: RolloutState) -> list:  # type: ignore[type-arg]
    reports = wait_converged(client, "pctr", state.revision, REPLICAS, timeout=60)
    assert len(reports) == REPLICAS, reports
    return reports


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    code = main(list(argv))
    return code, json.loads(capsys.readouterr().out)


def test_the_cli_deploys_promotes_and_rolls_back_across_replicas(
    cluster: list[HazelcastMember],
    store: Path,
    replicas: list[subprocess.Popen[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    where = [
        "--store",
        str(store),
        "--members",
        ",".join(m.address for m in cluster),
        "--cluster",
        cluster[0].options.cluster_name,
        "--json",
    ]
    waiting = [*where, "--wait", "60", "--replicas", str(REPLICAS)]
    code, doc = _cli(capsys, "deploy", "pctr@2", "--canary", "10", *waiting)
    assert code == 0 and doc["converged"] is True, doc
    assert doc["desired"]["candidate"] == "2" and doc["desired"]["canary_pct"] == 10.0
    assert {(r["live"], r["candidate"]) for r in doc["replicas"]} == {("1", "2")}
    code, doc = _cli(capsys, "status", *where)
    assert code == 0 and doc["desired"]["pctr"]["candidate"] == "2" and len(doc["replicas"]) == REPLICAS
    code, doc = _cli(capsys, "promote", "pctr", *waiting)
    assert code == 0 and {r["live"] for r in doc["replicas"]} == {"2"}
    code, doc = _cli(capsys, "rollback", "pctr", *where)
    assert code == 2 and "no running candidate" in doc["message"]
    code, doc = _cli(capsys, "rollback", "pctr", "--to", "1", *waiting)
    assert code == 0 and {(r["live"], r["ok"]) for r in doc["replicas"]} == {("1", True)}
    code, doc = _cli(capsys, "deploy", "pctr@9", "--canary", "5", *where)
    assert code == 2 and "not published" in doc["message"]
    code, doc = _cli(capsys, "deploy", "../pctr@2", *where)
    assert code == 2 and doc["error"] == "UnsafeNameError"


def test_a_gate_failing_on_one_replica_rolls_the_candidate_back_everywhere(
    cluster: list[HazelcastMember], store: Path, replicas: list[subprocess.Popen[str]]
) -> None:
    engine = Engine.from_store(store)
    controller = RolloutController(engine)
    client = hazelcast.HazelcastClient(
        cluster_name=cluster[0].options.cluster_name,
        cluster_members=[m.address for m in cluster],
        statistics_enabled=False,
    )
    plane = ControlPlane(client, controller, "in-process", resync_s=0.5).start()
    try:
        shadow = change_desired(
            client, "pcvr", lambda cur: RolloutState("pcvr", "1", "2", shadow=True, shadow_sample=1.0)
        )
        reports = wait_converged(client, "pcvr", shadow.revision, REPLICAS + 1, timeout=60)
        assert len(reports) == REPLICAS + 1 and all(r.ok and r.candidate == "2" for r in reports), reports
        rng = np.random.default_rng(3)
        for _ in range(500):  # live traffic on this replica only; its gate sees the shift
            engine.score("pcvr", rng.normal(size=(16, FEATURES)).astype(np.float32))
            assert controller.wait_idle(10)
            if not controller.current("pcvr").candidate:
                break
        assert "mean score changed" in controller.status("pcvr").last_event
        desired = read_desired(client, "pcvr")
        assert desired == RolloutState("pcvr", "1", revision=shadow.revision + 1)
        reports = wait_converged(client, "pcvr", desired.revision, REPLICAS + 1, timeout=60)
        assert len(reports) == REPLICAS + 1
        assert {(r.ok, r.live, r.candidate) for r in reports} == {(True, "1", "")}, reports
    finally:
        plane.close()
        controller.close()
        client.shutdown()
        engine.close()


def test_replicas_converge_refuse_a_bad_version_and_survive_a_lost_member(
    cluster: list[HazelcastMember], replicas: list[subprocess.Popen[str]], cluster_client: hazelcast.HazelcastClient
) -> None:
    canary = change_desired(cluster_client, "pctr", lambda cur: RolloutState("pctr", "1", "2", canary_pct=10.0))
    reports = _reports_at(cluster_client, canary)
    assert {(r.ok, r.live, r.candidate, r.canary_pct) for r in reports} == {(True, "1", "2", 10.0)}
    assert {r.replica for r in reports} == {f"r{i}" for i in range(REPLICAS)}

    # a version no replica can load: each says so and keeps serving what it served
    bad = change_desired(cluster_client, "pctr", lambda cur: RolloutState("pctr", "1", "9", canary_pct=50.0))
    reports = _reports_at(cluster_client, bad)
    assert all(not r.ok and "pctr@9" in r.error for r in reports), reports
    assert {(r.live, r.candidate) for r in reports} == {("1", "2")}

    # a member dies during the rollout: the clients fail over and the replicas still converge
    promote = change_desired(cluster_client, "pctr", lambda cur: RolloutState("pctr", "2"))
    cluster[1].kill()
    reports = _reports_at(cluster_client, promote)
    assert {(r.ok, r.live, r.candidate) for r in reports} == {(True, "2", "")}
    back = change_desired(cluster_client, "pctr", lambda cur: RolloutState("pctr", "1"))
    reports = _reports_at(cluster_client, back)
    assert {(r.ok, r.live) for r in reports} == {(True, "1")}
    assert read_desired(cluster_client, "pctr") == back
    assert all(proc.poll() is None for proc in replicas)
