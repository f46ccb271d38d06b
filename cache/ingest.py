"""Batch ingestion: loading a feature group from the Parquet tables the marketplace writes.

:func:`load_parquet` streams a table in record batches (never the whole file in memory), takes
the entity id column, the group's feature columns (by their qualified names, ``user.<feature>``,
as :mod:`models.synth.tables` writes them) and the event-time column, and stores one value per
entity through :meth:`cache.store.FeatureWriter.put_many`, with a progress bar when asked.

NaN policy (``nan``): ``"reject"`` (the default) fails on the first batch holding a NaN or an
infinity, naming the column, before that batch is written; ``"default"`` serves the feature's
default in its place and counts the values replaced in :attr:`IngestReport.replaced`.
A missing column is an error before anything is written.

:func:`publish_registry` writes the groups' definitions (entity, version, defaults, freshness SLO)
into the cluster's ``fg.registry`` map, one JSON object per group, so that JVM readers (the
reference ad server's ``ClusterFeatures``) serve the same defaults and judge staleness by the same
SLO as Python; :func:`load_marketplace` publishes the registry and loads the marketplace's user and
ad tables.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from cache.codec import CodecError
from cache.registry import FeatureGroup
from cache.store import FeatureWriter

__all__ = ["REGISTRY_MAP", "IngestReport", "load_marketplace", "load_parquet", "publish_registry", "registry_json"]

#: The map holding the groups' definitions, group name -> JSON (read by the JVM side).
REGISTRY_MAP = "fg.registry"


@dataclass
class IngestReport:
    """What one :func:`load_parquet` stored: entities written, and NaN/inf values replaced per feature."""

    group: str
    rows: int = 0
    replaced: dict[str, int] = field(default_factory=dict)


def load_parquet(
    writer: FeatureWriter,
    group_name: str,
    path: str | os.PathLike[str],
    *,
    id_column: str | None = None,
    event_time_column: str = "event_time",
    batch_rows: int = 20_000,
    nan: Literal["reject", "default"] = "reject",
    progress: bool = False,
) -> IngestReport:
    """Load ``group_name`` from the Parquet file at ``path``; ``id_column`` defaults to ``<entity>_id``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if nan not in ("reject", "default"):
        raise ValueError(f"nan must be 'reject' or 'default', got {nan!r}")
    group = writer.registry.group(group_name)
    ids_col = id_column or f"{group.entity}_id"
    features = list(group.qualified())
    source = pq.ParquetFile(path)
    missing = [c for c in (ids_col, event_time_column, *features) if c not in source.schema_arrow.names]
    if missing:
        raise CodecError(f"{os.fspath(path)}: group {group_name!r} needs columns {missing}, which the file lacks")
    report = IngestReport(group_name)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=source.metadata.num_rows, desc=f"load {group_name}", unit="entity")
    try:
        for batch in source.iter_batches(batch_size=batch_rows, columns=[ids_col, event_time_column, *features]):
            ids = batch.column(ids_col).to_numpy().astype(np.int64)
            times = batch.column(event_time_column).cast(pa.timestamp("ms", "UTC")).cast(pa.int64())
            event_ms = times.to_numpy()
            values = np.empty((batch.num_rows, group.width), dtype=np.float32)
            for j, name in enumerate(features):
                column = batch.column(name)
                if not pa.types.is_floating(column.type):
                    raise CodecError(f"{os.fspath(path)}: column {name!r} is {column.type}, not floating point")
                values[:, j] = column.to_numpy(zero_copy_only=False)
            bad = ~np.isfinite(values)
            if bad.any():
                cols = bad.any(axis=0)
                if nan == "reject":
                    names = [features[j] for j in np.flatnonzero(cols)]
                    raise CodecError(f"{os.fspath(path)}: NaN or inf in {names} (nan='default' serves defaults)")
                for col in np.flatnonzero(cols).tolist():
                    count = int(bad[:, col].sum())
                    report.replaced[features[col]] = report.replaced.get(features[col], 0) + count
                values = np.where(bad, group.defaults, values).astype(np.float32)
            report.rows += writer.put_many(group_name, ids, values, event_ms)
            if bar is not None:
                bar.update(batch.num_rows)
    finally:
        if bar is not None:
            bar.close()
    return report


def registry_json(group: FeatureGroup) -> str:
    """One group's definition as the JVM side reads it."""
    return json.dumps(
        {
            "entity": group.entity,
            "version": group.version,
            "features": [f.name for f in group.features],
            "defaults": [float(x) for x in group.defaults],
            "freshness_slo_ms": int(group.freshness_slo_s * 1000),
        }
    )


def publish_registry(writer: FeatureWriter) -> None:
    """Write every group of ``writer``'s registry into :data:`REGISTRY_MAP` (replacing older definitions)."""
    client: Any = writer.client
    target = client.get_map(REGISTRY_MAP).blocking()
    target.put_all({name: registry_json(g) for name, g in writer.registry.groups.items()})


#: The marketplace's groups and the tables they are loaded from (:mod:`models.synth.tables`).
MARKETPLACE_TABLES = {"user_profile": "users.parquet", "ad_profile": "ads.parquet"}


def load_marketplace(
    writer: FeatureWriter, tables: str | os.PathLike[str], *, progress: bool = False
) -> list[IngestReport]:
    """Publish the registry, then load the user and ad groups from the marketplace's tables in ``tables``."""
    publish_registry(writer)
    return [
        load_parquet(writer, group, Path(tables) / name, progress=progress)
        for group, name in MARKETPLACE_TABLES.items()
    ]
