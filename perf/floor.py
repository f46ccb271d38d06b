"""The scoring floor every suite compares against: raw ONNX Runtime, nothing validated or rebound.

``run_with_iobinding`` on an ``IOBinding`` bound once to preallocated arrays, with the same
session options as :class:`gateway.runtime.ModelRuntime`'s defaults. No Python caller goes faster.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from perf.harness import Op

__all__ = ["floor_op"]


def floor_op(model: str | os.PathLike[str], x: np.ndarray[Any, Any]) -> Op:
    """An op scoring ``x`` (float32 ``[batch, F]``, input ``features``, output ``score``) with ``model``."""
    import onnxruntime as ort

    from gateway.options import RuntimeOptions
    from gateway.runtime import session_options

    session = ort.InferenceSession(str(model), session_options(RuntimeOptions()), providers=["CPUExecutionProvider"])
    out = np.empty(x.shape[0], dtype=np.float32)
    binding = session.io_binding()
    binding.bind_input("features", "cpu", 0, np.float32, x.shape, x.ctypes.data)
    binding.bind_output("score", "cpu", 0, np.float32, out.shape, out.ctypes.data)
    keep = (x, out)

    def op() -> object:
        session.run_with_iobinding(binding)
        return keep

    return op
