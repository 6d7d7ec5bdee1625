"""trading_execution's writes: an opened position with its fill, a closed trade with
its fill, each in one transaction."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import delete, func, insert, select

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
    async with store.begin() as conn:
        await conn.execute(insert(m.positions), dict(**position))
        await conn.execute(insert(m.fills), dict(**_fill_row(position["trade_id"], fill)))


async def save_closed(store: Store, trade: TradeClosed, fill: Fill) -> None:
    """Insert the closed trade and its exit fill, and delete the open position."""
    async with store.begin() as conn:
        await conn.execute(
            insert(m.trades),
            dict(
                trade_id=trade.trade_id,
                allocation_id=trade.allocation_id,
                strategy=trade.strategy,
                exchange=trade.exchange,
                market=trade.market,
                symbol=trade.symbol,
                side=trade.side,
                quantity=trade.quantity,
                entry_price=trade.entry_price,
                exit_price=trade.exit_price,
                fees_usd=trade.fees_usd,
                realized_pnl_usd=trade.realized_pnl_usd,
                opened_ts_ns=trade.opened_ts_ns,
                closed_ts_ns=trade.closed_ts_ns,
                exit_reason=trade.exit_reason,
            ),
        )
        await conn.execute(insert(m.fills), dict(**_fill_row(trade.trade_id, fill)))
        await conn.execute(delete(m.positions).where(m.positions.c.trade_id == trade.trade_id))


async def load_positions(store: Store) -> list[dict[str, Any]]:
    """Every open position row."""
    async with store.read() as conn:
        return [dict(r) for r in (await conn.execute(select(m.positions))).mappings()]


async def trade_stats(store: Store) -> dict[str, Any]:
    """Counts and sums over closed trades and open positions."""
    async with store.read() as conn:
        pnls = list(
            (await conn.execute(select(m.trades.c.realized_pnl_usd, m.trades.c.fees_usd))).all()
        )
        open_positions = (
            await conn.execute(select(func.count()).select_from(m.positions))
        ).scalar_one()
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
