"""The version manager: converges the loaded versions on what a source aspires to, without a dropped request.

TF Serving's ``AspiredVersionsManager``, in one class:

* A **source** calls :meth:`VersionManager.set_aspired` with the versions of a model it wants and which should be
  live. That is a wish, not a command: the manager converges on it.
* :meth:`VersionManager.reconcile` takes one step: it snapshots the states, asks the pure policy
  (:func:`models.policy.decide`, :func:`models.policy.choose_live`) what to do, and starts it.
* **Loads** run on the manager's own thread pool (``load_threads`` workers, niced below the serving threads on
  Linux), so a load never runs on a serving thread and at most ``load_threads`` run at once. They still share the
  GIL with the serving threads: the Python steps of a load and ONNX Runtime's session building delay serving calls
  while they run (measured by the ``hotswap`` benchmark suite), so a worker can be paced to work only a share of
  the time (``load_duty``): a swap takes longer and meets fewer serving calls. A load is: size check against
  ``max_model_bytes``, the injected ``loader(package)``, then ``warm(value, package)`` (reference inputs through the
  new version) before it is marked ``READY``. Any exception puts the version in ``ERROR`` with the message; the
  previous version keeps serving.
* The **switch** is one reference assignment of a new registry snapshot (:mod:`models.registry`).
* An **unload** publishes a snapshot without the version, drains it (in-flight calls finish on it, holding their
  handles), then closes it on the pool. The close never races a call (onnxruntime#21812).

Driving: with ``interval_s > 0`` a background thread reconciles whenever something changes (and at least every
``interval_s``); with ``interval_s <= 0`` nothing runs by itself and the caller steps the manager with
:meth:`reconcile` or :meth:`converge` (how the tests drive it).

The loaded object is generic: the manager knows only that it has ``close()``. ``models`` never imports ``gateway``;
the gateway injects a loader that builds its ``ModelRuntime``.

Thread-safety: every public method may be called from any thread. Readers use :meth:`acquire` and never block on
the manager's lock.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Generic

from models.handle import Harness, T
from models.ids import ModelId, version_key
from models.package import Package
from models.policy import Action, Aspired, Kind, State, choose_live, decide
from models.registry import Registry, Router, RoutingKey, Snapshot

__all__ = ["ManagerOptions", "VersionManager", "VersionStatus"]

#: Resolves a version to its package (usually :meth:`models.store.ArtifactStore.get`).
PackageSource = Callable[[str, str], Package]


@dataclass(frozen=True)
class ManagerOptions:
    """How the manager loads and unloads. Every default is documented; nothing reads the environment."""

    #: Workers of the load pool: at most this many versions load (or close) at once.
    load_threads: int = 1
    #: Niceness added to each load worker thread (Linux per-thread priority) so that loads yield the CPU to the
    #: serving threads; 0 leaves it alone. Ignored where threads cannot be reniced.
    load_nice: int = 10
    #: Largest ONNX file the manager will load, in bytes; larger versions go to ``ERROR``. 0: no limit.
    max_model_bytes: int = 0
    #: Background reconcile period in seconds (it also wakes on every change); ``<= 0``: no thread, step by hand.
    interval_s: float = 1.0
    #: How long an unload waits for in-flight calls before closing anyway is refused (the version stays draining).
    drain_timeout_s: float = 30.0
    #: Pause of a load worker between the steps of a load or an unload (package, loader, warm-up, publish; close,
    #: after-unload), in seconds: the worker lets go of the GIL for that long, so a serving thread waiting for it
    #: takes it. Without it the worker takes the GIL back right after each short system call and a waiting thread
    #: can starve for milliseconds (CPython's convoy effect). Costs about 1 ms per version. 0: no pause.
    step_pause_s: float = 0.0002
    #: Largest share of wall-clock time a load worker spends working, ``0 < load_duty <= 1``: after a step that took
    #: ``t`` it rests ``t * (1 / load_duty - 1)`` (at least ``step_pause_s``). A load shares the GIL and the cores
    #: with the serving threads, and while it works it slows a large share of the calls made meanwhile (measured
    #: with the 24 demo models at full speed: a quarter of them past the steady p99); pacing it leaves fewer calls
    #: to meet it, at the price of a longer swap (a version loads in about 3 ms of work: 0.1 s at 0.03). 1: no pacing.
    load_duty: float = 1.0

    def __post_init__(self) -> None:
        if self.load_threads < 1:
            raise ValueError(f"load_threads must be >= 1, got {self.load_threads}")
        if self.max_model_bytes < 0:
            raise ValueError("max_model_bytes must be >= 0")
        if self.step_pause_s < 0:
            raise ValueError("step_pause_s must be >= 0")
        if not 0 < self.load_duty <= 1:
            raise ValueError(f"load_duty must be in (0, 1], got {self.load_duty}")


@dataclass(frozen=True)
class VersionStatus:
    """What one version is doing, for status reports."""

    name: str
    version: str
    state: State
    live: bool
    in_flight: int
    error: str = ""


class VersionManager(Generic[T]):
    """Loads, serves and unloads versions (see the module docstring)."""

    def __init__(
        self,
        packages: PackageSource | None,
        loader: Callable[[Package], T],
        warm: Callable[[T, Package], None] | None = None,
        options: ManagerOptions | None = None,
        router: Router | None = None,
        after_unload: Callable[[], None] | None = None,
    ) -> None:
        """``after_unload`` runs on the load pool after each version closes (e.g. to hand freed heap back to the
        operating system); its exceptions are ignored."""
        self.options = options or ManagerOptions()
        self._after_unload = after_unload
        self._packages = packages
        self._loader = loader
        self._warm = warm
        self.registry: Registry[T] = Registry(router)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._aspired: dict[str, Aspired] = {}
        self._harnesses: dict[ModelId, Harness[T]] = {}
        self._live: dict[str, str] = {}
        self._dirty: set[str] = set()  # names whose wish changed since the last publish
        self._pending: set[concurrent.futures.Future[None]] = set()
        self._finished = 0  # loads and unloads finished so far (converge() waits for it to move)
        self._pool = concurrent.futures.ThreadPoolExecutor(
            self.options.load_threads, thread_name_prefix="model-load", initializer=self._lower_priority
        )
        self._closed = False
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        if self.options.interval_s > 0:
            self._thread = threading.Thread(target=self._run, name="version-manager", daemon=True)
            self._thread.start()

    # -- the source side -------------------------------------------------------------------------------------
    def set_aspired(self, name: str, versions: Iterable[str], live: str | None = None) -> None:
        """Want exactly ``versions`` of ``name`` loaded, ``live`` serving un-pinned requests (``None``: the
        highest). An empty ``versions`` withdraws the model. Returns at once; the manager converges."""
        wanted = frozenset(versions)
        with self._lock:
            if wanted:
                self._aspired[name] = Aspired(wanted, live)
            else:
                self._aspired.pop(name, None)
            self._dirty.add(name)  # the live choice may change with no action to take: the next step publishes
        self._wake.set()

    def aspired(self) -> Mapping[str, Aspired]:
        with self._lock:
            return dict(self._aspired)

    def install(self, mid: ModelId, value: T) -> None:
        """Serve an already loaded ``value`` as the only aspired, live version of ``mid.name`` now.

        For callers that load models themselves; other versions of the name drain and close on later steps (at once
        without a background thread: this call reconciles). Installing an id that serves replaces it.
        """
        old: Harness[T] | None = None
        with self._lock:
            old = self._harnesses.pop(mid, None)
            self._harnesses[mid] = Harness(mid, value, State.READY)
            self._aspired[mid.name] = Aspired(frozenset({mid.version}), mid.version)
            self._publish_locked()
        if old is not None:
            self._unload(old)
        self.reconcile()

    # -- readers -----------------------------------------------------------------------------------------------
    def acquire(self, ref: str, key: RoutingKey | None = None) -> Harness[T]:
        """Hold the version ``ref`` (``name`` or ``name@version``) reaches; release it with ``harness.release()``.

        Raises :class:`models.registry.VersionNotFoundError` when nothing serves under ``ref``.
        """
        return self.registry.acquire(ref, key)

    # -- converging --------------------------------------------------------------------------------------------
    def reconcile(self) -> list[Action]:
        """One step: decide and start the next actions; returns them (empty when converged or waiting)."""
        with self._lock:
            if self._closed:
                return []
            states = {m: h.state for m, h in self._harnesses.items()}
            actions = decide(self._aspired, states)
            leaving = {a.id for a in actions if a.kind is Kind.UNLOAD}
            if leaving:  # switch first: the next snapshot no longer lists them, then they drain
                self._publish_locked(leaving, {m.name for m in leaving})
            for action in actions:
                self._start(action)
            # Publish again unless nothing can have changed: no action (a finished load published itself, and a
            # finished unload or a failed load changes nothing readers see) or only unloads (already published,
            # above), and no new wish. converge() steps after every finished load and unload: a publish each time
            # was most of the manager's own work during a swap, with the GIL held.
            touched = {a.id.name for a in actions if a.kind is not Kind.UNLOAD}
            if self._dirty or touched:
                self._publish_locked(names=touched)
            else:
                self._changed.notify_all()  # waiters re-check (e.g. a version whose unload finished is gone)
            return actions

    def converge(self, timeout: float = 60.0) -> bool:
        """Step until no action is due and no load or unload is running; ``False`` if ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        while True:
            self.reconcile()
            with self._lock:
                if not self._pending:
                    states = {m: h.state for m, h in self._harnesses.items()}
                    if not decide(self._aspired, states):
                        return True
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                # Wait for the next load or unload to finish: a counter, not concurrent.futures.wait(), which hooks a
                # waiter into every pending future on each call (a swap of n models would cost O(n^2) with the GIL).
                seen = self._finished

                def moved(seen: int = seen) -> bool:
                    return self._finished != seen

                self._changed.wait_for(moved, remaining)

    def wait_published(self, seen: object, timeout: float) -> Snapshot[T]:
        """The registry's snapshot: at once if it is not ``seen``, else after the manager's next change of state (or
        :meth:`wake`, or ``timeout`` s). The caller loops; a change of state need not have published a snapshot."""
        with self._changed:
            if self.registry.snapshot is seen:
                self._changed.wait(timeout)
            return self.registry.snapshot

    def wake(self) -> None:
        """Return every :meth:`wait_published` now (a watcher that is stopping)."""
        with self._changed:
            self._changed.notify_all()

    def wait_live(self, name: str, version: str, timeout: float) -> bool:
        """Wait until ``name@version`` is live (with a background thread driving the manager); ``False`` on
        timeout or when that version failed to load."""

        def settled() -> bool:
            h = self._harnesses.get(ModelId(name, version))
            return self._live.get(name) == version or (h is not None and h.state is State.ERROR)

        with self._changed:
            self._changed.wait_for(settled, timeout)
            return self._live.get(name) == version

    def wait_loaded(self, name: str, version: str, timeout: float) -> State | None:
        """Wait until ``name@version`` is ``READY`` or in ``ERROR`` and return that state (``None`` if the manager
        does not hold it, or the load was still running at ``timeout``). Without a background thread this steps the
        manager itself (:meth:`converge`)."""
        mid = ModelId(name, version)
        if self._thread is None:
            self.converge(timeout)
        else:
            self.reconcile()  # start the load now rather than at the background thread's next step

        def settled() -> bool:
            h = self._harnesses.get(mid)
            if h is None:
                wish = self._aspired.get(name)
                return wish is None or version not in wish.versions
            return h.state in (State.READY, State.ERROR)

        with self._changed:
            self._changed.wait_for(settled, timeout)
            h = self._harnesses.get(mid)
            return h.state if h is not None and h.state in (State.READY, State.ERROR) else None

    def error(self, name: str, version: str) -> str:
        """The error message of ``name@version`` ("" if none, or not held)."""
        with self._lock:
            h = self._harnesses.get(ModelId(name, version))
            return h.error if h is not None else ""

    def _start(self, action: Action) -> None:
        mid = action.id
        if action.kind is Kind.LOAD:
            harness: Harness[T] = Harness(mid, state=State.LOADING)
            self._harnesses[mid] = harness
            self._submit(self._load, harness)
        elif action.kind is Kind.FORGET:
            del self._harnesses[mid]
        else:
            harness = self._harnesses[mid]
            harness.drain()  # already out of the published snapshot: readers that still saw it retry
            self._submit(self._finish_unload, harness)

    def _submit(self, fn: Callable[[Harness[T]], None], harness: Harness[T]) -> None:
        future = self._pool.submit(fn, harness)
        self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: concurrent.futures.Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)
            self._finished += 1
            self._changed.notify_all()
        self._wake.set()

    def _load(self, harness: Harness[T]) -> None:
        mid = harness.id
        try:
            if self._packages is None:
                raise LookupError(f"{mid}: this manager has no package source (only installed versions)")
            step = self._pause()
            package = self._packages(mid.name, mid.version)
            harness.size_bytes = package.model_bytes
            limit = self.options.max_model_bytes
            if limit and harness.size_bytes > limit:
                raise MemoryError(
                    f"{mid}: model file is {harness.size_bytes} bytes, over the configured limit of {limit} bytes"
                )
            step = self._pause(step)
            value = self._loader(package)
            harness.value = value
            harness.set_state(State.WARMING)
            if self._warm is not None:
                step = self._pause(step)
                self._warm(value, package)
            self._pause(step)
        except Exception as exc:  # any failure of a load is this version's error, never the server's
            value_to_close = harness.value
            harness.value = None
            harness.set_state(State.ERROR, f"{type(exc).__name__}: {exc}")
            if value_to_close is not None:
                value_to_close.close()
            with self._lock:
                self._changed.notify_all()
            return
        with self._lock:
            if self._harnesses.get(mid) is not harness or self._closed:  # withdrawn or closed meanwhile
                stale = True
            else:
                stale = False
                harness.set_state(State.READY)
                self._publish_locked(names={mid.name})
        if stale:
            harness.set_state(State.UNLOADED)
            value.close()

    def _finish_unload(self, harness: Harness[T]) -> None:
        if not harness.wait_drained(self.options.drain_timeout_s):
            with self._lock:  # a reader holds it far too long: keep it open, report it, wait again
                harness.error = f"still {harness.in_flight} call(s) in flight after {self.options.drain_timeout_s}s"
                self._submit(self._finish_unload, harness)
            return
        self._unload(harness, paced=True)
        with self._lock:
            if self._harnesses.get(harness.id) is harness:
                del self._harnesses[harness.id]

    def _unload(self, harness: Harness[T], paced: bool = False) -> None:
        """Drain and close ``harness``; ``paced``: on the load pool, keeping ``load_duty``."""
        harness.drain()
        if not harness.wait_drained(self.options.drain_timeout_s):
            # Closing now could crash a running call (onnxruntime#21812): keep it open and say so.
            harness.error = (
                f"left open: {harness.in_flight} call(s) still in flight after {self.options.drain_timeout_s}s"
            )
            return
        value, harness.value = harness.value, None
        harness.set_state(State.UNLOADED)
        if value is not None:
            step = time.perf_counter()
            value.close()
            del value
            if self._after_unload is not None:
                step = self._pause(step if paced else None)
                with contextlib.suppress(Exception):
                    self._after_unload()
            if paced:
                self._pause(step)

    def _publish_locked(
        self, leaving: frozenset[ModelId] | set[ModelId] = frozenset(), names: set[str] | None = None
    ) -> None:
        """Publish a snapshot of what serves; ``names``: only those names (and any whose wish changed) can differ from
        the last snapshot, the others are carried over (a step of a swap touches one or two names: recomputing all of
        them each time made a swap of n models cost O(n^2) interpreted work, with the GIL held next to the serving
        threads). ``None``: recompute every name."""
        if names is None:
            todo = None
            versions: dict[str, Mapping[str, Harness[T]]] = {}
            live: dict[str, str] = {}
        else:
            todo = names | self._dirty
            versions = dict(self.registry.snapshot.versions)
            live = dict(self._live)
            for name in todo:
                versions.pop(name, None)
                live.pop(name, None)
        by_name: dict[str, dict[ModelId, State]] = {}
        fresh: dict[str, dict[str, Harness[T]]] = {}
        for mid, harness in self._harnesses.items():
            if todo is not None and mid.name not in todo:
                continue
            state = State.DRAINING if mid in leaving else harness.state
            by_name.setdefault(mid.name, {})[mid] = state
            if state is State.READY:
                fresh.setdefault(mid.name, {})[mid.version] = harness
        versions.update(fresh)
        for name, states in by_name.items():
            want = self._aspired.get(name)
            wanted = want.wanted_live if want is not None else None
            if wanted is not None and wanted in fresh.get(name, ()):  # rule 1 of choose_live, without its lookups
                live[name] = wanted
                continue
            chosen = choose_live(name, want, states, self._live.get(name))
            if chosen is not None:
                live[name] = chosen
        self._live = live
        self._dirty.clear()
        self.registry.publish(versions, live)
        self._changed.notify_all()

    # -- reporting ---------------------------------------------------------------------------------------------
    def status(self) -> list[VersionStatus]:
        """Every version the manager holds, by name then version."""
        with self._lock:
            items = sorted(self._harnesses.items(), key=lambda kv: (kv[0].name, version_key(kv[0].version)))
            return [
                VersionStatus(m.name, m.version, h.state, self._live.get(m.name) == m.version, h.in_flight, h.error)
                for m, h in items
            ]

    def live(self) -> Mapping[str, str]:
        return dict(self.registry.snapshot.live)

    # -- background thread and shutdown ------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.options.interval_s)
            self._wake.clear()
            if not self._closed:
                self.reconcile()

    def _pause(self, since: float | None = None) -> float:
        """Rest between the steps of a load: :attr:`ManagerOptions.step_pause_s`, or as long as keeps
        :attr:`ManagerOptions.load_duty` for a step that began at ``since`` (``time.perf_counter()``). Returns when
        the next step begins."""
        rest = self.options.step_pause_s
        duty = self.options.load_duty
        if since is not None and duty < 1:
            rest = max(rest, (time.perf_counter() - since) * (1 / duty - 1))
        if rest > 0:
            time.sleep(rest)
        return time.perf_counter()

    def _lower_priority(self) -> None:
        nice = self.options.load_nice
        if nice and hasattr(os, "setpriority"):
            # On Linux a thread id is a process id for setpriority: this renices the load worker only.
            with contextlib.suppress(OSError):
                base = os.getpriority(os.PRIO_PROCESS, 0)
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(19, base + nice))

    def close(self) -> None:
        """Stop converging, wait for running loads, then drain and close every version."""
        with self._lock:
            self._closed = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        self._pool.shutdown(wait=True)
        with self._lock:
            harnesses = list(self._harnesses.values())
            self._harnesses.clear()
            self.registry.publish({}, {})
        for harness in harnesses:
            if harness.state in (State.READY, State.DRAINING, State.WARMING):
                self._unload(harness)
