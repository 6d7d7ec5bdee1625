"""capital_pool plugin: serves ``capital_pool.allocate`` and the query endpoints
(``capital_pool.state|members|flows|contribute|withdraw|statement``, see
:mod:`.queries`), settles ``trading_results``, marks positions from ``market_data``,
publishes ``capital_data``."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from corec.core import channels, money
from corec.core.errors import InvalidEvent
from corec.core.events import Event, Payload
from corec.core.plugin import Plugin, PluginContext, PluginHealth
from corec.core.store import Store
from corec.messages.capital_data import (
    ALLOCATE,
    CLOSE_DAY,
    CONTRIBUTE,
    FLOWS,
    MEMBERS,
    OPEN_ALLOCATIONS,
    STATE,
    STATEMENT,
    WITHDRAW,
    AllocationRequest,
    DayCloseRequest,
    OpenAllocation,
    OpenAllocations,
    OpenAllocationsRequest,
)
from corec.messages.macro_data import MacroObservation, MacroSeriesStale
from corec.messages.market_data import ConsolidatedQuote, MarketSnapshot
from corec.messages.trading_results import PositionOpened, TradeClosed
from corec.plugins.capital_pool import repository as repo
from corec.plugins.capital_pool.config import CapitalPoolConfig
from corec.plugins.capital_pool.day_close import close_day
from corec.plugins.capital_pool.ledger import Ledger, PoolFigures
from corec.plugins.capital_pool.queries import PoolQueries
from corec.plugins.capital_pool.service import (
    PoolService,
    check_result,
    members_report,
    rules_from_config,
)

RATIO_QUANTUM = Decimal("0.0001")


def pool_report(figures: PoolFigures, members: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``pool`` section of ``corec status``: NAV to cents, NAV per unit and units to
    8 decimals, members' equity rounded down to cents."""
    return {
        "nav_usd": figures.nav_usd.quantize(money.CENT),
        "nav_per_unit": figures.nav_per_unit.quantize(money.NAV_PER_UNIT_QUANTUM),
        "units": figures.units,
        "cash_usd": figures.cash_usd.quantize(money.CENT),
        "allocated_usd": figures.allocated_usd.quantize(money.CENT),
        "unrealized_pnl_usd": figures.unrealized_pnl_usd.quantize(money.CENT),
        "phase": figures.phase,
        "risk_per_trade": figures.risk_per_trade,
        "active_ratio": figures.active_ratio.quantize(RATIO_QUANTUM),
        "members": members,
    }


