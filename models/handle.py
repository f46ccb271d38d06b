"""Harnesses and handles: a version is closed only after the last call that uses it lets go.

A :class:`Harness` owns one loaded version (TF Serving's ``LoaderHarness``): its :class:`~models.policy.State`, the
loaded object, and a count of the handles readers hold. A reader calls :meth:`Harness.try_acquire`, uses the object,
then :meth:`Harness.release`; :class:`Handle` wraps the pair as a context manager.

Contract:

1. ``try_acquire`` succeeds only in ``READY``. A reader that fails re-reads the registry snapshot, which by then no
   longer lists the harness (the manager publishes the snapshot *before* it starts draining).
2. :meth:`Harness.drain` moves ``READY`` to ``DRAINING``; :meth:`Harness.wait_drained` returns once the count is
   zero. Only then may the manager close the object. ONNX Runtime crashes when a session is released during
   ``Run`` (onnxruntime#21812): this is the rule that prevents it.
3. Acquire and release take one uncontended lock each (a few hundred nanoseconds); there is no lock on any other
   path a reader takes.

Thread-safety: every method may be called from any thread.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Generic, Protocol, TypeVar

from models.ids import ModelId
from models.policy import State

__all__ = ["Handle", "Harness", "Servable"]


class Servable(Protocol):
    """What the manager needs of a loaded version: a way to release it."""

    def close(self) -> None: ...


T = TypeVar("T", bound=Servable)


class Harness(Generic[T]):
    """One version: its state, its loaded object (once loaded) and its reader count. See the module contract."""

    __slots__ = ("_drained", "_lock", "_refs", "_state", "error", "id", "size_bytes", "value")

    def __init__(self, mid: ModelId, value: T | None = None, state: State = State.NEW) -> None:
        self.id = mid
        self.value: T | None = value
        self.error = ""
        self.size_bytes = 0
        self._state = state
        self._refs = 0
        self._lock = threading.Lock()
        self._drained = threading.Event()

    @property
    def state(self) -> State:
        return self._state

    @property
    def in_flight(self) -> int:
        return self._refs

    def set_state(self, state: State, error: str = "") -> None:
        with self._lock:
            self._state = state
            if error:
                self.error = error
            if state is State.DRAINING and self._refs == 0:
                self._drained.set()

    def try_acquire(self) -> bool:
        """Count one reader in if the version serves (rule 1)."""
        with self._lock:
            if self._state is not State.READY:
                return False
            self._refs += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._refs -= 1
            if self._refs == 0 and self._state is State.DRAINING:
                self._drained.set()

    def drain(self) -> None:
        """Stop handing out handles (rule 2)."""
        self.set_state(State.DRAINING)

    def wait_drained(self, timeout: float | None = None) -> bool:
        """Wait until no reader holds the version; ``False`` if ``timeout`` passed first."""
        return self._drained.wait(timeout)

    def __repr__(self) -> str:
        return f"Harness({self.id}, {self._state.value}, in_flight={self._refs})"


class Handle(Generic[T]):
    """A reader's hold on one version; ``with`` releases it. Use it from one thread; release once."""

    __slots__ = ("_harness", "_released", "value")

    def __init__(self, harness: Harness[T]) -> None:
        assert harness.value is not None
        self._harness = harness
        self.value: T = harness.value
        self._released = False

    @property
    def id(self) -> ModelId:
        return self._harness.id

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._harness.release()

    def __enter__(self) -> T:
        return self.value

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
