"""``InferenceService``: the KServe V2 ``inference.GRPCInferenceService`` over the engine.

Every RPC turns its message into one engine call and back (STYLE: one transport seam):
``ModelInfer`` reads the model's signature from ``Engine.runtime(name)``, then scores with
``Engine.score`` (one float32 input, one fixed-shape output: the ranking models) or ``Engine.run``
(anything else), which hold the model's version for the duration of the call. The wire work is
:mod:`gateway.grpc.tensors`; errors leave through :func:`gateway.grpc.status.status_for`.

Rules of ``ModelInfer``, in order:

1. The deadline: a request whose deadline has already passed is refused with DEADLINE_EXCEEDED
   before any work, and again after decoding (typed contents of a large batch take a while).
2. The model and its version. An unknown name is NOT_FOUND. ``model_version`` pins any version that
   serves (a canary candidate, the previous version kept for a rollback), and one that does not is
   NOT_FOUND. Without it the live version answers, or a canary candidate when the request carries
   a ``routing_key`` parameter (a string, or an integer taken as its decimal digits) that the
   rollout's share picks: the same key always reaches the same version. The response's
   ``model_version`` is the version that scored the request. A ``routing_key`` of another type is
   INVALID_ARGUMENT.
3. The inputs: either every input is in ``raw_input_contents`` (one entry per input, in order)
   or every input has typed ``contents``; a mix, or a count that differs, is INVALID_ARGUMENT.
   Raw contents are scored straight from the request's bytes (numpy views, no copies).
4. The outputs: those named in ``outputs``, else all, in the model's order. They go back as
   ``raw_output_contents`` when the request used raw inputs (as Triton does), typed otherwise.

Thread-safety: the service holds no per-request state; any number of server threads may call it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from importlib import metadata
from typing import Any, TypeVar

import numpy as np

from gateway.engine import Engine
from gateway.errors import (
    DeadlineExceededError,
    InputNameError,
    InvalidInputError,
    ModelNotFoundError,
)
from gateway.grpc.protos import inference_pb2 as pb
from gateway.grpc.status import status_for
from gateway.grpc.tensors import datatype_of, decode_raw, decode_typed, encode_raw, encode_typed, wire_shape
from gateway.runtime import ModelRuntime
from models.registry import RoutingKey

__all__ = ["ROUTING_KEY", "SERVICE_NAME", "InferenceService"]

SERVICE_NAME = "inference.GRPCInferenceService"
#: What ModelMetadata reports as the platform (Triton's name for ONNX Runtime models).
PLATFORM = "onnxruntime_onnx"
_T = TypeVar("_T")


def _package_version() -> str:
    try:
        return metadata.version("scoregate")
    except metadata.PackageNotFoundError:
        return "0+unknown"


class InferenceService:
    """The protocol's RPCs as plain methods (``request, context -> response``) over an engine.

    ``ready`` says whether the server is ready (the server turns it off while draining).
    ``clock`` (seconds, monotonic) is injectable so that deadline handling can be tested.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        ready: Callable[[], bool] = lambda: True,
        server_name: str = "scoregate",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._ready = ready
        self._clock = clock
        self._metadata = pb.ServerMetadataResponse(name=server_name, version=_package_version(), extensions=[])

    # -------------------------------------------------------------------------- health, metadata
    def server_live(self, request: pb.ServerLiveRequest, context: Any) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    def server_ready(self, request: pb.ServerReadyRequest, context: Any) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self._ready() and len(self._engine) > 0)

    def model_ready(self, request: pb.ModelReadyRequest, context: Any) -> pb.ModelReadyResponse:
        try:
            runtime = self._runtime(request.name, request.version)
        except ModelNotFoundError:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=self._ready() and not runtime.closed)

    def server_metadata(self, request: pb.ServerMetadataRequest, context: Any) -> pb.ServerMetadataResponse:
        return self._metadata

    def model_metadata(self, request: pb.ModelMetadataRequest, context: Any) -> pb.ModelMetadataResponse:
        return _guarded(context, lambda: self.metadata(request.name, request.version))

    def model_infer(self, request: pb.ModelInferRequest, context: Any) -> pb.ModelInferResponse:
        remaining = context.time_remaining()
        deadline = None if remaining is None else self._clock() + remaining
        return _guarded(context, lambda: self.infer(request, deadline))

    # -------------------------------------------------------------------------- the work
    def metadata(self, name: str, version: str = "") -> pb.ModelMetadataResponse:
        runtime = self._runtime(name, version)
        response = pb.ModelMetadataResponse(name=runtime.name, platform=PLATFORM)
        if version:
            response.versions.append(runtime.version)
        else:  # every version that serves (a pin may name any of them)
            prefix = f"{runtime.name}@"
            response.versions.extend(ref[len(prefix) :] for ref in self._engine.refs() if ref.startswith(prefix))
        for specs, tensors in ((runtime.inputs, response.inputs), (runtime.outputs, response.outputs)):
            for spec in specs:
                tensors.add(name=spec.name, datatype=datatype_of(spec.dtype), shape=wire_shape(spec.dims))
        return response

    def infer(self, request: pb.ModelInferRequest, deadline: float | None = None) -> pb.ModelInferResponse:
        """Serve one ``ModelInfer`` request; ``deadline`` on this service's clock, None for none.

        Raises the error tree (see the module doc); the gRPC handler maps it to a status.
        """
        self._check_deadline(deadline, "before scoring started")
        runtime = self._runtime(request.model_name, request.model_version)
        key = _routing_key(runtime.name, request.parameters)
        raw = request.raw_input_contents
        inputs: dict[str, np.ndarray[Any, Any]] = {}
        if raw:
            if len(raw) != len(request.inputs):
                raise InvalidInputError(
                    runtime.name, "*", f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs"
                )
            for tensor, data in zip(request.inputs, raw, strict=True):
                if tensor.HasField("contents"):
                    raise InvalidInputError(
                        runtime.name, tensor.name, "has typed contents in a request that uses raw_input_contents"
                    )
                inputs[tensor.name] = decode_raw(runtime.name, tensor, data)
        else:
            for tensor in request.inputs:
                inputs[tensor.name] = decode_typed(runtime.name, tensor, tensor.contents)
        if len(inputs) != len(request.inputs):
            raise InputNameError(runtime.name, "*", "the same input name appears twice")
        self._check_deadline(deadline, "while decoding the request")
        ref = f"{runtime.name}@{runtime.version}" if request.model_version else runtime.name
        outputs, served = self._score(runtime, ref, inputs, key)
        response = pb.ModelInferResponse(model_name=runtime.name, model_version=served, id=request.id)
        wanted = [o.name for o in request.outputs] or [s.name for s in runtime.outputs]
        for name in wanted:
            arr = outputs.get(name)
            if arr is None:
                known = [s.name for s in runtime.outputs]
                raise InputNameError(runtime.name, name, f"no such output; outputs are {known}")
            tensor = response.outputs.add(name=name, datatype=datatype_of(arr.dtype), shape=arr.shape)
            if raw:
                response.raw_output_contents.append(encode_raw(arr))
            else:
                encode_typed(arr, tensor.contents)
        return response

    # -------------------------------------------------------------------------- internals
    def _runtime(self, name: str, version: str) -> ModelRuntime:
        """The version a pin names, else the live one: for the signature (a candidate has the live one's)."""
        if "@" in name or "@" in version:
            raise ModelNotFoundError(f"{name}@{version}" if version else name, self._engine.names())
        return self._engine.runtime(f"{name}@{version}" if version else name)

    def _check_deadline(self, deadline: float | None, when: str) -> None:
        if deadline is not None and self._clock() >= deadline:
            raise DeadlineExceededError(f"the request's deadline passed {when}")

    def _score(
        self, runtime: ModelRuntime, ref: str, inputs: dict[str, np.ndarray[Any, Any]], key: RoutingKey | None
    ) -> tuple[dict[str, np.ndarray[Any, Any]], str]:
        """Score ``ref`` through the engine (which routes, and holds the version that serves for the call), by
        its fast path when the model has one: one float32 input, one fixed-shape output (the ranking models).
        Returns the outputs and the version that served."""
        if len(runtime.inputs) == 1 and len(runtime.outputs) == 1:
            x_spec, out_spec = runtime.inputs[0], runtime.outputs[0]
            x = inputs.get(x_spec.name)
            if x is not None and x.dtype == x_spec.dtype == np.float32 and out_spec.fixed_tail:
                scores, served, _ = self._engine.score_served(ref, x, key=key, observe=True)
                return {out_spec.name: scores}, served
        return self._engine.run_served(ref, inputs, key=key)


#: The request parameter whose value makes canary routing sticky (see the module doc).
ROUTING_KEY = "routing_key"


def _routing_key(model: str, parameters: Mapping[str, pb.InferParameter]) -> bytes | None:
    if ROUTING_KEY not in parameters:
        return None
    param = parameters[ROUTING_KEY]
    kind = param.WhichOneof("parameter_choice")
    if kind == "string_param":
        return param.string_param.encode()
    if kind in ("int64_param", "uint64_param"):
        return str(getattr(param, kind)).encode()
    raise InvalidInputError(model, ROUTING_KEY, f"must be a string or an integer parameter, got {kind or 'none'}")


def _guarded(context: Any, call: Callable[[], _T]) -> _T:
    """Run ``call``; map any exception to the status it deserves and abort the RPC with it."""
    try:
        return call()
    except Exception as exc:  # the error tree and anything unexpected (INTERNAL) alike
        code, message = status_for(exc)
    context.abort(code, message)
    raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises
