"""The benchmark MLP: 64 float32 features -> 256 -> 128 -> 1 (ReLU, ReLU, sigmoid), as ONNX.

The JVM-bridge benchmarks compare transports on this one model (ONNX Runtime's Java API, the
in-process bridge, Py4J, gRPC), so it is built here from fixed-seed weights rather than trained:
its scores need not mean anything, its cost must be that of a realistic full-scoring MLP.
Input ``features`` float32 ``[batch, 64]``; output ``score`` float32 ``[batch]``.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np

__all__ = ["FEATURES", "HIDDEN", "bench_mlp_path", "build_bench_mlp"]

FEATURES = 64
HIDDEN = (256, 128)
ROOT = Path(__file__).resolve().parents[1]


def bench_mlp_path() -> Path:
    """Where the benchmarks keep the model (built on first use)."""
    path = ROOT / "build" / "bench" / "bench_mlp_256_128.onnx"
    if not path.is_file():
        build_bench_mlp(path)
    return path


def build_bench_mlp(path: str | os.PathLike[str], seed: int = 20261126) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    sizes = (FEATURES, *HIDDEN, 1)
    nodes, inits, prev = [], [], "features"
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        w = (rng.normal(size=(n_in, n_out)) * np.sqrt(2.0 / n_in)).astype(np.float32)
        b = (rng.normal(size=n_out) * 0.01).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        nodes.append(helper.make_node("Gemm", [prev, f"w{i}", f"b{i}"], [f"h{i}"]))
        act = "Relu" if i < len(HIDDEN) else "Sigmoid"
        nodes.append(helper.make_node(act, [f"h{i}"], [f"a{i}"]))
        prev = f"a{i}"
    inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"))
    nodes.append(helper.make_node("Squeeze", [prev, "axis1"], ["score"]))
    graph = helper.make_graph(
        nodes,
        "bench_mlp_256_128",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", FEATURES])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(model.SerializeToString())
    tmp.replace(out)
    return out
