"""InferenceService without a server: requests in, responses or typed errors out, on real ONNX Runtime."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from lifecycle_builders import FEATURES as LIFECYCLE_FEATURES
from lifecycle_builders import TWO_VERSION_SCORES, two_version_engine
from onnx_builders import FEATURES, reference_scores, two_input_model

from gateway.engine import Engine
from gateway.errors import (
    DeadlineExceededError,
    InputDtypeError,
    InputNameError,
    InputShapeError,
    InvalidInputError,
    ModelNotFoundError,
    NonFiniteInputError,
)
from gateway.grpc.client import infer_request, raw_outputs
from gateway.grpc.protos import inference_pb2 as pb
from gateway.grpc.service import ROUTING_KEY, InferenceService
from gateway.rollout import RolloutController
from gateway.runtime import ModelRuntime
from models.rollout import bucket


class _Clock:
    """A hand-stepped monotonic clock (seconds)."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engine(logistic: tuple[bytes, np.ndarray, float]) -> Engine:
    return Engine(
        [
            ModelRuntime.load(logistic[0], name="pctr", version="3"),
            ModelRuntime.load(two_input_model(), name="pair", version="1"),
        ]
    )


def test_raw_request_is_scored_and_answered_raw(
    engine: Engine, logistic: tuple[bytes, np.ndarray, float], batch: Callable[[int], np.ndarray]
) -> None:
    x = batch(5)
    request = infer_request("pctr", {"features": x})
    request.id = "req-1"
    response = InferenceService(engine).infer(request)
    assert (response.model_name, response.model_version, response.id) == ("pctr", "3", "req-1")
    assert [(o.name, o.datatype, list(o.shape)) for o in response.outputs] == [("score", "FP32", [5])]
    assert not response.outputs[0].HasField("contents")
    np.testing.assert_allclose(raw_outputs(response)["score"], reference_scores(x, logistic[1], logistic[2]), atol=1e-6)


def test_typed_request_is_answered_typed(
    engine: Engine, logistic: tuple[bytes, np.ndarray, float], batch: Callable[[int], np.ndarray]
) -> None:
    x = batch(3)
    request = pb.ModelInferRequest(model_name="pctr")
    request.inputs.add(name="features", datatype="FP32", shape=[3, FEATURES]).contents.fp32_contents.extend(
        x.ravel().tolist()
    )
    response = InferenceService(engine).infer(request)
    assert not response.raw_output_contents
    got = np.array(response.outputs[0].contents.fp32_contents, np.float32)
    np.testing.assert_allclose(got, reference_scores(x, logistic[1], logistic[2]), atol=1e-6)


def test_multi_input_model_runs_and_outputs_can_be_chosen(engine: Engine) -> None:
    a = np.arange(8, dtype=np.float32).reshape(2, 4)
    b = np.ones((2, 4), np.float32)
    request = infer_request("pair", {"a": a, "b": b})
    request.outputs.add(name="sum")
    response = InferenceService(engine).infer(request)
    assert [o.name for o in response.outputs] == ["sum"]
    np.testing.assert_array_equal(raw_outputs(response)["sum"], a + b)
    everything = InferenceService(engine).infer(infer_request("pair", {"a": a, "b": b}))
    assert [(o.name, o.datatype) for o in everything.outputs] == [("sum", "FP32"), ("idx", "INT64")]


@pytest.mark.parametrize(
    ("mutate", "error", "match"),
    [
        (lambda r: setattr(r, "model_name", "nope"), ModelNotFoundError, "unknown model 'nope'"),
        (lambda r: setattr(r, "model_version", "2"), ModelNotFoundError, r"'pctr@2'; loaded: pair@1, pctr@3"),
        (lambda r: r.raw_input_contents.append(b""), InvalidInputError, "2 raw_input_contents for 1 inputs"),
        (lambda r: r.inputs[0].contents.fp32_contents.append(1.0), InvalidInputError, "has typed contents"),
        (lambda r: setattr(r.inputs[0], "name", "feats"), InputNameError, "no such input"),
        (lambda r: r.outputs.add(name="logit"), InputNameError, "'logit': no such output"),
    ],
)
def test_bad_requests_raise_the_error_tree(
    engine: Engine, batch: Callable[[int], np.ndarray], mutate: Callable[[pb.ModelInferRequest], None],
    error: type[Exception], match: str,
) -> None:  # fmt: skip
    request = infer_request("pctr", {"features": batch(2)})
    mutate(request)
    with pytest.raises(error, match=match):
        InferenceService(engine).infer(request)


def test_model_checks_apply_to_wire_tensors(engine: Engine, batch: Callable[[int], np.ndarray]) -> None:
    service = InferenceService(engine)
    with pytest.raises(InputShapeError, match="feature count is 3, expected 16"):
        service.infer(infer_request("pctr", {"features": np.zeros((2, 3), np.float32)}))
    with pytest.raises(InputDtypeError, match="dtype float64, expected float32"):
        service.infer(infer_request("pctr", {"features": np.zeros((2, FEATURES), np.float64)}))
    x = batch(2)
    x[1, 4] = np.nan
    with pytest.raises(NonFiniteInputError, match=r"first at index \(1, 4\)"):
        service.infer(infer_request("pctr", {"features": x}))


