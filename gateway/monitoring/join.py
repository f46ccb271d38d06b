"""``LabelJoin``: delayed labels joined to impressions by request id, within a maturity window.

A click (or completion) event arrives seconds to minutes after the impression it belongs to. The join keeps each
impression *pending* for ``maturity_s`` after it was recorded; a label event for its request id marks it positive
(or carries an explicit 0/1 value). When the window elapses the impression *matures*: with the label it received,
or as a negative if none came. Only matured impressions enter calibration, so the metrics never count a click
that simply has not arrived yet as a miss.

Bad input is counted, never raised (a monitor must not take the gateway down):

* a label for a request id the join never saw (or forgot: ids of matured impressions are remembered for
  ``remember`` more ids) -> ``unknown_label``;
* a second label for the same request id -> ``duplicate_label`` (the first one stands);
* a label after its impression's maturity window -> ``late_label`` (ignored: the impression matured without it);
* a NaN/inf score -> ``nonfinite_score`` (the impression is dropped); a request id recorded twice by the same
  model -> ``duplicate_impression`` (the first one stands).

Several models may record the same request id (every model that scored the shown ad): one label joins them all.
Times are seconds on the caller's clock, non-decreasing. Not thread-safe: the monitor's worker owns it.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from math import isfinite
from typing import Any

import numpy.typing as npt

__all__ = ["JoinCounters", "LabelJoin", "Matured"]


@dataclass
class JoinCounters:
    impressions: int = 0
    labels: int = 0
    joined: int = 0
    matured: int = 0
    matured_positive: int = 0
    unknown_label: int = 0
    duplicate_label: int = 0
    late_label: int = 0
    nonfinite_score: int = 0
    duplicate_impression: int = 0


@dataclass(frozen=True)
class Matured:
    """One matured impression of one model."""

    model: str
    segment: str
    score: float
    label: int


@dataclass
class _Pending:
    time: float
    scores: dict[str, tuple[str, float]] = field(default_factory=dict)
    label: int | None = None


class LabelJoin:
    def __init__(self, maturity_s: float, *, remember: int = 1_000_000) -> None:
        if maturity_s <= 0:
            raise ValueError("maturity_s must be > 0")
        self.maturity_s = maturity_s
        self.counters = JoinCounters()
        self._pending: OrderedDict[int, _Pending] = OrderedDict()
        self._recent: deque[int] = deque()
        self._recent_set: set[int] = set()
        self._remember = remember

    @property
    def pending(self) -> int:
        return len(self._pending)

    def impressions(
        self,
        model: str,
        request_ids: npt.NDArray[Any] | Iterable[int],
        scores: npt.NDArray[Any] | Iterable[float],
        at: float,
        segments: Iterable[str] | str = "",
    ) -> None:
        """Record that ``model`` scored the shown impressions ``request_ids`` with ``scores`` at time ``at``."""
        rids = [int(r) for r in request_ids]
        segs = [segments] * len(rids) if isinstance(segments, str) else list(segments)
        c = self.counters
        for key, score, seg in zip(rids, scores, segs, strict=True):
            s = float(score)
            if not isfinite(s):
                c.nonfinite_score += 1
                continue
            p = self._pending.get(key)
            if p is None:
                p = self._pending[key] = _Pending(at)
            if model in p.scores:
                c.duplicate_impression += 1
                continue
            p.scores[model] = (seg, s)
            c.impressions += 1

    def label(self, request_id: int, at: float, value: int = 1) -> None:
        """A label event for ``request_id`` (``value`` 1: a click, a completion; 0: an explicit negative)."""
        c = self.counters
        c.labels += 1
        key = int(request_id)
        p = self._pending.get(key)
        if p is None:
            if key in self._recent_set:
                c.late_label += 1
            else:
                c.unknown_label += 1
            return
        if at - p.time > self.maturity_s:
            c.late_label += 1
            return
        if p.label is not None:
            c.duplicate_label += 1
            return
        p.label = 1 if value else 0
        c.joined += 1

    def advance(self, now: float) -> list[Matured]:
        """Mature every impression recorded more than ``maturity_s`` before ``now``; return them."""
        out: list[Matured] = []
        c = self.counters
        while self._pending:
            key, p = next(iter(self._pending.items()))
            if now - p.time <= self.maturity_s:
                break
            del self._pending[key]
            label = p.label or 0
            for model, (seg, score) in p.scores.items():
                out.append(Matured(model, seg, score, label))
            c.matured += 1
            c.matured_positive += label
            self._recent.append(key)
            self._recent_set.add(key)
            if len(self._recent) > self._remember:
                self._recent_set.discard(self._recent.popleft())
        return out
