"""exchange_sync's CCXT mode in a real node against loopback exchanges: the markets cache,
start-up checks of symbols and exchange ids, the ``exchange_sync.latest`` endpoint, one
breaker per exchange, stored health, retention, credentials, open orders, and the
``corec exchanges`` / ``corec prices`` commands.

Exchanges are :class:`~tests.exchanges.fake_exchange.FakeBinance` servers named freely
in the config (``alpha``, ``beta``: two "exchanges" served by the binance CCXT class), and
:mod:`tests.exchanges.fake_venues` where signed endpoints (open orders) are needed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import structlog
from sqlalchemy import select
from structlog.testing import capture_logs

from corec.core import channels
from corec.core.clock import NS_PER_S, ReplayClock
from corec.core.codec import Codec
from corec.core.config import CorecConfig
from corec.core.errors import ConfigError, RequestFailed
from corec.core.ids import new_id
from corec.core.logging import close_logging, configure_logging
from corec.core.notices import Alert, BreakerStateChanged
from corec.core.nucleus import Node
from corec.core.registry import discover_plugins
from corec.core.store import Store
from corec.exchanges import ccxt_source  # noqa: F401 - import CCXT (slow) before timing polls
from corec.messages.exchange_data import (
    LATEST,
    LatestRequest,
    LatestTickers,
    OpenOrder,
    OpenOrdersSnapshot,
    Ticker,
    TickerBatch,
)
from corec.plugins.exchange_sync import models as m
from corec.plugins.exchange_sync.health import ExchangeHealth
from corec.plugins.exchange_sync.plugin import ExchangeSyncPlugin
from corec.plugins.exchange_sync.storage import TickerWriter, read_health, save_open_orders
from tests.exchanges.fake_exchange import FakeBinance, ticker_24hr
from tests.exchanges.fake_venues import SERVER_TIME_MS, FakeVenue, create_venue
from tests.harness import Recorder, count_rows
from tests.plugins.exchange_sync.conftest import REDIS_URL

pytestmark = pytest.mark.timeout(60)

D = Decimal
MakeConfig = Callable[..., CorecConfig]
ROOT = Path(__file__).resolve().parents[3]
EXCHANGE_INFO = "/api/v3/exchangeInfo"
TICKER_24HR = "/api/v3/ticker/24hr"
OPEN_ORDERS = "/api/v3/openOrders"
INTERVAL_S = 0.2
BINANCE_POLL_S = 1.0
"""How often a binance exchange is really polled: CCXT's rate limiter (on, as in
production) spaces ``GET /api/v3/ticker/24hr?symbols=..`` (weight 16 × 50 ms) by 0.8 s,
so the 0.2 s schedule polls on every fifth tick."""
WAIT_S = 10.0  # a safety net: every wait here is met within about a second


# -- helpers -------------------------------------------------------------------------------------


def venue(url: str, *symbols: str, ccxt_id: str = "binance") -> dict[str, Any]:
    """One exchange of the config: a spot market of ``ccxt_id`` served at ``url``."""
    return {"spot": {"id": ccxt_id, "symbols": list(symbols)}, "api_url": url}


def sync_config(
    make_config: MakeConfig,
    exchanges: dict[str, dict[str, Any]],
    *,
    node: dict[str, Any] | None = None,
    sync: dict[str, Any] | None = None,
    **ccxt: Any,
) -> CorecConfig:
    return make_config(
        {
            "node": {"plugins": ["exchange_sync"], **(node or {})},
            "exchange_sync": {
                "source": "ccxt",
                **(sync or {}),
                "ccxt": {
                    "exchanges": exchanges,
                    "interval_s": INTERVAL_S,
                    "timeout_s": 2,
                    **ccxt,
                },
            },
        }
    )


@asynccontextmanager
async def started(
    config: CorecConfig, *listen: str, clock: ReplayClock | None = None
) -> AsyncIterator[tuple[Node, Recorder]]:
    """A started (not yet running) node and a recorder of ``listen``; stopped and
    closed afterwards."""
    node = Node(config, discover_plugins(), clock=clock)
    recorder = Recorder(node.bus, *listen)
    try:
        await node.start()
        yield node, recorder
    finally:
        await node.stop()
        await node.close()


@asynccontextmanager
async def running(node: Node) -> AsyncIterator[None]:
    """Run ``node``'s tasks in the background; on exit, shut it down and stop it (so
    counts taken afterwards are final: no request is in flight any more)."""
    runner = asyncio.create_task(node.run(handle_signals=False))
    try:
        yield
    finally:
        node.request_shutdown("test finished")
        await runner
        await node.stop()


async def wait_until(
    check: Callable[[], bool | Awaitable[bool]], what: str, timeout_s: float = WAIT_S
) -> None:
    """Poll ``check`` (a function or coroutine function) until it is true."""
    deadline = time.monotonic() + timeout_s
    while True:
        outcome = check()
        if not isinstance(outcome, bool):
            outcome = await outcome
        if outcome:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)


def batches(rec: Recorder, exchange: str | None = None) -> list[TickerBatch]:
    return [
        b
        for b in rec.payloads(TickerBatch, channel=channels.EXCHANGE_DATA)
        if exchange is None or b.tickers[0].exchange == exchange
    ]


def venue_health(node: Node, exchange: str) -> dict[str, Any]:
    return node.health()["plugins"]["exchange_sync"]["exchanges"][exchange]


def store_of(node: Node) -> Store:
    store = node.store("exchange_sync")
    assert store is not None
    return store


async def stored_health(config: CorecConfig) -> list[ExchangeHealth]:
    store = Store(config.database_url("exchange_sync"), name="exchange_sync")
    try:
        return await read_health(store)
    finally:
        await store.dispose()


async def corec_cli(*args: str, cwd: Path) -> tuple[int, str, str]:
    """Run ``python -m corec ARGS`` without blocking the loop (the loopback exchanges
    live in this process and must keep answering); ``(exit code, stdout, stderr)``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COREC")}
    env["COREC__API__PORT"] = "0"  # never the user's 8000
    env["PYTHONPATH"] = str(ROOT)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "corec",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def read_text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def read_bytes(path: Path) -> bytes:
    return path.read_bytes()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.fixture
