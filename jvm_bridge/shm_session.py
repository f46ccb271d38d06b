"""One client session of the out-of-process transport: a shared-memory ring and the workers that serve it.

A session is opened by a client JVM over Py4J (``jvm_bridge.py4j_server``) and lives until the
client closes it, stops renewing its lease, or the gateway shuts down. Each of its ``workers``
threads owns the slots ``i % workers == w`` of the ring (:mod:`jvm_bridge.shm_ring`) and loops:

1. scan its slots' request seqs (one numpy comparison) for requests it has not served;
2. for each: skip it if its deadline has passed (``DeadlineExceededError``, never scored), else
   ``engine.score_served(name, x, out)`` on numpy views of the slot (the engine's scoring call,
   which also says which version scored); map any error through the tree to a code and message
   (:func:`jvm_bridge.inprocess.error_code`); write the response (with the version, so that
   results name the one that scored after a hot swap), response seq last;
3. when nothing is pending: spin ``spin_us`` re-scanning (a closed-loop client publishes its next
   request within microseconds of reading an answer), then sleep on its doorbell FIFO (sleep
   word, fence, last scan, ``select``; see :mod:`jvm_bridge.shm_ring`) until a client rings it or
   ``idle_wake`` passes.

Views are cached per (slot, rows, features) so a slot reused with the same shape hands
``ModelRuntime`` the same array objects and its IOBinding is not rebound.
"""

from __future__ import annotations

import itertools
import logging
import os
import select
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from gateway.engine import Engine
from gateway.errors import DeadlineExceededError, InvalidInputError, ScoregateError, UnavailableError
from gateway.runtime import ModelRuntime
from jvm_bridge.inprocess import error_code
from jvm_bridge.shm_ring import (
    CLOSED,
    FAILED,
    S_BUCKET,
    S_DEADLINE,
    S_MODEL,
    S_PINNED,
    S_WIDTH,
    SCORED,
    SERVING,
    RingLayout,
    SharedRing,
    full_fence,
)
from models.rollout import BUCKETS

__all__ = ["ServedModel", "SessionStats", "ShmSession", "served_models"]

log = logging.getLogger(__name__)

_VIEW_CACHE_LIMIT = 1024


@dataclass(frozen=True)
class ServedModel:
    """One row of a session's model table: what the client checks requests against and indexes by.

    ``features`` and ``width`` are 0 for a model the ring cannot serve (not one ``[batch, F]``
    float32 input and one fixed-shape output); the client lists it but refuses to score it.
    """

    index: int
    name: str
    version: str
    features: int
    width: int
    signature: str

    def line(self) -> str:
        fields = [self.index, self.name, self.version, self.features, self.width, self.signature]
        return "\t".join(["model", *map(str, fields)])


def served_models(engine: Engine) -> list[ServedModel]:
    """The model table, in index order (the order of ``engine.names()``)."""
    table = []
    for index, name in enumerate(engine.names()):
        rt = engine.runtime(name)
        features, width = _shape(rt)
        sig = "; ".join(s.describe() for s in rt.inputs) + " -> " + "; ".join(s.describe() for s in rt.outputs)
        # Java requires a version (results name it); an unversioned runtime serves as "0", as in process.
        table.append(ServedModel(index, name, rt.version or "0", features, width, sig))
    return table


def _shape(rt: ModelRuntime) -> tuple[int, int]:
    if len(rt.inputs) != 1 or len(rt.outputs) != 1:
        return 0, 0
    dims, out = rt.inputs[0].dims, rt.outputs[0]
    if len(dims) != 2 or dims[1] is None or rt.inputs[0].dtype != np.float32 or not out.fixed_tail:
        return 0, 0
    return int(dims[1]), int(np.prod(out.shape_for(1)))


@dataclass
class SessionStats:
    """Requests answered, by outcome (``failed`` includes ``expired``). One per worker, summed on demand."""

    scored: int = 0
    failed: int = 0
    expired: int = 0
    rows: int = 0


