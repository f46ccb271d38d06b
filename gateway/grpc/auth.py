"""Bearer-token authentication: a server interceptor checking ``authorization: Bearer <token>``.

A call without the header, or with another token, ends with UNAUTHENTICATED before its handler
runs. Services named in ``exempt`` (the standard health service, so that load balancers and
orchestrators can probe without the secret) pass unchecked. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable
from typing import Any

import grpc

__all__ = ["BearerTokenInterceptor"]

_MESSAGE = "missing or wrong bearer token (metadata 'authorization: Bearer <token>')"


def _deny_unary(request: Any, context: grpc.ServicerContext) -> Any:
    context.abort(grpc.StatusCode.UNAUTHENTICATED, _MESSAGE)


def _deny_stream(request: Any, context: grpc.ServicerContext) -> Any:
    context.abort(grpc.StatusCode.UNAUTHENTICATED, _MESSAGE)
    yield  # pragma: no cover - a generator, as streaming handlers must be


class BearerTokenInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Admit calls carrying ``authorization: Bearer <token>``; see the module doc."""

    def __init__(self, token: str, exempt: Iterable[str] = ()) -> None:
        if not token:
            raise ValueError("token must not be empty")
        self._expected = f"Bearer {token}".encode()
        self._exempt = tuple(f"/{service}/" for service in exempt)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or method.startswith(self._exempt) or self._authorized(handler_call_details):
            return handler
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(_deny_stream)
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(_deny_unary)
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(_deny_stream)
        return grpc.unary_unary_rpc_method_handler(_deny_unary)

    def _authorized(self, details: grpc.HandlerCallDetails) -> bool:
        for key, value in details.invocation_metadata or ():
            if key == "authorization":
                got = value.encode() if isinstance(value, str) else bytes(value)
                return hmac.compare_digest(got, self._expected)
        return False
