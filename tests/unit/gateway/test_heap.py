"""The start-up heap freeze (gateway.heap): later collections skip it, and a swap under it leaks nothing."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from lifecycle_builders import FEATURES, package_dir

from gateway.engine import Engine
from gateway.heap import freeze_startup_heap
from models.manager import ManagerOptions
from models.store import ArtifactStore


@pytest.fixture
def unfrozen() -> Iterator[None]:
    """Give the frozen objects back to the collector after the test (the test process is not a server)."""
    try:
        yield
    finally:
        gc.unfreeze()
        gc.enable()


def test_freeze_moves_the_live_heap_out_of_later_collections(unfrozen: None) -> None:
    survivor = [object() for _ in range(100)]
    frozen = freeze_startup_heap()
    assert frozen == gc.get_freeze_count() > 1000  # modules, classes and functions at least
    assert not any(o is survivor for o in gc.get_objects())  # get_objects() lists only unfrozen objects
    fresh = [[] for _ in range(10)]
    assert any(o is fresh for o in gc.get_objects())


def test_a_version_swapped_out_after_the_freeze_is_freed_without_the_collector(tmp_path: Path, unfrozen: None) -> None:
    store = ArtifactStore(tmp_path / "store")
    for version, bias in (("1", -3.0), ("2", 1.0)):
        store.publish(package_dir(tmp_path / "src", "pctr", version, bias=bias))
    engine = Engine.from_store(store, manager_options=ManagerOptions(interval_s=0.0), require_validation=False)
    engine.manager.set_aspired("pctr", ["1"])
    assert engine.manager.converge(10)
    x = np.zeros((4, FEATURES), np.float32)
    engine.score("pctr", x)  # per-thread bindings exist, as on a server that served
    old = weakref.ref(engine.runtime("pctr"))
    assert old().version == "1"  # type: ignore[union-attr]
    freeze_startup_heap()
    gc.disable()  # only reference counting may free it now
    engine.manager.set_aspired("pctr", ["2"])
    assert engine.manager.converge(10)
    assert engine.runtime("pctr").version == "2"
    engine.score("pctr", x)
    assert old() is None, "the swapped-out runtime is kept alive by a reference cycle: frozen, it would leak"
    engine.close()
