"""The cluster control plane for rollouts: desired state in one Hazelcast map, every replica's actual state in another.

* **Desired** (map ``scoregate-rollout-desired``): model name -> :class:`~models.rollout.RolloutState` as JSON (live
  version, candidate, canary %, shadow, revision). Writers change it with compare-and-set
  (:func:`change_desired`), so two writers never lose each other's change and revisions only grow.
* **Actual** (map ``scoregate-rollout-actual``): ``<replica>/<model>`` -> :class:`ReplicaReport` as JSON: the
  revision the replica last acted on, whether it serves it, and the error if it could not (a replica that fails to
  load says so and keeps serving its previous state).

Each replica runs a :class:`ControlPlane` beside its :class:`~gateway.rollout.RolloutController`:

1. An entry listener on the desired map hands each change to the replica's converger thread (listener callbacks
   run on the client's reactor thread and must not block). The converger also re-reads the whole map every
   ``resync_s``, so a change whose event was lost (a member died, the client reconnected) is still applied.
2. The converger applies a state whose revision is newer than the last one it acted on for that model (a load
   may take seconds; it runs on the converger, never on the listener), then writes its report.
3. When the replica's regression gate rolls a candidate back, the control plane writes the rolled-back state to
   the desired map (compare-and-set on the revision), so every other replica rolls back too.
4. With a :class:`Rotation` (``serve-grpc --rotate-out-s S``), a replica that must load a version leaves its clients'
   rotation first (gRPC health NOT_SERVING, ``ServerReady`` false), waits ``S`` seconds for them to move to the
   other replicas, loads, warms and swaps, and comes back: one replica of the cluster at a time (a lock in map
   ``scoregate-rollout-rotation``, leased so that a replica that dies out of rotation frees it). Loads then cost
   the clients nothing but the capacity of one replica, on a machine where a load competes with serving for the
   cores. A state that loads nothing (a canary share, a promotion) applies in rotation.

:func:`wait_converged` waits (on a listener of the actual map, with a deadline) until N replicas report a revision.
Run a replica with ``python -m gateway.rollout_control --store DIR --cluster NAME --members HOST:PORT,...``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gateway.rollout import RolloutController
from models.rollout import RolloutState

log = logging.getLogger(__name__)

__all__ = [
    "ACTUAL_MAP",
    "DESIRED_MAP",
    "ROTATION_MAP",
    "ControlPlane",
    "ConvergenceWaiter",
    "ReplicaReport",
    "Rotation",
    "change_desired",
    "read_desired",
    "read_reports",
    "wait_converged",
]

DESIRED_MAP = "scoregate-rollout-desired"
ACTUAL_MAP = "scoregate-rollout-actual"
ROTATION_MAP = "scoregate-rollout-rotation"


@dataclass(frozen=True)
class ReplicaReport:
    """What one replica serves for one model, after acting on ``revision``."""

    replica: str
    name: str
    revision: int
    live: str
    candidate: str
    canary_pct: float
    shadow: bool
    ok: bool
    error: str = ""
    at: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ReplicaReport:
        return cls(**json.loads(text))


def read_desired(client: Any, name: str) -> RolloutState | None:
    text = client.get_map(DESIRED_MAP).blocking().get(name)
    return None if text is None else RolloutState.from_json(text)


def change_desired(
    client: Any, name: str, change: Callable[[RolloutState | None], RolloutState], attempts: int = 100
) -> RolloutState:
    """Compare-and-set the desired state of ``name`` to ``change(current)`` with the next revision; returns it."""
    desired = client.get_map(DESIRED_MAP).blocking()
    for _ in range(attempts):
        old_text = desired.get(name)
        old = None if old_text is None else RolloutState.from_json(old_text)
        new = change(old).with_revision((old.revision if old is not None else 0) + 1)
        if new.name != name:
            raise ValueError(f"a change of {name!r} returned a state of {new.name!r}")
        if old_text is None:
            if desired.put_if_absent(name, new.to_json()) is None:
                return new
        elif desired.replace_if_same(name, old_text, new.to_json()):
            return new
    raise RuntimeError(f"the desired state of {name!r} kept changing under {attempts} attempts")


def read_reports(client: Any, name: str | None = None) -> list[ReplicaReport]:
    actual = client.get_map(ACTUAL_MAP).blocking()
    reports = [ReplicaReport.from_json(v) for v in actual.values()]
    return sorted((r for r in reports if name is None or r.name == name), key=lambda r: (r.name, r.replica))


def wait_converged(client: Any, name: str, revision: int, replicas: int, timeout: float) -> list[ReplicaReport]:
    """Wait until ``replicas`` replicas report ``revision`` (or later) of ``name``; returns the reports then (fewer
    on timeout: the caller checks). For repeated waits keep one :class:`ConvergenceWaiter` instead."""
    with ConvergenceWaiter(client) as waiter:
        return waiter.wait(name, revision, replicas, timeout)


class ConvergenceWaiter:
    """Waits for replica reports, woken by one entry listener on the actual-state map (registered once: a listener
    registered per wait could miss the reports that arrive while it registers).

    Re-reads the map at least every ``poll_s`` as well, since events can be lost while the cluster fails over.
    """

    def __init__(self, client: Any, poll_s: float = 0.25) -> None:
        self.client = client
        self.poll_s = poll_s
        self._changed = threading.Condition()
        self._version = 0
        self._actual = client.get_map(ACTUAL_MAP).blocking()
        self._registration = self._actual.add_entry_listener(
            include_value=False, added_func=self._bump, updated_func=self._bump
        )

    def _bump(self, event: Any) -> None:
        with self._changed:
            self._version += 1
            self._changed.notify_all()

    def wait(self, name: str, revision: int, replicas: int, timeout: float) -> list[ReplicaReport]:
        deadline = time.monotonic() + timeout
        while True:
            with self._changed:
                seen = self._version
            done = [r for r in read_reports(self.client, name) if r.revision >= revision]
            left = deadline - time.monotonic()
            if len(done) >= replicas or left <= 0:
                return done
            with self._changed:
                self._changed.wait_for(lambda s=seen: self._version != s, min(left, self.poll_s))  # type: ignore[misc]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._actual.remove_entry_listener(self._registration)

    def __enter__(self) -> ConvergenceWaiter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Rotation:
    """How a replica leaves its clients' rotation while it loads (module docstring, rule 4).

    The server attaches what it does to leave and come back once it serves (:meth:`attach`); until then (the
    replica converging before it serves) a load needs no rotation. ``drain_s``: how long clients get to move away
    (their health checks' period and the calls in flight); ``wait_s``: how long to wait for another replica to come
    back before loading in rotation anyway (availability first); ``lease_s``: the most one replica stays out.
    """

    def __init__(self, drain_s: float, *, wait_s: float = 120.0, lease_s: float = 300.0) -> None:
        if drain_s < 0 or wait_s < 0 or lease_s <= 0:
            raise ValueError(f"drain_s and wait_s must be >= 0 and lease_s > 0, got {drain_s}, {wait_s}, {lease_s}")
        self.drain_s = drain_s
        self.wait_s = wait_s
        self.lease_s = lease_s
        self._leave: Callable[[], None] | None = None
        self._rejoin: Callable[[], None] | None = None
        #: (event, monotonic time) of every leave and rejoin, for reports and tests.
        self.events: list[tuple[str, float]] = []

    def attach(self, leave: Callable[[], None], rejoin: Callable[[], None]) -> None:
        self._leave, self._rejoin = leave, rejoin

    @contextlib.contextmanager
    def out(self, locks: Any, key: str) -> Iterator[None]:
        """Out of rotation for the block: take the cluster's turn (``locks``: a blocking Hazelcast map), leave,
        drain, run the block, come back, give the turn back."""
        leave, rejoin = self._leave, self._rejoin
        if leave is None or rejoin is None:
            yield
            return
        turn = False
        try:
            turn = bool(locks.try_lock(key, lease_time=self.lease_s, timeout=self.wait_s))
        except Exception as exc:  # the cluster is failing over: load in rotation rather than not at all
            log.warning("rotation: cannot take the cluster's turn (%s); loading in rotation", exc)
        if not turn:
            log.warning("rotation: another replica kept the turn for %.1f s; loading in rotation", self.wait_s)
            yield
            return
        try:
            leave()
            self.events.append(("leave", time.monotonic()))
            time.sleep(self.drain_s)
            yield
        finally:
            try:
                rejoin()
                self.events.append(("rejoin", time.monotonic()))
            finally:
                with contextlib.suppress(Exception):  # the lease frees it if this fails
                    locks.unlock(key)


class ControlPlane:
    """One replica's side of the control plane (see the module docstring)."""

    def __init__(
        self,
        client: Any,
        controller: RolloutController,
        replica: str,
        *,
        resync_s: float = 1.0,
        load_timeout_s: float | None = None,
        rotation: Rotation | None = None,
    ) -> None:
        self.client = client
        self.controller = controller
        self.replica = replica
        self.resync_s = resync_s
        self.load_timeout_s = load_timeout_s
        self.rotation = rotation
        self._desired = client.get_map(DESIRED_MAP).blocking()
        self._actual = client.get_map(ACTUAL_MAP).blocking()
        self._rotation_locks = client.get_map(ROTATION_MAP).blocking() if rotation is not None else None
        self._lock = threading.Lock()
        self._wanted: dict[str, str] = {}
        self._acted: dict[str, int] = {}
        self._wake = threading.Event()
        self._closed = False
        self._registration: str | None = None
        self._thread = threading.Thread(target=self._run, name=f"rollout-control-{replica}", daemon=True)
        controller.on_rollback.append(self._publish_rollback)

    def start(self) -> ControlPlane:
        """Listen, apply the desired state of every model once (on this thread: the replica serves what the cluster
        wants from its first request), then follow changes on the converger thread."""
        self._registration = self._desired.add_entry_listener(
            include_value=True, added_func=self._on_event, updated_func=self._on_event
        )
        self._resync()
        self.step()
        self._thread.start()
        return self

    def _on_event(self, event: Any) -> None:
        with self._lock:
            self._keep_newer(event.key, event.value)
        self._wake.set()

    def _resync(self) -> None:
        entries = dict(self._desired.entry_set())
        with self._lock:
            for name, text in entries.items():
                self._keep_newer(name, text)

    def _keep_newer(self, name: str, text: str) -> None:
        """Take ``text`` as the wish for ``name`` unless the one held has a higher revision. A resync's snapshot may
        be older than an event that arrived while it was read: overwriting the event's state with it lost that
        change until the next resync (measured: one change in ~100 took a resync period to converge)."""
        held = self._wanted.get(name)
        new_rev, held_rev = _revision(text), None if held is None else _revision(held)
        if new_rev is None or held_rev is None or new_rev >= held_rev:  # unreadable: take it (step() reports it)
            self._wanted[name] = text

    def _run(self) -> None:
        next_resync = time.monotonic() + self.resync_s
        while not self._closed:
            self._wake.wait(max(0.0, next_resync - time.monotonic()))
            self._wake.clear()
            if self._closed:
                return
            if time.monotonic() >= next_resync:
                with contextlib.suppress(Exception):  # the cluster may be failing over: try again next time
                    self._resync()
                next_resync = time.monotonic() + self.resync_s
            self.step()

    def step(self) -> int:
        """Apply every desired state newer than what this replica acted on; returns how many it applied."""
        due = self._due()
        if not due:
            return 0
        serving = set(self.controller.engine.refs())
        loads = any(f"{s.name}@{v}" not in serving for s in due for v in s.versions)
        if loads and self.rotation is not None and self._rotation_locks is not None:
            with self.rotation.out(self._rotation_locks, "turn"):
                # Read again after the drain: the rest of a deploy of several models, written back to back, loads
                # in the same window instead of taking the replica out once per model.
                return self._apply(self._due())
        return self._apply(due)

    def _due(self) -> list[RolloutState]:
        """The desired states newer than what this replica acted on (unreadable ones are reported, not returned)."""
        with self._lock:
            wanted = dict(self._wanted)
        due: list[RolloutState] = []
        for name, text in sorted(wanted.items()):
            try:
                state = RolloutState.from_json(text)
            except (ValueError, TypeError) as exc:
                self._report_invalid(name, f"unreadable desired state: {exc}")
                continue
            if state.revision > self._acted.get(name, -1):
                due.append(state)
        return due

    def _apply(self, due: list[RolloutState]) -> int:
        applied = 0
        for state in due:
            name = state.name
            self._acted[name] = state.revision
            result = self.controller.apply(state, self.load_timeout_s)
            serving = result.state or self.controller.state(name)
            report = ReplicaReport(
                self.replica,
                name,
                state.revision,
                serving.live if serving else "",
                serving.candidate if serving else "",
                serving.canary_pct if serving else 0.0,
                serving.shadow if serving else False,
                result.ok,
                result.error,
                time.time(),
            )
            self._write(report)
            applied += 1
        return applied

    def _report_invalid(self, name: str, error: str) -> None:
        self._write(ReplicaReport(self.replica, name, -1, "", "", 0.0, False, False, error, time.time()))

    def _write(self, report: ReplicaReport) -> None:
        for _ in range(3):  # a member may be going away: the client retries on another
            try:
                self._actual.put(f"{self.replica}/{report.name}", report.to_json())
                return
            except Exception:
                continue

    def _publish_rollback(self, state: RolloutState, reason: str) -> None:
        """The local gate rolled back: make it the cluster's wish (only if nobody changed the wish since)."""
        self._acted[state.name] = state.revision
        expected = state.revision - 1

        def change(current: RolloutState | None) -> RolloutState:
            if current is None or current.revision != expected:
                raise _Stale
            return current.rolled_back()

        with contextlib.suppress(_Stale):
            change_desired(self.client, state.name, change, attempts=1)
        serving = self.controller.state(state.name) or state
        self._write(
            ReplicaReport(
                self.replica, state.name, state.revision, serving.live, "", 0.0, False, True, reason, time.time()
            )
        )

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join()
        if self._registration is not None:
            with contextlib.suppress(Exception):
                self._desired.remove_entry_listener(self._registration)
        with contextlib.suppress(ValueError):
            self.controller.on_rollback.remove(self._publish_rollback)


def _revision(text: str) -> int | None:
    """The revision of a desired state's JSON; ``None`` if unreadable."""
    try:
        return int(json.loads(text)["revision"])
    except (ValueError, TypeError, KeyError):
        return None


class _Stale(Exception):
    """The desired state moved on: another writer's change wins."""


def main(argv: Sequence[str] | None = None) -> int:
    """One gateway replica: serve the store's models and converge on the cluster's desired state until stdin
    closes (how tests and benchmarks run replicas as processes)."""
    from gateway.sources import ModelSource, open_engine

    parser = argparse.ArgumentParser(prog="python -m gateway.rollout_control", description=main.__doc__)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--cluster", required=True, help="Hazelcast cluster name")
    parser.add_argument("--members", required=True, help="comma-separated HOST:PORT of Hazelcast members")
    parser.add_argument("--replica", required=True, help="this replica's name in the actual-state map")
    parser.add_argument("--no-validate", action="store_true", help="serve versions without a validation report")
    parser.add_argument("--resync", type=float, default=1.0, help="seconds between full re-reads (%(default)s)")
    args = parser.parse_args(argv)
    source = ModelSource(
        store=args.store,
        cluster=args.cluster,
        members=tuple(args.members.split(",")),
        replica=args.replica,
        validate=not args.no_validate,
        resync_s=args.resync,
    )
    with open_engine(source) as engine:
        print(f"ready {args.replica} {','.join(engine.refs())}", flush=True)
        sys.stdin.read()  # until the parent closes our stdin
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
