"""``corec exchanges`` and ``corec prices``: exchange health and the latest prices."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import typer
from rich.table import Table

from corec.cli.common import ConfigOption, console, fail, load, print_json, run_async, with_stores
from corec.core.clock import NS_PER_S, format_ts
from corec.core.config import CorecConfig
from corec.core.money import canonical
from corec.messages.exchange_data import Ticker
from corec.messages.market_data import ConsolidatedQuote
from corec.plugins.exchange_sync.cache import matches, read_redis_tickers
from corec.plugins.exchange_sync.config import ExchangeSyncConfig
from corec.plugins.exchange_sync.health import ExchangeHealth
from corec.plugins.exchange_sync.plugin import ExchangeSyncPlugin
from corec.plugins.exchange_sync.storage import latest_stored_tickers, read_health, ticker_stats
from corec.plugins.market_monitor.analytics import spread_bps
from corec.plugins.market_monitor.config import MarketMonitorConfig
from corec.plugins.market_monitor.consolidate import consolidate

NAME = ExchangeSyncPlugin.name


def _sync_config(cfg: CorecConfig) -> ExchangeSyncConfig:
    section = cfg.sections.get(NAME)
    if not isinstance(section, ExchangeSyncConfig):
        fail(f"the {NAME} plugin is not enabled in {cfg.source}")
    return section


def exchanges(
    config: Path | None = ConfigOption,
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """Each exchange's breaker state, request latency (p50, p95), errors by kind and
    last success, as the running (or last) node stored them in ``exchange_health``."""
    cfg, classes = load(config)
    _sync_config(cfg)

    async def work(stores: dict[str, Any]) -> list[ExchangeHealth]:
        store = stores[NAME]
        return [] if store is None else await read_health(store)

    healths = run_async(lambda: with_stores(cfg, classes, [NAME], work, migrate=False))
    if as_json:
        print_json([h.as_json() for h in healths])
        return
    if not healths:
        console.print(
            "no exchange health recorded yet: run a node with exchange_sync.source: ccxt",
            highlight=False,
        )
        return
    table = Table(title="exchanges", title_justify="left")
    for column in (
        "exchange",
        "breaker",
        "mode",
        "p50 ms",
        "p95 ms",
        "requests",
        "failed polls",
        "errors by kind",
        "last success",
        "last error",
    ):
        table.add_column(column)
    for h in healths:
        table.add_row(
            h.exchange,
            h.breaker_state,
            h.mode,
            _text(h.latency_p50_ms),
            _text(h.latency_p95_ms),
            str(h.requests),
            f"{h.failed_polls}/{h.polls}",
            ", ".join(f"{k} {v}" for k, v in sorted(h.errors_by_kind.items())) or "-",
            format_ts(h.last_success_ts_ns) or "never",
            (h.last_error or "-")[:80],
        )
    console.print(table)


def prices(
    symbol: str | None = typer.Argument(
        None, help="A CCXT symbol (BTC/USDT:USDT) or a pair (BTC/USDT: spot and perpetuals)."
    ),
    config: Path | None = ConfigOption,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """The latest prices on every exchange and market, and the consolidated view per
    symbol: best bid and ask and where, spread, the gap between exchanges, basis.

    Read from Redis when ``exchange_sync.cache_url`` is set (what the running node
    holds), else from the ``tickers`` table (the newest of each instrument within
    ``cache_ttl_s``; for a replay, of the recording's last moment)."""
    cfg, classes = load(config)
    sync = _sync_config(cfg)
    monitor = cfg.sections.get("market_monitor")
    stale_after_s = (
        monitor.stale_after_s
        if isinstance(monitor, MarketMonitorConfig)
        else MarketMonitorConfig().stale_after_s
    )

    async def work(stores: dict[str, Any]) -> tuple[int, list[Ticker]]:
        if sync.cache_url is not None:
            return time.time_ns(), await read_redis_tickers(sync.cache_url, cfg.node.instance_id)
        store = stores[NAME]
        if store is None:
            return time.time_ns(), []
        now_ns = time.time_ns()
        if sync.source == "replay":  # the recording's time, not today's
            now_ns = (await ticker_stats(store))[1] or now_ns
        since = now_ns - int(sync.cache_ttl_s * NS_PER_S)
        return now_ns, await latest_stored_tickers(store, since_ns=since)

    as_of_ns, tickers = run_async(lambda: with_stores(cfg, classes, [NAME], work, migrate=False))
    tickers = [t for t in tickers if matches(t, None, None, symbol)]
    quotes = consolidate(tickers, now_ns=as_of_ns, stale_after_ns=int(stale_after_s * NS_PER_S))
    if as_json:
        print_json(
            {
                "as_of": format_ts(as_of_ns),
                "tickers": [msgspec.to_builtins(t) for t in tickers],
                "consolidated": [msgspec.to_builtins(q) for q in quotes],
            }
        )
        return
    if not tickers:
        where = "Redis" if sync.cache_url else "the tickers table"
        console.print(f"no prices in {where} yet", highlight=False)
        return
    console.print(_venues_table(tickers, as_of_ns))
    console.print(_consolidated_table(quotes))


def _venues_table(tickers: list[Ticker], as_of_ns: int) -> Table:
    table = Table(title=f"latest prices at {format_ts(as_of_ns)}", title_justify="left")
    for column in ("exchange", "market", "symbol", "bid", "ask", "last", "spread bps", "age s"):
        table.add_column(
            column, justify="left" if column in ("exchange", "market", "symbol") else "right"
        )
    for t in tickers:
        table.add_row(
            t.exchange,
            t.market,
            t.symbol,
            _text(t.bid),
            _text(t.ask),
            _text(t.last),
            _text(spread_bps(t.bid, t.ask)),
            str(max(0, (as_of_ns - t.received_ts_ns) // NS_PER_S)),
        )
    return table


def _consolidated_table(quotes: list[ConsolidatedQuote]) -> Table:
    table = Table(title="across exchanges", title_justify="left")
    for column in (
        "symbol",
        "best bid",
        "best ask",
        "mid",
        "spread bps",
        "gap bps",
        "basis bps",
        "stale",
    ):
        table.add_column(column)
    for q in quotes:
        table.add_row(
            q.symbol,
            f"{_text(q.best_bid)} @ {q.best_bid_exchange}" if q.best_bid else "-",
            f"{_text(q.best_ask)} @ {q.best_ask_exchange}" if q.best_ask else "-",
            _text(q.mid),
            _text(q.spread_bps),
            f"{q.gap_bps} ({q.high_mid_exchange}/{q.low_mid_exchange})"
            if q.gap_bps and q.high_mid_exchange
            else str(q.gap_bps),
            ", ".join(f"{b.exchange} {b.basis_bps}" for b in q.basis) or "-",
            ", ".join(v.exchange for v in q.venues if v.stale) or "-",
        )
    return table


def _text(value: Decimal | None) -> str:
    """A price as stored (``37345.0`` from Redis and ``37345`` from SQL print alike)."""
    return "-" if value is None else format(canonical(value), "f")
