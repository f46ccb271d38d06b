"""Replicas that leave their clients' rotation to load: one at a time across a real Hazelcast cluster.

Three in-process control planes (each its own engine and Hazelcast client) follow the desired state; each
:class:`Rotation` records when its replica left and came back. The gRPC side of leaving (health NOT_SERVING, and a
health-checking client going to the other server) is in ``test_grpc_server.py``.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lifecycle_builders import TWO_VERSIONS, package_dir

from gateway.cli import main
from gateway.engine import Engine
from gateway.rollout import RolloutController
from gateway.rollout_control import ROTATION_MAP, ControlPlane, Rotation, change_desired, wait_converged
from gateway.sources import ModelSource, open_engine
from models.manager import ManagerOptions
from models.rollout import RolloutState
from models.store import ArtifactStore

hazelcast = pytest.importorskip("hazelcast")
REPLICAS = 3
DRAIN_S = 0.2


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rotation")
    store = ArtifactStore(root / "store")
    for name in ("pctr", "pcvr", "pcomp"):
        for version, bias in TWO_VERSIONS.items():
            store.publish(package_dir(root / "src", name, version, bias=bias))
    return root / "store"


class _Replica:
    """An engine, its rollout controller and control plane on its own client, and what its rotation did."""

    def __init__(self, cluster: list[Any], store: Path, name: str, rotation: Rotation) -> None:
        self.engine = Engine.from_store(
            ArtifactStore(store), manager_options=ManagerOptions(interval_s=0.0), require_validation=False
        )
        self.controller = RolloutController(self.engine)
        self.client = hazelcast.HazelcastClient(
            cluster_name=cluster[0].options.cluster_name,
            cluster_members=[m.address for m in cluster],
            statistics_enabled=False,
        )
        self.rotation = rotation
        self.in_rotation = True
        rotation.attach(lambda: self._set(False), lambda: self._set(True))
        self.plane = ControlPlane(self.client, self.controller, name, resync_s=0.5, rotation=rotation).start()

    def _set(self, serving: bool) -> None:
        self.in_rotation = serving

    def out_windows(self) -> list[tuple[float, float]]:
        events = self.rotation.events
        assert [e for e, _ in events] == ["leave", "rejoin"] * (len(events) // 2), events
        return [(events[i][1], events[i + 1][1]) for i in range(0, len(events), 2)]

    def close(self) -> None:
        self.plane.close()
        self.controller.close()
        self.client.shutdown()
        self.engine.close()


@pytest.fixture
def replicas(cluster: list[Any], store: Path) -> Iterator[list[_Replica]]:
    made: list[_Replica] = []
    try:
        for i in range(REPLICAS):
            made.append(_Replica(cluster, store, f"rot{i}", Rotation(DRAIN_S, wait_s=60)))
        yield made
    finally:
        for r in made:
            r.close()


def _want(client: Any, state: RolloutState, replicas: int, *more: RolloutState) -> None:
    """Make ``state`` (and ``more``, written right after) the cluster's wish, whatever it was, and wait for
    ``replicas`` replicas to serve them."""
    wanted = [change_desired(client, s.name, lambda cur, s=s: s) for s in (state, *more)]
    for w in wanted:
        reports = wait_converged(client, w.name, w.revision, replicas, timeout=60)
        assert len(reports) >= replicas and all(r.ok for r in reports if r.revision == w.revision), reports


def test_replicas_leave_the_rotation_to_load_one_at_a_time(replicas: list[_Replica], cluster_client: Any) -> None:
    # Each replica serves the latest version (2); the cluster wants version 1 live: every replica loads it.
    _want(cluster_client, RolloutState("pctr", "1"), REPLICAS)
    windows = sorted(w for r in replicas for w in r.out_windows())
    assert len(windows) == REPLICAS, windows  # each left once, to load
    for (_, end), (start, _) in itertools.pairwise(windows):
        assert end <= start, f"two replicas out of rotation at once: {windows}"
    assert all(end - start >= DRAIN_S for start, end in windows), windows  # each drained before loading
    assert all(r.in_rotation for r in replicas)
    assert all(r.engine.manager.live()["pctr"] == "1" for r in replicas)

    # A canary of version 2 loads it again: out once more, one at a time; a share change loads nothing: no one leaves.
    _want(cluster_client, RolloutState("pctr", "1", "2", canary_pct=10), REPLICAS)
    assert all(len(r.out_windows()) == 2 for r in replicas)
    _want(cluster_client, RolloutState("pctr", "1", "2", canary_pct=50), REPLICAS)
    assert all(len(r.out_windows()) == 2 for r in replicas), "a canary share change took a replica out"
    windows = sorted(w for r in replicas for w in r.out_windows())
    for (_, end), (start, _) in itertools.pairwise(windows):
        assert end <= start, f"two replicas out of rotation at once: {windows}"

    # A deploy of two models written back to back: each replica leaves once and loads both in that window.
    _want(cluster_client, RolloutState("pcvr", "1"), REPLICAS, RolloutState("pcomp", "1"))
    assert all(len(r.out_windows()) == 3 for r in replicas), [r.out_windows() for r in replicas]
    assert all(r.engine.manager.live()["pcvr"] == r.engine.manager.live()["pcomp"] == "1" for r in replicas)


def test_a_turn_held_too_long_loads_in_rotation_and_says_so(
    cluster: list[Any], store: Path, cluster_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Another replica holds the turn (stuck out of rotation): after wait_s this one loads in rotation rather than
    # not at all, and logs why.
    locks = cluster_client.get_map(ROTATION_MAP).blocking()
    locks.lock("turn", lease_time=60)
    replica = _Replica(cluster, store, "rot-impatient", Rotation(DRAIN_S, wait_s=0.5))
    try:
        _want(cluster_client, RolloutState("pctr", "2"), 1)
        give_up = time.monotonic() + 30
        while "pctr@1" in replica.engine.refs():  # unloaded: the next state loads it again
            assert time.monotonic() < give_up
            time.sleep(0.01)
        replica.rotation.events.clear()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="gateway.rollout_control"):
            started = time.monotonic()
            _want(cluster_client, RolloutState("pctr", "1"), 1)
            waited = time.monotonic() - started
        assert replica.rotation.events == [] and replica.in_rotation
        assert waited >= 0.5
        assert "another replica kept the turn for 0.5 s; loading in rotation" in caplog.text
        assert replica.engine.manager.live()["pctr"] == "1"
    finally:
        locks.unlock("turn")
        replica.close()


def test_rotation_options_are_checked(capsys: pytest.CaptureFixture[str], demo_dir: Path) -> None:
    with pytest.raises(ValueError, match="drain_s"):
        Rotation(-1.0)
    with pytest.raises(ValueError, match="lease_s"):
        Rotation(0.1, lease_s=0)
    with (
        pytest.raises(ValueError, match="give --cluster"),
        open_engine(ModelSource(models=demo_dir / "models"), rotation=Rotation(0)),
    ):
        pass
    # The CLI refuses before loading anything: no cluster, or a negative drain.
    cluster = ["--store", str(demo_dir), "--cluster", "c", "--members", "127.0.0.1:1"]
    for where, drain in ((["--models", str(demo_dir / "models")], "1"), (cluster, "-1")):
        assert main(["serve-grpc", "--port", "0", *where, "--rotate-out-s", drain]) == 2
        assert "--rotate-out-s needs --cluster and a drain of 0 s or more" in capsys.readouterr().err
