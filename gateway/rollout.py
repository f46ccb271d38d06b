"""Rollouts on one gateway: canary and shadow versions beside live, compared on live traffic, promoted or rolled back.

:class:`RolloutController` turns a :class:`~models.rollout.RolloutState` into serving reality on an
:class:`~gateway.engine.Engine`:

1. :meth:`RolloutController.apply` aspires the state's versions (live and candidate) to the version manager and
   waits until each is loaded and warmed. If one fails, the previous state is aspired again and nothing that
   serves changes; the error is returned (and a control plane reports it).
2. Once loaded, the router (:class:`~models.rollout.RolloutRouter`) sends ``canary_pct`` % of keyed requests to the
   candidate, sticky per key; a fresh :class:`~gateway.monitoring.regression.RegressionGate` starts.
3. The controller observes every un-pinned call (:attr:`Engine.rollouts`). A call the candidate answered (canary),
   or a sampled call live answered when ``shadow`` is on, is copied onto a bounded queue; one background worker
   scores the same rows with the other version, off the response path, and feeds both score vectors to the gate
   and to a :class:`~gateway.rollout_compare.ScoreComparison` (distribution distance, rank correlation,
   calibration once labels come). When the queue is full the comparison is dropped (and counted), never the request.
4. When the gate fails, or the candidate raised on ``max_candidate_errors`` calls, the controller's
   :meth:`RolloutController.rollback` runs (this class is the gate's
   :class:`~gateway.monitoring.regression.RollbackHandler`): the router stops sending traffic to the candidate at
   once, the candidate is withdrawn and drains, and every ``on_rollback`` listener hears of it (the control plane
   writes the rollback to the cluster's desired state so every replica follows).

Thread-safety: :meth:`observe` and :meth:`failed` run on serving threads (a dictionary read, a copy and a queue
put); every other method may be called from any thread. Applies run one at a time; a rollback never waits for an
apply's loads.
"""

from __future__ import annotations

import contextlib
import enum
import os
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.engine import Engine
from gateway.gil import copy_in_slices
from gateway.monitoring.divergence import spearman, spearman_rows
from gateway.monitoring.regression import GateDecision, GateOptions, RegressionGate
from gateway.rollout_compare import ScoreComparison
from models.policy import State
from models.rollout import RolloutRouter, RolloutState

__all__ = ["Applied", "RolloutController", "RolloutOptions", "RolloutStatus"]


@dataclass(frozen=True)
class RolloutOptions:
    """Documented defaults; nothing reads the environment."""

    #: Comparisons waiting for the worker; beyond this they are dropped (counted), never the request.
    queue_size: int = 1024
    #: Share of canary calls compared with live (shadow calls are sampled by the state's ``shadow_sample``).
    compare_sample: float = 1.0
    #: How long :meth:`RolloutController.apply` waits for a version to load.
    load_timeout_s: float = 120.0
    #: Histogram bins over [0, 1] for the distribution distance.
    bins: int = 50
    #: Niceness added to the comparison worker (Linux per-thread priority); 0 leaves it alone.
    worker_nice: int = 10
    #: The worker wakes this often and runs everything queued since together: one ONNX Runtime run per version and
    #: batch, the gate and the comparison updated once, and no serving thread ever wakes it (waking and taking the
    #: GIL once per comparison showed in the serving threads' p99). A gate decides after tens of requests, so it
    #: decides this much later at most. ``<= 0``: the worker blocks on the queue and compares call by call.
    compare_delay_s: float = 0.0
    #: Rows one batched comparison run scores at most.
    compare_batch_rows: int = 4096
    #: Calls a canary candidate may fail (raise) before it is rolled back.
    max_candidate_errors: int = 3
    #: The regression gate's options (``None``: its defaults).
    gate: GateOptions | None = None


#: A queued comparison: the rollout, which version answered, the call's rows and the scores it served.
_Item = tuple["_Active", "_Kind", npt.NDArray[Any], npt.NDArray[Any]]


def _yield() -> None:
    """Let a serving thread that waits for the GIL have it between two steps of a comparison: it would otherwise
    wait for the whole comparison (~150 µs of interpreted work), and comparisons run on about 1 % of the time."""
    time.sleep(0)


def _same_width(chunk: list[_Item], item: _Item) -> bool:
    return chunk[0][2].shape[1:] == item[2].shape[1:]


class _Kind(enum.Enum):
    CANARY = "canary"  # the candidate answered; the worker scores live
    SHADOW = "shadow"  # live answered; the worker scores the candidate


