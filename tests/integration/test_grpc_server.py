"""The KServe V2 gRPC endpoint: a real server on 127.0.0.1, real clients (tritonclient and a raw stub).

Conformance with tritonclient's gRPC client, bad requests answered with the right status while
the server keeps serving, health checking, reflection, the bearer token, TLS, admission control.
"""

from __future__ import annotations

import datetime
import ipaddress
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import onnxruntime as ort
import pytest
from lifecycle_builders import FEATURES as LIFECYCLE_FEATURES
from lifecycle_builders import TWO_VERSION_SCORES, two_version_engine

from gateway.engine import Engine
from gateway.grpc import GrpcServer, GrpcServerOptions
from gateway.grpc.client import InferenceStub, infer_request, raw_outputs
from gateway.grpc.protos import inference_pb2 as pb
from gateway.rollout import RolloutController
from gateway.runtime import ModelRuntime
from models.rollout import bucket

tritonclient_grpc = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402

GBDT = "pctr_gbdt"
MLP = "pctr_mlp"
FEATURES = 64
MAX_MESSAGE = 1024 * 1024
WAIT_S = 30.0


def _model_path(demo_dir: Path, name: str) -> Path:
    (version,) = (demo_dir / "models" / name).iterdir()
    return version / "model.onnx"


def _direct(path: Path, x: np.ndarray) -> np.ndarray:
    """The reference: ONNX Runtime on the same file, nothing of Scoregate in between."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {"features": x})[0])


def _rows(batch: int, seed: int = 5) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(batch, FEATURES)).astype(np.float32)


@pytest.fixture(scope="module")
def engine(demo_dir: Path) -> Iterator[Engine]:
    engine = Engine([ModelRuntime.load(_model_path(demo_dir, m), name=m, version="1") for m in (GBDT, MLP)])
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def server(engine: Engine) -> Iterator[GrpcServer]:
    with GrpcServer(engine, GrpcServerOptions(port=0, workers=2, max_message_bytes=MAX_MESSAGE)) as server:
        yield server


@pytest.fixture(scope="module")
def triton(server: GrpcServer) -> Any:
    return tritonclient_grpc.InferenceServerClient(server.address)


@pytest.fixture(scope="module")
def stub(server: GrpcServer) -> Iterator[InferenceStub]:
    with grpc.insecure_channel(server.address) as channel:
        yield InferenceStub(channel)


def _triton_input(x: np.ndarray, datatype: str = "FP32", name: str = "features") -> Any:
    inp = tritonclient_grpc.InferInput(name, list(x.shape), datatype)
    inp.set_data_from_numpy(x)
    return inp


def _assert_serves(stub: InferenceStub, demo_dir: Path) -> None:
    x = _rows(3, seed=99)
    got = raw_outputs(stub.ModelInfer(infer_request(GBDT, {"features": x}), timeout=WAIT_S))["score"]
    np.testing.assert_allclose(got, _direct(_model_path(demo_dir, GBDT), x), atol=1e-6)


# ------------------------------------------------------------------------------ tritonclient conformance
def test_tritonclient_health_and_metadata(triton: Any) -> None:
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.is_model_ready(GBDT) and triton.is_model_ready(GBDT, "1")
    assert not triton.is_model_ready("nope") and not triton.is_model_ready(GBDT, "2")
    meta = triton.get_server_metadata()
    assert meta.name == "scoregate" and meta.version
    model = triton.get_model_metadata(GBDT, as_json=True)
    assert model["name"] == GBDT and model["versions"] == ["1"] and model["platform"] == "onnxruntime_onnx"
    assert model["inputs"] == [{"name": "features", "datatype": "FP32", "shape": ["-1", str(FEATURES)]}]
    assert model["outputs"] == [{"name": "score", "datatype": "FP32", "shape": ["-1"]}]


@pytest.mark.parametrize("model", [GBDT, MLP])
@pytest.mark.parametrize("batch", [1, 256])
def test_tritonclient_raw_infer_matches_onnx_runtime(triton: Any, demo_dir: Path, model: str, batch: int) -> None:
    x = _rows(batch)
    result = triton.infer(model, [_triton_input(x)], request_id="r1")
    response = result.get_response()
    assert response.model_name == model and response.model_version == "1" and response.id == "r1"
    assert len(response.raw_output_contents) == 1  # raw in, raw out
    got = result.as_numpy("score")
    assert got.dtype == np.float32 and got.shape == (batch,)
    np.testing.assert_allclose(got, _direct(_model_path(demo_dir, model), x), atol=1e-6, rtol=0)


def test_typed_contents_infer_matches_onnx_runtime(stub: InferenceStub, demo_dir: Path) -> None:
    """Typed in, typed out. (tritonclient always sends raw contents and reads only raw numeric outputs.)"""
    x = _rows(4)
    request = pb.ModelInferRequest(model_name=GBDT)
    request.inputs.add(name="features", datatype="FP32", shape=x.shape).contents.fp32_contents.extend(x.ravel())
    response = stub.ModelInfer(request, timeout=WAIT_S)
    assert not response.raw_output_contents
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [("score", "FP32", [4])]
    want = _direct(_model_path(demo_dir, GBDT), x)
    np.testing.assert_allclose(np.array(response.outputs[0].contents.fp32_contents), want, atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("model", "x", "datatype", "status", "message"),
    [
        (GBDT, np.zeros((2, 10), np.float32), "FP32", "INVALID_ARGUMENT", "feature count is 10, expected 64"),
        (GBDT, np.zeros((2, FEATURES), np.float64), "FP64", "INVALID_ARGUMENT", "dtype float64, expected float32"),
        ("nope", np.zeros((1, FEATURES), np.float32), "FP32", "NOT_FOUND", "unknown model 'nope'"),
    ],
)
def test_tritonclient_sees_errors_as_statuses(
    triton: Any, model: str, x: np.ndarray, datatype: str, status: str, message: str
) -> None:
    with pytest.raises(InferenceServerException) as info:
        triton.infer(model, [_triton_input(x, datatype)])
    assert info.value.status() == f"StatusCode.{status}"
    assert message in info.value.message()


def test_tritonclient_pins_versions_and_takes_part_in_a_canary_by_routing_key(tmp_path: Path) -> None:
    """Two versions serving, a 20 % canary of version 2: tritonclient's ``model_version`` pins either one, and its
    ``routing_key`` parameter takes a request to the version the canary's share gives that key, every time."""
    engine = two_version_engine(tmp_path)
    rollouts = RolloutController(engine, start_worker=False)
    try:
        applied = rollouts.deploy("pctr", "2", canary_pct=20.0)
        assert applied.ok, applied.error
        x = np.zeros((3, LIFECYCLE_FEATURES), np.float32)
        scores = TWO_VERSION_SCORES
        with GrpcServer(engine, GrpcServerOptions(port=0, workers=2)) as server:
            client = tritonclient_grpc.InferenceServerClient(server.address)
            assert client.get_model_metadata("pctr").versions == ["1", "2"]
            for version in ("1", "2"):
                result = client.infer("pctr", [_triton_input(x)], model_version=version)
                assert result.get_response().model_version == version
                np.testing.assert_allclose(result.as_numpy("score"), scores[version], rtol=1e-6)
            with pytest.raises(InferenceServerException, match="pctr@3"):
                client.infer("pctr", [_triton_input(x)], model_version="3")
            served = []
            for user in range(300):
                key = f"user-{user}"
                result = client.infer("pctr", [_triton_input(x)], parameters={"routing_key": key})
                version = result.get_response().model_version
                assert version == ("2" if bucket(key.encode()) < applied.state.threshold else "1")
                np.testing.assert_allclose(result.as_numpy("score"), scores[version], rtol=1e-6)
                served.append(version)
            assert 0.1 < served.count("2") / len(served) < 0.3
            client.close()
    finally:
        rollouts.close()
        engine.close()


