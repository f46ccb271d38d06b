"""Out-of-process transport, control side: the Py4J server that ad-server JVMs connect to.

Who listens where: **the gateway listens, the ad server only connects.** This process runs Py4J's
Python server (``py4j.clientserver.ClientServer``) on ``host:port`` (127.0.0.1 by default) with
:class:`GatewayControl` as its entry point. The ad server's JVM runs a Java ``py4j.ClientServer``
built with ``autoStartJavaServer(false)``: it opens no port, and calls Python through a proxy of
``dev.scoregate.bridge.py4j.GatewayControl`` (``ModelGateways.connect(host, port, options)``).
Python never calls into Java, so no Java gateway is needed on this side and a gateway restart is
just a new process on the same port.

Py4J carries control only; tensors travel through shared memory (:mod:`jvm_bridge.shm_ring`,
:mod:`jvm_bridge.shm_session`), with no Py4J call per request:

1. ``openSession`` creates a ring (``/dev/shm/scoregate-<pid>-<id>``) and doorbells sized for the
   client's slots and rows and the served models, starts its workers, and answers with the paths
   and the model table. ``clock`` answers ``time.monotonic_ns()``: the client times a few calls to
   find the offset of its ``System.nanoTime()`` (deadlines in the ring are in the gateway's clock;
   on Linux both read ``CLOCK_MONOTONIC`` and the offset comes out as 0).
2. ``attachSession``: the client has mapped the ring and opened the doorbells; the names are
   unlinked now, so nothing is left in ``/dev/shm`` whoever dies first.
3. ``watch`` (long poll, repeated by one client thread): returns at once when the session closes,
   else after the timeout. A dead gateway breaks the call's socket, which is how a client notices
   within milliseconds; a session whose client stops watching for ``lease_s`` is closed.
4. ``closeSession`` when the client closes.

Replies are tab-separated lines (``key<TAB>value``), parsed by the Java client; model lines are
``model, index, name, version, features, outputs per row, signature``. A refused request answers
``error<TAB>message``. A heartbeat thread writes this process's clock into every ring every
``heartbeat_ms``, and reaps sessions whose lease ran out.

The ring files are created mode 0600: the client JVM must run as the same user as the gateway.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from gateway.blas import single_threaded_blas
from gateway.cli import add_metrics_port_argument
from gateway.engine import Engine
from gateway.heap import freeze_startup_heap
from gateway.sources import ModelSource, add_source_arguments, open_engine, source_from
from jvm_bridge.shm_ring import SERVING, check_platform, remove_stale_files
from jvm_bridge.shm_session import ShmSession, served_models

__all__ = ["PROTOCOL", "GatewayControl", "Py4jServer", "Py4jServerOptions", "client_classpath", "main", "serve"]

log = logging.getLogger(__name__)

#: Bumped when the control replies or the ring layout change incompatibly; the client checks it.
PROTOCOL = 1
DEFAULT_PORT = 25334
_ACCEPT_TIMEOUT_S = 0.25
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Py4jServerOptions:
    """How the out-of-process gateway listens and serves sessions. Mirrors ``RemoteGateway.Options`` where they meet."""

    #: Address of the Py4J server. Loopback by default: control calls are not authenticated.
    host: str = "127.0.0.1"
    #: Port of the Py4J server; 0 picks a free one (see :attr:`Py4jServer.port`).
    port: int = DEFAULT_PORT
    #: Worker threads per client session (each serves every ``workers``-th slot of the ring).
    workers: int = 2
    #: Largest ring a client may ask for, in slots and in rows per slot.
    max_slots: int = 1024
    max_rows: int = 8192
    #: How long an idle worker keeps re-scanning its slots before it sleeps on its doorbell.
    spin_us: float = 100.0
    #: An asleep worker wakes at least this often (a backstop; doorbells wake it at once).
    idle_wake_s: float = 0.5
    #: How often the heartbeat word of every ring is written.
    heartbeat_ms: float = 100.0
    #: A session whose client has not been watching for this long is closed.
    lease_s: float = 10.0
    #: Where rings and doorbells are created: a tmpfs, so that the memory is never written to disk.
    shm_dir: Path = field(default_factory=lambda: Path("/dev/shm"))

    def __post_init__(self) -> None:
        if self.workers <= 0 or self.max_slots <= 0 or self.max_rows <= 0:
            raise ValueError(f"workers, max_slots and max_rows must be > 0: {self}")
        if self.heartbeat_ms <= 0 or self.lease_s <= 0 or self.idle_wake_s <= 0 or self.spin_us < 0:
            raise ValueError(f"heartbeat_ms, lease_s and idle_wake_s must be > 0 and spin_us >= 0: {self}")


def _lines(pairs: Sequence[tuple[str, object]]) -> str:
    return "".join(f"{key}\t{value}\n" for key, value in pairs)


def _parse(text: str) -> dict[str, str]:
    result = {}
    for line in str(text).splitlines():
        key, _, value = line.partition("\t")
        if key:
            result[key] = value
    return result


class GatewayControl:
    """The Py4J entry point: what ``dev.scoregate.bridge.py4j.GatewayControl`` calls.

    Method names are the Java interface's (camelCase) because Py4J dispatches by name. Every
    method takes and returns strings (or ints) only: values Py4J passes by value, so Python never
    needs a connection back into the JVM. Each call runs on the Py4J connection thread of the
    calling Java thread; the methods are thread-safe.
    """

    class Java:
        implements: ClassVar[list[str]] = ["dev.scoregate.bridge.py4j.GatewayControl"]

    def __init__(self, server: Py4jServer) -> None:
        self.server = server

    def hello(self, client: str) -> str:
        return _lines([("protocol", PROTOCOL), ("server", "scoregate"), ("pid", os.getpid()),
                       ("models", len(self.server.engine))])  # fmt: skip

    def clock(self) -> str:
        """This process's ``time.monotonic_ns()``: the client times a few of these to find its clock offset."""
        return str(time.monotonic_ns())

    def models(self) -> str:
        return "".join(m.line() + "\n" for m in served_models(self.server.engine))

    def health(self) -> str:
        return self.server.health()

    def openSession(self, request: str) -> str:
        try:
            session = self.server.open_session(_parse(request))
        except ValueError as exc:
            return _lines([("error", exc)])
        ring = session.ring
        pairs: list[tuple[str, object]] = [
            ("session", session.id),
            ("path", ring.path),
            ("size", ring.layout.size),
            *(("bell", path) for path in ring.bell_paths),
            ("heartbeat_ms", self.server.options.heartbeat_ms),
        ]
        return _lines(pairs) + "".join(m.line() + "\n" for m in session.models)

    def sessionModels(self, session: str) -> str:
        """The session's model table, with models deployed since it opened appended (``ShmSession.refresh_models``);
        the client asks when a request names a model its table lacks."""
        found = self.server.session(session)
        if found is None:
            return "error\tunknown session\n"
        return "".join(m.line() + "\n" for m in found.refresh_models())

    def attachSession(self, session: str) -> str:
        found = self.server.session(session)
        if found is None:
            return "error\tunknown session\n"
        found.ring.unlink()
        return "ok\n"

    def watch(self, session: str, timeout_ms: int) -> str:
        found = self.server.session(session)
        if found is None:
            return "unknown"
        found.renew(+1)
        try:
            found.closed.wait(max(0.0, int(timeout_ms) / 1000.0))
        finally:
            found.renew(-1)
        return "closed" if found.closed.is_set() else "serving"

    def closeSession(self, session: str) -> str:
        self.server.close_session(session)
        return "ok\n"


