"""Value and auction: eCPM from bids and predictions, a first- or second-price auction with a reserve, and CTV ad
pods filled under competitive separation.

Everything here is array arithmetic over the candidates of one request (no per-candidate Python objects), except
the pod fill, which walks at most the candidates that clear the reserve, best first, and stops when the break is
full.

Pricing (the marketplace's, as the reference Java ad server prices): CPC ``1000 * bid * p_click``; CPA
``1000 * bid * p_conversion`` (per impression); awareness CPM ``bid``; CTV completed-view CPM
``bid * p_completion``. A candidate whose p(unsafe) exceeds the threshold, or whose eCPM is below the reserve or not
finite, does not bid.

Prices: a second-price winner pays the larger of the runner-up's eCPM and the reserve (never more than its own
bid); a first-price winner pays its eCPM. In a pod (selected best first), each ad pays the next selected ad's eCPM,
and the last one the best eCPM below its own that did not get in, never less than the reserve (generalised second
price); under first price, each pays its own eCPM.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

__all__ = ["OBJECTIVE_CODES", "AuctionKind", "AuctionOutcome", "PodOutcome", "ecpm", "fill_pod", "run_auction"]

#: Objective codes as the marketplace export numbers them (``vocabularies.objectives``).
OBJECTIVE_CODES = {"cpc": 0, "cpa": 1, "awareness": 2, "ctv_completion": 3}

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]


class AuctionKind(StrEnum):
    FIRST_PRICE = "first_price"
    SECOND_PRICE = "second_price"


@dataclass(frozen=True)
class AuctionOutcome:
    """One slot's auction: the winner's candidate index (-1: no fill), its eCPM and the clearing price (CPM)."""

    winner: int
    ecpm: float
    price: float

    @property
    def filled(self) -> bool:
        return self.winner >= 0


@dataclass(frozen=True)
class PodOutcome:
    """An ad break: selected candidate indices in play order, each one's price, and the seconds filled."""

    selected: tuple[int, ...]
    prices: tuple[float, ...]
    seconds: float


def ecpm(
    bid: F32, objective: I32, p_click: F32, p_conversion: F32, p_completion: F32, p_unsafe: F32, unsafe_above: float
) -> F32:
    """Per-candidate eCPM (USD); NaN where the candidate does not bid (unsafe)."""
    out = np.where(
        objective == OBJECTIVE_CODES["cpc"],
        1000.0 * bid * p_click,
        np.where(
            objective == OBJECTIVE_CODES["cpa"],
            1000.0 * bid * p_conversion,
            np.where(objective == OBJECTIVE_CODES["ctv_completion"], bid * p_completion, bid),
        ),
    ).astype(np.float32, copy=False)
    out[p_unsafe > unsafe_above] = np.nan
    return out


def run_auction(values: F32, reserve: float, kind: AuctionKind) -> AuctionOutcome:
    """One slot: the best eCPM at or above the reserve wins."""
    bids = np.where(np.isfinite(values) & (values >= reserve), values, -np.inf)
    if bids.size == 0:
        return AuctionOutcome(-1, float("nan"), 0.0)
    winner = int(np.argmax(bids))
    top = float(bids[winner])
    if top == -np.inf:
        return AuctionOutcome(-1, float("nan"), 0.0)
    if kind is AuctionKind.FIRST_PRICE:
        return AuctionOutcome(winner, top, top)
    bids[winner] = -np.inf
    second = float(bids.max()) if bids.size > 1 else -np.inf
    return AuctionOutcome(winner, top, min(top, max(second, reserve)))


def fill_pod(
    values: F32,
    durations_s: F32,
    groups: I32,
    pod_seconds: float,
    max_slots: int,
    reserve: float,
    kind: AuctionKind,
    separate: bool = True,
) -> PodOutcome:
    """Fill an ad break of ``pod_seconds`` and at most ``max_slots`` ads, best eCPM first, each ad only if it fits
    the time left and (``separate``) no ad of its group (category or advertiser) is in the pod already."""
    ok = np.isfinite(values) & (values >= reserve) & (durations_s > 0) & (durations_s <= pod_seconds)
    order = np.flatnonzero(ok)
    order = order[np.argsort(-values[order], kind="stable")]
    selected: list[int] = []
    used: set[int] = set()
    left = pod_seconds
    for i in order:
        if len(selected) == max_slots or left <= 0:
            break
        g = int(groups[i])
        d = float(durations_s[i])
        if d > left or (separate and g in used):
            continue
        selected.append(int(i))
        used.add(g)
        left -= d
    own = [float(values[i]) for i in selected]
    if kind is AuctionKind.FIRST_PRICE:
        prices = tuple(own)
    else:
        # Generalised second price: each pays the next selected ad's eCPM; the last pays the best eCPM below its
        # own that did not get in, or the reserve.
        chosen = np.zeros(values.shape[0], dtype=bool)
        chosen[selected] = True
        losers = values[order][~chosen[order]]
        prices = tuple(
            max(reserve, own[k + 1] if k + 1 < len(own) else float(losers[losers <= own[k]].max(initial=reserve)))
            for k in range(len(own))
        )
    return PodOutcome(tuple(selected), prices, pod_seconds - left)
