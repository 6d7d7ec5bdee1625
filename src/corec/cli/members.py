"""``corec members``: the pool's members."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from corec.cli.common import ConfigOption, console, fmt_usd, print_json
from corec.cli.pool import with_pool_service
from corec.plugins.capital_pool.queries import member_summaries
from corec.plugins.capital_pool.service import PoolService

app = typer.Typer(help="The pool's members.", no_args_is_help=True)


@app.command()
def add(
    name: str = typer.Argument(..., help="The member's name (lower-case letters, digits, _ . -)."),
    reinvest: bool = typer.Option(
        True,
        "--reinvest/--no-reinvest",
        help="Leave realized profit in the pool (default), or pay the member's share of "
        "each day's realized profit out at the daily settlement.",
    ),
    config: Path | None = ConfigOption,
) -> None:
    """Register a member; they hold no units until their first contribution."""
    added = with_pool_service(config, lambda service: service.add_member(name, reinvest=reinvest))
    choice = "reinvests profit" if reinvest else "profit paid out daily"
    state = "added" if added else "already a member"
    console.print(f"member {name}: {state} ({choice})", highlight=False)


@app.command("list")
def list_(
    config: Path | None = ConfigOption,
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """Every member: reinvest choice, units and equity at the latest marks."""

    async def members(service: PoolService) -> list[dict[str, Any]]:
        return [  # the figures capital_pool.members answers, as the API shows them
            {
                "member": s.member,
                "reinvest": s.reinvest,
                "units": s.units,
                "equity_usd": s.equity_usd,
            }
            for s in await member_summaries(service)
        ]

    rows = with_pool_service(config, members)
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{len(rows)} member(s)", title_justify="left")
    for column in ("member", "reinvest", "units", "equity (USD)"):
        table.add_column(column, justify="left" if column in ("member", "reinvest") else "right")
    for row in rows:
        table.add_row(
            row["member"],
            "yes" if row["reinvest"] else "no",
            str(row["units"]),
            fmt_usd(row["equity_usd"]),
        )
    console.print(table)