class Py4jServer:
    """The out-of-process gateway: the Py4J control server, the sessions and their heartbeat.

    :meth:`start` removes ring files left by killed gateways, starts the Py4J server and the
    heartbeat thread; :meth:`close` closes every session (clients see the ring closed and fail
    over), stops the threads and removes every file it created. ``control`` builds the entry
    point (a subclass may add methods, as the benchmark does).
    """

    def __init__(
        self,
        engine: Engine,
        options: Py4jServerOptions | None = None,
        control: Callable[[Py4jServer], GatewayControl] = GatewayControl,
    ) -> None:
        check_platform()
        single_threaded_blas()  # numpy's BLAS threads would fight the workers for the cores (gateway/blas.py)
        self.engine = engine
        self.options = options or Py4jServerOptions()
        self.control = control(self)
        self.started_ns = time.monotonic_ns()
        self._sessions: dict[int, ShmSession] = {}
        self._next_id = 1
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._heartbeat = threading.Thread(target=self._beat, name="scoregate-py4j-heartbeat", daemon=True)
        self._py4j: Any = None
        self.port = self.options.port

    def start(self) -> Py4jServer:
        from py4j.clientserver import ClientServer, JavaParameters, PythonParameters

        for path in remove_stale_files(self.options.shm_dir):
            log.info("removed %s, left by a gateway that no longer runs", path)
        self._py4j = ClientServer(
            # Python never calls Java: no eager connection, no proxies to collect.
            java_parameters=JavaParameters(eager_load=False, auto_convert=False, enable_memory_management=False),
            python_parameters=PythonParameters(
                address=self.options.host,
                port=self.options.port,
                daemonize=True,
                daemonize_connections=True,
                # How often the accept loop looks up; close() waits for it (Py4J's default is 5 s).
                accept_timeout=_ACCEPT_TIMEOUT_S,
            ),
            python_server_entry_point=self.control,
        )
        self.port = int(self._py4j.get_callback_server().get_listening_port())
        self._heartbeat.start()
        return self

    # ------------------------------------------------------------------ sessions
    def open_session(self, request: dict[str, str]) -> ShmSession:
        """Creates and starts a session; ``ValueError`` for a request outside the options' limits."""
        opts = self.options
        try:
            slots = int(request.get("slots", "16"))
            max_rows = int(request.get("max_rows", "1024"))
        except ValueError as exc:
            raise ValueError(f"malformed session request: {exc}") from None
        if not 0 < slots <= opts.max_slots or not 0 < max_rows <= opts.max_rows:
            raise ValueError(
                f"slots must be in 1..{opts.max_slots} and max_rows in 1..{opts.max_rows}, got {slots} and {max_rows}"
            )
        if self._stop.is_set():
            raise ValueError("the gateway is shutting down")
        with self._lock:
            sid = self._next_id
            self._next_id += 1
        session = ShmSession.open(
            sid,
            request.get("client", "?"),
            self.engine,
            opts.shm_dir,
            f"scoregate-{os.getpid()}-{sid}",
            slots=slots,
            max_rows=max_rows,
            workers=opts.workers,
            spin_us=opts.spin_us,
            idle_wake_s=opts.idle_wake_s,
            lease_s=opts.lease_s,
        ).start()
        with self._lock:
            self._sessions[sid] = session
        log.info("session %d opened for %s: %d slots x %d rows", sid, session.client, slots, max_rows)
        return session

    def session(self, session_id: str | int) -> ShmSession | None:
        try:
            return self._sessions.get(int(session_id))
        except ValueError:
            return None

    def sessions(self) -> list[ShmSession]:
        with self._lock:
            return list(self._sessions.values())

    def close_session(self, session_id: str | int) -> None:
        with self._lock:
            try:
                session = self._sessions.pop(int(session_id), None)
            except ValueError:
                session = None
        if session is not None:
            session.close()

    def health(self) -> str:
        sessions = self.sessions()
        stats = [s.stats() for s in sessions]
        return _lines([
            ("status", "closing" if self._stop.is_set() else "serving"),
            ("pid", os.getpid()),
            ("uptime_s", f"{(time.monotonic_ns() - self.started_ns) / 1e9:.1f}"),
            ("models", len(self.engine)),
            ("sessions", len(sessions)),
            ("scored", sum(s.scored for s in stats)),
            ("failed", sum(s.failed for s in stats)),
            ("expired", sum(s.expired for s in stats)),
        ])  # fmt: skip

    def _beat(self) -> None:
        interval = self.options.heartbeat_ms / 1000.0
        while not self._stop.wait(interval):
            now = time.monotonic_ns()
            for session in self.sessions():
                if session.expired(now) or session.closed.is_set() or session.ring.state != SERVING:
                    log.info("closing session %d of %s (lease ran out or a worker failed)", session.id, session.client)
                    self.close_session(session.id)
                else:
                    session.ring.set_heartbeat(now)

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Idempotent; see the class doc."""
        from py4j.clientserver import SHUTDOWN_FINALIZER_WORKER

        self._stop.set()
        for session in self.sessions():
            self.close_session(session.id)
        if self._heartbeat.is_alive():
            self._heartbeat.join()
        if self._py4j is not None:
            py4j, self._py4j = self._py4j, None
            # Not py4j.shutdown(): that would try to tell a Java gateway, and there is none.
            py4j.shutdown_callback_server()
            py4j._gateway_client.finalizer_deque.appendleft(SHUTDOWN_FINALIZER_WORKER)

    def __enter__(self) -> Py4jServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def client_classpath() -> list[str]:
    """A client JVM's classpath: the Java API, the Py4J client module and the Py4J jar (``mvn install`` output)."""
    client = ROOT / "jvm_bridge" / "py4j-client" / "target"
    entries = [ROOT / "jvm_bridge" / "target" / "classes", client / "classes", *sorted((client / "lib").glob("*.jar"))]
    missing = [p for p in entries[:2] if not p.is_dir()]
    if missing or len(entries) < 3:
        raise FileNotFoundError(f"build the Java modules first ('make setup' or 'mvn install'): {missing or 'no lib/'}")
    return [str(p) for p in entries]


