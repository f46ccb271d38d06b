"""Open-loop, constant-rate load: latency measured from the *intended* send time.

A closed-loop driver (call, wait, call again) slows down when the system does and so never sees
the queue that real traffic would build: coordinated omission. Here request *i* is due at
``start + i / rate`` whatever happened before; its latency is ``completion - due``. A stall of
10 ms therefore shows up as the 10 ms it cost every request due during it, as an ad server's
users would see it.

``workers`` threads take the next due request from a shared counter, so a system that can serve
calls in parallel (ONNX Runtime releases the GIL) is offered them in parallel.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

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

    def __post_init__(self) -> None:
        if self.rate_per_s <= 0:
            raise ValueError("rate_per_s must be > 0")
        if self.workers < 1:
            raise ValueError("workers must be >= 1")

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

        threads = [threading.Thread(target=work, name=f"loadgen-{k}", daemon=True) for k in range(self.workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        served = [v for v in latencies if v != _REFUSED]
        return Measurement(served, (clock() - start) / 1e9, refused=total - len(served))


def open_loop(rate_per_s: float, workers: int = 1) -> Runner:
    """A :class:`perf.harness.Case` runner that drives its op open-loop at a constant rate."""
    return OpenLoop(rate_per_s, workers).run
