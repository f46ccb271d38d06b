"""The error tree mapped out to gRPC status codes, at the transport's boundary.

::

    InvalidInputError (and every subclass)  INVALID_ARGUMENT
    ModelNotFoundError                      NOT_FOUND
    DeadlineExceededError                   DEADLINE_EXCEEDED
    UnavailableError                        UNAVAILABLE
    any other exception                     INTERNAL

The status message is the exception's own message, which names the model and the input
(see :mod:`gateway.errors`), so a client reading the status can find its bad request.
"""

from __future__ import annotations

import grpc

from gateway.errors import (
    DeadlineExceededError,
    InvalidInputError,
    ModelNotFoundError,
    UnavailableError,
)

__all__ = ["status_for"]

_CODES: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (InvalidInputError, grpc.StatusCode.INVALID_ARGUMENT),
    (ModelNotFoundError, grpc.StatusCode.NOT_FOUND),
    (DeadlineExceededError, grpc.StatusCode.DEADLINE_EXCEEDED),
    (UnavailableError, grpc.StatusCode.UNAVAILABLE),
)


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The status code and message a client sees for ``exc``."""
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code, str(exc)
    return grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}"
