"""One strategy instance trading one instrument through the paper broker.

On every ``market_data`` snapshot of its instrument the engine:

1. checks the stop of an open position (long: price ≤ stop; short: price ≥ stop) and
   closes it at market if hit;
2. feeds the price to :class:`MinuteCloses`; each closed minute goes to the
   :class:`SmaCross`; on a cross it closes an opposite position and, if flat, asks
   ``capital_pool.allocate`` for capital (stop distance = ``stop_loss_pct``) and opens
   the new side with all of the granted capital (notional + fee ≤ grant).

Every open publishes ``PositionOpened``; every close publishes ``TradeClosed`` with
``realized_pnl_usd = gross − entry fee − exit fee``. A lock serialises ticks so two
concurrent snapshots can never open two positions.

The order gate (DESIGN.md "Modes"): before every order the engine reads the node's mode
(``ctx.mode``). ``normal`` admits every order; ``safe`` only orders that reduce exposure
(a stop-loss exit, the close on an opposite cross), so no position is opened; in
``emergency`` no order at all: open positions stay open (their stops are not executed)
until the node leaves it. Signals are still computed, so the strategy is in step when
trading resumes. A live broker would also cancel its resting orders on ``emergency``;
the paper broker fills market orders at once and never has any. Refused orders are
counted by mode (:attr:`StrategyEngine.refused_by_mode`) and logged once per mode
entered, not on every bar.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from corec.core import channels
from corec.core.errors import BusError, InvalidInput
from corec.core.ids import new_id
from corec.core.notices import NodeMode
from corec.core.plugin import PluginContext
from corec.exchanges.paper import PaperBroker
from corec.messages.capital_data import (
    ALLOCATE,
    AllocationGranted,
    AllocationRefused,
    AllocationRequest,
)
from corec.messages.market_data import MarketSnapshot
from corec.messages.trading_results import AllocationUnused, ExitReason, PositionOpened, TradeClosed
from corec.plugins.trading_execution import storage
from corec.plugins.trading_execution.config import SmaCrossSettings
from corec.plugins.trading_execution.signals import MinuteCloses, Signal, SmaCross

HUNDRED = Decimal(100)


@dataclass
class OpenPosition:
    """The engine's open position (mirrors a ``positions`` row)."""

    trade_id: str
    allocation_id: str
    side: Signal
    quantity: Decimal
    entry_price: Decimal
    entry_fee_usd: Decimal
    stop_price: Decimal
    allocation_usd: Decimal
    opened_ts_ns: int


