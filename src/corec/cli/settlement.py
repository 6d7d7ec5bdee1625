"""``corec settlement``: settle the pool's days on demand, list the settled days."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import typer
from rich.table import Table

from corec.cli.common import (
    ConfigOption,
    console,
    fail,
    fmt_pct,
    fmt_usd,
    load,
    print_json,
    run_async,
    with_stores,
)
from corec.cli.pool import parse_date
from corec.core.clock import SystemClock
from corec.messages.capital_data import DayCloseRequest
from corec.messages.settlement_data import DailySettlement
from corec.plugins.capital_pool.config import CapitalPoolConfig
from corec.plugins.capital_pool.day_close import close_day
from corec.plugins.capital_pool.plugin import CapitalPoolPlugin
from corec.plugins.capital_pool.service import PoolService
from corec.plugins.daily_settlement.config import DailySettlementConfig
from corec.plugins.daily_settlement.plugin import DailySettlementPlugin
from corec.plugins.daily_settlement.service import SettlementService, read_history

app = typer.Typer(
    help="Daily settlement: NAV, NAV per unit, members' returns and distributions per day.",
    no_args_is_help=True,
)
POOL, SETTLEMENT = CapitalPoolPlugin.name, DailySettlementPlugin.name
MAX_ROWS = 31


def _print(records: list[DailySettlement], title: str) -> None:
    shown = records[-MAX_ROWS:]
    if len(shown) < len(records):
        title += f" (the last {len(shown)} shown; --json prints all)"
    table = Table(title=title, title_justify="left")
    for column in (
        "date",
        "NAV USD",
        "NAV per unit",
        "day",
        "since start",
        "realized USD",
        "flows USD",
        "paid out USD",
    ):
        table.add_column(column, justify="left" if column == "date" else "right")
    for r in shown:
        table.add_row(
            r.date,
            fmt_usd(r.nav_usd),
            str(r.nav_per_unit),
            fmt_pct(r.day_return),
            fmt_pct(r.twr_since_inception),
            fmt_usd(r.realized_pnl_usd),
            fmt_usd(r.net_flows_usd),
            fmt_usd(r.distributions_usd),
        )
    console.print(table)
    if len(records) == 1:
        members = Table(title=f"Members at the close of {records[0].date}", title_justify="left")
        for column in (
            "member",
            "units",
            "equity USD",
            "PnL USD",
            "time-weighted",
            "money-weighted (a year)",
            "paid out USD",
        ):
            members.add_column(column, justify="left" if column == "member" else "right")
        for m in records[0].members:
            members.add_row(
                m.member,
                str(m.units),
                fmt_usd(m.equity_usd),
                fmt_usd(m.pnl_usd),
                fmt_pct(m.time_weighted_return),
                fmt_pct(m.money_weighted_return),
                fmt_usd(m.distribution_usd) + (" (queued)" if m.distribution_queued else ""),
            )
        console.print(members)


def _sections(config: Path | None) -> tuple[Any, Any, CapitalPoolConfig, DailySettlementConfig]:
    cfg, classes = load(config, log_to_file=True)
    for name in (POOL, SETTLEMENT):
        if name not in cfg.sections:
            fail(f"the {name} plugin is not enabled in {cfg.source}")
    pool, settlement = cfg.sections[POOL], cfg.sections[SETTLEMENT]
    assert isinstance(pool, CapitalPoolConfig) and isinstance(settlement, DailySettlementConfig)
    return cfg, classes, pool, settlement


@app.command("run")
def run_settlement(
    day: str | None = typer.Option(
        None, "--date", help="Settle up to this day (YYYY-MM-DD, UTC); default every day due."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the settlements as JSON."),
    config: Path | None = ConfigOption,
) -> None:
    """Settle the pool's days that are over and not settled yet, oldest first, up to
    --date: NAV and NAV per unit at each cut-off, members' units, equity, flows and
    returns, and distributions to members who do not reinvest. A day settled already
    is shown as it was settled (nothing changes)."""
    until = parse_date(day, "--date")
    cfg, classes, pool_cfg, settlement_cfg = _sections(config)
    clock = SystemClock()

    async def work(stores: dict[str, Any]) -> list[DailySettlement]:
        pool = PoolService(stores[POOL], pool_cfg, clock)
        await pool.open()
        await pool.reload()  # marks as stored by the node

        async def close(request: DayCloseRequest) -> Any:
            return await close_day(pool, request)

        service = SettlementService(stores[SETTLEMENT], settlement_cfg, clock, close)
        return await service.run(until)

    records = run_async(lambda: with_stores(cfg, classes, [POOL, SETTLEMENT], work, migrate=True))
    if as_json:
        print_json(msgspec.to_builtins(records))
        return
    if not records:
        console.print("nothing to settle: every day that is over is settled", highlight=False)
        return
    _print(records, f"Settled {len(records)} day(s)")


@app.command("list")
def list_settlements(
    from_date: str | None = typer.Option(None, "--from", help="First day (YYYY-MM-DD)."),
    to_date: str | None = typer.Option(None, "--to", help="Last day, inclusive (YYYY-MM-DD)."),
    as_json: bool = typer.Option(False, "--json", help="Print the settlements as JSON."),
    config: Path | None = ConfigOption,
) -> None:
    """The settled days (with members' figures when one day is shown)."""
    since, until = parse_date(from_date, "--from"), parse_date(to_date, "--to")
    cfg, classes, _, _ = _sections(config)

    async def work(stores: dict[str, Any]) -> list[DailySettlement]:
        if stores[SETTLEMENT] is None:
            return []
        return await read_history(stores[SETTLEMENT], since, until)

    records = run_async(lambda: with_stores(cfg, classes, [SETTLEMENT], work, migrate=False))
    if as_json:
        print_json(msgspec.to_builtins(records))
        return
    if not records:
        console.print("no settled days yet", highlight=False)
        return
    _print(records, f"{len(records)} settled day(s)")
