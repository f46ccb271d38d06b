"""The demo build, end to end with real onnxruntime: 24 serving-ready models whose manifests tell the truth."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from models.demo import (
    CATALOG,
    build_demo,
    demo_features,
    demo_request_features,
    is_complete,
    load_demo_manifests,
    model_dir,
    segment_mask,
)
from models.demo.__main__ import main
from models.manifest import Manifest, OutputSemantics, Stage, Task, sha256_file
from models.synth import (
    AD_FEATURES,
    N_FEATURES,
    ImpressionConfig,
    WorldConfig,
    feature_indices,
    make_world,
    sample_impressions,
)

Demo = tuple[Path, list[Manifest]]


def _session(root: Path, m: Manifest) -> ort.InferenceSession:
    path = model_dir(root, m.name) / m.onnx_file
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_builds_24_models_with_valid_manifests(built_demo: Demo) -> None:
    root, manifests = built_demo
    assert len(manifests) == 24
    assert [m.name for m in manifests] == sorted(s.name for s in CATALOG)
    assert load_demo_manifests(root) == manifests
    stages = {m.stage for m in manifests}
    assert stages == {Stage.RETRIEVAL, Stage.EARLY_RANKING, Stage.FULL_SCORING}
    for m in manifests:
        m.validate_serving()
        assert m.version == "1" and m.seed == 0
        assert m.onnx_sha256 == sha256_file(model_dir(root, m.name) / "model.onnx")
        assert 0.6 < m.holdout.auc < 0.9, m.name  # learnt something, not everything
        assert 0.7 < m.holdout.calibration_ratio < 1.3, m.name
        assert 0 < m.fallback.value < 1 and m.fallback.kind == "static_prior"
        assert m.training_window.start < m.training_window.end
    early = [m for m in manifests if m.stage is Stage.EARLY_RANKING]
    assert early and all(len(m.feature_names) == 16 for m in early)
    frameworks = {m.framework for m in manifests}
    assert frameworks == {"lightgbm", "sklearn", "numpy"}
    assert is_complete(root, seed=0) and not is_complete(root, seed=1)
    for name in ("users", "campaigns", "ads", "contexts", "impressions"):
        assert (root / "data" / f"{name}.parquet").is_file()


def test_every_model_scores_a_batch_in_onnxruntime(built_demo: Demo) -> None:
    root, manifests = built_demo
    batch = 64
    for m in manifests:
        session = _session(root, m)
        (inp,) = session.get_inputs()
        (out,) = session.get_outputs()
        assert inp.name == "features" and inp.type == "tensor(float)"
        assert isinstance(inp.shape[0], str) and inp.shape[1] == len(m.feature_names)  # symbolic batch dim
        x = demo_features(root, m, rows=batch, seed=3)
        assert x.shape == (batch, len(m.feature_names)) and x.dtype == np.float32 and x.flags.c_contiguous
        (y,) = session.run(None, {"features": x})
        assert y.dtype == np.float32
        if m.output_semantics is OutputSemantics.EMBEDDING:
            assert out.name == "embedding" and y.shape == (batch, 16)
        else:
            assert out.name == "score" and y.shape == (batch,)
            assert np.all((y >= 0) & (y <= 1))
        (y1,) = session.run(None, {"features": x[:1]})  # any batch size, including 1
        assert np.allclose(y1, y[:1], atol=1e-6)


def test_holdout_metrics_recomputed_from_scratch_match_the_manifest(built_demo: Demo) -> None:
    root, manifests = built_demo
    for name in ("pctr_gbdt", "pcompletion_mlp"):
        m = {x.name: x for x in manifests}[name]
        world = make_world(WorldConfig(seed=m.seed))
        imps = sample_impressions(world, ImpressionConfig())
        rows = np.flatnonzero(imps.holdout_mask() & segment_mask(world, imps, m.segment))
        x = np.ascontiguousarray(imps.matrix(world)[np.ix_(rows, feature_indices(m.feature_names))])
        y = imps.label(m.label)[rows]
        (score,) = _session(root, m).run(["score"], {"features": x})
        p = score.astype(np.float64)
        assert m.holdout.n == rows.shape[0]
        assert roc_auc_score(y, p) == pytest.approx(m.holdout.auc, abs=1e-6)
        assert log_loss(y, p) == pytest.approx(m.holdout.log_loss, abs=1e-6)
        assert p.mean() / y.mean() == pytest.approx(m.holdout.calibration_ratio, abs=1e-6)


def test_two_tower_and_ad_embeddings(built_demo: Demo) -> None:
    root, manifests = built_demo
    by = {m.name: m for m in manifests}
    user, ad = by["retrieval_user_tower"], by["retrieval_ad_tower"]
    assert (user.task, ad.task) == (Task.RETRIEVAL_USER, Task.RETRIEVAL_AD)
    assert ad.feature_names == AD_FEATURES
    assert user.holdout.auc > 0.65 and set(user.holdout.extra) == {"recall_at_100", "recall_at_1000"}
    assert user.holdout.extra["recall_at_1000"] > 0.01  # random would be 0.01 of 100k ads at k=1000
    emb = np.load(root / "data" / "ad_embeddings.npy")
    world = make_world(WorldConfig(seed=0))
    assert emb.shape == (world.n_ads, 16) and emb.dtype == np.float32 and emb.dtype.isnative
    (direct,) = _session(root, ad).run(None, {"features": np.ascontiguousarray(world.ad_features[:500])})
    assert np.array_equal(direct, emb[:500])
    # retrieval is a plain dot product over the whole corpus
    (u,) = _session(root, user).run(None, {"features": np.ascontiguousarray(world.user_features[:4])})
    top = np.argsort(-(u @ emb.T), axis=1)[:, :100]
    assert top.shape == (4, 100)


def test_request_features_for_the_traffic_driver(built_demo: Demo) -> None:
    root, manifests = built_demo
    full = demo_request_features(root, candidates=200, seed=5)
    assert full.shape == (200, N_FEATURES) and full.dtype == np.float32 and full.flags.c_contiguous
    assert np.array_equal(full, demo_request_features(root, candidates=200, seed=5))
    m = next(m for m in manifests if m.name == "pctr_gbdt")
    x = np.take(full, feature_indices(m.feature_names), axis=1)
    (y,) = _session(root, m).run(None, {"features": np.ascontiguousarray(x)})
    assert y.shape == (200,)


def test_build_is_idempotent_and_the_cli_reports(built_demo: Demo, capsys: pytest.CaptureFixture[str]) -> None:
    root, manifests = built_demo
    onnx_files = [model_dir(root, m.name) / "model.onnx" for m in manifests]
    mtimes = [os.stat(p).st_mtime_ns for p in onnx_files]
    assert build_demo(root, seed=0, progress=False) == manifests
    assert main(["build", "--out", str(root), "--quiet"]) == 0
    assert [os.stat(p).st_mtime_ns for p in onnx_files] == mtimes  # nothing rewritten
    printed = capsys.readouterr().out
    assert "already complete" in printed and "pctr_gbdt" in printed and "cached" in printed
    assert main(["show", "--out", str(root)]) == 0
    assert printed.count("\n") >= 26
