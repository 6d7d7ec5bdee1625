"""The ``api`` section of the configuration."""

from __future__ import annotations

from pydantic import Field

from corec.core.plugin import PluginConfig


class ApiConfig(PluginConfig):
    """Where and how the API listens.

    Fields:
        enabled: serve at all (``false``: the plugin only idles; for nodes run headless).
        host: address to bind; keep ``127.0.0.1`` unless a reverse proxy with TLS is in
            front (tokens travel in headers).
        port: TCP port (``0``: any free port, reported in the log and health).
        metrics_public: ``/metrics`` without a token (for a Prometheus server on a
            private network); default off.
        ws_queue_size: events queued per WebSocket client before it counts as too slow
            and is dropped.
        recent_events: events kept per channel for ``GET /api/v1/events/{channel}``.
        request_timeout_s: how long a route waits for a plugin's reply.
        dashboard: serve the dashboard at ``/`` (from ``corec/api/dashboard/dist``).
    """

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    metrics_public: bool = False
    ws_queue_size: int = Field(default=1000, ge=1, le=1_000_000)
    recent_events: int = Field(default=200, ge=1, le=100_000)
    request_timeout_s: int = Field(default=5, ge=1, le=300)
    dashboard: bool = True
