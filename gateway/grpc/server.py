"""``GrpcServer``: the KServe V2 endpoint, with health checking, reflection, TLS, a bearer token
and admission control, on grpcio's synchronous server.

Why the synchronous server: scoring is a blocking ONNX Runtime call that releases the GIL, so a
thread per in-flight request is the natural shape; an asyncio server would hand each call to a
thread pool anyway. ``perf/suites/grpc.py`` measures the result against the floor.

Admission control: at most ``max_in_flight`` calls are admitted at once (grpcio's
``maximum_concurrent_rpcs``); ``workers`` of them run, the rest wait in the executor's queue,
which is therefore bounded. One more call is answered RESOURCE_EXHAUSTED at once, so an
overloaded gateway sheds load instead of building a queue whose tail misses every deadline.

Seam for more services: :class:`GrpcService` is what the server hosts. The inference service is
one; a Scoregate service that scores a whole ad request through the pipeline will be another,
passed in ``services`` and listed in health and reflection the same way.

Lifecycle: :meth:`GrpcServer.start` binds and serves; :meth:`GrpcServer.stop` marks every
service NOT_SERVING (health) and not ready (``ServerReady``), lets calls in flight finish within
``grace_s`` and refuses new ones.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import grpc

from gateway.blas import single_threaded_blas
from gateway.engine import Engine
from gateway.grpc.auth import BearerTokenInterceptor
from gateway.grpc.protos import inference_pb2 as pb
from gateway.grpc.service import SERVICE_NAME, InferenceService
from gateway.heap import freeze_startup_heap
from gateway.sources import ModelSource, open_engine

__all__ = ["GrpcServer", "GrpcServerOptions", "GrpcService", "inference_service", "serve"]

MIB = 1024 * 1024
HEALTH_SERVICE = "grpc.health.v1.Health"


@dataclass(frozen=True)
class GrpcServerOptions:
    """How the endpoint listens and protects itself. Immutable."""

    #: Listen address. Loopback by default: exposing the gateway is a deliberate act.
    host: str = "127.0.0.1"
    #: Listen port; 0 picks a free one (read it back from :attr:`GrpcServer.port`). 8001 is Triton's.
    port: int = 8001
    #: Threads serving calls. Scoring releases the GIL, so more threads than cores helps up to a point.
    workers: int = 4
    #: Calls admitted at once (running plus queued for a worker); one more is RESOURCE_EXHAUSTED.
    max_in_flight: int = 64
    #: Largest request or response message; larger ones fail with RESOURCE_EXHAUSTED (grpcio's check).
    max_message_bytes: int = 64 * MIB
    #: PEM server certificate chain and private key; both or neither (then plaintext).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: When set, every call but health checks needs ``authorization: Bearer <token>``.
    token: str | None = None
    #: Serve gRPC server reflection (``grpcurl`` and friends list and describe the services).
    reflection: bool = True
    #: How long :meth:`GrpcServer.stop` lets calls in flight finish.
    grace_s: float = 5.0

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.max_in_flight < self.workers:
            raise ValueError(f"max_in_flight ({self.max_in_flight}) must be >= workers ({self.workers})")
        if self.max_message_bytes < 1:
            raise ValueError(f"max_message_bytes must be >= 1, got {self.max_message_bytes}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: give both or neither")
        if self.token is not None and not self.token:
            raise ValueError("token must not be empty (omit it to turn authentication off)")


class GrpcService(Protocol):
    """A service the server hosts: its full name and its methods' handlers by method name."""

    @property
    def name(self) -> str: ...

    def method_handlers(self) -> Mapping[str, grpc.RpcMethodHandler]: ...

    #: Serialized ``FileDescriptorProto``s that define the service, for reflection.
    def file_descriptors(self) -> Sequence[bytes]: ...


@dataclass(frozen=True)
class _Service:
    name: str
    handlers: Mapping[str, grpc.RpcMethodHandler]
    files: Sequence[bytes]

    def method_handlers(self) -> Mapping[str, grpc.RpcMethodHandler]:
        return self.handlers

    def file_descriptors(self) -> Sequence[bytes]:
        return self.files


