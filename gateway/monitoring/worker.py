"""``Worker``: calls a step function every ``interval_s`` on a daemon thread, off the request path.

``interval_s <= 0`` starts no thread: the owner calls the step by hand (tests, replays on a simulated clock).
The interval is waited on an event, so :meth:`close` returns at once instead of after a sleep. An exception in a
step is counted and kept (``last_error``), and the thread carries on: monitoring must not die of one bad batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["Worker"]


class Worker:
    def __init__(self, step: Callable[[], object], interval_s: float, name: str = "scoregate-monitor") -> None:
        self._step = step
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.errors = 0
        self.last_error: BaseException | None = None
        if interval_s > 0:
            self._thread = threading.Thread(target=self._run, name=name, daemon=True)
            self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self._step()
            except Exception as exc:  # counted and kept; the next interval tries again
                self.errors += 1
                self.last_error = exc

    def close(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
