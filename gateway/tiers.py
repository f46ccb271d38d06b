"""Fallback tiers for plain scoring: primary, then a lighter fallback model, then the model's static prior.

:class:`TieredScorer` wraps an :class:`~gateway.engine.Engine`; callers that want tiers score through it, and
:meth:`Engine.score` itself stays as it was (no cost when tiers are unused). For one call of model ``name``:

1. **Primary**: ``name`` (or the version the router picks for ``key``), unless the model is *unhealthy*: it failed
   or was late ``unhealthy_after`` times in a row, and ``cooldown_s`` has not passed since (then one call probes it
   again). A primary that raises, or has not answered by its share of the deadline (``primary_share``), falls
   through.
2. **Fallback model**: the model's lighter fallback (``TierPolicy.fallback``), if it has one and it answers before
   the deadline.
3. **Static prior**: every row gets the constant ``TierPolicy.prior`` (the manifest's ``fallback.value``, e.g. the
   segment's mean CTR). Always in time.

Every result says which tier answered (:class:`Tiered`), and :meth:`TieredScorer.counts` exports how many calls each
tier answered per model (the monitoring layer reads it as a counter). The tier names are those of the request
pipeline's per-stage tiers (:class:`gateway.pipeline.Tier`), so the two report alike.

Deadlines: with a deadline, model calls run on the scorer's own small pool and the caller waits at most until the
deadline; a late call keeps running on its pool thread into a private buffer nobody reads any more (a running ONNX
Runtime call cannot be interrupted), and the caller's ``out`` is written only by the tier that answered. Without a
deadline, calls run on the caller's thread.

Test hook: :meth:`TieredScorer.inject` makes a model fail, or hang until an event is set, before it runs.

Thread-safety: every method may be called from any thread.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.engine import Engine
from gateway.errors import ScoregateError
from models.registry import RoutingKey
from models.store import ArtifactStore

__all__ = ["Fault", "HealthOptions", "Tier", "TierPolicy", "Tiered", "TieredScorer", "priors_from_store"]


class Tier(StrEnum):
    """Which tier answered a call."""

    PRIMARY = "primary"
    FALLBACK_MODEL = "fallback_model"
    STATIC_PRIOR = "static_prior"


@dataclass(frozen=True)
class TierPolicy:
    """A model's lower tiers: ``fallback`` model name (or ``None``) and the static ``prior``."""

    prior: float
    fallback: str | None = None


@dataclass(frozen=True)
class HealthOptions:
    #: Consecutive failures or late answers after which the primary is skipped.
    unhealthy_after: int = 3
    #: How long an unhealthy primary is skipped before one call probes it again.
    cooldown_s: float = 5.0
    #: Share of the deadline the primary may use; the rest is the fallback model's.
    primary_share: float = 0.6
    #: Threads that run model calls under a deadline.
    pool_threads: int = 4


@dataclass(frozen=True)
class Tiered:
    """One call's answer: the scores, the tier and the model that answered ("" for the prior), and why the tiers
    above failed ("" when the primary answered)."""

    scores: npt.NDArray[np.float32]
    tier: Tier
    served_by: str
    error: str = ""


@dataclass(frozen=True)
class Fault:
    """A test hook (:meth:`TieredScorer.inject`): ``error`` raises; ``hold`` blocks the call until it is set."""

    error: str = ""
    hold: threading.Event | None = None


class _Health:
    __slots__ = ("failures", "until")

    def __init__(self) -> None:
        self.failures = 0
        self.until = 0.0


