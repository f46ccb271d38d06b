"""The proto is the protocol: names and field numbers match tritonclient's, generated code is current."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from gateway.errors import (
    BatchSizeError,
    DeadlineExceededError,
    ModelExecutionError,
    ModelNotFoundError,
    NonFiniteInputError,
    UnavailableError,
)
from gateway.grpc.protos import inference_pb2 as pb
from gateway.grpc.protos.regenerate import HERE, generate
from gateway.grpc.status import status_for

MESSAGES = [
    "ServerLiveRequest", "ServerLiveResponse", "ServerReadyRequest", "ServerReadyResponse",
    "ModelReadyRequest", "ModelReadyResponse", "ServerMetadataRequest", "ServerMetadataResponse",
    "ModelMetadataRequest", "ModelMetadataResponse", "InferParameter", "InferTensorContents",
    "ModelInferRequest", "ModelInferResponse",
]  # fmt: skip


def _fields(descriptor: Any, prefix: str = "") -> dict[str, tuple[int, int, str]]:
    """Every field, nested ones included: (number, type, message type name) by dotted name."""
    out = {}
    for field in descriptor.fields:
        kind = field.message_type.full_name if field.message_type else ""
        out[f"{prefix}{descriptor.name}.{field.name}"] = (field.number, field.type, kind)
    for nested in descriptor.nested_types:
        out.update(_fields(nested, f"{prefix}{descriptor.name}."))
    return out


@pytest.mark.parametrize("message", MESSAGES)
def test_fields_match_tritonclient(message: str) -> None:
    from tritonclient.grpc import service_pb2 as triton

    ours = _fields(pb.DESCRIPTOR.message_types_by_name[message])
    theirs = _fields(triton.DESCRIPTOR.message_types_by_name[message])
    assert ours == theirs


def test_service_methods_are_a_subset_of_triton_with_the_same_types() -> None:
    from tritonclient.grpc import service_pb2 as triton

    ours = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    theirs = triton.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    assert ours.full_name == theirs.full_name == "inference.GRPCInferenceService"
    assert [m.name for m in ours.methods] == [
        "ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer",
    ]  # fmt: skip
    for method in ours.methods:
        other = theirs.methods_by_name[method.name]
        assert method.input_type.full_name == other.input_type.full_name
        assert method.output_type.full_name == other.output_type.full_name


def test_messages_cross_the_wire_to_tritonclient_classes() -> None:
    from tritonclient.grpc import service_pb2 as triton

    ours = pb.ModelInferRequest(model_name="pctr", id="7")
    ours.inputs.add(name="features", datatype="FP32", shape=[1, 2])
    ours.raw_input_contents.append(b"\x00" * 8)
    ours.parameters["priority"].int64_param = 3
    theirs = triton.ModelInferRequest.FromString(ours.SerializeToString())
    assert theirs.model_name == "pctr" and theirs.id == "7" and list(theirs.inputs[0].shape) == [1, 2]
    assert theirs.parameters["priority"].int64_param == 3 and theirs.raw_input_contents[0] == b"\x00" * 8


def test_generated_code_is_up_to_date() -> None:
    for name, text in generate().items():
        assert (HERE / name).read_text(encoding="utf-8") == text, (
            f"{name} is stale: run python -m gateway.grpc.protos.regenerate"
        )


def test_messages_live_in_a_private_pool() -> None:
    from google.protobuf import descriptor_pool

    assert pb.POOL is not descriptor_pool.Default()
    assert pb.POOL.FindMessageTypeByName("inference.ModelInferRequest") is pb.ModelInferRequest.DESCRIPTOR


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (NonFiniteInputError("m", "x", "NaN"), grpc.StatusCode.INVALID_ARGUMENT),
        (BatchSizeError("m", "x", "empty"), grpc.StatusCode.INVALID_ARGUMENT),
        (ModelNotFoundError("m"), grpc.StatusCode.NOT_FOUND),
        (DeadlineExceededError("late"), grpc.StatusCode.DEADLINE_EXCEEDED),
        (UnavailableError("closed"), grpc.StatusCode.UNAVAILABLE),
        (ModelExecutionError("m", "boom"), grpc.StatusCode.INTERNAL),
        (RuntimeError("unexpected"), grpc.StatusCode.INTERNAL),
    ],
)
def test_error_tree_maps_to_status_codes_with_the_message(error: Exception, code: grpc.StatusCode) -> None:
    got, message = status_for(error)
    assert got == code
    assert str(error) in message
