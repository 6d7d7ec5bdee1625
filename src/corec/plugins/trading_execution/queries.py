"""trading_execution's query endpoints (see :mod:`corec.core.queries` for the conventions).

- ``trading_execution.positions`` (:func:`positions_page`): the open positions
  (``positions`` table, orphans included), marked at the latest price seen.
- ``trading_execution.trades`` (:func:`trades_page`): closed trades (``trades`` table),
  newest first, counted and paged in SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, select

from corec.core import money
from corec.core.queries import Refused, page, paging_refusal
from corec.core.store import Store
from corec.messages.trading_results import (
    PositionRow,
    PositionsPage,
    PositionsRequest,
    TradeClosed,
    TradesPage,
    TradesRequest,
)
from corec.plugins.trading_execution import models as m

Mark = tuple[Decimal, int]
"""(price, exchange_ts_ns) of an instrument's latest ``MarketSnapshot``."""


def position_row(row: Mapping[str, Any], mark: Mark | None) -> PositionRow:
    """A ``positions`` row as a :class:`PositionRow`, marked at ``mark`` (price and its
    exchange timestamp) when known: ``notional_usd = quantity × mark`` (× entry without
    a mark), ``unrealized_pnl_usd = (mark − entry) × quantity`` (flipped for shorts)
    minus the entry fee, exact (capital_pool's figure)."""
    quantity, entry = row["quantity"], row["entry_price"]
    price = None if mark is None else mark[0]
    unrealized = None
    if price is not None:
        move = money.add(price, -entry)
        gross = money.multiply(move if row["side"] == "long" else -move, quantity)
        unrealized = money.add(gross, -row["entry_fee_usd"])
    return PositionRow(
        trade_id=row["trade_id"],
        allocation_id=row["allocation_id"],
        strategy=row["strategy"],
        exchange=row["exchange"],
        market=row["market"],
        symbol=row["symbol"],
        side=row["side"],
        quantity=quantity,
        entry_price=entry,
        entry_fee_usd=row["entry_fee_usd"],
        allocation_usd=row["allocation_usd"],
        mark_price=price,
        mark_ts_ns=None if mark is None else mark[1],
        notional_usd=money.multiply(quantity, entry if price is None else price),
        unrealized_pnl_usd=unrealized,
        stop_price=row["stop_price"],
        opened_ts_ns=row["opened_ts_ns"],
    )


async def positions_page(
    store: Store, request: PositionsRequest, marks: Mapping[tuple[str, str, str], Mark]
) -> PositionsPage | Refused:
    """The ``trading_execution.positions`` reply: open positions matching ``strategy``
    and ``symbol``, newest first (``opened_ts_ns``, then ``trade_id``), paged; each
    marked from ``marks`` ((exchange, market, symbol) → latest price seen)."""
    refusal = paging_refusal(request.limit, request.offset)
    if refusal is not None:
        return refusal
    p = m.positions
    query = select(p).order_by(p.c.opened_ts_ns.desc(), p.c.trade_id.desc())
    if request.strategy is not None:
        query = query.where(p.c.strategy == request.strategy)
    if request.symbol is not None:
        query = query.where(p.c.symbol == request.symbol)
    rows = await store.read(lambda conn: [dict(r) for r in conn.execute(query).mappings()])
    total, chosen = page(rows, request.limit, request.offset)
    items = tuple(
        position_row(r, marks.get((r["exchange"], r["market"], r["symbol"]))) for r in chosen
    )
    return PositionsPage(total=total, items=items)


async def trades_page(store: Store, request: TradesRequest) -> TradesPage | Refused:
    """The ``trading_execution.trades`` reply: closed trades matching ``strategy``,
    ``symbol`` and ``from_ts_ns ≤ closed_ts_ns < to_ts_ns``, newest first
    (``closed_ts_ns``, then ``trade_id`` descending), counted and paged in SQL.

    Refused (``invalid``): paging out of range; ``to_ts_ns`` not after ``from_ts_ns``.
    """
    refusal = paging_refusal(request.limit, request.offset)
    if refusal is not None:
        return refusal
    if (
        request.from_ts_ns is not None
        and request.to_ts_ns is not None
        and request.to_ts_ns <= request.from_ts_ns
    ):
        return Refused(
            code="invalid",
            message=f"to_ts_ns ({request.to_ts_ns}) must be after from_ts_ns "
            f"({request.from_ts_ns})",
            field="to_ts_ns",
        )
    t = m.trades
    conditions = []
    if request.strategy is not None:
        conditions.append(t.c.strategy == request.strategy)
    if request.symbol is not None:
        conditions.append(t.c.symbol == request.symbol)
    if request.from_ts_ns is not None:
        conditions.append(t.c.closed_ts_ns >= request.from_ts_ns)
    if request.to_ts_ns is not None:
        conditions.append(t.c.closed_ts_ns < request.to_ts_ns)
    count = select(func.count()).select_from(t).where(*conditions)
    rows = (
        select(t)
        .where(*conditions)
        .order_by(t.c.closed_ts_ns.desc(), t.c.trade_id.desc())
        .limit(request.limit)
        .offset(request.offset)
    )

    def read(conn: Connection) -> tuple[int, list[dict[str, Any]]]:
        return int(conn.execute(count).scalar_one()), [
            dict(r) for r in conn.execute(rows).mappings()
        ]

    total, found = await store.read(read)
    return TradesPage(total=total, items=tuple(TradeClosed(**row) for row in found))
