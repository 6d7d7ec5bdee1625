"""The FastAPI application: routes under ``/api/v1``; ``/health``, ``/metrics``, ``/ws``
and the dashboard (``/``) beside them.

Errors a client can cause never answer 500: a bad body or parameter is 422 with
``detail: [{loc, msg, type}]`` naming the field; a plugin's refusal maps to 404 / 409 /
422 / 403 / 503 (:mod:`corec.api.gateway`); an unknown route is 404; a missing or bad
token 401; a role that may not, 403. The OpenAPI document is at ``/openapi.json`` and
browsable at ``/docs``.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import msgspec
from fastapi import FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException

from corec.api import deps
from corec.api.config import ApiConfig
from corec.api.gateway import Gateway, RefusedError
from corec.api.metrics import Metrics
from corec.api.models import ApiModel
from corec.api.recent import RecentEvents
from corec.api.routes import alerts, auth, market, pool, system, trading
from corec.api.stream import (
    CLOSE_TOO_SLOW,
    CLOSE_UNAUTHORIZED,
    STREAMS,
    Client,
    Hub,
    parse_command,
    subscribed_message,
)
from corec.core.config import CorecConfig

DASHBOARD_DIST = Path(__file__).parent / "dashboard" / "dist"
API_PREFIX = "/api/v1"


class ErrorBody(ApiModel):
    """An error: what was wrong (``detail``) and, for a plugin's refusal, its ``code``."""

    detail: str
    code: str | None = None


class Health(ApiModel):
    """Liveness: ``ok`` while the API answers."""

    status: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing, invalid, revoked or expired token"},
    403: {"model": ErrorBody, "description": "the caller's role may not do this"},
    404: {"model": ErrorBody, "description": "no such record"},
    409: {"model": ErrorBody, "description": "the record's state does not allow it"},
    503: {"model": ErrorBody, "description": "not available now (plugin off, rate-limited)"},
    504: {"model": ErrorBody, "description": "the plugin did not answer in time"},
}


def create_app(
    *,
    gateway: Gateway,
    config: CorecConfig,
    settings: ApiConfig,
    recent: RecentEvents,
    hub: Hub,
    metrics: Metrics,
) -> FastAPI:
    """The application, wired to a node's bus through ``gateway``.

    Args:
        gateway: bus requests for the routes.
        config: the node's configuration (shown redacted by ``/api/v1/system/config``).
        settings: the ``api`` section.
        recent: the events buffer the plugin fills.
        hub: the WebSocket fan-out the plugin feeds.
        metrics: the Prometheus registry.
    """
    app = FastAPI(
        title="CoreC",
        summary="A shared crypto trading pool: market data, the pool's ledger, trades, alerts.",
        version="1",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.gateway = gateway
    app.state.config = config
    app.state.settings = settings
    app.state.recent = recent
    app.state.hub = hub
    app.state.metrics = metrics

    for module in (auth, system, market, pool, trading, alerts):
        app.include_router(module.router, prefix=API_PREFIX, responses=ERROR_RESPONSES)

    @app.exception_handler(RefusedError)
    async def refused(_: Request, exc: RefusedError) -> JSONResponse:
        refusal = exc.refused
        if exc.status_code == 422:  # the same shape as FastAPI's own validation errors
            content: dict[str, Any] = {
                "detail": [
                    {
                        "loc": ["body", refusal.field or "request"],
                        "msg": refusal.message,
                        "type": "refused",
                    }
                ]
            }
        else:
            content = {"detail": refusal.message, "code": refusal.code}
        return JSONResponse(content, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:  # a body that cannot be read at all: a bad body, 422
            return JSONResponse(
                {"detail": [{"loc": ["body"], "msg": str(exc.detail), "type": "body_unreadable"}]},
                status_code=422,
            )
        return await http_exception_handler(request, exc)

    @app.get("/health", response_model=Health, tags=["system"])
    async def health() -> Any:
        """Liveness, without a token (for load balancers and `curl`)."""
        return {"status": "ok"}

    @app.get(
        "/metrics",
        tags=["system"],
        response_class=Response,
        responses={
            200: {
                "content": {"text/plain": {"schema": {"type": "string"}}},
                "description": "Prometheus text",
            },
            401: ERROR_RESPONSES[401],
        },
        openapi_extra=None if settings.metrics_public else {"security": [{"HTTPBearer": []}]},
    )
    async def metrics_route(request: Request) -> Response:
        """Prometheus metrics (see :mod:`corec.api.metrics`); a token unless
        ``api.metrics_public``."""
        if not settings.metrics_public:
            await deps.current_principal(request, await deps.bearer(request))
        return Response(await metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await stream_client(websocket, gateway, hub, settings.ws_queue_size)

    mount_dashboard(app, settings)
    return app


def mount_dashboard(app: FastAPI, settings: ApiConfig) -> None:
    """Serve the built dashboard at ``/`` and its files at ``/assets`` (or, when it is
    not built, a page saying how to build it)."""
    index = DASHBOARD_DIST / "index.html"
    if settings.dashboard and index.exists():
        app.mount("/assets", StaticFiles(directory=DASHBOARD_DIST / "assets"), name="assets")

        @app.get("/", include_in_schema=False)
        async def dashboard() -> FileResponse:
            return FileResponse(index, headers={"Cache-Control": "no-cache"})

    else:

        @app.get("/", include_in_schema=False)
        async def no_dashboard() -> HTMLResponse:
            return HTMLResponse(
                "<h1>CoreC</h1><p>The dashboard is not built: run <code>make dashboard</code>"
                " (or <code>make run</code>). The API is at <a href='/docs'>/docs</a>.</p>",
                status_code=200 if settings.dashboard else 404,
            )


async def stream_client(websocket: WebSocket, gateway: Gateway, hub: Hub, queue_size: int) -> None:
    """Serve one WebSocket client (protocol: :mod:`corec.api.stream`)."""
    await websocket.accept()
    try:
        principal = await deps.authenticate(gateway, websocket.query_params.get("token"))
    except HTTPException as exc:
        await websocket.close(code=CLOSE_UNAUTHORIZED, reason=str(exc.detail))
        return
    client = Client(principal, queue_size)
    hub.add(client)
    sender = asyncio.create_task(_send(websocket, client))
    try:
        while True:
            frame = await websocket.receive()
            if frame["type"] == "websocket.disconnect":
                break
            text = frame.get("text")
            if text is None:
                client.offer(_error("send commands as JSON text frames, not binary"))
                continue
            try:
                op, streams = parse_command(text)
            except ValueError as exc:
                client.offer(_error(str(exc)))
                continue
            if op == "subscribe":
                client.streams.update(streams)
            else:
                client.streams.difference_update(streams)
            client.offer(subscribed_message(client.streams))
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        hub.remove(client)
        sender.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender


def _error(detail: str) -> bytes:
    return msgspec.json.encode({"type": "error", "detail": detail, "streams": sorted(STREAMS)})


async def _send(websocket: WebSocket, client: Client) -> None:
    """Send the client's queue until it is dropped (then say why and close with 4008)."""
    while True:
        message = await client.queue.get()
        if message is None:
            with contextlib.suppress(Exception):
                await websocket.send_text(
                    msgspec.json.encode({"type": "dropped", "reason": client.dropped}).decode()
                )
                await websocket.close(code=CLOSE_TOO_SLOW, reason="too slow")
            return
        await websocket.send_text(message.decode())
