"""``LatencyRecorder``: latencies per (model, version, stage) as HdrHistograms and as Prometheus buckets.

The HdrHistogram (1 ns to 10 min, 3 significant digits) gives exact percentiles for reports; the fixed
Prometheus buckets (seconds) feed the ``/metrics`` histogram. Both are filled by the monitor's worker from the
latencies the request path staged (:mod:`gateway.monitoring.observer`), one ``searchsorted`` + ``bincount`` for
the buckets. Thread-safe: readers (a Prometheus scrape, a report) and the worker take one lock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from hdrh.histogram import HdrHistogram

__all__ = ["DEFAULT_BUCKETS_S", "LatencyRecorder", "SeriesKey", "new_histogram", "record_many"]

DEFAULT_BUCKETS_S = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0,
)  # fmt: skip
PERCENTILES = (50.0, 90.0, 99.0, 99.9)


@dataclass(frozen=True)
class SeriesKey:
    """A metric series' identity: model, version, pipeline stage."""

    model: str
    version: str
    stage: str


def new_histogram() -> HdrHistogram:
    return HdrHistogram(1, 600 * 1_000_000_000, 3)


def record_many(h: HdrHistogram, values: npt.NDArray[np.int64]) -> None:
    """``h.record_value(v)`` for every value (clipped to the histogram's range), vectorised.

    ``record_value`` is pure Python (~3 µs a value); this computes the same counts indexes with numpy
    (``_counts_index_for``: bucket from the value's bit length, sub-bucket by shifting) and adds them into the
    histogram's counts array in place. Falls back to the loop when the counts are not 64-bit words.
    """
    v = np.clip(values, max(int(h.lowest_trackable_value), 1), int(h.highest_trackable_value)).astype(np.int64)
    if v.shape[0] == 0:
        return
    if getattr(h, "word_size", 0) != 8:  # pragma: no cover - hdrh always allocates 64-bit counts for this range
        for x in v.tolist():
            h.record_value(x)
        return
    bit_length = np.frexp((v | int(h.sub_bucket_mask)).astype(np.float64))[1].astype(np.int64)
    bucket = bit_length - int(h.unit_magnitude) - (int(h.sub_bucket_half_count_magnitude) + 1)
    sub = v >> (bucket + int(h.unit_magnitude))
    idx = ((bucket + 1) << int(h.sub_bucket_half_count_magnitude)) + sub - int(h.sub_bucket_half_count)
    counts = np.frombuffer(h.counts, dtype=np.uint64)
    np.add.at(counts, idx, np.uint64(1))
    h.total_count += int(v.shape[0])
    h.min_value = min(h.min_value, int(v.min()))
    h.max_value = max(h.max_value, int(v.max()))


class _Series:
    __slots__ = ("buckets", "count", "hdr", "sum_s")

    def __init__(self, n_buckets: int) -> None:
        self.hdr = new_histogram()
        self.buckets = np.zeros(n_buckets + 1, dtype=np.int64)
        self.count = 0
        self.sum_s = 0.0


class LatencyRecorder:
    def __init__(self, buckets_s: tuple[float, ...] = DEFAULT_BUCKETS_S) -> None:
        self.buckets_s = buckets_s
        self._bounds_ns = np.array([b * 1e9 for b in buckets_s], dtype=np.float64)
        self._series: dict[SeriesKey, _Series] = {}
        self._lock = threading.Lock()

    def record(self, key: SeriesKey, latencies_ns: npt.NDArray[np.int64]) -> None:
        """Add a batch of latencies (nanoseconds, > 0)."""
        if latencies_ns.shape[0] == 0:
            return
        with self._lock:
            s = self._series.get(key)
            if s is None:
                s = self._series[key] = _Series(len(self.buckets_s))
            # ``le`` buckets: a latency equal to a bound belongs to that bound's bucket.
            s.buckets += np.bincount(
                np.searchsorted(self._bounds_ns, latencies_ns, side="left"), minlength=s.buckets.shape[0]
            )
            s.count += int(latencies_ns.shape[0])
            s.sum_s += float(latencies_ns.sum()) / 1e9
            record_many(s.hdr, latencies_ns)

    def forget(self, model: str, version: str) -> int:
        """Remove the series of ``model`` at ``version`` (every stage); returns how many."""
        with self._lock:
            keys = [k for k in self._series if k.model == model and k.version == version]
            for key in keys:
                del self._series[key]
        return len(keys)

    def series(self) -> list[SeriesKey]:
        with self._lock:
            return sorted(self._series, key=lambda k: (k.model, k.version, k.stage))

    def prometheus(self, key: SeriesKey) -> tuple[list[tuple[str, float]], float]:
        """Cumulative ``(le, count)`` buckets ending with ``+Inf``, and the sum in seconds."""
        with self._lock:
            s = self._series[key]
            cumulative = np.cumsum(s.buckets)
            labels = [repr(b) for b in self.buckets_s] + ["+Inf"]
            return [(le, float(c)) for le, c in zip(labels, cumulative, strict=True)], s.sum_s

    def percentiles_us(self, key: SeriesKey, percentiles: tuple[float, ...] = PERCENTILES) -> dict[str, float]:
        with self._lock:
            h = self._series[key].hdr
            out = {f"p{p:g}": h.get_value_at_percentile(p) / 1e3 for p in percentiles}
            out["max"] = h.get_max_value() / 1e3
            out["count"] = float(h.get_total_count())
            return out

    def encoded(self, key: SeriesKey) -> str:
        """The HdrHistogram in its standard compressed encoding (base64 text), for snapshots and plots."""
        with self._lock:
            raw: bytes = self._series[key].hdr.encode()
        return raw.decode("ascii")
