"""The marketplace as flat binary arrays for the reference Java ad server (``jvm_bridge/ad-server``).

The Java ad server builds each request's candidate rows itself, exactly as :func:`models.synth.candidate_matrix`
does: a row is the user's 24 ``user.*`` features, then the ad's 24 ``ad.*`` features, then the context's 16
``context.*`` features (:data:`~models.synth.schema.FEATURE_NAMES` order). There are no cross features, so three
lookups and three copies per row are the whole recipe; :func:`assemble` is that recipe in numpy, and a test checks it
bit for bit against ``candidate_matrix``. The Java side maps the files read-only and copies rows straight into its
arena slots.

Layout under ``<out>/export/`` (:func:`models.demo.layout.export_dir`):

* ``index.json``: format tag, seed, sizes, byte order (always little-endian), the feature names, the three feature
  blocks (array, first global column, width), every array (file, dtype, shape), the vocabularies, the pricing rule of
  each objective, the ads each device may show, and for every demo model its task, stage and input columns (global
  indices into the 64 features, from its manifest). Keys are sorted; the same inputs give the same bytes.
* One raw little-endian file per array (``<name>.f32`` float32, ``<name>.i32`` int32), row-major, no header:

  =====================  =================  =========================================================
  array                  shape              what
  =====================  =================  =========================================================
  ``user_features``      [users, 24]        the ``user.*`` block
  ``ad_features``        [ads, 24]          the ``ad.*`` block
  ``ad_campaign``        [ads] int32        campaign id
  ``ad_advertiser``      [ads] int32        advertiser id
  ``ad_category``        [ads] int32        advertiser category code (``vocabularies.categories``)
  ``ad_objective``       [ads] int32        objective code (``vocabularies.objectives``); prices the bid
  ``ad_format``          [ads] int32        0 display, 1 video
  ``ad_bid``             [ads] float32      the bid in USD, in the unit of its objective (``pricing``)
  ``ad_creative_len_s``  [ads] float32      creative length in seconds (0 for display)
  ``video_ad_ids``       [video ads] int32  ascending ids of the video ads: all a CTV pod may show
  ``request_user``       [contexts] int32   the user a pooled request context was drawn for
  ``context_features``   [contexts, 16]     the ``context.*`` block of each pooled context
  ``context_placement``  [contexts] int32   placement id
  ``context_device``     [contexts] int32   device code (``vocabularies.devices``)
  ``context_genre``      [contexts] int32   genre code
  ``context_hour``       [contexts] int32   the user's local hour
  ``context_weekend``    [contexts] int32   0/1
  ``context_pod_len_s``  [contexts] float32 ad-break length in seconds (0 outside CTV pods)
  ``context_n_slots``    [contexts] int32   slots in the pod (0 outside pods)
  ``context_slot_pos``   [contexts] int32   the slot being filled (0-based)
  =====================  =================  =========================================================

The context pool is ``contexts`` (default 4096) requests drawn as a :class:`~models.synth.RequestStream` draws them:
the user by activity, the device from the user's device mix, a placement of that device, the user's local time on
the day after the impressions window, a uniform slot of the pod. A request of the Java server picks one pooled
(user, context) pair and candidate ads among those eligible for the context's device.

Pricing (``pricing`` in the index; the bids' scale is set by :mod:`models.synth.world`):

=================  =========  ============================================
objective          unit       eCPM (USD per 1000 impressions)
=================  =========  ============================================
``cpc``            CPC        ``1000 * bid * pCTR``
``cpa``            CPA        ``1000 * bid * pConversion``
``awareness``      CPM        ``bid``
``ctv_completion`` CPCM       ``bid * pCompletion`` (CPM paid on completed views only)
=================  =========  ============================================

Rules: files are written to temporary names and renamed, and ``index.json`` is written last, so an index on disk
always describes complete files (:func:`models.demo.layout.export_is_complete` checks sizes and the seed).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from models.demo.layout import EXPORT_FORMAT, EXPORT_INDEX, export_dir, export_is_complete
from models.manifest import Manifest
from models.synth import schema
from models.synth.contexts import ContextBatch, sample_contexts
from models.synth.impressions import ImpressionConfig
from models.synth.world import World, WorldConfig, make_world

__all__ = [
    "DEFAULT_CONTEXTS",
    "PRICING",
    "Export",
    "assemble",
    "ensure_export",
    "load_export",
    "sample_request_pool",
    "write_export",
]

DEFAULT_CONTEXTS: Final = 4096
"""Pooled request contexts exported by default (about 100 kB of context features)."""

PRICING: Final[Mapping[str, Mapping[str, str]]] = {
    "cpc": {"unit": "CPC", "ecpm": "1000 * bid * p_click"},
    "cpa": {"unit": "CPA", "ecpm": "1000 * bid * p_conversion"},
    "awareness": {"unit": "CPM", "ecpm": "bid"},
    "ctv_completion": {"unit": "CPCM", "ecpm": "bid * p_completion"},
}
"""How each objective's bid turns into an eCPM (see the module docstring)."""

