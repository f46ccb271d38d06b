"""The shared-memory slot ring of the out-of-process transport: layout, files, views and fences.

One ring per client session: a file under ``/dev/shm`` that the Python gateway creates and maps
with :mod:`mmap`, and the client JVM maps as a ``MappedByteBuffer``
(``dev.scoregate.bridge.shm.RingLayout`` is the Java twin of this module; change both together).
Tensors travel only through it; Py4J carries control. One FIFO per worker ("doorbell") lets a
client wake a worker that went to sleep; nothing else crosses a socket per request.

Layout (all integers native-endian, every 8-byte field 8-byte aligned)::

    header, 4096 bytes
      0  int64  magic "SCRGSHM1"           32  int64  slot stride (bytes, multiple of 64)
      8  int32  layout version (2)         40  int64  offset of slot 0 (= 4096)
     12  int32  slots                      48  int32  features offset inside a slot
     16  int32  workers                    52  int32  scores offset inside a slot
     20  int32  max rows per slot          56  int32  message bytes per slot
     24  int32  max features per row       64  int64  heartbeat: gateway clock, ns   (Python)
     28  int32  max outputs per row       128  int64  state: 1 serving, 2 closed    (Python)
                                          192 + 64 w  int64  sleep word of worker w (Python)
    slot i at 4096 + i * stride
      0  int64  request seq      (Java, written last)     64  int64  response seq (Python, written last)
      8  int32  model index      (Java)                   72  int32  outcome: 1 scored, 2 failed
     12  int32  rows             (Java)                   76  int32  error code (jvm_bridge.inprocess codes)
     16  int32  features per row (Java)                   80  int32  message length (UTF-8 bytes)
     20  int32  outputs per row  (Java)                  128  bytes  message
     24  int64  deadline, gateway clock ns (Java)             88  int64  answered at, gateway clock ns (Python)
     32  int32  routing bucket, -1: no key (Java)
     40  int64  pinned version, as its number; -1: none (Java)
                                                              96  int64  version that scored, as its number; -1:
                                                                         not a number (Python)
   1024  float32 features, rows x features, row-major; then float32 scores at the scores offset

Slot ``i`` is served by worker ``i % workers``. Each word has **one writer**: the Java request
thread that owns the slot writes the request line, the worker writes the response line, so
neither side needs an atomic read-modify-write on shared memory (which Python cannot do).

Protocol for one request (seq ``s`` = the slot's previous request seq + 1):

1. Java writes features and the request fields, then stores ``request seq = s`` with release
   semantics (``VarHandle.setRelease``).
2. The worker sees ``request seq != last seq it served``, reads the fields and features, scores
   with ``Engine.score(name, x, out)`` on numpy views of the slot, writes the outcome, code,
   message and its clock ("answered at"; the client learns each model's service time from it),
   then stores ``response seq = s``.
3. Java sees ``response seq == s`` (``getAcquire``) and reads scores or the error.

Memory ordering. On x86-64 (TSO) stores become visible in program order and loads are not
reordered with older loads, so a plain load that sees the seq word also sees every byte written
before it: the only requirement is that the compilers keep program order. Java gets that from
release/acquire; in Python every step is a separate call into C (numpy item access, ONNX Runtime)
that no compiler reorders across. The payload writes are ordinary write-back stores (HotSpot's
``copyMemory``; ONNX Runtime's and numpy's stores into small outputs; glibc fences its own
non-temporal ``memcpy`` stores with ``sfence``). Aligned 8-byte loads and stores are single-copy
atomic, so a seq word is never seen torn. Weakly ordered CPUs (aarch64) would need a load-acquire
after reading a seq word and a store-release before writing one, which CPython cannot express
cheaply, so :func:`check_platform` refuses them.

Sleeping needs one full fence on each side (the store-load case TSO does reorder). Before a worker
blocks on its doorbell it stores an odd sleep word, runs :func:`full_fence` and scans the request
seqs once more; Java stores the request seq, runs ``VarHandle.fullFence()`` and then reads the
sleep word, ringing the doorbell when it is odd (once per odd value). At least one side sees the
other's store (Dekker), so a request is never left asleep; an extra ring only costs a spurious
wake-up. Workers also wake every ``idle_wake`` seconds as a backstop.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import platform
import stat
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CLOSED",
    "FAILED",
    "MAX_WORKERS",
    "SCORED",
    "SERVING",
    "RingLayout",
    "SharedRing",
    "check_platform",
    "full_fence",
    "remove_stale_files",
]

MAGIC = int.from_bytes(b"SCRGSHM1", "little")
VERSION = 2
HEADER_BYTES = 4096
ALIGN = 64
MAX_WORKERS = 32

# Header offsets.
H_MAGIC, H_VERSION, H_SLOTS, H_WORKERS, H_MAX_ROWS, H_MAX_FEATURES, H_MAX_WIDTH = 0, 8, 12, 16, 20, 24, 28
H_SLOT_STRIDE, H_SLOTS_OFFSET, H_FEATURES_OFFSET, H_SCORES_OFFSET, H_MESSAGE_BYTES = 32, 40, 48, 52, 56
H_HEARTBEAT, H_STATE, H_SLEEP = 64, 128, 192

# Slot offsets.
S_REQ_SEQ, S_MODEL, S_ROWS, S_FEATURES, S_WIDTH, S_DEADLINE, S_BUCKET, S_PINNED = 0, 8, 12, 16, 20, 24, 32, 40
S_RESP_SEQ, S_OUTCOME, S_CODE, S_MESSAGE_LENGTH, S_ANSWERED, S_SERVED, S_MESSAGE = 64, 72, 76, 80, 88, 96, 128
SLOT_HEADER_BYTES = 1024
MESSAGE_BYTES = SLOT_HEADER_BYTES - S_MESSAGE

#: Header state word.
SERVING, CLOSED = 1, 2
#: Slot outcome word.
SCORED, FAILED = 1, 2

#: Every ring and doorbell file starts with this, then ``<gateway pid>-``.
FILE_PREFIX = "scoregate-"

_FENCE = threading.Lock()


def full_fence() -> None:
    """A full memory barrier (store-load included) between the caller's previous and next accesses.

    CPython has no fence primitive. An uncontended ``threading.Lock`` acquire and release run
    ``sem_trywait`` and ``sem_post`` (CPython on Linux builds locks on POSIX semaphores), whose
    glibc implementations are ``lock cmpxchg`` / ``lock xadd``: locked instructions, each a full
    barrier on x86-64. Costs ~0.1 µs; used once per sleep, never per request.
    """
    _FENCE.acquire()
    _FENCE.release()


def check_platform() -> None:
    """Refuse CPUs whose memory model the protocol's ordering argument does not cover (module doc)."""
    machine = platform.machine().lower()
    if machine not in {"x86_64", "amd64"}:
        raise RuntimeError(
            f"the shared-memory transport relies on x86-64 (TSO) store and load ordering; this CPU is {machine!r}"
        )


