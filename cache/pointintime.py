"""Point-in-time-correct training sets: each row's feature values as of that row's time.

A model trained on today's feature values for last week's impressions learns from the future
(label leakage) and then meets, online, values it never saw in training. The offline side must
therefore read, for every impression, the value the cache *would have served at that instant*:
the latest value with ``event time <= impression time`` of that entity, the same rule the
streaming path enforces online (:meth:`cache.store.FeatureWriter.update`: an older event never
overwrites a newer value).

* :class:`FeatureHistory` holds every value one group's entities ever had, from the tables the
  marketplace writes (snapshots) and the log of the streaming updates, sorted by
  ``(entity id, event time)``. Among rows with the same id and event time the first one given
  wins, like online, where an event no newer than the stored value is dropped.
* :func:`as_of_index` is the as-of join, vectorized: one ``lexsort`` of history and queries
  together and one running maximum, no per-row Python.
* :func:`build_training_set` assembles the ``[n, F]`` float32 matrix of a model's features for
  ``n`` rows (entity ids and times per row), using the same :class:`~cache.registry.FeatureRegistry`
  as online hydration: same groups, same columns, same defaults where no value existed yet.
* :func:`training_set_from_impressions` does that for the marketplace's ``impressions.parquet``.

Not modelled: entry TTL (``FeatureGroup.ttl_s``) is not applied offline; the marketplace's
groups have none.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from cache.codec import CodecError
from cache.registry import FeatureGroup, FeatureRegistry

__all__ = [
    "FeatureHistory",
    "OfflineFeatures",
    "as_of_index",
    "build_training_set",
    "training_set_from_impressions",
]

I64 = npt.NDArray[np.int64]


def as_of_index(hist_ids: I64, hist_ms: I64, query_ids: I64, query_ms: I64) -> npt.NDArray[np.intp]:
    """For each query, the index of the history row with the same id and the latest time ``<=`` its time, or -1.

    ``hist_*`` need not be sorted. A history row at exactly the query's time counts (as of ``t``
    includes ``t``); among history rows with equal id and time the last in sorted order is
    returned, so callers deduplicate first (:class:`FeatureHistory` does).
    """
    n_h, n_q = int(hist_ids.shape[0]), int(query_ids.shape[0])
    out = np.full(n_q, -1, dtype=np.intp)
    if n_h == 0 or n_q == 0:
        return out
    ids = np.concatenate([hist_ids, query_ids]).astype(np.int64, copy=False)
    ms = np.concatenate([hist_ms, query_ms]).astype(np.int64, copy=False)
    # at equal (id, time) history sorts before the query, so "<=" holds
    kind = np.concatenate([np.zeros(n_h, dtype=np.int8), np.ones(n_q, dtype=np.int8)])
    order = np.lexsort((kind, ms, ids))
    is_hist = order < n_h
    marker = np.where(is_hist, np.arange(order.shape[0]), -1)
    last = np.maximum.accumulate(marker)  # sorted position of the latest history row at or before each position
    q_pos = np.flatnonzero(~is_hist)
    q_idx = order[q_pos] - n_h
    found = last[q_pos]
    h_idx = np.where(found >= 0, order[np.maximum(found, 0)], -1)
    same = (h_idx >= 0) & (ids[np.maximum(h_idx, 0)] == ids[order[q_pos]])
    out[q_idx] = np.where(same, h_idx, -1)
    return out


@dataclass(frozen=True)
class FeatureHistory:
    """Every stored value of one group: ``ids[i]`` had ``values[i]`` from ``event_ms[i]`` on. Sorted, deduplicated."""

    group: FeatureGroup
    ids: I64
    event_ms: I64
    values: npt.NDArray[np.float32]

    @classmethod
    def from_arrays(
        cls, group: FeatureGroup, ids: npt.ArrayLike, event_ms: npt.ArrayLike, values: npt.ArrayLike
    ) -> FeatureHistory:
        """Rows in any order; on equal ``(id, event time)`` the first row given wins."""
        keys = np.asarray(ids, dtype=np.int64)
        times = np.broadcast_to(np.asarray(event_ms, dtype=np.int64), keys.shape)
        vals = np.asarray(values, dtype=np.float32)
        if vals.shape != (keys.shape[0], group.width):
            raise CodecError(f"group {group.name!r}: history values must be [{keys.shape[0]}, {group.width}]")
        order = np.lexsort((times, keys))  # stable: the first of equal (id, time) stays first
        keys, times, vals = keys[order], times[order], vals[order]
        keep = np.ones(keys.shape[0], dtype=np.bool_)
        keep[1:] = (keys[1:] != keys[:-1]) | (times[1:] != times[:-1])
        return cls(group, keys[keep], np.ascontiguousarray(times[keep]), np.ascontiguousarray(vals[keep]))

    @classmethod
    def from_parquet(
        cls,
        group: FeatureGroup,
        paths: Sequence[str | os.PathLike[str]],
        *,
        id_column: str | None = None,
        event_time_column: str = "event_time",
        nan: Literal["reject", "default"] = "reject",
    ) -> FeatureHistory:
        """Read ``paths`` (snapshot tables, then update logs: on ties the earlier file wins) with the loader's columns.

        Columns and NaN policy are those of :func:`cache.ingest.load_parquet`, so that the offline
        values are what the batch load put online.
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        id_col = id_column or f"{group.entity}_id"
        names = list(group.qualified())
        ids, times, blocks = [], [], []
        for path in paths:
            table = pq.read_table(path, columns=[id_col, event_time_column, *names])
            ids.append(table.column(id_col).to_numpy().astype(np.int64))
            times.append(table.column(event_time_column).cast(pa.timestamp("ms", "UTC")).cast(pa.int64()).to_numpy())
            block = np.empty((table.num_rows, group.width), dtype=np.float32)
            for j, name in enumerate(names):
                block[:, j] = table.column(name).to_numpy()
            bad = ~np.isfinite(block)
            if bad.any():
                if nan == "reject":
                    raise CodecError(
                        f"{os.fspath(path)}: NaN or inf in group {group.name!r} (nan='default' serves defaults)"
                    )
                block = np.where(bad, group.defaults, block).astype(np.float32)
            blocks.append(block)
        if not blocks:
            return cls.from_arrays(group, np.empty(0, np.int64), np.empty(0, np.int64), np.empty((0, group.width)))
        return cls.from_arrays(group, np.concatenate(ids), np.concatenate(times), np.concatenate(blocks))

    def as_of(self, ids: npt.ArrayLike, at_ms: npt.ArrayLike) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.bool_]]:
        """``(values [q, width], present [q])`` as of ``at_ms``; rows with no value yet hold the defaults."""
        q_ids = np.asarray(ids, dtype=np.int64)
        q_ms = np.broadcast_to(np.asarray(at_ms, dtype=np.int64), q_ids.shape)
        idx = as_of_index(self.ids, self.event_ms, q_ids, np.ascontiguousarray(q_ms))
        present = idx >= 0
        values = np.empty((q_ids.shape[0], self.group.width), dtype=np.float32)
        values[present] = self.values[idx[present]]
        values[~present] = self.group.defaults
        return values, present