# ------------------------------------------------------------------------------ bad requests, one server
def _bad_requests() -> list[tuple[str, pb.ModelInferRequest, grpc.StatusCode, str]]:
    nan = _rows(2)
    nan[1, 7] = np.nan
    garbage = infer_request(GBDT, {"features": _rows(2)})
    garbage.raw_input_contents[0] = b"\x01\x02\x03"
    huge = infer_request(GBDT, {"features": _rows(MAX_MESSAGE // (4 * FEATURES) + 1)})
    return [
        ("wrong shape", infer_request(GBDT, {"features": _rows(2)[:, :63].copy()}),
         grpc.StatusCode.INVALID_ARGUMENT, "feature count is 63"),
        ("wrong dtype", infer_request(GBDT, {"features": _rows(2).astype(np.float16)}),
         grpc.StatusCode.INVALID_ARGUMENT, "dtype float16, expected float32"),
        ("NaN", infer_request(GBDT, {"features": nan}),
         grpc.StatusCode.INVALID_ARGUMENT, "non-finite value(s) (NaN/inf), first at index (1, 7)"),
        ("unknown model", infer_request("nope", {"features": _rows(1)}), grpc.StatusCode.NOT_FOUND, "nope"),
        ("unknown version", infer_request(GBDT, {"features": _rows(1)}, version="9"),
         grpc.StatusCode.NOT_FOUND, "pctr_gbdt@9"),
        ("garbage bytes", garbage, grpc.StatusCode.INVALID_ARGUMENT, "raw contents hold 3 bytes"),
        ("oversize", huge, grpc.StatusCode.RESOURCE_EXHAUSTED, ""),
        ("empty batch", infer_request(GBDT, {"features": np.zeros((0, FEATURES), np.float32)}),
         grpc.StatusCode.INVALID_ARGUMENT, "empty batch"),
    ]  # fmt: skip


@pytest.mark.parametrize("case", range(len(_bad_requests())), ids=[c[0] for c in _bad_requests()])
def test_bad_request_gets_its_status_and_the_server_keeps_serving(
    stub: InferenceStub, demo_dir: Path, case: int
) -> None:
    _, request, code, message = _bad_requests()[case]
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request, timeout=WAIT_S)
    assert info.value.code() == code
    assert message in info.value.details()
    _assert_serves(stub, demo_dir)


def test_no_deadline_is_fine(stub: InferenceStub) -> None:
    assert stub.ModelInfer(infer_request(GBDT, {"features": _rows(1)})).outputs


def test_unimplemented_triton_extension_is_unimplemented(server: GrpcServer, triton: Any) -> None:
    with pytest.raises(InferenceServerException) as info:
        triton.get_model_repository_index()
    assert info.value.status() == "StatusCode.UNIMPLEMENTED"


# ------------------------------------------------------------------------------ health and reflection
def test_standard_health_check(server: GrpcServer) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "inference.GRPCInferenceService"):
            status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=WAIT_S).status
            assert status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as info:
            health.Check(health_pb2.HealthCheckRequest(service="no.Such"), timeout=WAIT_S)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_lists_and_describes_the_services(server: GrpcServer) -> None:
    from google.protobuf import descriptor_pb2
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(server.address) as channel:
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol="inference.GRPCInferenceService"),
        ]
        listed, described = list(reflect.ServerReflectionInfo(iter(requests), timeout=WAIT_S))
    names = {s.name for s in listed.list_services_response.service}
    assert {"inference.GRPCInferenceService", "grpc.health.v1.Health"} <= names
    file = descriptor_pb2.FileDescriptorProto.FromString(described.file_descriptor_response.file_descriptor_proto[0])
    assert file.package == "inference"
    (service,) = file.service
    assert [m.name for m in service.method] == [
        "ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer",
    ]  # fmt: skip


