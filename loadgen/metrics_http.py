"""The Prometheus ``/metrics`` HTTP server both ``stream`` and ``cdc watch`` serve.

``serve(port, collector, host, flag)`` starts prometheus-client's own server (a daemon thread
of the calling process) on a registry holding only ``collector`` (an object with
``collect() -> Iterator[MetricFamily]``, read at every scrape); ``MetricsServer.close`` stops
it. ``BUCKETS_S`` are the histogram bucket bounds (seconds) both commands use.

Errors: ``ConfigError`` (exit 2, one line) when prometheus-client is not installed (extra
``[metrics]``) or the port cannot be listened on (in use, privileged).
"""

from __future__ import annotations

import threading
from typing import Any

from loadgen.errors import ConfigError

BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip


class MetricsServer:
    """A running ``/metrics`` server (``close`` is idempotent)."""

    def __init__(self, server: Any, thread: threading.Thread) -> None:
        self._server: Any = server
        self._thread: threading.Thread | None = thread

    @property
    def port(self) -> int:
        """The port listened on (the one asked for, or the kernel's choice for 0)."""
        return int(self._server.server_address[1]) if self._server is not None else 0

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(2)
            self._thread = None


def serve(port: int, collector: Any, host: str = "", flag: str = "--metrics-port") -> MetricsServer:
    """Serve ``collector`` on ``host:port`` (all interfaces when ``host`` is empty)."""
    try:
        from prometheus_client import start_http_server
        from prometheus_client.registry import CollectorRegistry
    except ImportError:
        raise ConfigError(
            f"{flag} needs prometheus-client: pip install 'loadgen[metrics]'"
        ) from None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    try:
        server, thread = start_http_server(port, addr=host or "0.0.0.0", registry=registry)
    except OSError as exc:
        raise ConfigError(f"{flag} {port}: cannot listen: {exc.strerror or exc}") from None
    return MetricsServer(server, thread)