def _align(n: int, to: int = ALIGN) -> int:
    return (n + to - 1) // to * to


@dataclass(frozen=True)
class RingLayout:
    """The numbers of one ring; everything else is derived from them."""

    slots: int
    workers: int
    max_rows: int
    max_features: int
    max_width: int

    def __post_init__(self) -> None:
        if min(self.slots, self.workers, self.max_rows, self.max_features, self.max_width) <= 0:
            raise ValueError(f"every ring dimension must be > 0: {self}")
        if self.workers > MAX_WORKERS:
            raise ValueError(f"at most {MAX_WORKERS} workers per ring, got {self.workers}")
        if self.size > 2**31 - 1:
            raise ValueError(f"a ring of {self.size} bytes exceeds the 2 GiB a Java MappedByteBuffer maps: {self}")

    @property
    def features_offset(self) -> int:
        return SLOT_HEADER_BYTES

    @property
    def feature_bytes(self) -> int:
        return _align(self.max_rows * self.max_features * 4)

    @property
    def scores_offset(self) -> int:
        return SLOT_HEADER_BYTES + self.feature_bytes

    @property
    def score_bytes(self) -> int:
        return _align(self.max_rows * self.max_width * 4)

    @property
    def stride(self) -> int:
        return _align(self.scores_offset + self.score_bytes)

    @property
    def size(self) -> int:
        return HEADER_BYTES + self.slots * self.stride

    def slot_offset(self, slot: int) -> int:
        return HEADER_BYTES + slot * self.stride


