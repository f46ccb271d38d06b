"""The ground truth: the known probabilities every label in the marketplace is drawn from.

All functions are vectorised over M (user, ad, context) triples and return float64 [M]. With ``sigma`` the logistic
function, ``s = <user_interest, ad_topic> / sqrt(8)`` the latent match, and codes from :mod:`models.synth.schema`:

``p_click = sigma(-4.6 + 1.0 s + 0.4 clickiness_u + 0.5 quality_a + affinity[region_u, category_a]
+ device_effect (mobile +0.2, desktop 0, ctv -0.5) + 0.3 cos(2 pi (hour - 21) / 24) + 0.1 weekend
+ 0.15 page_quality - 0.15 slot_index - 0.2 fatigue_u + ctr_shift)``
    The mean click-through rate is about 2.5 % (median 1 %; 1st-99th percentile 0.02 % to 24 %).

``p_complete = sigma(1.4 - 1.0 is_video (len_a / 30 - 1) + 0.8 [device = ctv] - 0.3 slot_index
+ 0.6 completion_u + 0.3 quality_a + 0.4 s + genre_effect)``
    Probability that the creative plays to its end (for display creatives, of length 0, that it is viewed);
    mean about 80 %.

``p_cvr = sigma(-1.6 + 0.6 conversion_u + 0.6 conversion_a + 0.3 s + objective_effect)`` and
``p_conversion = p_click * p_cvr``
    A conversion needs a click; ``p_conversion`` is per impression (mean about 0.6 %), so its mean matches the
    conversion label's.

``p_unsafe = sigma(-3.3 + 2.5 sensitive_a * genre_sensitivity - 0.5 quality_a - 0.4 page_quality)``
    Probability that the placement of the ad in this context is flagged as brand-unsafe; sensitive categories are
    :data:`~models.synth.schema.SENSITIVE_CATEGORIES`; kids content is the most sensitive, then news (mean ~5 %).

``ctr_shift`` is 0 except under an injected CTR drift (:mod:`models.synth.streams`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from models.synth import schema
from models.synth.contexts import ContextBatch
from models.synth.world import World

F64 = npt.NDArray[np.float64]
Ids = npt.NDArray[np.integer]

CLICK_BIAS = -4.6
DEVICE_CLICK_EFFECT = np.array([0.2, 0.0, -0.5])  # schema.DEVICES order
GENRE_COMPLETION_EFFECT = np.array([-0.2, 0.3, 0.2, 0.1, -0.1])  # schema.GENRES order
OBJECTIVE_CVR_EFFECT = np.array([0.0, 0.6, -0.8, -0.5])  # schema.OBJECTIVES order
GENRE_SENSITIVITY = np.array([0.6, 0.1, 0.1, 1.0, 0.1])  # schema.GENRES order
SENSITIVE = np.array([c in schema.SENSITIVE_CATEGORIES for c in schema.CATEGORIES], dtype=np.float64)


def sigmoid(x: F64) -> F64:
    """The logistic function (float64)."""
    out: F64 = 0.5 * (1.0 + np.tanh(0.5 * x))  # tanh form: no overflow warnings for large |x|
    return out


@dataclass(frozen=True, eq=False)
class Truth:
    """Ground-truth probabilities of M impressions (float64 [M] each)."""

    p_click: F64
    p_complete: F64
    p_cvr: F64
    p_conversion: F64
    p_unsafe: F64


def latent_match(world: World, user_ids: Ids, ad_ids: Ids) -> F64:
    """``<user_interest, ad_topic> / sqrt(8)`` for each pair (float64 [M])."""
    dots = np.einsum("ij,ij->i", world.user_interest[user_ids], world.ad_topic[ad_ids], dtype=np.float64)
    out: F64 = dots / np.sqrt(schema.N_INTERESTS)
    return out


def truth(world: World, user_ids: Ids, ad_ids: Ids, contexts: ContextBatch, ctr_shift: float = 0.0) -> Truth:
    """The ground-truth probabilities of M impressions (user_ids, ad_ids and contexts have length M)."""
    if not (len(user_ids) == len(ad_ids) == len(contexts)):
        raise ValueError("user_ids, ad_ids and contexts must have the same length")
    s = latent_match(world, user_ids, ad_ids)
    quality = world.ad_quality[ad_ids].astype(np.float64)
    slot = contexts.slot_pos.astype(np.float64)
    pq = contexts.page_quality.astype(np.float64)
    hour = contexts.hour.astype(np.float64)
    click_logit = (
        CLICK_BIAS
        + s
        + 0.4 * world.user_clickiness[user_ids]
        + 0.5 * quality
        + world.region_category_affinity[world.user_region[user_ids], world.ad_category[ad_ids]]
        + DEVICE_CLICK_EFFECT[contexts.device]
        + 0.3 * np.cos(2.0 * np.pi * (hour - 21.0) / 24.0)
        + 0.1 * contexts.weekend
        + 0.15 * pq
        - 0.15 * slot
        - 0.2 * world.user_fatigue[user_ids]
        + ctr_shift
    )
    is_video = world.ad_format[ad_ids].astype(np.float64)
    length = world.ad_creative_len_s[ad_ids].astype(np.float64)
    complete_logit = (
        1.4
        - 1.0 * is_video * (length / 30.0 - 1.0)
        + 0.8 * (contexts.device == schema.code_of(schema.DEVICES, "ctv"))
        - 0.3 * slot
        + 0.6 * world.user_completion[user_ids]
        + 0.3 * quality
        + 0.4 * s
        + GENRE_COMPLETION_EFFECT[contexts.genre]
    )
    cvr_logit = (
        -1.6
        + 0.6 * world.user_conversion[user_ids]
        + 0.6 * world.ad_conversion[ad_ids]
        + 0.3 * s
        + OBJECTIVE_CVR_EFFECT[world.ad_objective[ad_ids]]
    )
    unsafe_logit = (
        -3.3 + 2.5 * SENSITIVE[world.ad_category[ad_ids]] * GENRE_SENSITIVITY[contexts.genre] - 0.5 * quality - 0.4 * pq
    )
    p_click = sigmoid(click_logit)
    p_cvr = sigmoid(cvr_logit)
    return Truth(
        p_click=p_click,
        p_complete=sigmoid(complete_logit),
        p_cvr=p_cvr,
        p_conversion=p_click * p_cvr,
        p_unsafe=sigmoid(unsafe_logit),
    )
