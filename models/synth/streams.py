"""Request streams: timed scoring requests at a given rate, with bursts and injected drifts.

A :class:`RequestStream` yields :class:`Request` objects (request id, intended send time, user, context, candidate
ad ids) whose send times form a Poisson process of rate ``rate_rps`` multiplied, inside each :class:`Burst`'s
window, by its multiplier (overlapping bursts multiply). Send times are drawn exactly by inverting the piecewise
linear cumulative intensity, so the expected number of requests is :meth:`RequestStream.expected_count`.

Drifts start at ``start_s`` (seconds from the stream start) and hold until the end:

* :class:`FeatureShift` adds ``magnitude`` to one feature column (features are about unit scale, so the magnitude
  is roughly in standard deviations);
* :class:`CtrShift` adds ``magnitude`` to the true click logit (``+0.5`` is about x1.6 CTR);
* :class:`BrokenFeature` makes one feature read its default (:data:`~models.synth.schema.FEATURE_DEFAULTS`) in a
  fraction ``magnitude`` of requests (``1.0``: all of them).

Feature drifts change what is *observed*: :meth:`RequestStream.features` builds a request's [N, 64] matrix with
them applied, and :meth:`RequestStream.apply_feature_drifts` applies them to any matrix (e.g. one hydrated from a
feature store, or a model's column subset). The CTR drift changes the *truth*: :meth:`RequestStream.outcomes`.

Determinism: the same world and :class:`StreamConfig` give the same requests, bit for bit, on every iteration;
which requests a partial :class:`BrokenFeature` hits and the outcomes of a request depend only on the seed and the
request id, not on the order of calls. Iterating is not thread-safe; the other methods are (they only read).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from models.synth import schema
from models.synth.contexts import Context, sample_contexts
from models.synth.features import candidate_matrix
from models.synth.truth import truth
from models.synth.world import World

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
_CHUNK: Final = 1024
_MASK64: Final = (1 << 64) - 1


@dataclass(frozen=True)
class Burst:
    """The request rate is multiplied by ``multiplier`` during ``[start_s, start_s + duration_s)``."""

    start_s: float
    duration_s: float
    multiplier: float

    def __post_init__(self) -> None:
        if self.start_s < 0 or self.duration_s <= 0 or self.multiplier <= 0:
            raise ValueError("Burst needs start_s >= 0, duration_s > 0 and multiplier > 0")


@dataclass(frozen=True)
class FeatureShift:
    """From ``start_s`` on, feature ``feature`` reads its value plus ``magnitude``."""

    feature: str
    start_s: float
    magnitude: float


@dataclass(frozen=True)
class CtrShift:
    """From ``start_s`` on, the true click logit is shifted by ``magnitude``."""

    start_s: float
    magnitude: float


@dataclass(frozen=True)
class BrokenFeature:
    """From ``start_s`` on, ``feature`` reads its default in a fraction ``magnitude`` (0-1) of requests."""

    feature: str
    start_s: float
    magnitude: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.magnitude <= 1.0:
            raise ValueError("BrokenFeature.magnitude is a fraction of requests in [0, 1]")


Drift = FeatureShift | CtrShift | BrokenFeature


@dataclass(frozen=True)
class StreamConfig:
    """A stream's shape. ``start_epoch_s=None`` starts right after the demo's 8 days of impressions."""

    rate_rps: float = 100.0
    duration_s: float = 60.0
    n_candidates: int = 200
    bursts: tuple[Burst, ...] = ()
    drifts: tuple[Drift, ...] = ()
    seed: int = 0
    start_epoch_s: int | None = None

    def __post_init__(self) -> None:
        if self.rate_rps <= 0 or self.duration_s <= 0 or self.n_candidates <= 0:
            raise ValueError("StreamConfig needs rate_rps, duration_s and n_candidates > 0")
        for d in self.drifts:
            if isinstance(d, FeatureShift | BrokenFeature):
                schema.feature_indices([d.feature])  # KeyError on an unknown name, at construction


@dataclass(frozen=True, eq=False)
class Request:
    """One scoring request. ``candidate_ad_ids`` is read-only and holds distinct ids."""

    request_id: int
    send_time_s: float
    """Intended send time in seconds from the stream start (a load driver sleeps until then)."""
    user_id: int
    context: Context
    candidate_ad_ids: npt.NDArray[np.int32] = field(repr=False)


@dataclass(frozen=True, eq=False)
class Outcomes:
    """True probabilities (CTR drift applied) and labels drawn from them, per candidate (float64 / int8)."""

    p_click: F64
    click: npt.NDArray[np.int8]
    p_complete: F64
    completion: npt.NDArray[np.int8]
    p_conversion: F64
    conversion: npt.NDArray[np.int8]


def _splitmix(*words: int) -> float:
    """A uniform in [0, 1) from integers, stateless (splitmix64 over the words)."""
    x = 0x9E3779B97F4A7C15
    for w in words:
        x = (x ^ (w & _MASK64)) & _MASK64
        x = (x + 0x9E3779B97F4A7C15) & _MASK64
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
        x ^= x >> 31
    return (x >> 11) / float(1 << 53)


class RequestStream:
    """An iterable of :class:`Request`; every iteration yields the same sequence (see the module docstring)."""

    def __init__(self, world: World, config: StreamConfig | None = None) -> None:
        self.world = world
        self.config = config or StreamConfig()
        cfg = self.config
        self.start_epoch_s = world.config.start_epoch_s + 8 * 86_400 if cfg.start_epoch_s is None else cfg.start_epoch_s
        edges = {0.0, cfg.duration_s}
        for b in cfg.bursts:
            edges.update(min(max(e, 0.0), cfg.duration_s) for e in (b.start_s, b.start_s + b.duration_s))
        self._edges = np.array(sorted(edges))
        mids = (self._edges[:-1] + self._edges[1:]) / 2.0
        self._rates = np.array([self.rate_at(float(m)) for m in mids])
        self._cum = np.concatenate([[0.0], np.cumsum(self._rates * np.diff(self._edges))])
        self._video = world.video_ad_ids
        self._ctv = schema.code_of(schema.DEVICES, "ctv")

    def rate_at(self, t: float) -> float:
        """The intended request rate (requests/s) at ``t`` seconds from the start."""
        rate = self.config.rate_rps
        for b in self.config.bursts:
            if b.start_s <= t < b.start_s + b.duration_s:
                rate *= b.multiplier
        return rate

    def expected_count(self) -> float:
        """Expected number of requests over the whole stream (the integral of the rate)."""
        return float(self._cum[-1])

    def ctr_shift_at(self, t: float) -> float:
        """Sum of the click-logit shifts of the CTR drifts active at ``t``."""
        return sum(d.magnitude for d in self.config.drifts if isinstance(d, CtrShift) and t >= d.start_s)

    def __iter__(self) -> Iterator[Request]:
        cfg = self.config
        rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0x57EA]))
        user_cdf = np.cumsum(self.world.user_activity)
        s, next_id = 0.0, 0
        while True:
            s_chunk = s + np.cumsum(rng.exponential(1.0, size=_CHUNK))
            s = float(s_chunk[-1])
            s_chunk = s_chunk[s_chunk < self._cum[-1]]
            if s_chunk.shape[0] == 0:
                return
            times = np.interp(s_chunk, self._cum, self._edges)
            n = times.shape[0]
            users = np.minimum(np.searchsorted(user_cdf, rng.random(n) * user_cdf[-1]), self.world.n_users - 1)
            contexts = sample_contexts(self.world, users, self.start_epoch_s + times.astype(np.int64), rng)
            for i in range(n):
                pool_size = self._video.shape[0] if contexts.device[i] == self._ctv else self.world.n_ads
                k = min(cfg.n_candidates, pool_size)
                ads = rng.choice(pool_size, size=k, replace=False).astype(np.int32)
                if contexts.device[i] == self._ctv:
                    ads = self._video[ads]
                ads.setflags(write=False)
                yield Request(next_id, float(times[i]), int(users[i]), contexts.row(i), ads)
                next_id += 1
            if s_chunk.shape[0] < _CHUNK:
                return

    def apply_feature_drifts(
        self,
        matrix: F32,
        request_id: int,
        send_time_s: float,
        columns: npt.NDArray[np.intp] | None = None,
    ) -> None:
        """Apply the feature drifts active at ``send_time_s`` to ``matrix`` in place.

        ``columns`` are the global feature indices of ``matrix``'s columns (``None``: all 64, in order); drifts on
        features not among them are skipped.
        """
        cols = np.arange(schema.N_FEATURES) if columns is None else columns
        for k, d in enumerate(self.config.drifts):
            if isinstance(d, CtrShift) or send_time_s < d.start_s:
                continue
            where = np.flatnonzero(cols == schema.feature_indices([d.feature])[0])
            if where.shape[0] == 0:
                continue
            if isinstance(d, FeatureShift):
                matrix[:, where] += np.float32(d.magnitude)
            elif _splitmix(self.config.seed, k, request_id) < d.magnitude:
                matrix[:, where] = schema.FEATURE_DEFAULTS[cols[where]]

    def features(self, request: Request, out: F32 | None = None) -> F32:
        """The [N, 64] float32 features of a request's candidates as observed at its send time (drifts applied)."""
        matrix = candidate_matrix(self.world, request.user_id, request.context, request.candidate_ad_ids, out=out)
        self.apply_feature_drifts(matrix, request.request_id, request.send_time_s)
        return matrix

    def outcomes(self, request: Request, ad_ids: npt.NDArray[np.integer] | None = None) -> Outcomes:
        """True probabilities and drawn labels had ``ad_ids`` (default: all candidates) been shown."""
        ads = request.candidate_ad_ids if ad_ids is None else ad_ids
        n = int(ads.shape[0])
        users = np.full(n, request.user_id, dtype=np.int32)
        ctx = request.context.batch().take(np.zeros(n, dtype=np.intp))
        t = truth(self.world, users, ads, ctx, ctr_shift=self.ctr_shift_at(request.send_time_s))
        rng = np.random.default_rng(np.random.SeedSequence([self.config.seed, 0x0C, request.request_id]))
        u = rng.random((3, n))
        click = (u[0] < t.p_click).astype(np.int8)
        return Outcomes(
            p_click=t.p_click,
            click=click,
            p_complete=t.p_complete,
            completion=(u[1] < t.p_complete).astype(np.int8),
            p_conversion=t.p_conversion,
            conversion=(click * (u[2] < t.p_cvr)).astype(np.int8),
        )
