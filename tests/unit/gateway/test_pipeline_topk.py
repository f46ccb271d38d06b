"""Exact top-k: the same set as a full sort, on random, sorted, constant and adversarial inputs."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.pipeline.topk import top_k


def _reference(scores: np.ndarray, k: int) -> np.ndarray:
    return np.sort(scores)[::-1][:k]


@pytest.mark.parametrize("n", [10, 5000, 100_000])
@pytest.mark.parametrize("k", [0, 1, 7, 2000, 9999])
def test_matches_a_full_sort(n: int, k: int) -> None:
    rng = np.random.default_rng(n + k)
    scores = rng.standard_normal(n).astype(np.float32)
    got = top_k(scores, k)
    want_k = min(k, n)
    assert got.shape == (want_k,)
    assert len(set(got.tolist())) == want_k
    np.testing.assert_array_equal(np.sort(scores[got])[::-1], _reference(scores, want_k))


def test_adversarial_orders_ties_and_the_fallback() -> None:
    n, k = 100_000, 2000
    ascending = np.arange(n, dtype=np.float32)
    assert set(top_k(ascending, k).tolist()) == set(range(n - k, n))
    # The strided sample sees only zeros; the large values sit between its points: a low threshold, still exact.
    spiky = np.zeros(n, np.float32)
    spiky[1::16] = np.arange(n // 16, dtype=np.float32) + 1
    np.testing.assert_array_equal(np.sort(spiky[top_k(spiky, k)]), np.sort(spiky)[-k:])
    hidden = np.ones(n, np.float32)
    hidden[::16] = 2.0  # the sample is all 2s: its threshold 2 keeps only n/16 = 6250 >= k, fine
    assert (hidden[top_k(hidden, k)] == 2.0).all()
    # Only the sampled positions hold large values: the threshold (a high sample rank) clears ~170 scores, fewer
    # than k, so the exact full partition must answer.
    sampled_only = np.full(n, -1.0, np.float32)
    sampled_only[::16] = np.arange(n // 16, dtype=np.float32)
    got = top_k(sampled_only, k)
    np.testing.assert_array_equal(np.sort(sampled_only[got]), np.arange(n // 16 - k, n // 16, dtype=np.float32))
    constant = np.full(n, 0.5, np.float32)
    assert top_k(constant, k).shape == (k,)
