"""Pieces of the demo build: metrics against scikit-learn, ONNX graph surgery, the catalog."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss, roc_auc_score

from models.demo import CATALOG, spec
from models.demo import metrics as m
from models.demo.onnx_graph import to_score_model, tower_model
from models.demo.trainers import _convert_sklearn
from models.manifest import Stage


def test_metrics_agree_with_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(5_000) < 0.1).astype(np.int8)
    p = np.clip(np.round(0.1 + 0.2 * (y - 0.1) + rng.normal(0, 0.1, 5_000), 2), 0.01, 0.99)  # many ties
    assert m.auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert m.log_loss(y, p) == pytest.approx(log_loss(y, p), abs=1e-12)
    assert m.calibration_ratio(y, p) == pytest.approx(p.mean() / y.mean())
    with pytest.raises(ValueError, match="both classes"):
        m.auc(np.zeros(3), np.ones(3))
    queries = np.eye(3, dtype=np.float32)
    corpus = np.array([[3, 0, 0], [0, 1, 0], [0, 0, 2], [0, 2, 0]], dtype=np.float32)
    assert m.corpus_recall_at_k(queries, corpus, np.array([0, 1, 2]), 1) == pytest.approx(2 / 3)
    assert m.corpus_recall_at_k(queries, corpus, np.array([0, 1, 2]), 2) == 1.0


def test_classifier_graph_is_cut_down_to_a_score_output() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 5)).astype(np.float32)
    y = (x[:, 0] + rng.normal(size=400) > 0).astype(np.int8)
    clf = LogisticRegression().fit(x, y)
    raw = _convert_sklearn(clf, 5)
    assert {o.name for o in raw.graph.output} == {"label", "probabilities"}
    model = to_score_model(raw, "tiny")
    assert [o.name for o in model.graph.output] == ["score"]
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert len({op.domain for op in model.opset_import}) == len(model.opset_import)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (score,) = session.run(None, {"features": x})
    assert score.shape == (400,)
    assert np.allclose(score, clf.predict_proba(x)[:, 1], atol=1e-5)
    with pytest.raises(ValueError, match="probabilities"):
        to_score_model(model, "again")


def test_tower_graph() -> None:
    w = np.arange(6, dtype=np.float32).reshape(3, 2)
    b = np.array([1, -1], dtype=np.float32)
    session = ort.InferenceSession(tower_model(w, b, "t").SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.ones((4, 3), dtype=np.float32)
    (e,) = session.run(None, {"features": x})
    assert np.allclose(e, x @ w + b)


def test_catalog() -> None:
    assert len(CATALOG) == 24
    assert spec("pctr_gbdt").stage is Stage.FULL_SCORING
    assert spec("pctr_gbdt_region_eu").segment_dict == {"region": "eu"}
    with pytest.raises(KeyError):
        spec("nope")
