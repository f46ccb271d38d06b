"""Feature hydration through the Java reader in this process's JVM (JPype).

The JVM twin of :class:`cache.hydrate.Hydrator`: the Hazelcast *Java* client (whose near cache
works with ``getAll``, unlike the Python client's, hazelcast-python-client#701) reads the same maps,
keys and layout, and ``dev.scoregate.bridge.features.FeatureReader`` writes one request's
``[N, F]`` float32 rows straight into a ``FeatureArena`` slot. Python sees that slot as a numpy view
of the direct buffer: no copy between the cluster's bytes and the score buffer on the Python side.

Usage::

    client = JavaFeatureClient(cluster_name, addresses, near_cache=[registry.group("ad_profile")])
    hyd = JavaHydrator(client.instance, registry, feature_names, max_rows=2048)
    with hyd.lease() as lease:
        x, report = hyd.hydrate(lease, entities={"user": 7}, ads=ads, inline={...}, timeout_s=0.01)
        ...  # x is lease.features[: len(ads)], valid until the lease ends

Threads: :meth:`JavaHydrator.hydrate` is thread-safe; a lease belongs to one thread at a time.
The JVM must have the Hazelcast jar on its classpath: :func:`start_feature_jvm` starts it so, and
fails clearly if the process's JVM already runs without it.
"""

from __future__ import annotations

import atexit
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from cache.hydrate import Hydration
from cache.member import hazelcast_jar
from cache.registry import FeatureGroup, FeatureRegistry
from jvm_bridge.jvm import start_jvm

__all__ = ["FeatureLease", "JavaFeatureClient", "JavaHydrator", "start_feature_jvm"]

_PKG = "dev.scoregate.bridge.features"


def start_feature_jvm(jvm_args: Sequence[str] = ()) -> None:
    """Start (or check) this process's JVM with the bridge classes and the Hazelcast jar."""
    start_jvm([hazelcast_jar()], jvm_args)


def _jlist(items: Sequence[Any]) -> Any:
    """A ``java.util.ArrayList`` of ``items`` (``List.of`` overloads are ambiguous from Python)."""
    import jpype

    out = jpype.JClass("java.util.ArrayList")()
    for item in items:
        out.add(item)
    return out


def _java_group(group: FeatureGroup) -> Any:
    import jpype

    spec = jpype.JClass(f"{_PKG}.FeatureGroupSpec")
    defaults = jpype.JArray(jpype.JFloat)(np.ascontiguousarray(group.defaults, dtype=np.float32))
    return spec(group.name, group.entity, group.version, defaults, jpype.JLong(int(group.freshness_slo_s * 1000)))


class JavaFeatureClient:
    """A Hazelcast Java client in this process's JVM, with a near cache on the ``near_cache`` groups' maps."""

    def __init__(self, cluster_name: str, addresses: Sequence[str], near_cache: Sequence[FeatureGroup] = ()) -> None:
        start_feature_jvm()
        import jpype

        clients = jpype.JClass(f"{_PKG}.FeatureClients")
        self.instance: Any = clients.connect(
            cluster_name, _jlist([str(a) for a in addresses]), _jlist([g.map_name for g in near_cache])
        )
        # The client's threads are not daemons: one left running keeps the JVM, and so this process, from exiting.
        atexit.register(self.shutdown)

    def near_cache_hits(self, group: FeatureGroup) -> int:
        """Near-cache hits of ``group``'s map so far (0 without a near cache)."""
        stats = self.instance.getMap(group.map_name).getLocalMapStats().getNearCacheStats()
        return 0 if stats is None else int(stats.getHits())

    def shutdown(self) -> None:
        """Disconnect (idempotent)."""
        if self.instance.getLifecycleService().isRunning():
            self.instance.shutdown()
        atexit.unregister(self.shutdown)


@dataclass
class FeatureLease:
    """One leased arena slot: ``features`` is its ``[max_rows, F]`` float32 matrix, a view of the JVM's memory."""

    slot: Any
    features: npt.NDArray[np.float32]


