"""Logging served feature vectors to Parquet, sampled, off the hot path.

What the gateway served is the ground truth of online/offline consistency: a model scored
*these* values. :class:`ServedFeatureLog` keeps a sample of them for
:mod:`cache.consistency` to compare with the values the offline builder recomputes.

The hot path pays for one hash of the request id and, for a sampled request only, one copy of
its ``[N, F]`` matrix (the score buffer is reused by the next request) and a non-blocking put
into a bounded queue. A full queue drops the request and counts it (:attr:`LogStats.dropped`):
logging never slows or fails a request. A background thread drains the queue into Parquet
files.

Sampling is by key hash (splitmix64 of the request id and a seed), not random: the same request
id is sampled on every replica and in every rerun, so a log can be joined with other logs of the
same requests.

File layout (``served-<first event ms>-<sequence>.parquet``, written to a temporary name and
renamed, so a reader never sees a partial file), one row per candidate::

    request_id   int64
    event_time   timestamp[ms, UTC]   the request's time (the as-of time offline)
    <kind>_id    int64                one column per entity kind the groups are keyed by (user_id, ad_id, ...)
    features     fixed_size_list<float32>[F]   the served row, in the model's feature order
    present      fixed_size_list<bool>[G]      per group: a stored value was served (all true when not known)
    present_known  bool                        whether the hydrator reported ``present`` for the row

The schema's metadata holds ``feature_names`` and ``groups`` (JSON).

Threads: :meth:`ServedFeatureLog.offer` is thread-safe. With ``flush_interval_s <= 0`` no thread
runs: :meth:`ServedFeatureLog.flush` drains the queue in the caller (for tests).
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cache.registry import FeatureRegistry

__all__ = ["FORMAT", "LogStats", "ServedFeatureLog", "ServedRows", "read_served", "sample_key"]

FORMAT = "scoregate.served-features/1"
_MASK = (1 << 64) - 1


def sample_key(request_id: int, seed: int = 0) -> int:
    """splitmix64 of ``request_id ^ seed``: the 64-bit hash sampling compares with the rate."""
    z = ((request_id ^ seed) + 0x9E3779B97F4A7C15) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return z ^ (z >> 31)


@dataclass
class LogStats:
    """Counters since the log opened."""

    offered: int = 0
    sampled: int = 0
    #: Sampled requests not logged because the queue was full.
    dropped: int = 0
    rows_written: int = 0
    files: int = 0
    #: Writes that failed (disk full, ...): their rows are lost, the error is kept in ``last_error``.
    write_errors: int = 0
    last_error: str = ""


@dataclass(frozen=True)
class _Entry:
    request_id: int
    event_ms: int
    keys: dict[str, int]
    ads: npt.NDArray[np.int64]
    features: npt.NDArray[np.float32]
    present: npt.NDArray[np.bool_] | None


class ServedFeatureLog:
    """A sampled log of one model's served feature rows (see the module docstring)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        registry: FeatureRegistry,
        feature_names: Sequence[str],
        *,
        sample_rate: float = 0.01,
        seed: int = 0,
        queue_requests: int = 256,
        rows_per_file: int = 200_000,
        flush_interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be in [0, 1], got {sample_rate}")
        if queue_requests <= 0 or rows_per_file <= 0:
            raise ValueError("queue_requests and rows_per_file must be > 0")
        self._dir = Path(directory)
        self._dir.mkdir(parents=True, exist_ok=True)
        plan = registry.resolve(feature_names)
        self.feature_names = tuple(feature_names)
        self.groups = tuple(plan)
        self.kinds = tuple(sorted({registry.group(g).entity for g in plan} - {"ad"}))
        # rate 1.0 keeps every hash (< 2**64); rate 0 keeps none
        self._threshold = int(sample_rate * (1 << 64))
        self._seed = seed
        self._queue: queue.Queue[_Entry | threading.Event | None] = queue.Queue(maxsize=queue_requests)
        self._rows_per_file = rows_per_file
        self._interval = flush_interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: list[_Entry] = []
        self._pending_rows = 0
        self._sequence = 0
        self.stats = LogStats()
        self._thread: threading.Thread | None = None
        if flush_interval_s > 0:
            self._thread = threading.Thread(target=self._run, name="served-feature-log", daemon=True)
            self._thread.start()

    @property
    def directory(self) -> Path:
        return self._dir

    def sampled(self, request_id: int) -> bool:
        return sample_key(request_id, self._seed) < self._threshold

    def offer(
        self,
        request_id: int,
        *,
        entities: Mapping[str, int],
        ads: npt.ArrayLike,
        event_ms: int,
        features: npt.NDArray[np.float32],
        present: npt.NDArray[np.bool_] | None = None,
    ) -> bool:
        """Log one request's served rows if its id is sampled; True when queued. Never blocks, never raises on load.

        ``features`` is copied (the caller may reuse its buffer at once); ``present`` is
        ``[N, G]`` in :attr:`groups` order, as :meth:`cache.hydrate.Hydrator.hydrate` fills it.
        """
        with self._lock:
            self.stats.offered += 1
        if not self.sampled(request_id):
            return False
        ad_ids = np.array(ads, dtype=np.int64, copy=True)
        n = int(ad_ids.shape[0])
        if features.shape != (n, len(self.feature_names)):
            raise ValueError(f"features must be [{n}, {len(self.feature_names)}], got {features.shape}")
        if present is not None and present.shape != (n, len(self.groups)):
            raise ValueError(f"present must be [{n}, {len(self.groups)}], got {present.shape}")
        keys = {k: int(entities.get(k, -1)) for k in self.kinds}
        entry = _Entry(
            request_id,
            int(event_ms),
            keys,
            ad_ids,
            np.array(features, dtype=np.float32, copy=True),
            None if present is None else np.array(present, dtype=np.bool_, copy=True),
        )
        with self._lock:
            self.stats.sampled += 1
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            with self._lock:
                self.stats.dropped += 1
            return False
        return True

    def flush(self, timeout_s: float = 30.0) -> None:
        """Write everything offered so far to files; returns when done (or raises ``TimeoutError``)."""
        if self._thread is None:
            self._drain(force=True)
            return
        done = threading.Event()
        self._queue.put(done, timeout=timeout_s)
        if not done.wait(timeout_s):
            raise TimeoutError(f"served-feature log not flushed within {timeout_s} s")

    def close(self, timeout_s: float = 30.0) -> None:
        """Flush and stop the writer thread (idempotent)."""
        if self._thread is None:
            self._drain(force=True)
            return
        self.flush(timeout_s)
        self._queue.put(None, timeout=timeout_s)
        self._thread.join(timeout_s)
        self._thread = None

    def __enter__(self) -> ServedFeatureLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # writer side -------------------------------------------------------------------------------

    def _run(self) -> None:
        last = self._clock()
        while True:
            try:
                item = self._queue.get(timeout=max(0.05, self._interval / 4))
            except queue.Empty:
                item = _TICK
            if item is None:
                self._write()
                return
            if isinstance(item, threading.Event):
                self._write()
                item.set()
                last = self._clock()
                continue
            if item is not _TICK:
                self._add(item)
            if self._pending_rows >= self._rows_per_file or (self._pending and self._clock() - last >= self._interval):
                self._write()
                last = self._clock()

    def _drain(self, force: bool) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Entry):
                self._add(item)
                if self._pending_rows >= self._rows_per_file:
                    self._write()
        if force:
            self._write()

    def _add(self, entry: _Entry) -> None:
        self._pending.append(entry)
        self._pending_rows += int(entry.ads.shape[0])

    def _write(self) -> None:
        entries, self._pending, self._pending_rows = self._pending, [], 0
        if not entries:
            return
        try:
            rows = _table(entries, self.feature_names, self.groups, self.kinds)
            name = f"served-{entries[0].event_ms}-{self._sequence:06d}.parquet"
            self._sequence += 1
            _write_atomic(rows, self._dir / name)
        except Exception as exc:  # the log never takes the gateway down; the loss is counted
            with self._lock:
                self.stats.write_errors += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
            return
        with self._lock:
            self.stats.rows_written += rows.num_rows
            self.stats.files += 1


