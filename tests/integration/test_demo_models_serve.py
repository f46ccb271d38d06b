"""The 24 demo models through the real scoring core: load, score, and manifests that tell the truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gateway.engine import Engine
from gateway.errors import InputShapeError, NonFiniteInputError
from gateway.runtime import ModelRuntime
from models.demo import demo_features, holdout_for, load_demo_manifests
from models.demo.metrics import auc, calibration_ratio, log_loss
from models.manifest import Manifest, OutputSemantics


@pytest.fixture(scope="module")
def manifests(demo_dir: Path) -> list[Manifest]:
    return load_demo_manifests(demo_dir)


@pytest.fixture(scope="module")
def engine(demo_dir: Path) -> Engine:
    return Engine.from_directory(demo_dir / "models")


def test_all_24_load_and_score_through_the_engine(demo_dir: Path, engine: Engine, manifests: list[Manifest]) -> None:
    assert len(manifests) == 24 and len(engine) == 24
    assert set(engine.names()) == {m.name for m in manifests}
    for m in manifests:
        rt = engine.runtime(m.name)
        (inp,) = rt.inputs
        (out_spec,) = rt.outputs
        # the graph's signature is the manifest's
        assert inp.name == m.inputs[0].name and inp.dims[1] == len(m.feature_names) == m.inputs[0].shape[1]
        assert out_spec.name == m.outputs[0].name
        x = demo_features(demo_dir, m, rows=128, seed=5)
        out = np.empty(out_spec.shape_for(128), dtype=np.float32)
        assert engine.score(m.name, x, out) is out
        if m.output_semantics is OutputSemantics.PROBABILITY:
            assert out.shape == (128,) and np.all((out >= 0) & (out <= 1)), m.name
            assert out.std() > 0, f"{m.name} scores every row alike"
        else:
            assert out.shape == (128, m.outputs[0].shape[1]) and np.isfinite(out).all()


def test_holdout_metrics_recomputed_through_the_runtime(demo_dir: Path, manifests: list[Manifest]) -> None:
    """The manifest's holdout AUC / log loss / calibration are what this runtime serves, not a training-time guess."""
    m = next(m for m in manifests if m.name == "pctr_gbdt")
    x, y = holdout_for(m)
    rt = ModelRuntime.load(demo_dir / "models" / m.name / m.version / m.onnx_file, name=m.name)
    p = np.empty(x.shape[0], dtype=np.float32)
    for start in range(0, x.shape[0], 4096):  # in max_batch-sized pieces, as a server would
        stop = min(start + 4096, x.shape[0])
        rt.score(np.ascontiguousarray(x[start:stop]), p[start:stop])
    assert m.holdout.n == x.shape[0]
    assert auc(y, p) == pytest.approx(m.holdout.auc, abs=1e-6)
    assert log_loss(y, p) == pytest.approx(m.holdout.log_loss, abs=1e-6)
    assert calibration_ratio(y, p) == pytest.approx(m.holdout.calibration_ratio, abs=1e-6)


def test_demo_model_rejects_bad_input_and_keeps_serving(
    demo_dir: Path, engine: Engine, manifests: list[Manifest]
) -> None:
    m = next(m for m in manifests if m.name == "pctr_gbdt")
    x = demo_features(demo_dir, m, rows=16, seed=9)
    good = engine.score(m.name, x).copy()
    with pytest.raises(
        InputShapeError, match="model 'pctr_gbdt' input 'features': input feature count is 63, expected 64"
    ):
        engine.score(m.name, np.ascontiguousarray(x[:, :63]))
    bad = x.copy()
    bad[3, 10] = np.nan  # a GBDT would quietly treat NaN as "missing": the policy catches it first
    with pytest.raises(NonFiniteInputError):
        engine.score(m.name, bad)
    np.testing.assert_array_equal(engine.score(m.name, x), good)
