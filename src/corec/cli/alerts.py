"""``corec alerts``: list, show, acknowledge and silence alerts; test a receiver.

These commands work on the alert manager's database, next to a running node or without
one: a running node picks up acks and silences within a few seconds.
"""

from __future__ import annotations

import getpass
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from corec.cli.common import (
    EXIT_FAILURE,
    ConfigOption,
    console,
    fail,
    load,
    print_json,
    run_async,
    with_stores,
)
from corec.core.clock import SystemClock, format_ts
from corec.core.errors import ConfigError
from corec.core.notices import SEVERITIES
from corec.plugins.alert_manager import records
from corec.plugins.alert_manager.config import LOG_RECEIVER
from corec.plugins.alert_manager.delivery import send_test
from corec.plugins.alert_manager.plugin import AlertManagerPlugin, new_silence
from corec.plugins.alert_manager.receivers import resolve_receiver

app = typer.Typer(help="Alerts: list, show, ack, silence, test a receiver.", no_args_is_help=True)
NAME = AlertManagerPlugin.name
STATES = ("firing", "resolved", "expired")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration_s(text: str) -> Decimal:
    """``'90s'``, ``'30m'``, ``'2h'``, ``'1d'``, ``'1h30m'`` → seconds.

    Raises:
        ValueError: anything else, or a zero duration.
    """
    compact = text.strip().lower()
    parts = _DURATION.findall(compact)
    if not parts or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"--for {text!r}: expected a duration like 90s, 30m, 2h, 1d or 1h30m")
    seconds = sum((Decimal(n) * _UNIT_S[u] for n, u in parts), Decimal(0))
    if seconds <= 0:
        raise ValueError(f"--for {text!r}: the duration must be positive")
    return seconds


def _open(config: Path | None) -> tuple[Any, Any]:
    cfg, classes = load(config)
    if NAME not in cfg.sections:
        fail(f"the {NAME} plugin is not enabled in {cfg.source}")
    return cfg, classes


def _display(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k != "labels_json"}
    for key in ("first_ts_ns", "last_ts_ns", "ends_ts_ns", "acked_ts_ns"):
        if out.get(key) is not None:
            out[key.removesuffix("_ns")] = format_ts(out[key])
    return out


