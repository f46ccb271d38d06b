"""Value and auction arithmetic on hand-made candidates: pricing rules, reserve, brand safety, pods."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gateway.pipeline.auction import OBJECTIVE_CODES, AuctionKind, ecpm, fill_pod, run_auction

F = np.float32


def test_ecpm_prices_each_objective_and_drops_unsafe() -> None:
    objective = np.array([OBJECTIVE_CODES[o] for o in ("cpc", "cpa", "awareness", "ctv_completion", "cpc")], np.int32)
    bid = np.array([2.0, 50.0, 3.0, 20.0, 2.0], F)
    p_click = np.full(5, 0.01, F)
    p_conv = np.full(5, 0.001, F)
    p_comp = np.full(5, 0.5, F)
    p_unsafe = np.array([0.0, 0.0, 0.0, 0.0, 0.9], F)
    out = ecpm(bid, objective, p_click, p_conv, p_comp, p_unsafe, unsafe_above=0.3)
    assert out[:4] == pytest.approx([1000 * 2 * 0.01, 1000 * 50 * 0.001, 3.0, 20 * 0.5])
    assert math.isnan(out[4]), "p(unsafe) above the threshold does not bid"
    assert out.dtype == np.float32


def test_second_price_pays_the_runner_up_or_the_reserve() -> None:
    values = np.array([5.0, 9.0, 7.0, np.nan], F)
    second = run_auction(values, reserve=1.0, kind=AuctionKind.SECOND_PRICE)
    assert (second.winner, second.ecpm, second.price) == (1, 9.0, 7.0)
    first = run_auction(values, reserve=1.0, kind=AuctionKind.FIRST_PRICE)
    assert (first.winner, first.price) == (1, 9.0)
    alone = run_auction(np.array([3.0, 0.5], F), reserve=2.0, kind=AuctionKind.SECOND_PRICE)
    assert (alone.winner, alone.price) == (0, 2.0), "the reserve sets the price when nobody else clears it"


def test_nobody_above_the_reserve_leaves_the_slot_unfilled() -> None:
    out = run_auction(np.array([0.5, np.nan], F), reserve=1.0, kind=AuctionKind.SECOND_PRICE)
    assert not out.filled and out.price == 0.0
    assert not run_auction(np.array([], F), 1.0, AuctionKind.FIRST_PRICE).filled


def test_pod_fills_best_first_with_competitive_separation_and_time() -> None:
    values = np.array([10.0, 9.0, 8.0, 7.0, 6.0, 0.5], F)
    durations = np.array([15.0, 15.0, 30.0, 15.0, 15.0, 15.0], F)
    category = np.array([1, 1, 2, 3, 4, 5], np.int32)
    pod = fill_pod(values, durations, category, pod_seconds=45, max_slots=4, reserve=1.0,
                   kind=AuctionKind.SECOND_PRICE)  # fmt: skip
    # 0 (cat 1, 15 s); 1 shares category 1: skipped; 2 (30 s) fits exactly; the pod is then full.
    assert pod.selected == (0, 2)
    assert pod.seconds == 45
    # GSP: the first pays the next selected ad's eCPM, the last the best loser below its own (ad 3, 7.0).
    assert pod.prices == pytest.approx((8.0, 7.0))
    first = fill_pod(values, durations, category, 45, 4, 1.0, AuctionKind.FIRST_PRICE)
    assert first.prices == pytest.approx((10.0, 8.0))


def test_pod_respects_slots_and_separation_off() -> None:
    values = np.array([10.0, 9.0, 8.0], F)
    durations = np.full(3, 10.0, F)
    same = np.zeros(3, np.int32)
    assert fill_pod(values, durations, same, 60, 3, 1.0, AuctionKind.SECOND_PRICE).selected == (0,)
    off = fill_pod(values, durations, same, 60, 2, 1.0, AuctionKind.SECOND_PRICE, separate=False)
    assert off.selected == (0, 1), "max_slots caps the pod"
    assert off.prices == pytest.approx((9.0, 8.0))
    empty = fill_pod(values, np.full(3, 90.0, F), same, 60, 3, 1.0, AuctionKind.SECOND_PRICE)
    assert empty.selected == () and empty.seconds == 0
