"""Alerts, acknowledgements, silences and breaker history."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import Field

from corec.api.deps import DEFAULT_LIMIT, Admin, Caller, Limit, Offset, gateway
from corec.api.gateway import Gateway
from corec.api.models import ApiModel, DecimalStr, builtins, model_of, page_model
from corec.api.routes.common import listing
from corec.core.notices import Severity
from corec.messages import alert_data

router = APIRouter(tags=["alerts"])

AlertsListing = page_model(alert_data.AlertRow, "AlertsListing")
AlertState = Literal["firing", "resolved", "expired"]
Id = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]

MAX_SILENCE_S = Decimal(366 * 24 * 3600)


class SilenceBody(ApiModel):
    """Mute alerts matching every matcher (``label=value``, ``label!=value``,
    ``label=~regex``, ``label!~regex``; ``alertname`` is the alert's name) for
    ``duration_s`` seconds."""

    matchers: list[Annotated[str, Field(min_length=3, max_length=300)]] = Field(
        min_length=1, max_length=20
    )
    duration_s: DecimalStr = Field(gt=0, le=MAX_SILENCE_S, allow_inf_nan=False)
    comment: str = Field(default="", max_length=500)


async def _alerts(
    gw: Gateway,
    *,
    severity: Severity | None,
    state: AlertState | None,
    name_prefix: str | None,
    acked: bool | None,
    limit: int,
    offset: int,
) -> Any:
    reply = await gw.ask(
        alert_data.ALERTS,
        alert_data.AlertsRequest(
            severity=severity,
            state=state,
            name_prefix=name_prefix,
            acked=acked,
            limit=limit,
            offset=offset,
        ),
        alert_data.AlertsPage,
    )
    return listing(reply, limit, offset)


@router.get("/alerts", response_model=AlertsListing)
async def alerts(
    _: Caller,
    gw: Annotated[Gateway, Depends(gateway)],
    severity: Annotated[Severity | None, Query()] = None,
    state: Annotated[AlertState | None, Query()] = None,
    name: Annotated[
        str | None, Query(min_length=1, max_length=100, description="name prefix")
    ] = None,
    acked: Annotated[bool | None, Query()] = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> Any:
    """Alerts, newest first, with severity, state, occurrences, acknowledgement and the
    silence or inhibition muting them."""
    return await _alerts(
        gw,
        severity=severity,
        state=state,
        name_prefix=name,
        acked=acked,
        limit=limit,
        offset=offset,
    )


@router.get("/breakers/history", response_model=AlertsListing)
async def breaker_history(
    _: Caller,
    gw: Annotated[Gateway, Depends(gateway)],
    state: Annotated[AlertState | None, Query()] = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> Any:
    """Circuit breakers that opened (exchanges, receivers), newest first: when, why,
    and when they closed again (``ends_ts_ns``)."""
    return await _alerts(
        gw,
        severity=None,
        state=state,
        name_prefix="breaker_",
        acked=None,
        limit=limit,
        offset=offset,
    )


@router.post("/alerts/{alert_id}/ack", response_model=model_of(alert_data.AlertAcknowledged))
async def ack(alert_id: Id, principal: Admin, gw: Annotated[Gateway, Depends(gateway)]) -> Any:
    """Acknowledge an alert (admin): it is not notified again. 404 if unknown."""
    reply = await gw.ask(
        alert_data.ACK,
        alert_data.AckRequest(alert_id=alert_id, by=principal.user),
        alert_data.AlertAcknowledged,
    )
    return builtins(reply)


SilenceModel = model_of(alert_data.SilenceChanged)


@router.get("/silences", response_model=page_model(alert_data.SilenceChanged, "SilencesListing"))
async def silences(
    _: Caller,
    gw: Annotated[Gateway, Depends(gateway)],
    include_expired: Annotated[bool, Query()] = False,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> Any:
    """Silences, active ones (and with ``include_expired`` the ended ones)."""
    reply = await gw.ask(
        alert_data.SILENCES,
        alert_data.SilencesRequest(include_expired=include_expired, limit=limit, offset=offset),
        alert_data.SilencesPage,
    )
    return listing(reply, limit, offset)


@router.post("/silences", status_code=201, response_model=SilenceModel)
async def silence(
    body: SilenceBody, principal: Admin, gw: Annotated[Gateway, Depends(gateway)]
) -> Any:
    """Create a silence (admin). 422 when a matcher is malformed."""
    reply = await gw.ask(
        alert_data.SILENCE,
        alert_data.SilenceRequest(
            matchers=tuple(body.matchers),
            duration_s=body.duration_s,
            created_by=principal.user,
            comment=body.comment,
        ),
        alert_data.SilenceChanged,
    )
    return builtins(reply)


@router.delete("/silences/{silence_id}", response_model=SilenceModel)
async def unsilence(
    silence_id: Id, principal: Admin, gw: Annotated[Gateway, Depends(gateway)]
) -> Any:
    """End a silence now (admin). 404 if unknown."""
    reply = await gw.ask(
        alert_data.UNSILENCE,
        alert_data.UnsilenceRequest(silence_id=silence_id, by=principal.user),
        alert_data.SilenceChanged,
    )
    return builtins(reply)
