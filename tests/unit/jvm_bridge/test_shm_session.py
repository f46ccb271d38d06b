"""The gateway half of the shared-memory protocol, with Python playing the Java client's half.

Real ONNX Runtime models and real files, FIFOs and threads; the client writes the request line and
the request seq as ``dev.scoregate.bridge.shm.SlotRing`` does, then waits for the response seq
(polling the shared word with a deadline, as the Java client does).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lifecycle_builders import FEATURES as LIFECYCLE_FEATURES
from lifecycle_builders import TWO_VERSION_SCORES, two_version_engine
from onnx_builders import logistic_model, reference_scores

from gateway.engine import Engine
from gateway.rollout import RolloutController
from gateway.runtime import ModelRuntime
from jvm_bridge.shm_ring import (
    FAILED,
    HEADER_BYTES,
    MAGIC,
    S_BUCKET,
    S_DEADLINE,
    S_MESSAGE,
    S_PINNED,
    S_SERVED,
    SCORED,
    SERVING,
    VERSION,
    RingLayout,
    SharedRing,
    remove_stale_files,
)
from jvm_bridge.shm_session import ShmSession, served_models
from models.rollout import BUCKETS

FEATURES = 16


@pytest.fixture(scope="module")
def logistic() -> tuple[bytes, np.ndarray, float]:
    return logistic_model(FEATURES)


@pytest.fixture
def session(tmp_path: Path, logistic: tuple[bytes, np.ndarray, float]) -> Iterator[ShmSession]:
    engine = Engine([ModelRuntime.load(logistic[0], name="pctr", version="3")])
    s = ShmSession.open(
        1, "test", engine, tmp_path, f"scoregate-{os.getpid()}-1",
        slots=4, max_rows=8, workers=2, spin_us=20.0, idle_wake_s=0.05, lease_s=5.0,
    ).start()  # fmt: skip
    try:
        yield s
    finally:
        s.close()
    assert list(tmp_path.iterdir()) == [], "close() removes the ring and its doorbells"


class Client:
    """The Java side's protocol steps, in Python."""

    def __init__(self, ring: SharedRing) -> None:
        self.ring = ring
        self.seq = [0] * ring.layout.slots

    def send(
        self,
        slot: int,
        x: np.ndarray,
        model: int = 0,
        deadline_ns: int | None = None,
        width: int = 1,
        bucket: int = -1,
        pinned: int = -1,
    ) -> int:
        rows, features = x.shape
        self.ring.features(slot, rows, features)[:] = x
        i32, i64 = self.ring.slot_words(slot)
        i32[2:6] = (model, rows, features, width)
        i32[S_BUCKET // 4] = bucket
        i64[S_PINNED // 8] = pinned
        i64[S_DEADLINE // 8] = time.monotonic_ns() + 5_000_000_000 if deadline_ns is None else deadline_ns
        self.seq[slot] += 1
        i64[0] = self.seq[slot]  # request seq, written last
        sleep = int(self.ring.sleep_word(slot % self.ring.layout.workers)[0])
        if sleep & 1:
            os.write(self.ring.bell_fd(slot % self.ring.layout.workers), b"x")
        return self.seq[slot]

    def wait(self, slot: int, seq: int, timeout_s: float = 10.0) -> tuple[int, int, str]:
        i32, i64 = self.ring.slot_words(slot)
        until = time.monotonic() + timeout_s
        while int(i64[8]) != seq:  # response seq at byte 64
            assert time.monotonic() < until, "the gateway did not answer"
            time.sleep(0)  # not a wait: yields the GIL to the worker threads
        start = self.ring.layout.slot_offset(slot) + S_MESSAGE
        message = bytes(self.ring.memory[start : start + int(i32[20])]).decode()
        return int(i32[18]), int(i32[19]), message


def test_layout_is_what_the_java_reader_checks(tmp_path: Path) -> None:
    layout = RingLayout(slots=3, workers=2, max_rows=10, max_features=7, max_width=1)
    assert layout.stride % 64 == 0 and layout.scores_offset >= layout.features_offset + 10 * 7 * 4
    ring = SharedRing(tmp_path, "scoregate-0-layout", layout)
    try:
        header = np.ndarray((8,), np.int64, ring.memory)
        ints = np.ndarray((16,), np.int32, ring.memory)
        assert int(header[0]) == MAGIC and ints[2:8].tolist() == [VERSION, 3, 2, 10, 7, 1]
        assert int(header[4]) == layout.stride and int(header[5]) == HEADER_BYTES
        assert os.path.getsize(ring.path) == layout.size == HEADER_BYTES + 3 * layout.stride
        assert all(Path(p).exists() for p in ring.bell_paths)
    finally:
        ring.close()
    assert list(tmp_path.iterdir()) == []


def test_a_request_is_scored_in_place_by_its_worker(session: ShmSession, logistic: Any) -> None:
    client = Client(session.ring)
    x = np.random.default_rng(1).normal(size=(5, FEATURES)).astype(np.float32)
    for slot in range(4):
        outcome, _, message = client.wait(slot, client.send(slot, x))
        assert (outcome, message) == (SCORED, "")
        scores = session.ring.scores(slot, (5,))
        np.testing.assert_allclose(scores, reference_scores(x, logistic[1], logistic[2]), rtol=1e-5, atol=1e-6)
        assert int(session.ring.slot_words(slot)[1][S_SERVED // 8]) == 3  # the version that scored
    assert session.stats().scored == 4 and session.ring.state == SERVING
    assert client.wait(0, client.send(0, x, pinned=3))[0] == SCORED
    session.engine.add(ModelRuntime.load(logistic[0], name="pctr", version="12"))  # a hot swap
    assert client.wait(0, client.send(0, x))[0] == SCORED
    assert int(session.ring.slot_words(0)[1][S_SERVED // 8]) == 12
    # A pin is scored by its version or answered as unknown (version 3 no longer serves)
    assert client.wait(1, client.send(1, x, pinned=12))[0] == SCORED
    assert int(session.ring.slot_words(1)[1][S_SERVED // 8]) == 12
    assert client.wait(2, client.send(2, x, pinned=3)) == (FAILED, 2, "unknown model 'pctr@3'; loaded: pctr@12")


def test_errors_come_back_as_codes_and_python_messages(session: ShmSession) -> None:
    client = Client(session.ring)
    x = np.ones((2, FEATURES), dtype=np.float32)
    x[1, 3] = np.nan
    assert client.wait(0, client.send(0, x)) == (
        FAILED, 1, "model 'pctr' input 'features': 1 non-finite value(s) (NaN/inf), first at index (1, 3)"
    )  # fmt: skip
    code, message = client.wait(1, client.send(1, np.ones((2, 8), dtype=np.float32)))[1:]
    assert code == 1 and "input feature count is 8, expected 16" in message
    assert client.wait(2, client.send(2, np.ones((2, FEATURES), dtype=np.float32), model=9))[:2] == (FAILED, 4)
    assert client.wait(3, client.send(3, np.ones((2, FEATURES), dtype=np.float32), width=2))[:2] == (FAILED, 4)


def test_a_request_past_its_deadline_is_never_scored(session: ShmSession) -> None:
    client = Client(session.ring)
    x = np.ones((2, FEATURES), dtype=np.float32)
    scores = session.ring.scores(0, (2,))
    scores[:] = -7.0
    outcome, code, message = client.wait(0, client.send(0, x, deadline_ns=time.monotonic_ns() - 1_000_000))
    assert (outcome, code) == (FAILED, 3)
    assert message.startswith("model 'pctr': deadline exceeded: passed ") and message.endswith("never scored")
    assert scores.tolist() == [-7.0, -7.0]
    assert session.stats().expired == 1


def test_an_asleep_worker_is_woken_by_its_doorbell(tmp_path: Path, logistic: Any) -> None:
    engine = Engine([ModelRuntime.load(logistic[0], name="pctr")])
    session = ShmSession.open(
        2, "test", engine, tmp_path, f"scoregate-{os.getpid()}-2",
        slots=1, max_rows=1, workers=1, spin_us=0.0, idle_wake_s=30.0, lease_s=5.0,
    ).start()  # fmt: skip
    try:
        client = Client(session.ring)
        sleep = session.ring.sleep_word(0)
        for _ in range(3):
            until = time.monotonic() + 10
            while not int(sleep[0]) & 1:  # asleep on the doorbell (and its backstop is 30 s away)
                assert time.monotonic() < until
                time.sleep(0)
            assert client.wait(0, client.send(0, np.ones((1, FEATURES), dtype=np.float32)), timeout_s=10)[0] == SCORED
    finally:
        session.close()


def test_model_table_marks_what_the_ring_cannot_serve() -> None:
    from onnx_builders import two_input_model

    two, lr = ModelRuntime.load(two_input_model(), name="two"), ModelRuntime.load(logistic_model()[0], name="lr")
    engine = Engine([two, lr])
    table = {m.name: m for m in served_models(engine)}
    assert (table["lr"].features, table["lr"].width, table["lr"].version) == (16, 1, "0")
    assert (table["two"].features, table["two"].width) == (0, 0)
    assert table["lr"].line() == "model\t0\tlr\t0\t16\t1\tfeatures: float32[batch, 16] -> score: float32[batch]"


def test_stale_files_of_dead_gateways_are_removed(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    dead_pid = int(dead.stdout)
    (tmp_path / f"scoregate-{dead_pid}-1").write_bytes(b"x")
    os.mkfifo(tmp_path / f"scoregate-{dead_pid}-1.bell0")
    (tmp_path / f"scoregate-{os.getppid()}-1").write_bytes(b"alive")
    (tmp_path / "unrelated").write_bytes(b"x")
    removed = remove_stale_files(tmp_path)
    assert sorted(p.name for p in removed) == [f"scoregate-{dead_pid}-1", f"scoregate-{dead_pid}-1.bell0"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"scoregate-{os.getppid()}-1", "unrelated"]


def test_a_routing_bucket_takes_the_request_into_a_canary(tmp_path: Path) -> None:
    """The client sends its key's bucket (Java's ``Routing.bucket``); the router sends buckets in the canary's share to
    the candidate, and the response names the version that scored."""
    engine = two_version_engine(tmp_path)
    rollouts = RolloutController(engine, start_worker=False)
    session = ShmSession.open(
        1, "test", engine, tmp_path, f"scoregate-{os.getpid()}-9",
        slots=2, max_rows=8, workers=1, spin_us=20.0, idle_wake_s=0.05, lease_s=5.0,
    ).start()  # fmt: skip
    try:
        applied = rollouts.deploy("pctr", "2", canary_pct=25.0)
        assert applied.ok, applied.error
        client = Client(session.ring)
        x = np.zeros((3, LIFECYCLE_FEATURES), np.float32)
        want = {int(v): score for v, score in TWO_VERSION_SCORES.items()}
        cases = [(0, 2), (2499, 2), (2500, 1), (9999, 1), (-1, 1), (BUCKETS, 1)]  # BUCKETS: not a bucket, no key
        for bucket, version in cases:
            assert client.wait(0, client.send(0, x, bucket=bucket))[0] == SCORED
            assert int(session.ring.slot_words(0)[1][S_SERVED // 8]) == version, bucket
            np.testing.assert_allclose(session.ring.scores(0, (3,)), want[version], rtol=1e-5)
        assert rollouts.status("pctr").served["candidate"] == 2
    finally:
        session.close()
        rollouts.close()
        engine.close()


def test_a_model_deployed_after_the_session_opened_is_appended_to_its_table(session: ShmSession, logistic: Any) -> None:
    """Indices already given keep their model; the new name gets the next one and is served through the ring."""
    assert [(m.index, m.name) for m in session.models] == [(0, "pctr")]
    session.engine.add(ModelRuntime.load(logistic[0], name="apple", version="5"))  # sorts before pctr
    table = session.refresh_models()
    assert [(m.index, m.name, m.version) for m in table] == [(0, "pctr", "3"), (1, "apple", "5")]
    assert session.refresh_models() == table  # nothing new: the same table
    client = Client(session.ring)
    x = np.random.default_rng(4).normal(size=(3, FEATURES)).astype(np.float32)
    assert client.wait(0, client.send(0, x, model=1))[0] == SCORED
    assert int(session.ring.slot_words(0)[1][S_SERVED // 8]) == 5
    np.testing.assert_allclose(session.ring.scores(0, (3,)), reference_scores(x, logistic[1], logistic[2]), rtol=1e-5)
