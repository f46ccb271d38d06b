"""The KServe V2 / Open Inference Protocol gRPC endpoint, for clients outside the JVM.

Off-the-shelf clients (tritonclient's gRPC client, KServe's) call ``inference.GRPCInferenceService``;
each call becomes one engine call (STYLE: one transport seam)::

    protos/     inference.proto and its committed generated messages (private descriptor pool)
    tensors     KServe datatypes and raw/typed contents <-> numpy (raw contents are views)
    service     the six RPCs over the engine; deadlines; output encoding
    status      the error tree -> gRPC status codes
    auth        the bearer-token interceptor
    server      GrpcServer: health checking, reflection, TLS, admission control; serve() for the CLI
    client      a thin stub on the same messages (benchmarks, Python callers)

This package is the only place in ``gateway`` that imports ``grpc``.
"""

from gateway.grpc.server import GrpcServer, GrpcServerOptions, GrpcService, serve
from gateway.grpc.service import InferenceService

__all__ = ["GrpcServer", "GrpcServerOptions", "GrpcService", "InferenceService", "serve"]
