"""Scoregate's one error tree.

Every transport (in-process JPype, Py4J, gRPC) maps its own wire errors *into* this tree with
``raise ... from exc`` and maps the tree *out* to its callers (typed Java exceptions, gRPC status
codes). Code in the scoring core raises nothing else on purpose.

::

    ScoregateError
    ├── ModelNotFoundError        unknown model name or version; the request names something not loaded
    ├── ModelLoadError            a model file is missing, corrupt, or asks for what this host lacks
    ├── InvalidInputError         the request is malformed; retrying it unchanged fails again
    │   ├── InputNameError        an input is missing or not part of the model's signature
    │   ├── InputDtypeError       element type differs from the signature (float64 for float32, ...)
    │   ├── InputShapeError       rank or a fixed dimension (the feature count) differs
    │   ├── InputLayoutError      not C-contiguous, not native byte order, read-only output buffer
    │   ├── NonFiniteInputError   NaN or +/-inf under the ``reject`` policy
    │   └── BatchSizeError        empty batch, or more rows than the model's maximum
    ├── ModelExecutionError       ONNX Runtime failed while running a valid request
    ├── DeadlineExceededError     the request's deadline passed before it was served
    └── UnavailableError          the gateway (or the path to it) is down; retry elsewhere or later

Every :class:`InvalidInputError` names the model, the input and the problem, so a message read in
a Java stack trace or a gRPC status is enough to find the bad caller.
"""

from __future__ import annotations

__all__ = [
    "BatchSizeError",
    "DeadlineExceededError",
    "InputDtypeError",
    "InputLayoutError",
    "InputNameError",
    "InputShapeError",
    "InvalidInputError",
    "ModelExecutionError",
    "ModelLoadError",
    "ModelNotFoundError",
    "NonFiniteInputError",
    "ScoregateError",
    "UnavailableError",
]


class ScoregateError(Exception):
    """Root of every error Scoregate raises on purpose."""


class ModelNotFoundError(ScoregateError):
    """The request names a model (or ``name@version``) that is not loaded."""

    def __init__(self, model: str, known: tuple[str, ...] = ()) -> None:
        self.model = model
        self.known = known
        hint = f"; loaded: {', '.join(known)}" if known else ""
        super().__init__(f"unknown model {model!r}{hint}")


class ModelLoadError(ScoregateError):
    """A model could not be loaded: missing file, corrupt ONNX, unavailable execution provider."""

    def __init__(self, model: str, problem: str) -> None:
        self.model = model
        self.problem = problem
        super().__init__(f"cannot load model {model!r}: {problem}")


class InvalidInputError(ScoregateError):
    """The request is malformed. ``model``, ``input`` and ``problem`` say where and what."""

    def __init__(self, model: str, input_name: str, problem: str) -> None:
        self.model = model
        self.input = input_name
        self.problem = problem
        super().__init__(f"model {model!r} input {input_name!r}: {problem}")


class InputNameError(InvalidInputError):
    """An input is missing, or a tensor was passed under a name the model does not have."""


class InputDtypeError(InvalidInputError):
    """The element type differs from the model signature."""


class InputShapeError(InvalidInputError):
    """The rank or a fixed dimension (typically the feature count) differs from the signature."""


class InputLayoutError(InvalidInputError):
    """The buffer is not C-contiguous, not in native byte order, or (for outputs) not writeable."""


class NonFiniteInputError(InvalidInputError):
    """The input holds NaN or +/-inf and the model's policy is to reject."""


class BatchSizeError(InvalidInputError):
    """The batch is empty or larger than the model's ``max_batch``."""


class ModelExecutionError(ScoregateError):
    """ONNX Runtime failed while running a request that passed validation."""

    def __init__(self, model: str, problem: str) -> None:
        self.model = model
        self.problem = problem
        super().__init__(f"model {model!r} failed to run: {problem}")


class DeadlineExceededError(ScoregateError):
    """The request's deadline passed before it was served."""


class UnavailableError(ScoregateError):
    """The gateway, or the transport to it, is not serving."""