def _unary(method: Callable[[Any, Any], Any], request: Any, response: Any) -> grpc.RpcMethodHandler:
    return grpc.unary_unary_rpc_method_handler(
        method, request_deserializer=request.FromString, response_serializer=response.SerializeToString
    )


def inference_service(service: InferenceService) -> GrpcService:
    """``inference.GRPCInferenceService`` with ``service``'s methods behind it."""
    handlers = {
        "ServerLive": _unary(service.server_live, pb.ServerLiveRequest, pb.ServerLiveResponse),
        "ServerReady": _unary(service.server_ready, pb.ServerReadyRequest, pb.ServerReadyResponse),
        "ModelReady": _unary(service.model_ready, pb.ModelReadyRequest, pb.ModelReadyResponse),
        "ServerMetadata": _unary(service.server_metadata, pb.ServerMetadataRequest, pb.ServerMetadataResponse),
        "ModelMetadata": _unary(service.model_metadata, pb.ModelMetadataRequest, pb.ModelMetadataResponse),
        "ModelInfer": _unary(service.model_infer, pb.ModelInferRequest, pb.ModelInferResponse),
    }
    return _Service(SERVICE_NAME, handlers, (pb.DESCRIPTOR.serialized_pb,))


class GrpcServer:
    """The endpoint over ``engine``; a context manager that starts and stops it. See module doc.

    Thread-safety: :meth:`start` and :meth:`stop` are for one controlling thread; the service
    methods run on the server's worker threads.
    """

    def __init__(
        self, engine: Engine, options: GrpcServerOptions | None = None, services: Sequence[GrpcService] = ()
    ) -> None:
        single_threaded_blas()  # numpy's BLAS threads would fight the handlers for the cores (gateway/blas.py)
        self.engine = engine
        self.options = options or GrpcServerOptions()
        self._serving = threading.Event()
        self.inference = InferenceService(engine, ready=self._serving.is_set)
        self._services: list[GrpcService] = [inference_service(self.inference), *services]
        self._server: grpc.Server | None = None
        self._health: Any = None
        self._health_names: list[str] = []
        self.port = 0

    @property
    def address(self) -> str:
        """``host:port`` for a client channel (valid once started)."""
        return f"{self.options.host}:{self.port}"

    def start(self) -> GrpcServer:
        from grpc_health.v1 import health, health_pb2, health_pb2_grpc

        o = self.options
        interceptors = [BearerTokenInterceptor(o.token, exempt=[HEALTH_SERVICE])] if o.token else []
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=o.workers, thread_name_prefix="grpc-worker"),
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", o.max_message_bytes),
                ("grpc.max_send_message_length", o.max_message_bytes),
                # One server per port: a second gateway on the same port is an error, not a silent share.
                ("grpc.so_reuseport", 0),
            ],
            maximum_concurrent_rpcs=o.max_in_flight,
        )
        for svc in self._services:
            handlers = dict(svc.method_handlers())
            server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(svc.name, handlers),))
            server.add_registered_method_handlers(svc.name, handlers)
        self._health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        names = [svc.name for svc in self._services]
        if o.reflection:
            self._add_reflection(server, names, health_pb2.DESCRIPTOR.serialized_pb)
        address = f"{o.host}:{o.port}"
        if o.tls_cert is not None and o.tls_key is not None:
            credentials = grpc.ssl_server_credentials([(o.tls_key.read_bytes(), o.tls_cert.read_bytes())])
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
        if port == 0:
            raise OSError(f"cannot listen on {address}")
        server.start()
        self._server, self.port = server, port
        self._health_names = ["", *names]
        self._set_health(serving=True)
        return self

    def _set_health(self, serving: bool) -> None:
        from grpc_health.v1 import health_pb2

        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        if serving:
            self._serving.set()
        else:
            self._serving.clear()
        for name in self._health_names:
            self._health.set(name, status)

    def leave_rotation(self) -> None:
        """Health NOT_SERVING and ``ServerReady`` false, still answering every call: clients that watch health
        (a load balancer, gRPC's client-side health checking) send new calls to other replicas. What a replica
        does while it loads a version (:class:`gateway.rollout_control.Rotation`)."""
        if self._server is not None:
            self._set_health(serving=False)

    def rejoin_rotation(self) -> None:
        """Health SERVING and ready again (unless the server stopped)."""
        if self._server is not None:
            self._set_health(serving=True)

    def _add_reflection(self, server: grpc.Server, names: list[str], health_file: bytes) -> None:
        from google.protobuf import descriptor_pool
        from grpc_reflection.v1alpha import reflection, reflection_pb2

        # Reflection answers from one pool: the services' files plus health's and its own.
        pool = descriptor_pool.DescriptorPool()
        seen: set[bytes] = set()
        files = [f for svc in self._services for f in svc.file_descriptors()]
        for file in [*files, health_file, reflection_pb2.DESCRIPTOR.serialized_pb]:
            if file not in seen:
                seen.add(file)
                pool.AddSerializedFile(file)
        reflection.enable_server_reflection([*names, HEALTH_SERVICE, reflection.SERVICE_NAME], server, pool=pool)

    def stop(self, grace_s: float | None = None) -> None:
        """Stop serving: health NOT_SERVING, calls in flight finish within the grace period."""
        server, self._server = self._server, None
        if server is None:
            return
        self._serving.clear()
        if self._health is not None:
            self._health.enter_graceful_shutdown()
        server.stop(self.options.grace_s if grace_s is None else grace_s).wait()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stops; False if ``timeout`` passed first."""
        server = self._server
        return True if server is None else bool(server.wait_for_termination(timeout))

    def __enter__(self) -> GrpcServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(
    source: ModelSource | str | Path,
    options: GrpcServerOptions,
    pipeline_demo: str | Path | None = None,
    metrics_port: int | None = None,
    rotate_out_s: float | None = None,
) -> int:
    """Serve ``source``'s models (a model directory, or a :class:`gateway.sources.ModelSource`: the artifact store,
    a cluster replica) until SIGTERM or SIGINT; one line is printed once listening. With ``pipeline_demo`` (a built
    demo directory), also serve ``scoregate.v1.AdDecisionService`` over its pipeline; with ``metrics_port``,
    Prometheus ``/metrics`` on ``options.host`` at that port (0: a free one; see
    :class:`gateway.monitoring.endpoint.MetricsEndpoint`). With ``rotate_out_s`` (a cluster replica), the server
    leaves its clients' rotation for each load, one replica of the cluster at a time, after draining that long
    (:class:`gateway.rollout_control.Rotation`)."""
    from gateway.monitoring.endpoint import metrics_endpoint
    from gateway.rollout_control import Rotation

    source = source if isinstance(source, ModelSource) else ModelSource(models=Path(source))
    rotation = Rotation(rotate_out_s) if rotate_out_s is not None else None
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with open_engine(source, rotation=rotation) as engine, contextlib.ExitStack() as closing:
            services: list[GrpcService] = []
            if pipeline_demo is not None:
                from gateway.grpc.decision import decision_service
                from gateway.pipeline import Pipeline

                pipeline = Pipeline.for_demo(engine, pipeline_demo)
                closing.callback(pipeline.close)  # before the engine closes
                services.append(decision_service(pipeline))
            with (
                GrpcServer(engine, options, services) as server,
                metrics_endpoint(engine, options.host, metrics_port) as metrics,
            ):
                if rotation is not None:
                    rotation.attach(server.leave_rotation, server.rejoin_rotation)
                freeze_startup_heap()
                scheme = "TLS" if options.tls_cert else "plaintext"
                auth = ", bearer token required" if options.token else ""
                print(
                    f"scoregate gRPC (KServe V2) listening on {server.address} ({scheme}{auth}; {len(engine)} models, "
                    f"{source.describe()}, {options.workers} workers, pid {os.getpid()})"
                    + (f"; metrics on {metrics.url}" if metrics is not None else ""),
                    flush=True,
                )
                stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
