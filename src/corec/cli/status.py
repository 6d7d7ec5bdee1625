"""``corec status``: what the stores say, with or without a running node."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from corec.cli.common import (
    ConfigOption,
    console,
    fmt_usd,
    load,
    print_json,
    run_async,
    with_stores,
)
from corec.core.nucleus import read_status


def status(
    config: Path | None = ConfigOption,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Pool, market data, trading and alerts, read from the plugins' databases."""
    cfg, classes = load(config)
    enabled = {name: classes[name] for name in cfg.sections}

    async def work() -> dict[str, Any]:
        async def read(stores: dict[str, Any]) -> dict[str, Any]:
            return await read_status(cfg, enabled, lambda name: stores.get(name))

        return await with_stores(cfg, classes, list(enabled), read, migrate=False)

    data = run_async(work)
    if as_json:
        print_json(data)
        return
    table = Table(title="CoreC status", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    pool = data.get("pool")
    if pool:
        table.add_row(
            "NAV",
            f"{fmt_usd(pool['nav_usd'])} USD, {pool['nav_per_unit']} per unit, {pool['units']} units",
        )
        table.add_row("phase", f"{pool['phase']} (risk per trade {pool['risk_per_trade']})")
        table.add_row(
            "cash / allocated",
            f"{fmt_usd(pool['cash_usd'])} / {fmt_usd(pool['allocated_usd'])} USD",
        )
        for m in pool["members"]:
            table.add_row(
                f"  {m['member']}", f"{m['units']} units, equity {fmt_usd(m['equity_usd'])} USD"
            )
    sync = data.get("exchange_sync")
    if sync:
        table.add_row("tickers stored", f"{sync['tickers_stored']:,} (last {sync['last_ts']})")
    trading = data.get("trading")
    if trading:
        table.add_row(
            "trades",
            f"{trading['trades']}, realized PnL {fmt_usd(trading['realized_pnl_usd'])} USD",
        )
    alerts = data.get("alerts")
    if alerts:
        table.add_row("alerts", f"{alerts['total']} " + str(alerts["by_severity"]))
    console.print(table)
