"""Array work on a serving thread that keeps the GIL.

numpy releases the GIL around an operation on more than :data:`GIL_FREE_ELEMENTS` elements (and around every BLAS
call, such as ``dot`` or ``@``, whatever the size). On an idle interpreter that is free; on a loaded gateway, where
several threads take turns between ONNX Runtime runs, taking the GIL back costs the serving thread tens of
microseconds on average (measured under the pipeline's load with py-spy: one 4,000-element screen per request cost
more than everything else the monitoring did). Work that rides along with a request (staging for the monitor,
copies for a shadow comparison) therefore stays below that size, in slices where it must.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["GIL_FREE_ELEMENTS", "copy_in_slices"]

#: numpy releases the GIL around an operation on more than this many elements.
GIL_FREE_ELEMENTS = 500
#: Beyond this many slices a single copy (one release, one re-acquisition) is the cheaper of the two.
_MAX_SLICES = 16


def copy_in_slices(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """A C-contiguous copy of ``a``, made in slices numpy copies without releasing the GIL."""
    out = np.empty(a.shape, dtype=a.dtype)
    n = a.size
    if n <= GIL_FREE_ELEMENTS or n > GIL_FREE_ELEMENTS * _MAX_SLICES or not a.flags.c_contiguous:
        out[...] = a
        return out
    src, dst = a.reshape(-1), out.reshape(-1)
    for i in range(0, n, GIL_FREE_ELEMENTS):
        dst[i : i + GIL_FREE_ELEMENTS] = src[i : i + GIL_FREE_ELEMENTS]
    return out
