"""daily_settlement's query endpoints (``daily_settlement.settlements`` and
``daily_settlement.member_settlements``): the settled days and each member's, read from
the plugin's store as ``corec settlement list`` reads them (the same stored rows, with
USD to cents and rates to 8 decimals as published), paged in SQL.

A client's mistake (a malformed date, a bad page) is answered with
:class:`~corec.core.queries.Refused` naming the field at fault.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from sqlalchemy import Connection, func, select

from corec.core.events import Payload
from corec.core.queries import Refused, paging_refusal
from corec.messages.settlement_data import (
    MemberSettlementRow,
    MemberSettlementsPage,
    MemberSettlementsRequest,
    SettlementsPage,
    SettlementsRequest,
    SettlementSummary,
)
from corec.plugins.daily_settlement import models as m
from corec.plugins.daily_settlement.service import _as_published

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
HUNDRED = 100


def _dates(from_date: Any, to_date: Any) -> tuple[str | None, str | None] | Refused:
    """The ISO bounds (checked), or why not."""
    parsed: dict[str, date | None] = {}
    for field, value in (("from_date", from_date), ("to_date", to_date)):
        parsed[field] = None
        if value is None:
            continue
        try:
            if not (isinstance(value, str) and _DATE.fullmatch(value)):
                raise ValueError(value)
            parsed[field] = date.fromisoformat(value)
        except ValueError:
            return Refused(
                code="invalid",
                message=f"{field}: expected a date as YYYY-MM-DD, got {value!r}",
                field=field,
            )
    start, end = parsed["from_date"], parsed["to_date"]
    if start is not None and end is not None and start > end:
        return Refused(
            code="invalid", message=f"from_date {start} is after to_date {end}", field="from_date"
        )
    return (
        start.isoformat() if start is not None else None,
        end.isoformat() if end is not None else None,
    )


def _expect(payload: Payload, cls: type[Payload], endpoint: str) -> None:
    """A request of the wrong class is the caller's bug, not a client's mistake."""
    if not isinstance(payload, cls):
        raise TypeError(f"{endpoint} expects a {cls.__name__}, got {type(payload).__name__}")


def _where(query: Any, table: Any, start: str | None, end: str | None) -> Any:
    if start is not None:
        query = query.where(table.c.date >= start)
    if end is not None:
        query = query.where(table.c.date <= end)
    return query


def summary(row: dict[str, Any]) -> SettlementSummary:
    """A ``settlements`` row (as published: USD to cents, rates to 8 decimals) as a
    :class:`SettlementSummary`; returns in percent (fraction × 100, exact)."""
    return SettlementSummary(
        date=row["date"],
        cutoff_ts_ns=row["cutoff_ts_ns"],
        nav_usd=row["nav_usd"],
        nav_per_unit=row["nav_per_unit"],
        units=row["units"],
        realized_pnl_usd=row["realized_pnl_usd"],
        fees_usd=row["fees_usd"],
        return_pct=row["day_return"] * HUNDRED,
        twr_since_inception_pct=row["twr_since_inception"] * HUNDRED,
        net_flows_usd=row["net_flows_usd"],
        distributions_usd=row["distributions_usd"],
        valuation=row["valuation"],
    )


def member_row(row: dict[str, Any]) -> MemberSettlementRow:
    """A ``member_settlements`` row (as published) as a :class:`MemberSettlementRow`."""
    return MemberSettlementRow(
        date=row["date"],
        member=row["member"],
        units=row["units"],
        equity_usd=row["equity_usd"],
        pnl_usd=row["pnl_usd"],
        twr=row["time_weighted_return"],
        xirr=row["money_weighted_return"],
        distribution_usd=row["distribution_usd"],
        distribution_queued=bool(row["distribution_queued"]),
    )


async def read_settlements(
    store: Any, start: str | None, end: str | None, limit: int, offset: int
) -> tuple[int, list[SettlementSummary]]:
    """``(total, page)`` of the settled days between the ISO dates (inclusive), newest
    first."""
    t = m.settlements
    count = _where(select(func.count()).select_from(t), t, start, end)
    rows = _where(select(t), t, start, end).order_by(t.c.date.desc()).limit(limit).offset(offset)

    def read(conn: Connection) -> tuple[int, list[SettlementSummary]]:
        total = int(conn.execute(count).scalar_one())
        found = [summary(_as_published(dict(r))) for r in conn.execute(rows).mappings()]
        return total, found

    return await store.read(read)  # type: ignore[no-any-return]


async def read_member_settlements(
    store: Any,
    member: str | None,
    start: str | None,
    end: str | None,
    limit: int,
    offset: int,
) -> tuple[int, list[MemberSettlementRow]]:
    """``(total, page)`` of members' settled days (``member``'s only when given) between
    the ISO dates (inclusive), newest day first, members by name within a day."""
    t = m.member_settlements
    count = _where(select(func.count()).select_from(t), t, start, end)
    rows = _where(select(t), t, start, end)
    if member is not None:
        count = count.where(t.c.member == member)
        rows = rows.where(t.c.member == member)
    rows = rows.order_by(t.c.date.desc(), t.c.member).limit(limit).offset(offset)

    def read(conn: Connection) -> tuple[int, list[MemberSettlementRow]]:
        total = int(conn.execute(count).scalar_one())
        found = [member_row(_as_published(dict(r))) for r in conn.execute(rows).mappings()]
        return total, found

    return await store.read(read)  # type: ignore[no-any-return]


class SettlementQueries:
    """The responders of daily_settlement's query endpoints over its store.

    Each takes its request payload and returns the reply payload or a
    :class:`~corec.core.queries.Refused`; see :mod:`corec.messages.settlement_data`.
    A member with no settled day yet has an empty page (this plugin does not own the
    member list; capital_pool's ``capital_pool.members`` does).
    """

    def __init__(self, store: Any) -> None:
        self.store = store

    async def settlements(self, payload: Payload) -> Payload:
        """``daily_settlement.settlements``: :class:`SettlementsRequest` →
        :class:`SettlementsPage` (newest first), or ``Refused(invalid)`` for a date."""
        _expect(payload, SettlementsRequest, "daily_settlement.settlements")
        assert isinstance(payload, SettlementsRequest)
        if (refused := paging_refusal(payload.limit, payload.offset)) is not None:
            return refused
        bounds = _dates(payload.from_date, payload.to_date)
        if isinstance(bounds, Refused):
            return bounds
        total, items = await read_settlements(
            self.store, *bounds, limit=payload.limit, offset=payload.offset
        )
        return SettlementsPage(total=total, items=tuple(items))

    async def member_settlements(self, payload: Payload) -> Payload:
        """``daily_settlement.member_settlements``: :class:`MemberSettlementsRequest` →
        :class:`MemberSettlementsPage`, or ``Refused(invalid)`` for a date."""
        _expect(payload, MemberSettlementsRequest, "daily_settlement.member_settlements")
        assert isinstance(payload, MemberSettlementsRequest)
        if (refused := paging_refusal(payload.limit, payload.offset)) is not None:
            return refused
        if payload.member is not None and (
            not isinstance(payload.member, str) or not payload.member
        ):
            return Refused(code="invalid", message="member must not be empty", field="member")
        bounds = _dates(payload.from_date, payload.to_date)
        if isinstance(bounds, Refused):
            return bounds
        total, items = await read_member_settlements(
            self.store, payload.member, *bounds, limit=payload.limit, offset=payload.offset
        )
        return MemberSettlementsPage(total=total, items=tuple(items))
