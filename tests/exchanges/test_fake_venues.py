"""The fake venues against the real ccxt.async_support classes (loopback only).

Every case runs one CCXT class with its URLs rewritten by ``rewrite_api_urls`` onto a
:mod:`fake_venues` server, ``enableRateLimit`` on (``rateLimit`` lowered so the suite
stays fast), then CoreC's own :class:`CcxtTickerSource` against the same servers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import ccxt
import ccxt.async_support as ccxt_async
import pytest

from corec.core.clock import SystemClock
from corec.core.errors import TemporaryExchangeError
from corec.exchanges.ccxt_source import _LOAD_TYPES, CcxtTickerSource
from corec.exchanges.credentials import Credentials

from .fake_venues import (
    API_KEY,
    API_PASSWORD,
    API_SECRET,
    FAULTS,
    RETRY_AFTER_S,
    VENUE_IDS,
    FakeVenue,
    FakeVenues,
    Fault,
    KucoinVenue,
    VenueFactory,
    create_venue,
    fake_venue_factory,  # noqa: F401 - a fixture
    make_exchange,
)

FAST_RATE_LIMIT_MS = 2
TS_MS = 1_700_000_005_000


@dataclass(frozen=True)
class Case:
    """One CCXT class and market, and what CCXT 4.5.90 gives back for it."""

    venue_id: str
    market: Literal["spot", "futures"]
    # fetch_tickers carries bid/ask (binanceusdm's 24 h ticker and kucoinfutures' default
    # /api/v1/contracts/active have none).
    book_in_tickers: bool = True
    # fetch_ticker carries bid/ask (binanceusdm: the same 24 h ticker without a book).
    book_in_ticker: bool = True
    # The venue's ticker rows carry a time (bybit and kraken send none; kucoinfutures'
    # contracts/active neither).
    time_in_tickers: bool = True
    # fetch_open_orders arguments.
    order_params: dict[str, Any] = field(default_factory=dict)
    # krakenfutures' parse_order leaves price None on purpose (ccxt issue 27996).
    price_in_orders: bool = True
    # headers a signed request must carry; the first holds the API key itself.
    auth_headers: tuple[str, ...] = ()

    @property
    def kind(self) -> Literal["spot", "swap"]:
        return "spot" if self.market == "spot" else "swap"

    def __str__(self) -> str:
        return f"{self.venue_id}-{self.market}"


CASES = [
    Case("binance", "spot", auth_headers=("X-MBX-APIKEY",)),
    Case(
        "binanceusdm",
        "futures",
        book_in_tickers=False,
        book_in_ticker=False,
        auth_headers=("X-MBX-APIKEY",),
    ),
    Case("kucoin", "spot", auth_headers=("KC-API-KEY", "KC-API-PASSPHRASE")),
    Case(
        "kucoinfutures",
        "futures",
        book_in_tickers=False,
        time_in_tickers=False,
        auth_headers=("KC-API-KEY", "KC-API-PASSPHRASE"),
    ),
    # bybit's defaultType is swap: spot open orders need type=spot (or a spot symbol).
    Case(
        "bybit",
        "spot",
        time_in_tickers=False,
        order_params={"type": "spot"},
        auth_headers=("X-BAPI-API-KEY",),
    ),
    Case("bybit", "futures", time_in_tickers=False, auth_headers=("X-BAPI-API-KEY",)),
    Case(
        "okx",
        "spot",
        order_params={"instType": "SPOT"},
        auth_headers=("OK-ACCESS-KEY", "OK-ACCESS-PASSPHRASE"),
    ),
    Case(
        "okx",
        "futures",
        order_params={"instType": "SWAP"},
        auth_headers=("OK-ACCESS-KEY", "OK-ACCESS-PASSPHRASE"),
    ),
    Case("kraken", "spot", time_in_tickers=False, auth_headers=("API-Key",)),
    Case("krakenfutures", "futures", price_in_orders=False, auth_headers=("APIKey",)),
]
CASE_IDS = [str(c) for c in CASES]
# One case per class (bybit and okx: spot), for tests that need not run both markets.
ONE_PER_CLASS = [c for c in CASES if str(c) not in ("bybit-futures", "okx-futures")]

# Malformed/empty 200 bodies: these classes swallow the parse failure and return {}
# from fetch_tickers instead of raising (see the CcxtTickerSource tests below).
SILENT_ON_BAD_BODY = {"kucoin", "bybit", "okx", "kraken"}


def narrow(exchange: ccxt_async.Exchange, market: str) -> None:
    """Load only ``market``'s types, as CcxtTickerSource does."""
    current = exchange.options.get("fetchMarkets")
    if isinstance(current, dict) and isinstance(current.get("types"), list):
        types = [t for t in current["types"] if t in _LOAD_TYPES[market]]
        exchange.options["fetchMarkets"] = {**current, "types": types}


