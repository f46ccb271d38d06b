"""The stored value of one entity in one feature group: a fixed header and a packed float32 vector.

Layout (little-endian, the byte order of every machine Scoregate runs on and the one Java's
reader sets explicitly)::

    offset  size  field
    0       4     magic  b"SGF1"
    4       2     group version (uint16)
    6       2     width: number of float32 values (uint16)
    8       8     event time, milliseconds since the epoch (int64)
    16      4*w   the values, float32, in the group's feature order

Fixed-size, so that a batch of values of one group decodes with *one* ``np.frombuffer`` over
their concatenation: no per-entity or per-feature Python objects between the cache and the
score buffer (:func:`decode_many`). Writers are strict (width, dtype, finiteness per policy);
readers reject what is not this layout rather than mis-read it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from cache.registry import FeatureGroup

__all__ = ["HEADER_BYTES", "MAGIC", "CodecError", "decode_many", "encode", "value_bytes"]

MAGIC = b"SGF1"
HEADER_BYTES = 16
_HEADER = np.dtype([("magic", "S4"), ("version", "<u2"), ("width", "<u2"), ("event_ms", "<i8")])


class CodecError(ValueError):
    """A value that does not fit its group, at write time, or a stored value that is not this layout."""


def value_bytes(group: FeatureGroup) -> int:
    return HEADER_BYTES + 4 * group.width


def encode(group: FeatureGroup, values: npt.ArrayLike, event_ms: int, *, allow_nonfinite: bool = False) -> bytearray:
    """One entity's value. Rejects a wrong length, a non-float input and (unless allowed) NaN/inf."""
    arr = np.asarray(values)
    if arr.dtype.kind != "f":
        raise CodecError(f"group {group.name!r}: values must be floating point, got {arr.dtype}")
    if arr.shape != (group.width,):
        raise CodecError(f"group {group.name!r}: expected {group.width} values, got shape {arr.shape}")
    if not allow_nonfinite and not np.isfinite(arr).all():
        raise CodecError(f"group {group.name!r}: NaN or inf in values (write defaults instead, or allow_nonfinite)")
    out = bytearray(value_bytes(group))
    header = np.frombuffer(out, dtype=_HEADER, count=1)
    header["magic"] = MAGIC
    header["version"] = group.version
    header["width"] = group.width
    header["event_ms"] = event_ms
    np.frombuffer(out, dtype="<f4", offset=HEADER_BYTES)[:] = arr
    return out


def decode_many(
    group: FeatureGroup, values: Sequence[bytes | bytearray | None]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Decode ``values`` (``None`` = missing) into ``(matrix [n, width], event_ms [n], present [n])``.

    Missing rows hold the group's defaults and event time 0. One join and one ``frombuffer``:
    cost grows with bytes, not with the number of Python objects touched per feature.
    """
    n = len(values)
    size = value_bytes(group)
    present = np.fromiter((v is not None for v in values), dtype=np.bool_, count=n)
    blob = b"".join(v for v in values if v is not None)
    k = int(present.sum())
    if len(blob) != k * size:
        raise CodecError(f"group {group.name!r}: stored values are not {size} bytes each (wrong group or version?)")
    matrix = np.empty((n, group.width), dtype=np.float32)
    event_ms = np.zeros(n, dtype=np.int64)
    if k:
        rows = np.frombuffer(blob, dtype=np.uint8).reshape(k, size)
        header = rows[:, :HEADER_BYTES].copy().view(_HEADER).reshape(k)
        if (header["magic"] != MAGIC).any() or (header["width"] != group.width).any():
            raise CodecError(f"group {group.name!r}: a stored value has another layout (magic or width differ)")
        if (header["version"] != group.version).any():
            raise CodecError(f"group {group.name!r}: a stored value has another version than v{group.version}")
        matrix[present] = rows[:, HEADER_BYTES:].copy().view("<f4")
        event_ms[present] = header["event_ms"]
    matrix[~present] = group.defaults
    return matrix, event_ms, present
