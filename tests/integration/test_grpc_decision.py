"""``scoregate.v1.AdDecisionService``: whole ad requests through the pipeline over a real gRPC server."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from gateway.engine import Engine
from gateway.grpc import GrpcServer, GrpcServerOptions
from gateway.grpc.decision import SERVICE_NAME, decision_service
from gateway.grpc.protos import scoregate_pb2 as pb
from gateway.pipeline import AdRequest, Pipeline, PipelineSpec

WAIT_S = 30.0


@pytest.fixture(scope="module")
def pipeline(demo_dir: Path) -> Iterator[Pipeline]:
    base = PipelineSpec.load()
    spec = dataclasses.replace(  # budgets a loaded test machine meets: answers must equal the direct call's
        base, budget_ms=60_000, full_scoring=dataclasses.replace(base.full_scoring, deadline_ms=60_000)
    )
    engine = Engine.from_directory(demo_dir / "models")
    with Pipeline.for_demo(engine, demo_dir, spec=spec) as p:
        yield p
    engine.close()


@pytest.fixture(scope="module")
def address(pipeline: Pipeline) -> Iterator[str]:
    options = GrpcServerOptions(port=0, workers=4)
    with GrpcServer(pipeline.engine, options, [decision_service(pipeline)]) as server:
        yield server.address


def _decide(channel: grpc.Channel) -> Any:
    return channel.unary_unary(
        f"/{SERVICE_NAME}/Decide",
        request_serializer=pb.DecideRequest.SerializeToString,
        response_deserializer=pb.DecideResponse.FromString,
    )


def test_decisions_over_grpc_equal_the_pipeline_called_directly(pipeline: Pipeline, address: str) -> None:
    with grpc.insecure_channel(address) as channel:
        decide = _decide(channel)
        for context in (0, 7, 3500):
            got = decide(pb.DecideRequest(request_id=context, context=context), timeout=WAIT_S)
            want = pipeline.run(AdRequest(context, context=context))
            assert tuple(got.winners) == want.winners
            assert list(got.prices) == pytest.approx(list(want.prices))
            assert (got.retrieved, got.ranked) == (2000, 200)
            assert len(got.models) == 20 and all(m.tier == "primary" for m in got.models)
            assert set(got.stage_us) == {"retrieval", "early_ranking", "full_scoring", "auction"}
            assert not got.degraded and got.total_us > 0
        pod_context = next(c for c in range(4096) if pipeline.features.context(c).pod_seconds > 0)
        pod = decide(pb.DecideRequest(request_id=1, context=pod_context, user=42), timeout=WAIT_S)
        assert 0 < len(pod.winners) == len(pod.prices) and pod.pod_seconds > 0


def test_errors_map_to_status_codes_and_the_server_keeps_serving(address: str) -> None:
    with grpc.insecure_channel(address) as channel:
        decide = _decide(channel)
        with pytest.raises(grpc.RpcError) as bad:
            decide(pb.DecideRequest(request_id=1, context=10**6), timeout=WAIT_S)
        assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT and "context 1000000" in bad.value.details()
        with pytest.raises(grpc.RpcError) as negative:
            decide(pb.DecideRequest(request_id=1, context=1, budget_ms=-5), timeout=WAIT_S)
        assert negative.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        # The call's deadline caps the budget: a few microseconds cannot cover retrieval.
        with pytest.raises(grpc.RpcError) as late:
            decide(pb.DecideRequest(request_id=1, context=1, budget_ms=0.002), timeout=WAIT_S)
        assert late.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        assert "budget was spent" in late.value.details()
        ok = decide(pb.DecideRequest(request_id=2, context=2), timeout=WAIT_S)
        assert ok.ranked == 200


def test_reflection_describes_the_decision_service(address: str) -> None:
    from google.protobuf import descriptor_pb2
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE_NAME),
        ]
        listed, described = list(reflect.ServerReflectionInfo(iter(requests), timeout=WAIT_S))
    assert SERVICE_NAME in {s.name for s in listed.list_services_response.service}
    file = descriptor_pb2.FileDescriptorProto.FromString(described.file_descriptor_response.file_descriptor_proto[0])
    assert file.package == "scoregate.v1" and [m.name for m in file.service[0].method] == ["Decide"]
