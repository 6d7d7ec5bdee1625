"""``corec pool``: contributions, withdrawals, the pool's state."""

from __future__ import annotations

import csv
import sys
from collections.abc import Awaitable, Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

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
from corec.core.clock import SystemClock, format_ts
from corec.core.money import parse_decimal
from corec.messages.capital_data import WithdrawalQueued
from corec.plugins.capital_pool.config import CapitalPoolConfig
from corec.plugins.capital_pool.plugin import CapitalPoolPlugin
from corec.plugins.capital_pool.queries import read_statement
from corec.plugins.capital_pool.service import PoolService
from corec.plugins.capital_pool.statement import Statement

app = typer.Typer(
    help="The shared pool: contributions, withdrawals, NAV and members.", no_args_is_help=True
)
T = TypeVar("T")
NAME = CapitalPoolPlugin.name


def _amount(text: str) -> Decimal:
    try:
        return parse_decimal(text, field="AMOUNT_USD")
    except ValueError as exc:
        fail(str(exc))


def with_pool_service(config: Path | None, command: Callable[[PoolService], Awaitable[T]]) -> T:
    """Run ``command`` on the pool's service, opened over its (migrated) store."""
    cfg, classes = load(config, log_to_file=True)
    if NAME not in cfg.sections:
        fail(f"the {NAME} plugin is not enabled in {cfg.source}")
    section = cfg.sections[NAME]
    assert isinstance(section, CapitalPoolConfig)

    async def work(stores: dict[str, Any]) -> T:
        service = PoolService(stores[NAME], section, SystemClock())
        await service.open()
        # configured members may pay in before any node ran; nothing is written unless
        # the command is accepted (the node records opening contributions, not the CLI)
        service.know_members(m.name for m in section.members)
        return await command(service)

    return run_async(lambda: with_stores(cfg, classes, [NAME], work, migrate=True))


def _flow(
    config: Path | None, kind: str, member: str, amount_text: str, flow_id: str | None
) -> Any:
    amount = _amount(amount_text)
    if kind == "contribution":
        return with_pool_service(
            config, lambda service: service.contribute(member, amount, flow_id)
        )
    return with_pool_service(config, lambda service: service.withdraw(member, amount, flow_id))


@app.command()
def contribute(
    member: str = typer.Argument(..., help="The member paying in."),
    amount_usd: str = typer.Argument(
        ..., metavar="AMOUNT_USD", help="Amount in USD (whole cents)."
    ),
    flow_id: str | None = typer.Option(
        None, "--id", help="Client id: the same id is recorded once."
    ),
    config: Path | None = ConfigOption,
) -> None:
    """Record a contribution; units are issued at the current NAV per unit (rounded down)."""
    record = _flow(config, "contribution", member, amount_usd, flow_id)
    console.print(
        f"contribution {record.contribution_id}: {record.member} +{fmt_usd(record.amount_usd)} USD -> "
        f"{record.units} units at NAV per unit {record.nav_per_unit}",
        highlight=False,
    )


@app.command()
def withdraw(
    member: str = typer.Argument(..., help="The member taking money out."),
    amount_usd: str = typer.Argument(
        ..., metavar="AMOUNT_USD", help="Amount in USD (whole cents)."
    ),
    flow_id: str | None = typer.Option(
        None, "--id", help="Client id: the same id is recorded once."
    ),
    config: Path | None = ConfigOption,
) -> None:
    """Pay a withdrawal from free cash, at most the member's equity (units burned round
    up). When free cash is short (out in trades) it is queued, and paid first in, first
    out as allocations are released; `corec pool cancel-withdrawal ID` cancels it."""
    record = _flow(config, "withdrawal", member, amount_usd, flow_id)
    if isinstance(record, WithdrawalQueued):
        console.print(
            f"withdrawal {record.withdrawal_id}: {record.member} -{fmt_usd(record.amount_usd)} "
            f"USD queued (free cash is out in trades; {fmt_usd(record.ahead_usd)} USD ahead "
            "of it), paid as allocations are released",
            highlight=False,
        )
        return
    console.print(
        f"withdrawal {record.withdrawal_id}: {record.member} -{fmt_usd(record.amount_usd)} USD, "
        f"{record.units} units burned at NAV per unit {record.nav_per_unit}",
        highlight=False,
    )


@app.command("cancel-withdrawal")
def cancel_withdrawal(
    withdrawal_id: str = typer.Argument(..., metavar="ID", help="The queued withdrawal's id."),
    config: Path | None = ConfigOption,
) -> None:
    """Cancel a queued withdrawal (one already paid cannot be)."""
    record = with_pool_service(config, lambda service: service.cancel_withdrawal(withdrawal_id))
    console.print(
        f"withdrawal {record.withdrawal_id}: {record.member} {fmt_usd(record.amount_usd)} USD "
        "cancelled",
        highlight=False,
    )


