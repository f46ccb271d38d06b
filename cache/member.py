"""Hazelcast members as child processes: the embedded default, and the members tests start.

A member is the open-source Hazelcast 5.x jar (``build/jars/hazelcast-<version>.jar``, fetched
from Maven Central by ``make setup``) run with ``java``. Every member this module starts:

* binds 127.0.0.1 only (interfaces and public address on loopback, ``hazelcast.socket.bind.any``
  off), so nothing listens beyond the machine;
* joins by TCP-IP on loopback with multicast and auto-detection off, so it finds exactly the
  members it is told about;
* has phone-home off, so no packet leaves the machine.

Production points the gateway at an existing cluster instead (addresses, cluster name).
"""

from __future__ import annotations

import atexit
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "HAZELCAST_VERSION",
    "HazelcastMember",
    "MemberOptions",
    "ephemeral_ports",
    "free_port",
    "hazelcast_jar",
    "start_cluster",
]

HAZELCAST_VERSION = "5.7.0"
ROOT = Path(__file__).resolve().parents[1]
#: Partitions of a feature-cache cluster (Hazelcast's default is 271). A client ``getAll`` sends one
#: operation per partition its keys fall in: 500 candidate ads touch ~230 of 271 partitions but all
#: 31 of 31, and on a 2-member loopback cluster the cold N = 500 hydration went from p50 2.4 / p99
#: 15 ms to p50 1.4 / p99 8 ms (``python -m perf run features --quick``, back to back). A prime,
#: and enough for a few members; an existing cluster sets it in its own member configuration.
FEATURE_PARTITIONS = 31
#: Members started by this process and not yet stopped: killed at exit, so none outlives its starter.
_RUNNING: set[HazelcastMember] = set()


@atexit.register
def _stop_leftovers() -> None:
    for member in list(_RUNNING):
        member.kill()


def hazelcast_jar() -> Path:
    """The member jar ``make setup`` copies out of the Maven repository."""
    jar = ROOT / "build" / "jars" / f"hazelcast-{HAZELCAST_VERSION}.jar"
    if not jar.is_file():
        raise FileNotFoundError(f"{jar} is missing: run 'make setup' (it fetches the member jar through Maven)")
    return jar


