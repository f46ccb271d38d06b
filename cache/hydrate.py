"""Hydration: one request's features from the cluster straight into the model's input buffer.

For one request (one user, N candidate ads, request-time context features) :meth:`Hydrator.hydrate`
issues every read at once (``get`` for the user, ``get_all`` for the ads), waits for all of them
until the request's deadline, decodes each group's values with one ``frombuffer``
(:func:`cache.codec.decode_many`) and copies them into ``out`` with one fancy-indexed assignment
per group: no per-feature Python objects anywhere.

Fallbacks, each counted in the :class:`Hydration` report and never an exception:

* an entity with no stored value: the group's defaults (``missing``);
* a value older than the group's freshness SLO: served, flagged (``stale``);
* the deadline passes (slow or dead cluster): every row not yet read gets defaults
  (``timed_out``), and the call returns in time.

The Hazelcast Python client's near cache breaks ``get_all`` (hazelcast-python-client#701), so the
client used here must not configure a near cache on these maps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from cache.client import require_long_keys
from cache.codec import decode_many
from cache.registry import FeatureRegistry

__all__ = ["Hydration", "Hydrator"]


@dataclass
class Hydration:
    """What one :meth:`Hydrator.hydrate` call served. ``missing`` and ``stale`` count entities per group."""

    rows: int
    missing: dict[str, int] = field(default_factory=dict)
    stale: dict[str, int] = field(default_factory=dict)
    timed_out: bool = False
    #: A read failed (member gone, client offline); its rows were served as defaults and counted missing.
    failed: bool = False
    elapsed_s: float = 0.0

    @property
    def degraded(self) -> bool:
        return self.timed_out or self.failed or any(self.missing.values()) or any(self.stale.values())


class Hydrator:
    """Assembles one model's ``[N, F]`` input from the cluster. Thread-safe (holds no per-call state)."""

    def __init__(
        self,
        client: Any,
        registry: FeatureRegistry,
        feature_names: Sequence[str],
        *,
        clock: Callable[[], float] = time.time,
        max_rows: int = 10_000,
    ) -> None:
        require_long_keys(client)
        if max_rows <= 0:
            raise ValueError(f"max_rows must be > 0, got {max_rows}")
        self._max_rows = max_rows
        self._registry = registry
        self._plan = registry.resolve(feature_names)
        self._features = len(feature_names)
        self._clock = clock
        self._maps = {g: client.get_map(registry.group(g).map_name) for g in self._plan}

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(self._plan)

    def hydrate(
        self,
        *,
        entities: Mapping[str, int],
        ads: npt.ArrayLike,
        out: npt.NDArray[np.float32],
        inline: Mapping[str, npt.NDArray[np.float32]] | None = None,
        timeout_s: float = 0.010,
        present_out: npt.NDArray[np.bool_] | None = None,
    ) -> Hydration:
        """Fill ``out`` (``[len(ads), F]`` float32, C-contiguous) for one request.

        ``entities`` maps an entity kind (``user``, ``context``, ...) to this request's id of it;
        groups keyed by ``ad`` read one row per candidate in ``ads``. ``inline`` supplies
        request-time groups by name (e.g. ``context_profile`` computed from the request) instead of
        reading them. ``timeout_s`` bounds the wait for the cluster. More than ``max_rows``
        candidates is an error (``ValueError``), not a slow request. ``present_out`` (``[N, G]``
        bool, groups in :attr:`groups` order), when given, receives per row and group whether a
        stored value was served (inline groups: True), for :class:`cache.servelog.ServedFeatureLog`.
        """
        start = time.perf_counter()
        ad_ids = np.asarray(ads, dtype=np.int64)
        n = int(ad_ids.shape[0])
        if n > self._max_rows:
            raise ValueError(f"{n} candidates: at most {self._max_rows} per request (max_rows)")
        if out.shape != (n, self._features) or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError(f"out must be C-contiguous float32 [{n}, {self._features}], got {out.dtype} {out.shape}")
        if present_out is not None and present_out.shape != (n, len(self._plan)):
            raise ValueError(f"present_out must be [{n}, {len(self._plan)}], got {present_out.shape}")
        inline = inline or {}
        report = Hydration(rows=n)
        pending: dict[str, Any] = {}
        ad_keys = [int(k) for k in ad_ids]
        for g, proxy in self._maps.items():
            if g in inline:
                continue
            entity = self._registry.group(g).entity
            if entity == "ad":
                pending[g] = proxy.get_all(ad_keys) if n else None
            elif entity in entities:
                pending[g] = proxy.get(int(entities[entity]))
            else:
                raise ValueError(f"group {g!r} is keyed by {entity!r}, which this request does not name")
        done = _wait_all([f for f in pending.values() if f is not None], timeout_s)
        report.timed_out = not done
        now_ms = int(self._clock() * 1000)
        for gi, (g, (src, dst)) in enumerate(self._plan.items()):
            group = self._registry.group(g)
            if present_out is not None:
                present_out[:, gi] = True
            if g in inline:
                vec = np.asarray(inline[g], dtype=np.float32)
                if vec.shape != (group.width,):
                    raise ValueError(f"inline group {g!r}: expected {group.width} values, got {vec.shape}")
                out[:, dst] = vec[src]
                continue
            future = pending[g]
            values: list[bytes | bytearray | None]
            report.failed = report.failed or _failed(future)
            if group.entity == "ad":
                got = _result(future) if future is not None else {}
                values = [got.get(k) for k in ad_keys] if got is not None else [None] * n
            else:
                values = [_result(future)]
            matrix, event_ms, present = decode_many(group, values)
            stale = present & (now_ms - event_ms > group.freshness_slo_s * 1000)
            report.missing[g] = int((~present).sum())
            report.stale[g] = int(stale.sum())
            if present_out is not None:
                present_out[:, gi] = present
            if group.entity == "ad":
                out[:, dst] = matrix[:, src]
            else:
                out[:, dst] = matrix[0, src]
        report.elapsed_s = time.perf_counter() - start
        return report


def _wait_all(futures: Sequence[Any], timeout_s: float) -> bool:
    """Wait for every future until the deadline; True when all are done."""
    if not futures:
        return True
    remaining = [len(futures)]
    lock = threading.Lock()
    event = threading.Event()

    def one_done(_: Any) -> None:
        with lock:
            remaining[0] -= 1
            if remaining[0] == 0:
                event.set()

    for f in futures:
        f.add_done_callback(one_done)
    return event.wait(max(0.0, timeout_s))


def _result(future: Any) -> Any:
    """The future's value when it finished successfully in time, else None (served as defaults)."""
    if future is None or not future.done():
        return None
    try:
        return future.result()
    except Exception:  # a failed read (member gone) is served as defaults, counted as missing
        return None


def _failed(future: Any) -> bool:
    """Whether the future finished with an error (not merely late)."""
    return future is not None and future.done() and future.exception() is not None
