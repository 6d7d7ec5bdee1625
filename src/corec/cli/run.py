"""``corec run``: start a node, show progress, print a summary when it stops."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from corec.cli.common import ConfigOption, console, fmt_usd, load, print_json, run_async
from corec.core.config import CorecConfig
from corec.core.logging import close_logging
from corec.core.nucleus import Node
from corec.core.plugin import Plugin

PROGRESS_REFRESH_S = 0.2
EXIT_INTERRUPTED = 130


class _Signals:
    """SIGINT/SIGTERM for the whole ``corec run`` command, not only while the event loop
    runs: the first calls the attached ``on_signal`` (asks the node to stop gracefully,
    also during its start), one while nothing is attached is ignored (the summary is on
    its way), a second one while stopping exits at once."""

    def __init__(self) -> None:
        self._on_signal: Callable[[str], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._received = 0

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def attach(self, on_signal: Callable[[str], None], loop: asyncio.AbstractEventLoop) -> None:
        self._on_signal, self._loop = on_signal, loop

    def detach(self) -> None:
        self._on_signal = self._loop = None

    def _handle(self, signum: int, _frame: Any) -> None:
        on_signal, loop = self._on_signal, self._loop
        if on_signal is None or loop is None:
            return  # nothing running any more: the summary is being printed
        self._received += 1
        if self._received > 1:
            os._exit(EXIT_INTERRUPTED)
        loop.call_soon_threadsafe(on_signal, f"signal {signal.Signals(signum).name}")


_signals = _Signals()


def run(
    config: Path | None = ConfigOption,
    duration: float | None = typer.Option(
        None,
        "--duration",
        min=0.0,
        help="Stop after this many seconds (default: until done or Ctrl-C).",
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print the summary as JSON (no progress bar)."
    ),
    keep_serving: bool = typer.Option(
        False,
        "--keep-serving",
        help="When a replay ends, print the summary and keep the API and dashboard "
        "serving until Ctrl-C (what `make run` does).",
    ),
) -> None:
    """Run a node: market data in, strategies, the pool, alerts. Prints a summary at the end."""
    cfg, classes = load(config, log_to_file=True)
    _signals.install()
    show = (lambda s: print_json(s)) if as_json else print_summary
    try:
        summary, shown = run_async(
            lambda: _run(
                cfg,
                classes,
                duration,
                show_progress=not as_json,
                keep_serving=show if keep_serving else None,
            )
        )
    finally:
        close_logging()
    if not shown:
        show(summary)
    # the handler stays until the process exits: a signal now is ignored, not fatal
    if summary["failed_plugins"]:
        raise typer.Exit(1)


async def _run(
    cfg: CorecConfig,
    classes: dict[str, type[Plugin]],
    duration: float | None,
    *,
    show_progress: bool,
    keep_serving: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[dict[str, Any], bool]:
    """Run the node; returns the summary and whether it was shown already (when the
    node kept serving after a replay ended, see ``--keep-serving``)."""
    node = Node(cfg, classes)
    started = time.perf_counter()
    loop = asyncio.get_running_loop()
    _signals.attach(node.request_shutdown, loop)
    shown = False
    try:
        await node.start()
        before = await node.status()
        progress_task = (
            asyncio.create_task(_show_progress(node))
            if show_progress and console.is_terminal
            else None
        )
        try:
            reason = await node.run(duration_s=duration, handle_signals=False)
            url = _api_url(node)
            if keep_serving is not None and url and not reason.startswith("signal"):
                if progress_task is not None:
                    progress_task.cancel()
                    await asyncio.gather(progress_task, return_exceptions=True)
                    progress_task = None
                after = await node.status()
                keep_serving(
                    build_summary(
                        cfg, reason, time.perf_counter() - started, before, after, node.health()
                    )
                )
                shown = True
                await _serve_until_signal(cfg, url, loop)
        finally:
            await node.stop()
            if progress_task is not None:
                progress_task.cancel()
                await asyncio.gather(progress_task, return_exceptions=True)
        elapsed = time.perf_counter() - started
        after = await node.status()
        health = node.health()
    finally:
        _signals.detach()
        await node.close()
    return build_summary(cfg, reason, elapsed, before, after, health), shown


def _api_url(node: Node) -> str | None:
    """Where the node's API listens, if it runs one."""
    if "api" not in node.classes:
        return None
    url = node.health()["plugins"].get("api", {}).get("url")
    return url if isinstance(url, str) else None