def ephemeral_ports() -> range:
    """The ports the kernel hands out to outgoing connections (``ip_local_port_range``)."""
    try:
        low, high = (int(v) for v in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    return range(low, high + 1)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the member binds it a moment later), outside the ephemeral range.

    A member's port must not be one the kernel may give an outgoing connection. Members connect to
    their peers' ports before those listen (at start) and after they die (a killed member): a
    connection to 127.0.0.1:P from the ephemeral port P is a TCP self-connection, which the member
    takes for a peer ("Connecting to self!") and which holds P, so the peer cannot bind it. Seen
    once in twenty starts of a two-member cluster with ports from the ephemeral range.
    """
    ephemeral = ephemeral_ports()
    # Above the well-known and the usual fixed service ports, below the ephemeral range (or above it
    # when the range starts too low to leave room).
    low, high = (10000, ephemeral.start) if ephemeral.start >= 14000 else (ephemeral.stop, 65536)
    if high - low < 4000:  # the range covers nearly every port: nothing better than the kernel's choice
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])
    rng = random.Random()  # seeded from os.urandom: parallel starters do not walk the same sequence
    for _ in range(256):
        port = rng.randrange(low, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError(f"no free TCP port on 127.0.0.1 in [{low}, {high}) after 256 tries")


@dataclass(frozen=True)
class MemberOptions:
    """One member's settings. ``peers`` are the other members' ports on 127.0.0.1."""

    cluster_name: str
    port: int
    peers: Sequence[int] = ()
    heap_mb: int = 256
    #: Extra ``hazelcast.*`` properties (strings), e.g. partition count for tests.
    properties: dict[str, str] = field(default_factory=dict)

    def yaml(self) -> str:
        members = ", ".join(f"127.0.0.1:{p}" for p in sorted({self.port, *self.peers}))
        props = {
            "hazelcast.phone.home.enabled": "false",
            "hazelcast.socket.bind.any": "false",
            "hazelcast.logging.type": "jdk",
            "hazelcast.shutdownhook.policy": "GRACEFUL",
            # Join at once instead of waiting 5 s for more members to appear (tests start members in a row).
            "hazelcast.wait.seconds.before.join": "0",
            "hazelcast.max.wait.seconds.before.join": "0",
            "hazelcast.partition.count": str(FEATURE_PARTITIONS),
            **self.properties,
        }
        prop_lines = "".join(f'    {k}: "{v}"\n' for k, v in props.items())
        return (
            "hazelcast:\n"
            f"  cluster-name: {self.cluster_name}\n"
            "  properties:\n"
            f"{prop_lines}"
            "  network:\n"
            f"    public-address: 127.0.0.1:{self.port}\n"
            "    port:\n"
            "      auto-increment: false\n"
            f"      port: {self.port}\n"
            "    interfaces:\n"
            "      enabled: true\n"
            "      interfaces: [127.0.0.1]\n"
            "    join:\n"
            "      auto-detection:\n"
            "        enabled: false\n"
            "      multicast:\n"
            "        enabled: false\n"
            "      tcp-ip:\n"
            "        enabled: true\n"
            f"        member-list: [{members}]\n"
        )


class HazelcastMember:
    """A Hazelcast member in a child JVM. Use as a context manager, or call :meth:`stop`."""

    def __init__(self, options: MemberOptions, java: str | None = None) -> None:
        self.options = options
        self._java = java or shutil.which("java") or "java"
        self._dir = Path(tempfile.mkdtemp(prefix="scoregate-hz-"))
        self._config = self._dir / "hazelcast.yaml"
        self._config.write_text(options.yaml(), encoding="utf-8")
        self._log = self._dir / "member.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.options.port}"

    def start(self, timeout_s: float = 60.0) -> HazelcastMember:
        """Start the JVM and return once the member accepts connections (or raise with its log)."""
        cmd = [
            self._java,
            f"-Xmx{self.options.heap_mb}m",
            "-XX:+UseSerialGC",
            "-Djava.net.preferIPv4Stack=true",
            f"-Dhazelcast.config={self._config}",
            "-Dhazelcast.phone.home.enabled=false",
            "--add-modules", "java.se",
            "--add-exports", "java.base/jdk.internal.ref=ALL-UNNAMED",
            "--add-opens", "java.base/java.lang=ALL-UNNAMED",
            "--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
            "--add-opens", "java.management/sun.management=ALL-UNNAMED",
            "--add-opens", "jdk.management/com.sun.management.internal=ALL-UNNAMED",
            "-cp", str(hazelcast_jar()),
            "com.hazelcast.core.server.HazelcastMemberStarter",
        ]  # fmt: skip
        with open(self._log, "wb") as log:
            self._proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self._dir)
        _RUNNING.add(self)
        # Its own log, not the port: another process could be answering on that port.
        self.wait_for_log(" is STARTED", timeout_s)
        return self

    def wait_for_log(self, text: str, timeout_s: float) -> None:
        """Wait until the member's log contains ``text``; raise with the log if it exits or time runs out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                raise RuntimeError(f"Hazelcast member exited ({code}):\n{self.log_tail()}")
            if text in self._log.read_text(errors="replace"):
                return
            # A child JVM's log has no event to wait on; poll it.
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(
            f"Hazelcast member on port {self.options.port}: no {text!r} in {timeout_s} s:\n{self.log_tail()}"
        )

    def stop(self, timeout_s: float = 30.0) -> None:
        """Terminate the member (SIGTERM, then SIGKILL) and remove its files."""
        proc, self._proc = self._proc, None
        _RUNNING.discard(self)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout_s)
        shutil.rmtree(self._dir, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL, as a crashed member: no graceful leave."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(30)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> HazelcastMember:
        return self.start() if self._proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_cluster(
    size: int, cluster_name: str | None = None, heap_mb: int = 256, properties: dict[str, str] | None = None
) -> list[HazelcastMember]:
    """Start ``size`` members on loopback that form one cluster (stop them with ``member.stop()``).

    ``properties`` are extra ``hazelcast.*`` member properties, the same on every member (e.g.
    ``hazelcast.partition.count``, which must agree cluster-wide).
    """
    name = cluster_name or f"scoregate-{os.getpid()}-{time.monotonic_ns()}"
    ports = [free_port() for _ in range(size)]
    props = dict(properties or {})
    members = [
        HazelcastMember(MemberOptions(name, p, tuple(q for q in ports if q != p), heap_mb, props)) for p in ports
    ]
    started: list[HazelcastMember] = []
    try:
        for m in members:
            started.append(m.start())
        for m in members:
            m.wait_for_log(f"Members {{size:{size},", 60.0)
    except BaseException:
        for m in started:
            m.stop()
        raise
    return members
