"""trading_execution's writes: an opened position with its fill, a closed trade with
its fill, each in one transaction."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select

from corec.core.store import Store
from corec.exchanges.paper import Fill
from corec.messages.trading_results import TradeClosed
from corec.plugins.trading_execution import models as m


def _fill_row(trade_id: str, fill: Fill) -> dict[str, Any]:
    return {
        "trade_id": trade_id,
        "side": fill.side,
        "quantity": fill.quantity,
        "price": fill.price,
        "fee_usd": fill.fee_usd,
        "ts_ns": fill.ts_ns,
    }


async def save_opened(store: Store, position: dict[str, Any], fill: Fill) -> None:
    """Insert the open position and its entry fill."""
    fill_row = _fill_row(position["trade_id"], fill)

    def write(conn: Connection) -> None:
        conn.execute(insert(m.positions), position)
        conn.execute(insert(m.fills), fill_row)

    await store.write(write)


_DELETE_POSITION = delete(m.positions).where(m.positions.c.trade_id == bindparam("key_trade_id"))


async def save_closed(store: Store, trade: TradeClosed, fill: Fill) -> None:
    """Insert the closed trade and its exit fill, and delete the open position."""
    trade_row = {
        "trade_id": trade.trade_id,
        "allocation_id": trade.allocation_id,
        "strategy": trade.strategy,
        "exchange": trade.exchange,
        "market": trade.market,
        "symbol": trade.symbol,
        "side": trade.side,
        "quantity": trade.quantity,
        "entry_price": trade.entry_price,
        "exit_price": trade.exit_price,
        "fees_usd": trade.fees_usd,
        "realized_pnl_usd": trade.realized_pnl_usd,
        "opened_ts_ns": trade.opened_ts_ns,
        "closed_ts_ns": trade.closed_ts_ns,
        "exit_reason": trade.exit_reason,
    }
    fill_row = _fill_row(trade.trade_id, fill)

    def write(conn: Connection) -> None:
        conn.execute(insert(m.trades), trade_row)
        conn.execute(insert(m.fills), fill_row)
        conn.execute(_DELETE_POSITION, {"key_trade_id": trade.trade_id})

    await store.write(write)


async def load_positions(store: Store) -> list[dict[str, Any]]:
    """Every open position row."""
    return await store.read(
        lambda conn: [dict(r) for r in conn.execute(select(m.positions)).mappings()]
    )


def _trade_stats(conn: Connection) -> dict[str, Any]:
    pnls = list(conn.execute(select(m.trades.c.realized_pnl_usd, m.trades.c.fees_usd)).all())
    open_positions = conn.execute(select(func.count()).select_from(m.positions)).scalar_one()
    realized = sum((p for p, _ in pnls), Decimal(0))
    fees = sum((f for _, f in pnls), Decimal(0))
    return {
        "trades": len(pnls),
        "wins": sum(1 for p, _ in pnls if p > 0),
        "losses": sum(1 for p, _ in pnls if p <= 0),
        "realized_pnl_usd": realized,
        "fees_usd": fees,
        "open_positions": open_positions,
    }


async def trade_stats(store: Store) -> dict[str, Any]:
    """Counts and sums over closed trades and open positions."""
    return await store.read(_trade_stats)


async def trades_for_allocations(
    store: Store, allocation_ids: list[str]
) -> dict[str, dict[str, Any]]:
    """Closed trades funded by these allocations, by allocation id."""
    if not allocation_ids:
        return {}
    query = select(m.trades).where(m.trades.c.allocation_id.in_(allocation_ids))
    rows = await store.read(lambda conn: [dict(r) for r in conn.execute(query).mappings()])
    return {row["allocation_id"]: row for row in rows}
