"""The registry: which versions serve right now, and which version an un-pinned request reaches.

A :class:`Snapshot` is an immutable picture: every serving harness by name and version, and the live version of
each name. The manager builds a new snapshot after every change and swaps it in with one reference assignment, so
readers never lock to look a version up (lock-free reads, TF Serving's ``ServingMap``).

Resolution of a request's model reference:

1. ``name@version`` pins that version; :class:`VersionNotFoundError` if it does not serve.
2. ``name`` goes to the version the :class:`Router` picks (the live version by default; a canary or shadow router
   plugs in here and may use the request key).

Thread-safety: :meth:`Registry.acquire` may be called from any number of threads; :meth:`Registry.publish` is
called by the manager alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Generic, Protocol, TypeAlias

from models.handle import Harness, T
from models.ids import parse_ref, version_key

__all__ = ["LiveRouter", "Registry", "Router", "RoutingKey", "Snapshot", "VersionNotFoundError"]

#: A request's routing key: its bytes (e.g. the user id), or its bucket (:func:`models.rollout.bucket`, an int in
#: ``[0, BUCKETS)``) when the client computed it (the shared-memory ring carries the bucket, not the key).
RoutingKey: TypeAlias = bytes | int


class VersionNotFoundError(LookupError):
    """The request names a model, or ``name@version``, that does not serve."""

    def __init__(self, ref: str, known: tuple[str, ...]) -> None:
        self.ref = ref
        self.known = known
        super().__init__(ref)


@dataclass(frozen=True)
class Snapshot(Generic[T]):
    """Serving harnesses by name then version, and the live version of each name."""

    versions: Mapping[str, Mapping[str, Harness[T]]] = field(default_factory=dict)
    live: Mapping[str, str] = field(default_factory=dict)

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self.live))

    def refs(self) -> tuple[str, ...]:
        return tuple(f"{n}@{v}" for n in sorted(self.versions) for v in sorted(self.versions[n], key=version_key))


class Router(Protocol):
    """Picks the version of ``name`` for a request that did not pin one (seam for canary and shadow rollouts).

    Called on the request path: it must be fast, must not block, and may use ``key`` (a stable request key, e.g.
    the user id) to make the choice sticky. Returning a version that does not serve falls back to ``live``.
    """

    def route(self, name: str, live: str, key: RoutingKey | None) -> str: ...


class LiveRouter:
    """Every un-pinned request goes to the live version."""

    def route(self, name: str, live: str, key: RoutingKey | None) -> str:
        return live


class Registry(Generic[T]):
    """The current :class:`Snapshot` and the lookups readers make (see the module docstring)."""

    def __init__(self, router: Router | None = None) -> None:
        self._snapshot: Snapshot[T] = Snapshot()
        self.router: Router = router or LiveRouter()

    @property
    def snapshot(self) -> Snapshot[T]:
        return self._snapshot

    def publish(self, versions: Mapping[str, Mapping[str, Harness[T]]], live: Mapping[str, str]) -> None:
        frozen = {n: MappingProxyType(dict(vs)) for n, vs in versions.items() if vs}
        self._snapshot = Snapshot(MappingProxyType(frozen), MappingProxyType(dict(live)))

    def resolve(self, ref: str, key: RoutingKey | None = None) -> Harness[T]:
        """The harness ``ref`` reaches now (resolution rules in the module docstring); does not acquire it."""
        snap = self._snapshot
        name, version = parse_ref(ref)
        versions = snap.versions.get(name)
        if versions is not None:
            if version is None:
                live = snap.live.get(name)
                if live is not None:
                    chosen = self.router.route(name, live, key)
                    harness = versions.get(chosen) or versions.get(live)
                    if harness is not None:
                        return harness
            else:
                harness = versions.get(version)
                if harness is not None:
                    return harness
        raise VersionNotFoundError(ref, snap.names() if version is None else snap.refs())

    def acquire(self, ref: str, key: RoutingKey | None = None) -> Harness[T]:
        """Resolve ``ref`` and count a reader in; the caller must :meth:`Harness.release` it exactly once.

        Retries when the version it found began draining in between (a swap happened): the next snapshot no
        longer lists it, so the loop ends within a swap or two.
        """
        for _ in range(1000):
            harness = self.resolve(ref, key)
            if harness.try_acquire():
                return harness
        raise VersionNotFoundError(ref, self._snapshot.refs())  # only if a version keeps failing to serve
