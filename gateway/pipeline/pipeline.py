"""One ad request through every stage, under one deadline.

Stages (:class:`~gateway.pipeline.spec.PipelineSpec` names the models):

1. **Retrieval**: the user tower embeds the user (one row); an exact dot product against every eligible ad's
   embedding (100k x 16, one BLAS matrix-vector product into a per-thread buffer) and ``argpartition`` keep the
   ``top_k``. Exact is the baseline an approximate index has to beat, and at 100k x 16 it costs well under a
   millisecond here.
2. **Early ranking**: one light model over the ``top_k`` candidates' columns, one ONNX Runtime run; ``keep`` best.
3. **Full scoring**: every full-scoring model over the survivors, one run per model, fanned out on the pipeline's
   scoring pool (one task per thread, each taking the next model, most expensive first, so one slow model holds
   up only its own task) and awaited until the stage deadline. A model that errors is retried on its fallback
   model (tier 2) if the spec names one and time remains; one that errors again, or misses the deadline, serves
   its manifest's static prior (tier 3). The response lists each model's tier.
4. **Value and auction**: eCPM from bids and predictions, brand-safety filter, then a single-slot auction or, for a
   CTV ad break, a pod filled under competitive separation (:mod:`gateway.pipeline.auction`).

Buffers: per-thread buffers for retrieval and early ranking (reused request after request, so ONNX Runtime's
bindings stay bound); per-request, per-task buffers for full scoring, because a model that misses the deadline is
still running when the response leaves and must write only into memory nobody reads any more. They cost a few
microseconds per request (~70 KB for 200 candidates x 20 models).

Thread-safety: :meth:`Pipeline.run` may be called from any number of threads at once.
"""

from __future__ import annotations

import concurrent.futures as cf
import itertools
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from gateway.blas import single_threaded_blas
from gateway.engine import Engine
from gateway.errors import DeadlineExceededError, InvalidInputError, ScoregateError, UnavailableError
from gateway.monitoring.observer import RequestModels
from gateway.pipeline.auction import AuctionOutcome, PodOutcome, ecpm, fill_pod, run_auction
from gateway.pipeline.features import ColumnPlan, FeatureSource
from gateway.pipeline.placement import Placement
from gateway.pipeline.spec import PipelineSpec
from gateway.pipeline.topk import top_k

if TYPE_CHECKING:
    from gateway.monitoring import ModelReferences, Monitor, ReferenceRecorder

__all__ = ["AdRequest", "AdResponse", "ModelReport", "Pipeline", "Tier"]

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]

#: Default admission bound per scoring thread: enough to keep every core busy between stages, few enough that an
#: admitted request still meets a 20 ms budget at saturation (Little's law: ~300 requests/s x 20 ms = 6 on 2 cores).
DEFAULT_IN_FLIGHT_PER_THREAD = 3
#: Stage names, as the monitor reports them.
STAGES = ("retrieval", "early_ranking", "full_scoring", "auction")


class Tier(StrEnum):
    """Which tier answered for a model."""

    PRIMARY = "primary"  # the model itself
    FALLBACK_MODEL = "fallback_model"  # the spec's lighter model, after the primary failed
    STATIC_PRIOR = "static_prior"  # the manifest's constant: the model was late, or every model failed


@dataclass(frozen=True)
class AdRequest:
    """One ad request: a context (placement, device, ad break) and the user seen there."""

    request_id: int
    context: int
    #: The user; None: the context's own (the marketplace pairs each request context with a user).
    user: int | None = None
    #: Overrides the spec's ``budget_ms`` for this request.
    budget_ms: float | None = None


@dataclass(frozen=True)
class ModelReport:
    model: str
    tier: Tier
    #: The model that produced the scores (the primary, its fallback), or "" for the static prior.
    served_by: str
    error: str = ""