_SUFFIX: Final = {"float32": "f32", "int32": "i32"}
_DTYPE: Final = {"float32": np.dtype("<f4"), "int32": np.dtype("<i4")}

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]

assert set(PRICING) == set(schema.OBJECTIVES), "every objective needs a pricing rule"


def sample_request_pool(world: World, n: int, seed: int) -> tuple[I32, ContextBatch]:
    """``n`` (user, context) pairs drawn as a request stream draws them, on the day after the impressions window.

    Deterministic under ``(world, n, seed)``.
    """
    if n <= 0:
        raise ValueError(f"the context pool needs at least one context, got {n}")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xE4907]))
    cdf = np.cumsum(world.user_activity)
    users = np.minimum(np.searchsorted(cdf, rng.random(n) * cdf[-1]), world.n_users - 1).astype(np.int32)
    day_after = world.config.start_epoch_s + ImpressionConfig().days * 86_400
    times = day_after + rng.integers(0, 86_400, size=n, dtype=np.int64)
    return users, sample_contexts(world, users, times, rng)


def _arrays(world: World, users: I32, contexts: ContextBatch) -> dict[str, npt.NDArray[Any]]:
    i32 = np.int32
    return {
        "user_features": world.user_features,
        "ad_features": world.ad_features,
        "ad_campaign": world.ad_campaign,
        "ad_advertiser": world.ad_advertiser,
        "ad_category": world.ad_category.astype(i32),
        "ad_objective": world.ad_objective.astype(i32),
        "ad_format": world.ad_format.astype(i32),
        "ad_bid": world.ad_bid,
        "ad_creative_len_s": world.ad_creative_len_s,
        "video_ad_ids": world.video_ad_ids,
        "request_user": users,
        "context_features": contexts.features(),
        "context_placement": contexts.placement_id,
        "context_device": contexts.device.astype(i32),
        "context_genre": contexts.genre.astype(i32),
        "context_hour": contexts.hour.astype(i32),
        "context_weekend": contexts.weekend.astype(i32),
        "context_pod_len_s": contexts.pod_len_s,
        "context_n_slots": contexts.n_slots.astype(i32),
        "context_slot_pos": contexts.slot_pos.astype(i32),
    }


