"""``MetricsEndpoint``: a server's Prometheus ``/metrics``, over a :class:`~gateway.monitoring.Monitor` that follows
the engine it serves.

The ``serve-grpc`` and ``serve-py4j`` commands start one with ``--metrics-port``: every :meth:`Engine.score
<gateway.engine.Engine.score>` and :meth:`Engine.run <gateway.engine.Engine.run>` call is observed on the serving thread
(staged, bounded, no allocation), the monitor's worker aggregates once a second, and a scrape reads the aggregates.
Every version the engine serves is watched, including versions that go live after start-up (:meth:`Monitor.follow
<gateway.monitoring.Monitor.follow>`), under the stage label ``serving``. Series, with the ``scoregate_`` prefix, per
model and version: ``model_requests_total``, ``model_rows_total``, ``model_nonfinite_scores_total``,
``model_errors_total`` (by exception kind), and the ``model_latency_seconds`` and ``model_batch_size`` histograms.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from gateway.monitoring.metrics import serve_metrics
from gateway.monitoring.monitor import Monitor, MonitorOptions

if TYPE_CHECKING:
    from gateway.engine import Engine

__all__ = ["MetricsEndpoint", "metrics_endpoint"]


class MetricsEndpoint:
    """Serves ``http://host:port/metrics`` for ``engine`` until :meth:`close` (``port`` 0 picks a free one)."""

    def __init__(
        self, engine: Engine, host: str = "127.0.0.1", port: int = 0, options: MonitorOptions | None = None
    ) -> None:
        self.engine = engine
        self.monitor = Monitor(options)
        try:
            self._server, self._thread = serve_metrics(self.monitor.collector(), port, host)
        except BaseException:  # e.g. the port is taken: nothing observes the engine
            self.monitor.close()
            raise
        self.monitor.follow(engine)
        self.host = host
        self.port: int = self._server.server_port
        self._closed = False

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving scrapes and observing calls (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.monitor.detach(self.engine)
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self.monitor.close()

    def __enter__(self) -> MetricsEndpoint:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def metrics_endpoint(
    engine: Engine, host: str, port: int | None
) -> contextlib.AbstractContextManager[MetricsEndpoint | None]:
    """A server's ``--metrics-port``: a :class:`MetricsEndpoint` for ``engine``, or ``None`` when ``port`` is
    ``None``; closed on leaving the ``with`` block either way."""
    return MetricsEndpoint(engine, host, port) if port is not None else contextlib.nullcontext()
