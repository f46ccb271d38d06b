"""Small real ONNX models built with onnx.helper, for tests of the scoring core and its users."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

FEATURES = 16


def logistic_model(
    features: int = FEATURES, seed: int = 7, scale: float = 0.5, bias: float = -1.0
) -> tuple[bytes, np.ndarray, float]:
    """``score = sigmoid(features @ w + b)`` with input ``features[batch, F]`` and output ``score[batch]``;
    ``w ~ N(0, scale)`` from ``seed``, ``b = bias``."""
    rng = np.random.default_rng(seed)
    w = rng.normal(0, scale, size=(features, 1)).astype(np.float32)
    b = np.float32(bias)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["features", "w"], ["logit2d"]),
            helper.make_node("Add", ["logit2d", "b"], ["z"]),
            helper.make_node("Sigmoid", ["z"], ["p2d"]),
            helper.make_node("Squeeze", ["p2d", "axis1"], ["score"]),
        ],
        "logistic",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", features])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"])],
        initializer=[
            numpy_helper.from_array(w, "w"),
            numpy_helper.from_array(np.array([b], dtype=np.float32), "b"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString(), w[:, 0], float(b)


def two_input_model() -> bytes:
    """``out = a + b`` (float32 [batch, 4]) and ``rows = NonZero-shaped`` dynamic output ``idx``."""
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["a", "b"], ["sum"]),
            helper.make_node("NonZero", ["a"], ["idx"]),
        ],
        "two_inputs",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch", 4]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["batch", 4]),
        ],
        [
            helper.make_tensor_value_info("sum", TensorProto.FLOAT, ["batch", 4]),
            helper.make_tensor_value_info("idx", TensorProto.INT64, [2, "nz"]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def reference_scores(x: np.ndarray, w: np.ndarray, b: float) -> np.ndarray:
    z = x.astype(np.float64) @ w.astype(np.float64) + b
    return 1.0 / (1.0 + np.exp(-z))