@app.command()
def show(
    config: Path | None = ConfigOption,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """NAV, NAV per unit, cash, allocations, phase, and each member's units and equity."""
    cfg, classes = load(config)
    if NAME not in cfg.sections:
        fail(f"the {NAME} plugin is not enabled in {cfg.source}")

    async def work(stores: dict[str, Any]) -> dict[str, Any]:
        return await CapitalPoolPlugin.read_status(stores[NAME], cfg.sections[NAME])  # type: ignore[arg-type]

    report = run_async(lambda: with_stores(cfg, classes, [NAME], work, migrate=False))
    if as_json:
        print_json(report)
        return
    table = Table(
        title=f"Pool: NAV {fmt_usd(report['nav_usd'])} USD, {report['nav_per_unit']} per unit",
        title_justify="left",
    )
    for column in ("member", "units", "equity (USD)"):
        table.add_column(column, justify="right" if column != "member" else "left")
    for m in report["members"]:
        table.add_row(m["member"], str(m["units"]), fmt_usd(m["equity_usd"]))
    console.print(table)
    console.print(
        f"cash {fmt_usd(report['cash_usd'])} USD · allocated {fmt_usd(report['allocated_usd'])} USD · "
        f"unrealized {fmt_usd(report['unrealized_pnl_usd'])} USD · phase {report['phase']} "
        f"(risk per trade {report['risk_per_trade']})",
        highlight=False,
    )


def parse_date(text: str | None, option: str) -> date | None:
    """``YYYY-MM-DD`` → date (exit 2 with the option's name when malformed)."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"{option}: expected a date as YYYY-MM-DD, got {text!r}")


def statement_rows(s: Statement) -> list[dict[str, Any]]:
    """The statement as rows: opening, one per flow, closing (for CSV and JSON)."""
    rows = [
        {
            "ts": format_ts(s.opening.ts_ns),
            "kind": "opening",
            "id": "",
            "amount_usd": "",
            "units": "",
            "nav_per_unit": s.opening.nav_per_unit,
            "units_after": s.opening.units,
            "equity_usd": s.opening.equity_usd,
        }
    ]
    for line in s.lines:
        f = line.flow
        rows.append(
            {
                "ts": format_ts(f.ts_ns),
                "kind": f.kind,
                "id": f.flow_id,
                "amount_usd": f.amount_usd if f.kind == "contribution" else -f.amount_usd,
                "units": f.units if f.kind == "contribution" else -f.units,
                "nav_per_unit": f.nav_per_unit,
                "units_after": line.units_after,
                "equity_usd": "",
            }
        )
    rows.append(
        {
            "ts": format_ts(s.closing.ts_ns),
            "kind": "closing",
            "id": "",
            "amount_usd": "",
            "units": "",
            "nav_per_unit": s.closing.nav_per_unit,
            "units_after": s.closing.units,
            "equity_usd": s.closing.equity_usd,
        }
    )
    return rows


@app.command()
def statement(
    member: str = typer.Argument(..., help="The member."),
    from_date: str | None = typer.Option(
        None, "--from", help="First day (YYYY-MM-DD, UTC); default their first flow's day."
    ),
    to_date: str | None = typer.Option(
        None, "--to", help="Last day, inclusive (YYYY-MM-DD, UTC); default today."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    as_csv: bool = typer.Option(False, "--csv", help="Print the lines as CSV."),
    config: Path | None = ConfigOption,
) -> None:
    """A member's flows, units, NAV per unit, equity and returns over a period: opening
    and closing position, every contribution, withdrawal and distribution with the units
    it moved, the period's PnL, the time-weighted return (NAV per unit) and the
    money-weighted return (XIRR of the member's own flows, annual)."""
    if as_json and as_csv:
        fail("--json and --csv: choose one")
    start, end = parse_date(from_date, "--from"), parse_date(to_date, "--to")

    s = with_pool_service(config, lambda service: read_statement(service, member, start, end))
    summary = {
        "member": s.member,
        "from": s.from_date.isoformat(),
        "to": s.to_date.isoformat(),
        "opening_equity_usd": s.opening.equity_usd,
        "closing_equity_usd": s.closing.equity_usd,
        "opening_units": s.opening.units,
        "closing_units": s.closing.units,
        "opening_nav_per_unit": s.opening.nav_per_unit,
        "closing_nav_per_unit": s.closing.nav_per_unit,
        "contributions_usd": s.contributions_usd,
        "withdrawals_usd": s.withdrawals_usd,
        "distributions_usd": s.distributions_usd,
        "net_flow_usd": s.net_flow_usd,
        "pnl_usd": s.pnl_usd,
        "time_weighted_return": s.time_weighted_return,
        "money_weighted_return": s.money_weighted_return,
        "valuation": s.closing.valuation,
    }
    rows = statement_rows(s)
    if as_json:
        print_json({**summary, "lines": rows})
        return
    if as_csv:
        writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return
    table = Table(
        title=f"Statement of {s.member}, {s.from_date} to {s.to_date} (UTC)", title_justify="left"
    )
    for column in (
        "when (UTC)",
        "what",
        "USD",
        "units",
        "NAV per unit",
        "units after",
        "equity USD",
    ):
        table.add_column(column, justify="left" if column in ("when (UTC)", "what") else "right")
    for r in rows:
        table.add_row(
            str(r["ts"]),
            f"{r['kind']} {r['id']}".strip(),
            fmt_usd(r["amount_usd"]) if r["amount_usd"] != "" else "",
            str(r["units"]),
            str(r["nav_per_unit"]),
            str(r["units_after"]),
            fmt_usd(r["equity_usd"]) if r["equity_usd"] != "" else "",
        )
    console.print(table)
    console.print(
        f"in {fmt_usd(s.contributions_usd)} USD · out {fmt_usd(s.withdrawals_usd)} USD · "
        f"distributed {fmt_usd(s.distributions_usd)} USD · PnL {fmt_usd(s.pnl_usd)} USD · "
        f"time-weighted {fmt_pct(s.time_weighted_return)} · money-weighted "
        f"{fmt_pct(s.money_weighted_return)} a year",
        highlight=False,
    )
