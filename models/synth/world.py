"""The marketplace's entities: users, advertisers, campaigns, ads and placements, drawn once from a seed.

A :class:`World` is a set of read-only numpy arrays indexed by entity id (ids are dense, ``0..n-1``). It holds both
the hidden latents that drive the ground truth (:mod:`models.synth.truth`) and the observed, noisy feature blocks
(``user_features`` [U, 24], ``ad_features`` [A, 24]) that models learn from.

Generative story (all draws from ``numpy.random.default_rng`` children of ``SeedSequence(seed)``, one per entity
kind, so changing the number of users does not change the ads):

* users: a region (na 35 %, eu 30 %, apac 25 %, latam 10 %), a Dirichlet device mix, an interest latent
  ``N(region centre, 1)`` in R^8, and standard-normal propensities (clickiness, conversion, completion, fatigue);
  an activity weight (log-normal) makes a few users far more frequent than most.
* advertisers: a category (20, skewed) and a spend level; campaigns: an advertiser, an objective, a daily budget.
* ads: a campaign (hence advertiser, category, objective), a format (video always for ``ctv_completion``), a creative
  length (0 s for display; 6/15/30/60 s for video), a bid whose scale follows the objective, a topic latent
  ``N(category centre, 0.8^2)``, and a quality and a conversion quality.
* placements (the context entity): a device, a genre, a page quality and, for CTV, an ad-break (pod) length of 60,
  90 or 120 s with one slot per 30 s.

Observed features are noisy functions of those latents (e.g. ``user.interest_k = interest_k + N(0, 0.7^2)``), so a
model can learn the truth well but never perfectly.

Thread-safety: a World is immutable after :func:`make_world` returns and may be shared between threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from models.synth import schema

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int8]
I32 = npt.NDArray[np.int32]

_T = TypeVar("_T", bound=np.generic)

DEFAULT_START_EPOCH_S = 1_736_121_600
"""2025-01-06T00:00:00Z, a Monday: the default start of event time."""


@dataclass(frozen=True)
class WorldConfig:
    """Sizes and seed of a marketplace. Defaults give >= 100,000 ads and build in well under a second."""

    seed: int = 0
    n_users: int = 50_000
    n_advertisers: int = 4_000
    n_campaigns: int = 20_000
    n_ads: int = 100_000
    n_placements: int = 2_000
    start_epoch_s: int = DEFAULT_START_EPOCH_S

    def __post_init__(self) -> None:
        for field in ("n_users", "n_advertisers", "n_campaigns", "n_ads", "n_placements"):
            if getattr(self, field) <= 0:
                raise ValueError(f"WorldConfig.{field} must be positive")
        if self.seed < 0:
            raise ValueError("WorldConfig.seed must be >= 0")


@dataclass(frozen=True, eq=False)
class World:
    """All entity arrays of one marketplace (read-only; see the module docstring for their meaning).

    Categorical arrays hold codes into the vocabularies of :mod:`models.synth.schema`.
    """

    config: WorldConfig
    # users
    user_region: I8
    user_device_mix: F32  # [U, 3], rows sum to 1, order schema.DEVICES
    user_interest: F32  # [U, 8] latent
    user_clickiness: F32
    user_conversion: F32
    user_completion: F32
    user_fatigue: F32
    user_activity: F64  # sampling probability of each user, sums to 1
    user_features: F32  # [U, 24] observed, schema.USER_FEATURES order
    # advertisers and campaigns
    advertiser_category: I8
    advertiser_log_spend: F32
    campaign_advertiser: I32
    campaign_objective: I8
    campaign_daily_budget: F32
    # ads
    ad_campaign: I32
    ad_advertiser: I32
    ad_category: I8
    ad_objective: I8
    ad_format: I8
    ad_creative_len_s: F32
    ad_bid: F32
    ad_daily_budget: F32
    ad_topic: F32  # [A, 8] latent
    ad_quality: F32
    ad_conversion: F32
    ad_features: F32  # [A, 24] observed, schema.AD_FEATURES order
    video_ad_ids: I32  # ids of video ads (the only ones a CTV pod may show), ascending
    # placements (the context entity)
    placement_device: I8
    placement_genre: I8
    placement_quality: F32
    placement_pod_len_s: F32  # 0 when the placement is not an ad break
    # ground-truth parameters shared by truth.py
    region_category_affinity: F32  # [4, 20]

    @property
    def n_users(self) -> int:
        return int(self.user_region.shape[0])

    @property
    def n_ads(self) -> int:
        return int(self.ad_campaign.shape[0])

    @property
    def n_placements(self) -> int:
        return int(self.placement_device.shape[0])

    def placements_of_device(self, device: int) -> I32:
        """Ids of the placements whose device code is ``device`` (ascending)."""
        return np.flatnonzero(self.placement_device == device).astype(np.int32)


def _zscore(x: F64) -> F64:
    std = float(x.std())
    out: F64 = (x - x.mean()) / (std if std > 0 else 1.0)
    return out


def _frozen(a: npt.NDArray[_T]) -> npt.NDArray[_T]:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


def _users(cfg: WorldConfig, rng: np.random.Generator) -> dict[str, npt.NDArray[np.generic]]:
    n, k = cfg.n_users, schema.N_INTERESTS
    region = rng.choice(len(schema.REGIONS), size=n, p=[0.35, 0.30, 0.25, 0.10]).astype(np.int8)
    region_centre = rng.normal(0.0, 0.5, size=(len(schema.REGIONS), k))
    interest = region_centre[region] + rng.normal(0.0, 1.0, size=(n, k))
    mix = rng.dirichlet([2.0, 1.2, 0.6], size=n)
    click, conv, comp, fatigue = rng.normal(size=(4, n))
    activity = rng.lognormal(0.0, 1.0, size=n)
    feats = np.empty((n, schema.N_USER_FEATURES), dtype=np.float64)
    feats[:, 0:k] = interest + rng.normal(0.0, 0.7, size=(n, k))
    feats[:, k : k + 4] = np.eye(len(schema.REGIONS))[region]
    feats[:, k + 4 : k + 7] = mix + rng.normal(0.0, 0.05, size=mix.shape)
    noise = rng.normal(size=(9, n))
    feats[:, k + 7] = 0.7 * click + 0.7 * noise[0]  # hist_ctr
    feats[:, k + 8] = 0.6 * conv + 0.8 * noise[1]  # hist_cvr
    feats[:, k + 9] = 0.7 * comp + 0.7 * noise[2]  # completion_rate
    feats[:, k + 10] = _zscore(np.log(activity)) + 0.3 * noise[3]  # log_sessions_7d
    feats[:, k + 11] = noise[4]  # account_age: uninformative
    feats[:, k + 12] = (noise[5] > -0.25).astype(np.float64)  # logged_in
    feats[:, k + 13] = 0.8 * fatigue + 0.6 * noise[6]  # ad_fatigue
    feats[:, k + 14] = -0.3 * conv + noise[7]  # price_sensitivity
    feats[:, k + 15] = noise[8]  # recency: uninformative
    return {
        "user_region": region,
        "user_device_mix": mix.astype(np.float32),
        "user_interest": interest.astype(np.float32),
        "user_clickiness": click.astype(np.float32),
        "user_conversion": conv.astype(np.float32),
        "user_completion": comp.astype(np.float32),
        "user_fatigue": fatigue.astype(np.float32),
        "user_activity": activity / activity.sum(),
        "user_features": feats.astype(np.float32),
    }


def _ads(cfg: WorldConfig, rng: np.random.Generator) -> dict[str, npt.NDArray[np.generic]]:
    k, n_cat = schema.N_INTERESTS, len(schema.CATEGORIES)
    cat_weights = rng.dirichlet(np.full(n_cat, 3.0))
    adv_category = rng.choice(n_cat, size=cfg.n_advertisers, p=cat_weights).astype(np.int8)
    adv_spend = rng.normal(size=cfg.n_advertisers)
    camp_adv = rng.integers(cfg.n_advertisers, size=cfg.n_campaigns).astype(np.int32)
    camp_obj = rng.choice(len(schema.OBJECTIVES), size=cfg.n_campaigns, p=[0.40, 0.20, 0.25, 0.15]).astype(np.int8)
    camp_budget = rng.lognormal(np.log(1_000.0) + 0.5 * adv_spend[camp_adv], 0.8)

    n = cfg.n_ads
    campaign = rng.integers(cfg.n_campaigns, size=n).astype(np.int32)
    advertiser = camp_adv[campaign]
    category = adv_category[advertiser]
    objective = camp_obj[campaign]
    p_video = np.array([0.15, 0.15, 0.60, 1.0])[objective]
    is_video = rng.random(n) < p_video
    ctv = objective == schema.code_of(schema.OBJECTIVES, "ctv_completion")
    length = np.where(
        ctv,
        rng.choice([15.0, 30.0, 60.0], size=n, p=[0.3, 0.5, 0.2]),
        rng.choice([6.0, 15.0, 30.0, 60.0], size=n, p=[0.25, 0.35, 0.3, 0.1]),
    )
    length = np.where(is_video, length, 0.0)
    bid_scale = np.array([1.0, 20.0, 5.0, 30.0])[objective]  # CPC $, CPA $, CPM $, CTV CPM $
    bid = bid_scale * rng.lognormal(0.0, 0.5, size=n)
    cat_centre = rng.normal(0.0, 0.8, size=(n_cat, k))
    topic = cat_centre[category] + rng.normal(0.0, 0.8, size=(n, k))
    quality, conv = rng.normal(size=(2, n))

    feats = np.empty((n, schema.N_AD_FEATURES), dtype=np.float64)
    feats[:, 0:k] = topic + rng.normal(0.0, 0.7, size=(n, k))
    feats[:, k] = _zscore(np.log(bid))
    feats[:, k + 1] = _zscore(np.log(camp_budget[campaign]))
    feats[:, k + 2] = length / 30.0
    feats[:, k + 3] = is_video
    feats[:, k + 4 : k + 8] = np.eye(len(schema.OBJECTIVES))[objective]
    noise = rng.normal(size=(7, n))
    feats[:, k + 8] = 0.7 * quality + 0.7 * noise[0]  # quality
    feats[:, k + 9] = 0.6 * quality + 0.8 * noise[1]  # hist_ctr
    feats[:, k + 10] = 0.6 * conv + 0.8 * noise[2]  # hist_cvr
    feats[:, k + 11] = 0.5 * quality - 0.6 * (length / 30.0 - 1.0) * is_video + 0.5 * noise[3]  # hist_completion
    feats[:, k + 12] = noise[4]  # age: uninformative
    feats[:, k + 13] = _zscore(adv_spend[advertiser]) + 0.1 * noise[5]
    feats[:, k + 14] = 2.0 * category / (n_cat - 1) - 1.0  # ordinal code in [-1, 1]
    feats[:, k + 15] = 0.4 * conv + noise[6]  # landing_page_score
    return {
        "advertiser_category": adv_category,
        "advertiser_log_spend": adv_spend.astype(np.float32),
        "campaign_advertiser": camp_adv,
        "campaign_objective": camp_obj,
        "campaign_daily_budget": camp_budget.astype(np.float32),
        "ad_campaign": campaign,
        "ad_advertiser": advertiser,
        "ad_category": category,
        "ad_objective": objective,
        "ad_format": is_video.astype(np.int8),
        "ad_creative_len_s": length.astype(np.float32),
        "ad_bid": bid.astype(np.float32),
        "ad_daily_budget": camp_budget[campaign].astype(np.float32),
        "ad_topic": topic.astype(np.float32),
        "ad_quality": quality.astype(np.float32),
        "ad_conversion": conv.astype(np.float32),
        "ad_features": feats.astype(np.float32),
        "video_ad_ids": np.flatnonzero(is_video).astype(np.int32),
    }


def _placements(cfg: WorldConfig, rng: np.random.Generator) -> dict[str, npt.NDArray[np.generic]]:
    n = cfg.n_placements
    device = rng.choice(len(schema.DEVICES), size=n, p=[0.5, 0.3, 0.2]).astype(np.int8)
    genre = rng.choice(len(schema.GENRES), size=n, p=[0.2, 0.2, 0.3, 0.1, 0.2]).astype(np.int8)
    # Every device needs at least one placement for context sampling to be total.
    device[: len(schema.DEVICES)] = np.arange(len(schema.DEVICES), dtype=np.int8)
    pod = rng.choice([60.0, 90.0, 120.0], size=n)
    is_ctv = device == schema.code_of(schema.DEVICES, "ctv")
    return {
        "placement_device": device,
        "placement_genre": genre,
        "placement_quality": rng.normal(size=n).astype(np.float32),
        "placement_pod_len_s": np.where(is_ctv, pod, 0.0).astype(np.float32),
    }


def make_world(config: WorldConfig | None = None) -> World:
    """Draw a marketplace. Same config, same arrays (bit for bit); a different seed gives different arrays."""
    cfg = config or WorldConfig()
    users_ss, ads_ss, placements_ss, truth_ss = np.random.SeedSequence([cfg.seed, 0x5C0E]).spawn(4)
    arrays: dict[str, npt.NDArray[np.generic]] = {}
    arrays.update(_users(cfg, np.random.default_rng(users_ss)))
    arrays.update(_ads(cfg, np.random.default_rng(ads_ss)))
    arrays.update(_placements(cfg, np.random.default_rng(placements_ss)))
    truth_rng = np.random.default_rng(truth_ss)
    affinity = truth_rng.normal(0.0, 0.35, size=(len(schema.REGIONS), len(schema.CATEGORIES)))
    arrays["region_category_affinity"] = affinity.astype(np.float32)
    return World(config=cfg, **{name: _frozen(a) for name, a in arrays.items()})  # type: ignore[arg-type]