class StrategyEngine:
    """Runs one :class:`SmaCrossSettings` strategy (see the module docstring)."""

    def __init__(self, settings: SmaCrossSettings, broker: PaperBroker, ctx: PluginContext) -> None:
        self.settings = settings
        self.broker = broker
        self.ctx = ctx
        self.instrument = (settings.exchange, settings.market, settings.symbol)
        self.minutes = MinuteCloses()
        self.signal = SmaCross(settings.fast, settings.slow)
        self.position: OpenPosition | None = None
        self._lock = asyncio.Lock()
        self.trades_closed = 0
        self.refusals = 0
        self.request_errors = 0
        self.last_refusal: str | None = None
        self.refused_by_mode: dict[NodeMode, int] = {"safe": 0, "emergency": 0}
        """Orders the mode gate refused, by the node's mode at the time."""
        self._gate_mode: NodeMode = "normal"
        self._refusal_logged = False

    def restore(self, row: dict[str, Any]) -> None:
        """Resume an open position stored by an earlier run."""
        self.position = OpenPosition(
            trade_id=row["trade_id"],
            allocation_id=row["allocation_id"],
            side=row["side"],
            quantity=row["quantity"],
            entry_price=row["entry_price"],
            entry_fee_usd=row["entry_fee_usd"],
            stop_price=row["stop_price"],
            allocation_usd=row["allocation_usd"],
            opened_ts_ns=row["opened_ts_ns"],
        )

    async def on_snapshot(self, snap: MarketSnapshot) -> None:
        """Handle one snapshot of this engine's instrument."""
        async with self._lock:
            ts = snap.exchange_ts_ns
            pos = self.position
            if pos is not None:
                hit = (
                    snap.price <= pos.stop_price
                    if pos.side == "long"
                    else snap.price >= pos.stop_price
                )
                if hit and self.order_allowed(reduces_exposure=True, action="stop_loss"):
                    await self._close(snap, ts, "stop_loss")
            for _minute_end, close in self.minutes.add(ts, snap.price):
                cross = self.signal.on_close(close)
                if cross is None:
                    continue
                if (
                    self.position is not None
                    and self.position.side != cross
                    and self.order_allowed(reduces_exposure=True, action="close")
                ):
                    await self._close(snap, ts, "signal")
                if (
                    self.position is None
                    and (cross == "long" or self.settings.sides == "long_short")
                    and self.order_allowed(reduces_exposure=False, action=f"open {cross}")
                ):
                    await self._open(snap, ts, cross)

    def order_allowed(self, *, reduces_exposure: bool, action: str) -> bool:
        """The order gate: may an order be placed now, in the node's mode?

        ``normal``: yes; ``safe``: only if it ``reduces_exposure``; ``emergency``: no.
        A refusal is counted in :attr:`refused_by_mode`; the first refusal after the
        mode changed is logged (``order_refused_by_mode``), the rest only counted.
        """
        mode = self.ctx.mode
        if mode != self._gate_mode:
            self._gate_mode = mode
            self._refusal_logged = False
        if mode == "normal" or (mode == "safe" and reduces_exposure):
            return True
        self.refused_by_mode[mode] = self.refused_by_mode.get(mode, 0) + 1
        if not self._refusal_logged:
            self._refusal_logged = True
            self.ctx.log.warning(
                "order_refused_by_mode",
                strategy=self.settings.name,
                mode=mode,
                action=action,
                note="further refusals in this mode are counted in health, not logged",
            )
        return False

    async def _open(self, snap: MarketSnapshot, ts: int, side: Signal) -> None:
        s = self.settings
        request = AllocationRequest(
            strategy=s.name,
            exchange=s.exchange,
            market=s.market,
            symbol=s.symbol,
            side=side,
            stop_loss_pct=s.stop_loss_pct,
        )
        try:
            reply = await self.ctx.request(ALLOCATE, request)
        except BusError as exc:
            self.request_errors += 1
            self.ctx.log.warning("allocation_request_failed", strategy=s.name, error=str(exc))
            return
        if isinstance(reply, AllocationRefused):
            self.refusals += 1
            self.last_refusal = f"{reply.code}: {reply.reason}"
            return
        if not isinstance(reply, AllocationGranted):
            self.request_errors += 1
            self.ctx.log.error("allocation_reply_unexpected", reply=type(reply).__name__)
            return
        if not self.order_allowed(reduces_exposure=False, action=f"open {side}"):
            # the mode changed while the pool was asked: give the capital back
            await self.ctx.publish(
                channels.TRADING_RESULTS,
                AllocationUnused(
                    allocation_id=reply.allocation_id,
                    reason=f"node in {self.ctx.mode} mode: no new position",
                ),
                key=reply.allocation_id,
            )
            return
        order_side = "buy" if side == "long" else "sell"
        try:
            quantity = self.broker.quantity_for(reply.amount_usd, order_side, snap)
        except InvalidInput as exc:
            await self.ctx.publish(
                channels.TRADING_RESULTS,
                AllocationUnused(allocation_id=reply.allocation_id, reason=str(exc)),
                key=reply.allocation_id,
            )
            return
        fill = self.broker.market_order(order_side, quantity, snap, ts)
        distance = fill.price * s.stop_loss_pct / HUNDRED
        stop = fill.price - distance if side == "long" else fill.price + distance
        trade_id = new_id()
        position = OpenPosition(
            trade_id=trade_id,
            allocation_id=reply.allocation_id,
            side=side,
            quantity=fill.quantity,
            entry_price=fill.price,
            entry_fee_usd=fill.fee_usd,
            stop_price=stop,
            allocation_usd=reply.amount_usd,
            opened_ts_ns=ts,
        )
        await storage.save_opened(
            self.ctx.store,  # type: ignore[arg-type]
            {
                "trade_id": trade_id,
                "allocation_id": reply.allocation_id,
                "strategy": s.name,
                "exchange": s.exchange,
                "market": s.market,
                "symbol": s.symbol,
                "side": side,
                "quantity": fill.quantity,
                "entry_price": fill.price,
                "entry_fee_usd": fill.fee_usd,
                "stop_price": stop,
                "allocation_usd": reply.amount_usd,
                "opened_ts_ns": ts,
            },
            fill,
        )
        self.position = position
        await self.ctx.publish(channels.TRADING_RESULTS, self.position_opened(), key=trade_id)

    def position_opened(self) -> PositionOpened:
        """The ``PositionOpened`` of the open position."""
        pos = self.position
        assert pos is not None
        s = self.settings
        return PositionOpened(
            trade_id=pos.trade_id,
            allocation_id=pos.allocation_id,
            strategy=s.name,
            exchange=s.exchange,
            market=s.market,
            symbol=s.symbol,
            side=pos.side,
            quantity=pos.quantity,
            entry_price=pos.entry_price,
            entry_fee_usd=pos.entry_fee_usd,
            opened_ts_ns=pos.opened_ts_ns,
        )

    async def _close(self, snap: MarketSnapshot, ts: int, reason: ExitReason) -> None:
        pos = self.position
        assert pos is not None
        s = self.settings
        fill = self.broker.market_order(
            "sell" if pos.side == "long" else "buy", pos.quantity, snap, ts
        )
        move = fill.price - pos.entry_price
        gross = (move if pos.side == "long" else -move) * pos.quantity
        fees = pos.entry_fee_usd + fill.fee_usd
        trade = TradeClosed(
            trade_id=pos.trade_id,
            allocation_id=pos.allocation_id,
            strategy=s.name,
            exchange=s.exchange,
            market=s.market,
            symbol=s.symbol,
            side=pos.side,
            quantity=pos.quantity,
            entry_price=pos.entry_price,
            exit_price=fill.price,
            fees_usd=fees,
            realized_pnl_usd=gross - fees,
            opened_ts_ns=pos.opened_ts_ns,
            closed_ts_ns=ts,
            exit_reason=reason,
        )
        await storage.save_closed(self.ctx.store, trade, fill)  # type: ignore[arg-type]
        self.position = None
        self.trades_closed += 1
        await self.ctx.publish(channels.TRADING_RESULTS, trade, key=trade.trade_id)