class _Active:
    """One running rollout: its state, gate, comparison and counters."""

    def __init__(self, state: RolloutState, gate: RegressionGate, bins: int) -> None:
        self.state = state
        self.gate = gate
        self.comparison = ScoreComparison(bins)
        self.lock = threading.Lock()
        self.served_live = 0
        self.served_candidate = 0
        self.mirrored = 0
        self.dropped = 0
        self.candidate_errors = 0


@dataclass(frozen=True)
class Applied:
    """What :meth:`RolloutController.apply` did: ``ok`` and the state now serving, or the error that kept it."""

    ok: bool
    state: RolloutState | None
    error: str = ""


@dataclass(frozen=True)
class RolloutStatus:
    state: RolloutState | None
    served: dict[str, int] = field(default_factory=dict)
    comparison: dict[str, Any] = field(default_factory=dict)
    gate: dict[str, Any] = field(default_factory=dict)
    last_event: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": None if self.state is None else _state_dict(self.state),
            "served": self.served,
            "comparison": self.comparison,
            "gate": self.gate,
            "last_event": self.last_event,
        }


def _state_dict(state: RolloutState) -> dict[str, Any]:
    return {k: getattr(state, k) for k in ("name", "live", "candidate", "canary_pct", "shadow", "revision")}


class RolloutController:
    """Canary and shadow rollouts on one engine (see the module docstring)."""

    def __init__(self, engine: Engine, options: RolloutOptions | None = None, *, start_worker: bool = True) -> None:
        """``start_worker=False`` leaves comparisons on the queue until :meth:`step` runs them (for tests)."""
        self.engine = engine
        self.options = options or RolloutOptions()
        self.router = RolloutRouter()
        self._states: dict[str, RolloutState] = {}
        self._active: dict[str, _Active] = {}
        self._events: dict[str, str] = {}
        self._lock = threading.RLock()  # held briefly: the states, the router, the active rollouts
        self._apply_lock = threading.Lock()  # one apply at a time (held while versions load)
        self._queue: queue.Queue[_Item | None] = queue.Queue(self.options.queue_size)
        #: Called as ``listener(rolled_back_state, reason)`` after an automatic rollback.
        self.on_rollback: list[Callable[[RolloutState, str], None]] = []
        engine.manager.registry.router = self.router
        engine.rollouts = self
        self._worker: threading.Thread | None = None
        if start_worker:
            self._worker = threading.Thread(target=self._work, name="rollout-compare", daemon=True)
            self._worker.start()

    # -- desired state -----------------------------------------------------------------------------------------
    def state(self, name: str) -> RolloutState | None:
        """The state applied for ``name`` (``None`` if no rollout was ever applied to it)."""
        with self._lock:
            return self._states.get(name)

    def current(self, name: str) -> RolloutState:
        """The applied state, or one made from what serves now (live version, revision 0)."""
        state = self.state(name)
        if state is not None:
            return state
        live = self.engine.manager.live().get(name)
        if live is None:
            raise LookupError(f"model {name!r} does not serve here")
        return RolloutState(name, live)

    def apply(self, state: RolloutState, timeout: float | None = None) -> Applied:
        """Converge on ``state`` (rules 1 and 2 of the module docstring); a failure changes nothing that serves.

        Applies run one at a time; the wait for loads holds no lock that :meth:`rollback` needs.
        """
        timeout = self.options.load_timeout_s if timeout is None else timeout
        manager = self.engine.manager
        with self._apply_lock:
            with self._lock:
                previous = self._states.get(state.name)
            if previous is None:
                live = manager.live().get(state.name)
                previous = RolloutState(state.name, live) if live is not None else None
            manager.set_aspired(state.name, state.versions, live=state.live)
            errors = []
            for version in sorted(state.versions):
                loaded = manager.wait_loaded(state.name, version, timeout)
                if loaded is not State.READY:
                    why = manager.error(state.name, version) or f"not loaded within {timeout}s"
                    errors.append(f"{state.name}@{version}: {why}")
            if not errors and not manager.wait_live(state.name, state.live, timeout):
                errors.append(f"{state.name}@{state.live} did not become live within {timeout}s")
            with self._lock:
                if errors:
                    serving = self._states.get(state.name) or previous  # a rollback may have run meanwhile
                    if serving is not None:
                        manager.set_aspired(serving.name, serving.versions, live=serving.live)
                    else:
                        manager.set_aspired(state.name, ())
                    error = "; ".join(errors)
                    self._events[state.name] = f"revision {state.revision} refused: {error}"
                    return Applied(False, serving, error)
                self._install(state)
                self._events[state.name] = f"revision {state.revision} applied"
                return Applied(True, state)

    def _install(self, state: RolloutState) -> None:
        self._states[state.name] = state
        self.router.set(state)
        active = dict(self._active)
        if state.candidate:
            gate = RegressionGate(state.name, state.live, state.candidate, self.options.gate, on_rollback=self)
            active[state.name] = _Active(state, gate, self.options.bins)
        else:
            active.pop(state.name, None)
        self._active = active  # replaced whole: observe() reads it without a lock

    def deploy(
        self,
        name: str,
        version: str,
        canary_pct: float = 0.0,
        shadow: bool = False,
        shadow_sample: float = 0.1,
        timeout: float | None = None,
    ) -> Applied:
        """Start a rollout of ``name@version`` beside the live version."""
        current = self.current(name)
        state = RolloutState(name, current.live, version, canary_pct, shadow, shadow_sample, current.revision + 1)
        return self.apply(state, timeout)

    def promote(self, name: str, timeout: float | None = None) -> Applied:
        """The candidate becomes live for every request; the old live version drains and unloads."""
        return self.apply(self.current(name).promoted(), timeout)

    def rollback(self, model: str, candidate_version: str, reason: str = "") -> None:
        """Take ``candidate_version`` of ``model`` out of traffic now (the gate's :class:`RollbackHandler`).

        Does not wait for the unload: it may run on the comparison worker. No-op when that version is not the
        running candidate (a late or repeated call).
        """
        with self._lock:
            state = self._states.get(model)
            if state is None or state.candidate != candidate_version:
                return
            back = state.rolled_back()
            self._install(back)
            self.engine.manager.set_aspired(model, back.versions, live=back.live)
            self._events[model] = f"revision {back.revision}: rolled back {model}@{candidate_version}: {reason}"
        for listener in list(self.on_rollback):
            with contextlib.suppress(Exception):  # a listener's failure must not stop the rollback
                listener(back, reason)

    def end(self, name: str, timeout: float | None = None) -> Applied:
        """Roll back by hand: the candidate leaves, live serves everything."""
        return self.apply(self.current(name).rolled_back(), timeout)

    # -- the request path --------------------------------------------------------------------------------------
    def observe(self, name: str, version: str, x: npt.NDArray[Any], scores: npt.NDArray[Any]) -> None:
        """Count the call and queue a comparison when one is due (module rule 3). Never blocks."""
        active = self._active.get(name)
        if active is None:
            return
        state = active.state
        if version == state.candidate:
            with active.lock:
                active.served_candidate += 1
            kind = _Kind.CANARY
            sample = self.options.compare_sample
        elif version == state.live:
            with active.lock:
                active.served_live += 1
            if not state.shadow:
                return
            kind = _Kind.SHADOW
            sample = state.shadow_sample
        else:
            return
        if sample < 1.0 and random.random() >= sample:
            return
        try:
            self._queue.put_nowait((active, kind, copy_in_slices(x), copy_in_slices(scores)))
        except queue.Full:
            with active.lock:
                active.dropped += 1

    def failed(self, name: str, version: str, error: Exception) -> None:
        """A call the candidate answered raised: after ``max_candidate_errors`` of them, roll it back (on a thread of
        its own; the router keeps sending the candidate its share until that thread has run, microseconds later)."""
        active = self._active.get(name)
        if active is None or version != active.state.candidate:
            return
        with active.lock:
            active.candidate_errors += 1
            errors = active.candidate_errors
        if errors == self.options.max_candidate_errors:
            # This runs on a serving thread: the rollback's listeners may do network calls, so hand it off.
            reason = f"candidate failed {errors} call(s); last: {type(error).__name__}: {error}"
            threading.Thread(target=self.rollback, args=(name, version, reason), name="rollout-rollback").start()

    def observe_labels(self, name: str, candidate_scores: npt.NDArray[Any], labels: npt.NDArray[Any]) -> None:
        """Matured labels of rows the candidate scored: feeds the gate's calibration test and the comparison."""
        active = self._active.get(name)
        if active is not None:
            active.comparison.add_labels(candidate_scores, labels)
            active.gate.observe_labels(candidate_scores, labels)

    # -- the comparison worker ---------------------------------------------------------------------------------
    def step(self, limit: int | None = None) -> int:
        """Run queued comparisons on this thread (when no worker runs); returns how many ran."""
        items: list[_Item] = []
        while limit is None or len(items) < limit:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                items.append(item)
            else:
                self._queue.task_done()
        try:
            self._compare_batch(items)
        finally:
            for _ in items:
                self._queue.task_done()
        return len(items)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every queued comparison has run; ``False`` on timeout."""
        q = self._queue
        with q.all_tasks_done:
            return q.all_tasks_done.wait_for(lambda: q.unfinished_tasks == 0, timeout)

    def _work(self) -> None:
        nice = self.options.worker_nice
        if nice and hasattr(os, "setpriority"):
            with contextlib.suppress(OSError):
                base = os.getpriority(os.PRIO_PROCESS, 0)
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(19, base + nice))
        while True:
            delay = self.options.compare_delay_s
            if delay > 0:
                time.sleep(delay)  # polls: a serving thread's put never has a sleeping worker to wake
                batch: list[_Item | None] = []
            else:
                batch = [self._queue.get()]
            while not batch or batch[-1] is not None:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._compare_batch([item for item in batch if item is not None])
            except Exception:  # a comparison must never stop the worker
                pass
            finally:
                for _ in batch:
                    self._queue.task_done()
            if batch and batch[-1] is None:
                return

    def _compare_batch(self, items: list[_Item]) -> None:
        """Compare queued calls, grouped by rollout and kind (in arrival order within each group): the other
        version scores each group's rows in as few runs as ``compare_batch_rows`` allows."""
        groups: dict[tuple[int, _Kind], list[_Item]] = {}
        for item in items:
            groups.setdefault((id(item[0]), item[1]), []).append(item)
        for group in groups.values():
            chunk: list[_Item] = []
            rows = 0
            for item in group:
                full = rows + item[2].shape[0] > self.options.compare_batch_rows
                if chunk and (full or not _same_width(chunk, item)):
                    self._compare(chunk)
                    chunk, rows = [], 0
                chunk.append(item)
                rows += item[2].shape[0]
            if chunk:
                self._compare(chunk)

    def _compare(self, items: list[_Item]) -> None:
        """One rollout's calls of one kind: the other version scores all their rows in one run; both score vectors
        of each call go to the gate and the comparison."""
        active, kind = items[0][0], items[0][1]
        state = active.state
        if self._active.get(state.name) is not active:
            return  # promoted or rolled back since
        other = state.candidate if kind is _Kind.SHADOW else state.live
        xs = [item[2] for item in items]
        try:
            other_scores = self.engine.score(f"{state.name}@{other}", xs[0] if len(xs) == 1 else np.concatenate(xs))
            _yield()
        except Exception as exc:
            if kind is _Kind.SHADOW:  # the candidate fails on live traffic: that is a failed gate too
                for _ in items:
                    self.failed(state.name, state.candidate, exc)
            return
        bounds = np.cumsum([0] + [x.shape[0] for x in xs])
        others = [other_scores[bounds[i] : bounds[i + 1]] for i in range(len(items))]
        served = [item[3] for item in items]
        live, candidate = (served, others) if kind is _Kind.SHADOW else (others, served)
        if kind is _Kind.SHADOW:
            with active.lock:
                active.mirrored += len(items)
        flat_live = [np.ravel(v) for v in live]
        flat_cand = [np.ravel(v) for v in candidate]
        if len({v.shape[0] for v in flat_live}) == 1:  # once, for the description and the gate
            rho = spearman_rows(np.stack(flat_live), np.stack(flat_cand))
        else:
            rho = np.array([spearman(a, b) for a, b in zip(flat_live, flat_cand, strict=True)])
        _yield()
        active.comparison.add_many(flat_live, flat_cand, rho)
        _yield()
        means_live = np.array([v.mean(dtype=np.float64) for v in flat_live])
        means_cand = np.array([v.mean(dtype=np.float64) for v in flat_cand])
        active.gate.observe_means(means_live, means_cand, rho)

    # -- reporting ---------------------------------------------------------------------------------------------
    def status(self, name: str) -> RolloutStatus:
        with self._lock:
            state = self._states.get(name)
            event = self._events.get(name, "")
            active = self._active.get(name)
        if active is None:
            return RolloutStatus(state, last_event=event)
        with active.lock:
            served = {
                "live": active.served_live,
                "candidate": active.served_candidate,
                "mirrored": active.mirrored,
                "dropped": active.dropped,
                "candidate_errors": active.candidate_errors,
            }
        gate = active.gate.status()
        gate_dict = {
            "decision": str(gate.decision),
            "requests": gate.requests,
            "mean_log_ratio": gate.mean_log_ratio,
            "rank_correlation": gate.rank_correlation,
            "reason": gate.reason,
        }
        return RolloutStatus(state, served, active.comparison.summary(), gate_dict, event)

    def gate_decision(self, name: str) -> GateDecision | None:
        active = self._active.get(name)
        return None if active is None else active.gate.decision

    def close(self) -> None:
        """Stop the worker and detach from the engine (the engine keeps serving live versions)."""
        if self.engine.rollouts is self:
            self.engine.rollouts = None
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join()
            self._worker = None
        with self._lock:
            for name in list(self._states):
                self.router.clear(name)
            self._active = {}
