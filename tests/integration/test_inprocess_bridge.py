"""The in-process bridge with a real JVM (JPype), real ONNX Runtime and the real Java API.

One JVM per test process (JPype cannot restart one): the module starts it once. Java callers here
are Python threads calling the Java API (each such call releases the GIL while it blocks in
Java, exactly like a Java thread would wait) and Java programs run through ``host.run_main``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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
from jvm_bridge.inprocess import InProcessHost, InProcessOptions
from jvm_bridge.jvm import start_jvm
from models.rollout import bucket

jpype = pytest.importorskip("jpype")
ROOT = Path(__file__).resolve().parents[2]
FEATURES = 16


@pytest.fixture(scope="module")
def logistic() -> tuple[bytes, np.ndarray, float]:
    return logistic_model(FEATURES)


@pytest.fixture(scope="module")
def engine(logistic: tuple[bytes, np.ndarray, float]) -> Engine:
    start_jvm()
    return Engine(
        [ModelRuntime.load(logistic[0], name="pctr", version="3"), ModelRuntime.load(logistic[0], name="pcvr")]
    )


@pytest.fixture
def host(engine: Engine) -> Iterator[InProcessHost]:
    with InProcessHost(engine, InProcessOptions(workers=2)) as h:
        yield h


def _java() -> Any:
    return jpype.JPackage("dev.scoregate.bridge")


def _request(slot: Any, rows: int, model: str, timeout_ms: int = 5000) -> Any:
    duration = jpype.JClass("java.time.Duration").ofMillis(timeout_ms)
    return slot.request(rows).model(model).timeout(duration).build()


def _fill(slot: Any, x: np.ndarray) -> None:
    """Write rows through the Java API, as an ad server would."""
    for r, row in enumerate(x):
        slot.putRow(r, jpype.JArray(jpype.JFloat)(row.tolist()))


def _scores(result: Any, rows: int) -> np.ndarray:
    buf = result.scoreBuffer()
    return np.array([buf.getFloat(i * 4) for i in range(rows)], dtype=np.float32)


def test_java_main_scores_through_the_registered_gateway(host: InProcessHost, logistic: Any, capfd: Any) -> None:
    host.run_main("dev.scoregate.bridge.inprocess.EchoMain", ["pctr"])
    lines = capfd.readouterr().out.strip().splitlines()
    assert lines[-1] == "OK"
    got = np.array([float(v) for v in lines[:-1]], dtype=np.float32)
    # EchoMain's documented inputs: request k, row r, feature f = k/2 + r/4 + (f mod 8)/8
    x = np.array([[k / 2 + r / 4 + (f % 8) / 8 for f in range(FEATURES)] for k in range(3) for r in range(2)])
    _, w, b = logistic
    np.testing.assert_allclose(got, reference_scores(x, w, b), rtol=1e-5, atol=1e-6)


def test_arena_slot_is_scored_in_place_same_address(host: InProcessHost, logistic: Any) -> None:
    """The bytes ONNX Runtime reads are the bytes Java wrote, at the same address: no copy anywhere."""
    gateway = _java().ModelGateways.get()
    arena = host.new_arena(4, 64, FEATURES)
    x = np.random.default_rng(3).normal(size=(10, FEATURES)).astype(np.float32)
    with arena.acquire() as slot:
        _fill(slot, x)
        result = gateway.score(_request(slot, 10, "pctr"))
        java_base = np.frombuffer(memoryview(arena.buffer()), dtype=np.uint8).ctypes.data
        scored = [w.last_batch for w in host._workers if w.last_batch is not None]
        xs = [pair for pair in scored if pair[0].shape == (10, FEATURES)]
        assert any(p[0].ctypes.data == java_base + slot.offset() for p in xs)
        assert any(p[1].ctypes.data == java_base + slot.scoresOffset() for p in xs)
        np.testing.assert_array_equal(next(p[0] for p in xs if p[0].ctypes.data == java_base + slot.offset()), x)
        _, w, b = logistic
        np.testing.assert_allclose(_scores(result, 10), reference_scores(x, w, b), rtol=1e-5, atol=1e-6)
        assert str(result.servedBy()) == "pctr@3"


def test_concurrent_callers_are_batched_and_all_correct(engine: Engine, logistic: Any) -> None:
    _, w, b = logistic
    with InProcessHost(engine, InProcessOptions(workers=1, max_delay_us=200)) as host:
        gateway = _java().ModelGateways.get()
        arena = host.new_arena(16, 32, FEATURES)
        rng = np.random.default_rng(5)
        inputs = [rng.normal(size=(int(rng.integers(1, 32)), FEATURES)).astype(np.float32) for _ in range(16)]
        start = threading.Barrier(16)

        def caller(k: int) -> int:
            x = inputs[k]
            start.wait(timeout=30)
            with arena.acquire() as slot:
                _fill(slot, x)
                for _ in range(20):
                    result = gateway.score(_request(slot, x.shape[0], "pctr" if k % 2 else "pcvr"))
                    np.testing.assert_allclose(
                        _scores(result, x.shape[0]), reference_scores(x, w, b), rtol=1e-5, atol=1e-6
                    )
            return 20

        with ThreadPoolExecutor(16) as pool:
            assert sum(pool.map(caller, range(16))) == 320
        stats = host.stats()
    assert stats["requests"] == 320 and stats["failures"] == 0
    assert stats["batches"] < stats["requests"], "concurrent requests for one model should share ONNX Runtime runs"


def test_errors_become_typed_java_exceptions_and_serving_continues(host: InProcessHost) -> None:
    java = _java()
    gateway = java.ModelGateways.get()
    arena = host.new_arena(2, 8, FEATURES)
    x = np.ones((4, FEATURES), dtype=np.float32)
    with arena.acquire() as slot:
        _fill(slot, x)
        with pytest.raises(java.UnknownModelException, match="unknown model 'nope'"):
            gateway.score(_request(slot, 4, "nope"))
        slot.features().put(5, float("nan"))  # row 0, feature 5
        with pytest.raises(java.InvalidInputException, match=r"model 'pctr' input 'features': 1 non-finite value"):
            gateway.score(_request(slot, 4, "pctr"))
        slot.features().put(5, 1.0)
        assert np.isfinite(_scores(gateway.score(_request(slot, 4, "pctr")), 4)).all()
    assert host.stats()["failures"] == 1


def test_python_exception_inside_scoring_is_a_java_scoregate_exception(engine: Engine, logistic: Any) -> None:
    class Exploding(ModelRuntime):
        def score(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
            raise ZeroDivisionError("boom in the model")

    good = engine.runtime("pctr")
    bad = Exploding(good._session, "pcvr", good.options)  # type: ignore[arg-type]
    with InProcessHost(Engine([good, bad])) as host:
        java = _java()
        gateway = java.ModelGateways.get()
        arena = host.new_arena(1, 4, FEATURES)
        with arena.acquire() as slot:
            _fill(slot, np.zeros((2, FEATURES), np.float32))
            with pytest.raises(java.ScoregateException, match="ZeroDivisionError: boom in the model"):
                gateway.score(_request(slot, 2, "pcvr"))
            assert _scores(gateway.score(_request(slot, 2, "pctr")), 2).shape == (2,)  # the JVM and lane live on


def test_deadline_passes_while_queued(engine: Engine) -> None:
    release = threading.Event()
    entered = threading.Event()
    good = engine.runtime("pctr")

    class Slow(ModelRuntime):
        def score(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
            entered.set()
            assert release.wait(30)
            return good.score(x, out)

    slow = Slow(good._session, "pctr", good.options)  # type: ignore[arg-type]
    with InProcessHost(Engine([slow]), InProcessOptions(workers=1)) as host:
        java = _java()
        gateway = java.ModelGateways.get()
        arena = host.new_arena(2, 4, FEATURES)
        with arena.acquire() as first, arena.acquire() as second:
            _fill(first, np.zeros((1, FEATURES), np.float32))
            _fill(second, np.zeros((1, FEATURES), np.float32))
            pending = gateway.scoreAsync(_request(first, 1, "pctr", timeout_ms=30_000))
            assert entered.wait(30)  # the only lane is busy
            with pytest.raises(java.DeadlineExceededException):
                gateway.score(_request(second, 1, "pctr", timeout_ms=50))
            release.set()
            assert pending.get().rows() == 1


def test_big_endian_and_heap_buffers_are_rejected_in_java(host: InProcessHost) -> None:
    java = _java()
    nio = jpype.JPackage("java.nio")
    timeout = jpype.JClass("java.time.Duration").ofSeconds(1)
    builder = java.ScoreRequest.builder().model("pctr").rows(1).featureCount(FEATURES).timeout(timeout)
    big = nio.ByteBuffer.allocateDirect(FEATURES * 4).order(nio.ByteOrder.BIG_ENDIAN)
    out = nio.ByteBuffer.allocateDirect(4).order(nio.ByteOrder.nativeOrder())
    with pytest.raises(java.InvalidInputException, match=r"(?i)byte order|big.endian"):
        builder.featureBuffer(big).scoreBuffer(out).build()
    heap = nio.ByteBuffer.allocate(FEATURES * 4).order(nio.ByteOrder.nativeOrder())
    with pytest.raises(java.InvalidInputException, match=r"(?i)direct"):
        builder.featureBuffer(heap).scoreBuffer(out).build()


def test_a_metrics_monitor_sees_every_batch_and_error_java_sent(host: InProcessHost, engine: Engine) -> None:
    from gateway.monitoring import Monitor, MonitorOptions

    java = _java()
    gateway = java.ModelGateways.get()
    monitor = Monitor(MonitorOptions(interval_s=0))
    monitor.follow(engine)
    try:
        arena = host.new_arena(1, 8, FEATURES)
        with arena.acquire() as slot:
            _fill(slot, np.ones((8, FEATURES), dtype=np.float32))
            for rows in (1, 4, 8):  # one caller, one at a time: each request is its own batch
                gateway.score(_request(slot, rows, "pctr"))
            slot.features().put(3, float("nan"))
            with pytest.raises(java.InvalidInputException):
                gateway.score(_request(slot, 2, "pctr"))
        monitor.step()
        watched = monitor.watched("pctr", "3")
        assert (watched.calls, watched.rows) == (3, 13)
        assert watched.key.stage == "serving"
        assert monitor.counters.get("model_errors", ("pctr", "3", "serving", "NonFiniteInputError")) == 1
    finally:
        monitor.detach(engine)
        monitor.close()


def test_serve_cli_runs_a_java_main_against_the_demo_models(demo_dir: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--models", str(demo_dir / "models"), "--metrics-port", "0",
         "--jvm-main", "dev.scoregate.bridge.inprocess.EchoMain", "--", "pctr_gbdt"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "scoregate metrics on http://127.0.0.1:" in proc.stderr  # on stderr: stdout is the Java program's
    lines = proc.stdout.strip().splitlines()
    assert lines[-1] == "OK" and len(lines) == 7
    assert all(0.0 <= float(v) <= 1.0 for v in lines[:-1])


def test_models_of_different_widths_batched_concurrently_keep_their_shapes() -> None:
    """Regression: staged views were cached without the feature count, so a [n, 64] view served a 40-wide model."""
    start_jvm()
    wide, w_wide, b_wide = logistic_model(24, seed=1)
    narrow, w_narrow, b_narrow = logistic_model(8, seed=2)
    engine = Engine(
        [ModelRuntime.load(wide, name="wide", version="1"), ModelRuntime.load(narrow, name="narrow", version="1")]
    )
    with InProcessHost(engine, InProcessOptions(workers=1, max_delay_us=500)) as host:
        gateway = _java().ModelGateways.get()
        arenas = {"wide": host.new_arena(8, 4, 24), "narrow": host.new_arena(8, 4, 8)}
        refs = {"wide": (w_wide, b_wide), "narrow": (w_narrow, b_narrow)}
        start = threading.Barrier(12)

        def caller(k: int) -> int:
            name = "wide" if k % 2 else "narrow"
            width = 24 if name == "wide" else 8
            x = np.random.default_rng(k).normal(size=(4, width)).astype(np.float32)
            start.wait(timeout=30)
            with arenas[name].acquire() as slot:
                _fill(slot, x)
                for _ in range(30):
                    got = _scores(gateway.score(_request(slot, 4, name)), 4)
                    np.testing.assert_allclose(got, reference_scores(x, *refs[name]), rtol=1e-5, atol=1e-6)
            return 30

        with ThreadPoolExecutor(12) as pool:
            assert sum(pool.map(caller, range(12))) == 360
        assert host.stats()["failures"] == 0


def test_a_hot_swap_under_java_callers_loses_no_call(logistic: Any) -> None:
    """Java threads keep calling while the live version is replaced 20 times: every call succeeds, each result is
    one version's scores (old or new, never a closed session) and names the version that scored it, and the new
    version serves at the end."""
    start_jvm()
    model_a, w, b = logistic
    model_b, w_b, b_b = logistic_model(FEATURES, seed=99)
    engine = Engine([ModelRuntime.load(model_a, name="ctr", version="1")])
    x = np.random.default_rng(5).normal(size=(8, FEATURES)).astype(np.float32)
    want = {"a": reference_scores(x, w, b), "b": reference_scores(x, w_b, b_b)}
    with InProcessHost(engine, InProcessOptions(workers=2)) as host:
        gateway = _java().ModelGateways.get()
        arena = host.new_arena(4, 8, FEATURES)
        stop = threading.Event()
        seen: list[str] = []
        named: list[tuple[str, str]] = []  # (servedBy, the model whose scores came back)
        errors: list[str] = []

        def caller() -> None:
            with arena.acquire() as slot:
                _fill(slot, x)
                while not stop.is_set():
                    try:
                        result = gateway.score(_request(slot, 8, "ctr"))
                        got = _scores(result, 8)
                    except Exception as exc:  # a JException: what the test must never see
                        errors.append(str(exc))
                        continue
                    match = [k for k, v in want.items() if np.allclose(got, v, rtol=1e-5, atol=1e-6)]
                    scored = match[0] if match else "neither"
                    seen.append(scored)
                    named.append((str(result.servedBy()), scored))

        threads = [threading.Thread(target=caller) for _ in range(3)]
        for t in threads:
            t.start()
        for k in range(20):
            model, version = (model_b, f"{k + 2}") if k % 2 == 0 else (model_a, f"{k + 2}")
            engine.add(ModelRuntime.load(model, name="ctr", version=version))
        final = ModelRuntime.load(model_b, name="ctr", version="99")
        engine.add(final)
        target = len(seen) + 50  # let 50 more calls run on the final version (bounded: 30 s)
        give_up = time.monotonic() + 30
        while len(seen) < target and not errors and time.monotonic() < give_up:
            stop.wait(0.005)
        stop.set()
        for t in threads:
            t.join(30)
    engine.close()
    assert errors == []
    assert "neither" not in seen
    assert seen[-1] == "b" and {"a", "b"} <= set(seen)
    # ctr@1 and the odd versions are model a; the even ones and the final 99 are model b
    wrong = [(n, s) for n, s in named if s != ("b" if int(n[4:]) == 99 or int(n[4:]) % 2 == 0 else "a")]
    assert not wrong, (len(wrong), len(named), wrong[:10])
    assert named[-1] == ("ctr@99", "b")
    assert len({n for n, _ in named}) > 2  # the results followed the swaps


def test_a_fault_outside_scoring_fails_the_batch_and_the_lane_goes_on(engine: Engine) -> None:
    """A bug in a worker's own loop (not in the model) used to end the worker thread with its batch taken: the
    callers waited for their deadlines (forever in the benchmarks). Now the batch fails and the lane goes on."""

    class FaultOnce(dict):  # type: ignore[type-arg]
        armed = True

        def get(self, key: object, default: object = None) -> object:
            if FaultOnce.armed:
                FaultOnce.armed = False
                raise RuntimeError("fault in the lane's view cache")
            return super().get(key, default)

    host = InProcessHost(engine, InProcessOptions(workers=1))
    host._workers[0]._views = FaultOnce()  # before start(): the worker reads it once, when it starts
    with host:
        java = _java()
        gateway = java.ModelGateways.get()
        arena = host.new_arena(1, 4, FEATURES)
        with arena.acquire() as slot:
            _fill(slot, np.zeros((2, FEATURES), np.float32))
            started = time.monotonic()
            with pytest.raises(java.GatewayUnavailableException, match="fault in the lane's view cache"):
                gateway.score(_request(slot, 2, "pctr", timeout_ms=30_000))
            assert time.monotonic() - started < 5  # failed at once, not at the deadline
            assert _scores(gateway.score(_request(slot, 2, "pctr")), 2).shape == (2,)  # the same lane serves on


def test_workers_report_what_a_batch_costs_so_short_ones_gather_on_one_lane(engine: Engine) -> None:
    """The Python workers report each model's scoring CPU time to the Java queue, which decides from it whether a
    second lane is worth waking (``gather_us``); the option reaches Java, and 0 turns gathering off."""
    with InProcessHost(engine, InProcessOptions(workers=2)) as host:
        jg = host.java_gateway
        assert jg.options().gatherNanos() == 100_000
        assert jg.scoringCostNanos("pctr", 1) == 0, "nothing scored yet"
        gateway = _java().ModelGateways.get()
        arena = host.new_arena(1, 4, FEATURES)
        with arena.acquire() as slot:
            _fill(slot, np.ones((1, FEATURES), dtype=np.float32))
            for _ in range(40):  # a worker reports one batch in 8
                gateway.score(_request(slot, 1, "pctr"))
        cost = int(jg.scoringCostNanos("pctr", 1))
        assert 0 < cost < 50_000_000, cost  # a 16-feature logistic model: microseconds, not seconds
        assert jg.scoringCostNanos("pcvr", 1) == 0 and jg.scoringCostNanos("pctr", 64) == 0
        with pytest.raises(jpype.JException, match="nope"):
            jg.scoringCostNanos("nope", 1)
    with InProcessHost(engine, InProcessOptions(workers=2, gather_us=0)) as host:
        assert host.java_gateway.options().gatherNanos() == 0


_EXIT_WITHOUT_CLOSE = """
from gateway.engine import Engine
from gateway.runtime import ModelRuntime
from jvm_bridge.inprocess import InProcessHost, InProcessOptions
from jvm_bridge.jvm import start_jvm
from onnx_builders import logistic_model