class JavaHydrator:
    """Assembles one model's ``[N, F]`` input through the Java reader, into arena slots Python views in place.

    ``client`` is a Java ``HazelcastInstance`` (:attr:`JavaFeatureClient.instance`). ``slots`` bounds
    the requests in flight (one lease each); ``max_rows`` bounds N (larger requests are rejected).
    """

    def __init__(
        self,
        client: Any,
        registry: FeatureRegistry,
        feature_names: Sequence[str],
        *,
        max_rows: int = 2048,
        slots: int = 4,
        clock: Callable[[], float] | None = None,
    ) -> None:
        import jpype

        plan = registry.resolve(feature_names)
        names = list(plan)
        self._features = len(feature_names)
        col_group = np.empty(self._features, dtype=np.int32)
        col_index = np.empty(self._features, dtype=np.int32)
        for g, (src, dst) in enumerate(plan.values()):
            col_group[dst] = g
            col_index[dst] = src
        groups = _jlist([_java_group(registry.group(n)) for n in names])
        ints = jpype.JArray(jpype.JInt)
        java_plan = jpype.JClass(f"{_PKG}.FeaturePlan").of(groups, ints(col_group), ints(col_index))
        reader = jpype.JClass(f"{_PKG}.FeatureReader")
        if clock is None:
            self._reader = reader(client, java_plan, max_rows)
        else:
            tick = clock
            supplier = jpype.JProxy("java.util.function.LongSupplier", dict(getAsLong=lambda: int(tick() * 1000)))
            self._reader = reader(client, java_plan, None, supplier, max_rows)
        self._groups = tuple(names)
        self._max_rows = max_rows
        self._arena = jpype.JClass("dev.scoregate.bridge.FeatureArena").allocate(slots, max_rows, self._features)
        self._memory = memoryview(self._arena.buffer())
        self._longs = jpype.JArray(jpype.JLong)
        self._floats = jpype.JArray(jpype.JFloat)
        self._map = jpype.JClass("java.util.HashMap")
        self._jlong = jpype.JLong
        self._invalid = jpype.JClass("dev.scoregate.bridge.InvalidInputException")

    @property
    def groups(self) -> tuple[str, ...]:
        return self._groups

    @contextmanager
    def lease(self, timeout_s: float = 1.0) -> Iterator[FeatureLease]:
        """Lease a slot for one request (waiting up to ``timeout_s`` for one to be free)."""
        import jpype

        slot = self._arena.acquire(jpype.JClass("java.time.Duration").ofNanos(int(timeout_s * 1e9)))
        try:
            view = np.ndarray(
                (self._max_rows, self._features), dtype=np.float32, buffer=self._memory, offset=int(slot.offset())
            )
            yield FeatureLease(slot, view)
        finally:
            slot.release()

    def hydrate(
        self,
        lease: FeatureLease,
        *,
        entities: Mapping[str, int],
        ads: npt.ArrayLike,
        inline: Mapping[str, npt.NDArray[np.float32]] | None = None,
        timeout_s: float = 0.010,
    ) -> tuple[npt.NDArray[np.float32], Hydration]:
        """Fill the lease's first ``len(ads)`` rows; returns that view and the report.

        Same contract as :meth:`cache.hydrate.Hydrator.hydrate`; a failed read (member gone) is
        counted as missing, like a read past the deadline.
        """
        start = time.perf_counter()
        ad_ids = np.ascontiguousarray(ads, dtype=np.int64)
        n = int(ad_ids.shape[0])
        if n > self._max_rows:
            raise ValueError(f"{n} candidates: at most {self._max_rows} per request (max_rows)")
        ids = self._map()
        for kind, key in entities.items():
            ids.put(kind, self._jlong(int(key)))
        vectors = None
        if inline:
            vectors = self._map()
            for name, vec in inline.items():
                vectors.put(name, self._floats(np.ascontiguousarray(vec, dtype=np.float32)))
        try:
            result = self._reader.hydrate(
                ids, self._longs(ad_ids), n, vectors, lease.slot.featureBuffer(), int(timeout_s * 1e9)
            )
        except self._invalid as exc:  # the caller's error, as cache.hydrate.Hydrator reports it
            raise ValueError(str(exc.getMessage())) from exc
        missing = result.missing()
        stale = result.stale()
        report = Hydration(rows=n)
        for g, name in enumerate(self._groups):
            if inline and name in inline:
                continue
            report.missing[name] = int(missing[g])
            report.stale[name] = int(stale[g])
        report.timed_out = bool(result.timedOut())
        report.failed = bool(result.failed())
        report.elapsed_s = time.perf_counter() - start
        return lease.features[:n], report

    def close(self) -> None:
        self._reader.close()