class ShmSession:
    """A ring plus its workers. Thread-safety: :meth:`close` and :meth:`renew` from any thread."""

    def __init__(
        self,
        session_id: int,
        client: str,
        engine: Engine,
        ring: SharedRing,
        *,
        spin_us: float,
        idle_wake_s: float,
        lease_s: float,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.id = session_id
        self.client = client
        self.engine = engine
        self.ring = ring
        self.models = served_models(engine)
        self.clock = clock
        self.spin_ns = int(spin_us * 1000)
        self.idle_wake_s = idle_wake_s
        self.lease_ns = int(lease_s * 1e9)
        self.lease_until = clock() + self.lease_ns
        self.watchers = 0
        self.closed = threading.Event()
        self._lock = threading.Lock()
        self._workers = [_RingWorker(self, w) for w in range(ring.layout.workers)]

    @classmethod
    def open(
        cls,
        session_id: int,
        client: str,
        engine: Engine,
        directory: str | os.PathLike[str],
        file_name: str,
        *,
        slots: int,
        max_rows: int,
        workers: int,
        spin_us: float,
        idle_wake_s: float,
        lease_s: float,
    ) -> ShmSession:
        """Creates the ring for ``engine``'s models (features and outputs sized for the largest)."""
        table = served_models(engine)
        layout = RingLayout(
            slots=slots,
            workers=min(workers, slots),
            max_rows=max_rows,
            max_features=max([m.features for m in table] + [1]),
            max_width=max([m.width for m in table] + [1]),
        )
        ring = SharedRing(directory, file_name, layout)
        return cls(session_id, client, engine, ring, spin_us=spin_us, idle_wake_s=idle_wake_s, lease_s=lease_s)

    def refresh_models(self) -> list[ServedModel]:
        """The session's model table with every name that serves now and was not listed appended: a model deployed
        after the client connected. Indices already given never change (a request in flight names its model by
        index); a name that no longer serves stays listed, and its calls fail as unknown. Returns the table."""
        with self._lock:
            known = {m.name for m in self.models}
            for m in served_models(self.engine):
                if m.name not in known:
                    self.models.append(replace(m, index=len(self.models)))
            return list(self.models)

    def start(self) -> ShmSession:
        self.ring.set_heartbeat(self.clock())
        self.ring.set_state(SERVING)
        for w in self._workers:
            w.start()
        return self

    def stats(self) -> SessionStats:
        """Requests answered so far, summed over the workers (approximate while they run)."""
        total = SessionStats()
        for w in self._workers:
            total.scored += w.stats.scored
            total.failed += w.stats.failed
            total.expired += w.stats.expired
            total.rows += w.stats.rows
        return total

    # ------------------------------------------------------------------ lease
    def renew(self, watching: int) -> None:
        """A client watch call began (+1) or ended (-1); either way the lease restarts."""
        with self._lock:
            self.watchers += watching
            self.lease_until = self.clock() + self.lease_ns

    def expired(self, now_ns: int) -> bool:
        """True when no watch call is in progress and the lease ran out: the client is gone."""
        with self._lock:
            return self.watchers <= 0 and now_ns > self.lease_until

    # ------------------------------------------------------------------ lifecycle
    def close(self, timeout_s: float = 5.0) -> None:
        """Marks the ring closed (clients fail over), stops the workers, removes the files. Idempotent."""
        if self.closed.is_set():
            return
        self.closed.set()
        self.ring.set_state(CLOSED)
        for w in self._workers:
            os.write(self.ring.bell_fd(w.index), b"x")  # wake it to see `closed`
        for w in self._workers:
            if w.is_alive() and w is not threading.current_thread():
                w.join(timeout_s)
        for w in self._workers:
            w.views.clear()
        self.ring.close()


class _RingWorker(threading.Thread):
    """Serves the slots ``i % workers == index`` of one ring (see module doc)."""

    def __init__(self, session: ShmSession, index: int) -> None:
        super().__init__(name=f"scoregate-shm-{session.id}-{index}", daemon=True)
        self.session = session
        self.index = index
        self.stats = SessionStats()
        self.views: dict[tuple[int, int, int, int, int], tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]] = {}

    def run(self) -> None:
        try:
            self._loop()
        except Exception:  # a bug here must not pass silently: clients fail over when the ring closes
            log.exception("session %d worker %d failed; closing the session", self.session.id, self.index)
            self.session.ring.set_state(CLOSED)

    def _loop(self) -> None:
        session, ring = self.session, self.session.ring
        slots: Sequence[int] = ring.slots_of(self.index)
        requests = ring.request_seqs(self.index)
        served = np.zeros(len(slots), dtype=np.int64)  # the last seq answered, per slot
        sleep_word = ring.sleep_word(self.index)
        bell = ring.bell_fd(self.index)
        clock, closed = session.clock, session.closed
        spin_ns, idle_wake = session.spin_ns, session.idle_wake_s
        epoch = itertools.count(1)
        cursor = 0
        idle_since = clock()
        while not closed.is_set():
            pending = np.flatnonzero(requests != served)
            if pending.size:
                # Start after the last slot served: no slot can starve the others.
                order = pending.tolist()
                k = next((i for i, j in enumerate(order) if j >= cursor), 0)
                for j in order[k:] + order[:k]:
                    seq = int(requests[j])
                    served[j] = seq
                    self._serve(slots[j], seq)
                    cursor = j + 1
                idle_since = clock()
                continue
            if clock() - idle_since < spin_ns:
                # sched_yield, not time.sleep(0), which sleeps ~70 µs (timer slack): on a busy host the client's
                # thread may share our core and must run to publish. Bounded, so another worker returning from
                # ONNX Runtime waits for the GIL at most this window.
                os.sched_yield()
                continue
            e = next(epoch)
            sleep_word[0] = 2 * e + 1
            full_fence()  # store-load: the sleep word must be visible before the last scan (module doc)
            if not np.array_equal(requests, served):
                sleep_word[0] = 2 * e + 2
                continue
            readable, _, _ = select.select([bell], [], [], idle_wake)
            if readable:
                try:
                    while os.read(bell, 4096):
                        pass
                except BlockingIOError:
                    pass
            sleep_word[0] = 2 * e + 2
            idle_since = clock()

    def _serve(self, slot: int, seq: int) -> None:
        session, ring = self.session, self.session.ring
        i32, i64 = ring.slot_words(slot)
        model, rows, features, width = i32[S_MODEL // 4 : S_WIDTH // 4 + 1].tolist()
        deadline = int(i64[S_DEADLINE // 8])
        bucket = int(i32[S_BUCKET // 4])  # the routing key's, computed by the client; -1: no key
        key = bucket if 0 <= bucket < BUCKETS else None
        pinned = int(i64[S_PINNED // 8])  # the version the request pins; -1: none
        name = session.models[model].name if 0 <= model < len(session.models) else f"#{model}"
        try:
            late = session.clock() - deadline
            if late > 0:
                self.stats.expired += 1
                raise DeadlineExceededError(
                    f"model {name!r}: deadline exceeded: passed {late / 1e6:.3f} ms before the gateway took the "
                    "request; never scored"
                )
            x, out = self._views(slot, model, name, rows, features, width)
            ref = name if pinned < 0 else f"{name}@{pinned}"
            _, version, _ = session.engine.score_served(ref, x, out, key, observe=True)
        except Exception as exc:  # every error goes back to the caller, typed
            self.stats.failed += 1
            message = str(exc) if isinstance(exc, ScoregateError) else f"{type(exc).__name__}: {exc}"
            ring.respond(slot, seq, FAILED, error_code(exc), message, session.clock())
            return
        self.stats.scored += 1
        self.stats.rows += rows
        served = int(version) if version.isdigit() else -1  # the package format's versions are numbers
        ring.respond(slot, seq, SCORED, answered_ns=session.clock(), served=served)

    def _views(
        self, slot: int, model: int, name: str, rows: int, features: int, width: int
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        key = (slot, model, rows, features, width)
        pair = self.views.get(key)
        if pair is not None:
            return pair
        session, layout = self.session, self.session.ring.layout
        if not 0 <= model < len(session.models):
            raise UnavailableError(f"model index {model} is not in this session's table of {len(session.models)}")
        spec = session.models[model]
        if rows <= 0 or features <= 0 or rows * features > layout.max_rows * layout.max_features:
            raise InvalidInputError(
                name, "features", f"{rows} rows x {features} features do not fit the shared-memory slot "
                f"({layout.max_rows} rows x {layout.max_features} features)"
            )  # fmt: skip
        if spec.width == 0 or width != spec.width or rows * width > layout.max_rows * layout.max_width:
            raise UnavailableError(
                f"model {name!r}: the client expects {width} outputs per row, the gateway serves {spec.width} "
                f"({spec.signature})"
            )
        out_shape = session.engine.runtime(name).outputs[0].shape_for(rows)
        x = session.ring.features(slot, rows, features)
        out = session.ring.scores(slot, out_shape)
        if len(self.views) >= _VIEW_CACHE_LIMIT:
            self.views.clear()
        self.views[key] = (x, out)
        return x, out