# ------------------------------------------------------------------------------ bearer token
def test_bearer_token_is_required_except_for_health(engine: Engine, demo_dir: Path) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    options = GrpcServerOptions(port=0, workers=2, token="s3cret")
    with GrpcServer(engine, options) as server, grpc.insecure_channel(server.address) as channel:
        stub = InferenceStub(channel)
        request = infer_request(GBDT, {"features": _rows(1)})
        for metadata in ((), (("authorization", "Bearer wrong"),), (("authorization", "s3cret"),)):
            with pytest.raises(grpc.RpcError) as info:
                stub.ModelInfer(request, metadata=metadata, timeout=WAIT_S)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "bearer token" in info.value.details()
        good = stub.ModelInfer(request, metadata=(("authorization", "Bearer s3cret"),), timeout=WAIT_S)
        assert list(good.outputs[0].shape) == [1]
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=WAIT_S)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        triton = tritonclient_grpc.InferenceServerClient(server.address)
        with pytest.raises(InferenceServerException) as denied:
            triton.is_server_live()
        assert denied.value.status() == "StatusCode.UNAUTHENTICATED"
        assert triton.is_server_live(headers={"authorization": "Bearer s3cret"})


# ------------------------------------------------------------------------------ TLS
def _self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "server.crt", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_tls_with_a_self_signed_certificate(engine: Engine, demo_dir: Path, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    options = GrpcServerOptions(port=0, workers=2, tls_cert=cert, tls_key=key)
    with GrpcServer(engine, options) as server:
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        with grpc.secure_channel(server.address, credentials) as channel:
            _assert_serves(InferenceStub(channel), demo_dir)
        triton = tritonclient_grpc.InferenceServerClient(server.address, ssl=True, root_certificates=str(cert))
        assert triton.is_server_ready()
        x = _rows(2)
        np.testing.assert_allclose(
            triton.infer(GBDT, [_triton_input(x)]).as_numpy("score"),
            _direct(_model_path(demo_dir, GBDT), x),
            atol=1e-6,
        )
        with grpc.insecure_channel(server.address) as plain:  # plaintext to a TLS port never gets an answer
            with pytest.raises(grpc.RpcError) as info:
                InferenceStub(plain).ServerLive(pb.ServerLiveRequest(), timeout=WAIT_S)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE


# ------------------------------------------------------------------------------ admission control
class _GatedRuntime(ModelRuntime):
    """The real runtime, made to wait at a gate inside ``score`` so a test can hold calls in flight."""

    entered: threading.Event
    gate: threading.Event
    calls: int

    def score(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        self.calls += 1
        self.entered.set()
        if not self.gate.wait(WAIT_S):
            raise AssertionError("gate never opened")
        return super().score(x, out)


def _gated(demo_dir: Path) -> _GatedRuntime:
    gated = _GatedRuntime.load(_model_path(demo_dir, GBDT), name=GBDT, version="1")
    assert isinstance(gated, _GatedRuntime)
    gated.entered, gated.gate, gated.calls = threading.Event(), threading.Event(), 0
    return gated


def test_beyond_max_in_flight_is_resource_exhausted_at_once(demo_dir: Path) -> None:
    gated = _gated(demo_dir)
    engine = Engine([gated])
    options = GrpcServerOptions(port=0, workers=1, max_in_flight=1)
    with GrpcServer(engine, options) as server, grpc.insecure_channel(server.address) as channel:
        stub = InferenceStub(channel)
        request = infer_request(GBDT, {"features": _rows(1)})
        held = stub.ModelInfer.future(request, timeout=WAIT_S)
        assert gated.entered.wait(WAIT_S)
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(request, timeout=WAIT_S)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        gated.gate.set()
        assert list(held.result(timeout=WAIT_S).outputs[0].shape) == [1]
        # Admitted again once the first call has left; the server counts it out just after its
        # response is sent, so a call racing that bookkeeping may still be refused: retry those.
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                assert stub.ModelInfer(request, timeout=WAIT_S).outputs
                break
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or time.monotonic() > deadline:
                    raise
    engine.close()


def test_call_whose_deadline_passed_while_queued_is_not_scored(demo_dir: Path) -> None:
    """A call waiting for a worker past its deadline is dropped by the server, not scored for nobody."""
    gated = _gated(demo_dir)
    engine = Engine([gated])
    options = GrpcServerOptions(port=0, workers=1, max_in_flight=4)
    with GrpcServer(engine, options) as server, grpc.insecure_channel(server.address) as channel:
        stub = InferenceStub(channel)
        request = infer_request(GBDT, {"features": _rows(1)})
        held = stub.ModelInfer.future(request, timeout=WAIT_S)
        assert gated.entered.wait(WAIT_S)
        late = stub.ModelInfer.future(request, timeout=0.2)  # queued behind the held call
        error = late.exception(timeout=WAIT_S)
        assert isinstance(error, grpc.RpcError) and error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        gated.gate.set()
        assert held.result(timeout=WAIT_S).outputs
        # One worker serves in order: once this call is answered, the late one was handled before it.
        assert stub.ModelInfer(request, timeout=WAIT_S).outputs
        assert gated.calls == 2
    engine.close()


def test_a_server_out_of_rotation_still_answers_but_health_checking_clients_go_elsewhere(demo_dir: Path) -> None:
    """What a replica does while it loads (gateway.rollout_control.Rotation): health NOT_SERVING and not ready, and
    a real gRPC client with client-side health checking over two servers sends every call to the other one."""
    import json
    from collections import Counter

    from grpc_health.v1 import health_pb2, health_pb2_grpc

    engines = [Engine([ModelRuntime.load(_model_path(demo_dir, GBDT), name=GBDT, version=v)]) for v in ("1", "2")]
    servers = [GrpcServer(e, GrpcServerOptions(port=0, workers=2)).start() for e in engines]
    config = {"loadBalancingConfig": [{"round_robin": {}}], "healthCheckConfig": {"serviceName": ""}}
    target = "ipv4:" + ",".join(s.address for s in servers)
    x = _rows(2)
    try:
        with (
            grpc.insecure_channel(target, options=[("grpc.service_config", json.dumps(config))]) as balanced,
            grpc.insecure_channel(servers[0].address) as direct,
        ):
            stub = InferenceStub(balanced)

            def served(calls: int) -> Counter[str]:
                request = infer_request(GBDT, {"features": x})
                return Counter(stub.ModelInfer(request, timeout=WAIT_S).model_version for _ in range(calls))

            def until(want: Callable[[Counter[str]], bool]) -> None:
                give_up = time.monotonic() + WAIT_S
                while not want(seen := served(20)):
                    assert time.monotonic() < give_up, seen

            until(lambda seen: set(seen) == {"1", "2"})  # round robin over both
            servers[0].leave_rotation()
            health = health_pb2_grpc.HealthStub(direct).Check(health_pb2.HealthCheckRequest(), timeout=WAIT_S)
            assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING
            assert not InferenceStub(direct).ServerReady(pb.ServerReadyRequest(), timeout=WAIT_S).ready
            answer = InferenceStub(direct).ModelInfer(infer_request(GBDT, {"features": x}), timeout=WAIT_S)
            assert answer.model_version == "1"  # out of rotation, a call that still comes is answered
            until(lambda seen: seen == Counter({"2": 20}))
            assert served(100) == Counter({"2": 100})
            servers[0].rejoin_rotation()
            health = health_pb2_grpc.HealthStub(direct).Check(health_pb2.HealthCheckRequest(), timeout=WAIT_S)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            until(lambda seen: set(seen) == {"1", "2"})
    finally:
        for server in servers:
            server.stop(grace_s=1.0)
        for e in engines:
            e.close()


def test_stopped_server_is_not_ready_and_refuses_calls(engine: Engine) -> None:
    server = GrpcServer(engine, GrpcServerOptions(port=0, workers=1)).start()
    with grpc.insecure_channel(server.address) as channel:
        stub = InferenceStub(channel)
        assert stub.ServerReady(pb.ServerReadyRequest(), timeout=WAIT_S).ready
        server.stop(grace_s=1.0)
        assert not server.inference.server_ready(pb.ServerReadyRequest(), None).ready
        with pytest.raises(grpc.RpcError) as info:
            stub.ServerLive(pb.ServerLiveRequest(), timeout=WAIT_S)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        GrpcServerOptions(workers=4, max_in_flight=2)
    with pytest.raises(ValueError, match="tls_cert and tls_key go together"):
        GrpcServerOptions(tls_cert=Path("a.pem"))
    with pytest.raises(ValueError, match="token must not be empty"):
        GrpcServerOptions(token="")