async def fakes() -> AsyncIterator[Callable[[], Awaitable[FakeBinance]]]:
    """``await fakes()``: a started FakeBinance, stopped after the test."""
    started_fakes: list[FakeBinance] = []

    async def start() -> FakeBinance:
        fake = FakeBinance()
        await fake.start()
        started_fakes.append(fake)
        return fake

    yield start
    for fake in started_fakes:
        await fake.stop()


@pytest.fixture
async def binance_venue() -> AsyncIterator[FakeVenue]:
    """fake_venues' Binance spot: public and signed endpoints (open orders)."""
    fake = create_venue("binance")
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    """Route logs to a JSON-lines file at DEBUG; put process-wide logging back afterwards."""
    saved = structlog.get_config()
    names = ("", "aiosqlite", "asyncio", "alembic", "sqlalchemy", "ccxt")
    levels = {n: logging.getLogger(n).level for n in names}
    path = tmp_path / "logs" / "corec.log"
    configure_logging(level="DEBUG", console_level="CRITICAL", file=path)
    try:
        yield path
    finally:
        close_logging()
        structlog.configure(**saved)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


# -- markets cache ---------------------------------------------------------------------------


async def test_markets_are_cached_on_disk_between_starts(
    make_config: MakeConfig, tmp_path: Path, fakes: Callable[[], Awaitable[FakeBinance]]
) -> None:
    fake = await fakes()
    config = sync_config(make_config, {"binance": venue(fake.url, "BTC/USDT", "ETH/USDT")})
    async with started(config, channels.EXCHANGE_DATA) as (node, rec):
        async with running(node):
            await wait_until(lambda: len(batches(rec)) >= 1, "a first poll")
    assert fake.count(EXCHANGE_INFO) == 1
    # one file per CCXT class, market and API URL (a testnet's markets are not the exchange's)
    [cache_file] = (tmp_path / "var" / "exchange_sync" / "markets").glob("binance-spot-*.json")
    document = json.loads(read_text(cache_file))
    assert sorted(m["symbol"] for m in document["markets"]) == ["BNB/USDT", "BTC/USDT", "ETH/USDT"]
    assert document["signature"]["exchange"] == "binance"
    assert document["signature"]["market"] == "spot"

    # a restart within the TTL: no markets request, tickers as before
    fake.requests.clear()
    with capture_logs() as logs:
        async with started(config, channels.EXCHANGE_DATA) as (node, rec):
            async with running(node):
                await wait_until(lambda: len(batches(rec)) >= 1, "a poll after the restart")
            first = batches(rec)[0]
    assert fake.count(EXCHANGE_INFO) == 0
    assert fake.count(TICKER_24HR) >= 1
    assert set(fake.paths()) == {TICKER_24HR}
    assert [t.symbol for t in first.tickers] == ["BTC/USDT", "ETH/USDT"]
    assert (first.tickers[0].bid, first.tickers[0].ask) == (D("37342.35"), D("37342.36"))
    assert first.tickers[1].last == D("2024.61")
    from_cache = [e for e in logs if e["event"] == "markets_from_cache"]
    assert [(e["exchange"], e["market"]) for e in from_cache] == [("binance", "spot")]

    # with a TTL of 0 the cache is not used: the markets are requested again
    no_cache = sync_config(
        make_config,
        {"binance": venue(fake.url, "BTC/USDT", "ETH/USDT")},
        markets_cache_ttl_s=0,
    )
    fake.requests.clear()
    async with started(no_cache, channels.EXCHANGE_DATA) as (node, rec):
        async with running(node):
            await wait_until(lambda: len(batches(rec)) >= 1, "a poll without the cache")
    assert fake.count(EXCHANGE_INFO) == 1
    assert fake.paths()[0] == EXCHANGE_INFO


# -- start-up checks ---------------------------------------------------------------------------


