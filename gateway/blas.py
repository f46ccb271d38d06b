"""numpy's BLAS in a serving process: one thread.

OpenBLAS splits even a matrix-vector product or a long dot across its own thread pool. In a gateway whose cores
are already busy with ONNX Runtime runs and request threads, those helper threads only contend: measured on the
2-core machines, the retrieval stage's 100k x 16 similarity took 1.4 ms with OpenBLAS's threads and 0.19 ms with
one, and the scoring core's NaN/inf screen (one ``dot`` over the batch) gets the same treatment. Every serving entry
point (the transports, the pipeline, the demo) calls :func:`single_threaded_blas` once; it is process-wide and
idempotent, and not done at import time (STYLE: no side effects on import).
"""

from __future__ import annotations

import threading

__all__ = ["single_threaded_blas"]

_lock = threading.Lock()
_done = False


def single_threaded_blas() -> None:
    """Limit every BLAS library numpy loaded to one thread, for the rest of the process."""
    global _done  # noqa: PLW0603 - one process-wide switch
    with _lock:
        if _done:
            return
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1, user_api="blas")
        _done = True
