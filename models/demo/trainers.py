"""Trainers of the ranking and scoring models, each returning a serving-ready ONNX model (``features`` -> ``score``).

Sizes are chosen so that all 22 of them train in well under a minute on 2 cores; seeds are fixed and LightGBM runs
in deterministic mode, so a build with the same seed trains the same models.
"""

from __future__ import annotations

import warnings
from typing import Any, Final

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import onnx
from onnxmltools import convert_lightgbm
from onnxmltools.convert.common.data_types import FloatTensorType as MltFloat
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType as SklFloat
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

from models.demo.catalog import Algo
from models.demo.onnx_graph import OPSET, to_score_model

F32 = npt.NDArray[np.float32]
Labels = npt.NDArray[np.int8]

GBDT_PARAMS: Final[dict[str, Any]] = {
    "objective": "binary",
    "num_leaves": 31,
    "learning_rate": 0.1,
    "min_data_in_leaf": 200,
    "lambda_l2": 10.0,  # shrinks leaves with few positives: better AUC and calibration on the small segments
    "max_bin": 63,
    "bin_construct_sample_cnt": 50_000,
    "force_row_wise": True,
    "deterministic": True,
    "num_threads": 2,
    "verbose": -1,
}
GBDT_ROUNDS: Final = 60
MLP_HIDDEN: Final = (32, 16)
MLP_EPOCHS: Final = 5


def train_gbdt(x: F32, y: Labels, seed: int) -> onnx.ModelProto:
    """LightGBM binary GBDT -> onnxmltools (no ZipMap) -> ``score`` model."""
    params = dict(GBDT_PARAMS, seed=seed)
    booster = lgb.train(params, lgb.Dataset(x, y.astype(np.float32), params=params), num_boost_round=GBDT_ROUNDS)
    model: onnx.ModelProto = convert_lightgbm(
        booster, initial_types=[("features", MltFloat([None, x.shape[1]]))], target_opset=OPSET, zipmap=False
    )
    return model


def train_mlp(x: F32, y: Labels, seed: int) -> onnx.ModelProto:
    """scikit-learn MLP (ReLU 32-16, Adam, a few epochs) -> skl2onnx -> ``score`` model."""
    clf = MLPClassifier(
        hidden_layer_sizes=MLP_HIDDEN,
        batch_size=512,
        learning_rate_init=2e-3,
        max_iter=MLP_EPOCHS,
        alpha=1e-4,
        random_state=seed,
    )
    with warnings.catch_warnings():
        # A fixed, small number of epochs is the point (the build must take seconds): the optimiser has not
        # converged when it stops, and sklearn says so. Only that warning is silenced.
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)
    return _convert_sklearn(clf, x.shape[1])


def train_lr(x: F32, y: Labels, seed: int) -> onnx.ModelProto:
    """scikit-learn logistic regression (L2, lbfgs) -> skl2onnx -> ``score`` model."""
    clf = LogisticRegression(C=1.0, max_iter=300, random_state=seed)
    clf.fit(x, y)
    return _convert_sklearn(clf, x.shape[1])


def _convert_sklearn(clf: Any, width: int) -> onnx.ModelProto:
    model: onnx.ModelProto = convert_sklearn(
        clf,
        initial_types=[("features", SklFloat([None, width]))],
        target_opset=OPSET,
        options={id(clf): {"zipmap": False}},
    )
    return model


TRAINERS: Final = {Algo.GBDT: train_gbdt, Algo.MLP: train_mlp, Algo.LR: train_lr}


def train(algo: Algo, x: F32, y: Labels, seed: int, name: str) -> onnx.ModelProto:
    """Train ``algo`` on (x, y) and return the checked serving model named ``name``."""
    if algo not in TRAINERS:
        raise ValueError(f"{algo} is not a ranking algorithm")
    return to_score_model(TRAINERS[algo](x, y, seed), name)
