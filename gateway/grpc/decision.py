"""``scoregate.v1.AdDecisionService``: one whole ad request through the pipeline, over gRPC.

The service maps a ``DecideRequest`` onto :meth:`gateway.pipeline.Pipeline.run` and the response back; the call's
deadline caps the request's budget (the smaller wins), so a client's timeout is honoured inside the pipeline and
not only on the wire. Errors map through :func:`gateway.grpc.status.status_for` (admission refusals are
UNAVAILABLE, a budget spent before full scoring DEADLINE_EXCEEDED, an unknown context INVALID_ARGUMENT).

Hosted beside the KServe V2 service by passing ``decision_service(pipeline)`` in ``GrpcServer(services=...)``;
``python -m gateway serve-grpc --pipeline`` does that for the demo.
"""

from __future__ import annotations

from typing import Any

import grpc

from gateway.errors import InvalidInputError
from gateway.grpc.protos import scoregate_pb2 as pb
from gateway.grpc.server import GrpcService, _Service, _unary
from gateway.grpc.status import status_for
from gateway.pipeline import AdRequest, Pipeline

__all__ = ["SERVICE_NAME", "DecisionService", "decision_service"]

SERVICE_NAME = "scoregate.v1.AdDecisionService"


class DecisionService:
    """The service's one method over ``pipeline``. Thread-safe as the pipeline is."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def decide(self, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            budget = float(request.budget_ms) or self.pipeline.spec.budget_ms
            if budget < 0:
                raise InvalidInputError("pipeline", "budget_ms", f"the budget must be >= 0, got {request.budget_ms}")
            remaining = context.time_remaining()
            if remaining is not None:
                budget = min(budget, remaining * 1e3)
            ad = AdRequest(
                int(request.request_id),
                context=int(request.context),
                user=int(request.user) if request.HasField("user") else None,
                budget_ms=budget,
            )
            response = self.pipeline.run(ad)
        except Exception as exc:  # every error leaves as a status; the server keeps serving
            code, message = status_for(exc)
            context.abort(code, message)
        return pb.DecideResponse(
            request_id=response.request_id,
            winners=list(response.winners),
            prices=list(response.prices),
            pod_seconds=response.pod_seconds,
            retrieved=response.retrieved,
            ranked=response.ranked,
            stage_us=response.stage_us,
            models=[
                pb.ModelOutcome(model=m.model, tier=str(m.tier), served_by=m.served_by, error=m.error)
                for m in response.models
            ],
            degraded=response.degraded,
            total_us=response.total_us,
        )


def decision_service(pipeline: Pipeline) -> GrpcService:
    service = DecisionService(pipeline)
    handlers = {"Decide": _unary(service.decide, pb.DecideRequest, pb.DecideResponse)}
    return _Service(SERVICE_NAME, handlers, (pb.DESCRIPTOR.serialized_pb,))
