"""The reference Java ad server reading candidate features from a real Hazelcast member (``--members``).

The Python side publishes the feature groups and loads the demo marketplace's tables into the
member (:func:`cache.ingest.load_marketplace`); the ad server, run inside ``python -m gateway
serve`` (which puts the Hazelcast jar on the JVM's classpath), hydrates every request's candidates
through ``FeatureReader`` and, with ``--verify-features true``, compares each row with the
export's: the two paths agree bit for bit.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cache.client import connect
from cache.ingest import REGISTRY_MAP, load_marketplace
from cache.member import HazelcastMember, start_cluster
from cache.registry import FeatureRegistry
from cache.store import FeatureWriter

pytest.importorskip("hazelcast")
ROOT = Path(__file__).resolve().parents[2]
JAR = ROOT / "jvm_bridge" / "ad-server" / "target" / "scoregate-ad-server.jar"
MAIN = "dev.scoregate.adserver.AdServerMain"
pytestmark = pytest.mark.skipif(shutil.which("java") is None, reason="no java on the PATH")


@pytest.fixture(scope="module")
def member() -> Iterator[HazelcastMember]:
    (m,) = start_cluster(1, heap_mb=384)
    try:
        yield m
    finally:
        m.stop()


def _serve(demo_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert JAR.is_file(), f"{JAR} is missing: build it with 'mvn -q -B install -DskipTests' (make setup does)"
    return subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--models", str(demo_dir / "models"), "--classpath", str(JAR),
         "--jvm-main", MAIN, "--", "--export", str(demo_dir / "export"), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def test_ad_server_refuses_a_cluster_without_the_features(demo_dir: Path, member: HazelcastMember) -> None:
    proc = _serve(demo_dir, "--duration", "1", "--members", member.address, "--cluster-name",
                  member.options.cluster_name)  # fmt: skip
    assert proc.returncode != 0
    assert "defines no feature group 'user_profile'" in proc.stderr


def test_ad_server_reads_the_same_rows_from_the_cluster(demo_dir: Path, member: HazelcastMember) -> None:
    client = connect(member.options.cluster_name, [member.address])
    try:
        reports = load_marketplace(FeatureWriter(client, FeatureRegistry.marketplace()), demo_dir / "data")
        assert [r.rows for r in reports] == [50_000, 100_000]
        assert client.get_map(REGISTRY_MAP).blocking().size() == 3
    finally:
        client.shutdown()
    proc = _serve(demo_dir, "--duration", "3", "--threads", "2", "--timeout-ms", "2000", "--members", member.address,
                  "--cluster-name", member.options.cluster_name, "--verify-features", "true")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"candidate features from the feature cache {member.options.cluster_name}" in proc.stdout
    feats = re.search(
        r"features from the cluster: ([\d,]+) requests, ([\d,]+) rows, ([\d,]+) degraded requests, ([\d,]+) rows "
        r"defaulted \(missing\), ([\d,]+) rows stale, ([\d,]+) rows differ from the export",
        proc.stdout,
    )
    assert feats, proc.stdout[-2000:]
    requests, rows, _, missing, _, differ = (int(x.replace(",", "")) for x in feats.groups())
    assert requests > 0 and rows >= 50 * requests
    assert missing == 0 and differ == 0  # every entity found; every row equals the export's bit for bit
    assert "errors: none" in proc.stdout