def serve(
    source: ModelSource | str | Path, options: Py4jServerOptions | None = None, metrics_port: int | None = None
) -> int:
    """Serves ``source``'s models (a model directory, or a :class:`gateway.sources.ModelSource`: the artifact store,
    a cluster replica) until SIGTERM or SIGINT, then closes cleanly. Prints one line once listening. With
    ``metrics_port``, also Prometheus ``/metrics`` on the same host at that port (0: a free one)."""
    from gateway.monitoring.endpoint import metrics_endpoint

    source = source if isinstance(source, ModelSource) else ModelSource(models=Path(source))
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with (
            open_engine(source) as engine,
            Py4jServer(engine, options) as server,
            metrics_endpoint(engine, server.options.host, metrics_port) as metrics,
        ):
            freeze_startup_heap()
            print(
                f"scoregate py4j gateway listening on {server.options.host}:{server.port} "
                f"({len(engine)} models, {source.describe()}, pid {os.getpid()})"
                + (f"; metrics on {metrics.url}" if metrics is not None else ""),
                flush=True,
            )
            stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``serve-py4j`` options (``python -m gateway serve-py4j`` and ``python -m jvm_bridge.py4j_server``)."""
    d = Py4jServerOptions()
    add_source_arguments(parser, None)
    parser.add_argument("--host", default=d.host, help="listen address (default %(default)s)")
    parser.add_argument("--port", type=int, default=d.port, help="Py4J port; 0 picks a free one (default %(default)s)")
    parser.add_argument("--workers", type=int, default=d.workers, help="scoring threads per client (%(default)s)")
    parser.add_argument("--spin-us", type=float, default=d.spin_us, help="idle spin before sleeping (%(default)s)")
    add_metrics_port_argument(parser)


def options_from(args: argparse.Namespace) -> Py4jServerOptions:
    return Py4jServerOptions(host=args.host, port=args.port, workers=args.workers, spin_us=args.spin_us)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jvm_bridge.py4j_server",
        description="Serve models to ad-server JVMs out of process: Py4J for control, shared memory for tensors.",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with contextlib.suppress(BrokenPipeError):
        try:
            source = source_from(args)
        except ValueError as exc:
            parser.error(str(exc))
        return serve(source, options_from(args), metrics_port=args.metrics_port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
