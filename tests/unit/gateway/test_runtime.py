"""ModelRuntime against real ONNX Runtime: scoring, zero-copy buffers, and every kind of bad input."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from onnx_builders import FEATURES, reference_scores, two_input_model

from gateway.errors import (
    BatchSizeError,
    InputDtypeError,
    InputLayoutError,
    InputNameError,
    InputShapeError,
    InvalidInputError,
    ModelLoadError,
    NonFiniteInputError,
    ScoregateError,
    UnavailableError,
)
from gateway.options import GraphOptimization, NonFinitePolicy, RuntimeOptions
from gateway.runtime import ModelRuntime, session_options

Batch = Callable[[int], np.ndarray]


@pytest.fixture
def rt(model_file: Path) -> ModelRuntime:
    return ModelRuntime.load(model_file, name="pctr", options=RuntimeOptions(max_batch=512))


def test_scores_match_reference(rt: ModelRuntime, logistic: tuple[bytes, np.ndarray, float], batch: Batch) -> None:
    _, w, b = logistic
    for rows in (1, 7, 256):
        x = batch(rows)
        np.testing.assert_allclose(rt.score(x), reference_scores(x, w, b), rtol=1e-5, atol=1e-6)


def test_signature_read_from_graph(rt: ModelRuntime) -> None:
    (inp,) = rt.inputs
    (out,) = rt.outputs
    assert (inp.name, inp.dtype, inp.dims) == ("features", np.dtype(np.float32), (None, FEATURES))
    assert (out.name, out.dims) == ("score", (None,))
    assert "features: float32[batch, 16]" in repr(rt)


def test_output_written_in_place_into_caller_buffer(rt: ModelRuntime, batch: Batch) -> None:
    x = batch(32)
    out = np.full(32, -1.0, dtype=np.float32)
    address = out.ctypes.data
    returned = rt.score(x, out)
    assert returned is out and out.ctypes.data == address
    assert np.all((out > 0) & (out < 1))


def test_reused_buffers_see_new_contents(
    rt: ModelRuntime, logistic: tuple[bytes, np.ndarray, float], batch: Batch
) -> None:
    """The binding cache must never serve stale data: same array object, new contents."""
    _, w, b = logistic
    x = batch(64)
    out = np.empty(64, dtype=np.float32)
    for _ in range(3):
        x[:] = batch(64)
        rt.score(x, out)
        np.testing.assert_allclose(out, reference_scores(x, w, b), rtol=1e-5, atol=1e-6)


def test_same_array_reshaped_in_place_is_revalidated(rt: ModelRuntime, batch: Batch) -> None:
    x = batch(8)
    rt.score(x, np.empty(8, dtype=np.float32))
    x.shape = (4, 2 * FEATURES)
    with pytest.raises(InputShapeError, match="feature count is 32, expected 16"):
        rt.score(x, np.empty(4, dtype=np.float32))


def test_callers_cycling_through_buffers_get_each_buffers_scores(
    rt: ModelRuntime, logistic: tuple[bytes, np.ndarray, float], batch: Batch
) -> None:
    """A thread keeps a binding per buffer it scores from (arena and ring slots): past the number it keeps, and
    when one buffer's memory is read as another shape, every call still scores its own rows into its own output."""
    _, w, b = logistic
    xs = [batch(rows) for rows in (1, 16, 64) for _ in range(15)]  # 45 buffers: more than a thread keeps (32)
    outs = [np.empty(len(x), dtype=np.float32) for x in xs]
    for _ in range(2):
        for x, out in zip(xs, outs, strict=True):
            x[:] = batch(len(x))
            assert rt.score(x, out) is out
            np.testing.assert_allclose(out, reference_scores(x, w, b), rtol=1e-5, atol=1e-6)
    whole, whole_out = batch(64), np.full(64, -1.0, dtype=np.float32)
    half, half_out = whole[:32], whole_out[:32]  # the same addresses, other shapes
    for x, out in ((whole, whole_out), (half, half_out), (whole, whole_out)):
        whole_out[:] = -1.0
        rt.score(x, out)
        np.testing.assert_allclose(out, reference_scores(x, w, b), rtol=1e-5, atol=1e-6)
        assert (whole_out[len(x) :] == -1.0).all()  # nothing written past this call's rows


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda x: x.astype(np.float64), InputDtypeError, "dtype float64, expected float32"),
        (lambda x: x.astype(np.int32), InputDtypeError, "dtype int32, expected float32"),
        (lambda x: x[0], InputShapeError, "rank 1"),
        (lambda x: x[None], InputShapeError, "rank 3"),
        (lambda x: np.ascontiguousarray(x[:, :-1]), InputShapeError, "feature count is 15, expected 16"),
        (lambda x: np.hstack([x, x]), InputShapeError, "feature count is 32, expected 16"),
        (np.asfortranarray, InputLayoutError, "not C-contiguous"),
        (lambda x: np.hstack([x, x])[:, ::2], InputLayoutError, "not C-contiguous"),
        (lambda x: x.astype(">f4"), InputLayoutError, "non-native byte order"),
        (lambda x: x[:0], BatchSizeError, "empty batch"),
        (lambda x: np.zeros((513, FEATURES), np.float32), BatchSizeError, "exceeds max_batch 512"),
        (lambda x: x.tolist(), InputDtypeError, "expected a numpy array"),
    ],
    ids=[
        "float64", "int32", "rank1", "rank3", "too-few-features", "too-many-features",
        "fortran-order", "strided-view", "big-endian", "empty-batch", "over-max-batch", "python-list",
    ],
)  # fmt: skip
def test_bad_input_is_a_typed_error_naming_model_and_input(
    rt: ModelRuntime, batch: Batch, make: Callable[[np.ndarray], object], error: type[InvalidInputError], message: str
) -> None:
    with pytest.raises(error, match=message) as info:
        rt.score(make(batch(4)))  # type: ignore[arg-type]
    assert info.value.model == "pctr" and info.value.input == "features"
    assert str(info.value).startswith("model 'pctr' input 'features': ")
    assert isinstance(info.value, ScoregateError)