def api_urls(urls: Any) -> Iterator[str]:
    if isinstance(urls, str):
        yield urls
    elif isinstance(urls, dict):
        for value in urls.values():
            yield from api_urls(value)
    elif isinstance(urls, list):
        for value in urls:
            yield from api_urls(value)


def assert_only_fake(exchange: ccxt_async.Exchange, fake: FakeVenue) -> None:
    """Every API URL points at the fake, and the fake knew every path it was asked."""
    absolute = [u for u in api_urls(exchange.urls["api"]) if "://" in u]
    assert absolute
    assert all(u.startswith(fake.base_url) for u in absolute), absolute
    assert fake.requests
    assert fake.unhandled == []


@asynccontextmanager
async def venue(case: Case, *, extra_symbols: int = 0) -> AsyncIterator[FakeVenue]:
    async with create_venue(case.venue_id, extra_symbols=extra_symbols) as fake:
        yield fake


@asynccontextmanager
async def connect(
    case: Case,
    fake: FakeVenue,
    *,
    credentials: bool = False,
    narrowed: bool = True,
    load: bool = True,
    **config: Any,
) -> AsyncIterator[ccxt_async.Exchange]:
    config.setdefault("rateLimit", FAST_RATE_LIMIT_MS)
    exchange = make_exchange(case.venue_id, fake, credentials=credentials, **config)
    if narrowed:
        narrow(exchange, case.market)
    try:
        if load:
            await exchange.load_markets()
        yield exchange
    finally:
        await exchange.close()


def set_two_tickers(fake: FakeVenue, case: Case) -> dict[str, tuple[str, str, str]]:
    """Give BTC and ETH distinctive prices; return symbol → (bid, ask, last)."""
    btc, eth = fake.symbols(case.kind)[:2]
    wanted = {btc: ("41000.5", "41001.25", "41000.75"), eth: ("2222.22", "2222.33", "2222.3")}
    for symbol, (bid, ask, last) in wanted.items():
        fake.set_ticker(symbol, bid=bid, ask=ask, last=last, timestamp_ms=TS_MS)
    return wanted


# -- load_markets -----------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
async def test_load_markets_lists_the_fake_markets(case: Case) -> None:
    async with venue(case) as fake, connect(case, fake) as exchange:
        symbols = fake.symbols(case.kind)
        assert symbols[:3] == [
            f"{base}/{fake.markets[symbols[0]].quote}"
            + (f":{fake.markets[symbols[0]].quote}" if case.kind == "swap" else "")
            for base in ("BTC", "ETH", "SOL")
        ]
        for symbol in symbols:
            market = exchange.markets[symbol]
            assert market["spot"] is (case.kind == "spot"), symbol
            assert market["swap"] is (case.kind == "swap"), symbol
            assert market["id"] == fake.market_id(fake.markets[symbol])
        # narrowed: the other kind is not loaded
        other = "swap" if case.kind == "spot" else "spot"
        assert not set(fake.symbols(other)) & set(exchange.markets)
        assert_only_fake(exchange, fake)


@pytest.mark.parametrize("case", ONE_PER_CLASS, ids=[c.venue_id for c in ONE_PER_CLASS])
async def test_load_markets_without_narrowing_loads_every_type(case: Case) -> None:
    async with venue(case) as fake, connect(case, fake, narrowed=False) as exchange:
        expected = set(fake.markets)
        if case.venue_id in ("binanceusdm", "kucoinfutures"):  # futures-only classes
            expected = set(fake.symbols("swap"))
        assert expected <= set(exchange.markets)
        assert_only_fake(exchange, fake)


