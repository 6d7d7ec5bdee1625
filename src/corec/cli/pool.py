"""``corec pool``: contributions, withdrawals, the pool's state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.table import Table

from corec.cli.common import (
    ConfigOption,
    console,
    fail,
    fmt_usd,
    load,
    print_json,
    run_async,
    with_stores,
)
from corec.core.clock import SystemClock
from corec.core.money import parse_decimal
from corec.messages.capital_data import WithdrawalQueued
from corec.plugins.capital_pool.config import CapitalPoolConfig
from corec.plugins.capital_pool.plugin import CapitalPoolPlugin
from corec.plugins.capital_pool.service import PoolService

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