start_jvm()
engine = Engine([ModelRuntime.load(logistic_model(16)[0], name="m")])
# Workers that come back from Java all the time: the moment the JVM is destroyed, one of them is on its way out.
InProcessHost(engine, InProcessOptions(workers=2, take_timeout_ms=0.01, lane_spin_us=0)).start()
print("exiting", flush=True)
"""


def test_a_process_that_exits_without_closing_the_host_exits() -> None:
    """JPype destroys the JVM at exit; a worker leaving a Java call then blocks at the JVM's last safepoint with the
    GIL held, and the exit hook waits for the GIL for ever (2 runs in 6 hung before the host closed itself at exit)."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"}
    for _ in range(4):
        proc = subprocess.run(
            [sys.executable, "-c", _EXIT_WITHOUT_CLOSE],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0 and "exiting" in proc.stdout, proc.stderr[-2000:]


def test_java_requests_with_a_routing_key_take_part_in_a_canary(tmp_path: Path) -> None:
    """A 30 % canary of version 2: Java requests whose routing key falls in the share are scored by the candidate and
    say so, the others (and those without a key) by the live version; the rollout sees both sides of the traffic;
    after the rollback every key is live again."""
    start_jvm()
    engine = two_version_engine(tmp_path)
    rollouts = RolloutController(engine, start_worker=False)
    x = np.zeros((2, LIFECYCLE_FEATURES), np.float32)
    want = TWO_VERSION_SCORES
    duration = jpype.JClass("java.time.Duration").ofMillis(5000)
    try:
        with InProcessHost(engine, InProcessOptions(workers=2)) as host:
            gateway = _java().ModelGateways.get()
            arena = host.new_arena(2, 2, LIFECYCLE_FEATURES)

            def call(key: str | None, model: str = "pctr") -> tuple[str, np.ndarray]:
                with arena.acquire() as slot:
                    _fill(slot, x)
                    builder = slot.request(2).model(model).timeout(duration)
                    result = gateway.score((builder if key is None else builder.routingKey(key)).build())
                    return str(result.servedBy()), _scores(result, 2)

            assert call("user-1")[0] == "pctr@1"  # no canary yet
            applied = rollouts.deploy("pctr", "2", canary_pct=30.0)
            assert applied.ok, applied.error
            served = {}
            for user in range(200):
                key = f"user-{user}"
                served[key], scores = call(key)
                assert served[key] == ("pctr@2" if bucket(key.encode()) < applied.state.threshold else "pctr@1"), key
                np.testing.assert_allclose(scores, want[served[key][-1]], rtol=1e-5)
            assert 0.15 < list(served.values()).count("pctr@2") / len(served) < 0.45
            assert {call(None)[0] for _ in range(20)} == {"pctr@1"}  # no key: live
            assert all(call(key)[0] == served[key] for key in list(served)[:20])  # sticky
            # A long key as a decimal string routes as its digits do over gRPC and in Python
            with arena.acquire() as slot:
                _fill(slot, x)
                result = gateway.score(slot.request(2).model("pctr").timeout(duration).routingKey(42).build())
            assert str(result.servedBy()) == ("pctr@2" if bucket(b"42") < applied.state.threshold else "pctr@1")
            served_counts = rollouts.status("pctr").served  # the rollout saw the JVM traffic on both sides
            assert served_counts["candidate"] > 0 and served_counts["live"] > 0, served_counts
            # Pins: the candidate and the live version are scored by themselves; any other version fails as unknown
            assert call(None, "pctr@2")[0] == "pctr@2" and call("user-1", "pctr@1")[0] == "pctr@1"
            unknown = jpype.JClass("dev.scoregate.bridge.UnknownModelException")
            with pytest.raises(unknown, match="'pctr@7': that version does not serve in process; pctr@1 does"):
                call(None, "pctr@7")
            rollouts.rollback("pctr", "2", "test")
            assert {call(key)[0] for key in served} == {"pctr@1"}
            with pytest.raises(unknown):
                call(None, "pctr@2")
            # A shadow's candidate takes no keyed traffic, but a pin reaches it
            assert rollouts.deploy("pctr", "2", shadow=True).ok
            assert {call(key)[0] for key in list(served)[:50]} == {"pctr@1"}
            assert call(None, "pctr@2")[0] == "pctr@2"
    finally:
        rollouts.close()
        engine.close()


def test_a_model_deployed_after_start_is_served_to_java_without_a_restart(
    logistic: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A name the engine starts serving after the host started (a deploy) is scored for Java callers once the
    engine publishes it; one whose rows are wider than the lanes stage is refused with a log, and the others serve."""
    start_jvm()
    model_a, w, b = logistic
    model_b, w_b, b_b = logistic_model(FEATURES, seed=31)
    engine = Engine([ModelRuntime.load(model_a, name="ctr", version="1")])
    x = np.random.default_rng(6).normal(size=(8, FEATURES)).astype(np.float32)
    with InProcessHost(engine, InProcessOptions(workers=1)) as host:
        gateway = _java().ModelGateways.get()
        arena = host.new_arena(1, 8, FEATURES)
        with arena.acquire() as slot:
            _fill(slot, x)
            with pytest.raises(jpype.JException) as unknown:
                gateway.score(_request(slot, 8, "pcvr"))
            assert "UnknownModelException" in str(unknown.value.getClass().getName())

            engine.add(ModelRuntime.load(model_b, name="pcvr", version="5"))
            give_up = time.monotonic() + 10
            while "pcvr" not in [str(m) for m in gateway.models()]:  # the host's watcher adds it
                assert time.monotonic() < give_up, "the new name never reached Java"
                time.sleep(0.005)
            result = gateway.score(_request(slot, 8, "pcvr"))
            assert str(result.servedBy()) == "pcvr@5"
            np.testing.assert_allclose(_scores(result, 8), reference_scores(x, w_b, b_b), rtol=1e-5, atol=1e-6)
            ctr = gateway.score(_request(slot, 8, "ctr"))  # the listed name is untouched
            np.testing.assert_allclose(_scores(ctr, 8), reference_scores(x, w, b), rtol=1e-5, atol=1e-6)

            # A new version of the added name hot-swaps in, as for a listed one.
            engine.add(ModelRuntime.load(model_a, name="pcvr", version="6"))
            give_up = time.monotonic() + 10
            while str(result.servedBy()) != "pcvr@6":
                assert time.monotonic() < give_up, "the added name's new version never served"
                result = gateway.score(_request(slot, 8, "pcvr"))
            np.testing.assert_allclose(_scores(result, 8), reference_scores(x, w, b), rtol=1e-5, atol=1e-6)

        wide, _, _ = logistic_model(4 * FEATURES, seed=3)
        with caplog.at_level("WARNING", logger="jvm_bridge.inprocess"):
            engine.add(ModelRuntime.load(wide, name="wide", version="1"))
            give_up = time.monotonic() + 10
            while "model wide is not served in process" not in caplog.text:
                assert time.monotonic() < give_up, "the refusal was never logged"
                time.sleep(0.005)
        assert "restart the host" in caplog.text
        assert host.sync_models() == []  # refused once, not retried on every change
        assert [str(m) for m in gateway.models()] == ["ctr", "pcvr"]
        assert host.stats()["failures"] == 0
    engine.close()
