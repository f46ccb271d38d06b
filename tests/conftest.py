"""Fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO_SEED = 0


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built demo (``build/demo`` as ``make setup`` leaves it), or a fresh build when that is absent."""
    from models.demo import build_demo, is_complete

    default = ROOT / "build" / "demo"
    if is_complete(default, seed=DEMO_SEED):
        return default
    root = tmp_path_factory.mktemp("demo")
    build_demo(root, seed=DEMO_SEED, progress=False)
    return root


@pytest.fixture(scope="module")
def cluster() -> Iterator[list[Any]]:
    """Two Hazelcast members on loopback (TCP-IP join, no multicast, no phone-home), one cluster per test module;
    stopped after it. A module that kills members defines its own function-scoped ``cluster``."""
    from cache.member import start_cluster

    members = start_cluster(2)
    try:
        yield members
    finally:
        for m in members:
            m.stop()


@pytest.fixture(scope="module")
def cluster_client(cluster: list[Any]) -> Iterator[Any]:
    """A Hazelcast client of the module's ``cluster`` (the control plane's maps, the feature maps' tests their own)."""
    import hazelcast

    client = hazelcast.HazelcastClient(
        cluster_name=cluster[0].options.cluster_name,
        cluster_members=[m.address for m in cluster],
        cluster_connect_timeout=30,
        statistics_enabled=False,
    )
    yield client
    client.shutdown()
