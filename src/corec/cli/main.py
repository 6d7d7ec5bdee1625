"""The ``corec`` command: ``run``, ``status``, ``exchanges``, ``prices``, ``pool``,
``members``, ``settlement``, ``alerts``, ``db``."""

from __future__ import annotations

import typer

from corec.cli import alerts, db, members, pool, settlement, users
from corec.cli.market import exchanges, prices
from corec.cli.run import run
from corec.cli.status import status

app = typer.Typer(
    name="corec",
    help="CoreC: a shared crypto trading pool for a small group.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command()(run)
app.command()(status)
app.command()(exchanges)
app.command()(prices)
app.add_typer(pool.app, name="pool")
app.add_typer(members.app, name="members")
app.add_typer(settlement.app, name="settlement")
app.add_typer(alerts.app, name="alerts")
app.add_typer(db.app, name="db")
app.add_typer(users.app, name="users")


def main() -> None:
    """Entry point of the ``corec`` script."""
    app()