@dataclass
class AdResponse:
    request_id: int
    retrieved: int
    ranked: int
    scored: int
    #: Ad ids of the winners: one for a single slot (none if unfilled), in play order for a pod.
    winners: tuple[int, ...]
    prices: tuple[float, ...]
    pod_seconds: float
    stage_us: dict[str, float]
    models: tuple[ModelReport, ...]
    total_us: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def late(self) -> tuple[str, ...]:
        return tuple(m.model for m in self.models if m.tier is Tier.STATIC_PRIOR and not m.error)

    @property
    def fell_back(self) -> tuple[str, ...]:
        return tuple(m.model for m in self.models if m.tier is not Tier.PRIMARY)

    @property
    def degraded(self) -> bool:
        return any(m.tier is not Tier.PRIMARY for m in self.models)


class _ThreadBuffers(threading.local):
    """One thread's buffers, made on first use and then reused request after request, so ONNX Runtime's bindings
    (per thread, per array) stay bound. A thread runs one request stage or one scoring task at a time, so nothing else
    writes them meanwhile."""

    def __init__(self) -> None:
        self.similarity: F32 = np.empty(0, np.float32)
        self.user: F32 = np.empty((1, 0), np.float32)
        self.embedding: F32 = np.empty((1, 0), np.float32)
        self.early_x: F32 = np.empty((0, 0), np.float32)
        self.early_out: F32 = np.empty(0, np.float32)
        self._full: F32 = np.empty((0, 0), np.float32)
        self._models: dict[str, tuple[F32, F32]] = {}

    def full(self, rows: int, width: int) -> F32:
        if self._full.shape != (rows, width):
            self._full = np.empty((rows, width), np.float32)
        return self._full

    def buffers(self, model: str, rows: int, width: int) -> tuple[F32, F32]:
        """The model's input (when it reads its own columns) and output buffers for ``rows`` candidates."""
        pair = self._models.get(model)
        if pair is None or pair[1].shape[0] != rows:
            pair = self._models[model] = (np.empty((rows, width), np.float32), np.empty(rows, np.float32))
        return pair


class _Job:
    """One request's full-scoring work list and scratch: a row per model, written by whichever task scores it."""

    def __init__(
        self, models: int, rows: int, orders: Mapping[str, tuple[int, ...]], watch: _Watch | None = None
    ) -> None:
        self.watch = watch
        self.call_ns = [0] * models
        self.rows: list[F32 | None] = [None] * models
        self.reports: list[ModelReport | None] = [None] * models
        self.errors = [""] * models
        self._orders = orders
        self._taken = {pool: itertools.count() for pool in orders}

    def next(self, pool: str) -> int | None:
        """The pool's next model index to score, or None when all are taken (``count`` is atomic under the GIL)."""
        order = self._orders[pool]
        k = next(self._taken[pool])
        return order[k] if k < len(order) else None


class _Watch:
    """A request's monitoring: the monitor (or reference recorder), the model versions it watches (request-path
    order: tower, early ranking, full scoring) and the request's per-model call latencies."""

    __slots__ = ("features", "full", "latency", "monitor", "versions")

    def __init__(self, monitor: Monitor | ReferenceRecorder, versions: tuple[str, ...]) -> None:
        self.monitor = monitor
        self.versions = versions
        #: Per model, its call's latency; 0 where the request path does not stage it.
        self.latency = np.zeros(len(versions), np.int64)
        self.full: F32 = np.empty((0, 0), np.float32)
        self.features: F32 = np.empty(0, np.float32)

    def score(self, engine: Engine, j: int, model: str, x: F32, out: F32) -> int:
        """Score ``model`` (request-path index ``j``) and return the call's latency if the watched version served
        it (staged with the request), else 0: another version's call (a canary's) goes to the per-call hook."""
        _, version, ns = engine.score_served(model, x, out)
        if version == self.versions[j]:
            return ns
        self.monitor.observe(model, version, x, out, ns)
        return 0