async def _serve_until_signal(cfg: CorecConfig, url: str, loop: asyncio.AbstractEventLoop) -> None:
    """Keep the node (its API and dashboard) up until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    _signals.attach(lambda _reason: stop.set(), loop)
    console.print(f"\n[bold]Dashboard and API:[/bold] {url}  (API docs: {url}docs)")
    password_file = cfg.node.data_dir / "initial-admin-password"
    if password_file.exists():
        console.print(f"Log in as [bold]admin[/bold] with the password in {password_file}")
    console.print("The replay has ended; the node keeps serving. Ctrl-C stops it.")
    await stop.wait()


async def _show_progress(node: Node) -> None:
    columns = (
        TextColumn("[bold]replay"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("bars"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("replay", total=None)
        while True:
            sync = node.health()["plugins"].get("exchange_sync", {})
            done = sync.get("progress", {}).get("done")
            total = sync.get("progress", {}).get("total")
            if done is not None:
                progress.update(task, completed=done, total=total)
            await asyncio.sleep(PROGRESS_REFRESH_S)


def build_summary(
    cfg: CorecConfig,
    reason: str,
    elapsed_s: float,
    before: dict[str, Any],
    after: dict[str, Any],
    health: dict[str, Any],
) -> dict[str, Any]:
    """The run summary: market data, trading, the pool at start and end, members, alerts."""
    plugins = health["plugins"]
    sync = plugins.get("exchange_sync", {})
    bars = sync.get("bars_processed", sync.get("tickers_published", 0))
    pool_before, pool_after = before.get("pool", {}), after.get("pool", {})
    return {
        "config": cfg.source,
        "stopped_because": reason,
        "elapsed_s": round(elapsed_s, 3),
        "bars_per_s": round(bars / elapsed_s, 1) if elapsed_s > 0 else None,
        "market_data": {
            "bars_processed": bars,
            "malformed_rows": sync.get("malformed_rows", 0),
            "problems": sync.get("problems", []),
            "tickers_stored": after.get("exchange_sync", {}).get("tickers_stored"),
            "last_ts": after.get("exchange_sync", {}).get("last_ts"),
            "exchanges": {
                name: {
                    k: e.get(k)
                    for k in ("breaker_state", "polls", "failed_polls", "tickers", "last_error")
                }
                for name, e in sync.get("exchanges", {}).items()
            },
        },
        "trading": after.get("trading", {}),
        "pool": {
            "start": {k: pool_before.get(k) for k in ("nav_usd", "nav_per_unit", "units", "phase")},
            "end": {
                k: pool_after.get(k)
                for k in (
                    "nav_usd",
                    "nav_per_unit",
                    "units",
                    "phase",
                    "cash_usd",
                    "allocated_usd",
                    "unrealized_pnl_usd",
                )
            },
        },
        "members": pool_after.get("members", []),
        "settlement": after.get("settlement"),
        "alerts": after.get("alerts", {}),
        "dead_letters": sum(health["bus"]["dead_letters"].values()),
        "failed_plugins": sorted(name for name, p in plugins.items() if p.get("state") == "failed"),
    }


def print_summary(s: dict[str, Any]) -> None:
    """The summary as a table for people."""
    md, tr, pool, alerts = s["market_data"], s["trading"], s["pool"], s["alerts"]
    table = Table(
        title=f"CoreC run summary ({s['config']})", show_header=False, title_justify="left"
    )
    table.add_column(style="bold")
    table.add_column()
    table.add_row(
        "stopped",
        f"{s['stopped_because']} after {s['elapsed_s']:.1f} s ({s['bars_per_s'] or 0:,.0f} bars/s)",
    )
    table.add_row(
        "market data",
        (
            f"{md['bars_processed']:,} tickers received"
            if md["exchanges"]
            else f"{md['bars_processed']:,} bars processed, "
            f"{md['malformed_rows']} malformed rows skipped"
        )
        + f", {md['tickers_stored'] or 0:,} tickers stored (last {md['last_ts']})",
    )
    for name, e in md["exchanges"].items():
        table.add_row(
            f"  {name}",
            f"breaker {e['breaker_state']}: {e['tickers']:,} tickers in {e['polls']} poll(s), "
            f"{e['failed_polls']} failed"
            + (f" ({e['last_error'][:60]})" if e["failed_polls"] else ""),
        )
    for problem in md["problems"][:3]:
        table.add_row("", f"[yellow]{problem}")
    if tr:
        table.add_row(
            "trading",
            f"{tr['trades']} trades ({tr['wins']} won, {tr['losses']} lost), realized PnL "
            f"{fmt_usd(tr['realized_pnl_usd'])} USD after {fmt_usd(tr['fees_usd'])} USD fees, "
            f"{tr['open_positions']} position(s) open",
        )
    start, end = pool["start"], pool["end"]
    if end.get("nav_usd") is not None:
        table.add_row(
            "NAV",
            f"{fmt_usd(start['nav_usd'])} -> {fmt_usd(end['nav_usd'])} USD ({start['phase']} -> {end['phase']})",
        )
        table.add_row("NAV per unit", f"{start['nav_per_unit']} -> {end['nav_per_unit']}")
        table.add_row(
            "pool",
            f"cash {fmt_usd(end['cash_usd'])} USD, allocated {fmt_usd(end['allocated_usd'])} USD, "
            f"unrealized {fmt_usd(end['unrealized_pnl_usd'])} USD, {end['units']} units",
        )
    for member in s["members"]:
        table.add_row(
            f"  {member['member']}",
            f"{member['units']} units, equity {fmt_usd(member['equity_usd'])} USD",
        )
    if settled := s.get("settlement"):
        worst = settled["worst_day"]
        table.add_row(
            "settlement",
            f"{settled['days']} day(s) settled, {settled['first_date']} to {settled['last_date']}; "
            f"worst day {worst['date']} ({worst['day_return'] * 100:+.2f}%); distributions "
            f"{fmt_usd(settled['distributions_usd'])} USD",
        )
    if alerts:
        counts = ", ".join(f"{sev} {n}" for sev, n in alerts["by_severity"].items())
        table.add_row("alerts", f"{alerts['total']} ({counts})")
    if s["dead_letters"]:
        table.add_row("dead letters", f"[red]{s['dead_letters']}")
    if s["failed_plugins"]:
        table.add_row("failed plugins", f"[red]{', '.join(s['failed_plugins'])}")
    console.print(table)
