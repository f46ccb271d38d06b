"""Scoregate's request side: the scoring core (``runtime``), the engine transports call, options,
the error tree, and the CLI. The core never imports grpc, jpype or py4j."""

from gateway.engine import Engine
from gateway.errors import ScoregateError
from gateway.options import NonFinitePolicy, RuntimeOptions
from gateway.runtime import ModelRuntime

__all__ = ["Engine", "ModelRuntime", "NonFinitePolicy", "RuntimeOptions", "ScoregateError"]
