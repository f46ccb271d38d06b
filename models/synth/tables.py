"""Offline tables: the marketplace and its labelled impressions written as Parquet.

Files written by :func:`write_tables` (one row per entity; ids are the dense entity ids of the world):

* ``users.parquet``: ``user_id``, ``region``, ``device_mix_*``, the 24 ``user.*`` feature columns, ``event_time``.
* ``campaigns.parquet``: ``campaign_id``, ``advertiser_id``, ``category``, ``objective``, ``daily_budget``.
* ``ads.parquet``: ``ad_id``, ``campaign_id``, ``advertiser_id``, ``category``, ``objective``, ``format``,
  ``creative_len_s``, ``bid``, ``daily_budget``, the 24 ``ad.*`` feature columns, ``event_time``.
* ``contexts.parquet``: ``placement_id``, ``device``, ``genre``, ``page_quality``, ``pod_len_s``, ``n_slots``.
* ``impressions.parquet``: ``impression_id``, ``event_time``, ``user_id``, ``ad_id``, ``placement_id``, ``hour``,
  ``weekend``, ``slot_pos``, the 16 ``context.*`` feature columns as logged at request time, the ground truth
  ``p_click_true``, ``p_completion_true``, ``p_conversion_true``, ``p_unsafe_true`` and the labels ``click``,
  ``completion``, ``conversion``, ``unsafe``, and ``is_holdout``.

``event_time`` columns are ``timestamp[ms, tz=UTC]``; for users and ads it is the feature snapshot time (the start of
event time: their features are static over the window). Feature columns keep their dotted names. Categorical
columns are dictionary-encoded strings. Each file is written to a temporary name and renamed, so a reader never sees
a partial file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from models.synth import schema
from models.synth.impressions import Impressions
from models.synth.world import World

TABLES: Final = ("users", "campaigns", "ads", "contexts", "impressions")

_TS: Final = pa.timestamp("ms", tz="UTC")


def _categorical(codes: npt.NDArray[np.integer], vocabulary: tuple[str, ...]) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(codes.astype(np.int32)), pa.array(list(vocabulary)))


def _features(block: npt.NDArray[np.float32], names: tuple[str, ...]) -> dict[str, pa.Array]:
    return {name: pa.array(np.ascontiguousarray(block[:, j])) for j, name in enumerate(names)}


def _snapshot(world: World, n: int) -> pa.Array:
    return pa.array(np.full(n, world.config.start_epoch_s * 1000, dtype=np.int64), type=pa.int64()).cast(_TS)


def users_table(world: World) -> pa.Table:
    cols: dict[str, pa.Array] = {
        "user_id": pa.array(np.arange(world.n_users, dtype=np.int32)),
        "region": _categorical(world.user_region, schema.REGIONS),
    }
    for j, d in enumerate(schema.DEVICES):
        cols[f"device_mix_{d}"] = pa.array(np.ascontiguousarray(world.user_device_mix[:, j]))
    cols.update(_features(world.user_features, schema.USER_FEATURES))
    cols["event_time"] = _snapshot(world, world.n_users)
    return pa.table(cols)


def campaigns_table(world: World) -> pa.Table:
    n = world.campaign_advertiser.shape[0]
    return pa.table(
        {
            "campaign_id": pa.array(np.arange(n, dtype=np.int32)),
            "advertiser_id": pa.array(world.campaign_advertiser),
            "category": _categorical(world.advertiser_category[world.campaign_advertiser], schema.CATEGORIES),
            "objective": _categorical(world.campaign_objective, schema.OBJECTIVES),
            "daily_budget": pa.array(world.campaign_daily_budget),
        }
    )


def ads_table(world: World) -> pa.Table:
    cols: dict[str, pa.Array] = {
        "ad_id": pa.array(np.arange(world.n_ads, dtype=np.int32)),
        "campaign_id": pa.array(world.ad_campaign),
        "advertiser_id": pa.array(world.ad_advertiser),
        "category": _categorical(world.ad_category, schema.CATEGORIES),
        "objective": _categorical(world.ad_objective, schema.OBJECTIVES),
        "format": _categorical(world.ad_format, schema.FORMATS),
        "creative_len_s": pa.array(world.ad_creative_len_s),
        "bid": pa.array(world.ad_bid),
        "daily_budget": pa.array(world.ad_daily_budget),
    }
    cols.update(_features(world.ad_features, schema.AD_FEATURES))
    cols["event_time"] = _snapshot(world, world.n_ads)
    return pa.table(cols)


def contexts_table(world: World) -> pa.Table:
    pod = world.placement_pod_len_s
    return pa.table(
        {
            "placement_id": pa.array(np.arange(world.n_placements, dtype=np.int32)),
            "device": _categorical(world.placement_device, schema.DEVICES),
            "genre": _categorical(world.placement_genre, schema.GENRES),
            "page_quality": pa.array(world.placement_quality),
            "pod_len_s": pa.array(pod),
            "n_slots": pa.array((pod / 30.0).astype(np.int8)),
        }
    )


def impressions_table(impressions: Impressions) -> pa.Table:
    imp, ctx = impressions, impressions.contexts
    cols: dict[str, pa.Array] = {
        "impression_id": pa.array(imp.impression_id),
        "event_time": pa.array(imp.event_time_ms, type=pa.int64()).cast(_TS),
        "user_id": pa.array(imp.user_id),
        "ad_id": pa.array(imp.ad_id),
        "placement_id": pa.array(ctx.placement_id),
        "hour": pa.array(ctx.hour),
        "weekend": pa.array(ctx.weekend),
        "slot_pos": pa.array(ctx.slot_pos),
    }
    cols.update(_features(ctx.features(), schema.CONTEXT_FEATURES))
    for label in ("click", "completion", "conversion", "unsafe"):
        cols[f"p_{label}_true"] = pa.array(imp.p_true(label))
    for label in ("click", "completion", "conversion", "unsafe"):
        cols[label] = pa.array(imp.label(label))
    cols["is_holdout"] = pa.array(imp.holdout_mask())
    return pa.table(cols)


def _write(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)


def write_tables(world: World, impressions: Impressions, directory: str | os.PathLike[str]) -> dict[str, Path]:
    """Write the five tables of the module docstring into ``directory`` (created); returns name -> path."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    tables = {
        "users": users_table(world),
        "campaigns": campaigns_table(world),
        "ads": ads_table(world),
        "contexts": contexts_table(world),
        "impressions": impressions_table(impressions),
    }
    paths = {}
    for name, table in tables.items():
        paths[name] = out / f"{name}.parquet"
        _write(table, paths[name])
    return paths
