"""exchange_sync's query endpoints in a real node: ``exchange_sync.order_book`` live
(CCXT ``fetch_order_book`` against loopback Binance spot and USDⓈ-M servers) and in
replay, ``exchange_sync.health`` per exchange market, and ``exchange_sync.open_orders``
from the stored snapshots (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from corec.core import channels
from corec.core.config import CorecConfig
from corec.core.events import Payload
from corec.core.nucleus import Node
from corec.core.queries import Refused
from corec.messages.exchange_data import (
    HEALTH,
    OPEN_ORDERS,
    ORDER_BOOK,
    BookLevel,
    ExchangeHealthReport,
    ExchangeHealthRequest,
    ExchangeHealthRow,
    OpenOrder,
    OpenOrdersPage,
    OpenOrdersRequest,
    OpenOrdersSnapshot,
    OrderBook,
    OrderBookRequest,
    Ticker,
    TickerBatch,
)
from corec.plugins.exchange_sync.plugin import ExchangeSyncPlugin
from corec.plugins.exchange_sync.queries import ticker_order_book
from corec.plugins.exchange_sync.storage import save_open_orders
from tests.conftest import RECORDING, write_recording_slice
from tests.exchanges.fake_venues import BinanceVenue
from tests.harness import started_node

pytestmark = pytest.mark.timeout(60)

D = Decimal
MakeConfig = Callable[..., CorecConfig]
SPOT_DEPTH = "/api/v3/depth"
FUTURES_DEPTH = "/fapi/v1/depth"
BOOK_TS_MS = 1_700_000_005_000
WAIT_S = 10.0
BTC_BIDS = [["41000.10", "1.5"], ["41000.00", "0.25"], ["40999.50", "2"], ["40998.00", "7.125"]]
BTC_ASKS = [["41000.20", "0.75"], ["41000.90", "3"], ["41001.00", "0.001"], ["41005.00", "9"]]
PERP_BIDS = [["41041.0", "12"], ["41040.5", "30"], ["41040.0", "1"], ["41039.0", "5"]]
PERP_ASKS = [["41043.0", "8"], ["41043.5", "2"], ["41044.0", "40"], ["41050.0", "1"]]


class DepthVenue(BinanceVenue):
    """fake_venues' Binance with the order book endpoints CCXT's ``fetch_order_book``
    calls: ``GET /api/v3/depth`` (spot: no timestamp) and ``GET /fapi/v1/depth``
    (USDⓈ-M: ``E`` and ``T`` in ms), shaped as Binance documents them."""

    def __init__(self, venue_id: str) -> None:
        super().__init__(venue_id)
        self.books: dict[str, tuple[list[list[str]], list[list[str]]]] = {}

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        super()._add_routes(router)
        router.add_get(SPOT_DEPTH, self._depth("spot"))
        router.add_get(FUTURES_DEPTH, self._depth("swap"))

    def _depth(self, kind: str) -> Any:
        async def handle(request: web.Request) -> web.Response:
            market = self._market_by_id(request.query.get("symbol", ""), kind)
            if market is None:
                return self._invalid_symbol()
            bids, asks = self.books.get(market.symbol, ([], []))
            limit = int(request.query.get("limit", "100"))
            body: dict[str, Any] = {"lastUpdateId": 1027024, "bids": bids[:limit]}
            body["asks"] = asks[:limit]
            if kind == "swap":
                body |= {"E": BOOK_TS_MS, "T": BOOK_TS_MS - 2}
            return web.json_response(body)

        return handle


@pytest.fixture
async def binance() -> AsyncIterator[tuple[DepthVenue, DepthVenue]]:
    """Started spot and USDⓈ-M servers with BTC books."""
    spot, futures = DepthVenue("binance"), DepthVenue("binanceusdm")
    spot.books["BTC/USDT"] = (BTC_BIDS, BTC_ASKS)
    spot.books["ETH/USDT"] = ([["2024.61", "10"]], [["2024.62", "4"]])
    futures.books["BTC/USDT:USDT"] = (PERP_BIDS, PERP_ASKS)
    await spot.start()
    await futures.start()
    try:
        yield spot, futures
    finally:
        await spot.stop()
        await futures.stop()


def live_config(
    make_config: MakeConfig, spot: DepthVenue, futures: DepthVenue, **ccxt: Any
) -> CorecConfig:
    alpha = {
        "spot": {"id": "binance", "symbols": ["BTC/USDT"], "api_url": spot.base_url},
        "futures": {
            "id": "binanceusdm",
            "symbols": ["BTC/USDT:USDT"],
            "api_url": futures.base_url,
        },
    }
    return make_config(
        {
            "node": {"plugins": ["exchange_sync"]},
            "exchange_sync": {
                "source": "ccxt",
                "ccxt": {"exchanges": {"alpha": alpha}, "timeout_s": 2, **ccxt},
            },
        }
    )


async def ask(node: Node, endpoint: str, request: Payload) -> Any:
    return await node.bus.request(endpoint, request, timeout_s=WAIT_S)


def book(symbol: str = "BTC/USDT", market: str = "spot", **fields: Any) -> OrderBookRequest:
    return OrderBookRequest(exchange="alpha", market=market, symbol=symbol, **fields)  # type: ignore[arg-type]


def levels(rows: list[list[str]]) -> tuple[BookLevel, ...]:
    return tuple(BookLevel(price=D(p), amount=D(a)) for p, a in rows)


async def health_rows(node: Node) -> dict[tuple[str, str], ExchangeHealthRow]:
    report = await ask(node, HEALTH, ExchangeHealthRequest())
    assert isinstance(report, ExchangeHealthReport)
    assert [(r.exchange, r.market) for r in report.items] == sorted(
        (r.exchange, r.market) for r in report.items
    )
    return {(r.exchange, r.market): r for r in report.items}


@asynccontextmanager
async def running(node: Node) -> AsyncIterator[None]:
    runner = asyncio.create_task(node.run(handle_signals=False))
    try:
        yield
    finally:
        node.request_shutdown("test finished")
        await runner


async def wait_for(check: Callable[[], Any], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


# -- exchange_sync.order_book, live ----------------------------------------------------------


async def test_live_order_book_from_ccxt_with_refusals_and_health(
    make_config: MakeConfig, binance: tuple[DepthVenue, DepthVenue]
) -> None:
    spot, futures = binance
    async with started_node(live_config(make_config, spot, futures)) as (node, _):
        before = time.time_ns()
        btc = await ask(node, ORDER_BOOK, book(depth=2))
        after = time.time_ns()
        assert btc == OrderBook(
            exchange="alpha",
            market="spot",
            symbol="BTC/USDT",
            bids=levels(BTC_BIDS[:2]),
            asks=levels(BTC_ASKS[:2]),
            exchange_ts_ns=btc.received_ts_ns,  # binance spot sends no timestamp
            received_ts_ns=btc.received_ts_ns,
            source="exchange",
        )
        assert before <= btc.received_ts_ns <= after
        [depth_call] = [r for r in spot.requests if r.path == SPOT_DEPTH]
        assert depth_call.query == {"symbol": "BTCUSDT", "limit": "2"}

        # a listed symbol that is not polled has a book too
        eth = await ask(node, ORDER_BOOK, book("ETH/USDT", depth=20))
        assert (eth.bids, eth.asks) == (levels([["2024.61", "10"]]), levels([["2024.62", "4"]]))

        # USDⓈ-M accepts only 5, 10, 20…: 5 is asked, 3 served; its timestamp is T
        perp = await ask(node, ORDER_BOOK, book("BTC/USDT:USDT", "futures", depth=3))
        assert (perp.bids, perp.asks) == (levels(PERP_BIDS[:3]), levels(PERP_ASKS[:3]))
        assert perp.exchange_ts_ns == (BOOK_TS_MS - 2) * 1_000_000
        assert [r.query["limit"] for r in futures.requests if r.path == FUTURES_DEPTH] == ["5"]

        # the client's mistakes: refused, naming the field, without a request
        depth_calls = spot.count(SPOT_DEPTH)
        refusals = {
            "unlisted": await ask(node, ORDER_BOOK, book("DOGE/USDT")),
            "perp on spot": await ask(node, ORDER_BOOK, book("BTC/USDT:USDT")),
            "exchange": await ask(
                node, ORDER_BOOK, OrderBookRequest(exchange="beta", market="spot", symbol="X/Y")
            ),
            "market": await ask(node, ORDER_BOOK, book(market="margin")),
            "depth 0": await ask(node, ORDER_BOOK, book(depth=0)),
            "depth 101": await ask(node, ORDER_BOOK, book(depth=101)),
            "symbol": await ask(node, ORDER_BOOK, book("")),
        }
        assert {k: (r.code, r.field) for k, r in refusals.items()} == {
            "unlisted": ("not_found", "symbol"),
            "perp on spot": ("not_found", "symbol"),
            "exchange": ("not_found", "exchange"),
            "market": ("invalid", "market"),
            "depth 0": ("invalid", "depth"),
            "depth 101": ("invalid", "depth"),
            "symbol": ("invalid", "symbol"),
        }
        assert all(isinstance(r, Refused) for r in refusals.values())
        assert "DOGE/USDT" in refusals["unlisted"].message
        assert spot.count(SPOT_DEPTH) == depth_calls

        # a 429 is unavailable, with the exchange's Retry-After; the exchange is then
        # left alone until it passes (no second request)
        spot.fail_next("rate_limit_429", path=SPOT_DEPTH)
        limited = await ask(node, ORDER_BOOK, book())
        assert (limited.code, limited.retry_after_s, limited.field) == ("unavailable", 7, None)
        waiting = await ask(node, ORDER_BOOK, book())
        assert waiting.code == "unavailable"
        assert 1 <= waiting.retry_after_s <= 7
        assert spot.count(SPOT_DEPTH) == depth_calls + 1

        # health per market: load_markets + three books + the 429 on spot, load_markets +
        # one book on futures; one breaker for the exchange, untouched by order books
        rows = await health_rows(node)
        exchange_health = node.health()["plugins"]["exchange_sync"]["exchanges"]["alpha"]
    assert list(rows) == [("alpha", "futures"), ("alpha", "spot")]
    spot_row, futures_row = rows[("alpha", "spot")], rows[("alpha", "futures")]
    assert (spot_row.requests, spot_row.errors) == (4, {"DDoSProtection": 1})
    assert (futures_row.requests, futures_row.errors) == (2, {})
    assert exchange_health["requests"] == 6
    assert exchange_health["errors_by_kind"] == {"DDoSProtection": 1}
    for row in (spot_row, futures_row):
        assert row.breaker == "closed"
        assert (row.failed_polls, row.last_success_ts_ns, row.tickers) == (0, None, 0)
        assert row.feed == "poll"
        assert isinstance(row.latency_p50_ms, Decimal) and isinstance(row.latency_p95_ms, Decimal)
        assert D(0) < row.latency_p50_ms <= row.latency_p95_ms


async def test_health_per_market_and_order_book_refused_while_the_breaker_is_open(
    make_config: MakeConfig, binance: tuple[DepthVenue, DepthVenue]
) -> None:
    spot, futures = binance
    futures.down = True  # 503 on every request: the futures market fails every poll
    config = live_config(
        make_config,
        spot,
        futures,
        interval_s=0.2,
        retry_attempts=1,
        breaker_failures=2,
        breaker_reset_s=60,
    )
    async with started_node(config, channels.EXCHANGE_DATA) as (node, rec):

        async def breaker_open() -> bool:
            rows = await health_rows(node)
            return rows[("alpha", "spot")].breaker == "open"

        async with running(node):
            await wait_for(breaker_open, "the breaker to open")
        rows = await health_rows(node)
        refused = await ask(node, ORDER_BOOK, book())
        published = [t for b in rec.payloads(TickerBatch) for t in b.tickers]

    spot_row, futures_row = rows[("alpha", "spot")], rows[("alpha", "futures")]
    assert {spot_row.breaker, futures_row.breaker} == {"open"}
    # spot answered both polls, futures failed both: each market's own figures
    assert (spot_row.failed_polls, futures_row.failed_polls) == (0, 2)
    assert spot_row.tickers == len(published) == 2
    last_received = max(t.received_ts_ns for t in published)
    assert spot_row.last_success_ts_ns is not None
    assert last_received <= spot_row.last_success_ts_ns < last_received + 1_000_000_000
    assert futures_row.last_success_ts_ns is None
    assert spot_row.errors == {}
    assert set(futures_row.errors) == {"ExchangeNotAvailable"}
    assert futures_row.latency_p50_ms is not None
    assert futures_row.last_error is not None and "503" in futures_row.last_error
    # no request while the breaker is open
    assert (refused.code, refused.field) == ("unavailable", None)
    assert 1 <= refused.retry_after_s <= 60
    assert spot.count(SPOT_DEPTH) == 0


# -- replay: order book from the latest ticker, health -----------------------------------------


async def test_replay_order_book_from_the_latest_ticker_and_health(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    path = write_recording_slice(tmp_path / "slice.csv", 5, source=RECORDING)
    config = make_config(
        {
            "node": {"plugins": ["exchange_sync"]},
            "exchange_sync": {"source": "replay", "replay": {"path": str(path)}},
        }
    )
    async with started_node(config, channels.EXCHANGE_DATA) as (node, rec):
        await node.run(duration_s=30, handle_signals=False)
        last = rec.payloads(TickerBatch)[-1].tickers[-1]
        got = await ask(
            node,
            ORDER_BOOK,
            OrderBookRequest(exchange="ftx", market="futures", symbol="BTC/USD:USD"),
        )
        refused = [
            await ask(node, ORDER_BOOK, OrderBookRequest(exchange=e, market=m, symbol=s))  # type: ignore[arg-type]
            for e, m, s in (
                ("ftx", "futures", "ETH/USD:USD"),
                ("binance", "futures", "BTC/USD:USD"),
                ("ftx", "spot", "BTC/USD"),
            )
        ]
        bad_depth = await ask(
            node,
            ORDER_BOOK,
            OrderBookRequest(exchange="ftx", market="futures", symbol="BTC/USD:USD", depth=0),
        )
        rows = await health_rows(node)
        orders = await ask(node, OPEN_ORDERS, OpenOrdersRequest())

    assert last.bid is None and last.ask is None and last.last is not None  # bars: no book
    assert got == OrderBook(
        exchange="ftx",
        market="futures",
        symbol="BTC/USD:USD",
        bids=(BookLevel(price=last.last),),
        asks=(BookLevel(price=last.last),),
        exchange_ts_ns=last.exchange_ts_ns,
        received_ts_ns=last.received_ts_ns,
        source="ticker",
    )
    assert [(r.code, r.field) for r in refused] == [
        ("not_found", "symbol"),
        ("not_found", "exchange"),
        ("not_found", "market"),
    ]
    assert (bad_depth.code, bad_depth.field) == ("invalid", "depth")
    assert rows == {
        ("ftx", "futures"): ExchangeHealthRow(
            exchange="ftx",
            market="futures",
            breaker="closed",
            last_success_ts_ns=last.received_ts_ns,
            tickers=5,
            feed="replay",
        )
    }
    assert orders == OpenOrdersPage(total=0, items=())


def test_ticker_book_uses_bid_and_ask_when_the_ticker_has_them() -> None:
    ticker = Ticker(
        exchange="kraken",
        market="spot",
        symbol="BTC/USD",
        bid=D("41010.0"),
        ask=D("41012.5"),
        last=D("41011"),
        exchange_ts_ns=1_700_000_000_000_000_000,
        received_ts_ns=1_700_000_000_100_000_000,
    )
    request = OrderBookRequest(exchange="kraken", market="spot", symbol="BTC/USD", depth=5)
    got = ticker_order_book(request, [("kraken", "spot")], ticker)
    assert isinstance(got, OrderBook)
    assert (got.bids, got.asks) == (
        (BookLevel(price=D("41010.0")),),
        (BookLevel(price=D("41012.5")),),
    )
    assert got.bids[0].amount is None and got.source == "ticker"
    assert (got.exchange_ts_ns, got.received_ts_ns) == (
        ticker.exchange_ts_ns,
        ticker.received_ts_ns,
    )


# -- exchange_sync.open_orders (SQLite and PostgreSQL) -------------------------------------------


def order(
    exchange: str, market: str, symbol: str, order_id: str, created_s: int | None
) -> OpenOrder:
    return OpenOrder(
        exchange=exchange,
        market=market,  # type: ignore[arg-type]
        symbol=symbol,
        order_id=order_id,
        client_order_id=f"corec-{order_id}",
        side="buy" if order_id.endswith(("1", "3")) else "sell",
        type="limit",
        price=D("30000.5"),
        amount=D("0.125"),
        filled=D("0.025"),
        remaining=D("0.1"),
        created_ts_ns=None if created_s is None else created_s * 1_000_000_000,
    )


@pytest.fixture
def snapshots() -> Iterator[list[OpenOrdersSnapshot]]:
    def snap(exchange: str, market: str, taken_s: int, *orders: OpenOrder) -> OpenOrdersSnapshot:
        return OpenOrdersSnapshot(
            exchange=exchange,
            market=market,  # type: ignore[arg-type]
            taken_ts_ns=taken_s * 1_000_000_000,
            orders=orders,
        )

    yield [
        # alpha spot: an old snapshot, replaced by a newer one
        snap("alpha", "spot", 100, order("alpha", "spot", "BTC/USDT", "old-1", 50)),
        snap(
            "alpha",
            "spot",
            200,
            order("alpha", "spot", "BTC/USDT", "s-1", 150),
            order("alpha", "spot", "ETH/USDT", "s-2", 190),
            order("alpha", "spot", "BTC/USDT", "s-3", None),
        ),
        # alpha futures: one snapshot
        snap("alpha", "futures", 210, order("alpha", "futures", "BTC/USDT:USDT", "f-1", 170)),
        # beta spot: its orders were cancelled (the latest snapshot is empty)
        snap("beta", "spot", 120, order("beta", "spot", "BTC/USDT", "b-1", 110)),
        snap("beta", "spot", 220),
        # beta futures: one order
        snap("beta", "futures", 230, order("beta", "futures", "ETH/USDT:USDT", "bf-1", 160)),
    ]


async def test_open_orders_from_the_latest_snapshot_of_each_market(
    make_config: MakeConfig,
    tmp_path: Path,
    db_url: str,
    snapshots: list[OpenOrdersSnapshot],
) -> None:
    path = write_recording_slice(tmp_path / "slice.csv", 2, source=RECORDING)
    config = make_config(
        {
            "node": {"plugins": ["exchange_sync"]},
            "exchange_sync": {
                "source": "replay",
                "database_url": db_url,
                "replay": {"path": str(path)},
            },
        }
    )
    async with started_node(config) as (node, _):
        store = node.store("exchange_sync")
        assert store is not None
        for snapshot in snapshots:
            await save_open_orders(store, snapshot)

        async def ids(**request: Any) -> tuple[int, list[str]]:
            got = await ask(node, OPEN_ORDERS, OpenOrdersRequest(**request))
            assert isinstance(got, OpenOrdersPage), got
            return got.total, [o.order_id for o in got.items]

        everything = await ask(node, OPEN_ORDERS, OpenOrdersRequest())
        # newest first by created time; an order without one last
        assert await ids() == (5, ["s-2", "f-1", "bf-1", "s-1", "s-3"])
        assert everything.items[0] == order("alpha", "spot", "ETH/USDT", "s-2", 190)
        assert await ids(exchange="alpha") == (4, ["s-2", "f-1", "s-1", "s-3"])
        assert await ids(exchange="beta") == (1, ["bf-1"])
        assert await ids(market="futures") == (2, ["f-1", "bf-1"])
        assert await ids(exchange="alpha", market="spot") == (3, ["s-2", "s-1", "s-3"])
        # a pair matches its spot symbol and its perpetuals; a full symbol only itself
        assert await ids(symbol="BTC/USDT") == (3, ["f-1", "s-1", "s-3"])
        assert await ids(symbol="BTC/USDT:USDT") == (1, ["f-1"])
        assert await ids(symbol="SOL/USDT") == (0, [])
        assert await ids(exchange="gamma") == (0, [])
        # paging: total counts every match
        assert await ids(limit=2) == (5, ["s-2", "f-1"])
        assert await ids(limit=2, offset=2) == (5, ["bf-1", "s-1"])
        assert await ids(limit=2, offset=4) == (5, ["s-3"])
        assert await ids(offset=10) == (5, [])

        refusals = [
            await ask(node, OPEN_ORDERS, OpenOrdersRequest(market="margin")),  # type: ignore[arg-type]
            await ask(node, OPEN_ORDERS, OpenOrdersRequest(limit=0)),
            await ask(node, OPEN_ORDERS, OpenOrdersRequest(limit=1001)),
            await ask(node, OPEN_ORDERS, OpenOrdersRequest(offset=-1)),
        ]
        assert [(r.code, r.field) for r in refusals] == [
            ("invalid", "market"),
            ("invalid", "limit"),
            ("invalid", "limit"),
            ("invalid", "offset"),
        ]


def test_endpoints_are_declared() -> None:
    assert set(ExchangeSyncPlugin.serves) >= {HEALTH, OPEN_ORDERS, ORDER_BOOK}