async def test_kraken_symbols_come_from_the_assets_endpoint() -> None:
    case = Case("kraken", "spot")
    async with venue(case) as fake, connect(case, fake) as exchange:
        assert exchange.markets["BTC/USD"]["id"] == "XXBTZUSD"
        assert fake.paths() == ["/0/public/Assets", "/0/public/AssetPairs"]


# -- tickers ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
async def test_fetch_tickers_is_one_request_with_the_fake_prices(case: Case) -> None:
    async with venue(case) as fake, connect(case, fake) as exchange:
        wanted = set_two_tickers(fake, case)
        fake.clear()
        tickers = await exchange.fetch_tickers(list(wanted))
        assert fake.ticker_requests() == 1
        assert len(fake.requests) == 1
        assert set(tickers) == set(wanted)
        for symbol, (bid, ask, last) in wanted.items():
            got = tickers[symbol]
            assert got["last"] == float(last)
            if case.book_in_tickers:
                assert (got["bid"], got["ask"]) == (float(bid), float(ask))
            else:
                assert (got["bid"], got["ask"]) == (None, None)
            assert got["timestamp"] == (TS_MS if case.time_in_tickers else None)
        assert_only_fake(exchange, fake)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
async def test_fetch_ticker_gives_the_fake_book(case: Case) -> None:
    async with venue(case) as fake, connect(case, fake) as exchange:
        wanted = set_two_tickers(fake, case)
        symbol = next(iter(wanted))
        bid, ask, last = wanted[symbol]
        fake.clear()
        got = await exchange.fetch_ticker(symbol)
        assert fake.ticker_requests() == 1
        assert got["symbol"] == symbol
        assert got["last"] == float(last)
        if case.book_in_ticker:
            assert (got["bid"], got["ask"]) == (float(bid), float(ask))
        else:
            assert (got["bid"], got["ask"]) == (None, None)


async def test_kucoinfutures_all_tickers_method_carries_the_book() -> None:
    case = Case("kucoinfutures", "futures")
    options = {"fetchTickers": {"method": "futuresPublicGetAllTickers"}}
    async with venue(case) as fake, connect(case, fake, options=options) as exchange:
        wanted = set_two_tickers(fake, case)
        fake.clear()
        tickers = await exchange.fetch_tickers(list(wanted))
        assert fake.paths() == ["/api/v1/allTickers"]
        for symbol, (bid, ask, last) in wanted.items():
            got = tickers[symbol]
            assert (got["bid"], got["ask"], got["last"]) == (float(bid), float(ask), float(last))
            assert got["timestamp"] == TS_MS  # ts sent in ns


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
async def test_fetch_tickers_requests_do_not_grow_with_symbols(case: Case) -> None:
    async with venue(case, extra_symbols=100) as fake, connect(case, fake) as exchange:
        symbols = fake.symbols(case.kind)
        assert len(symbols) == 103
        counts = []
        for n in (1, 10, 100):
            fake.clear()
            tickers = await exchange.fetch_tickers(symbols[-n:])
            assert set(tickers) == set(symbols[-n:])
            counts.append(len(fake.requests))
        assert counts == [1, 1, 1]
        c0100 = tickers[symbols[-1]]
        assert c0100["last"] == float(fake.tickers[symbols[-1]].last or 0)


async def test_set_ticker_none_sends_an_empty_bid() -> None:
    case = Case("binance", "spot")
    async with venue(case) as fake, connect(case, fake) as exchange:
        fake.set_ticker("BTC/USDT", bid=None, ask="50000")
        got = await exchange.fetch_ticker("BTC/USDT")
        assert got["bid"] is None
        assert got["ask"] == 50000.0


