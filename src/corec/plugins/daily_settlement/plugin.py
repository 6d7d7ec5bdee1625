"""daily_settlement plugin: settles each day of the pool at its cut-off (and the missed
days after downtime, in order), publishes ``settlement_data``, alerts on a day's loss
beyond the limit, and serves the settled days (``daily_settlement.settlements`` and
``daily_settlement.member_settlements``, see :mod:`.queries`). See
:mod:`corec.plugins.daily_settlement.service`."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from corec.core import channels
from corec.core.events import Event, Payload
from corec.core.plugin import Plugin, PluginContext, PluginHealth
from corec.core.store import Store
from corec.messages.capital_data import CLOSE_DAY, DayClose, DayCloseRequest
from corec.messages.settlement_data import MEMBER_SETTLEMENTS, SETTLEMENTS
from corec.plugins.daily_settlement.config import DailySettlementConfig
from corec.plugins.daily_settlement.queries import SettlementQueries
from corec.plugins.daily_settlement.service import SettlementService, read_history


def settlement_report(records: list[Any]) -> dict[str, Any] | None:
    """The ``settlement`` section of ``corec status``: how many days are settled, the
    last one, the worst day and the distributions paid; ``None`` before the first."""
    if not records:
        return None
    last = records[-1]
    worst = min(records, key=lambda r: r.day_return)
    return {
        "days": len(records),
        "first_date": records[0].date,
        "last_date": last.date,
        "nav_usd": last.nav_usd,
        "nav_per_unit": last.nav_per_unit,
        "twr_since_inception": last.twr_since_inception,
        "worst_day": {"date": worst.date, "day_return": worst.day_return},
        "distributions_usd": sum((r.distributions_usd for r in records), Decimal(0)),
    }


class DailySettlementPlugin(Plugin):
    """The pool's daily NAV, returns and distributions (``settlement_data``).

    On a replay clock the schedule is checked on every ``exchange_data`` event, so a
    replay settles the same days at the same moments every run; on the system clock,
    every ``check_interval_s``.
    """

    name = "daily_settlement"
    Config = DailySettlementConfig
    consumes = (channels.EXCHANGE_DATA,)  # a replay's clock ticks; the data is ignored
    publishes = (channels.SETTLEMENT_DATA, channels.ALERTS)
    requests = (CLOSE_DAY,)
    serves = (SETTLEMENTS, MEMBER_SETTLEMENTS)
    migrations = Path(__file__).parent / "migrations"
    status_key = "settlement"

    config: DailySettlementConfig

    async def start(self, ctx: PluginContext) -> None:
        assert ctx.store is not None
        self.ctx = ctx

        async def close_day(request: DayCloseRequest) -> DayClose:
            reply = await ctx.request(CLOSE_DAY, request)
            if not isinstance(reply, DayClose):
                raise TypeError(f"{CLOSE_DAY} answered {type(reply).__name__}, not DayClose")
            return reply

        async def publish(channel: str, payload: Payload, key: str | None) -> None:
            await ctx.publish(channel, payload, key=key)

        async def alert(name: str, message: str, severity: Any, labels: dict[str, str]) -> None:
            await ctx.alert(name, message, severity=severity, labels=labels)

        self.service = SettlementService(
            ctx.store, self.config, ctx.clock, close_day, publish=publish, alert=alert
        )
        self._busy = False
        self.queries = SettlementQueries(ctx.store)
        ctx.serve(SETTLEMENTS, self.queries.settlements)
        ctx.serve(MEMBER_SETTLEMENTS, self.queries.member_settlements)
        await self._settle_due()  # the days missed while the node was down, in order
        if ctx.clock.is_simulated:
            ctx.subscribe(channels.EXCHANGE_DATA, self._on_tick)
        else:
            ctx.spawn("settle_due", self._settle_periodically)

    async def _settle_due(self) -> None:
        if self._busy:  # a settlement's own events arrive while it runs
            return
        self._busy = True
        try:
            await self.service.run_due()
        finally:
            self._busy = False

    async def _on_tick(self, _event: Event) -> None:
        if self.service.is_due(self.ctx.clock.now_ns()):
            await self._settle_due()

    async def _settle_periodically(self) -> None:
        while not await self.ctx.sleep(self.config.check_interval_s):
            if self.service.is_due(self.ctx.clock.now_ns()):
                await self._settle_due()

    async def stop(self) -> None:
        return None

    def health(self) -> PluginHealth:
        return PluginHealth(
            details={
                "days_settled": self.service.settled_count,
                "last_settled": self.service.last_settled,
            }
        )

    @classmethod
    async def read_status(  # type: ignore[override]
        cls, store: Store | None, config: DailySettlementConfig
    ) -> dict[str, Any] | None:
        if store is None:
            return None
        return settlement_report(await read_history(store))
