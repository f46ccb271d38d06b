"""Members dying under load: the Java hydration path keeps answering, from the survivor or with flagged defaults.

Two members (maps keep one backup by default); the Python client writes, the Java reader (no near
cache, so every read goes to the cluster) serves requests from a background thread while a member
is killed with SIGKILL, then while the whole cluster is gone, then after a member returns.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest

from cache.client import connect
from cache.hydrate import Hydration
from cache.member import HazelcastMember, MemberOptions, start_cluster
from cache.registry import FeatureRegistry
from cache.store import FeatureWriter

pytest.importorskip("hazelcast")
pytest.importorskip("jpype")
N_ADS, N_USERS, ROWS = 2000, 50, 200
DEADLINE_S = 0.25
#: A request returns within its deadline plus this (the copy, the scheduler of a shared 2-core machine).
SLACK_S = 0.5


@dataclass
class Served:
    """Every request the load thread made: its report, whether its values were right, and errors."""

    reports: list[Hydration] = field(default_factory=list)
    wrong_rows: int = 0
    errors: list[BaseException] = field(default_factory=list)
    slowest_s: float = 0.0


@pytest.fixture
def cluster() -> Iterator[list[HazelcastMember]]:
    members = start_cluster(2)
    try:
        yield members
    finally:
        for m in members:
            m.stop()


def _load(addresses: list[str], cluster_name: str) -> tuple[FeatureRegistry, np.ndarray, np.ndarray]:
    reg = FeatureRegistry.marketplace()
    rng = np.random.default_rng(9)
    ads = rng.standard_normal((N_ADS, 24)).astype(np.float32)
    users = rng.standard_normal((N_USERS, 24)).astype(np.float32)
    client = connect(cluster_name, addresses)
    try:
        writer = FeatureWriter(client, reg)
        now_ms = int(time.time() * 1000)
        writer.put_many("ad_profile", np.arange(N_ADS), ads, now_ms)
        writer.put_many("user_profile", np.arange(N_USERS), users, now_ms)
    finally:
        client.shutdown()
    return reg, ads, users


def _names(reg: FeatureRegistry) -> list[str]:
    return [*reg.group("user_profile").qualified(), *reg.group("ad_profile").qualified()]


def _serve(hyd, until: threading.Event, served: Served, ads: np.ndarray, users: np.ndarray, reg) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(3)
    ad_defaults = reg.group("ad_profile").defaults
    try:
        with hyd.lease() as lease:
            while not until.is_set():
                ids = rng.choice(N_ADS, ROWS, replace=False)
                user = int(rng.integers(N_USERS))
                t0 = time.perf_counter()
                x, report = hyd.hydrate(lease, entities={"user": user}, ads=ids, timeout_s=DEADLINE_S)
                served.slowest_s = max(served.slowest_s, time.perf_counter() - t0)
                served.reports.append(report)
                right = (x[:, 24:] == ads[ids]).all(axis=1)
                default = (x[:, 24:] == ad_defaults).all(axis=1)
                # every row: the stored value, or the defaults counted as missing
                served.wrong_rows += int((~right & ~default).sum())
                served.wrong_rows += max(0, int((~right).sum()) - report.missing["ad_profile"])
                user_ok = (x[:, :24] == users[user]).all() or report.missing["user_profile"] == 1
                served.wrong_rows += 0 if user_ok else ROWS
    except BaseException as exc:  # reported by the test thread
        served.errors.append(exc)


def _cluster_view(members: list[HazelcastMember]) -> str:
    """What each running member last logged about membership: why a cluster did not recover."""
    words = ("Members {", "Member [", "Removing", "suspect", "self", "WARNING", "SEVERE")
    views = []
    for m in members:
        if m.running:
            lines = [line for line in m.log_tail(400).splitlines() if any(w in line for w in words)]
            views.append(f"member {m.address}:\n" + "\n".join(lines[-25:]))
    return "\n".join(views)


def _run_until(hyd, served: Served, ads, users, reg, condition, timeout_s: float, members) -> None:  # type: ignore[no-untyped-def]
    """Serve on a background thread until ``condition(served)`` holds (or fail after ``timeout_s``)."""
    stop = threading.Event()
    worker = threading.Thread(target=_serve, args=(hyd, stop, served, ads, users, reg), daemon=True)
    worker.start()
    deadline = time.monotonic() + timeout_s
    try:
        while not condition(served) and not served.errors:
            if time.monotonic() >= deadline:
                pytest.fail(f"condition not met in {timeout_s} s: {served.reports[-3:]}\n{_cluster_view(members)}")
            worker.join(0.05)  # waits on the thread, not on the clock
    finally:
        stop.set()
        worker.join(30)


def test_killing_members_under_load(cluster: list[HazelcastMember]) -> None:
    from jvm_bridge.features import JavaFeatureClient, JavaHydrator

    name = cluster[0].options.cluster_name
    addresses = [m.address for m in cluster]
    reg, ads, users = _load(addresses, name)
    client = JavaFeatureClient(name, addresses)
    hyd = JavaHydrator(client.instance, reg, _names(reg), max_rows=ROWS, slots=1)
    try:
        served = Served()
        _run_until(hyd, served, ads, users, reg, lambda s: len(s.reports) >= 20, 60, cluster)
        assert not any(r.degraded for r in served.reports), "a healthy cluster serves everything"

        # 1. one member of two dies: served from the survivor (backups) or flagged defaults, never an error
        cluster[1].kill()
        start = len(served.reports)

        def recovered(s: Served) -> bool:
            after = s.reports[start:]
            return len(after) >= 20 and not any(r.degraded for r in after[-10:])

        _run_until(hyd, served, ads, users, reg, recovered, 120, cluster)
        assert not served.errors and served.wrong_rows == 0
        assert served.slowest_s < DEADLINE_S + SLACK_S

        # 2. the killed member returns: no value was lost
        back = HazelcastMember(MemberOptions(name, cluster[1].options.port, (cluster[0].options.port,))).start()
        cluster.append(back)
        back.wait_for_log("Members {size:2,", 60)
        check = connect(name, [cluster[0].address, back.address])
        try:
            stored = check.get_map(reg.group("ad_profile").map_name).blocking()
            assert stored.size() == N_ADS
        finally:
            check.shutdown()

        # 3. the whole cluster gone: answered within the deadline, with defaults, flagged
        for m in (cluster[0], back):
            m.kill()
        start = len(served.reports)
        _run_until(hyd, served, ads, users, reg, lambda s: len(s.reports) - start >= 20, 60, cluster)
        outage = served.reports[start:]
        assert all(r.degraded and r.missing["ad_profile"] == ROWS for r in outage[-10:])
        assert not served.errors and served.wrong_rows == 0
        assert served.slowest_s < DEADLINE_S + SLACK_S

        # 4. a member returns on a configured address: the reader recovers (no failed or late reads)
        fresh = HazelcastMember(MemberOptions(name, cluster[0].options.port)).start()
        cluster.append(fresh)
        start = len(served.reports)

        def reconnected(s: Served) -> bool:
            after = s.reports[start:]
            return len(after) >= 5 and not any(r.failed or r.timed_out for r in after[-5:])

        _run_until(hyd, served, ads, users, reg, reconnected, 120, cluster)
        assert not served.errors and served.wrong_rows == 0
    finally:
        hyd.close()
        client.shutdown()