class Pipeline:
    """Runs ad requests through the spec's stages on ``engine``, reading features from ``features``.

    ``priors`` maps each full-scoring model (and fallback) to its static prior (the manifest's ``fallback.value``);
    ``embeddings`` holds every ad's retrieval embedding, row = ad id. ``scoring_threads`` sizes the full-scoring
    pool (default: the cores); ``max_in_flight`` bounds admitted requests (default 3 per scoring thread). Close it
    with :meth:`close`.
    """

    def __init__(
        self,
        engine: Engine,
        spec: PipelineSpec,
        features: FeatureSource,
        embeddings: F32,
        priors: Mapping[str, float],
        feature_names: Mapping[str, tuple[str, ...]],
        scoring_threads: int | None = None,
        max_in_flight: int | None = None,
    ) -> None:
        single_threaded_blas()  # retrieval's matrix-vector product: 0.19 ms on one thread, 1.4 ms on OpenBLAS's
        spec.validate(engine.names())
        missing = [m for m in spec.models() if m not in feature_names]
        if missing:
            raise ValueError(f"no feature list for models {missing}")
        no_prior = [m for m in spec.full_scoring.models if m not in priors]
        if no_prior:
            raise ValueError(f"no static prior for models {no_prior}")
        self.engine = engine
        self.spec = spec
        self.features = features
        self.priors = dict(priors)
        self._feature_names = {m: tuple(feature_names[m]) for m in spec.models()}
        self._plans: dict[str, ColumnPlan] = {m: features.plan(feature_names[m]) for m in spec.models()}
        emb = np.ascontiguousarray(embeddings, dtype=np.float32)
        self._eligible_by_device: dict[str, tuple[F32, I64 | None]] = {}
        self._emb_all = emb
        self._dim = int(emb.shape[1])
        import onnxruntime as ort

        cores = _cores()
        self.placement = Placement.from_dict(spec.placement, ort.get_available_providers())
        by_pool = self.placement.pools_for(spec.full_scoring.models)
        #: Threads of each scoring pool (``scoring_threads`` overrides every pool's size).
        self.pool_threads = {p: scoring_threads or self.placement.pool_threads(p, cores) for p in by_pool}
        #: Requests admitted at once; beyond it :meth:`run` refuses at once (UnavailableError) instead of queueing.
        self.max_in_flight = max_in_flight or DEFAULT_IN_FLIGHT_PER_THREAD * max(self.pool_threads.values())
        self._admission = threading.BoundedSemaphore(self.max_in_flight)
        self.rejected = 0
        self._pools = {
            p: cf.ThreadPoolExecutor(max_workers=n, thread_name_prefix=f"scoregate-pipeline-{p}")
            for p, n in self.pool_threads.items()
        }
        self._local = _ThreadBuffers()
        #: The monitor (:meth:`attach_monitor`) or reference recorder (:meth:`attach_recorder`); None: nothing
        #: observed, nothing paid.
        self.monitor: Monitor | ReferenceRecorder | None = None
        self._watched: tuple[str, ...] | None = None
        self.model_cost_us = self._measure_costs()
        index = {m: i for i, m in enumerate(spec.full_scoring.models)}
        #: Per pool, its full-scoring models most expensive first: tasks take from the front, so long ones start early.
        self._orders = {
            p: tuple(sorted((index[m] for m in ms), key=lambda k: -self.model_cost_us[k])) for p, ms in by_pool.items()
        }

    def _measure_costs(self, repeats: int = 3) -> tuple[float, ...]:
        """Each full-scoring model's time on ``keep`` rows (best of ``repeats``), which also warms it up."""
        keep = self.spec.early_ranking.keep
        ads = np.arange(min(keep, self.features.n_ads), dtype=np.int64)
        costs = []
        for model in self.spec.full_scoring.models:
            plan = self._plans[model]
            x = np.empty((ads.shape[0], plan.width), np.float32)
            self.features.gather(plan, 0, 0, ads, x)
            out = np.empty(ads.shape[0], np.float32)
            best = float("inf")
            for _ in range(repeats):
                t0 = time.perf_counter_ns()
                try:
                    self.engine.score(model, x, out)
                except ScoregateError:  # a model failing now fails over per request; weigh it as nothing
                    best = 0.0
                    break
                best = min(best, (time.perf_counter_ns() - t0) / 1e3)
            costs.append(best)
        return tuple(costs)

    def attach_monitor(self, monitor: Monitor, references: Mapping[str, ModelReferences] | None = None) -> None:
        """Watch every model the pipeline calls (the version serving now, under its stage, with its references
        where ``references`` has them) and every response as it lands: stage and end-to-end latency, degraded
        answers, fallback tiers, and the request's model calls, staged once per request
        (:meth:`Monitor.watch_requests`). Calls the request path does not stage (fallback models, another version
        than the watched one, other callers of the engine) reach the monitor through the engine's per-call hook."""
        refs = references or {}
        for model, stage in self.spec.stages().items():
            r = refs.get(model)
            monitor.watch(
                model,
                self.engine.runtime(model).version,
                stage=stage,
                n_features=self._plans[model].width,
                score_reference=r.scores if r is not None else None,
                feature_reference=r.features if r is not None else None,
            )
        self._attach(monitor)

    def attach_recorder(self, recorder: ReferenceRecorder) -> None:
        """Record references from the requests this pipeline serves, the way :meth:`attach_monitor`'s monitor will
        see them; :meth:`detach_monitor` ends it."""
        self._attach(recorder)

    def _attach(self, monitor: Monitor | ReferenceRecorder) -> None:
        models = self._request_models()
        versions = tuple(self.engine.runtime(m).version for m in models)
        monitor.watch_requests(STAGES, tuple(zip(models, versions, strict=True)), self.features.feature_names)
        self.engine.monitor = monitor
        self._watched = versions
        self.monitor = monitor

    def _request_models(self) -> tuple[str, ...]:
        """The models a request calls, in :class:`~gateway.monitoring.RequestModels` order."""
        spec = self.spec
        return (spec.retrieval.user_tower, spec.early_ranking.model, *spec.full_scoring.models)

    def detach_monitor(self) -> None:
        monitor, self.monitor = self.monitor, None
        self._watched = None
        if monitor is not None and self.engine.monitor is monitor:
            self.engine.monitor = None

    def model_features(self, model: str) -> tuple[str, ...]:
        """The feature columns ``model`` reads, in its input order."""
        return self._feature_names[model]

    @staticmethod
    def load_engine(models_dir: str | Path, spec: PipelineSpec | None = None) -> Engine:
        """An engine serving every model ``spec`` names (highest version directory of each), each with the
        providers and threads its placement class gives it on this host."""
        import onnxruntime as ort

        from gateway.runtime import ModelRuntime

        spec = spec or PipelineSpec.load()
        placement = Placement.from_dict(spec.placement, ort.get_available_providers())
        runtimes = []
        for model in spec.models():
            versions = [v for v in (Path(models_dir) / model).iterdir() if (v / "model.onnx").is_file()]
            if not versions:
                raise FileNotFoundError(f"no version of model {model!r} under {models_dir}")
            latest = max(versions, key=lambda v: (v.name.isdigit(), int(v.name) if v.name.isdigit() else 0, v.name))
            options = placement.options_for(model)
            runtimes.append(ModelRuntime.load(latest / "model.onnx", name=model, version=latest.name, options=options))
        return Engine(runtimes)

    @classmethod
    def for_demo(
        cls,
        engine: Engine,
        demo_dir: str | Path,
        spec: PipelineSpec | None = None,
        scoring_threads: int | None = None,
        max_in_flight: int | None = None,
    ) -> Pipeline:
        """The demo's pipeline: ``demo_dir`` as ``python -m models.demo build`` writes it (models, data, export)."""
        from gateway.pipeline.features import ExportFeatures
        from models.manifest import Manifest

        root = Path(demo_dir)
        spec = spec or PipelineSpec.load()
        priors: dict[str, float] = {}
        names: dict[str, tuple[str, ...]] = {}
        for model in spec.models():
            version = engine.runtime(model).version or "1"
            manifest = Manifest.load(root / "models" / model / version)
            priors[model] = float(manifest.fallback.value)
            names[model] = tuple(manifest.feature_names)
        embeddings = np.load(root / "data" / spec.retrieval.embeddings)
        features = ExportFeatures(root / "export")
        return cls(engine, spec, features, embeddings, priors, names, scoring_threads, max_in_flight)

    # ------------------------------------------------------------------------------------------------ request
    def run(self, request: AdRequest, *, keep_scores: bool = False) -> AdResponse:
        """Serve one request (:meth:`_run`), or refuse it at once with :class:`UnavailableError` when
        ``max_in_flight`` requests are already being served: under overload the gateway sheds what it cannot serve
        in time instead of letting every request's latency grow."""
        if not self._admission.acquire(blocking=False):
            self.rejected += 1  # approximate under races; a counter for reports, not for decisions
            raise UnavailableError(
                f"pipeline overloaded: {self.max_in_flight} requests in flight (max_in_flight); request "
                f"{request.request_id} refused, retry elsewhere or later"
            )
        try:
            return self._run(request, keep_scores=keep_scores)
        finally:
            self._admission.release()

    def _run(self, request: AdRequest, *, keep_scores: bool) -> AdResponse:
        """Serve one request; raises only for a malformed request (:class:`InvalidInputError` subclasses), a
        retrieval or early-ranking failure (their models have no fallback: without candidates there is no auction),
        or a budget spent before full scoring (:class:`DeadlineExceededError`). ``keep_scores`` puts the
        retrieved and ranked ad ids and every model's scores into ``response.extra`` (tests, debugging).
        """
        t0 = time.perf_counter_ns()
        spec = self.spec
        budget_ns = int((request.budget_ms if request.budget_ms is not None else spec.budget_ms) * 1e6)
        deadline = t0 + budget_ns
        src = self.features
        if not 0 <= request.context < src.n_contexts:
            raise InvalidInputError("pipeline", "context", f"context {request.context} is not in [0, {src.n_contexts})")
        if request.user is not None and not 0 <= request.user < src.n_users:
            raise InvalidInputError("pipeline", "user", f"user {request.user} is not in [0, {src.n_users})")
        if budget_ns <= 0:
            raise InvalidInputError("pipeline", "budget_ms", f"the budget must be > 0, got {budget_ns / 1e6} ms")
        ctx = src.context(request.context)
        user = ctx.user if request.user is None else request.user
        monitor, watched = self.monitor, self._watched
        watch = _Watch(monitor, watched) if monitor is not None and watched is not None else None

        # 1. retrieval
        candidates = self._retrieve(user, ctx.device, watch)
        t1 = time.perf_counter_ns()
        # 2. early ranking
        ranked = self._early_rank(user, request.context, candidates, watch)
        t2 = time.perf_counter_ns()
        if t2 >= deadline:
            raise DeadlineExceededError(
                f"ad request {request.request_id}: the {budget_ns / 1e6:.1f} ms budget was spent before full "
                f"scoring (retrieval {(t1 - t0) / 1e3:.0f} us, early ranking {(t2 - t1) / 1e3:.0f} us)"
            )
        # 3. full scoring
        scores, reports = self._full_score(
            user, request.context, ranked, min(deadline, t2 + _ns(spec.full_scoring)), watch
        )
        t3 = time.perf_counter_ns()
        # 4. value and auction
        v = spec.value
        ads = self.features.ads
        values = ecpm(
            ads.bid[ranked],
            ads.objective[ranked],
            scores[v.p_click],
            scores[v.p_conversion],
            scores[v.p_completion],
            scores[v.p_unsafe],
            v.unsafe_above,
        )
        auction = spec.auction
        outcome: AuctionOutcome | PodOutcome
        if ctx.pod_seconds > 0:
            groups = ads.advertiser if auction.pod_separation == "advertiser" else ads.category
            outcome = fill_pod(
                values,
                ads.creative_len_s[ranked],
                groups[ranked],
                ctx.pod_seconds,
                ctx.slots,
                auction.reserve_cpm,
                auction.kind,
                separate=auction.pod_separation != "none",
            )
            winners = tuple(int(ranked[i]) for i in outcome.selected)
            prices, seconds = outcome.prices, outcome.seconds
        else:
            outcome = run_auction(values, auction.reserve_cpm, auction.kind)
            winners = (int(ranked[outcome.winner]),) if outcome.filled else ()
            prices, seconds = ((outcome.price,) if outcome.filled else ()), 0.0
        t4 = time.perf_counter_ns()
        if monitor is not None:
            degraded = False
            for report in reports:
                if report.tier is not Tier.PRIMARY:
                    degraded = True
                    monitor.count_fallback(report.model, report.tier.value)
            calls = None
            if watch is not None:
                local = self._local
                calls = RequestModels(watch.latency, local.embedding, local.early_out, watch.full, watch.features)
            monitor.observe_request((t1 - t0, t2 - t1, t3 - t2, t4 - t3), t4 - t0, degraded, calls)
        extra: dict[str, Any] = {}
        if keep_scores:
            extra = {"retrieved": candidates, "ranked": ranked, "scores": scores, "ecpm": values}
        return AdResponse(
            request_id=request.request_id,
            retrieved=int(candidates.shape[0]),
            ranked=int(ranked.shape[0]),
            scored=int(ranked.shape[0]),
            winners=winners,
            prices=prices,
            pod_seconds=seconds,
            stage_us={
                "retrieval": (t1 - t0) / 1e3,
                "early_ranking": (t2 - t1) / 1e3,
                "full_scoring": (t3 - t2) / 1e3,
                "auction": (t4 - t3) / 1e3,
            },
            models=reports,
            total_us=(t4 - t0) / 1e3,
            extra=extra,
        )

    def _retrieve(self, user: int, device: str, watch: _Watch | None) -> I64:
        local = self._local
        spec = self.spec.retrieval
        tower = self._plans[spec.user_tower]
        if local.user.shape[1] != tower.width:
            local.user = np.empty((1, tower.width), np.float32)
            local.embedding = np.empty((1, self._dim), np.float32)
        self.features.gather(tower, user, 0, np.zeros(1, np.int64), local.user)
        if watch is None:
            self.engine.score(spec.user_tower, local.user, local.embedding)
        else:
            watch.latency[0] = watch.score(self.engine, 0, spec.user_tower, local.user, local.embedding)
        matrix, ids = self._eligible(device)
        n = matrix.shape[0]
        if local.similarity.shape[0] < n:
            local.similarity = np.empty(n, np.float32)
        sim = local.similarity[:n]
        np.dot(matrix, local.embedding[0], out=sim)
        top = top_k(sim, spec.top_k)
        return top.astype(np.int64) if ids is None else ids[top]

    def _eligible(self, device: str) -> tuple[F32, I64 | None]:
        found = self._eligible_by_device.get(device)
        if found is None:
            # Built once per device; two threads racing here build the same value and one wins (dict stores are
            # atomic), so no lock is needed.
            ids = self.features.eligible_ads(device)
            found = (self._emb_all if ids is None else np.ascontiguousarray(self._emb_all[ids]), ids)
            self._eligible_by_device[device] = found
        return found

    def _early_rank(self, user: int, context: int, candidates: I64, watch: _Watch | None) -> I64:
        local = self._local
        spec = self.spec.early_ranking
        plan = self._plans[spec.model]
        n = candidates.shape[0]
        if local.early_x.shape[0] != n or local.early_x.shape[1] != plan.width:
            # Exact-size buffers: ONNX Runtime keeps its binding only for the same arrays.
            local.early_x = np.empty((n, plan.width), np.float32)
            local.early_out = np.empty(n, np.float32)
        self.features.gather(plan, user, context, candidates, local.early_x)
        scores = local.early_out
        if watch is None:
            self.engine.score(spec.model, local.early_x, scores)
        else:
            watch.latency[1] = watch.score(self.engine, 1, spec.model, local.early_x, scores)
        keep = min(spec.keep, n)
        best = np.argpartition(scores, n - keep)[n - keep :] if keep < n else np.arange(n)
        return candidates[best]

    def _full_score(
        self, user: int, context: int, ads: I64, deadline_ns: int, watch: _Watch | None = None
    ) -> tuple[dict[str, F32], tuple[ModelReport, ...]]:
        """Every full-scoring model over ``ads``: one task per scoring thread, each taking the next model from the
        request's list (most expensive first) until the list is empty or ``deadline_ns`` passes.

        A task writes each model's scores into the request's scratch and only then marks the model done; this
        thread copies the done models' rows into the result after the deadline, so a task still running then
        writes only into memory nobody reads any more. A primary that fails is retried at once, by the same task,
        on its fallback model (tier 2); whatever is not done at the deadline serves its prior (tier 3).
        """
        models = self.spec.full_scoring.models
        n = ads.shape[0]
        full_plan = self._plan_full()
        x_full = np.empty((n, full_plan.width), np.float32)
        self.features.gather(full_plan, user, context, ads, x_full)
        job = _Job(len(models), n, self._orders, watch)
        # Every task on a pool, none on this thread: a model stuck in ONNX Runtime must not hold the response
        # past its deadline (it costs a thread hand-off, tens of microseconds).
        futures = [
            self._pools[pool].submit(self._score_models, job, pool, x_full, ads, user, context, deadline_ns)
            for pool, threads in self.pool_threads.items()
            for _ in range(threads)
        ]
        cf.wait(futures, timeout=max(0.0, (deadline_ns - time.perf_counter_ns()) / 1e9))
        for future in futures:
            future.cancel()  # not started yet (the pool is busy with other requests): never runs
        result = np.empty((len(models), n), np.float32)
        scores: dict[str, F32] = {}
        reports: list[ModelReport] = []
        for i, model in enumerate(models):
            report = job.reports[i]  # set after the row: a report means the row is complete
            if report is None:
                result[i].fill(self.priors[model])
                report = ModelReport(model, Tier.STATIC_PRIOR, "", job.errors[i])
            elif report.tier is Tier.STATIC_PRIOR:
                result[i].fill(self.priors[model])
            else:
                result[i] = job.rows[i]
                if watch is not None and report.tier is Tier.PRIMARY:
                    watch.latency[2 + i] = job.call_ns[i]  # staged only for rows the model itself served
            reports.append(report)
            scores[model] = result[i]
        if watch is not None:
            watch.full = result
            watch.features = x_full[0] if n else np.zeros(full_plan.width, np.float32)
        return scores, tuple(reports)

    def _score_models(
        self, job: _Job, pool: str, x_full: F32, ads: I64, user: int, context: int, deadline_ns: int
    ) -> None:
        """One task of the fan-out: takes the request's next unscored model (most expensive first) until none is
        left or the deadline passed. Tasks share the list, so a slow model holds up only the task running it."""
        models = self.spec.full_scoring.models
        fallbacks = self.spec.full_scoring.fallbacks
        local = self._local
        n = ads.shape[0]
        copied = False
        while (i := job.next(pool)) is not None:
            if time.perf_counter_ns() >= deadline_ns:
                return  # the rest is late: priors
            model = models[i]
            for served_by in (model, fallbacks.get(model)):
                if served_by is None or time.perf_counter_ns() >= deadline_ns:
                    break
                try:
                    x, out = local.buffers(served_by, n, self._plans[served_by].width)
                    plan = self._plans[served_by]
                    if plan.identity:
                        if not copied:  # this thread's copy of the request's rows, bound once per model
                            local.full(n, plan.width)[...] = x_full
                            copied = True
                        x = local.full(n, plan.width)
                    else:
                        self.features.gather(plan, user, context, ads, x)
                    if job.watch is not None and served_by == model:
                        job.call_ns[i] = job.watch.score(self.engine, 2 + i, model, x, out)
                    else:
                        self.engine.score(served_by, x, out)  # a fallback model: the per-call hook sees it
                except Exception as exc:  # any model failure goes to the next tier, never to the caller
                    message = str(exc) if isinstance(exc, ScoregateError) else f"{type(exc).__name__}: {exc}"
                    job.errors[i] = f"{job.errors[i]}; fallback {served_by!r}: {message}" if job.errors[i] else message
                    continue
                job.rows[i] = out.copy()  # out is this thread's, reused by its next request
                tier = Tier.PRIMARY if served_by == model else Tier.FALLBACK_MODEL
                job.reports[i] = ModelReport(model, tier, served_by, job.errors[i])
                break
            else:
                job.reports[i] = ModelReport(model, Tier.STATIC_PRIOR, "", job.errors[i])

    def _plan_full(self) -> ColumnPlan:
        plan = self._plans.get("*")
        if plan is None:
            plan = self._plans["*"] = self.features.plan(self.features.feature_names)
        return plan

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ns(stage: Any) -> int:
    return int(stage.deadline_ms * 1e6)


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