# -- open orders ------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
async def test_fetch_open_orders_sends_the_key_and_returns_the_fake_orders(case: Case) -> None:
    options = {"warnOnFetchOpenOrdersWithoutSymbol": False}
    async with (
        venue(case) as fake,
        connect(case, fake, credentials=True, options=options) as exchange,
    ):
        fake.clear()
        orders = await exchange.fetch_open_orders(params=dict(case.order_params))
        expected = [o for o in fake.open_orders if fake.markets[o.symbol].kind == case.kind]
        assert len(expected) == 2
        got = {o["id"]: o for o in orders}
        assert len(got) == len(orders) == 2
        for want in expected:
            order = next(o for o in orders if o["clientOrderId"] == want.client_order_id)
            assert order["symbol"] == want.symbol
            assert order["side"] == want.side
            assert order["amount"] == float(want.amount)
            assert order["filled"] == float(want.filled)
            assert order["status"] == "open"
            assert order["price"] == (float(want.price) if case.price_in_orders else None)
            assert order["timestamp"] == want.created_ms
        signed = fake.auth_requests()
        assert signed, "no request carried the API key"
        for request in signed:
            headers = {k.lower(): v for k, v in request.headers.items()}
            assert headers[case.auth_headers[0].lower()] == API_KEY
            for name in case.auth_headers[1:]:
                assert headers[name.lower()]
        if case.venue_id == "okx":
            assert signed[-1].headers["OK-ACCESS-PASSPHRASE"] == API_PASSWORD
        assert_only_fake(exchange, fake)


async def test_private_endpoint_without_key_is_refused() -> None:
    case = Case("binance", "spot")
    async with venue(case) as fake, connect(case, fake) as exchange:
        exchange.apiKey = ""
        exchange.secret = "c2VjcmV0"
        with pytest.raises(ccxt.AuthenticationError):
            await exchange.fetch_open_orders("BTC/USDT")


# -- faults -----------------------------------------------------------------------------


def ticker_call(exchange: ccxt_async.Exchange, fake: FakeVenue, case: Case) -> Any:
    return exchange.fetch_tickers(fake.symbols(case.kind)[:2])


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
async def test_rate_limit_429_surfaces_with_retry_after(case: Case) -> None:
    async with venue(case) as fake, connect(case, fake) as exchange:
        fake.fail_next("rate_limit_429")
        with pytest.raises((ccxt.RateLimitExceeded, ccxt.DDoSProtection)):
            await ticker_call(exchange, fake, case)
        assert exchange.last_response_headers["Retry-After"] == str(RETRY_AFTER_S)
        # the fault is used up: the next call succeeds
        assert await ticker_call(exchange, fake, case)


async def test_binance_ban_418_is_ddos_protection() -> None:
    case = Case("binance", "spot")
    async with venue(case) as fake, connect(case, fake) as exchange:
        fake.fail_next("ban_418")
        with pytest.raises(ccxt.DDoSProtection):
            await ticker_call(exchange, fake, case)
        assert exchange.last_response_headers["Retry-After"] == "120"


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
async def test_server_error_500_is_exchange_not_available(case: Case) -> None:
    async with venue(case) as fake, connect(case, fake) as exchange:
        fake.fail_next("server_error_500")
        with pytest.raises((ccxt.ExchangeNotAvailable, ccxt.ExchangeError)):
            await ticker_call(exchange, fake, case)