_TICK = _Entry(-1, 0, {}, np.empty(0, np.int64), np.empty((0, 0), np.float32), None)


def _table(entries: Sequence[_Entry], feature_names: Sequence[str], groups: Sequence[str], kinds: Sequence[str]) -> Any:
    import pyarrow as pa

    counts = np.array([e.ads.shape[0] for e in entries], dtype=np.int64)
    f, g = len(feature_names), len(groups)
    features = np.concatenate([e.features for e in entries]).reshape(-1)
    cols: dict[str, Any] = {
        "request_id": pa.array(np.repeat([e.request_id for e in entries], counts).astype(np.int64)),
        "event_time": pa.array(np.repeat([e.event_ms for e in entries], counts).astype(np.int64)).cast(
            pa.timestamp("ms", "UTC")
        ),
    }
    for kind in kinds:
        cols[f"{kind}_id"] = pa.array(np.repeat([e.keys[kind] for e in entries], counts).astype(np.int64))
    cols["ad_id"] = pa.array(np.concatenate([e.ads for e in entries]))
    cols["features"] = pa.FixedSizeListArray.from_arrays(pa.array(features, type=pa.float32()), f)
    flat = np.concatenate(
        [e.present if e.present is not None else np.ones((e.ads.shape[0], g), np.bool_) for e in entries]
    ).reshape(-1)
    cols["present"] = pa.FixedSizeListArray.from_arrays(pa.array(flat, type=pa.bool_()), g)
    cols["present_known"] = pa.array(np.repeat([e.present is not None for e in entries], counts))
    meta = {"format": FORMAT, "feature_names": json.dumps(list(feature_names)), "groups": json.dumps(list(groups))}
    return pa.table(cols).replace_schema_metadata(meta)


