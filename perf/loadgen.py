"""Open-loop, constant-rate load: latency measured from the *intended* send time.

A closed-loop driver (call, wait, call again) slows down when the system does and so never sees
the queue that real traffic would build: coordinated omission. Here request *i* is due at
``start + i / rate`` whatever happened before; its latency is ``completion - due``. A stall of
10 ms therefore shows up as the 10 ms it cost every request due during it, as an ad server's
users would see it.

``workers`` threads take the next due request from a shared counter, so a system that can serve
calls in parallel (ONNX Runtime releases the GIL) is offered them in parallel. The threads live as long
as the :class:`OpenLoop` and serve every :meth:`OpenLoop.run`, as a server's request threads outlive its
requests: whatever a system keeps per thread (ONNX Runtime bindings, output buffers) is made once, not
once per run. (With new threads per run, a suite that measured in short runs paid those first calls
again each time: 12% of the calls of a 0.5 s run of 24 models, against 1.5% of a 4 s run.)
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from perf.harness import Measurement, Op, Runner

__all__ = ["OpenLoop", "open_loop"]

_SPIN_NS = 200_000  # closer than this to the due time, spin instead of sleeping
_REFUSED = -1


@dataclass(frozen=True)
class OpenLoop:
    """Drive ``op`` at ``rate_per_s`` for ``seconds`` with ``workers`` threads.

    An op that returns ``False`` was refused (admission control shed it): its latency is left out of the
    measurement and counted in :attr:`Measurement.refused`, so percentiles describe the requests that were served.
    """

    rate_per_s: float
    workers: int = 1
    _threads: _Workers = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.rate_per_s <= 0:
            raise ValueError("rate_per_s must be > 0")
        if self.workers < 1:
            raise ValueError("workers must be >= 1")
        object.__setattr__(self, "_threads", _Workers(self.workers))

    def run(
        self,
        op: Op,
        seconds: float,
        clock: Callable[[], int] = time.perf_counter_ns,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Measurement:
        """Drive ``op``; ``clock`` (ns) and ``sleep`` (s) are injectable for tests."""
        interval_ns = 1e9 / self.rate_per_s
        total = max(1, int(seconds * self.rate_per_s))
        counter = itertools.count()
        lock = threading.Lock()
        latencies = [0] * total
        start = clock() + 1_000_000  # 1 ms for the workers to start

        def work() -> None:
            while True:
                with lock:
                    i = next(counter)
                if i >= total:
                    return
                due = start + int(i * interval_ns)
                now = clock()
                if due - now > _SPIN_NS:
                    sleep((due - now - _SPIN_NS) / 1e9)
                while clock() < due:
                    pass
                if op() is False:
                    latencies[i] = _REFUSED
                    continue
                latencies[i] = clock() - due

        self._threads.run(work)
        served = [v for v in latencies if v != _REFUSED]
        return Measurement(served, (clock() - start) / 1e9, refused=total - len(served))


class _Workers:
    """Daemon threads that each run the function :meth:`run` hands them, then wait for the next one."""

    def __init__(self, n: int) -> None:
        self._jobs: list[queue.SimpleQueue[Callable[[], None]]] = [queue.SimpleQueue() for _ in range(n)]
        self._done: queue.SimpleQueue[BaseException | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # one run at a time
        for k, jobs in enumerate(self._jobs):
            threading.Thread(target=self._serve, args=(jobs,), name=f"loadgen-{k}", daemon=True).start()

    def _serve(self, jobs: queue.SimpleQueue[Callable[[], None]]) -> None:
        while True:
            job = jobs.get()
            try:
                job()
            except BaseException as exc:  # handed to run()'s caller
                self._done.put(exc)
            else:
                self._done.put(None)

    def run(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on every thread at once; returns when all are done (raises the first error)."""
        with self._lock:
            for jobs in self._jobs:
                jobs.put(fn)
            errors = [self._done.get() for _ in self._jobs]
        first = next((e for e in errors if e is not None), None)
        if first is not None:
            raise first


def open_loop(rate_per_s: float, workers: int = 1) -> Runner:
    """A :class:`perf.harness.Case` runner that drives its op open-loop at a constant rate."""
    return OpenLoop(rate_per_s, workers).run
