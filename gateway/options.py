"""Options for one loaded model: how ONNX Runtime runs it and how strictly its inputs are checked.

Defaults are chosen for a CPU serving host where many request threads share few cores:

* one intra-op and one inter-op thread per call, because concurrency comes from many calls in
  parallel, not from splitting one small batch across cores;
* spinning off, because spinning worker threads burn the cores that other calls need
  (ONNX Runtime's default spins);
* every graph optimisation on;
* ``CPUExecutionProvider`` only. A GPU host passes ``("CUDAExecutionProvider",
  "CPUExecutionProvider")`` or TensorRT first; an unavailable provider is a load error, never a
  silent fall-back to CPU.

Nothing here reads the environment; a caller builds the options it wants.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["ExecutionMode", "GraphOptimization", "NonFinitePolicy", "ProviderSpec", "RuntimeOptions"]

#: An execution provider by name, or ``(name, provider options)``.
ProviderSpec = str | tuple[str, Mapping[str, str]]


class NonFinitePolicy(enum.Enum):
    """What to do with NaN or +/-inf in a request's input."""

    #: Reject the request with :class:`gateway.errors.NonFiniteInputError`. The default:
    #: a NaN feature usually means a broken upstream, and a silently scored row hides it.
    REJECT = "reject"
    #: Score a copy of the input with every non-finite value replaced by
    #: ``RuntimeOptions.nonfinite_replacement``. The caller's buffer is left untouched.
    REPLACE = "replace"


class GraphOptimization(enum.Enum):
    """ONNX Runtime graph optimisation level."""

    DISABLED = "disabled"
    BASIC = "basic"
    EXTENDED = "extended"
    ALL = "all"


class ExecutionMode(enum.Enum):
    """Whether independent graph branches may run in parallel (uses the inter-op pool)."""

    SEQUENTIAL = "sequential"
    PARALLEL = "parallel"


@dataclass(frozen=True)
class RuntimeOptions:
    """How one model is run and checked. Immutable; share one instance between models freely."""

    #: Threads ONNX Runtime may use inside one operator of one call.
    intra_op_threads: int = 1
    #: Threads for independent branches of one call (only with ``ExecutionMode.PARALLEL``).
    inter_op_threads: int = 1
    #: Let ONNX Runtime's idle pool threads spin waiting for work. Off: see the module doc.
    allow_spinning: bool = False
    graph_optimization: GraphOptimization = GraphOptimization.ALL
    execution_mode: ExecutionMode = ExecutionMode.SEQUENTIAL
    #: Execution providers in priority order. Each must be available on this host.
    providers: tuple[ProviderSpec, ...] = ("CPUExecutionProvider",)
    #: Largest batch (rows) one call may carry; larger requests fail with ``BatchSizeError``.
    max_batch: int = 4096
    nonfinite: NonFinitePolicy = NonFinitePolicy.REJECT
    #: The value that replaces NaN and +/-inf under ``NonFinitePolicy.REPLACE``.
    nonfinite_replacement: float = 0.0
    #: Extra ``SessionOptions.add_session_config_entry`` pairs, for knobs not modelled above.
    session_config: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.intra_op_threads < 0 or self.inter_op_threads < 0:
            raise ValueError("thread counts must be >= 0 (0 lets ONNX Runtime choose)")
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        if not self.providers:
            raise ValueError("providers must name at least one execution provider")
