"""trading_execution plugin: strategies on ``market_data``, paper fills, ``trading_results``.

Every order passes the mode gate (:meth:`.engine.StrategyEngine.order_allowed`). Query
endpoints (:mod:`.queries`): ``trading_execution.positions``, ``trading_execution.trades``.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from corec.core import channels
from corec.core.errors import InvalidEvent
from corec.core.events import Event, Payload
from corec.core.plugin import Plugin, PluginContext, PluginHealth
from corec.core.queries import Refused
from corec.core.store import Store
from corec.exchanges.paper import PaperBroker
from corec.messages.capital_data import ALLOCATE, OPEN_ALLOCATIONS
from corec.messages.market_data import ConsolidatedQuote, MarketSnapshot
from corec.messages.trading_results import (
    POSITIONS,
    TRADES,
    PositionsPage,
    PositionsRequest,
    TradesPage,
    TradesRequest,
)
from corec.plugins.trading_execution import queries, storage
from corec.plugins.trading_execution.config import TradingExecutionConfig
from corec.plugins.trading_execution.engine import StrategyEngine
from corec.plugins.trading_execution.reconcile import reconcile


class TradingExecutionPlugin(Plugin):
    """Runs the configured strategies in paper mode; every trade is funded by an allocation."""

    name = "trading_execution"
    Config = TradingExecutionConfig
    consumes = (channels.MARKET_DATA,)
    publishes = (channels.TRADING_RESULTS, channels.ALERTS)
    serves = (POSITIONS, TRADES)
    requests = (ALLOCATE, OPEN_ALLOCATIONS)
    migrations = Path(__file__).parent / "migrations"
    status_key = "trading"

    config: TradingExecutionConfig

    async def start(self, ctx: PluginContext) -> None:
        assert ctx.store is not None
        self.ctx = ctx
        broker = PaperBroker(
            taker_fee_rate=self.config.taker_fee_rate, slippage_bps=self.config.slippage_bps
        )
        self.engines = [
            StrategyEngine(settings, broker, ctx) for settings in self.config.strategies
        ]
        self.by_instrument: dict[tuple[str, str, str], list[StrategyEngine]] = {}
        self.marks: dict[tuple[str, str, str], queries.Mark] = {}
        """Latest (price, exchange_ts_ns) per instrument seen on market_data."""
        for engine in self.engines:
            self.by_instrument.setdefault(engine.instrument, []).append(engine)
        by_name = {engine.settings.name: engine for engine in self.engines}
        for row in await storage.load_positions(ctx.store):
            engine = by_name.get(row["strategy"])
            if engine is None:
                ctx.log.warning(
                    "position_without_strategy", trade_id=row["trade_id"], strategy=row["strategy"]
                )
                await ctx.alert(
                    "orphan_position",
                    f"open position {row['trade_id']} belongs to strategy {row['strategy']!r}, which is not configured",
                    severity="high",
                    labels={"strategy": row["strategy"]},
                )
                continue
            engine.restore(row)
        self.reconciliation = await reconcile(ctx, self.engines)
        ctx.subscribe(channels.MARKET_DATA, self._on_market)
        ctx.serve(POSITIONS, self._positions)
        ctx.serve(TRADES, self._trades)

    async def _on_market(self, event: Event) -> None:
        snap = event.payload
        if type(snap) is not MarketSnapshot:
            if type(snap) is ConsolidatedQuote:
                return  # the cross-venue view: this plugin works per instrument
            raise InvalidEvent(
                f"market_data carries {type(snap).__name__}, expected MarketSnapshot"
            )
        key = (snap.exchange, snap.market, snap.symbol)
        mark = self.marks.get(key)
        if mark is None or snap.exchange_ts_ns >= mark[1]:
            self.marks[key] = (snap.price, snap.exchange_ts_ns)
        engines = self.by_instrument.get(key)
        if engines:
            for engine in engines:
                await engine.on_snapshot(snap)

    async def _positions(self, request: Payload) -> PositionsPage | Refused:
        if not isinstance(request, PositionsRequest):
            return _wrong_type(POSITIONS, "PositionsRequest", request)
        return await queries.positions_page(self.ctx.store, request, self.marks)  # type: ignore[arg-type]

    async def _trades(self, request: Payload) -> TradesPage | Refused:
        if not isinstance(request, TradesRequest):
            return _wrong_type(TRADES, "TradesRequest", request)
        return await queries.trades_page(self.ctx.store, request)  # type: ignore[arg-type]

    def health(self) -> PluginHealth:
        strategies: dict[str, Any] = {}
        refused_by_mode = {"safe": 0, "emergency": 0}
        for engine in self.engines:
            pos = engine.position
            strategies[engine.settings.name] = {
                "trades_closed": engine.trades_closed,
                "allocation_refusals": engine.refusals,
                "last_refusal": engine.last_refusal,
                "request_errors": engine.request_errors,
                "orders_refused_by_mode": dict(engine.refused_by_mode),
                "position": None
                if pos is None
                else {"side": pos.side, "quantity": str(pos.quantity)},
            }
            for mode, count in engine.refused_by_mode.items():
                refused_by_mode[mode] = refused_by_mode.get(mode, 0) + count
        degraded = any(e.request_errors for e in self.engines)
        return PluginHealth(
            status="degraded" if degraded or self.reconciliation.orphan_positions else "ok",
            details={
                "mode": self.config.mode,
                "node_mode": self.ctx.mode,
                # the paper broker has no resting orders: nothing to cancel in emergency
                "orders_refused_by_mode": refused_by_mode,
                "strategies": strategies,
                "reconciled_at_start": vars(self.reconciliation),
            },
        )

    @classmethod
    async def read_status(
        cls, store: Store | None, config: TradingExecutionConfig
    ) -> dict[str, Any]:  # type: ignore[override]
        if store is None:
            return {
                "trades": 0,
                "wins": 0,
                "losses": 0,
                "realized_pnl_usd": Decimal(0),
                "fees_usd": Decimal(0),
                "open_positions": 0,
            }
        return await storage.trade_stats(store)


def _wrong_type(endpoint: str, expected: str, request: Payload) -> Refused:
    return Refused(
        code="invalid", message=f"{endpoint} takes {expected}, got {type(request).__name__}"
    )
