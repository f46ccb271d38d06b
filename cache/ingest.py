"""Batch ingestion: loading a feature group from the Parquet tables the marketplace writes.

:func:`load_parquet` streams a table in record batches (never the whole file in memory), takes
the entity id column, the group's feature columns (by their qualified names, ``user.<feature>``,
as :mod:`models.synth.tables` writes them) and the event-time column, and stores one value per
entity through :meth:`cache.store.FeatureWriter.put_many`, with a progress bar when asked.

NaN policy (``nan``): ``"reject"`` (the default) fails on the first batch holding a NaN or an
infinity, naming the column, before that batch is written; ``"default"`` serves the feature's
default in its place and counts the values replaced in :attr:`IngestReport.replaced`.
A missing column is an error before anything is written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from cache.codec import CodecError
from cache.store import FeatureWriter

__all__ = ["IngestReport", "load_parquet"]


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