class TieredScorer:
    """Scores through the tiers of the module docstring."""

    def __init__(
        self,
        engine: Engine,
        policies: Mapping[str, TierPolicy],
        options: HealthOptions | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.policies = dict(policies)
        self.options = options or HealthOptions()
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[str, dict[str, int]] = {}
        self._health: dict[str, _Health] = {}
        self._faults: dict[str, Fault] = {}
        self._pool: cf.ThreadPoolExecutor | None = None

    # -- test hook ---------------------------------------------------------------------------------------------
    def inject(self, name: str, fault: Fault | None) -> None:
        """Make every call of model ``name`` (primary or fallback) fail or hang first; ``None`` removes it."""
        with self._lock:
            if fault is None:
                self._faults.pop(name, None)
            else:
                self._faults[name] = fault

    # -- scoring -----------------------------------------------------------------------------------------------
    def score(
        self,
        name: str,
        x: npt.NDArray[Any],
        out: npt.NDArray[np.float32] | None = None,
        *,
        key: RoutingKey | None = None,
        deadline_s: float | None = None,
    ) -> Tiered:
        """Score ``x`` with ``name`` through the tiers; ``deadline_s`` is the time allowed from now (``None``: no
        deadline). Never raises for a model failure; raises ``KeyError`` for a model with no policy."""
        policy = self.policies[name]
        rows = x.shape[0]
        start = self._clock()
        errors: list[str] = []
        opts = self.options
        if self._healthy(name, start):
            budget = None if deadline_s is None else deadline_s * opts.primary_share
            scores, error = self._call(name, x, key, budget)
            self._record(name, error)
            if scores is not None:
                return self._answer(name, scores, out, Tier.PRIMARY, name, "")
            errors.append(f"{name}: {error}")
        else:
            errors.append(f"{name}: unhealthy, skipped")
        if policy.fallback is not None:
            left = None if deadline_s is None else deadline_s - (self._clock() - start)
            if left is None or left > 0:
                scores, error = self._call(policy.fallback, x, key, left)
                if scores is not None:
                    return self._answer(name, scores, out, Tier.FALLBACK_MODEL, policy.fallback, "; ".join(errors))
                errors.append(f"{policy.fallback}: {error}")
        prior = np.full(rows, policy.prior, np.float32) if out is None else out
        prior[...] = policy.prior
        return self._answer(name, prior, None, Tier.STATIC_PRIOR, "", "; ".join(errors))

    def _call(
        self, model: str, x: npt.NDArray[Any], key: RoutingKey | None, budget: float | None
    ) -> tuple[npt.NDArray[np.float32] | None, str]:
        if budget is None:
            try:
                return self._run(model, x, key), ""
            except Exception as exc:  # any model failure goes to the next tier, never to the caller
                return None, _message(exc)
        future = self._executor().submit(self._run, model, x, key)
        try:
            return future.result(timeout=max(budget, 0.0)), ""
        except cf.TimeoutError:
            future.cancel()
            return None, f"no answer within {budget * 1e3:.1f} ms"
        except Exception as exc:
            return None, _message(exc)

    def _run(self, model: str, x: npt.NDArray[Any], key: RoutingKey | None) -> npt.NDArray[np.float32]:
        fault = self._faults.get(model)
        if fault is not None:
            if fault.hold is not None:
                fault.hold.wait()
            if fault.error:
                raise RuntimeError(fault.error)
        # A private output: a late call may still write it after the caller moved on.
        return self.engine.score(model, x, key=key)

    def _answer(
        self,
        name: str,
        scores: npt.NDArray[np.float32],
        out: npt.NDArray[np.float32] | None,
        tier: Tier,
        served_by: str,
        error: str,
    ) -> Tiered:
        if out is not None:
            out[...] = scores
            scores = out
        with self._lock:
            per = self._counts.setdefault(name, {t.value: 0 for t in Tier})
            per[tier.value] += 1
        return Tiered(scores, tier, served_by, error)

    # -- health ------------------------------------------------------------------------------------------------
    def _healthy(self, name: str, now: float) -> bool:
        health = self._health.get(name)
        return health is None or health.failures < self.options.unhealthy_after or now >= health.until

    def _record(self, name: str, error: str) -> None:
        with self._lock:
            health = self._health.setdefault(name, _Health())
            if not error:
                health.failures = 0
                return
            health.failures += 1
            if health.failures >= self.options.unhealthy_after:
                health.until = self._clock() + self.options.cooldown_s

    def healthy(self, name: str) -> bool:
        """Whether the primary of ``name`` is tried on the next call."""
        return self._healthy(name, self._clock())

    # -- export ------------------------------------------------------------------------------------------------
    def counts(self) -> dict[str, dict[str, int]]:
        """Calls answered per model and tier (``{"pctr": {"primary": 9, "fallback_model": 1, "static_prior": 0}}``)."""
        with self._lock:
            return {name: dict(per) for name, per in self._counts.items()}

    def _executor(self) -> cf.ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = cf.ThreadPoolExecutor(self.options.pool_threads, thread_name_prefix="tiered-score")
            return self._pool

    def close(self) -> None:
        """Stop the pool; calls still running finish on their own (faults that hold them must be released)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def _message(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, ScoregateError) else f"{type(exc).__name__}: {exc}"


def priors_from_store(store: ArtifactStore, fallbacks: Mapping[str, str] | None = None) -> dict[str, TierPolicy]:
    """A policy per published model: its latest manifest's ``fallback.value`` as the prior, and the fallback
    model ``fallbacks`` names for it (if any)."""
    fallbacks = fallbacks or {}
    policies: dict[str, TierPolicy] = {}
    for name in store.names():
        latest = store.latest(name)
        if latest is None:
            continue
        manifest = store.get(name, latest).manifest
        policies[name] = TierPolicy(manifest.fallback.value, fallbacks.get(name))
    return policies