@dataclass(frozen=True)
class OfflineFeatures:
    """A training set's features: ``matrix [n, F]`` and, per group (in ``groups`` order), which rows had a value."""

    feature_names: tuple[str, ...]
    groups: tuple[str, ...]
    matrix: npt.NDArray[np.float32]
    present: npt.NDArray[np.bool_]


def build_training_set(
    registry: FeatureRegistry,
    feature_names: Sequence[str],
    keys: Mapping[str, npt.ArrayLike],
    at_ms: npt.ArrayLike,
    histories: Mapping[str, FeatureHistory],
    *,
    inline: Mapping[str, npt.ArrayLike] | None = None,
) -> OfflineFeatures:
    """Features of ``feature_names`` for ``n`` rows: row ``i`` reads entity ``keys[kind][i]`` as of ``at_ms[i]``.

    Groups come in the order :meth:`FeatureRegistry.resolve` gives, the order online hydration
    uses. ``inline`` gives a request-time group's ``[n, width]`` values directly (e.g. the context
    features the impressions log recorded); a group neither in ``histories`` nor in ``inline`` is
    an error (:class:`~cache.registry.UnknownFeatureGroupError` for a name the registry lacks).
    """
    plan = registry.resolve(feature_names)
    times = np.asarray(at_ms, dtype=np.int64)
    n = int(times.shape[0])
    matrix = np.empty((n, len(feature_names)), dtype=np.float32)
    present = np.ones((n, len(plan)), dtype=np.bool_)
    inline = inline or {}
    for gi, (g, (src, dst)) in enumerate(plan.items()):
        group = registry.group(g)
        if g in inline:
            block = np.asarray(inline[g], dtype=np.float32)
            if block.shape != (n, group.width):
                raise CodecError(f"inline group {g!r}: expected [{n}, {group.width}], got {block.shape}")
            matrix[:, dst] = block[:, src]
            continue
        if g not in histories:
            raise ValueError(f"group {g!r}: no history and no inline values to build it from")
        if group.entity not in keys:
            raise ValueError(f"group {g!r} is keyed by {group.entity!r}, which the rows do not name")
        values, found = histories[g].as_of(np.asarray(keys[group.entity], dtype=np.int64), times)
        matrix[:, dst] = values[:, src]
        present[:, gi] = found
    return OfflineFeatures(tuple(feature_names), tuple(plan), matrix, present)


def training_set_from_impressions(
    registry: FeatureRegistry,
    feature_names: Sequence[str],
    impressions: str | os.PathLike[str],
    histories: Mapping[str, FeatureHistory],
    *,
    columns: Sequence[str] = ("impression_id", "click", "completion", "conversion", "unsafe", "is_holdout"),
) -> tuple[Any, OfflineFeatures]:
    """The training set of the marketplace's ``impressions.parquet``: ``(pyarrow table, features)``.

    The table holds ``columns`` of the impressions (ids, labels) plus one float32 column per
    feature, in ``feature_names`` order. Users and ads are read as of each impression's
    ``event_time``; a group with no history is taken inline from the impressions' own columns
    (the context features as logged at request time).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(impressions)
    at_ms = table.column("event_time").cast(pa.timestamp("ms", "UTC")).cast(pa.int64()).to_numpy()
    keys = {"user": table.column("user_id").to_numpy(), "ad": table.column("ad_id").to_numpy()}
    if "placement_id" in table.column_names:
        keys["context"] = table.column("placement_id").to_numpy()
    inline: dict[str, npt.NDArray[np.float32]] = {}
    for g in registry.resolve(feature_names):
        if g not in histories:
            group = registry.group(g)
            inline[g] = np.column_stack([table.column(c).to_numpy() for c in group.qualified()]).astype(np.float32)
    features = build_training_set(registry, feature_names, keys, at_ms, histories, inline=inline)
    out = {c: table.column(c) for c in columns if c in table.column_names}
    out.update({name: pa.array(features.matrix[:, j]) for j, name in enumerate(feature_names)})
    return pa.table(out), features