async def test_unknown_symbol_fails_the_start_naming_the_field_and_a_suggestion(
    make_config: MakeConfig, tmp_path: Path, fakes: Callable[[], Awaitable[FakeBinance]]
) -> None:
    fake = await fakes()
    config = sync_config(make_config, {"binance": venue(fake.url, "BTC/USDX", "ETH/USDT")})
    node = Node(config, discover_plugins())
    try:
        with pytest.raises(ConfigError) as caught:
            await node.start()
    finally:
        await node.close()
    assert caught.value.source == "exchange_sync"
    [problem] = caught.value.problems
    assert problem.startswith(
        "exchange_sync.ccxt.exchanges.binance.spot.symbols: binance: 'BTC/USDX' is not "
        "listed on its spot markets; did you mean BTC/USDT"
    )
    assert problem.endswith("(or set exchange_sync.ccxt.skip_unknown_symbols: true)")
    assert fake.paths() == [EXCHANGE_INFO]  # checked at start, nothing polled

    # the same through the command line: exit 2 and the message on stderr
    code, out, err = await corec_cli(
        "run", "--config", config.source, "--duration", "1", cwd=tmp_path
    )
    assert code == 2, (out, err)
    assert "exchange_sync.ccxt.exchanges.binance.spot.symbols:" in err
    assert "'BTC/USDX' is not listed on its spot markets; did you mean BTC/USDT" in err
    assert fake.count(TICKER_24HR) == 0


async def test_skip_unknown_symbols_warns_and_polls_the_others(
    make_config: MakeConfig, fakes: Callable[[], Awaitable[FakeBinance]]
) -> None:
    fake = await fakes()
    config = sync_config(
        make_config,
        {"binance": venue(fake.url, "BTC/USDX", "ETH/USDT")},
        skip_unknown_symbols=True,
    )
    with capture_logs() as logs:
        async with started(config, channels.EXCHANGE_DATA) as (node, rec):
            async with running(node):
                await wait_until(lambda: len(batches(rec)) >= 2, "two polls")
    skipped = [e for e in logs if e["event"] == "unknown_symbol_skipped"]
    assert [(e["log_level"], e["exchange"], e["market"], e["symbol"]) for e in skipped] == [
        ("warning", "binance", "spot", "BTC/USDX")
    ]
    for batch in batches(rec):
        [eth] = batch.tickers
        assert (eth.symbol, eth.bid, eth.ask) == ("ETH/USDT", D("2024.61"), D("2024.62"))
    asked = [r.query["symbols"] for r in fake.requests if r.path == TICKER_24HR]
    assert asked and set(asked) == {'["ETHUSDT"]'}

    # every symbol unknown: nothing left to poll, so the start fails even when skipping
    none_known = sync_config(
        make_config, {"binance": venue(fake.url, "BTC/USDX")}, skip_unknown_symbols=True
    )
    node = Node(none_known, discover_plugins())
    try:
        with pytest.raises(ConfigError) as caught:
            await node.start()
    finally:
        await node.close()
    assert caught.value.problems == [
        "exchange_sync.ccxt.exchanges.binance.spot: binance: none of the symbols "
        "['BTC/USDX'] is listed"
    ]


async def test_unknown_exchange_id_fails_the_start_suggesting_the_right_one(
    make_config: MakeConfig,
) -> None:
    config = sync_config(
        make_config, {"alpha": venue("http://127.0.0.1:9", "BTC/USDT", ccxt_id="binanse")}
    )
    node = Node(config, discover_plugins())
    try:
        with pytest.raises(ConfigError) as caught:
            await node.start()
    finally:
        await node.close()
    [problem] = caught.value.problems
    assert problem.startswith(
        "exchange_sync.ccxt.exchanges.alpha: binanse: unknown CCXT exchange id "
        "(did you mean binance"
    )
    assert "ccxt.exchanges" in problem


# -- exchange_sync.latest -------------------------------------------------------------------------


