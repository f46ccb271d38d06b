"""``ShiftDetector``: streaming binned distributions compared with a :class:`Reference` over a sliding window.

Rows are binned with the reference's edges into the current *window* (``span_rows / windows`` rows). When a window
fills it joins a ring of the last ``windows`` windows; their sum (exactly ``span_rows`` rows, the size the
reference's thresholds were measured at) is compared with the reference: PSI and Jensen-Shannon per column. A
column *exceeds* when both divergences pass their thresholds; the detector is *in alarm* after ``confirm``
consecutive evaluations with an exceeding column, and counts an alarm each time it enters that state.

Used for prediction shift (one column, the score) and feature drift (one column per feature,
:mod:`gateway.monitoring.drift`). Not thread-safe: the monitor's worker owns it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from gateway.monitoring.divergence import proportions, psi_and_js
from gateway.monitoring.reference import Reference, bin_index, count_slots

__all__ = ["Evaluation", "ShiftDetector"]


@dataclass(frozen=True, eq=False)
class Evaluation:
    """One comparison of the sliding window with the reference (arrays per column; read-only by convention)."""

    rows: int
    """Rows seen by the detector when the window closed."""
    time: float
    psi: npt.NDArray[np.float64]
    js: npt.NDArray[np.float64]
    ratio: npt.NDArray[np.float64]
    """PSI over its threshold, per column (> 1 exceeds)."""
    exceeding: tuple[int, ...]
    alarm: bool


class ShiftDetector:
    """See the module docstring. ``history`` keeps the last ``history`` evaluations."""

    def __init__(self, reference: Reference, *, windows: int = 4, confirm: int = 1, history: int = 4096) -> None:
        if windows < 1 or reference.span_rows % windows:
            raise ValueError(f"span_rows {reference.span_rows} must split into {windows} equal windows")
        self.reference = reference
        self._edges32 = reference.edges32
        self._ref_p = proportions(reference.counts)
        self._ref_log = np.log(self._ref_p)
        self.window_rows = reference.span_rows // windows
        self.confirm = confirm
        shape = (len(reference.names), reference.bins)
        self._current = np.zeros(shape, dtype=np.int64)
        self._in_current = 0
        self._ring = np.zeros((windows, *shape), dtype=np.int64)
        self._sum = np.zeros(shape, dtype=np.int64)
        self._filled = 0
        self._pos = 0
        self._streak = 0
        self.rows = 0
        self.nonfinite = 0
        self.alarm = False
        self.alarms = 0
        self.first_alarm_rows: int | None = None
        self.history: deque[Evaluation] = deque(maxlen=history)

    def add(self, values: npt.NDArray[Any], now: float = 0.0) -> list[Evaluation]:
        """Bin ``values`` (``[n]`` or ``[n, F]``); return the evaluations of the windows that closed."""
        v = values.reshape(values.shape[0], -1)
        edges: npt.NDArray[Any] = self.reference.edges
        if v.dtype == np.float32 and self._edges32 is not None:
            edges = self._edges32
        done: list[Evaluation] = []
        if v.shape[0] == 0:
            return done
        slots, bad = bin_index(edges, v, self.reference.bins)  # every row at once; windows below only count
        self.nonfinite += bad
        return self.add_slots(slots, now)

    def add_slots(self, slots: npt.NDArray[np.intp], now: float = 0.0) -> list[Evaluation]:
        """Count rows already binned with this reference's edges (:func:`~gateway.monitoring.reference.bin_index`
        slots, ``[n, F]``; several detectors' columns can be binned in one call); return the evaluations of the
        windows that closed."""
        done: list[Evaluation] = []
        start = 0
        while start < slots.shape[0]:
            take = min(slots.shape[0] - start, self.window_rows - self._in_current)
            count_slots(slots[start : start + take], self._current)
            self._in_current += take
            self.rows += take
            start += take
            if self._in_current == self.window_rows:
                evaluation = self._close(now)
                if evaluation is not None:
                    done.append(evaluation)
        return done

    def _close(self, now: float) -> Evaluation | None:
        self._sum -= self._ring[self._pos]
        self._ring[self._pos] = self._current
        self._sum += self._current
        self._pos = (self._pos + 1) % self._ring.shape[0]
        self._filled = min(self._filled + 1, self._ring.shape[0])
        self._current[:] = 0
        self._in_current = 0
        if self._filled < self._ring.shape[0]:
            return None
        ref = self.reference
        a = proportions(self._sum)
        p, j = psi_and_js(a, self._ref_p, self._ref_log)
        exceed = (p > ref.psi_threshold) & (j > ref.js_threshold)
        self._streak = self._streak + 1 if exceed.any() else 0
        alarm = self._streak >= self.confirm
        if alarm and not self.alarm:
            self.alarms += 1
            if self.first_alarm_rows is None:
                self.first_alarm_rows = self.rows
        self.alarm = alarm
        evaluation = Evaluation(
            rows=self.rows,
            time=now,
            psi=p,
            js=j,
            ratio=p / ref.psi_threshold,
            exceeding=tuple(int(i) for i in np.flatnonzero(exceed)),
            alarm=alarm,
        )
        self.history.append(evaluation)
        return evaluation

    def latest(self) -> Evaluation | None:
        return self.history[-1] if self.history else None
