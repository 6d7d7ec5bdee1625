"""The pool: state, NAV history, members, flows, statements, settlements.

Members' records are personal: an admin reads everyone's, a member only their own
(403 for another's), a viewer none (403).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response
from pydantic import Field

from corec.api.deps import (
    DEFAULT_LIMIT,
    Admin,
    Caller,
    Limit,
    Offset,
    gateway,
    member_scope,
)
from corec.api.gateway import Gateway
from corec.api.models import ApiModel, DecimalStr, builtins, model_of, page_model
from corec.api.routes.common import listing
from corec.messages import capital_data, settlement_data

router = APIRouter(tags=["pool"])

MemberName = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.@-]+$")]
MemberQ = Annotated[str | None, Query(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.@-]+$")]
DateQ = Annotated[dt.date | None, Query(description="YYYY-MM-DD (UTC)")]
TsNs = Annotated[int | None, Query(ge=0, le=2**63 - 1, description="UTC nanoseconds")]

MAX_AMOUNT_USD = Decimal("1e12")


class FlowBody(ApiModel):
    """A contribution or a withdrawal: who and how much (USD, up to cents).

    ``id`` makes the request idempotent: sending it again returns the same record.
    """

    member: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.@-]+$")
    amount_usd: DecimalStr = Field(gt=0, le=MAX_AMOUNT_USD, decimal_places=2, allow_inf_nan=False)
    id: str | None = Field(
        default=None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$"
    )


def _date(value: dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


@router.get("/pool", response_model=model_of(capital_data.PoolState))
async def pool(_: Caller, gw: Annotated[Gateway, Depends(gateway)]) -> Any:
    """The pool now: NAV, NAV per unit, units, cash, allocated, unrealized PnL (USD),
    phase, risk per trade and active ratio (fractions)."""
    reply = await gw.ask(
        capital_data.STATE, capital_data.PoolStateRequest(), capital_data.PoolState
    )
    return builtins(reply)


SettlementsListing = page_model(settlement_data.SettlementSummary, "SettlementsListing")


async def _settlements(
    gw: Gateway, from_date: dt.date | None, to_date: dt.date | None, limit: int, offset: int
) -> Any:
    reply = await gw.ask(
        settlement_data.SETTLEMENTS,
        settlement_data.SettlementsRequest(
            from_date=_date(from_date), to_date=_date(to_date), limit=limit, offset=offset
        ),
        settlement_data.SettlementsPage,
    )
    return listing(reply, limit, offset)


@router.get("/pool/nav-history", response_model=SettlementsListing)
async def nav_history(
    _: Caller,
    gw: Annotated[Gateway, Depends(gateway)],
    from_date: DateQ = None,
    to_date: DateQ = None,
    limit: Limit = 1000,
    offset: Offset = 0,
) -> Any:
    """NAV and NAV per unit at each daily settlement, newest first (the NAV chart)."""
    return await _settlements(gw, from_date, to_date, limit, offset)


@router.get("/settlements", response_model=SettlementsListing)
async def settlements(
    _: Caller,
    gw: Annotated[Gateway, Depends(gateway)],
    from_date: DateQ = None,
    to_date: DateQ = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> Any:
    """Daily settlements, newest first: NAV, NAV per unit, units, realized PnL and fees."""
    return await _settlements(gw, from_date, to_date, limit, offset)


@router.get(
    "/settlements/members",
    response_model=page_model(settlement_data.MemberSettlementRow, "MemberSettlementsListing"),
)
async def member_settlements(
    principal: Caller,
    gw: Annotated[Gateway, Depends(gateway)],
    member: MemberQ = None,
    from_date: DateQ = None,
    to_date: DateQ = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> Any:
    """Each member's day: units, equity, PnL, returns and distribution (admin: all;
    member: their own)."""
    scoped = member_scope(principal, member)
    reply = await gw.ask(
        settlement_data.MEMBER_SETTLEMENTS,
        settlement_data.MemberSettlementsRequest(
            member=scoped,
            from_date=_date(from_date),
            to_date=_date(to_date),
            limit=limit,
            offset=offset,
        ),
        settlement_data.MemberSettlementsPage,
    )
    return listing(reply, limit, offset)


@router.get("/members", response_model=page_model(capital_data.MemberSummary, "MembersListing"))
async def members(
    principal: Caller,
    gw: Annotated[Gateway, Depends(gateway)],
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> Any:
    """Members with units, equity, contributed, withdrawn, distributed and PnL in USD
    (admin: all; member: themselves; viewer: 403)."""
    scoped = member_scope(principal, None)
    reply = await gw.ask(
        capital_data.MEMBERS,
        capital_data.MembersRequest(member=scoped, limit=limit, offset=offset),
        capital_data.MembersPage,
    )
    return listing(reply, limit, offset)


@router.get("/members/{member}/statement", response_model=model_of(capital_data.MemberStatement))
async def statement(
    member: MemberName,
    principal: Caller,
    gw: Annotated[Gateway, Depends(gateway)],
    from_date: DateQ = None,
    to_date: DateQ = None,
) -> Any:
    """A member's statement over a period: opening and closing units and equity, flows,
    PnL, time-weighted and money-weighted (XIRR) returns (admin or that member)."""
    member_scope(principal, member)
    if from_date and to_date and from_date > to_date:
        raise HTTPException(422, "from_date must not be after to_date")
    reply = await gw.ask(
        capital_data.STATEMENT,
        capital_data.StatementRequest(
            member=member, from_date=_date(from_date), to_date=_date(to_date)
        ),
        capital_data.MemberStatement,
    )
    return builtins(reply)


FlowsListing = page_model(capital_data.FlowRecord, "FlowsListing")


async def _flows(
    principal: Any,
    gw: Gateway,
    kind: Literal["contribution", "withdrawal"],
    member: str | None,
    from_ts_ns: int | None,
    to_ts_ns: int | None,
    limit: int,
    offset: int,
) -> Any:
    scoped = member_scope(principal, member)
    reply = await gw.ask(
        capital_data.FLOWS,
        capital_data.FlowsRequest(
            kind=kind,
            member=scoped,
            from_ts_ns=from_ts_ns,
            to_ts_ns=to_ts_ns,
            limit=limit,
            offset=offset,
        ),
        capital_data.FlowsPage,
    )
    return listing(reply, limit, offset)


@router.get("/contributions", response_model=FlowsListing)
async def contributions(
    principal: Caller,
    gw: Annotated[Gateway, Depends(gateway)],
    member: MemberQ = None,
    from_ts_ns: TsNs = None,
    to_ts_ns: TsNs = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> Any:
    """Contributions, newest first (admin: all; member: their own)."""
    return await _flows(principal, gw, "contribution", member, from_ts_ns, to_ts_ns, limit, offset)


@router.get("/withdrawals", response_model=FlowsListing)
async def withdrawals(
    principal: Caller,
    gw: Annotated[Gateway, Depends(gateway)],
    member: MemberQ = None,
    from_ts_ns: TsNs = None,
    to_ts_ns: TsNs = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> Any:
    """Withdrawals (paid, queued or cancelled), newest first (admin: all; member: own)."""
    return await _flows(principal, gw, "withdrawal", member, from_ts_ns, to_ts_ns, limit, offset)


@router.post(
    "/contributions", status_code=201, response_model=model_of(capital_data.ContributionRecorded)
)
async def contribute(body: FlowBody, _: Admin, gw: Annotated[Gateway, Depends(gateway)]) -> Any:
    """Record a contribution (admin): units issued at the current NAV per unit, rounded
    down. 422 below the pool's minimum."""
    reply = await gw.ask(
        capital_data.CONTRIBUTE,
        capital_data.ContributeRequest(
            member=body.member, amount_usd=body.amount_usd, contribution_id=body.id
        ),
        capital_data.ContributionRecorded,
    )
    return builtins(reply)