async def test_latest_endpoint_serves_the_cache_with_filters_and_ttl(
    make_config: MakeConfig, fakes: Callable[[], Awaitable[FakeBinance]]
) -> None:
    fake = await fakes()
    # one poll only (at the start of the run): later ones would refresh the cache
    config = sync_config(
        make_config,
        {"binance": venue(fake.url, "BTC/USDT", "ETH/USDT")},
        sync={"cache_ttl_s": 0.5},
        interval_s=60,
    )
    t0 = time.time_ns()
    clock = ReplayClock(t0)
    async with started(config, channels.EXCHANGE_DATA, clock=clock) as (node, rec):
        async with running(node):
            await wait_until(lambda: len(batches(rec)) == 1, "the first poll")

            async def latest(**filters: Any) -> LatestTickers:
                reply = await node.bus.request(LATEST, LatestRequest(**filters), timeout_s=2)
                assert isinstance(reply, LatestTickers)
                return reply

            reply = await latest(symbol="BTC/USDT")
            assert reply.as_of_ts_ns == t0
            [btc] = reply.tickers
            assert btc == Ticker(
                exchange="binance",
                market="spot",
                symbol="BTC/USDT",
                bid=D("37342.35"),
                ask=D("37342.36"),
                last=D("37342.36"),
                base_volume=D("29754.50374"),
                quote_volume=D("1103906524.61298"),
                exchange_ts_ns=1_700_000_001_234_000_000,
                received_ts_ns=t0,
            )
            assert str(btc.quote_volume) == "1103906524.61298"

            def symbols(reply: LatestTickers) -> list[str]:
                return [t.symbol for t in reply.tickers]

            assert symbols(await latest()) == ["BTC/USDT", "ETH/USDT"]
            assert symbols(await latest(exchange="binance", market="spot")) == [
                "BTC/USDT",
                "ETH/USDT",
            ]
            assert symbols(await latest(exchange="kraken")) == []
            assert symbols(await latest(market="futures")) == []
            assert symbols(await latest(symbol="BTC/USDT:USDT")) == []
            [eth] = (await latest(symbol="ETH/USDT")).tickers
            assert (eth.bid, eth.ask, eth.last) == (D("2024.61"), D("2024.62"), D("2024.61"))

            # the TTL is measured on the node clock: exactly 0.5 s old is still served...
            clock.advance_to(t0 + NS_PER_S // 2)
            assert symbols(await latest()) == ["BTC/USDT", "ETH/USDT"]
            # ...one nanosecond more is not
            clock.advance_to(t0 + NS_PER_S // 2 + 1)
            stale = await latest()
            assert stale.tickers == ()
            assert stale.as_of_ts_ns == t0 + NS_PER_S // 2 + 1

            with pytest.raises(RequestFailed, match="takes LatestRequest, got LatestTickers"):
                await node.bus.request(LATEST, stale, timeout_s=2)
            assert fake.count(TICKER_24HR) == 1


# -- one breaker per exchange ---------------------------------------------------------------------


async def test_breaker_per_exchange_opens_refuses_probes_and_reopens(
    make_config: MakeConfig, fakes: Callable[[], Awaitable[FakeBinance]]
) -> None:
    alpha, beta = await fakes(), await fakes()
    alpha.fail_next("server_error_500", times=1000)
    config = sync_config(
        make_config,
        {"alpha": venue(alpha.url, "BTC/USDT"), "beta": venue(beta.url, "BTC/USDT")},
        retry_attempts=1,
        breaker_failures=3,
        breaker_reset_s=60,
    )
    t0 = time.time_ns()
    clock = ReplayClock(t0)
    listen = (channels.SYSTEM, channels.ALERTS, channels.EXCHANGE_DATA)
    async with started(config, *listen, clock=clock) as (node, rec):

        def changes() -> list[tuple[str, str, str]]:
            return [(c.breaker, c.previous, c.current) for c in rec.payloads(BreakerStateChanged)]

        # the symbol check at start: one request, failed and deferred to the first poll
        assert len(alpha.requests) == 1
        async with running(node):
            await wait_until(lambda: len(changes()) == 1, "the breaker to open")
            # start + exactly breaker_failures polls of one attempt each
            assert len(alpha.requests) == 4
            assert changes() == [("exchange_sync.alpha", "closed", "open")]
            h = venue_health(node, "alpha")
            assert (h["breaker_state"], h["polls"], h["failed_polls"]) == ("open", 3, 3)
            assert node.health()["plugins"]["exchange_sync"]["status"] == "degraded"

            # open: polls are refused without a request, while beta keeps its schedule
            beta_before = len(batches(rec, "beta"))
            await asyncio.sleep(BINANCE_POLL_S + 0.5)
            assert len(alpha.requests) == 4
            assert venue_health(node, "alpha")["polls"] == 3
            assert len(batches(rec, "beta")) >= beta_before + 1

            # past breaker_reset_s on the node clock: one probe, which fails: open again
            clock.advance_to(t0 + 61 * NS_PER_S)
            await wait_until(lambda: len(changes()) == 3, "the probe to fail")
            await asyncio.sleep(BINANCE_POLL_S)
            assert len(alpha.requests) == 5
            beta_polls = venue_health(node, "beta")["polls"]
        beta_batches = batches(rec, "beta")

    assert changes() == [
        ("exchange_sync.alpha", "closed", "open"),
        ("exchange_sync.alpha", "open", "half_open"),
        ("exchange_sync.alpha", "half_open", "open"),
    ]
    reasons = [c.reason for c in rec.payloads(BreakerStateChanged)]
    assert "ExchangeNotAvailable" in reasons[0] and "ExchangeNotAvailable" in reasons[2]
    assert reasons[1] == "reset timeout elapsed; probing"
    breaker_alerts = [
        (a.name, a.severity, a.labels["exchange"])
        for a in rec.payloads(Alert)
        if a.name.startswith("breaker_")
    ]
    assert breaker_alerts == [
        ("breaker_open", "high", "alpha"),
        ("breaker_half_open", "low", "alpha"),
        ("breaker_open", "high", "alpha"),
    ]
    assert set(alpha.paths()) == {EXCHANGE_INFO}  # never got as far as tickers
    assert len(alpha.requests) == 5
    assert batches(rec, "alpha") == []
    # beta: one batch per poll, every one with beta's tickers
    assert len(beta_batches) >= 2
    assert beta_polls - 1 <= len(beta_batches) <= beta_polls + 1
    assert all(b.tickers[0].last == D("37342.36") for b in beta_batches)

    [alpha_health, beta_health] = await stored_health(config)
    assert alpha_health.exchange == "alpha"
    assert alpha_health.breaker_state == "open"
    assert (alpha_health.polls, alpha_health.failed_polls) == (4, 4)
    assert alpha_health.consecutive_failures == 4
    assert alpha_health.requests == 5
    assert alpha_health.errors_by_kind == {"ExchangeNotAvailable": 5}
    assert alpha_health.tickers == 0
    assert alpha_health.last_success_ts_ns is None
    assert beta_health.breaker_state == "closed"
    assert beta_health.failed_polls == 0


# -- health in the database and in `corec exchanges` -------------------------------------------


async def test_health_is_stored_and_shown_by_corec_exchanges(
    make_config: MakeConfig, tmp_path: Path, fakes: Callable[[], Awaitable[FakeBinance]]
) -> None:
    alpha, beta = await fakes(), await fakes()
    beta.fail_next("server_error_500", times=2)  # the check at start, then the first poll
    config = sync_config(
        make_config,
        {"alpha": venue(alpha.url, "BTC/USDT", "ETH/USDT"), "beta": venue(beta.url, "BTC/USDT")},
        retry_attempts=1,
    )
    async with started(config, channels.EXCHANGE_DATA) as (node, rec):
        async with running(node):
            await wait_until(
                lambda: len(batches(rec, "alpha")) >= 2 and len(batches(rec, "beta")) >= 1,
                "polls of both exchanges",
            )
        alpha_batches, beta_batches = len(batches(rec, "alpha")), len(batches(rec, "beta"))

    db = tmp_path / "var" / "exchange_sync.db"
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        raw = {r["exchange"]: dict(r) for r in conn.execute("select * from exchange_health")}
    assert sorted(raw) == ["alpha", "beta"]
    assert raw["alpha"]["errors_by_kind"] == "{}"
    assert raw["alpha"]["errors"] == 0
    assert raw["beta"]["errors_by_kind"] == '{"ExchangeNotAvailable": 2}'
    assert raw["beta"]["errors"] == 2

    healths = {h.exchange: h for h in await stored_health(config)}
    a, b = healths["alpha"], healths["beta"]
    # a request cut off by the stop reached the server but was never answered
    assert len(alpha.requests) - 1 <= a.requests <= len(alpha.requests)
    assert len(beta.requests) - 1 <= b.requests <= len(beta.requests)
    for h in (a, b):
        assert h.breaker_state == "closed"
        assert h.mode == "poll"
        assert h.consecutive_failures == 0
        assert isinstance(h.latency_p50_ms, Decimal) and h.latency_p50_ms > 0
        assert isinstance(h.latency_p95_ms, Decimal) and h.latency_p95_ms >= h.latency_p50_ms
        assert h.last_success_ts_ns is not None
        assert h.updated_ts_ns >= h.last_success_ts_ns
    assert (a.failed_polls, a.errors_by_kind, a.last_error) == (0, {}, None)
    assert a.tickers == 2 * alpha_batches
    assert b.failed_polls == 1
    assert b.errors_by_kind == {"ExchangeNotAvailable": 2}
    assert b.tickers == beta_batches
    assert b.last_error is not None and "ExchangeNotAvailable" in b.last_error

    code, out, err = await corec_cli("exchanges", "--json", "--config", config.source, cwd=tmp_path)
    assert code == 0, err
    shown = {row["exchange"]: row for row in json.loads(out)}
    assert sorted(shown) == ["alpha", "beta"]
    for name, h in healths.items():
        row = shown[name]
        assert row["breaker_state"] == "closed"
        assert row["requests"] == h.requests
        assert (row["polls"], row["failed_polls"]) == (h.polls, h.failed_polls)
        assert row["latency_p50_ms"] == str(h.latency_p50_ms)
        assert row["latency_p95_ms"] == str(h.latency_p95_ms)
        assert row["errors_by_kind"] == h.errors_by_kind
        assert row["tickers"] == h.tickers
        assert row["last_success"] is not None and row["last_success"].endswith("Z")
    assert shown["beta"]["errors"] == 2
    assert shown["alpha"]["errors"] == 0


# -- retention ---------------------------------------------------------------------------------


def old_ticker(symbol: str, received_ts_ns: int) -> Ticker:
    return Ticker(
        exchange="binance",
        market="spot",
        symbol=symbol,
        last=D("1.5"),
        exchange_ts_ns=received_ts_ns - NS_PER_S,
        received_ts_ns=received_ts_ns,
    )


def snapshot(taken_ts_ns: int, *order_ids: str) -> OpenOrdersSnapshot:
    orders = tuple(
        OpenOrder(
            exchange="binance",
            market="spot",
            symbol="BTC/USDT",
            order_id=order_id,
            side="buy",
            type="limit",
            price=D("30000"),
            amount=D("0.01"),
        )
        for order_id in order_ids
    )
    return OpenOrdersSnapshot(
        exchange="binance", market="spot", taken_ts_ns=taken_ts_ns, orders=orders
    )


async def test_retention_prunes_old_tickers_and_snapshots_with_their_orders(
    make_config: MakeConfig, fakes: Callable[[], Awaitable[FakeBinance]]
) -> None:
    fake = await fakes()
    config = sync_config(
        make_config,
        {"binance": venue(fake.url, "BTC/USDT")},
        sync={"retention_s": 60, "prune_interval_s": 3600},
    )
    t0 = time.time_ns()
    old, cutoff, new = t0 - 120 * NS_PER_S, t0 - 60 * NS_PER_S, t0 - 10 * NS_PER_S
    async with started(config, channels.EXCHANGE_DATA, clock=ReplayClock(t0)) as (node, rec):
        store = store_of(node)
        plugin = node.plugin("exchange_sync")
        assert isinstance(plugin, ExchangeSyncPlugin)
        writer = TickerWriter(store, flush_rows=100)
        for symbol, received in (
            ("OLD1/USDT", old),
            ("OLD2/USDT", old),
            ("OLD3/USDT", cutoff - 1),
            ("EDGE/USDT", cutoff),  # exactly retention_s old: kept
            ("NEW/USDT", new),
        ):
            writer.add(old_ticker(symbol, received))
        await writer.flush()
        await save_open_orders(store, snapshot(old, "o-1", "o-2"))
        await save_open_orders(store, snapshot(cutoff - 1))  # an empty snapshot
        await save_open_orders(store, snapshot(new, "n-1"))
        assert await count_rows(store, m.open_orders) == 3

        assert await plugin.prune_now() == (3, 2)
        assert await plugin.prune_now() == (0, 0)
        symbols = await store.read(
            lambda conn: sorted(conn.execute(select(m.tickers.c.symbol)).scalars())
        )
        assert symbols == ["EDGE/USDT", "NEW/USDT"]
        assert await count_rows(store, m.open_order_snapshots) == 1
        order_ids = await store.read(
            lambda conn: list(conn.execute(select(m.open_orders.c.order_id)).scalars())
        )
        assert order_ids == ["n-1"]

        # the periodic prune runs when the node runs, next to the polls
        writer.add(old_ticker("OLD4/USDT", old))
        await writer.flush()
        await save_open_orders(store, snapshot(old, "o-3"))

        async def pruned() -> bool:
            return await count_rows(store, m.open_order_snapshots) == 1

        async with running(node):
            await wait_until(lambda: len(batches(rec)) >= 1, "a poll")
            await wait_until(pruned, "the periodic prune")
        symbols = await store.read(
            lambda conn: sorted(conn.execute(select(m.tickers.c.symbol)).scalars())
        )
        assert symbols == ["BTC/USDT", "EDGE/USDT", "NEW/USDT"]  # polled: received at t0
        assert await count_rows(store, m.open_order_snapshots) == 1
        assert await count_rows(store, m.open_orders) == 1


# -- credentials and open orders ----------------------------------------------------------------


def random_secret() -> str:
    return (new_id() + new_id()).replace("-", "")


async def test_credentials_never_reach_logs_events_or_the_database(
    make_config: MakeConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    log_file: Path,
    binance_venue: FakeVenue,
    fakes: Callable[[], Awaitable[FakeBinance]],
) -> None:
    secrets = {
        name: (random_secret(), random_secret()) for name in ("ALPHA", "BETA")
    }  # (key, secret)
    for name, (key, secret) in secrets.items():
        monkeypatch.setenv(f"COREC_{name}_API_KEY", key)
        monkeypatch.setenv(f"COREC_{name}_API_SECRET", secret)
    # beta: a server without the signed endpoints CCXT calls with credentials (404)
    beta = await fakes()
    config = sync_config(
        make_config,
        {
            "alpha": venue(binance_venue.base_url, "BTC/USDT", "ETH/USDT"),
            "beta": venue(beta.url, "BTC/USDT"),
        },
        retry_attempts=1,
        orders_interval_s=30,
    )
    async with started(config, *sorted(channels.ALL)) as (node, rec):
        async with running(node):
            await wait_until(
                lambda: (
                    bool(rec.payloads(OpenOrdersSnapshot))
                    and any(a.name == "breaker_open" for a in rec.payloads(Alert))
                ),
                "alpha's open orders and beta's breaker",
            )
    close_logging()

    # the API key was sent, as the header Binance expects; the secret never left
    alpha_key, alpha_secret = secrets["ALPHA"]
    signed = binance_venue.auth_requests()
    assert OPEN_ORDERS in {r.path for r in signed}
    assert {r.headers["X-MBX-APIKEY"] for r in signed} == {alpha_key}
    for r in binance_venue.requests:
        assert alpha_secret not in json.dumps([r.path, r.query, r.headers, r.body])

    log_text = read_text(log_file)
    logged = [json.loads(line)["event"] for line in log_text.splitlines()]
    assert "ccxt_ready" in logged
    assert "exchange_poll_failed" in logged  # beta's errors were logged...
    assert "open_orders_failed" in logged
    alerts = rec.payloads(Alert)
    assert any(a.labels.get("exchange") == "beta" for a in alerts)  # ...and alerted
    codec = Codec("json", compress_threshold_bytes=10**9)
    frames = [codec.encode(e) for e in rec.events]
    assert len(frames) >= 5
    data_files = [p for p in (tmp_path / "var").rglob("*") if p.is_file()]
    assert tmp_path / "var" / "exchange_sync.db" in data_files
    for key, secret in secrets.values():
        for value in (key, secret):
            assert value not in log_text
            for frame in frames:
                assert value.encode() not in frame
            for path in data_files:
                assert value.encode() not in read_bytes(path), path


async def test_open_orders_are_published_and_stored_only_with_credentials(
    make_config: MakeConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    binance_venue: FakeVenue,
) -> None:
    monkeypatch.setenv("COREC_ALPHA_API_KEY", random_secret())
    monkeypatch.setenv("COREC_ALPHA_API_SECRET", random_secret())
    config = sync_config(
        make_config,
        {"alpha": venue(binance_venue.base_url, "BTC/USDT", "ETH/USDT")},
        orders_interval_s=30,  # one snapshot, when the run starts
    )
    async with started(config, channels.EXCHANGE_DATA) as (node, rec):
        async with running(node):
            await wait_until(lambda: bool(rec.payloads(OpenOrdersSnapshot)), "a snapshot")
        [snap] = rec.payloads(OpenOrdersSnapshot)
        store = store_of(node)
        snapshots = await store.read(
            lambda conn: [dict(r) for r in conn.execute(select(m.open_order_snapshots)).mappings()]
        )
        rows = await store.read(
            lambda conn: [
                dict(r)
                for r in conn.execute(
                    select(m.open_orders).order_by(m.open_orders.c.order_id)
                ).mappings()
            ]
        )
    assert binance_venue.count(OPEN_ORDERS) == 1
    assert (snap.exchange, snap.market) == ("alpha", "spot")
    btc, eth = sorted(snap.orders, key=lambda o: o.order_id)
    assert btc == OpenOrder(
        exchange="alpha",
        market="spot",
        symbol="BTC/USDT",
        order_id="1000001",
        client_order_id="corec-0001",
        side="buy",
        type="limit",
        price=D("30000"),
        amount=D("0.01"),
        filled=D("0"),
        remaining=D("0.01"),
        status="open",
        created_ts_ns=(SERVER_TIME_MS - 60_000) * 1_000_000,
    )
    assert eth == OpenOrder(
        exchange="alpha",
        market="spot",
        symbol="ETH/USDT",
        order_id="1000002",
        client_order_id="corec-0002",
        side="sell",
        type="limit",
        price=D("2500"),
        amount=D("0.5"),
        filled=D("0"),
        remaining=D("0.5"),
        status="open",
        created_ts_ns=(SERVER_TIME_MS - 120_000) * 1_000_000,
    )
    [stored_snapshot] = snapshots
    assert stored_snapshot["exchange"] == "alpha"
    assert stored_snapshot["market"] == "spot"
    assert stored_snapshot["taken_ts_ns"] == snap.taken_ts_ns
    assert stored_snapshot["orders"] == 2
    assert [
        (r["order_id"], r["symbol"], r["side"], r["price"], r["amount"], r["remaining"])
        for r in rows
    ] == [
        ("1000001", "BTC/USDT", "buy", D("30000"), D("0.01"), D("0.01")),
        ("1000002", "ETH/USDT", "sell", D("2500"), D("0.5"), D("0.5")),
    ]
    assert all(r["snapshot_id"] == stored_snapshot["id"] for r in rows)
    assert rows[0]["client_order_id"] == "corec-0001"
    assert rows[0]["created_ts_ns"] == (SERVER_TIME_MS - 60_000) * 1_000_000

    # without credentials: no signed request at all, no snapshot, nothing stored
    monkeypatch.delenv("COREC_ALPHA_API_KEY")
    monkeypatch.delenv("COREC_ALPHA_API_SECRET")
    binance_venue.clear()
    public = sync_config(
        make_config,
        {"alpha": venue(binance_venue.base_url, "BTC/USDT", "ETH/USDT")},
        node={"data_dir": str(tmp_path / "public")},
        orders_interval_s=0.2,
    )
    async with started(public, channels.EXCHANGE_DATA) as (node, rec):
        async with running(node):
            await wait_until(lambda: len(batches(rec)) >= 2, "two polls")
        assert rec.payloads(OpenOrdersSnapshot) == []
        assert await count_rows(store_of(node), m.open_order_snapshots) == 0
        assert await count_rows(store_of(node), m.open_orders) == 0
    assert binance_venue.count(OPEN_ORDERS) == 0
    assert binance_venue.auth_requests() == []
    assert node.health()["plugins"]["exchange_sync"]["exchanges"]["alpha"]["tickers"] > 0


# -- corec prices --------------------------------------------------------------------------------


def set_btc(fake: FakeBinance, *, bid: str, ask: str, last: str, ts_ms: int) -> None:
    fake.tickers["BTCUSDT"] = ticker_24hr(
        "BTCUSDT",
        bid=bid,
        ask=ask,
        last=last,
        volume="100.5",
        quote_volume="3753000.25",
        close_time_ms=ts_ms,
    )


@pytest.mark.redis
async def test_corec_prices_reads_redis_or_the_tickers_table(
    make_config: MakeConfig,
    tmp_path: Path,
    redis_instance: str,
    fakes: Callable[[], Awaitable[FakeBinance]],
) -> None:
    alpha, beta = await fakes(), await fakes()
    ts_ms = now_ms()
    set_btc(alpha, bid="37342.35", ask="37342.36", last="37342.36", ts_ms=ts_ms)
    set_btc(beta, bid="37345.00", ask="37346.00", last="37345.50", ts_ms=ts_ms + 1)
    exchanges = {
        "alpha": venue(alpha.url, "BTC/USDT", "ETH/USDT"),
        "beta": venue(beta.url, "BTC/USDT"),
    }
    config = sync_config(
        make_config,
        exchanges,
        node={"instance_id": redis_instance},
        sync={"cache_url": REDIS_URL},
    )
    async with started(config, channels.EXCHANGE_DATA) as (node, rec):
        async with running(node):
            await wait_until(
                lambda: bool(batches(rec, "alpha")) and bool(batches(rec, "beta")),
                "polls of both exchanges",
            )

    code, out, err = await corec_cli("prices", "--json", "--config", config.source, cwd=tmp_path)
    assert code == 0, err
    from_redis = json.loads(out)
    assert [
        (t["exchange"], t["symbol"], t["bid"], t["ask"], t["last"]) for t in from_redis["tickers"]
    ] == [
        ("alpha", "BTC/USDT", "37342.35", "37342.36", "37342.36"),
        ("alpha", "ETH/USDT", "2024.61", "2024.62", "2024.61"),
        ("beta", "BTC/USDT", "37345.0", "37346.0", "37345.5"),
    ]
    assert from_redis["tickers"][0]["exchange_ts_ns"] == ts_ms * 1_000_000
    btc, eth = from_redis["consolidated"]
    assert (btc["pair"], btc["market"], btc["symbol"]) == ("BTC/USDT", "spot", "BTC/USDT")
    assert [v["exchange"] for v in btc["venues"]] == ["alpha", "beta"]
    assert [v["stale"] for v in btc["venues"]] == [False, False]
    # beta's bid is above alpha's ask: the venues are crossed
    assert (D(btc["best_bid"]), btc["best_bid_exchange"]) == (D("37345.00"), "beta")
    assert (D(btc["best_ask"]), btc["best_ask_exchange"]) == (D("37342.36"), "alpha")
    assert D(btc["mid"]) == D("37343.68")  # (37345.00 + 37342.36) / 2
    assert D(btc["spread_bps"]) == D("-0.7069")  # -2.64 / 37343.68 × 10 000
    assert (btc["high_mid_exchange"], btc["low_mid_exchange"]) == ("beta", "alpha")
    assert D(btc["high_mid"]) == D("37345.5") and D(btc["low_mid"]) == D("37342.355")
    assert D(btc["gap_bps"]) == D("0.8422")  # 3.145 / 37342.355 × 10 000
    assert btc["basis"] == []
    assert eth["symbol"] == "ETH/USDT"
    # ETH's exchange timestamp is the fake's, from 2023, but staleness counts from the
    # last update received: fresh, one venue, so no gap
    [eth_venue] = eth["venues"]
    assert (eth_venue["exchange"], eth_venue["stale"]) == ("alpha", False)
    assert (D(eth["best_bid"]), D(eth["best_ask"])) == (D("2024.61"), D("2024.62"))
    assert D(eth["mid"]) == D("2024.615")
    assert D(eth["gap_bps"]) == 0

    # a pair filter
    code, out, err = await corec_cli(
        "prices", "ETH/USDT", "--json", "--config", config.source, cwd=tmp_path
    )
    assert code == 0, err
    only_eth = json.loads(out)
    assert [(t["exchange"], t["symbol"]) for t in only_eth["tickers"]] == [("alpha", "ETH/USDT")]
    assert [q["symbol"] for q in only_eth["consolidated"]] == ["ETH/USDT"]

    # without cache_url: the newest stored ticker of each instrument
    from_table_config = sync_config(make_config, exchanges, node={"instance_id": redis_instance})
    code, out, err = await corec_cli(
        "prices", "--json", "--config", from_table_config.source, cwd=tmp_path
    )
    assert code == 0, err
    from_table = json.loads(out)

    def without_received(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The tickers without their received time (the table keeps the first poll of an
        exchange timestamp, Redis the last), numbers as Decimals (the table does not keep
        a trailing zero: 37345.0 comes back as 37345)."""
        prices = ("bid", "ask", "last", "base_volume", "quote_volume")
        return [
            {k: D(v) if k in prices and v is not None else v for k, v in row.items()}
            | {"received_ts_ns": None}
            for row in rows
        ]

    assert without_received(from_table["tickers"]) == without_received(from_redis["tickers"])

    def quotes(view: dict[str, Any]) -> list[tuple[Any, ...]]:
        keys = ("best_bid", "best_ask", "mid", "gap_bps")
        return [
            (q["symbol"], *(None if q[k] is None else D(q[k]) for k in keys))
            for q in view["consolidated"]
        ]

    assert quotes(from_table) == quotes(from_redis)
    assert quotes(from_table) == [
        ("BTC/USDT", D("37345"), D("37342.36"), D("37343.68"), D("0.8422")),
        ("ETH/USDT", D("2024.61"), D("2024.62"), D("2024.615"), D(0)),
    ]
