"""The ``api`` plugin: runs the FastAPI app (uvicorn) inside the node's event loop.

It consumes every channel: the WebSocket hub fans events out to clients, the recent
events buffer keeps the last ``recent_events`` per channel, and the metrics count alerts,
notifications, breakers and modes. It requests nothing at start (so a node without
some plugin still starts); a route whose plugin is not enabled answers 503.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar

import structlog
import uvicorn

from corec.api.app import create_app
from corec.api.config import ApiConfig
from corec.api.gateway import Gateway
from corec.api.metrics import Metrics
from corec.api.recent import RecentEvents
from corec.api.stream import Hub
from corec.core import channels
from corec.core.errors import ConfigError
from corec.core.events import Event
from corec.core.plugin import Plugin, PluginContext, PluginHealth

log = structlog.get_logger("corec.api")

START_TIMEOUT_S = 15
STOP_TIMEOUT_S = 5


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the node handles SIGINT/SIGTERM and
    stops the API through :meth:`ApiPlugin.stop`."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiPlugin(Plugin):
    """REST API, WebSocket stream, dashboard and metrics (see :mod:`corec.api`)."""

    name: ClassVar[str] = "api"
    Config = ApiConfig
    consumes: ClassVar[tuple[str, ...]] = tuple(sorted(channels.ALL))
    config: ApiConfig

    def __init__(self, config: ApiConfig) -> None:  # type: ignore[override]
        super().__init__(config)
        self.hub = Hub()
        self.recent = RecentEvents(config.recent_events)
        self.server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.port: int | None = None
        """The port bound (the configured one, or the one picked for ``port: 0``)."""

    async def start(self, ctx: PluginContext) -> None:
        """Subscribe to every channel and start serving; returns once listening.

        Raises:
            ConfigError: the address cannot be bound (port in use, bad host).
        """
        self.ctx = ctx
        self.metrics = Metrics(ctx.bus)
        self.metrics.set_mode(ctx.mode)
        for channel in sorted(channels.ALL):
            ctx.subscribe(channel, self._on_event)
        if not self.config.enabled:
            return
        app = create_app(
            gateway=Gateway(ctx.bus, self.config.request_timeout_s),
            config=ctx.config,
            settings=self.config,
            recent=self.recent,
            hub=self.hub,
            metrics=self.metrics,
        )
        server = _Server(
            uvicorn.Config(
                app,
                host=self.config.host,
                port=self.config.port,
                log_config=None,
                access_log=False,
                lifespan="off",
                ws="websockets-sansio",
                ws_max_size=64 * 1024,
                # Compression costs more CPU per message than the send itself; the
                # stream's messages are small. Off: a node fans out twice as many.
                ws_per_message_deflate=False,
            )
        )
        self.server = server
        self._task = asyncio.create_task(server.serve(), name="api-server")
        for _ in range(START_TIMEOUT_S * 100):
            if server.started or self._task.done():
                break
            await asyncio.sleep(0.01)
        if not server.started:
            await self._halt()
            raise ConfigError(
                "api",
                [
                    f"api: cannot listen on {self.config.host}:{self.config.port} (in use, or a bad host?)"
                ],
            )
        self.port = server.servers[0].sockets[0].getsockname()[1]
        log.info("api_listening", url=f"http://{self.config.host}:{self.port}/")

    def _on_event(self, event: Event) -> None:
        self.recent.add(event)
        self.hub.dispatch(event)
        self.metrics.observe(event)

    async def stop(self) -> None:
        """Stop accepting, close connections (WebSocket clients get 1012), wait briefly."""
        await self._halt()

    async def _halt(self) -> None:
        if self.server is None or self._task is None:
            return
        self.server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(self._task), timeout=STOP_TIMEOUT_S)
        if not self._task.done():
            self.server.force_exit = True
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        self.server = None

    def health(self) -> PluginHealth:
        """Listening address, WebSocket clients, events sent, slow clients dropped."""
        details: dict[str, Any] = {
            "url": f"http://{self.config.host}:{self.port}/" if self.port else None,
            "ws_clients": len(self.hub.clients),
            "ws_events_sent": self.hub.sent,
            "ws_clients_dropped": self.hub.dropped_clients,
        }
        status = "ok" if (self.port or not self.config.enabled) else "failed"
        return PluginHealth(status=status, details=details)