class SharedRing:
    """One ring file plus its doorbells, created, mapped and (on :meth:`close`) removed by the gateway.

    Files are created with ``O_EXCL`` and mode 0600 under ``directory``: ``<name>`` for the ring
    and ``<name>.bell<w>`` (FIFOs) for the doorbells, ``name`` starting with
    ``scoregate-<pid>-`` so that :func:`remove_stale_files` can clean up after a killed gateway.
    The client unlinks nothing; the gateway calls :meth:`unlink` once the client has mapped and
    opened them (``attachSession``), after which the memory lives as long as either mapping.

    Thread-safety: the header writers (heartbeat, state) and each worker's sleep word have one
    writer each; slot views are used by the slot's worker only.
    """

    def __init__(self, directory: str | os.PathLike[str], name: str, layout: RingLayout) -> None:
        self.layout = layout
        self.path = Path(directory) / name
        self.bell_paths = [Path(directory) / f"{name}.bell{w}" for w in range(layout.workers)]
        self._bells: list[int] = []
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, layout.size)
            self._map: mmap.mmap | None = mmap.mmap(fd, layout.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            os.close(fd)
        try:
            for bell in self.bell_paths:
                os.mkfifo(bell, 0o600)
                # O_RDWR keeps the FIFO open for reading with no writer (no EOF) and lets the client's
                # open(O_WRONLY) return at once; non-blocking so that draining never blocks.
                self._bells.append(os.open(bell, os.O_RDWR | os.O_NONBLOCK))
        except BaseException:
            self.close()
            raise
        self.memory = memoryview(self._map)
        self._i64: np.ndarray[Any, Any] = np.ndarray((HEADER_BYTES // 8,), np.int64, self.memory)
        self._write_header()

    def _write_header(self) -> None:
        lay = self.layout
        i32 = np.ndarray((HEADER_BYTES // 4,), np.int32, self.memory)
        h = self._i64
        h[H_MAGIC // 8] = MAGIC
        i32[H_VERSION // 4] = VERSION
        i32[H_SLOTS // 4] = lay.slots
        i32[H_WORKERS // 4] = lay.workers
        i32[H_MAX_ROWS // 4] = lay.max_rows
        i32[H_MAX_FEATURES // 4] = lay.max_features
        i32[H_MAX_WIDTH // 4] = lay.max_width
        h[H_SLOT_STRIDE // 8] = lay.stride
        h[H_SLOTS_OFFSET // 8] = HEADER_BYTES
        i32[H_FEATURES_OFFSET // 4] = lay.features_offset
        i32[H_SCORES_OFFSET // 4] = lay.scores_offset
        i32[H_MESSAGE_BYTES // 4] = MESSAGE_BYTES

    # ------------------------------------------------------------------ header words
    def set_heartbeat(self, clock_ns: int) -> None:
        self._i64[H_HEARTBEAT // 8] = clock_ns

    def set_state(self, state: int) -> None:
        self._i64[H_STATE // 8] = state

    @property
    def state(self) -> int:
        return int(self._i64[H_STATE // 8])

    def sleep_word(self, worker: int) -> np.ndarray[Any, Any]:
        """Worker ``worker``'s sleep word as a one-element int64 view (odd: asleep on its doorbell)."""
        return np.ndarray((1,), np.int64, self.memory, offset=H_SLEEP + ALIGN * worker)

    def bell_fd(self, worker: int) -> int:
        return self._bells[worker]

    # ------------------------------------------------------------------ slot views
    def slots_of(self, worker: int) -> list[int]:
        return list(range(worker, self.layout.slots, self.layout.workers))

    def request_seqs(self, worker: int) -> np.ndarray[Any, Any]:
        """The request seq words of ``worker``'s slots, as one strided int64 view (read-only use)."""
        slots = self.slots_of(worker)
        stride = self.layout.stride * self.layout.workers
        first = self.layout.slot_offset(slots[0]) + S_REQ_SEQ
        return np.ndarray((len(slots),), np.int64, self.memory, offset=first, strides=(stride,))

    def slot_words(self, slot: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """The slot header as (int32 x 32, int64 x 16) views over its first 128 bytes."""
        off = self.layout.slot_offset(slot)
        i32 = np.ndarray((32,), np.int32, self.memory, offset=off)
        return i32, np.ndarray((16,), np.int64, self.memory, offset=off)

    def features(self, slot: int, rows: int, features: int) -> np.ndarray[Any, Any]:
        off = self.layout.slot_offset(slot) + self.layout.features_offset
        return np.ndarray((rows, features), np.float32, self.memory, offset=off)

    def scores(self, slot: int, shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
        off = self.layout.slot_offset(slot) + self.layout.scores_offset
        return np.ndarray(shape, np.float32, self.memory, offset=off)

    def respond(
        self,
        slot: int,
        seq: int,
        outcome: int,
        code: int = 0,
        message: str = "",
        answered_ns: int = 0,
        served: int = -1,
    ) -> None:
        """Writes the response line, the response seq last (the publication; see module doc).

        ``answered_ns`` (gateway clock) lets the client learn how long this model takes, so that it
        parks through most of the wait instead of polling (``SlotRing.await``). ``served``: the
        version that scored, as its number (the result names it), -1 if it is not one.
        """
        i32, i64 = self.slot_words(slot)
        data = message.encode("utf-8")
        if len(data) > MESSAGE_BYTES:
            data = data[: MESSAGE_BYTES - 3].decode("utf-8", "ignore").encode("utf-8") + b"..."
        start = self.layout.slot_offset(slot) + S_MESSAGE
        self.memory[start : start + len(data)] = data
        i32[S_OUTCOME // 4] = outcome
        i32[S_CODE // 4] = code
        i32[S_MESSAGE_LENGTH // 4] = len(data)
        i64[S_ANSWERED // 8] = answered_ns
        i64[S_SERVED // 8] = served
        i64[S_RESP_SEQ // 8] = seq

    # ------------------------------------------------------------------ files
    def unlink(self) -> None:
        """Removes the ring and doorbell names; mappings and open descriptors stay valid. Idempotent."""
        for path in (self.path, *self.bell_paths):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def close(self) -> None:
        """Unlinks, closes the doorbells and unmaps (once no view of the memory is left). Idempotent."""
        self.unlink()
        for fd in self._bells:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._bells = []
        if self._map is not None:
            with contextlib.suppress(BufferError):  # a view still alive: the mapping goes with it
                self.memory.release()
                self._map.close()
            self._map = None


def remove_stale_files(directory: str | os.PathLike[str]) -> list[Path]:
    """Removes ring and doorbell files left by gateways that no longer run (killed before cleanup)."""
    removed: list[Path] = []
    root = Path(directory)
    if not root.is_dir():
        return removed
    for path in root.glob(f"{FILE_PREFIX}*"):
        pid_text = path.name[len(FILE_PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or _alive(int(pid_text)):
            continue
        try:
            mode = path.lstat().st_mode
            if stat.S_ISREG(mode) or stat.S_ISFIFO(mode):
                path.unlink()
                removed.append(path)
        except OSError:
            continue
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
