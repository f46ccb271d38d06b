"""The version manager with real packages and a recording loader: swaps, handles, failures, bounded loads."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from lifecycle_builders import package_dir

from models.handle import Handle
from models.manager import ManagerOptions, VersionManager
from models.package import Package
from models.policy import State
from models.registry import VersionNotFoundError
from models.store import ArtifactStore


class Loaded:
    """A stand-in for a model runtime: remembers its package and whether it was closed."""

    def __init__(self, package: Package) -> None:
        self.id = package.id
        self.closed = False

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    store = ArtifactStore(tmp_path / "store")
    for name in ("pctr", "pcvr"):
        for version in ("1", "2"):
            store.publish(package_dir(tmp_path / "src", name, version, seed=int(version)))
    return store


def _manager(store: ArtifactStore, **options: object) -> VersionManager[Loaded]:
    return VersionManager(store.get, Loaded, options=ManagerOptions(interval_s=0.0, **options))  # type: ignore[arg-type]


def test_serves_the_live_version_and_pins_others(store: ArtifactStore) -> None:
    manager = _manager(store)
    manager.set_aspired("pctr", ["1", "2"], live="1")
    assert manager.converge(10)
    h = manager.acquire("pctr")
    assert h.value is not None and str(h.value.id) == "pctr@1"
    h.release()
    pinned = manager.acquire("pctr@2")
    assert pinned.value is not None and str(pinned.value.id) == "pctr@2"
    pinned.release()
    with pytest.raises(VersionNotFoundError):
        manager.acquire("pctr@3")
    with pytest.raises(VersionNotFoundError):
        manager.acquire("pcvr")
    manager.close()


def test_swap_waits_for_in_flight_calls_before_closing_the_old_version(store: ArtifactStore) -> None:
    manager = _manager(store)
    manager.set_aspired("pctr", ["1"])
    assert manager.converge(10)
    held = manager.acquire("pctr")  # a call in flight on version 1
    old = held.value
    assert old is not None
    manager.set_aspired("pctr", ["2"])
    manager.reconcile()  # starts loading version 2
    assert manager.wait_live("pctr", "2", timeout=10)
    manager.reconcile()  # starts unloading version 1
    assert not manager.converge(0.2)  # the unload waits for the call in flight
    after = manager.acquire("pctr")  # new calls already reach version 2
    assert after.value is not None and str(after.value.id) == "pctr@2"
    after.release()
    states = {(s.name, s.version): s.state for s in manager.status()}
    assert states[("pctr", "1")] is State.DRAINING
    assert not old.closed
    held.release()
    assert manager.converge(10)
    assert old.closed
    assert [(s.version, s.state, s.live) for s in manager.status()] == [("2", State.READY, True)]
    manager.close()


def test_a_failed_load_reports_and_the_previous_version_keeps_serving(store: ArtifactStore) -> None:
    def loader(package: Package) -> Loaded:
        if package.id.version == "2":
            raise RuntimeError("simulated out of memory")
        return Loaded(package)

    manager: VersionManager[Loaded] = VersionManager(store.get, loader, options=ManagerOptions(interval_s=0.0))
    manager.set_aspired("pctr", ["1"])
    assert manager.converge(10)
    manager.set_aspired("pctr", ["2"])
    assert manager.converge(10)
    status = {s.version: s for s in manager.status()}
    assert status["2"].state is State.ERROR and "simulated out of memory" in status["2"].error
    assert status["1"].state is State.READY and status["1"].live
    h = manager.acquire("pctr")
    assert h.value is not None and str(h.value.id) == "pctr@1"
    h.release()
    manager.close()


def test_a_model_over_the_memory_limit_is_refused_without_loading(store: ArtifactStore) -> None:
    loaded: list[str] = []

    def loader(package: Package) -> Loaded:
        loaded.append(str(package.id))
        return Loaded(package)

    manager: VersionManager[Loaded] = VersionManager(
        store.get, loader, options=ManagerOptions(interval_s=0.0, max_model_bytes=64)
    )
    manager.set_aspired("pctr", ["1"])
    assert manager.converge(10)
    (status,) = manager.status()
    assert status.state is State.ERROR
    assert "over the configured limit of 64 bytes" in status.error
    assert loaded == []
    with pytest.raises(VersionNotFoundError):
        manager.acquire("pctr")
    manager.close()


def test_loads_run_on_a_bounded_pool_of_their_own(store: ArtifactStore, tmp_path: Path) -> None:
    for i in range(3, 7):
        store.publish(package_dir(tmp_path / "more", "pctr", str(i), seed=i))
    running, peak, gate = 0, 0, threading.Event()
    cond = threading.Condition()
    threads: set[str] = set()

    def loader(package: Package) -> Loaded:
        nonlocal running, peak
        with cond:
            running += 1
            peak = max(peak, running)
            threads.add(threading.current_thread().name)
            cond.notify_all()
        gate.wait(10)
        with cond:
            running -= 1
        return Loaded(package)

    manager: VersionManager[Loaded] = VersionManager(
        store.get, loader, options=ManagerOptions(interval_s=0.0, load_threads=2)
    )
    manager.set_aspired("pctr", ["1", "2", "3", "4", "5", "6"])
    manager.reconcile()
    with cond:
        assert cond.wait_for(lambda: running == 2, timeout=10)
    assert not manager.converge(0.1)  # four loads wait for a worker
    gate.set()
    assert manager.converge(10)
    assert peak == 2
    assert all(t.startswith("model-load") for t in threads)
    assert len(manager.live()) == 1 and manager.live()["pctr"] == "6"
    manager.close()


def test_background_thread_converges_on_its_own(store: ArtifactStore) -> None:
    manager: VersionManager[Loaded] = VersionManager(store.get, Loaded, options=ManagerOptions(interval_s=5.0))
    manager.set_aspired("pctr", ["1"])
    assert manager.wait_live("pctr", "1", timeout=10)
    manager.set_aspired("pctr", ["2"])
    assert manager.wait_live("pctr", "2", timeout=10)
    manager.close()
    assert manager.status() == []


def test_close_unloads_everything(store: ArtifactStore) -> None:
    manager = _manager(store)
    manager.set_aspired("pctr", ["1"])
    manager.set_aspired("pcvr", ["2"])
    assert manager.converge(10)
    values = []
    for ref in ("pctr", "pcvr"):
        h = manager.acquire(ref)
        values.append(h.value)
        h.release()
    manager.close()
    assert all(v is not None and v.closed for v in values)
    with pytest.raises(VersionNotFoundError):
        manager.acquire("pctr")


class KeyRouter:
    """Sends requests whose key starts with b"c" to version 2: the seam a canary router plugs into."""

    def route(self, name: str, live: str, key: bytes | None) -> str:
        return "2" if key is not None and key.startswith(b"c") else live


def test_a_router_picks_the_version_of_unpinned_requests(store: ArtifactStore) -> None:
    manager: VersionManager[Loaded] = VersionManager(
        store.get, Loaded, options=ManagerOptions(interval_s=0.0), router=KeyRouter()
    )
    manager.set_aspired("pctr", ["1", "2"], live="1")
    assert manager.converge(10)
    versions = {}
    for key in (b"canary-user", b"user", None):
        with Handle(manager.acquire("pctr", key)) as value:
            versions[key] = value.id.version
    assert versions == {b"canary-user": "2", b"user": "1", None: "1"}
    manager.set_aspired("pctr", ["1"])  # the router's version leaves: its requests fall back to live
    assert manager.converge(10)
    with Handle(manager.acquire("pctr", b"canary-user")) as value:
        assert value.id.version == "1"
    manager.close()


def test_step_pause_is_validated_and_zero_turns_it_off(store: ArtifactStore) -> None:
    with pytest.raises(ValueError, match="step_pause_s"):
        ManagerOptions(step_pause_s=-0.001)
    manager = _manager(store, step_pause_s=0.0)
    manager.set_aspired("pctr", ["1"])
    assert manager.converge(10)
    manager.set_aspired("pctr", ["2"])
    assert manager.converge(10)
    assert manager.live() == {"pctr": "2"}
    manager.close()


def test_load_duty_paces_a_load_by_the_work_it_did(store: ArtifactStore) -> None:
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ValueError, match="load_duty"):
            ManagerOptions(load_duty=bad)

    def slow_loader(package: Package) -> Loaded:
        time.sleep(0.02)  # 20 ms of "work"
        return Loaded(package)

    def swap_seconds(duty: float) -> float:
        manager: VersionManager[Loaded] = VersionManager(
            store.get, slow_loader, options=ManagerOptions(interval_s=0.0, step_pause_s=0.0, load_duty=duty)
        )
        start = time.perf_counter()
        manager.set_aspired("pctr", ["1"])
        assert manager.converge(10)
        took = time.perf_counter() - start
        assert manager.live() == {"pctr": "1"}
        manager.close()
        return took

    assert swap_seconds(1.0) < 0.06
    # at a quarter of the time, the 20 ms step is followed by 3 x 20 ms of rest (and the other steps by theirs)
    assert swap_seconds(0.25) >= 0.08
