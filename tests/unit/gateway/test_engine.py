"""Engine: models by name, the unknown-model error, loading a directory of versions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx_builders import two_input_model

from gateway.engine import Engine
from gateway.errors import InvalidInputError, ModelLoadError, ModelNotFoundError


def test_loads_highest_version_per_model_and_scores(tmp_path: Path, logistic: tuple[bytes, np.ndarray, float]) -> None:
    for name, versions in {"pctr": ("1", "2", "10"), "pcvr": ("1",)}.items():
        for v in versions:
            (tmp_path / name / v).mkdir(parents=True)
            (tmp_path / name / v / "model.onnx").write_bytes(logistic[0])
    engine = Engine.from_directory(tmp_path)
    assert engine.names() == ("pcvr", "pctr") or engine.names() == ("pctr", "pcvr")
    assert len(engine) == 2
    x = np.zeros((3, 16), np.float32)
    out = np.empty(3, np.float32)
    assert engine.score("pctr", x, out) is out
    np.testing.assert_allclose(out, 1 / (1 + np.exp(1.0)), rtol=1e-6)


def test_unknown_model_names_the_loaded_ones(tmp_path: Path, logistic: tuple[bytes, np.ndarray, float]) -> None:
    (tmp_path / "pctr" / "1").mkdir(parents=True)
    (tmp_path / "pctr" / "1" / "model.onnx").write_bytes(logistic[0])
    engine = Engine.from_directory(tmp_path)
    with pytest.raises(ModelNotFoundError, match="unknown model 'pctx'; loaded: pctr") as info:
        engine.score("pctx", np.zeros((1, 16), np.float32))
    assert info.value.model == "pctx"
    # and the engine keeps serving
    assert engine.score("pctr", np.zeros((1, 16), np.float32)).shape == (1,)


def test_corrupt_model_in_directory_fails_load_clearly(tmp_path: Path) -> None:
    (tmp_path / "broken" / "1").mkdir(parents=True)
    (tmp_path / "broken" / "1" / "model.onnx").write_bytes(b"garbage")
    with pytest.raises(ModelLoadError, match="cannot load model 'broken'"):
        Engine.from_directory(tmp_path)


class _Hook:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, tuple[int, ...], int]] = []
        self.failures: list[tuple[str, str, str]] = []

    def observe(self, model: str, version: str, x: np.ndarray, out: np.ndarray, latency_ns: int) -> None:
        self.calls.append((model, version, out.shape, latency_ns))

    def failed(self, model: str, version: str, error: Exception) -> None:
        self.failures.append((model, version, type(error).__name__))


def test_monitor_hook_sees_every_call_pinned_or_not_and_failures(
    tmp_path: Path, logistic: tuple[bytes, np.ndarray, float]
) -> None:
    for v in ("1", "2"):
        (tmp_path / "pctr" / v).mkdir(parents=True)
        (tmp_path / "pctr" / v / "model.onnx").write_bytes(logistic[0])
    engine = Engine.from_directory(tmp_path)
    hook = _Hook()
    engine.score("pctr", np.zeros((3, 16), np.float32))  # no hook: nothing seen
    engine.monitor = hook
    engine.score("pctr", np.zeros((3, 16), np.float32))
    engine.score("pctr@2", np.zeros((5, 16), np.float32))  # pinned: reported under the model's name
    with pytest.raises(InvalidInputError):
        engine.score("pctr", np.zeros((3, 15), np.float32))
    assert [(m, v, s) for m, v, s, _ in hook.calls] == [("pctr", "2", (3,)), ("pctr", "2", (5,))]
    assert all(0 < ns < 10**9 for *_, ns in hook.calls)
    assert hook.failures == [("pctr", "2", "InputShapeError")]
    engine.monitor = None
    engine.score("pctr", np.zeros((3, 16), np.float32))
    assert len(hook.calls) == 2


def test_monitor_hook_sees_general_path_runs_and_their_failures(tmp_path: Path) -> None:
    (tmp_path / "pair" / "1").mkdir(parents=True)
    (tmp_path / "pair" / "1" / "model.onnx").write_bytes(two_input_model())
    engine = Engine.from_directory(tmp_path)
    hook = _Hook()
    engine.monitor = hook
    a = np.ones((3, 4), np.float32)
    result = engine.run("pair", {"a": a, "b": a})
    np.testing.assert_array_equal(result["sum"], 2 * a)
    with pytest.raises(InvalidInputError):
        engine.run("pair", {"a": a})  # input b missing
    assert [(m, v, s) for m, v, s, _ in hook.calls] == [("pair", "1", (3, 4))]
    assert 0 < hook.calls[0][3] < 10**9
    assert hook.failures == [("pair", "1", "InputNameError")]
