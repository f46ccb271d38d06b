"""``InferenceStub``: a thin client of ``inference.GRPCInferenceService`` on Scoregate's messages.

For Python callers that want no extra dependency, and for the benchmarks, which need a client
whose own cost is as small as a Python client's can be (one serialised request, no per-call
object building beyond the message). Any KServe V2 client works as well (tritonclient's gRPC
client is tested against the server). :func:`infer_request` builds a raw-contents request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc
import numpy as np

from gateway.grpc.protos import inference_pb2 as pb
from gateway.grpc.service import SERVICE_NAME
from gateway.grpc.tensors import datatype_of, decode_raw, encode_raw

__all__ = ["InferenceStub", "infer_request", "raw_outputs"]


class InferenceStub:
    """Callables for the six RPCs, named as in the proto (``stub.ModelInfer(request, timeout=...)``)."""

    def __init__(self, channel: grpc.Channel) -> None:
        def unary(method: str, request: Any, response: Any) -> Any:
            return channel.unary_unary(
                f"/{SERVICE_NAME}/{method}",
                request_serializer=request.SerializeToString,
                response_deserializer=response.FromString,
                _registered_method=True,
            )

        self.ServerLive = unary("ServerLive", pb.ServerLiveRequest, pb.ServerLiveResponse)
        self.ServerReady = unary("ServerReady", pb.ServerReadyRequest, pb.ServerReadyResponse)
        self.ModelReady = unary("ModelReady", pb.ModelReadyRequest, pb.ModelReadyResponse)
        self.ServerMetadata = unary("ServerMetadata", pb.ServerMetadataRequest, pb.ServerMetadataResponse)
        self.ModelMetadata = unary("ModelMetadata", pb.ModelMetadataRequest, pb.ModelMetadataResponse)
        self.ModelInfer = unary("ModelInfer", pb.ModelInferRequest, pb.ModelInferResponse)


def infer_request(model: str, inputs: Mapping[str, np.ndarray[Any, Any]], version: str = "") -> pb.ModelInferRequest:
    """A ``ModelInferRequest`` carrying ``inputs`` as raw contents."""
    request = pb.ModelInferRequest(model_name=model, model_version=version)
    for name, arr in inputs.items():
        request.inputs.add(name=name, datatype=datatype_of(arr.dtype), shape=arr.shape)
        request.raw_input_contents.append(encode_raw(arr))
    return request


def raw_outputs(response: pb.ModelInferResponse) -> dict[str, np.ndarray[Any, Any]]:
    """The response's raw outputs by name, as read-only numpy views."""
    return {
        tensor.name: decode_raw(response.model_name, tensor, data)
        for tensor, data in zip(response.outputs, response.raw_output_contents, strict=True)
    }
