"""The open-loop generator measures from the intended send time: no coordinated omission."""

from __future__ import annotations

import threading

import pytest

from perf.loadgen import OpenLoop


class FakeTime:
    """A clock that moves 1 µs per reading and jumps on sleep() or when an op 'works'."""

    def __init__(self) -> None:
        self.now = 0
        self.lock = threading.Lock()

    def clock(self) -> int:
        with self.lock:
            self.now += 1_000
            return self.now

    def sleep(self, seconds: float) -> None:
        self.advance(int(seconds * 1e9))

    def advance(self, ns: int) -> None:
        with self.lock:
            self.now += ns


def test_stall_is_charged_to_every_request_due_during_it() -> None:
    t = FakeTime()
    calls = 0

    def op() -> None:
        nonlocal calls
        calls += 1
        t.advance(20_000_000 if calls == 50 else 50_000)  # one 20 ms stall, otherwise 50 µs

    m = OpenLoop(rate_per_s=1000).run(op, 0.2, clock=t.clock, sleep=t.sleep)
    lat = list(m.latencies_ns)
    assert len(lat) == 200 and calls == 200
    assert max(lat[:49]) < 200_000  # before the stall: ~50 µs each
    assert lat[49] >= 20_000_000  # the stalled call itself
    # requests due 1, 2, ... ms after the stall began waited for it: a closed loop would miss this
    assert lat[50] >= 18_000_000 and lat[55] >= 13_000_000 and lat[60] >= 8_000_000
    assert max(lat[80:]) < 200_000  # recovered: 20 ms of backlog drains at ~950 µs per request


def test_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="rate_per_s"):
        OpenLoop(0)
    with pytest.raises(ValueError, match="workers"):
        OpenLoop(10, workers=0)


def test_refused_ops_are_counted_not_measured() -> None:
    t = FakeTime()
    calls = 0

    def op() -> bool:
        nonlocal calls
        calls += 1
        t.advance(50_000)
        return calls % 4 != 0  # every fourth request is shed by admission control

    m = OpenLoop(rate_per_s=1000).run(op, 0.2, clock=t.clock, sleep=t.sleep)
    assert calls == 200
    assert m.refused == 50
    assert len(m.latencies_ns) == 150 and min(m.latencies_ns) >= 0


def test_runs_reuse_the_same_worker_threads() -> None:
    seen: set[int] = set()
    lock = threading.Lock()

    def op() -> None:
        with lock:
            seen.add(threading.get_ident())

    loop = OpenLoop(rate_per_s=2000, workers=2)
    for _ in range(3):
        assert len(loop.run(op, 0.01).latencies_ns) == 20
    assert len(seen) == 2  # what a thread keeps (bindings, buffers) is made once, as on a server


def test_an_op_that_raises_fails_the_run_and_the_next_run_works() -> None:
    loop = OpenLoop(rate_per_s=1000, workers=2)

    def bad() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        loop.run(bad, 0.01)
    assert len(loop.run(lambda: None, 0.01).latencies_ns) == 10
