"""The Feast peer of suite ``features``: ``get_online_features`` on the same tables, in Feast's own venv.

Run by :mod:`perf.suites.features` with the peer venv's Python (``build/peers/feast``), never
imported by Scoregate: it needs only Feast and its dependencies. Reads ``user.parquet``,
``ad.parquet`` and ``context.parquet`` (``id``, ``event_timestamp``, ``x0..``) from ``--data``,
registers one feature view per table with Feast's SQLite online store, writes the rows online,
then times ``get_online_features`` for requests of one user, one context and ``--rows`` ads
(every feature of the three views), and writes the latencies' p50/p99 to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

# Installed only in the peer's venv, not in Scoregate's: no types to check against here.
import pandas as pd  # type: ignore[import-untyped,import-not-found,unused-ignore]
from feast import Entity, FeatureStore, FeatureView, Field, FileSource  # type: ignore[import-not-found]
from feast.types import Float32, Int64  # type: ignore[import-not-found]
from feast.value_type import ValueType  # type: ignore[import-not-found]

KINDS = ("user", "context", "ad")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--repo", type=Path, required=True)
    p.add_argument("--rows", type=int, default=500)
    p.add_argument("--requests", type=int, default=60)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    repo: Path = args.repo
    repo.mkdir(parents=True, exist_ok=True)
    (repo / "feature_store.yaml").write_text(
        "project: scoregate_peer\n"
        f"registry: {repo / 'registry.db'}\n"
        "provider: local\n"
        "online_store:\n"
        "  type: sqlite\n"
        f"  path: {repo / 'online.db'}\n"
        "offline_store:\n"
        "  type: file\n"
        "entity_key_serialization_version: 3\n",
        encoding="utf-8",
    )
    store = FeatureStore(repo_path=str(repo))
    frames = {k: pd.read_parquet(args.data / f"{k}.parquet") for k in KINDS}
    objects: list[object] = []
    views: dict[str, FeatureView] = {}
    for kind in KINDS:
        df = frames[kind].rename(columns={"id": f"{kind}_id"})
        frames[kind] = df
        entity = Entity(name=kind, join_keys=[f"{kind}_id"], value_type=ValueType.INT64)
        source = FileSource(path=str(args.data / f"{kind}.parquet"), timestamp_field="event_timestamp")
        cols = [c for c in df.columns if c.startswith("x")]
        view = FeatureView(
            name=f"{kind}_fv",
            entities=[entity],
            ttl=timedelta(days=1),
            schema=[Field(name=f"{kind}_id", dtype=Int64), *[Field(name=c, dtype=Float32) for c in cols]],
            source=source,
            online=True,
        )
        objects += [entity, view]
        views[kind] = view
    store.apply(objects)
    for kind in KINDS:
        store.write_to_online_store(f"{kind}_fv", frames[kind])
    refs = [f"{kind}_fv:{c}" for kind in KINDS for c in frames[kind].columns if c.startswith("x")]
    rng = np.random.default_rng(args.rows)
    sizes = {k: len(frames[k]) for k in KINDS}
    latencies: list[float] = []
    for i in range(args.requests + 5):
        user, ctx = int(rng.integers(sizes["user"])), int(rng.integers(sizes["context"]))
        ads = rng.choice(sizes["ad"], args.rows, replace=False)
        rows = [{"user_id": user, "context_id": ctx, "ad_id": int(a)} for a in ads]
        t0 = time.perf_counter()
        # full names: every view has x0.., as Scoregate's groups do
        result = store.get_online_features(features=refs, entity_rows=rows, full_feature_names=True).to_dict()
        elapsed = time.perf_counter() - t0
        if i >= 5:  # the first requests warm Feast's caches
            latencies.append(elapsed * 1000.0)
        assert len(result[refs[0].replace(":", "__")]) == args.rows
    lat = np.array(latencies)
    args.out.write_text(
        json.dumps(
            {
                "feast_version": __import__("feast").__version__,
                "online_store": "sqlite",
                "rows": args.rows,
                "features": len(refs),
                "requests": len(latencies),
                "p50_ms": float(np.percentile(lat, 50)),
                "p99_ms": float(np.percentile(lat, 99)),
            }
        ),
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