class CapitalPoolPlugin(Plugin):
    """The shared pool: members' units, contributions, withdrawals, allocations."""

    name = "capital_pool"
    Config = CapitalPoolConfig
    consumes = (channels.MARKET_DATA, channels.TRADING_RESULTS, channels.MACRO_DATA)
    publishes = (channels.CAPITAL_DATA, channels.ALERTS)
    serves = (
        ALLOCATE,
        OPEN_ALLOCATIONS,
        CLOSE_DAY,
        STATE,
        MEMBERS,
        FLOWS,
        CONTRIBUTE,
        WITHDRAW,
        STATEMENT,
    )
    migrations = Path(__file__).parent / "migrations"
    status_key = "pool"

    config: CapitalPoolConfig

    async def start(self, ctx: PluginContext) -> None:
        assert ctx.store is not None
        self.ctx = ctx

        async def publish(channel: str, payload: Payload, key: str | None) -> None:
            await ctx.publish(channel, payload, key=key)

        async def alert(name: str, message: str, severity: Any, labels: dict[str, str]) -> None:
            await ctx.alert(name, message, severity=severity, labels=labels)

        self.service = PoolService(ctx.store, self.config, ctx.clock, publish=publish, alert=alert)
        await self.service.open()
        await self.service.register_members()
        ctx.subscribe(channels.MARKET_DATA, self._on_market)
        ctx.subscribe(channels.TRADING_RESULTS, self._on_result)
        ctx.subscribe(channels.MACRO_DATA, self._on_macro)
        ctx.serve(ALLOCATE, self._allocate)
        ctx.serve(OPEN_ALLOCATIONS, self._open_allocations)
        ctx.serve(CLOSE_DAY, self._close_day)
        self.queries = PoolQueries(self.service)
        ctx.serve(STATE, self.queries.state)
        ctx.serve(MEMBERS, self.queries.members)
        ctx.serve(FLOWS, self.queries.flows)
        ctx.serve(CONTRIBUTE, self.queries.contribute)
        ctx.serve(WITHDRAW, self.queries.withdraw)
        ctx.serve(STATEMENT, self.queries.statement)
        ctx.spawn("save_marks", self._save_marks_periodically)
        if not ctx.clock.is_simulated:  # a replay expires allocations at each grant
            ctx.spawn("expire_allocations", self._expire_periodically)

    def _on_market(self, event: Event) -> None:
        payload = event.payload
        if type(payload) is not MarketSnapshot:
            if type(payload) is ConsolidatedQuote:
                return  # the cross-venue view: this plugin works per instrument
            raise InvalidEvent(
                f"market_data carries {type(payload).__name__}, expected MarketSnapshot"
            )
        self.service.on_market(payload)

    async def _expire_periodically(self) -> None:
        every = min(10.0, self.config.allocation_timeout_s / 4)
        while not await self.ctx.sleep(every):
            await self.service.expire_allocations()

    def _on_macro(self, event: Event) -> None:
        payload = event.payload
        if isinstance(payload, MacroObservation):
            self.service.on_macro(payload)
        elif not isinstance(payload, MacroSeriesStale):  # staleness: judged by value age
            raise InvalidEvent(
                f"macro_data carries {type(payload).__name__}, expected MacroObservation"
            )

    async def _on_result(self, event: Event) -> None:
        result = check_result(event.payload)
        if isinstance(result, TradeClosed):
            await self.service.on_trade_closed(result)
        elif isinstance(result, PositionOpened):
            await self.service.on_position_opened(result)
        else:
            await self.service.on_allocation_unused(result)

    async def _allocate(self, payload: Payload) -> Payload:
        if not isinstance(payload, AllocationRequest):
            raise InvalidEvent(
                f"{ALLOCATE} expects an AllocationRequest, got {type(payload).__name__}"
            )
        return await self.service.allocate(payload)

    async def _close_day(self, payload: Payload) -> Payload:
        if not isinstance(payload, DayCloseRequest):
            raise InvalidEvent(
                f"{CLOSE_DAY} expects a DayCloseRequest, got {type(payload).__name__}"
            )
        return await close_day(self.service, payload)

    async def _open_allocations(self, payload: Payload) -> Payload:
        if not isinstance(payload, OpenAllocationsRequest):
            raise InvalidEvent(
                f"{OPEN_ALLOCATIONS} expects an OpenAllocationsRequest, got {type(payload).__name__}"
            )
        wanted = set(payload.strategies)
        return OpenAllocations(
            allocations=tuple(
                OpenAllocation(
                    allocation_id=a.allocation_id,
                    strategy=a.strategy,
                    exchange=a.exchange,
                    market=a.market,
                    symbol=a.symbol,
                    side=a.side,
                    amount_usd=a.amount_usd,
                    trade_id=a.position.trade_id if a.position else None,
                )
                for a in self.service.ledger.allocations.values()
                if a.strategy in wanted
            )
        )

    async def _save_marks_periodically(self) -> None:
        while not await self.ctx.sleep(self.config.marks_save_interval_s):
            await self.service.save_marks()
            await self.service.announce_phase()  # the market alone may cross a band

    async def stop(self) -> None:
        await self.service.save_marks()

    def health(self) -> PluginHealth:
        figures = self.service.ledger.figures()
        return PluginHealth(
            details={
                "nav_usd": str(figures.nav_usd.quantize(money.CENT)),
                "nav_per_unit": str(figures.nav_per_unit.quantize(money.NAV_PER_UNIT_QUANTUM)),
                "phase": figures.phase,
                "open_allocations": len(self.service.ledger.allocations),
                "results_applied": self.service.results_applied,
                "results_ignored": self.service.results_ignored,
            }
        )

    @classmethod
    async def read_status(cls, store: Store | None, config: CapitalPoolConfig) -> dict[str, Any]:  # type: ignore[override]
        rules = rules_from_config(config)
        ledger = Ledger(rules=rules) if store is None else await repo.load_ledger(store, rules)
        return pool_report(ledger.figures(), members_report(ledger))