def _write_file(path: Path, payload: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(payload)
    os.replace(tmp, path)


def _models_section(manifests: Sequence[Manifest]) -> dict[str, Any]:
    return {
        m.name: {
            "task": m.task.value,
            "stage": m.stage.value,
            "version": m.version,
            "columns": schema.feature_indices(m.feature_names).tolist(),
        }
        for m in manifests
    }


def write_export(
    out_dir: str | os.PathLike[str],
    world: World,
    manifests: Sequence[Manifest] = (),
    contexts: int = DEFAULT_CONTEXTS,
    seed: int | None = None,
) -> Path:
    """Write the export of ``world`` under ``<out_dir>/export`` (replacing one there); returns that directory.

    Args:
        out_dir: the demo root (the export goes to :func:`~models.demo.layout.export_dir`).
        world: the marketplace.
        manifests: the models whose input columns the index lists (the built demo's).
        contexts: pooled request contexts.
        seed: seeds the context pool and is recorded in the index (default: the world's seed).
    """
    seed = world.config.seed if seed is None else seed
    directory = export_dir(out_dir)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / EXPORT_INDEX).unlink(missing_ok=True)  # no index describes a half-written export
    users, pool = sample_request_pool(world, contexts, seed)
    arrays: dict[str, Any] = {}
    for name, values in _arrays(world, users, pool).items():
        kind = "float32" if values.dtype.kind == "f" else "int32"
        data = np.ascontiguousarray(values, dtype=_DTYPE[kind])
        file = f"{name}.{_SUFFIX[kind]}"
        _write_file(directory / file, data.tobytes())
        arrays[name] = {"file": file, "dtype": kind, "shape": list(data.shape)}
    u, a = schema.N_USER_FEATURES, schema.N_AD_FEATURES
    video = schema.code_of(schema.DEVICES, "ctv")
    index = {
        "format": EXPORT_FORMAT,
        "seed": seed,
        "byte_order": "little",
        "sizes": {"users": world.n_users, "ads": world.n_ads, "contexts": contexts},
        "feature_names": list(schema.FEATURE_NAMES),
        "blocks": {
            "user": {"array": "user_features", "row": "request_user", "first_column": 0, "width": u},
            "ad": {"array": "ad_features", "row": "ad", "first_column": u, "width": a},
            "context": {
                "array": "context_features",
                "row": "context",
                "first_column": u + a,
                "width": schema.N_CONTEXT_FEATURES,
            },
        },
        "arrays": arrays,
        "vocabularies": {
            "devices": list(schema.DEVICES),
            "genres": list(schema.GENRES),
            "objectives": list(schema.OBJECTIVES),
            "formats": list(schema.FORMATS),
            "categories": list(schema.CATEGORIES),
            "sensitive_categories": sorted(schema.SENSITIVE_CATEGORIES),
        },
        "pricing": {k: dict(v) for k, v in PRICING.items()},
        # None: every ad. A CTV pod shows video ads only (as the impression log's policy).
        "eligible_ads": {d: ("video_ad_ids" if i == video else None) for i, d in enumerate(schema.DEVICES)},
        "models": _models_section(manifests),
    }
    text = json.dumps(index, indent=1, sort_keys=True) + "\n"
    _write_file(directory / EXPORT_INDEX, text.encode("utf-8"))
    return directory


def ensure_export(
    out_dir: str | os.PathLike[str], seed: int, manifests: Sequence[Manifest], contexts: int = DEFAULT_CONTEXTS
) -> bool:
    """Write the export of the demo marketplace of ``seed`` (``WorldConfig(seed=seed)``) unless a complete one with
    ``contexts`` pooled contexts is there; returns whether it wrote."""
    if export_is_complete(out_dir, seed, contexts=contexts):
        return False
    write_export(out_dir, make_world(WorldConfig(seed=seed)), manifests, contexts=contexts)
    return True


@dataclass(frozen=True, eq=False)
class Export:
    """An export read back: its index and its arrays (read-only memory maps, native dtype views)."""

    index: Mapping[str, Any]
    arrays: Mapping[str, npt.NDArray[Any]]

    def __getitem__(self, name: str) -> npt.NDArray[Any]:
        return self.arrays[name]


def load_export(out_dir: str | os.PathLike[str]) -> Export:
    """Map the export under ``<out_dir>/export`` (``FileNotFoundError`` without an index, ``ValueError`` on another
    format)."""
    directory = export_dir(out_dir)
    index = json.loads((directory / EXPORT_INDEX).read_text(encoding="utf-8"))
    if index.get("format") != EXPORT_FORMAT:
        raise ValueError(f"{directory / EXPORT_INDEX}: format {index.get('format')!r}, expected {EXPORT_FORMAT!r}")
    arrays = {
        name: np.memmap(directory / spec["file"], dtype=_DTYPE[spec["dtype"]], mode="r", shape=tuple(spec["shape"]))
        for name, spec in index["arrays"].items()
    }
    return Export(index, arrays)


def assemble(
    export: Export, context: int, ad_ids: npt.NDArray[np.integer], columns: npt.NDArray[np.intp] | None = None
) -> F32:
    """The candidate rows of pooled request ``context`` for ``ad_ids``, from the exported files only: what the Java
    ad server writes into its arena slots. float32 [N, 64], or [N, len(columns)] with a model's input columns.

    Equal, bit for bit, to ``candidate_matrix(world, request_user[context], <context>, ad_ids)[:, columns]``.
    """
    blocks = export.index["blocks"]
    full = np.empty((int(ad_ids.shape[0]), schema.N_FEATURES), dtype=np.float32)
    rows = {"user": int(export["request_user"][context]), "context": context}
    for block in ("user", "ad", "context"):
        spec = blocks[block]
        first, width = spec["first_column"], spec["width"]
        source = export[spec["array"]]
        full[:, first : first + width] = source[ad_ids] if block == "ad" else source[rows[block]]
    return full if columns is None else np.ascontiguousarray(full[:, columns])
