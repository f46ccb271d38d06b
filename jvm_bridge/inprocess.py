"""In-process transport: Java code in this process's JVM (JPype) scores models through the engine.

Design (the measured facts behind it are in README "JVM bridge"):

1. Java request threads never call into Python. ``ModelGateway.score`` on the Java side
   (``dev.scoregate.bridge.inprocess.InProcessGateway``) validates the request, enqueues it and
   parks the calling thread until its deadline.
2. ``workers`` long-lived Python threads, each owning one Java ``WorkerLane``, loop:
   ``lane.take()`` (a Java call: JPype releases the GIL while it blocks) → read the batch descriptor
   from the lane's control block (a direct buffer this thread mapped once as numpy int64) →
   ``runtime.score(x, out)`` on numpy views of the Java direct buffers → ``lane.complete()``.
   Two Python→Java calls per batch, whatever its size, and each Python thread keeps its thread
   state for life (a Java thread calling into Python pays ~30 µs to create one per call).
3. One request on an arena slot registered with the gateway is scored **in place**: the views
   point at the slot's own memory. Several queued requests for the same model are copied by Java
   (on the worker's thread, without the GIL) into the lane's staging buffer and scored as one
   ONNX Runtime run: micro-batching that adds no delay when uncontended.
4. Lanes share one GIL, so two lanes only beat one when their ONNX Runtime runs (which release it)
   overlap. Each worker reports a sample of its batches' CPU time (control block ``[8]``); the Java
   queue keeps a per-model, per-batch-size cost and lets short batches (under ``gather_us``) gather on
   the lane already scoring instead of waking another one to fight it for the GIL.
5. Errors map out through the one tree: each :class:`gateway.errors.ScoregateError` becomes a code
   the Java side turns into its typed exception, with the Python message (model, input, problem).
   No exception ends a worker.

Views are cached per (buffer, offsets, rows, features, outputs) so that a slot reused with the same row count hands
``ModelRuntime`` the same array object and its IOBinding is not rebound. Each batch runs under a handle on its
version (``engine.acquire``, kept between batches until the registry changes: :class:`_Handles`), so a hot swap
never closes a session under a running batch.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import platform
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from time import perf_counter_ns, thread_time_ns
from typing import Any

import numpy as np

from gateway.blas import single_threaded_blas
from gateway.engine import Engine
from gateway.errors import (
    DeadlineExceededError,
    InvalidInputError,
    ModelNotFoundError,
    ScoregateError,
    UnavailableError,
)
from gateway.runtime import ModelRuntime

__all__ = ["InProcessHost", "InProcessOptions", "error_code"]

log = logging.getLogger(__name__)

_JAVA_PACKAGE = "dev.scoregate.bridge.inprocess"
_STAGING = -1
_VIEW_CACHE_LIMIT = 4096
#: Batches whose scoring CPU time is reported to the queue: those with ``batches & _COST_SAMPLE == 0``.
_COST_SAMPLE = 7
#: Mark an in-place batch scored in the control block (``control[9]``) before ``complete()``, so a caller spinning
#: for it returns ~1.5 µs sooner. Only where stores become visible in program order (x86-64's TSO): a caller that
#: sees the mark must see the scores ONNX Runtime wrote before it, and Python has no store fence to ask for that.
_MARK_SCORED = platform.machine().lower() in ("x86_64", "amd64")


def error_code(exc: BaseException) -> int:
    """The code ``WorkerLane.fail`` turns into a typed Java exception (0: the generic ScoregateException)."""
    if isinstance(exc, InvalidInputError):
        return 1
    if isinstance(exc, ModelNotFoundError):
        return 2
    if isinstance(exc, DeadlineExceededError):
        return 3
    if isinstance(exc, UnavailableError):
        return 4
    return 0


@dataclass(frozen=True)
class InProcessOptions:
    """How the in-process transport queues and batches. Mirrors the Java ``InProcessGateway.Options``."""

    #: Python worker threads (Java lanes). More than the cores rarely helps: ONNX Runtime runs
    #: release the GIL, but take/complete and view lookups hold it briefly.
    workers: int = 2
    #: Most rows one ONNX Runtime run may carry when requests are batched.
    max_batch_rows: int = 1024
    #: How long a lane may wait to fill a batch once it holds one request. 0: never wait.
    max_delay_us: float = 0.0
    #: Pending requests beyond which Java fails new ones fast as overloaded.
    queue_capacity: int = 8192
    #: How often a blocked worker wakes to check for shutdown.
    take_timeout_ms: float = 200.0
    #: How long a Java caller may busy-wait for its result before parking, and an idle lane for work,
    #: while a core is free (scoring lanes + spinners < cores). A parked thread costs a wake-up per
    #: hand-off (30-50 µs on an idle VM vCPU); on a saturated host nobody spins. 0: always park.
    caller_spin_us: float = 1000.0
    lane_spin_us: float = 50.0
    #: Batches that score in less than this (the lanes' own CPU time, per model and batch size) gather on the lane
    #: already scoring instead of waking another: Python runs one worker at a time, so two lanes only win when
    #: their ONNX Runtime runs (which release the GIL) overlap. 0: every arrival may use an idle lane.
    gather_us: float = 100.0
    #: Model names the host may add after start: a name the engine starts serving later (a deploy) is served to Java
    #: under one of these spare indices, without a restart, if its rows are no wider than the widest name's at start.
    spare_models: int = 32


class _Handles:
    """The versions one worker holds between batches.

    Taking a handle per batch costs a few microseconds of Python (resolve, count in, count out). A worker instead
    keeps its handle while the registry's snapshot is the same object; a swap publishes a new snapshot, and the
    next batch lets go of every old handle before taking the new version's. An idle worker (``take`` timed out)
    lets go of everything, so a swapped-out version drains within one take timeout even without traffic.

    Results name the version that scored them: whenever the version a new handle holds is not the one last named
    to the lane for that model, ``serving(model, version)`` names it (a Java call, only after a swap).
    """

    def __init__(self, engine: Engine, serving: Callable[[int, str], None]) -> None:
        self._engine = engine
        self._registry = engine.manager.registry
        self._serving = serving
        self._snapshot: object = None
        self._held: dict[int, tuple[str, Any]] = {}  # model index -> (the ref it was taken for, its harness)
        self._named: dict[int, str] = {}

    def get(self, model: int, ref: str) -> ModelRuntime:
        snapshot = self._registry.snapshot
        if snapshot is not self._snapshot:
            self.release_all()
            self._snapshot = snapshot
        held = self._held.get(model)
        if held is None or held[0] is not ref:  # not held, or the route now resolves another ref (a canary)
            if held is not None:
                del self._held[model]
                held[1].release()
            harness = self._acquire(ref)
            version = harness.id.version
            if self._named.get(model) != version:
                try:
                    self._serving(model, version)
                except BaseException:
                    harness.release()
                    raise
                self._named[model] = version
            held = self._held[model] = (ref, harness)
        runtime: ModelRuntime | None = held[1].value
        assert runtime is not None  # a READY harness holds its value
        return runtime

    def _acquire(self, ref: str) -> Any:
        try:
            return self._engine.acquire(ref)
        except ModelNotFoundError:
            if "@" not in ref:
                raise
            # A canary route whose candidate was rolled back and unloaded before the host saw it: the live version.
            return self._engine.acquire(ref.partition("@")[0])

    def release_all(self) -> None:
        held, self._held = self._held, {}
        self._snapshot = None
        for _, harness in held.values():
            harness.release()


class _Worker(threading.Thread):
    """One Python scoring thread bound to one Java lane. Owns its views; shares nothing mutable."""

    def __init__(self, index: int, host: InProcessHost) -> None:
        super().__init__(name=f"scoregate-inprocess-{index}", daemon=True)
        self.index = index
        self.host = host
        self.lane = host.java_gateway.lane(index)
        self.batches = 0
        self.requests = 0
        self.rows = 0
        self.failures = 0
        #: The (input, output) views of the last batch this worker scored; for diagnostics and tests.
        self.last_batch: tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] | None = None
        self._buffers: dict[int, memoryview] = {}
        self._views: dict[tuple[int, int, int, int, int, int], tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]] = {}

    def run(self) -> None:
        lane = self.lane
        control = np.frombuffer(memoryview(lane.control()), dtype=np.int64)
        self._buffers[_STAGING] = memoryview(lane.staging())
        take, complete, fail = lane.take, lane.complete, lane.fail
        refs = self.host.refs
        timeout_ns = int(self.host.options.take_timeout_ms * 1e6)
        views = self._views
        handles = _Handles(self.host.engine, lane.serving)
        try:
            while True:
                try:
                    self._loop(lane, control, take, complete, fail, refs, timeout_ns, views, handles, self.host.engine)
                    return
                except Exception as exc:  # a fault of this loop must neither strand a batch nor end the lane
                    log.exception("lane %d: scoring loop failed; its batch fails, the lane goes on", self.index)
                    error = UnavailableError(f"gateway worker error: {type(exc).__name__}: {exc}")
                    with contextlib.suppress(Exception):  # raises when no batch was outstanding
                        fail(error_code(error), str(error))
        finally:
            handles.release_all()

    def _loop(
        self,
        lane: Any,
        control: np.ndarray[Any, Any],
        take: Any,
        complete: Any,
        fail: Any,
        refs: Sequence[str],
        timeout_ns: int,
        views: dict[tuple[int, int, int, int, int, int], tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]],
        handles: _Handles,
        engine: Engine,
    ) -> None:
        host = self.host
        registry = engine.manager.registry
        while True:
            try:
                n = take(timeout_ns)
            except Exception:  # a Java error in take() must not end the worker
                log.exception("lane %d: take() failed", self.index)
                continue
            if n <= 0:
                handles.release_all()  # idle: hold no version, so a swapped-out one drains now
                if n < 0:
                    return
                continue
            if getattr(registry.router, "states", None) is not host.routes_seen:  # a rollout changed
                host.sync_routes()
            model, rows, buffer, in_off, out_off, count, features, width, _, _, sequence = control[:11].tolist()
            # The batch's model decides the view's shape: two models of different widths share staging offsets.
            key = (buffer, in_off, out_off, rows, features, width)
            pair = views.get(key)
            runtime: ModelRuntime | None = None
            # The engine's monitoring hook (a metrics endpoint), when one is attached: it sees each batch as one
            # scoring call, before complete() hands the buffers back to Java.
            monitor = engine.monitor
            try:
                # Under a handle on the version serving now: a hot swap cannot close it while this batch runs.
                runtime = handles.get(model, refs[model])
                if pair is None:
                    pair = self._view(runtime, buffer, in_off, out_off, rows, features, width)
                self.last_batch = pair
                wall = perf_counter_ns() if monitor is not None else 0
                if self.batches & _COST_SAMPLE:
                    runtime.score(pair[0], pair[1])
                else:  # one batch in 8: the thread CPU clock costs ~0.7 µs a read, 5 % of a batch-1 call
                    started = thread_time_ns()
                    runtime.score(pair[0], pair[1])
                    # This thread's CPU time, GIL waits left out: the queue learns which batches run short.
                    control[8] = thread_time_ns() - started
            except Exception as exc:  # every error is reported to the Java callers
                if runtime is not None:
                    for hook in (monitor, engine.rollouts):
                        if hook is not None:
                            with contextlib.suppress(Exception):
                                hook.failed(runtime.name, runtime.version, exc)
                self.failures += count
                message = str(exc) if isinstance(exc, ScoregateError) else f"{type(exc).__name__}: {exc}"
                try:
                    fail(error_code(exc), message)
                except Exception:
                    log.exception("lane %d: fail() failed", self.index)
                continue
            if monitor is not None:
                with contextlib.suppress(Exception):  # monitoring never fails a batch that scored
                    monitor.observe(runtime.name, runtime.version, pair[0], pair[1], perf_counter_ns() - wall)
            rollouts = engine.rollouts
            if rollouts is not None:  # canary and shadow comparisons (it copies what it keeps, before complete())
                with contextlib.suppress(Exception):
                    rollouts.observe(runtime.name, runtime.version, pair[0], pair[1])
            if buffer != _STAGING and _MARK_SCORED:  # in place: its caller may take the scores now (WorkerLane [9])
                control[9] = sequence
            try:
                complete()
            except Exception:
                log.exception("lane %d: complete() failed", self.index)
                continue
            self.batches += 1
            self.requests += count
            self.rows += rows

    def _view(
        self, runtime: ModelRuntime, buffer: int, in_off: int, out_off: int, rows: int, features: int, width: int
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        mv = self._buffers.get(buffer)
        if mv is None:
            mv = self._buffers[buffer] = memoryview(self.host.java_gateway.arena(buffer))
        x = np.ndarray((rows, features), dtype=np.float32, buffer=mv, offset=in_off)
        out_shape = runtime.outputs[0].shape_for(rows)
        if int(np.prod(out_shape)) != rows * width:
            raise UnavailableError(
                f"model {runtime.name!r}: Java expects {width} outputs per row, model gives {out_shape}"
            )
        out = np.ndarray(out_shape, dtype=np.float32, buffer=mv, offset=out_off)
        if len(self._views) >= _VIEW_CACHE_LIMIT:
            self._views.clear()
        self._views[(buffer, in_off, out_off, rows, features, width)] = (x, out)
        return x, out


class InProcessHost:
    """Serves an :class:`gateway.engine.Engine` to Java code running in this process's JVM.

    Start the JVM first (:func:`jvm_bridge.jvm.start_jvm`). :meth:`start` registers the gateway
    with ``ModelGateways`` so Java code finds it with ``ModelGateways.get()``; :meth:`close`
    unregisters it, fails pending Java calls with ``GatewayUnavailableException`` and stops the
    workers. The models are the engine's names at construction and every name it serves later (:meth:`sync_models`,
    called by a watcher thread when the engine publishes a change); a hot swap of a name's live version serves from
    the lanes' next batch, and results name the version that scored (``WorkerLane.serving``).
    """

    def __init__(self, engine: Engine, options: InProcessOptions | None = None) -> None:
        import jpype

        single_threaded_blas()  # numpy's BLAS threads would fight the workers for the cores (gateway/blas.py)

        self.options = options or InProcessOptions()
        self.engine = engine
        names = engine.names()
        #: The version each model index was served with when Java learned it (its signature: what Java checks).
        self.runtimes: list[ModelRuntime] = [engine.runtime(n) for n in names]
        #: The rollout router's states :meth:`sync_routes` last pushed to Java (lanes compare it once per batch).
        self.routes_seen: object = None
        self._thresholds = [0] * len(names)
        self._routes_lock = threading.Lock()
        self._pkg = pkg = jpype.JPackage(_JAVA_PACKAGE)
        specs = jpype.java.util.ArrayList()
        for rt in self.runtimes:
            specs.add(_spec(pkg, rt))
        opts = self.options
        java_options = pkg.InProcessGateway.Options(
            opts.workers,
            opts.max_batch_rows,
            int(opts.max_delay_us * 1000),
            opts.queue_capacity,
            int(opts.caller_spin_us * 1000),
            int(opts.lane_spin_us * 1000),
            int(opts.gather_us * 1000),
            opts.spare_models,
        )
        self.java_gateway: Any = pkg.InProcessGateway(specs, java_options)
        #: Model indices per kind: ``[0, c)`` names, ``[c, 2c)`` their canary routes (``InProcessGateway.routes``).
        self.capacity = int(self.java_gateway.routes()) // 2
        spare = [""] * (self.capacity - len(names))
        #: What each model index resolves through per batch. ``[0, c)``: the bare name, so a hot-swapped live version
        #: serves (same signature: the Java side checked the feature count against the version it was given).
        #: ``[c, 2c)``: each name's canary route, ``name@candidate`` while a canary of it runs (:meth:`sync_routes`).
        #: Spare indices are "" until :meth:`sync_models` gives one a name. Changed in place: workers hold the list.
        self.refs: list[str] = [*names, *spare, *names, *spare]
        self._indices = {name: i for i, name in enumerate(names)}
        self._unservable: set[str] = set()  # names Java cannot take in process (logged once)
        self._workers = [_Worker(i, self) for i in range(opts.workers)]
        self._closing = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="scoregate-inprocess-models", daemon=True)
        self._started = False

    def start(self) -> InProcessHost:
        import jpype

        for w in self._workers:
            w.start()
        self._watcher.start()
        jpype.JClass("dev.scoregate.bridge.ModelGateways").register(self.java_gateway)
        self._started = True
        # A process that exits with the workers still inside Java hangs for ever: JPype's exit hook destroys the
        # JVM, a worker returning from take() blocks at the JVM's final safepoint while holding the GIL, and the
        # exit hook waits for the GIL. Exit hooks run last-registered first, so this one runs before JPype's.
        atexit.register(self.close)
        return self

    def sync_routes(self) -> None:
        """Bring Java's canary routes in line with the engine's rollouts (a lane calls it when they changed).

        For each served name with a rollout's candidate loaded (a canary's or a shadow's): its canary route resolves
        ``name@candidate``, then Java sends the canary's share of keyed requests there, and requests pinning the
        candidate (``InProcessGateway.route``); when it ends, Java stops first, then the route resolves the live name
        again (requests already queued on it are scored live and say so; pinned ones fail as unknown). A candidate
        whose input or output width differs from the version listed at start is not routed to (Java checked the
        requests against that one); it is logged.
        """
        with self._routes_lock:
            states = getattr(self.engine.manager.registry.router, "states", None)
            n = self.capacity
            for i in range(len(self._thresholds)):
                name = self.refs[i]
                state = states.get(name) if states is not None else None
                candidate = state.candidate if state is not None else ""  # a canary's, or a shadow's (pins reach it)
                threshold = state.threshold if state is not None else 0
                ref = f"{name}@{candidate}" if candidate else name
                if candidate and not self._fits(i, ref):
                    threshold, ref = 0, name
                if threshold == self._thresholds[i] and ref == self.refs[n + i]:
                    continue
                if ref != name:
                    self.refs[n + i] = ref  # before Java sends anything to the route
                    self.java_gateway.route(name, ref.partition("@")[2], threshold)
                else:
                    self.java_gateway.route(name, None, 0)
                    self.refs[n + i] = name
                self._thresholds[i] = threshold
            self.routes_seen = states

    def sync_models(self) -> list[str]:
        """Serve to Java every name the engine serves that Java does not know yet; return the names added.

        Each gets the next spare model index (``InProcessGateway.addModel``), and requests for it are admitted from
        then on. A name Java cannot take (more than one input, rows wider than the lanes stage, no spare index left)
        is logged once and keeps failing in Java as unknown; it stays served over gRPC and Py4J.
        """
        added: list[str] = []
        with self._routes_lock:
            for name in self.engine.names():
                if name in self._indices or name in self._unservable:
                    continue
                try:
                    runtime = self.engine.runtime(name)
                    spec = _spec(self._pkg, runtime)
                except ModelNotFoundError:  # undeployed in between
                    continue
                except Exception as exc:  # not one [batch, features] input and one fixed output
                    self._refuse(name, exc)
                    continue
                i = len(self.runtimes)
                # Before Java admits a request for it: a lane may take one as soon as addModel returns.
                self.refs[i] = self.refs[self.capacity + i] = name
                try:
                    got = int(self.java_gateway.addModel(spec))
                except Exception as exc:  # a JException: no spare index, too wide, closed
                    self.refs[i] = self.refs[self.capacity + i] = ""
                    self._refuse(name, exc)
                    continue
                if got != i:  # only this method adds, under the lock
                    raise RuntimeError(f"Java gave model {name!r} index {got}, the host expected {i}")
                self.runtimes.append(runtime)
                self._thresholds.append(0)
                self._indices[name] = i
                added.append(name)
            if added:
                self.routes_seen = None  # a canary of a new name may run already: the next batch syncs routes
        for name in added:
            log.info("model %s is served in process from now on (model index %d)", name, self._indices[name])
        return added

    def _refuse(self, name: str, exc: BaseException) -> None:
        self._unservable.add(name)
        log.warning("model %s is not served in process (Java callers get UnknownModelException): %s", name, exc)

    def _watch(self) -> None:
        """Adds names the engine starts serving (a deploy) as soon as it publishes them."""
        manager = self.engine.manager
        seen: object = None
        while not self._closing.is_set():
            snapshot = manager.wait_published(seen, 5.0)
            if snapshot is seen or self._closing.is_set():
                continue
            seen = snapshot
            if any(n not in self._indices and n not in self._unservable for n in snapshot.live):
                try:
                    self.sync_models()
                except Exception:  # the watcher outlives any one failure; the next change retries
                    log.exception("in-process host: adding new models failed")

    def _fits(self, index: int, ref: str) -> bool:
        listed = self.runtimes[index]
        try:
            candidate = self.engine.runtime(ref)
            shape = (_features(candidate), _output_width(candidate))
        except (ModelNotFoundError, ValueError) as exc:
            log.warning("canary %s cannot take the share of the live version (%s); it stays live", ref, exc)
            return False
        if shape != (_features(listed), _output_width(listed)):
            log.warning(
                "canary %s takes %s features and gives %s outputs per row, the version served at start %s and %s; "
                "its share stays on the live version",
                ref, _features(candidate), _output_width(candidate), _features(listed), _output_width(listed),
            )  # fmt: skip
            return False
        return True

    def new_arena(self, slots: int, max_rows: int, features: int) -> Any:
        """A Java ``FeatureArena`` registered with the gateway (its slots are scored in place)."""
        return self.java_gateway.newArena(slots, max_rows, features)

    def run_main(self, class_name: str, args: Sequence[str] = ()) -> None:
        """Run ``class_name.main(args)`` on this thread (the JVM's usual entry point)."""
        import jpype

        jpype.JClass(class_name).main(jpype.JArray(jpype.JString)([str(a) for a in args]))

    def stats(self) -> dict[str, int]:
        """Batches, requests, rows scored and failed requests, summed over workers (approximate while running), and
        ``early_answers``: requests whose spinning Java caller took its scores on the lane's mark, before
        ``complete()`` (long in-place batches, x86-64 only)."""
        return {
            "batches": sum(w.batches for w in self._workers),
            "requests": sum(w.requests for w in self._workers),
            "rows": sum(w.rows for w in self._workers),
            "failures": sum(w.failures for w in self._workers),
            "early_answers": int(self.java_gateway.earlyAnswers()),
        }

    def close(self, timeout_s: float = 10.0) -> None:
        import jpype

        atexit.unregister(self.close)
        self._closing.set()
        self.engine.manager.wake()
        if self._watcher.is_alive():
            self._watcher.join(timeout_s)
        if self._started:
            jpype.JClass("dev.scoregate.bridge.ModelGateways").unregister(self.java_gateway)
        self.java_gateway.close()
        for w in self._workers:
            if w.is_alive():
                w.join(timeout_s)
        self._started = False

    def __enter__(self) -> InProcessHost:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def _spec(pkg: Any, rt: ModelRuntime) -> Any:
    """The Java ``ModelSpec`` of ``rt``. Java requires a version (results name it); an unversioned one serves as "0"."""
    return pkg.ModelSpec(rt.name, rt.version or "0", _features(rt), _output_width(rt))


def _features(rt: ModelRuntime) -> int:
    dims = rt.inputs[0].dims
    if len(rt.inputs) != 1 or len(dims) != 2 or dims[1] is None:
        raise ValueError(f"model {rt.name!r}: the JVM bridge serves models with one [batch, features] input")
    return int(dims[1])


def _output_width(rt: ModelRuntime) -> int:
    spec = rt.outputs[0]
    if len(rt.outputs) != 1 or not spec.fixed_tail:
        raise ValueError(f"model {rt.name!r}: the JVM bridge serves models with one fixed-shape output")
    return int(np.prod(spec.shape_for(1)))
