"""The marketplace's vocabularies and its one global, ordered list of features.

Every model input in Scoregate's demo is a subset of :data:`FEATURE_NAMES`, taken in this order. The list is grouped
by entity: 24 ``user.*`` features, then 24 ``ad.*`` features, then 16 ``context.*`` features (64 in all). Feature
values are float32 and roughly zero-centred with unit scale, so a model needs no scaler.

Contracts:

1. The order of :data:`FEATURE_NAMES` is part of the package format: a manifest's ``feature_names`` lists the exact
   input columns and a model is only correct for them. Appending is compatible; reordering or renaming is not.
2. :data:`FEATURE_DEFAULTS` is what a feature store serves for a missing value (and what a "broken feature" drift
   returns). It is read-only.
3. The categorical vocabularies (:data:`REGIONS`, :data:`DEVICES`, ...) are ordered; arrays in the world store their
   integer codes (indices into these tuples).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import numpy as np
import numpy.typing as npt

REGIONS: Final = ("na", "eu", "apac", "latam")
"""User regions; ``World.user_region`` holds indices into this tuple."""

DEVICES: Final = ("mobile", "desktop", "ctv")
"""Devices a request comes from; ``ctv`` requests are ad breaks (pods) that only video ads may fill."""

GENRES: Final = ("news", "sports", "entertainment", "kids", "lifestyle")
"""Content genres of a placement."""

OBJECTIVES: Final = ("cpc", "cpa", "awareness", "ctv_completion")
"""Campaign objectives; ``ctv_completion`` campaigns run video creatives only."""

FORMATS: Final = ("display", "video")
"""Creative formats; a display creative has length 0 s."""

CATEGORIES: Final = (
    "automotive",
    "retail",
    "finance",
    "travel",
    "telecom",
    "food",
    "beverages",
    "alcohol",
    "gambling",
    "pharma",
    "tech",
    "gaming",
    "entertainment",
    "fashion",
    "beauty",
    "home",
    "education",
    "insurance",
    "real_estate",
    "politics",
)
"""Advertiser categories (IAB-like). Used for competitive separation in CTV pods and for brand safety."""

SENSITIVE_CATEGORIES: Final = frozenset({"alcohol", "gambling", "pharma", "politics"})
"""Categories whose ads are unsafe next to sensitive content (kids, news) in the ground truth."""

N_INTERESTS: Final = 8
"""Width of the user-interest and ad-topic latent spaces, and of their noisy observed copies."""

_USER: Final = (
    *(f"user.interest_{k}" for k in range(N_INTERESTS)),
    *(f"user.region_{r}" for r in REGIONS),
    *(f"user.device_share_{d}" for d in DEVICES),
    "user.hist_ctr",
    "user.hist_cvr",
    "user.completion_rate",
    "user.log_sessions_7d",
    "user.account_age",
    "user.logged_in",
    "user.ad_fatigue",
    "user.price_sensitivity",
    "user.recency",
)
_AD: Final = (
    *(f"ad.topic_{k}" for k in range(N_INTERESTS)),
    "ad.log_bid",
    "ad.log_daily_budget",
    "ad.creative_len",
    "ad.is_video",
    *(f"ad.objective_{o}" for o in OBJECTIVES),
    "ad.quality",
    "ad.hist_ctr",
    "ad.hist_cvr",
    "ad.hist_completion",
    "ad.age",
    "ad.advertiser_log_spend",
    "ad.category_code",
    "ad.landing_page_score",
)
_CONTEXT: Final = (
    *(f"context.device_{d}" for d in DEVICES),
    "context.hour_sin",
    "context.hour_cos",
    "context.weekend",
    *(f"context.genre_{g}" for g in GENRES),
    "context.page_quality",
    "context.is_pod",
    "context.pod_len",
    "context.slot_pos",
    "context.slot_is_first",
)

USER_FEATURES: Final[tuple[str, ...]] = tuple(_USER)
AD_FEATURES: Final[tuple[str, ...]] = tuple(_AD)
CONTEXT_FEATURES: Final[tuple[str, ...]] = tuple(_CONTEXT)
FEATURE_NAMES: Final[tuple[str, ...]] = USER_FEATURES + AD_FEATURES + CONTEXT_FEATURES
"""The global ordered feature list: user block, ad block, context block."""

N_USER_FEATURES: Final = len(USER_FEATURES)
N_AD_FEATURES: Final = len(AD_FEATURES)
N_CONTEXT_FEATURES: Final = len(CONTEXT_FEATURES)
N_FEATURES: Final = len(FEATURE_NAMES)

USER_SLICE: Final = slice(0, N_USER_FEATURES)
AD_SLICE: Final = slice(N_USER_FEATURES, N_USER_FEATURES + N_AD_FEATURES)
CONTEXT_SLICE: Final = slice(N_USER_FEATURES + N_AD_FEATURES, N_FEATURES)

_INDEX: Final = {name: i for i, name in enumerate(FEATURE_NAMES)}


def _defaults() -> npt.NDArray[np.float32]:
    values = np.zeros(N_FEATURES, dtype=np.float32)
    values.setflags(write=False)
    return values


FEATURE_DEFAULTS: Final = _defaults()
"""Per-feature default (float32, read-only). All zeros: features are centred, and a zero one-hot means "unknown"."""


def feature_indices(names: Iterable[str]) -> npt.NDArray[np.intp]:
    """Column indices of ``names`` in :data:`FEATURE_NAMES`, in the order given.

    Raises:
        KeyError: a name is not a marketplace feature (the message names it).
    """
    try:
        return np.array([_INDEX[n] for n in names], dtype=np.intp)
    except KeyError as exc:
        raise KeyError(f"unknown feature name {exc.args[0]!r}") from None


def code_of(vocabulary: tuple[str, ...], value: str) -> int:
    """Integer code of ``value`` in one of the vocabularies above (``ValueError`` if absent)."""
    try:
        return vocabulary.index(value)
    except ValueError:
        raise ValueError(f"{value!r} is not one of {vocabulary}") from None


assert (N_USER_FEATURES, N_AD_FEATURES, N_CONTEXT_FEATURES) == (24, 24, 16), "feature blocks changed size"
assert len(_INDEX) == N_FEATURES, "duplicate feature name"