def _write_atomic(table: Any, path: Path) -> None:
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


@dataclass(frozen=True)
class ServedRows:
    """A served-feature log read back: one entry per candidate row."""

    feature_names: tuple[str, ...]
    groups: tuple[str, ...]
    request_id: npt.NDArray[np.int64]
    event_ms: npt.NDArray[np.int64]
    keys: dict[str, npt.NDArray[np.int64]]
    features: npt.NDArray[np.float32]
    #: ``[n, G]``; rows logged without it hold True.
    present: npt.NDArray[np.bool_]
    #: ``[n]``: whether ``present`` was logged for the row.
    present_known: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return int(self.request_id.shape[0])


def read_served(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> ServedRows:
    """Read a log directory (every ``served-*.parquet`` in it) or a list of files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if isinstance(source, (str, os.PathLike)):
        src = Path(source)
        paths: list[Path] = sorted(src.glob("served-*.parquet")) if src.is_dir() else [src]
    else:
        paths = [Path(p) for p in source]
    if not paths:
        raise FileNotFoundError(f"no served-feature log files in {os.fspath(source)}")  # type: ignore[arg-type]
    tables = [pq.read_table(p) for p in paths]
    metas = [t.schema.metadata or {} for t in tables]
    if any(m.get(b"format") != FORMAT.encode() for m in metas):
        raise ValueError(f"{[os.fspath(p) for p in paths]}: not all files are served-feature logs ({FORMAT})")
    names = {m[b"feature_names"] for m in metas}
    groups = {m[b"groups"] for m in metas}
    if len(names) != 1 or len(groups) != 1:
        raise ValueError("the log files hold different feature lists: read one model's log at a time")
    table = pa.concat_tables(tables)
    feature_names = tuple(json.loads(names.pop()))
    group_names = tuple(json.loads(groups.pop()))
    n = table.num_rows
    features = table.column("features").combine_chunks()
    present = table.column("present").combine_chunks()
    flat_present = present.flatten().to_numpy(zero_copy_only=False).reshape(n, len(group_names))
    known = table.column("present_known").to_numpy()
    kinds = [c[:-3] for c in table.column_names if c.endswith("_id") and c != "request_id"]
    return ServedRows(
        feature_names=feature_names,
        groups=group_names,
        request_id=table.column("request_id").to_numpy(),
        event_ms=table.column("event_time").cast(pa.int64()).to_numpy(),
        keys={k: table.column(f"{k}_id").to_numpy() for k in kinds},
        features=features.flatten().to_numpy().reshape(n, len(feature_names)),
        present=flat_present.astype(np.bool_),
        present_known=known,
    )
