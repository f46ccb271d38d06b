"""The ad request pipeline on the 24 demo models: exact stages, fallback tiers, deadlines, bad requests, threads."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from gateway.engine import Engine
from gateway.errors import (
    DeadlineExceededError,
    InvalidInputError,
    ModelExecutionError,
    ModelLoadError,
    UnavailableError,
)
from gateway.monitoring import Monitor, MonitorOptions, ReferenceRecorder
from gateway.pipeline import AdRequest, Pipeline, PipelineSpec, Tier
from gateway.pipeline.features import ExportFeatures
from gateway.pipeline.pipeline import STAGES
from gateway.runtime import ModelRuntime


@pytest.fixture(scope="module")
def engine(demo_dir: Path) -> Iterator[Engine]:
    e = Engine.from_directory(demo_dir / "models")
    yield e
    e.close()


def _relaxed(budget_ms: float = 60_000, deadline_ms: float = 60_000) -> PipelineSpec:
    """The demo spec with budgets no loaded test machine misses (a model answered by its prior would differ)."""
    base = PipelineSpec.load()
    return dataclasses.replace(
        base, budget_ms=budget_ms, full_scoring=dataclasses.replace(base.full_scoring, deadline_ms=deadline_ms)
    )


@pytest.fixture(scope="module")
def pipeline(engine: Engine, demo_dir: Path) -> Iterator[Pipeline]:
    with Pipeline.for_demo(engine, demo_dir, spec=_relaxed()) as p:
        yield p


def _pod_context(features: ExportFeatures) -> int:
    """A CTV request context (in the marketplace every CTV request is an ad break of 2-4 slots)."""
    for c in range(features.n_contexts):
        info = features.context(c)
        if info.device == "ctv" and info.pod_seconds > 0:
            return c
    raise AssertionError("the marketplace has no CTV ad break")


def test_every_stage_is_exact(pipeline: Pipeline, demo_dir: Path) -> None:
    src = pipeline.features
    assert isinstance(src, ExportFeatures)
    ctx = 3
    r = pipeline.run(AdRequest(1, context=ctx), keep_scores=True)
    user = src.context(ctx).user
    assert r.retrieved == 2000 and r.ranked == 200 and r.scored == 200
    assert all(m.tier is Tier.PRIMARY for m in r.models) and not r.degraded

    # Retrieval: the exact top 2000 by dot product over the eligible ads.
    tower = ort.InferenceSession(str(demo_dir / "models" / "retrieval_user_tower" / "1" / "model.onnx"))
    u = tower.run(None, {"features": src.user_vector(user)[None, :]})[0][0]
    emb = np.load(demo_dir / "data" / "ad_embeddings.npy")
    eligible = src.eligible_ads(src.context(ctx).device)
    ids = np.arange(src.n_ads) if eligible is None else eligible
    sim = emb[ids] @ u
    kth = np.sort(sim)[-2000]
    got = set(r.extra["retrieved"].tolist())
    assert len(got) == 2000
    assert set(ids[sim > kth + 1e-5].tolist()) <= got <= set(ids[sim >= kth - 1e-5].tolist())

    # Full scoring: each model's scores are plain ONNX Runtime's on the same rows.
    ranked = r.extra["ranked"]
    for model in ("pctr_gbdt", "brand_safety_gbdt", "pcompletion_mlp"):
        plan = src.plan(_manifest_features(demo_dir, model))
        x = np.empty((ranked.shape[0], plan.width), np.float32)
        src.gather(plan, user, ctx, ranked, x)
        session = ort.InferenceSession(str(demo_dir / "models" / model / "1" / "model.onnx"))
        want = np.asarray(session.run(None, {"features": x})[0]).reshape(-1)
        np.testing.assert_allclose(r.extra["scores"][model], want, rtol=0, atol=1e-6)

    # The auction: the winner has the best eCPM that clears the reserve; it pays no more than it bid.
    values = r.extra["ecpm"]
    if r.winners:
        best = int(np.nanargmax(values))
        assert r.winners == (int(ranked[best]),)
        assert pipeline.spec.auction.reserve_cpm <= r.prices[0] <= values[best]


def _manifest_features(demo_dir: Path, model: str) -> tuple[str, ...]:
    from models.manifest import Manifest

    return tuple(Manifest.load(demo_dir / "models" / model / "1").feature_names)


def test_ctv_requests_see_video_ads_and_pods_keep_competitive_separation(pipeline: Pipeline) -> None:
    src = pipeline.features
    assert isinstance(src, ExportFeatures)
    video = set(src.eligible_ads("ctv").tolist())  # type: ignore[union-attr]
    ctx = _pod_context(src)
    pod = pipeline.run(AdRequest(3, context=ctx), keep_scores=True)
    assert set(pod.extra["retrieved"].tolist()) <= video
    info = src.context(ctx)
    assert 0 < len(pod.winners) <= info.slots
    assert pod.pod_seconds <= info.pod_seconds
    assert pod.pod_seconds == pytest.approx(sum(float(src.ads.creative_len_s[a]) for a in pod.winners))
    categories = [int(src.ads.category[a]) for a in pod.winners]
    assert len(set(categories)) == len(categories), "no two ads of one category in a pod"
    assert list(pod.prices) == sorted(pod.prices, reverse=True)


def test_threads_get_the_same_answers_as_one_thread(engine: Engine, demo_dir: Path) -> None:
    spec = _relaxed()
    requests = [AdRequest(i, context=(i * 37) % 4096) for i in range(24)]
    with Pipeline.for_demo(engine, demo_dir, spec=spec) as pipeline:
        want = {r.request_id: (r.winners, r.prices) for r in map(pipeline.run, requests)}
        got: dict[int, Any] = {}
        lock = threading.Lock()

        def worker(chunk: list[AdRequest]) -> None:
            for req in chunk:
                resp = pipeline.run(req)
                assert not resp.degraded
                with lock:
                    got[req.request_id] = (resp.winners, resp.prices)

        threads = [threading.Thread(target=worker, args=(requests[k::4],)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    assert got == want


class _Failing(ModelRuntime):
    def score(self, x: np.ndarray[Any, Any], out: np.ndarray[Any, Any] | None = None) -> np.ndarray[Any, Any]:
        raise ModelExecutionError(self.name, "injected failure")


class _Slow(ModelRuntime):
    delay_s = 0.5  # per instance: tests set it

    def score(self, x: np.ndarray[Any, Any], out: np.ndarray[Any, Any] | None = None) -> np.ndarray[Any, Any]:
        time.sleep(self.delay_s)  # a model stuck in ONNX Runtime, as the fallback tiers must survive
        return super().score(x, out)


def test_fallback_tiers_answer_for_failing_and_late_models(demo_dir: Path) -> None:
    engine = Engine.from_directory(demo_dir / "models")
    models = demo_dir / "models"
    # pctr_gbdt fails (its fallback pctr_lr answers); pctr_mlp fails with no fallback (prior); pconversion_gbdt is
    # slow (misses the stage deadline: prior).
    engine.add(_Failing.load(models / "pctr_gbdt" / "1" / "model.onnx", name="pctr_gbdt", version="1"))
    engine.add(_Failing.load(models / "pctr_mlp" / "1" / "model.onnx", name="pctr_mlp", version="1"))
    slow = _Slow.load(models / "pconversion_gbdt" / "1" / "model.onnx", name="pconversion_gbdt", version="1")
    slow.delay_s = 0.0  # fast while the pipeline measures model costs at start-up
    engine.add(slow)
    try:
        # A 1 s stage deadline every healthy model meets even on a loaded machine; the slow one takes 3 s.
        with Pipeline.for_demo(engine, demo_dir, spec=_relaxed(2_000, 1_000)) as p:
            monitor = Monitor(MonitorOptions(interval_s=0))
            p.attach_monitor(monitor)
            slow.delay_s = 3.0
            start = time.perf_counter()
            r = p.run(AdRequest(5, context=5), keep_scores=True)
            took_ms = (time.perf_counter() - start) * 1e3
            tiers = {m.model: m for m in r.models}
            assert tiers["pctr_gbdt"].tier is Tier.FALLBACK_MODEL and tiers["pctr_gbdt"].served_by == "pctr_lr"
            assert "injected failure" in tiers["pctr_gbdt"].error
            assert tiers["pctr_mlp"].tier is Tier.STATIC_PRIOR and "injected failure" in tiers["pctr_mlp"].error
            assert tiers["pconversion_gbdt"].tier is Tier.STATIC_PRIOR and not tiers["pconversion_gbdt"].error
            assert r.late == ("pconversion_gbdt",)
            assert set(r.fell_back) == {"pctr_gbdt", "pctr_mlp", "pconversion_gbdt"}
            assert np.all(r.extra["scores"]["pconversion_gbdt"] == np.float32(p.priors["pconversion_gbdt"]))
            assert np.all(r.extra["scores"]["pctr_mlp"] == np.float32(p.priors["pctr_mlp"]))
            assert took_ms < p.spec.budget_ms, f"answered in {took_ms:.0f} ms despite a 3 s model"
            healthy = {m.model for m in r.models if m.tier is Tier.PRIMARY}
            assert len(healthy) == 17
            monitor.step()  # the monitor saw the tiers, the errors and one degraded answer
            c = monitor.counters
            assert c.get("fallback", ("pctr_gbdt", "fallback_model")) == 1
            assert c.get("fallback", ("pctr_mlp", "static_prior")) == 1
            assert c.get("fallback", ("pconversion_gbdt", "static_prior")) == 1
            assert c.get("model_errors", ("pctr_gbdt", "1", "full_scoring", "ModelExecutionError")) == 1
            assert (monitor.requests_seen, monitor.requests_degraded) == (1, 1)
    finally:
        engine.close()


def test_monitor_watches_every_model_call_and_response_of_the_pipeline(engine: Engine, demo_dir: Path) -> None:
    with Pipeline.for_demo(engine, demo_dir, spec=_relaxed()) as p:
        recorder = ReferenceRecorder({m: p.model_features(m) for m in p.spec.models()})
        p.attach_recorder(recorder)  # validation traffic through the same path: the references
        for i in range(320):
            p.run(AdRequest(i, context=i))
        p.detach_monitor()
        refs = recorder.references(score_span_calls=40, feature_span_calls=80)
        monitor = Monitor(MonitorOptions(interval_s=0, sample_every=1))
        p.attach_monitor(monitor, refs)
        try:
            n = 240
            for i in range(n):
                p.run(AdRequest(i, context=320 + i))
        finally:
            p.detach_monitor()
        p.run(AdRequest(0, context=0))  # detached: not seen
        monitor.step()
        snap = monitor.snapshot()
        by_model = {m["model"]: m for m in snap["models"]}
        assert set(by_model) == set(p.spec.models())
        tower = by_model["retrieval_user_tower"]
        assert (tower["stage"], tower["rows"]) == ("retrieval", n)
        assert by_model["early_rank_pctr_lr"]["stage"] == "early_ranking"
        for model in p.spec.full_scoring.models:
            assert by_model[model]["calls"] == n and by_model[model]["rows"] == n * p.spec.early_ranking.keep
            assert "prediction_shift" in by_model[model] and "feature_drift" in by_model[model]
            assert not by_model[model]["prediction_shift"]["alarm"], f"{model}: clean traffic raised a shift alarm"
        assert snap["requests"]["seen"] == n and snap["requests"]["degraded"] == 0
        assert list(snap["requests"]["latency_us"]) == [*STAGES, "total"]
        assert monitor.unwatched_calls == 0


def test_bad_requests_and_spent_budgets_are_clear_errors(pipeline: Pipeline) -> None:
    with pytest.raises(InvalidInputError, match="context 99999"):
        pipeline.run(AdRequest(1, context=99999))
    with pytest.raises(InvalidInputError, match="user -1"):
        pipeline.run(AdRequest(1, context=0, user=-1))
    with pytest.raises(InvalidInputError, match="budget"):
        pipeline.run(AdRequest(1, context=0, budget_ms=0))
    with pytest.raises(DeadlineExceededError, match="budget was spent before full scoring"):
        pipeline.run(AdRequest(1, context=0, budget_ms=0.001))
    assert pipeline.run(AdRequest(2, context=0)).ranked == 200, "and the pipeline keeps serving"


def test_admission_refuses_beyond_max_in_flight_and_recovers(demo_dir: Path) -> None:
    engine = Engine.from_directory(demo_dir / "models")
    models = demo_dir / "models"
    slow = _Slow.load(models / "pconversion_gbdt" / "1" / "model.onnx", name="pconversion_gbdt", version="1")
    slow.delay_s = 0.3
    engine.add(slow)
    try:
        with Pipeline.for_demo(engine, demo_dir, spec=_relaxed(), max_in_flight=1) as p:
            outcomes: list[object] = []

            def hold() -> None:
                try:
                    outcomes.append(p.run(AdRequest(1, context=1, budget_ms=1000)))
                except UnavailableError as exc:  # refused if the loop below got in first: also fine
                    outcomes.append(exc)

            first = threading.Thread(target=hold)
            first.start()
            # While the first request waits on the slow model, a second one is refused at once.
            deadline = time.monotonic() + 10
            refused = None
            while refused is None and time.monotonic() < deadline:
                try:
                    p.run(AdRequest(2, context=2, budget_ms=1000))
                except UnavailableError as exc:
                    refused = exc
            first.join(30)
            assert refused is not None and "overloaded" in str(refused) and "max_in_flight" in str(refused)
            assert p.rejected >= 1
            slow.delay_s = 0.0
            assert p.run(AdRequest(3, context=3)).ranked == 200, "admitted again once the first left"
    finally:
        engine.close()


def test_placement_loads_each_model_with_its_class_and_a_gpu_profile_fails_loudly_here(demo_dir: Path) -> None:
    spec = _relaxed()
    engine = Pipeline.load_engine(demo_dir / "models", spec)
    try:
        assert set(engine.names()) == set(spec.models())
        assert engine.runtime("pctr_mlp").options.providers == ("CPUExecutionProvider",)
        with Pipeline.for_demo(engine, demo_dir, spec=spec) as p:
            assert p.placement.profile == "cpu" and set(p.pool_threads) == {"scoring"}
            assert p.run(AdRequest(1, context=1)).ranked == 200
    finally:
        engine.close()
    gpu = dataclasses.replace(spec, placement={**spec.placement, "profile": "gpu"})
    with pytest.raises(ModelLoadError, match="CUDAExecutionProvider"):
        Pipeline.load_engine(demo_dir / "models", gpu)
