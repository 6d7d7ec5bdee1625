"""Node status, mode, redacted configuration and recent events (``/api/v1/system``,
``/api/v1/events``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import Field

from corec.api.deps import Admin, Caller, gateway
from corec.api.gateway import Gateway
from corec.api.models import ApiModel, builtins, jsonable, model_of
from corec.core import channels
from corec.core.logging import redact
from corec.core.notices import (
    NODE_SET_MODE,
    NODE_STATUS,
    ModeChanged,
    NodeMode,
    NodeStatus,
    NodeStatusRequest,
    SetModeRequest,
)

router = APIRouter(tags=["system"])

NodeStatusModel = model_of(NodeStatus)
ModeChangedModel = model_of(ModeChanged)

ChannelName = Literal[tuple(sorted(channels.ALL))]  # type: ignore[valid-type]
"""A channel's name: the ones :mod:`corec.core.channels` spells (422 for any other)."""

PUBLIC_CHANNELS = frozenset({channels.MARKET_DATA, channels.ALERT_DATA, channels.SYSTEM})
"""Channels whose recent events every role may read (no personal data on them)."""


class ModeView(ApiModel):
    """The node's mode and since when (node clock, UTC ns; ``None``: never changed)."""

    mode: NodeMode
    mode_since_ts_ns: int | None


class SetModeBody(ApiModel):
    """Move the node to ``mode``; ``reason`` goes into the event and the alert."""

    mode: NodeMode
    reason: str = Field(min_length=1, max_length=500, pattern=r"\S")


class EventView(ApiModel):
    """An event as the bus carried it; ``payload`` in the channel's message shape."""

    id: str
    channel: str
    type: str
    ts_ns: int
    source: str
    key: str | None
    payload: dict[str, Any]


class EventsView(ApiModel):
    """The newest events seen on a channel since the API started, newest first."""

    channel: str
    items: list[EventView]


async def _status(gw: Gateway) -> NodeStatus:
    return await gw.ask(NODE_STATUS, NodeStatusRequest(), NodeStatus)  # type: ignore[no-any-return]


@router.get("/system/status", response_model=NodeStatusModel)
async def status(_: Caller, gw: Annotated[Gateway, Depends(gateway)]) -> Any:
    """Instance, mode, uptime and each plugin's state and health details."""
    return builtins(await _status(gw))


@router.get("/system/mode", response_model=ModeView)
async def get_mode(_: Caller, gw: Annotated[Gateway, Depends(gateway)]) -> Any:
    """The node's mode: ``normal`` trades freely, ``safe`` only reduces exposure,
    ``emergency`` halts trading (data and alerts keep running)."""
    node = await _status(gw)
    return {"mode": node.mode, "mode_since_ts_ns": node.mode_since_ts_ns}


@router.put("/system/mode", response_model=ModeChangedModel)
async def set_mode(
    body: SetModeBody, principal: Admin, gw: Annotated[Gateway, Depends(gateway)]
) -> Any:
    """Switch the mode (admin). Published on ``system`` and alerted as ``mode_changed``."""
    reply = await gw.ask(
        NODE_SET_MODE,
        SetModeRequest(mode=body.mode, reason=body.reason, by=principal.user),
        ModeChanged,
    )
    return builtins(reply)


@router.get("/system/config", response_model=dict[str, Any])
async def config(_: Admin, request: Request) -> Any:
    """The running configuration, secrets and URL passwords shown as ``***`` (admin)."""
    cfg = request.app.state.config
    data: dict[str, Any] = {
        "source": cfg.source,
        "node": cfg.node.model_dump(mode="json"),
        "bus": cfg.bus.model_dump(mode="json"),
    }
    for name, section in cfg.sections.items():
        data[name] = section.model_dump(mode="json")
    return redact(data)


@router.get("/events/{channel}", response_model=EventsView)
async def recent_events(
    principal: Caller,
    request: Request,
    channel: Annotated[
        ChannelName,  # type: ignore[valid-type]
        Path(description="a channel (DESIGN.md, Channels)"),
    ],
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    event_type: Annotated[str | None, Query(max_length=100)] = None,
) -> Any:
    """The newest events seen on ``channel`` since the API started (admin; other roles
    only ``market_data``, ``alert_data`` and ``system``)."""
    if principal.role != "admin" and channel not in PUBLIC_CHANNELS:
        raise HTTPException(403, f"role {principal.role!r} may read only {sorted(PUBLIC_CHANNELS)}")
    events = request.app.state.recent.latest(channel, limit, event_type)
    return {
        "channel": channel,
        "items": [
            {
                "id": e.id,
                "channel": e.channel,
                "type": e.type,
                "ts_ns": e.ts_ns,
                "source": e.source,
                "key": e.key,
                "payload": jsonable(e.payload),
            }
            for e in events
        ],
    }