@app.command("list")
def list_(
    config: Path | None = ConfigOption,
    severity: str | None = typer.Option(None, "--severity", help="Only this severity."),
    state: str | None = typer.Option(None, "--state", help="firing, resolved or expired."),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many, newest first."),
    offset: int = typer.Option(0, "--offset", min=0, help="Skip this many first."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """Stored alerts, newest first."""
    if severity is not None and severity not in SEVERITIES:
        fail(f"--severity must be one of {', '.join(SEVERITIES)}, got {severity!r}")
    if state is not None and state not in STATES:
        fail(f"--state must be one of {', '.join(STATES)}, got {state!r}")
    cfg, classes = _open(config)

    async def work(stores: dict[str, Any]) -> list[dict[str, Any]]:
        store = stores[NAME]
        if store is None:
            return []
        return await records.list_alerts(
            store, severity=severity, state=state, limit=limit, offset=offset
        )

    rows = [
        _display(r)
        for r in run_async(lambda: with_stores(cfg, classes, [NAME], work, migrate=False))
    ]
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{len(rows)} alert(s), newest first", title_justify="left")
    for column in ("id", "first seen", "severity", "state", "name", "x", "ack", "message"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["alert_id"],
            row["first_ts"],
            row["severity"],
            row["state"],
            row["name"],
            str(row["occurrences"]),
            row["acked_by"] or "",
            row["message"],
        )
    console.print(table)


@app.command("show")
def show(
    alert_id: str = typer.Argument(..., help="The alert's id (from `corec alerts list`)."),
    config: Path | None = ConfigOption,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """One alert: its labels, state, acknowledgement, notifications and every delivery
    attempt."""
    cfg, classes = _open(config)

    async def work(stores: dict[str, Any]) -> dict[str, Any] | None:
        store = stores[NAME]
        return None if store is None else await records.get_alert(store, alert_id)

    row = run_async(lambda: with_stores(cfg, classes, [NAME], work, migrate=False))
    if row is None:
        fail(f"no alert with id {alert_id!r} (see `corec alerts list`)")
    row = _display(row)
    for note in row["notifications"]:
        for key in ("created_ts_ns", "done_ts_ns"):
            if note.get(key) is not None:
                note[key.removesuffix("_ns")] = format_ts(note[key])
        for attempt in note["attempts"]:
            attempt["ts"] = format_ts(attempt["ts_ns"])
    if as_json:
        print_json(row)
        return
    console.print(f"[bold]{row['severity'].upper()}[/] {row['name']} · {row['state']}")
    console.print(row["message"], highlight=False)
    console.print(f"id {row['alert_id']} · fingerprint {row['fingerprint']} · from {row['source']}")
    console.print(
        f"first {row['first_ts']} · last {row['last_ts']} · {row['occurrences']} time(s)"
        + (f" · ended {row['ends_ts']}" if row.get("ends_ts") else "")
    )
    if row.get("acked_ts"):
        console.print(f"acknowledged by {row['acked_by']} at {row['acked_ts']}")
    if row.get("muted_by"):
        console.print(f"muted at receipt by {row['muted_by']}")
    console.print("labels: " + ", ".join(f"{k}={v}" for k, v in sorted(row["labels"].items())))
    table = Table(title="notifications", title_justify="left")
    for column in ("created", "receiver", "status", "attempts", "last outcome / error"):
        table.add_column(column)
    for note in row["notifications"]:
        last = note["attempts"][-1] if note["attempts"] else None
        table.add_row(
            note.get("created_ts", ""),
            note["receiver"],
            note["status"],
            str(len(note["attempts"])),
            "" if last is None else f"{last['outcome']} {last['error'] or ''}".strip(),
        )
    console.print(table)


@app.command("ack")
def ack(
    alert_id: str = typer.Argument(..., help="The alert's id (from `corec alerts list`)."),
    by: str = typer.Option(None, "--by", help="Who acknowledges (default: your login)."),
    config: Path | None = ConfigOption,
) -> None:
    """Acknowledge an alert: it is no longer re-notified while it keeps firing."""
    cfg, classes = _open(config)
    who = by or getpass.getuser()

    async def work(stores: dict[str, Any]) -> dict[str, Any]:
        store = stores[NAME]
        if store is None:
            raise KeyError(f"no alert with id {alert_id!r}: no alert was ever recorded")
        return await records.ack_alert(store, alert_id, who, SystemClock().now_ns())

    try:
        row = run_async(lambda: with_stores(cfg, classes, [NAME], work, migrate=True))
    except KeyError as exc:
        fail(str(exc.args[0]))
    console.print(
        f"acknowledged {row['alert_id']} ({row['name']}) by {row['acked_by']} "
        f"at {format_ts(row['acked_ts_ns'])}"
    )


@app.command("silence")
def silence(
    match: list[str] = typer.Option(
        ..., "--match", help="LABEL=VALUE (also !=, =~REGEX, !~REGEX); repeat: all must match."
    ),
    for_: str = typer.Option(..., "--for", help="How long: 90s, 30m, 2h, 1d, 1h30m."),
    comment: str = typer.Option("", "--comment", help="Why (shown in `alerts silences`)."),
    by: str = typer.Option(None, "--by", help="Who silences (default: your login)."),
    config: Path | None = ConfigOption,
    as_json: bool = typer.Option(False, "--json", help="Print the silence as JSON."),
) -> None:
    """Mute matching alerts from now for a while (stored and published; not notified)."""
    try:
        duration_s = parse_duration_s(for_)
        made = new_silence(
            match, duration_s, SystemClock().now_ns(), by or getpass.getuser(), comment
        )
    except ValueError as exc:
        fail(str(exc))
    cfg, classes = _open(config)

    async def work(stores: dict[str, Any]) -> None:
        await records.add_silence(stores[NAME], made, made.starts_ts_ns)

    run_async(lambda: with_stores(cfg, classes, [NAME], work, migrate=True))
    info = {
        "silence_id": made.silence_id,
        "matchers": [str(x) for x in made.matchers],
        "starts": format_ts(made.starts_ts_ns),
        "ends": format_ts(made.ends_ts_ns),
        "created_by": made.created_by,
        "comment": made.comment,
    }
    if as_json:
        print_json(info)
        return
    console.print(
        f"silence {made.silence_id}: {', '.join(info['matchers'])} until {info['ends']}",
        highlight=False,
    )


@app.command("silences")
def silences(
    config: Path | None = ConfigOption,
    all_: bool = typer.Option(False, "--all", help="Include ended silences."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """Silences in force (``--all``: also ended ones)."""
    cfg, classes = _open(config)
    now_ns = SystemClock().now_ns()

    async def work(stores: dict[str, Any]) -> list[Any]:
        store = stores[NAME]
        if store is None:
            return []
        return await records.load_silences(store, now_ns=None if all_ else now_ns)

    found = run_async(lambda: with_stores(cfg, classes, [NAME], work, migrate=False))
    rows = [
        {
            "silence_id": s.silence_id,
            "matchers": [str(x) for x in s.matchers],
            "starts": format_ts(s.starts_ts_ns),
            "ends": format_ts(s.ends_ts_ns if s.expired_ts_ns is None else s.expired_ts_ns),
            "active": s.active(now_ns),
            "created_by": s.created_by,
            "comment": s.comment,
        }
        for s in found
    ]
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{len(rows)} silence(s)", title_justify="left")
    for column in ("id", "matchers", "from", "until", "active", "by", "comment"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["silence_id"],
            ", ".join(r["matchers"]),
            r["starts"],
            r["ends"],
            "yes" if r["active"] else "no",
            r["created_by"],
            r["comment"],
        )
    console.print(table)


@app.command("unsilence")
def unsilence(
    silence_id: str = typer.Argument(..., help="The silence's id (from `alerts silences`)."),
    config: Path | None = ConfigOption,
) -> None:
    """End a silence now."""
    cfg, classes = _open(config)

    async def work(stores: dict[str, Any]) -> Any:
        store = stores[NAME]
        if store is None:
            raise KeyError(f"no silence with id {silence_id!r}")
        return await records.expire_silence(store, silence_id, SystemClock().now_ns())

    try:
        ended = run_async(lambda: with_stores(cfg, classes, [NAME], work, migrate=False))
    except KeyError as exc:
        fail(str(exc.args[0]))
    end = ended.expired_ts_ns if ended.expired_ts_ns is not None else ended.ends_ts_ns
    console.print(f"silence {ended.silence_id} ended at {format_ts(end)}")


@app.command("test")
def test(
    receiver: str = typer.Argument(..., help="A receiver's name from the configuration."),
    config: Path | None = ConfigOption,
    timeout_s: float = typer.Option(10.0, "--timeout", min=0.1, help="Seconds per URL."),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON."),
) -> None:
    """Send a test notification to every URL of RECEIVER now and report each outcome
    (exit 1 when any URL failed). Nothing is queued or retried."""
    cfg, _ = _open(config)
    section = cfg.sections[NAME]
    known = {r.name: r for r in section.receivers}  # type: ignore[attr-defined]
    if receiver == LOG_RECEIVER:
        fail("the log receiver always works: notifications are written to the node's log")
    if receiver not in known:
        names = ", ".join(sorted(known)) or "none configured"
        fail(f"no receiver named {receiver!r} in {cfg.source} (receivers: {names})")
    try:
        resolved = resolve_receiver(known[receiver])
    except ConfigError as exc:
        fail(str(exc))
    results = run_async(lambda: send_test(resolved, SystemClock().now_ns(), timeout_s))
    rows = [
        {
            "url": r.url,
            "ok": r.result.ok,
            "status_code": r.result.status_code,
            "retry_after_s": r.result.retry_after_s,
            "error": r.result.error,
            "duration_ms": r.duration_ms,
        }
        for r in results
    ]
    if as_json:
        print_json({"receiver": receiver, "results": rows})
    else:
        for row in rows:
            outcome = "sent" if row["ok"] else f"FAILED: {row['error']}"
            console.print(
                f"{receiver} {row['url']}: {outcome} ({row['duration_ms']} ms)", highlight=False
            )
    if not all(r["ok"] for r in rows):
        raise typer.Exit(EXIT_FAILURE)