def test_big_endian_would_silently_misscore_so_it_is_rejected(rt: ModelRuntime, batch: Batch) -> None:
    """The reason for the byte-order check: the same bytes read as native floats are garbage."""
    x = batch(4)
    swapped = x.astype(">f4")
    as_native = np.frombuffer(swapped.tobytes(), dtype=np.float32).reshape(x.shape)
    assert not np.allclose(rt.score(as_native.copy()) if np.isfinite(as_native).all() else 0, rt.score(x))
    with pytest.raises(InputLayoutError, match="newbyteorder"):
        rt.score(swapped)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_rejected_by_default(rt: ModelRuntime, batch: Batch, bad: float) -> None:
    x = batch(8)
    x[5, 3] = bad
    with pytest.raises(NonFiniteInputError, match=r"1 non-finite value\(s\).*index \(5, 3\)"):
        rt.score(x, np.empty(8, dtype=np.float32))


@pytest.mark.parametrize("rows", [1, 2, 64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_value_written_in_place_between_calls_is_screened_at_every_size(
    rt: ModelRuntime, batch: Batch, rows: int, bad: float
) -> None:
    x = batch(rows)
    out = np.empty(rows, dtype=np.float32)
    rt.score(x, out)  # binds this buffer
    x[rows - 1, 2] = bad  # the caller rewrites the same buffer, as the JVM bridge's arenas are rewritten
    with pytest.raises(NonFiniteInputError):
        rt.score(x, out)
    x[rows - 1, 2] = 3e38  # huge but finite: a sum or a dot overflows to inf; the exact check clears it
    x[0, 0] = 3e38
    rt.score(x, out)
    assert np.isfinite(out).all()


def test_huge_finite_values_are_not_mistaken_for_inf(rt: ModelRuntime, batch: Batch) -> None:
    """x . x overflows to inf for |x| > 1.8e19; the exact check must clear it."""
    x = batch(4)
    x[0, 0] = 3e38
    out = rt.score(x)
    assert np.isfinite(out).all()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_replaced_under_replace_policy(
    model_file: Path, logistic: tuple[bytes, np.ndarray, float], batch: Batch, bad: float
) -> None:
    _, w, b = logistic
    opts = RuntimeOptions(nonfinite=NonFinitePolicy.REPLACE, nonfinite_replacement=0.25)
    rt = ModelRuntime.load(model_file, name="pctr", options=opts)
    x = batch(8)
    x[2, 1] = bad
    original = x.copy()
    out = np.empty(8, dtype=np.float32)
    assert rt.score(x, out) is out
    cleaned = original.copy()
    cleaned[2, 1] = 0.25
    np.testing.assert_allclose(out, reference_scores(cleaned, w, b), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(x, original)  # the caller's buffer is untouched
    # and the next clean call on the same buffers scores normally
    x[2, 1] = 0.0
    rt.score(x, out)
    np.testing.assert_allclose(out, reference_scores(x, w, b), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("out", "error", "message"),
    [
        (np.empty(3, np.float32), InputShapeError, r"output buffer shape \(3,\), expected \(4,\)"),
        (np.empty(4, np.float64), InputDtypeError, "output buffer has dtype float64"),
        (np.empty(4, ">f4"), InputLayoutError, "non-native byte order"),
        (np.empty((4, 1), np.float32), InputShapeError, "rank 2"),
    ],
)
def test_bad_output_buffers(
    rt: ModelRuntime, batch: Batch, out: np.ndarray, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        rt.score(batch(4), out)


def test_read_only_output_buffer(rt: ModelRuntime, batch: Batch) -> None:
    out = np.empty(4, np.float32)
    out.flags.writeable = False
    with pytest.raises(InputLayoutError, match="read-only"):
        rt.score(batch(4), out)


# ----------------------------------------------------------------------------- loading
def test_corrupt_onnx_file(tmp_path: Path, logistic: tuple[bytes, np.ndarray, float]) -> None:
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(logistic[0][: len(logistic[0]) // 2])
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00not an onnx model\xff" * 50)
    for path in (truncated, garbage):
        with pytest.raises(ModelLoadError, match=f"cannot load model '{path.stem}': ONNX Runtime rejected"):
            ModelRuntime.load(path)


def test_missing_file_and_unavailable_provider(tmp_path: Path, model_file: Path) -> None:
    with pytest.raises(ModelLoadError, match="no model file"):
        ModelRuntime.load(tmp_path / "absent.onnx")
    with pytest.raises(ModelLoadError, match=r"CUDAExecutionProvider.*not available"):
        ModelRuntime.load(
            model_file, options=RuntimeOptions(providers=("CUDAExecutionProvider", "CPUExecutionProvider"))
        )


def test_session_options_follow_runtime_options() -> None:
    so = session_options(RuntimeOptions(intra_op_threads=2, graph_optimization=GraphOptimization.BASIC))
    assert so.intra_op_num_threads == 2 and so.inter_op_num_threads == 1
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    with pytest.raises(ValueError, match="max_batch"):
        RuntimeOptions(max_batch=0)


def test_closed_runtime_is_unavailable(rt: ModelRuntime, batch: Batch) -> None:
    rt.close()
    with pytest.raises(UnavailableError):
        rt.score(batch(2))


# ----------------------------------------------------------------------------- general run()
def test_run_multi_input_with_dynamic_output(tmp_path: Path) -> None:
    rt = ModelRuntime.load(two_input_model(), name="two")
    a = np.array([[1, 0, 2, 0], [0, 3, 0, 0]], dtype=np.float32)
    b = np.ones((2, 4), dtype=np.float32)
    total = np.empty((2, 4), dtype=np.float32)
    result = rt.run({"a": a, "b": b}, {"sum": total})
    assert result["sum"] is total
    np.testing.assert_array_equal(total, a + b)
    np.testing.assert_array_equal(result["idx"], np.array(np.nonzero(a)))
    with pytest.raises(InputNameError, match="'b': missing"):
        rt.run({"a": a})
    with pytest.raises(InputNameError, match="'c': no such input"):
        rt.run({"a": a, "b": b, "c": b})
    with pytest.raises(InputShapeError, match="differs from other inputs"):
        rt.run({"a": a, "b": np.ones((3, 4), np.float32)})
    with pytest.raises(InputNameError, match="score\\(\\) needs one float32 input"):
        rt.score(a)


# ----------------------------------------------------------------------------- concurrency
def test_eight_threads_match_single_threaded_bit_for_bit(rt: ModelRuntime, batch: Batch) -> None:
    inputs = [batch(rows) for rows in (1, 3, 64, 200) * 8]
    expected = [rt.score(x).copy() for x in inputs]
    start = threading.Barrier(8)

    def worker(k: int) -> list[np.ndarray]:
        start.wait(timeout=30)
        got = []
        for rep in range(25):
            for i in range(k, len(inputs), 8) if rep % 2 else range(len(inputs)):
                out = np.empty(inputs[i].shape[0], np.float32)
                got.append((i, rt.score(inputs[i], out).copy()))
        return got  # type: ignore[return-value]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(worker, range(8)))
    checked = 0
    for got in results:
        for i, out in got:  # type: ignore[misc]
            np.testing.assert_array_equal(out, expected[i])
            checked += 1
    assert checked > 1000


def test_bad_calls_under_concurrency_leave_good_calls_unharmed(rt: ModelRuntime, batch: Batch) -> None:
    good = batch(32)
    expected = rt.score(good).copy()
    bad_inputs = [
        good.astype(np.float64),
        good.astype(">f4"),
        np.asfortranarray(good),
        good[:0],
        np.zeros((600, FEATURES), np.float32),
        np.where(np.arange(FEATURES) == 3, np.nan, good).astype(np.float32),
    ]
    errors: list[type[Exception]] = []
    lock = threading.Lock()

    def bad_worker(k: int) -> None:
        for rep in range(200):
            try:
                rt.score(bad_inputs[(k + rep) % len(bad_inputs)])
            except InvalidInputError as exc:
                with lock:
                    errors.append(type(exc))

    def good_worker(_: int) -> int:
        out = np.empty(32, np.float32)
        for _ in range(300):
            rt.score(good, out)
            np.testing.assert_array_equal(out, expected)
        return 300

    with ThreadPoolExecutor(8) as pool:
        bad = [pool.submit(bad_worker, k) for k in range(4)]
        goods = [pool.submit(good_worker, k) for k in range(4)]
        assert sum(f.result(timeout=120) for f in goods) == 1200
        for f in bad:
            f.result(timeout=120)
    assert len(errors) == 800
    assert set(errors) == {InputDtypeError, InputLayoutError, BatchSizeError, NonFiniteInputError}
    np.testing.assert_array_equal(rt.score(good), expected)