def test_passed_deadline_is_refused_before_any_work(engine: Engine, batch: Callable[[int], np.ndarray]) -> None:
    clock = _Clock()
    service = InferenceService(engine, clock=clock)
    request = infer_request("pctr", {"features": batch(1)})
    assert service.infer(request, deadline=clock.now + 0.5).outputs
    with pytest.raises(DeadlineExceededError, match="before scoring started"):
        service.infer(request, deadline=clock.now)
    request.model_name = "nope"  # not even the model lookup ran
    with pytest.raises(DeadlineExceededError):
        service.infer(request, deadline=clock.now - 1)


def test_metadata_and_readiness(engine: Engine) -> None:
    ready = [True]
    service = InferenceService(engine, ready=lambda: ready[0])
    meta = service.metadata("pctr")
    assert (meta.name, list(meta.versions), meta.platform) == ("pctr", ["3"], "onnxruntime_onnx")
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [("features", "FP32", [-1, FEATURES])]
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.outputs] == [("score", "FP32", [-1])]
    pair = service.metadata("pair")
    assert [list(t.shape) for t in pair.outputs] == [[-1, 4], [2, -1]]
    assert service.model_ready(pb.ModelReadyRequest(name="pctr", version="3"), None).ready
    assert not service.model_ready(pb.ModelReadyRequest(name="pctr", version="4"), None).ready
    assert not service.model_ready(pb.ModelReadyRequest(name="nope"), None).ready
    assert service.server_ready(pb.ServerReadyRequest(), None).ready
    ready[0] = False
    assert not service.server_ready(pb.ServerReadyRequest(), None).ready
    assert not service.model_ready(pb.ModelReadyRequest(name="pctr"), None).ready
    assert not InferenceService(Engine()).server_ready(pb.ServerReadyRequest(), None).ready


# ------------------------------------------------------------------------------ versions and canaries
P1, P2 = TWO_VERSION_SCORES["1"], TWO_VERSION_SCORES["2"]  # the two versions' scores at x = 0


@pytest.fixture
def versioned(tmp_path: Path) -> Iterator[Engine]:
    """``pctr`` at versions 1 (live) and 2, both serving."""
    engine = two_version_engine(tmp_path, ("1", "2"), live="1")
    yield engine
    engine.close()


def _zeros_request(version: str = "", key: Any = None) -> pb.ModelInferRequest:
    request = infer_request("pctr", {"features": np.zeros((2, LIFECYCLE_FEATURES), np.float32)}, version)
    if isinstance(key, bool):
        request.parameters[ROUTING_KEY].bool_param = key
    elif isinstance(key, str):
        request.parameters[ROUTING_KEY].string_param = key
    elif isinstance(key, int):
        request.parameters[ROUTING_KEY].int64_param = key
    return request


def test_model_version_pins_any_version_that_serves(versioned: Engine) -> None:
    service = InferenceService(versioned)
    for version, expected, served in (("", P1, "1"), ("1", P1, "1"), ("2", P2, "2")):
        response = service.infer(_zeros_request(version))
        assert response.model_version == served
        np.testing.assert_allclose(raw_outputs(response)["score"], expected, rtol=1e-6)
    with pytest.raises(ModelNotFoundError, match=r"'pctr@7'; loaded: pctr@1, pctr@2"):
        service.infer(_zeros_request("7"))
    with pytest.raises(ModelNotFoundError, match="pctr@2@1"):
        service.infer(infer_request("pctr@2", {"features": np.zeros((1, LIFECYCLE_FEATURES), np.float32)}, "1"))
    assert list(service.metadata("pctr").versions) == ["1", "2"]
    assert list(service.metadata("pctr", "2").versions) == ["2"]
    assert service.model_ready(pb.ModelReadyRequest(name="pctr", version="2"), None).ready
    assert not service.model_ready(pb.ModelReadyRequest(name="pctr", version="7"), None).ready


def test_a_routing_key_takes_the_request_into_a_canary_sticky_and_the_response_names_the_version(
    versioned: Engine,
) -> None:
    rollouts = RolloutController(versioned, start_worker=False)
    applied = rollouts.deploy("pctr", "2", canary_pct=10.0)
    assert applied.ok, applied.error
    threshold = applied.state.threshold
    service = InferenceService(versioned)
    served = {}
    for user in range(2000):
        response = service.infer(_zeros_request(key=f"user-{user}"))
        served[user] = response.model_version
        assert served[user] == ("2" if bucket(f"user-{user}".encode()) < threshold else "1")
        np.testing.assert_allclose(raw_outputs(response)["score"], P2 if served[user] == "2" else P1, rtol=1e-6)
    assert 0.07 < sum(v == "2" for v in served.values()) / len(served) < 0.13
    for user in (3, 17, 1999):  # sticky; an integer key is its decimal digits
        assert service.infer(_zeros_request(key=f"user-{user}")).model_version == served[user]
        assert (
            service.infer(_zeros_request(key=user)).model_version
            == service.infer(_zeros_request(key=str(user))).model_version
        )
    assert {service.infer(_zeros_request()).model_version for _ in range(50)} == {"1"}  # no key: the live version
    assert service.infer(_zeros_request("1", key="user-3")).model_version == "1"  # a pin wins over the canary
    with pytest.raises(InvalidInputError, match=r"routing_key.*string or an integer parameter, got bool_param"):
        service.infer(_zeros_request(key=True))
    rollouts.close()
