"""``RegressionGate``: a canary or shadow version against live, on the same traffic, with a sequential test.

The lifecycle's rollout policy scores a request with both versions (the canary's slice with live in shadow, or a
shadow version beside live) and hands the two score vectors, same rows in the same order, to
:meth:`RegressionGate.observe`. The gate decides, after each request:

1. **Score shift**, a sequential probability ratio test (Wald) on ``d = ln mean(candidate) - ln mean(live)`` per
   request: H0 ``d = 0`` against H1 ``|d| = delta`` (``delta = ln 1.1``: a 10 % change of the mean pCTR), two
   one-sided tests at ``alpha_scores / 2`` each, the variance estimated as the requests come, with a floor so that
   a near-identical candidate does not make every tiny difference decisive.
2. **Rank agreement**: the mean Spearman correlation of the two versions over each request's candidates must stay
   at least ``min_rank_correlation`` (auction order is what costs money).
3. **Calibration once labels mature** (:meth:`observe_labels`): observed positives against the candidate's
   predicted positives on the candidate's own impressions, a two-sided z-test at ``alpha_labels``.

The **false-alarm budget** is ``alpha``: the probability that a candidate as good as live is rolled back, split
between the two statistical tests (Bonferroni: ``alpha_scores + alpha_labels = alpha``; Wald's bound holds for
the SPRT at any stopping time, so there is no peeking penalty). The rank check is a fixed tolerance, not a test.

A decision is final: ``ROLLBACK`` calls the :class:`RollbackHandler` once (the lifecycle's automatic rollback);
``PASS`` means H0 was accepted after at least ``min_requests`` requests. Thread-safe (one lock per gate).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import StrEnum
from math import erfc, log, sqrt
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from gateway.monitoring.divergence import spearman

__all__ = ["GateDecision", "GateOptions", "GateStatus", "RegressionGate", "RollbackHandler"]


class GateDecision(StrEnum):
    CONTINUE = "continue"  # not enough evidence either way yet
    PASS = "pass"  # the candidate behaves like live (H0 accepted)
    ROLLBACK = "rollback"  # the candidate regressed; the rollback handler was called


class RollbackHandler(Protocol):
    """What the lifecycle implements: take ``candidate_version`` of ``model`` out of traffic."""

    def rollback(self, model: str, candidate_version: str, reason: str) -> None: ...


@dataclass(frozen=True)
class GateOptions:
    """Documented defaults; see the module docstring for what each controls."""

    delta: float = log(1.1)
    alpha: float = 1e-3
    """The false-alarm budget: P(rollback | candidate as good as live)."""
    label_share: float = 0.2
    """Share of ``alpha`` spent on the label test (the rest on the score SPRT)."""
    beta: float = 0.01
    sigma_floor: float = 0.02
    min_requests: int = 50
    min_rank_correlation: float = 0.9
    min_label_positives: int = 50


@dataclass(frozen=True)
class GateStatus:
    model: str
    live_version: str
    candidate_version: str
    decision: GateDecision
    requests: int
    mean_log_ratio: float
    llr_up: float
    llr_down: float
    rank_correlation: float
    reason: str
    decided_at_request: int | None


class RegressionGate:
    def __init__(
        self,
        model: str,
        live_version: str,
        candidate_version: str,
        options: GateOptions | None = None,
        on_rollback: RollbackHandler | None = None,
    ) -> None:
        self.model = model
        self.live_version = live_version
        self.candidate_version = candidate_version
        self.options = o = options or GateOptions()
        self._handler = on_rollback
        self._lock = threading.Lock()
        a_scores = o.alpha * (1.0 - o.label_share)
        self._upper = log((1.0 - o.beta) / (a_scores / 2.0))
        self._lower = log(o.beta / (1.0 - a_scores / 2.0))
        self._n = 0
        self._sum = 0.0
        self._sumsq = 0.0
        self._rank_sum = 0.0
        self._label_expected = 0.0
        self._label_observed = 0
        self._decision = GateDecision.CONTINUE
        self._reason = ""
        self._decided_at: int | None = None
        self._llr = (0.0, 0.0)
        self._notified = False

    @property
    def decision(self) -> GateDecision:
        return self._decision

    def observe(
        self, live: npt.NDArray[Any], candidate: npt.NDArray[Any], rank_correlation: float | None = None
    ) -> GateDecision:
        """One request: both versions' scores for the same rows (and their rank correlation, when the caller has
        it already). Non-finite or non-positive means are skipped."""
        rho = spearman(np.asarray(live), np.asarray(candidate)) if rank_correlation is None else rank_correlation
        means = np.array([np.mean(live, dtype=np.float64)]), np.array([np.mean(candidate, dtype=np.float64)])
        return self.observe_means(*means, np.array([rho]))

    def observe_means(
        self, live: npt.NDArray[Any], candidate: npt.NDArray[Any], rank_correlations: npt.NDArray[Any]
    ) -> GateDecision:
        """Several requests in arrival order, each as both versions' mean score and their rank correlation (the
        comparison worker's batches); the test runs after each, as if they had come one by one."""
        with np.errstate(divide="ignore", invalid="ignore"):
            d = np.log(candidate) - np.log(live)
        usable = np.isfinite(d) & (live > 0) & (candidate > 0)
        decision = self._decision
        with self._lock:
            for di, rho in zip(d[usable].tolist(), np.asarray(rank_correlations)[usable].tolist(), strict=True):
                if self._decision is not GateDecision.CONTINUE:
                    break
                self._n += 1
                self._sum += di
                self._sumsq += di * di
                self._rank_sum += rho
                decision = self._decide()
            decision = self._decision
        self._notify(decision)
        return decision

    def observe_labels(self, candidate_scores: npt.NDArray[Any], labels: npt.NDArray[Any]) -> GateDecision:
        """Matured impressions the candidate served: its scores and the 0/1 labels they got."""
        with self._lock:
            if self._decision is not GateDecision.CONTINUE:
                return self._decision
            self._label_expected += float(np.sum(candidate_scores))
            self._label_observed += int(np.sum(labels))
            decision = self._decide()
        self._notify(decision)
        return decision

    def _notify(self, decision: GateDecision) -> None:
        # Outside the lock: the handler may read status() or take locks of its own.
        if decision is GateDecision.ROLLBACK and self._handler is not None and not self._notified:
            self._notified = True
            self._handler.rollback(self.model, self.candidate_version, self._reason)

    def _decide(self) -> GateDecision:
        o = self.options
        n = self._n
        if n >= 2:
            mean = self._sum / n
            var = max((self._sumsq - n * mean * mean) / (n - 1), 0.0)
        else:
            mean, var = (self._sum, 0.0)
        var = max(var, o.sigma_floor**2)
        s = self._sum
        up = (o.delta * s - n * o.delta**2 / 2.0) / var
        down = (-o.delta * s - n * o.delta**2 / 2.0) / var
        self._llr = (up, down)
        if self._label_observed >= o.min_label_positives:
            e, y = self._label_expected, self._label_observed
            z = (y - e) / sqrt(max(e, 1e-9))
            if erfc(abs(z) / sqrt(2.0)) < o.alpha * o.label_share:
                return self._fail(f"calibration ratio {e / y:.3f} on {y} matured positives (z={z:.1f})")
        if n < o.min_requests:
            return self._decision
        if up > self._upper or down > self._upper:
            return self._fail(f"mean score changed by {100 * (np.exp(mean) - 1):+.1f}% (SPRT, {n} requests)")
        rank = self._rank_sum / n
        if rank < o.min_rank_correlation:
            return self._fail(f"rank correlation with live {rank:.3f} < {o.min_rank_correlation}")
        if up < self._lower and down < self._lower:
            self._decision = GateDecision.PASS
            self._decided_at = n
            self._reason = f"no regression after {n} requests"
        return self._decision

    def _fail(self, reason: str) -> GateDecision:
        self._decision = GateDecision.ROLLBACK
        self._decided_at = self._n
        self._reason = reason
        return self._decision

    def status(self) -> GateStatus:
        with self._lock:
            n = self._n
            return GateStatus(
                self.model,
                self.live_version,
                self.candidate_version,
                self._decision,
                n,
                self._sum / n if n else 0.0,
                self._llr[0],
                self._llr[1],
                self._rank_sum / n if n else 1.0,
                self._reason,
                self._decided_at,
            )
