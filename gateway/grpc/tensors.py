"""Tensors between the KServe V2 wire and numpy: datatypes, raw bytes, typed contents.

Contract
========
* **Raw contents are views.** :func:`decode_raw` returns ``np.frombuffer`` over the request's
  bytes: no copy and no per-element Python object. The protocol's raw encoding is little-endian,
  row-major, unpadded; on a big-endian host (none in production) the view is byte-swapped into a
  native copy, since ONNX Runtime reads native memory. The returned array is read-only and lives
  as long as the bytes object it views.
* **Typed contents** (``InferTensorContents``) are repeated protobuf fields, so decoding them
  necessarily walks the elements; clients that care about speed send raw contents (tritonclient
  always does).
* **Every mismatch is an** :class:`gateway.errors.InvalidInputError` naming the model and the
  tensor: unknown datatype, negative dimension, a byte or element count that disagrees with the
  declared shape. Whether the datatype and shape suit the *model* is the runtime's check, not
  this module's.
* ``BYTES`` and ``BF16`` tensors are refused: Scoregate serves numeric ranking models.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np

from gateway.errors import InputDtypeError, InputShapeError, InvalidInputError

__all__ = [
    "DATATYPES",
    "TensorHeader",
    "datatype_of",
    "decode_raw",
    "decode_typed",
    "encode_raw",
    "encode_typed",
    "wire_shape",
]

#: The protocol's tensor datatypes Scoregate accepts, and their numpy types.
DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
}
_NAMES: dict[np.dtype[Any], str] = {dtype: name for name, dtype in DATATYPES.items()}
_WIRE: dict[str, np.dtype[Any]] = {name: dtype.newbyteorder("<") for name, dtype in DATATYPES.items()}

#: Which ``InferTensorContents`` field carries each datatype (FP16 has none: raw only).
_CONTENTS_FIELD: dict[str, str] = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}


class TensorHeader(Protocol):
    """What the decoders read of a request tensor (``ModelInferRequest.InferInputTensor``)."""

    @property
    def name(self) -> str: ...
    @property
    def datatype(self) -> str: ...
    @property
    def shape(self) -> Any: ...  # a repeated int64 field


def datatype_of(dtype: np.dtype[Any]) -> str:
    """The protocol's name for ``dtype`` ("FP32" for float32); ``ValueError`` if it has none."""
    try:
        return _NAMES[np.dtype(dtype).newbyteorder("=")]
    except KeyError:
        raise ValueError(f"numpy dtype {dtype} has no KServe V2 datatype") from None


def wire_shape(dims: tuple[int | None, ...]) -> list[int]:
    """A signature's dimensions as the protocol writes them: -1 for a variable dimension."""
    return [-1 if d is None else int(d) for d in dims]


def _header(model: str, tensor: TensorHeader) -> tuple[np.dtype[Any], tuple[int, ...], int]:
    """The tensor's wire dtype, shape and element count, checked."""
    wire = _WIRE.get(tensor.datatype)
    if wire is None:
        known = ", ".join(DATATYPES)
        raise InputDtypeError(model, tensor.name, f"datatype {tensor.datatype!r} is not supported (supported: {known})")
    shape = tuple(int(d) for d in tensor.shape)
    if any(d < 0 for d in shape):
        raise InputShapeError(model, tensor.name, f"shape {list(shape)} has a negative dimension")
    return wire, shape, math.prod(shape)


def decode_raw(model: str, tensor: TensorHeader, raw: bytes) -> np.ndarray[Any, Any]:
    """A read-only view of ``raw`` as the tensor's datatype and shape (see the module contract)."""
    wire, shape, count = _header(model, tensor)
    want = count * wire.itemsize
    if len(raw) != want:
        raise InvalidInputError(
            model,
            tensor.name,
            f"raw contents hold {len(raw)} bytes; shape {list(shape)} of {tensor.datatype} needs {want}",
        )
    arr = np.frombuffer(raw, dtype=wire).reshape(shape)
    if not wire.isnative:  # big-endian host: ONNX Runtime needs native order
        arr = arr.astype(wire.newbyteorder("="))
    return arr


def decode_typed(model: str, tensor: TensorHeader, contents: Any) -> np.ndarray[Any, Any]:
    """The tensor's typed contents (an ``InferTensorContents``) as a new array."""
    wire, shape, count = _header(model, tensor)
    field = _CONTENTS_FIELD.get(tensor.datatype)
    if field is None:
        raise InputDtypeError(
            model, tensor.name, f"datatype {tensor.datatype} has no typed contents field; send raw_input_contents"
        )
    values = getattr(contents, field)
    if len(values) != count:
        raise InvalidInputError(
            model,
            tensor.name,
            f"{field} holds {len(values)} values; shape {list(shape)} needs {count}",
        )
    native = wire.newbyteorder("=")
    try:
        return np.fromiter(values, dtype=native, count=count).reshape(shape)
    except OverflowError as exc:  # e.g. 300 in int_contents for an INT8 tensor
        raise InvalidInputError(model, tensor.name, f"{field} value out of range for {tensor.datatype}") from exc


def encode_raw(arr: np.ndarray[Any, Any]) -> bytes:
    """``arr`` as the protocol's raw bytes (little-endian, row-major)."""
    little = arr.astype(arr.dtype.newbyteorder("<"), order="C", copy=False)
    return little.tobytes()


def encode_typed(arr: np.ndarray[Any, Any], contents: Any) -> None:
    """Append ``arr``'s values to the matching field of ``contents`` (an ``InferTensorContents``)."""
    name = datatype_of(arr.dtype)
    field = _CONTENTS_FIELD.get(name)
    if field is None:
        raise ValueError(f"datatype {name} has no typed contents field")
    getattr(contents, field).extend(arr.reshape(-1).tolist())
