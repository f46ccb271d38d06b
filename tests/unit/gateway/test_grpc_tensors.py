"""KServe V2 tensors <-> numpy: datatypes, raw views, typed contents, and every mismatch named."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.errors import InputDtypeError, InputShapeError, InvalidInputError
from gateway.grpc.protos import inference_pb2 as pb
from gateway.grpc.tensors import (
    DATATYPES,
    datatype_of,
    decode_raw,
    decode_typed,
    encode_raw,
    encode_typed,
    wire_shape,
)


def _tensor(name: str, datatype: str, shape: list[int]) -> pb.ModelInferRequest.InferInputTensor:
    return pb.ModelInferRequest.InferInputTensor(name=name, datatype=datatype, shape=shape)


@pytest.mark.parametrize("name", sorted(DATATYPES))
def test_every_datatype_round_trips_through_raw_bytes(name: str) -> None:
    rng = np.random.default_rng(3)
    arr = (rng.normal(size=(3, 5)) * 10).astype(DATATYPES[name])
    assert datatype_of(arr.dtype) == name
    raw = encode_raw(arr)
    assert len(raw) == arr.nbytes
    back = decode_raw("m", _tensor("x", name, [3, 5]), raw)
    assert back.dtype == arr.dtype and back.shape == (3, 5)
    np.testing.assert_array_equal(back, arr)


def test_raw_decoding_is_a_view_of_the_request_bytes() -> None:
    raw = np.arange(12, dtype="<f4").tobytes()
    arr = decode_raw("m", _tensor("x", "FP32", [3, 4]), raw)
    assert not arr.flags.owndata and not arr.flags.writeable
    assert arr.dtype.isnative and arr.flags.c_contiguous
    assert np.shares_memory(arr, np.frombuffer(raw, dtype=np.uint8))
    assert arr[2, 3] == 11.0


def test_raw_encoding_is_little_endian_whatever_the_array_order() -> None:
    big = np.array([1.5, -2.0], dtype=">f4")
    assert encode_raw(big) == np.array([1.5, -2.0], dtype="<f4").tobytes()
    # and a non-contiguous array is encoded row-major
    strided = np.arange(8, dtype=np.float32).reshape(2, 4)[:, ::2]
    assert encode_raw(strided) == np.array([0, 2, 4, 6], dtype="<f4").tobytes()


def test_raw_length_that_disagrees_with_the_shape_is_named() -> None:
    with pytest.raises(InvalidInputError, match=r"raw contents hold 10 bytes; shape \[2, 4\] of FP32 needs 32") as info:
        decode_raw("pctr", _tensor("features", "FP32", [2, 4]), b"\x00" * 10)
    assert info.value.model == "pctr" and info.value.input == "features"


def test_unknown_datatype_and_negative_dimension_are_refused() -> None:
    with pytest.raises(InputDtypeError, match="datatype 'BYTES' is not supported"):
        decode_raw("m", _tensor("x", "BYTES", [1]), b"abcd")
    with pytest.raises(InputShapeError, match="negative dimension"):
        decode_raw("m", _tensor("x", "FP32", [-1, 4]), b"")


def test_typed_contents_decode_into_the_declared_shape() -> None:
    tensor = _tensor("x", "FP32", [2, 3])
    contents = pb.InferTensorContents(fp32_contents=[0.5, 1, 2, 3, 4, 5.25])
    arr = decode_typed("m", tensor, contents)
    assert arr.dtype == np.float32 and arr.shape == (2, 3) and arr[1, 2] == 5.25
    ints = decode_typed("m", _tensor("i", "INT64", [3]), pb.InferTensorContents(int64_contents=[1, -2, 3]))
    np.testing.assert_array_equal(ints, np.array([1, -2, 3], np.int64))


def test_typed_count_mismatch_and_missing_typed_field_are_refused() -> None:
    with pytest.raises(InvalidInputError, match=r"fp32_contents holds 5 values; shape \[2, 3\] needs 6"):
        decode_typed("m", _tensor("x", "FP32", [2, 3]), pb.InferTensorContents(fp32_contents=[0.0] * 5))
    with pytest.raises(InputDtypeError, match="FP16 has no typed contents field"):
        decode_typed("m", _tensor("x", "FP16", [1]), pb.InferTensorContents())
    with pytest.raises(InvalidInputError, match="out of range for INT8"):
        decode_typed("m", _tensor("x", "INT8", [1]), pb.InferTensorContents(int_contents=[300]))


def test_typed_encoding_fills_the_matching_field() -> None:
    contents = pb.InferTensorContents()
    encode_typed(np.array([[0.25, 0.5]], np.float32), contents)
    assert list(contents.fp32_contents) == [0.25, 0.5] and not contents.fp64_contents
    contents = pb.InferTensorContents()
    encode_typed(np.array([True, False]), contents)
    assert list(contents.bool_contents) == [True, False]


def test_signature_dimensions_use_minus_one_for_variable() -> None:
    assert wire_shape((None, 64)) == [-1, 64]
    with pytest.raises(ValueError, match="no KServe V2 datatype"):
        datatype_of(np.dtype(np.complex64))
