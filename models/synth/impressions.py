"""Labelled impressions: who saw which ad where and when, the true probabilities, and the drawn labels.

The logging policy is uniform: a request's user is drawn by activity, its context from the user's device mix, and
its ad uniformly among the ads eligible for the context (video ads only in CTV pods). Uniform logging keeps the
labels free of selection bias, so a model's calibration can be checked against the truth.

Each impression records the ground truth (``p_click`` ...; see :mod:`models.synth.truth`) and the labels drawn from
it with independent uniforms: ``click ~ Bernoulli(p_click)``, ``completion ~ Bernoulli(p_complete)``,
``conversion = click * Bernoulli(p_cvr)`` (so ``E[conversion] = p_conversion``), ``unsafe ~ Bernoulli(p_unsafe)``.

Event times are uniform over ``days`` days from the world's start and sorted; the last ``holdout_days`` days are the
holdout (a split by event time, as production models are validated on the days after their training window).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from models.synth.contexts import ContextBatch, sample_contexts
from models.synth.features import impression_matrix
from models.synth.schema import DEVICES, code_of
from models.synth.truth import Truth, truth
from models.synth.world import World

LABELS: Final = ("click", "completion", "conversion", "unsafe")
"""Label names; :meth:`Impressions.label` and :meth:`Impressions.p_true` take one of these."""

_DAY_MS: Final = 86_400_000


@dataclass(frozen=True)
class ImpressionConfig:
    """How many impressions over how many days, and the seed (``None``: the world's seed)."""

    n: int = 300_000
    days: int = 8
    holdout_days: int = 1
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.n <= 0 or self.days <= 0:
            raise ValueError("ImpressionConfig.n and .days must be positive")
        if not 0 < self.holdout_days < self.days:
            raise ValueError("ImpressionConfig.holdout_days must be in (0, days)")


@dataclass(frozen=True, eq=False)
class Impressions:
    """M impressions as parallel arrays, sorted by event time (UTC epoch milliseconds)."""

    impression_id: npt.NDArray[np.int64]
    event_time_ms: npt.NDArray[np.int64]
    user_id: npt.NDArray[np.int32]
    ad_id: npt.NDArray[np.int32]
    contexts: ContextBatch
    truth: Truth
    click: npt.NDArray[np.int8]
    completion: npt.NDArray[np.int8]
    conversion: npt.NDArray[np.int8]
    unsafe: npt.NDArray[np.int8]
    window_ms: tuple[int, int] = field(default=(0, 0))
    """[start, end) of event time the impressions were drawn over."""
    holdout_start_ms: int = 0
    """Impressions at or after this event time are the holdout."""

    def __len__(self) -> int:
        return int(self.impression_id.shape[0])

    def label(self, name: str) -> npt.NDArray[np.int8]:
        """The 0/1 label array called ``name`` (one of :data:`LABELS`)."""
        if name not in LABELS:
            raise KeyError(f"unknown label {name!r}; expected one of {LABELS}")
        out: npt.NDArray[np.int8] = getattr(self, name)
        return out

    def p_true(self, name: str) -> npt.NDArray[np.float64]:
        """The ground-truth probability of label ``name`` (float64)."""
        attr = {"click": "p_click", "completion": "p_complete", "conversion": "p_conversion", "unsafe": "p_unsafe"}
        if name not in attr:
            raise KeyError(f"unknown label {name!r}; expected one of {LABELS}")
        out: npt.NDArray[np.float64] = getattr(self.truth, attr[name])
        return out

    def holdout_mask(self) -> npt.NDArray[np.bool_]:
        """True for the holdout impressions (event time >= ``holdout_start_ms``)."""
        return self.event_time_ms >= self.holdout_start_ms

    def matrix(self, world: World, out: npt.NDArray[np.float32] | None = None) -> npt.NDArray[np.float32]:
        """The feature matrix of all impressions, float32 [M, 64]."""
        return impression_matrix(world, self.user_id, self.ad_id, self.contexts, out=out)


def _choose_ads(world: World, device: npt.NDArray[np.int8], rng: np.random.Generator) -> npt.NDArray[np.int32]:
    draws = rng.random(size=int(device.shape[0]))
    ads = (draws * world.n_ads).astype(np.int32)
    pods = device == code_of(DEVICES, "ctv")
    pool = world.video_ad_ids
    ads[pods] = pool[(draws[pods] * pool.shape[0]).astype(np.int64)]
    return ads


def sample_impressions(world: World, config: ImpressionConfig | None = None) -> Impressions:
    """Draw labelled impressions. Same world and config, same arrays (bit for bit)."""
    cfg = config or ImpressionConfig()
    seed = world.config.seed if cfg.seed is None else cfg.seed
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x1A9E]))
    start_ms = world.config.start_epoch_s * 1000
    end_ms = start_ms + cfg.days * _DAY_MS
    times = np.sort(rng.integers(start_ms, end_ms, size=cfg.n, dtype=np.int64))
    user_cdf = np.cumsum(world.user_activity)
    users = np.minimum(np.searchsorted(user_cdf, rng.random(cfg.n) * user_cdf[-1]), world.n_users - 1)
    users = users.astype(np.int32)
    contexts = sample_contexts(world, users, times // 1000, rng)
    ads = _choose_ads(world, contexts.device, rng)
    t = truth(world, users, ads, contexts)
    u = rng.random((4, cfg.n))
    click = (u[0] < t.p_click).astype(np.int8)
    return Impressions(
        impression_id=np.arange(cfg.n, dtype=np.int64),
        event_time_ms=times,
        user_id=users,
        ad_id=ads,
        contexts=contexts,
        truth=t,
        click=click,
        completion=(u[1] < t.p_complete).astype(np.int8),
        conversion=(click * (u[2] < t.p_cvr)).astype(np.int8),
        unsafe=(u[3] < t.p_unsafe).astype(np.int8),
        window_ms=(start_ms, end_ms),
        holdout_start_ms=end_ms - cfg.holdout_days * _DAY_MS,
    )