@pytest.mark.parametrize("fault", ["malformed_json", "empty_body"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
async def test_bad_bodies_do_not_hang(case: Case, fault: Fault) -> None:
    async with venue(case) as fake, connect(case, fake) as exchange:
        fake.fail_next(fault)
        try:
            result = await asyncio.wait_for(ticker_call(exchange, fake, case), 5)
        except TimeoutError:
            pytest.fail(f"{case} hung on {fault}")
        except Exception as exc:  # CCXT lets its parser trip: AttributeError
            assert case.venue_id not in SILENT_ON_BAD_BODY, exc
        else:
            assert case.venue_id in SILENT_ON_BAD_BODY
            assert result == {}


async def test_timeout_fault_is_a_request_timeout() -> None:
    case = Case("okx", "spot")
    async with venue(case) as fake, connect(case, fake, timeout=200) as exchange:
        fake.fail_next("timeout", path="/api/v5/market/tickers")
        with pytest.raises(ccxt.RequestTimeout):
            await ticker_call(exchange, fake, case)


async def test_fault_for_one_path_spares_the_others() -> None:
    case = Case("kraken", "spot")
    async with venue(case) as fake:
        fake.fail_next("server_error_500", path="/0/public/Ticker", times=2)
        async with connect(case, fake) as exchange:  # loads Assets and AssetPairs
            for _ in range(2):
                with pytest.raises(ccxt.ExchangeNotAvailable):
                    await ticker_call(exchange, fake, case)
            assert await ticker_call(exchange, fake, case)


async def test_a_down_venue_fails_every_request_until_back_up() -> None:
    case = Case("bybit", "futures")
    async with venue(case) as fake, connect(case, fake, load=False) as exchange:
        fake.down = True
        for _ in range(2):
            with pytest.raises(ccxt.ExchangeNotAvailable):
                await exchange.load_markets()
        fake.down = False
        await exchange.load_markets()
        assert await ticker_call(exchange, fake, case)


def test_fail_next_rejects_unknown_faults() -> None:
    fake = create_venue("okx")
    with pytest.raises(ValueError, match="unknown fault"):
        fake.fail_next("teapot")  # type: ignore[arg-type]
    assert "empty_body" in FAULTS


async def test_fake_venue_factory_fixture(
    fake_venue_factory: VenueFactory,  # noqa: F811 - the imported fixture
) -> None:
    fake = await fake_venue_factory("kucoinfutures", extra_symbols=1)
    assert fake.base_url.startswith("http://127.0.0.1:")
    assert fake.symbols("swap")[-1] == "C0001/USDT:USDT"
    assert fake.symbols("spot")  # kucoinfutures loads the kucoin spot API too


async def test_unknown_paths_get_a_404_and_are_listed() -> None:
    case = Case("binance", "spot")
    async with venue(case) as fake, connect(case, fake) as exchange:
        with pytest.raises(ccxt.BaseError):
            await exchange.fetch_order_book("BTC/USDT")
        assert [r.path for r in fake.unhandled] == ["/api/v3/depth"]


async def test_fake_venues_start_one_server_per_class() -> None:
    async with FakeVenues.start(extra_symbols=2) as venues:
        assert list(venues) == list(VENUE_IDS)
        urls = {fake.base_url for fake in venues.values()}
        assert len(urls) == len(VENUE_IDS)
        assert all(url.startswith("http://127.0.0.1:") for url in urls)
        assert "C0002/USDT" in venues["kucoin"].markets
        assert "C0002/USD:USD" in venues["krakenfutures"].markets


# -- CoreC's CcxtTickerSource -----------------------------------------------------------


def _fast_class(cls: type[ccxt_async.Exchange]) -> type[ccxt_async.Exchange]:
    class Fast(cls):  # type: ignore[misc, valid-type]
        timeout_on_exit = 0  # close() waits 250 ms for TLS; loopback is plain HTTP

        def describe(self) -> Any:
            return self.deep_extend(super().describe(), {"rateLimit": FAST_RATE_LIMIT_MS})

    Fast.__name__ = Fast.__qualname__ = cls.__name__
    return Fast


@pytest.fixture
def fast_ccxt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the CCXT classes CcxtTickerSource builds pace at 2 ms and close at once.

    CcxtTickerSource keeps CCXT's rate limiter on with each class's own ``rateLimit``
    (binance: 50 ms x a weight of 20-40 per call, kraken: 1 s a call), which would make
    this file take a minute. The subclasses change only the pacing, not a request.
    """
    for venue_id in VENUE_IDS:
        monkeypatch.setattr(ccxt_async, venue_id, _fast_class(getattr(ccxt_async, venue_id)))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.usefixtures("fast_ccxt")
async def test_ccxt_ticker_source_reads_the_fake(case: Case) -> None:
    async with venue(case) as fake:
        wanted = set_two_tickers(fake, case)
        async with CcxtTickerSource(
            case.venue_id,
            case.market,
            list(wanted),
            clock=SystemClock(),
            api_url=fake.base_url,
        ) as source:
            tickers = await source.fetch()
            fake.clear()
            again = await source.fetch()
        # binanceusdm's 24 h tickers have no book: CoreC adds one bookTicker request
        per_poll = 2 if case.venue_id == "binanceusdm" else 1
        assert fake.ticker_requests() == len(fake.requests) == per_poll
        assert [t.symbol for t in again] == list(wanted)
        assert [t.symbol for t in tickers] == list(wanted)
        for ticker in tickers:
            bid, ask, last = wanted[ticker.symbol]
            assert ticker.exchange == case.venue_id
            assert ticker.market == case.market
            assert ticker.last == Decimal(last)
            # CoreC gets the book on every class (see _CLASS_OPTIONS and fetch_bids_asks)
            assert (ticker.bid, ticker.ask) == (Decimal(bid), Decimal(ask))
            if case.time_in_tickers or case.venue_id == "kucoinfutures":
                assert ticker.exchange_ts_ns == TS_MS * 1_000_000
            else:
                assert ticker.exchange_ts_ns == ticker.received_ts_ns
            if case.venue_id == "kucoinfutures":  # allTickers: the book, but no 24 h volume
                assert ticker.base_volume is None
            else:
                assert ticker.base_volume == fake.tickers[ticker.symbol].base_volume * (
                    100 if case.venue_id == "okx" and case.market == "futures" else 1
                )
        assert source.missing == source.skipped == 0
        assert fake.unhandled == []


@pytest.mark.parametrize("case", ONE_PER_CLASS, ids=[c.venue_id for c in ONE_PER_CLASS])
@pytest.mark.usefixtures("fast_ccxt")
async def test_ccxt_ticker_source_maps_429_to_temporary_with_retry_after(case: Case) -> None:
    async with venue(case) as fake:
        symbols = fake.symbols(case.kind)[:1]
        async with CcxtTickerSource(
            case.venue_id, case.market, symbols, clock=SystemClock(), api_url=fake.base_url
        ) as source:
            await source.fetch()
            fake.fail_next("rate_limit_429")
            with pytest.raises(TemporaryExchangeError) as caught:
                await source.fetch()
        assert caught.value.retry_after_s == RETRY_AFTER_S


@pytest.mark.parametrize("fault", ["malformed_json", "empty_body"])
@pytest.mark.parametrize("case", ONE_PER_CLASS, ids=lambda c: c.venue_id)
@pytest.mark.usefixtures("fast_ccxt")
async def test_ccxt_ticker_source_maps_bad_bodies_to_temporary(case: Case, fault: Fault) -> None:
    async with venue(case) as fake:
        symbols = fake.symbols(case.kind)[:1]
        async with CcxtTickerSource(
            case.venue_id, case.market, symbols, clock=SystemClock(), api_url=fake.base_url
        ) as source:
            await source.fetch()
            fake.fail_next(fault)
            with pytest.raises(TemporaryExchangeError):
                await source.fetch()


# Regression: bybit (default linear) and okx (every instrument type) answered the other
# market's orders when CcxtTickerSource did not pass the market type.
@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.usefixtures("fast_ccxt")
async def test_ccxt_ticker_source_open_orders_are_the_markets_orders(case: Case) -> None:
    async with venue(case) as fake:
        symbols = fake.symbols(case.kind)[:2]
        credentials = Credentials(API_KEY, API_SECRET, API_PASSWORD)
        async with CcxtTickerSource(
            case.venue_id,
            case.market,
            symbols,
            clock=SystemClock(),
            api_url=fake.base_url,
            credentials=credentials,
        ) as source:
            orders = await source.fetch_open_orders()
        expected = {
            (o.symbol, o.side, o.price if case.price_in_orders else None, o.amount)
            for o in fake.open_orders
            if fake.markets[o.symbol].kind == case.kind
        }
        assert {(o.symbol, o.side, o.price, o.amount) for o in orders} == expected
        assert {o.market for o in orders} == {case.market}
        assert fake.auth_requests()


@pytest.mark.usefixtures("fast_ccxt")
async def test_ccxt_ticker_source_open_orders_on_a_kucoin_hf_account() -> None:
    # An HF account makes CCXT require a symbol: CcxtTickerSource asks once per symbol.
    case = Case("kucoin", "spot")
    async with venue(case) as fake:
        assert isinstance(fake, KucoinVenue)
        fake.hf_account = True
        credentials = Credentials(API_KEY, API_SECRET, API_PASSWORD)
        async with CcxtTickerSource(
            "kucoin",
            "spot",
            ["BTC/USDT", "ETH/USDT"],
            clock=SystemClock(),
            api_url=fake.base_url,
            credentials=credentials,
        ) as source:
            orders = await source.fetch_open_orders()
        assert sorted((o.symbol, o.side) for o in orders) == [
            ("BTC/USDT", "buy"),
            ("ETH/USDT", "sell"),
        ]
        assert fake.count("/api/v1/hf/orders/active") == 2
