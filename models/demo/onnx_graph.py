"""ONNX graph surgery for the serving conventions: one ``features`` input, one ``score`` (or ``embedding``) output.

Classifier converters (skl2onnx, onnxmltools) emit two outputs, ``label`` [N] and ``probabilities`` [N, 2].
:func:`to_score_model` appends ``Gather(probabilities, 1, axis=1) -> score``, makes ``score`` the only graph output,
removes the nodes and initializers that no longer reach it, names the batch dimension ``batch`` and checks the result
with ``onnx.checker`` (full check, with shape inference). :func:`tower_model` builds a two-tower side from weights.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET: Final = 15
"""Default-domain opset of every demo model (the highest onnxmltools 1.16 converts to; onnxruntime 1.32 runs it)."""

IR_VERSION: Final = 8
BATCH_DIM: Final = "batch"


def _name_batch_dim(value: onnx.ValueInfoProto) -> None:
    dims = value.type.tensor_type.shape.dim
    if dims:
        dims[0].ClearField("dim_value")
        dims[0].dim_param = BATCH_DIM


def _dedupe_opsets(model: onnx.ModelProto) -> None:
    # skl2onnx can list the default domain twice; keep one import per domain, at the highest version.
    versions: dict[str, int] = {}
    for op in model.opset_import:
        versions[op.domain] = max(versions.get(op.domain, 0), op.version)
    del model.opset_import[:]
    model.opset_import.extend(helper.make_opsetid(d, v) for d, v in sorted(versions.items()))


def prune(graph: onnx.GraphProto) -> None:
    """Remove the nodes, initializers and value infos that do not contribute to the graph outputs (in place)."""
    needed = {o.name for o in graph.output}
    kept: list[onnx.NodeProto] = []
    for node in reversed(graph.node):
        if any(out in needed for out in node.output):
            kept.append(node)
            needed.update(i for i in node.input if i)
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:  # subgraph inputs count as used
                    needed.update(n for sub in attr.g.node for n in sub.input)
    kept.reverse()
    del graph.node[:]
    graph.node.extend(kept)
    inits = [t for t in graph.initializer if t.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    infos = [v for v in graph.value_info if v.name in needed]
    del graph.value_info[:]
    graph.value_info.extend(infos)


def to_score_model(model: onnx.ModelProto, name: str, probabilities: str = "probabilities") -> onnx.ModelProto:
    """Rewrite a binary classifier so that its only output is ``score`` float32 [batch] = P(class 1).

    Args:
        model: a converted classifier whose single input is ``features`` and which has a ``probabilities`` output.
        name: the graph name to set (the model's name).
        probabilities: the name of the [N, 2] probability output.
    Raises:
        ValueError: the model has no such output, or its input is not ``features``.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    if [i.name for i in graph.input] != ["features"]:
        raise ValueError(f"expected the single input 'features', got {[i.name for i in graph.input]}")
    if probabilities not in {o.name for o in graph.output}:
        raise ValueError(f"model has no output {probabilities!r}")
    graph.initializer.append(numpy_helper.from_array(np.array(1, dtype=np.int64), "scoregate_positive_class"))
    graph.node.append(
        helper.make_node("Gather", [probabilities, "scoregate_positive_class"], ["score"], axis=1, name="score")
    )
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("score", TensorProto.FLOAT, [BATCH_DIM]))
    prune(graph)
    _dedupe_opsets(out)
    _name_batch_dim(graph.input[0])
    graph.name = name
    check(out)
    return out


def tower_model(weights: npt.NDArray[np.float32], bias: npt.NDArray[np.float32], name: str) -> onnx.ModelProto:
    """A linear tower: ``embedding = features @ weights + bias``, features [batch, F] -> embedding [batch, D]."""
    f, d = weights.shape
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["features", "tower_weights"], ["tower_matmul"], name="matmul"),
            helper.make_node("Add", ["tower_matmul", "tower_bias"], ["embedding"], name="bias"),
        ],
        name,
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [BATCH_DIM, f])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [BATCH_DIM, d])],
        initializer=[
            numpy_helper.from_array(np.ascontiguousarray(weights, dtype=np.float32), "tower_weights"),
            numpy_helper.from_array(np.ascontiguousarray(bias, dtype=np.float32), "tower_bias"),
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION, producer_name="scoregate"
    )
    check(model)
    return model


def check(model: onnx.ModelProto) -> None:
    """``onnx.checker`` with full shape inference (raises ``onnx.checker.ValidationError``)."""
    onnx.checker.check_model(model, full_check=True)