class WithdrawalResult(ApiModel):
    """A withdrawal request's outcome: ``paid`` now (``recorded``) or ``queued`` until
    cash comes back from trades (``queued``)."""

    status: Literal["paid", "queued"]
    recorded: model_of(capital_data.WithdrawalRecorded) | None = None  # type: ignore[valid-type]
    queued: model_of(capital_data.WithdrawalQueued) | None = None  # type: ignore[valid-type]


@router.post(
    "/withdrawals",
    status_code=201,
    response_model=WithdrawalResult,
    responses={
        201: {"description": "paid now at NAV per unit"},
        202: {"model": WithdrawalResult, "description": "queued until cash comes back"},
    },
)
async def withdraw(
    body: FlowBody,
    principal: Caller,
    response: Response,
    gw: Annotated[Gateway, Depends(gateway)],
) -> Any:
    """Withdraw (admin, or a member for themselves): paid at NAV per unit now (201), or
    queued first in, first out while cash is out in trades (202). 409 above equity."""
    if principal.role != "admin":
        if principal.role != "member" or principal.member != body.member:
            raise HTTPException(403, "a member may withdraw only their own money")
    reply = await gw.ask(
        capital_data.WITHDRAW,
        capital_data.WithdrawRequest(
            member=body.member, amount_usd=body.amount_usd, withdrawal_id=body.id
        ),
        (capital_data.WithdrawalRecorded, capital_data.WithdrawalQueued),
    )
    if isinstance(reply, capital_data.WithdrawalQueued):
        response.status_code = 202
        return {"status": "queued", "queued": builtins(reply)}
    return {"status": "paid", "recorded": builtins(reply)}
