"""``corec alerts``: the stored alerts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from corec.cli.common import ConfigOption, console, fail, load, print_json, run_async, with_stores
from corec.core.clock import format_ts
from corec.core.notices import SEVERITIES
from corec.plugins.alert_manager.plugin import AlertManagerPlugin, list_alerts

app = typer.Typer(help="Alerts recorded by the alert manager.", no_args_is_help=True)
NAME = AlertManagerPlugin.name


@app.command("list")
def list_(
    config: Path | None = ConfigOption,
    severity: str | None = typer.Option(None, "--severity", help="Only this severity."),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many, newest first."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """Stored alerts, newest first."""
    if severity is not None and severity not in SEVERITIES:
        fail(f"--severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    cfg, classes = load(config)
    if NAME not in cfg.sections:
        fail(f"the {NAME} plugin is not enabled in {cfg.source}")

    async def work(stores: dict[str, Any]) -> list[dict[str, Any]]:
        store = stores[NAME]
        return [] if store is None else await list_alerts(store, severity=severity, limit=limit)

    rows = run_async(lambda: with_stores(cfg, classes, [NAME], work, migrate=False))
    for row in rows:
        row["first_ts"] = format_ts(row["first_ts_ns"])
        row["last_ts"] = format_ts(row["last_ts_ns"])
        row.pop("labels_json", None)
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{len(rows)} alert(s), newest first", title_justify="left")
    for column in ("first seen", "severity", "name", "x", "message"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["first_ts"], row["severity"], row["name"], str(row["occurrences"]), row["message"]
        )
    console.print(table)
