"""CcxtTickerSource against a loopback Binance spot API (never the internet)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import ccxt
import msgspec
import pytest

from corec.core.clock import ReplayClock
from corec.core.errors import (
    ExchangeError,
    PermanentExchangeError,
    TemporaryExchangeError,
)
from corec.core.resilience import retry
from corec.exchanges.ccxt_source import CcxtTickerSource, map_ccxt_error, rewrite_api_urls
from corec.messages.exchange_data import Ticker

from .fake_exchange import FakeBinance, ticker_24hr

NOW_NS = 1_700_000_010_000_000_000
TICKER_PATH = "/api/v3/ticker/24hr"
INFO_PATH = "/api/v3/exchangeInfo"

BTC = Ticker(
    exchange="binance",
    market="spot",
    symbol="BTC/USDT",
    bid=Decimal("37342.35"),
    ask=Decimal("37342.36"),
    last=Decimal("37342.36"),
    base_volume=Decimal("29754.50374"),
    quote_volume=Decimal("1103906524.61298"),
    exchange_ts_ns=1_700_000_001_234_000_000,
    received_ts_ns=NOW_NS,
)
ETH = Ticker(
    exchange="binance",
    market="spot",
    symbol="ETH/USDT",
    bid=Decimal("2024.61"),
    ask=Decimal("2024.62"),
    last=Decimal("2024.61"),
    base_volume=Decimal("401262.3829"),
    quote_volume=Decimal("810958290.198645"),
    exchange_ts_ns=1_700_000_002_345_000_000,
    received_ts_ns=NOW_NS,
)

MakeSource = Callable[..., CcxtTickerSource]


@pytest.fixture
async def server() -> AsyncIterator[FakeBinance]:
    fake = FakeBinance()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
def clock() -> ReplayClock:
    return ReplayClock(NOW_NS)


@pytest.fixture
async def make_source(server: FakeBinance, clock: ReplayClock) -> AsyncIterator[MakeSource]:
    made: list[CcxtTickerSource] = []

    def make(
        symbols: tuple[str, ...] = ("BTC/USDT", "ETH/USDT"), **kwargs: Any
    ) -> CcxtTickerSource:
        kwargs.setdefault("api_url", server.url)
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("timeout_s", 2.0)
        market = kwargs.pop("market", "spot")
        source = CcxtTickerSource("binance", market, symbols, **kwargs)
        made.append(source)
        return source

    yield make
    for source in made:
        await source.close()


# -- values -------------------------------------------------------------------------------


async def test_fetch_returns_the_exact_decimals_the_server_sent(
    server: FakeBinance, make_source: MakeSource
) -> None:
    source = make_source()

    tickers = await source.fetch()

    assert tickers == [BTC, ETH]
    for ticker in tickers:
        for value in (ticker.bid, ticker.ask, ticker.last, ticker.base_volume):
            assert type(value) is Decimal
    assert source.skipped == 0
    assert source.missing == 0


async def test_load_markets_is_narrowed_to_spot_and_one_poll_is_one_request(
    server: FakeBinance, make_source: MakeSource
) -> None:
    source = make_source()

    await source.fetch()

    # Without narrowing, ccxt's binance also loads /fapi/v1 and /dapi/v1 exchangeInfo.
    assert server.paths() == [INFO_PATH, TICKER_PATH]
    assert server.requests[1].query == {"symbols": '["BTCUSDT","ETHUSDT"]'}
    assert source.requests_made == 2


async def test_explicit_fetch_markets_option_is_respected(
    server: FakeBinance, make_source: MakeSource
) -> None:
    source = make_source(options={"fetchMarkets": {"types": ["spot", "linear"]}})

    with pytest.raises(TemporaryExchangeError) as info:
        await source.fetch()

    # The fake has no futures API: its 404 is ccxt's ExchangeNotAvailable.
    assert "/fapi/v1/exchangeInfo" in server.paths()
    assert isinstance(info.value.__cause__, ccxt.ExchangeNotAvailable)


async def test_second_fetch_reuses_markets_and_makes_one_request(
    server: FakeBinance, make_source: MakeSource, clock: ReplayClock
) -> None:
    source = make_source()
    await source.fetch()
    server.tickers["BTCUSDT"]["bidPrice"] = "37400.01000000"
    server.tickers["BTCUSDT"]["askPrice"] = "37400.02000000"
    server.tickers["BTCUSDT"]["closeTime"] = 1_700_000_011_000
    clock.advance_to(NOW_NS + 5_000_000_000)

    tickers = await source.fetch()

    assert server.count(INFO_PATH) == 1
    assert server.count(TICKER_PATH) == 2
    assert len(server.requests) == 3
    assert source.requests_made == 3
    assert tickers[0].bid == Decimal("37400.01")
    assert tickers[0].ask == Decimal("37400.02")
    assert tickers[0].exchange_ts_ns == 1_700_000_011_000_000_000
    assert tickers[0].received_ts_ns == NOW_NS + 5_000_000_000
    assert tickers[1] == msgspec.structs.replace(ETH, received_ts_ns=NOW_NS + 5_000_000_000)


async def test_only_the_symbols_asked_for_are_returned(
    server: FakeBinance, make_source: MakeSource
) -> None:
    server.ignore_symbols_filter = True  # the server answers every market it has
    source = make_source()

    tickers = await source.fetch()

    assert len(server.requests[-1].query) == 1  # the request still named the symbols
    assert [t.symbol for t in tickers] == ["BTC/USDT", "ETH/USDT"]


async def test_bad_prices_become_none_and_empty_tickers_are_skipped(
    server: FakeBinance, make_source: MakeSource
) -> None:
    common = {"volume": "10.00000000", "quote_volume": "1000.00000000"}
    # Binance sends zeros for an empty book side.
    server.tickers["BTCUSDT"] = ticker_24hr(
        "BTCUSDT",
        bid="0.00000000",
        ask="0.00000000",
        last="37342.36000000",
        close_time_ms=1_700_000_001_234,
        **common,
    )
    # A crossed book: both sides are dropped, last is kept.
    server.tickers["ETHUSDT"] = ticker_24hr(
        "ETHUSDT",
        bid="2025.00000000",
        ask="2024.00000000",
        last="2024.50000000",
        close_time_ms=1_700_000_002_345,
        **common,
    )
    # Nothing usable at all (a halted market, as Binance reports it): skipped. Its
    # open/change must be zero too, or ccxt's safe_ticker invents last = open + change.
    server.tickers["BNBUSDT"] = ticker_24hr(
        "BNBUSDT",
        bid="0.00000000",
        ask="-1.00000000",
        last="0.00000000",
        close_time_ms=1_700_000_003_456,
        openPrice="0.00000000",
        priceChange="0.00000000",
        priceChangePercent="0.000",
        weightedAvgPrice="0.00000000",
        **common,
    )
    source = make_source(("BTC/USDT", "ETH/USDT", "BNB/USDT"))

    tickers = await source.fetch()

    assert [t.symbol for t in tickers] == ["BTC/USDT", "ETH/USDT"]
    btc, eth = tickers
    assert (btc.bid, btc.ask, btc.last) == (None, None, Decimal("37342.36"))
    assert (eth.bid, eth.ask, eth.last) == (None, None, Decimal("2024.5"))
    assert btc.base_volume == Decimal("10")
    assert source.skipped == 1


async def test_more_digits_than_a_float_holds_keep_the_float_repr(
    server: FakeBinance, make_source: MakeSource
) -> None:
    # CCXT parses "1103906524.61298530" (18 significant digits) into a float; the
    # boundary conversion Decimal(str(x)) keeps the float's shortest repr (17 digits),
    # never its binary expansion (Decimal(x) would give 1103906524.6129853725...).
    server.tickers["BTCUSDT"]["quoteVolume"] = "1103906524.61298530"
    source = make_source(("BTC/USDT",))

    (ticker,) = await source.fetch()

    assert ticker.quote_volume is not None
    assert ticker.quote_volume.as_tuple() == Decimal("1103906524.6129854").as_tuple()


async def test_missing_exchange_timestamp_falls_back_to_receive_time(
    server: FakeBinance, make_source: MakeSource
) -> None:
    del server.tickers["BTCUSDT"]["closeTime"]
    source = make_source(("BTC/USDT",))

    (ticker,) = await source.fetch()

    assert ticker.exchange_ts_ns == NOW_NS
    assert ticker.received_ts_ns == NOW_NS


async def test_without_fetch_tickers_one_request_per_symbol(
    server: FakeBinance, make_source: MakeSource
) -> None:
    source = make_source()
    source._exchange.has["fetchTickers"] = False

    tickers = await source.fetch()

    assert tickers == [BTC, ETH]
    assert server.paths() == [INFO_PATH, TICKER_PATH, TICKER_PATH]
    assert [r.query for r in server.requests[1:]] == [{"symbol": "BTCUSDT"}, {"symbol": "ETHUSDT"}]
    assert source.requests_made == 3


# -- faults -------------------------------------------------------------------------------


async def test_429_is_temporary_with_retry_after(
    server: FakeBinance, make_source: MakeSource
) -> None:
    source = make_source()
    server.fail_next("rate_limit_429", path=TICKER_PATH)

    with pytest.raises(TemporaryExchangeError) as info:
        await source.fetch()

    assert info.value.retry_after_s == 7
    assert info.value.exchange == "binance"
    # Binance's handler raises DDoSProtection (not RateLimitExceeded) for 429.
    assert isinstance(info.value.__cause__, ccxt.DDoSProtection)
    # The next poll works again and does not reload markets.
    assert await source.fetch() == [BTC, ETH]
    assert server.count(INFO_PATH) == 1


async def test_418_ban_is_temporary_with_retry_after(
    server: FakeBinance, make_source: MakeSource
) -> None:
    source = make_source()
    server.fail_next("ban_418", path=TICKER_PATH)

    with pytest.raises(TemporaryExchangeError) as info:
        await source.fetch()

    assert info.value.retry_after_s == 120


async def test_retry_honours_retry_after_then_succeeds(
    server: FakeBinance, make_source: MakeSource
) -> None:
    source = make_source()
    server.fail_next("rate_limit_429", path=TICKER_PATH)
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    # base_delay_s=1.0: any other value makes resilience.retry pass tenacity's deprecated
    # `initial` argument, a DeprecationWarning that pytest turns into an error. Backoff
    # alone would wait 1-2 s here; only Retry-After can make it 7.
    tickers = await retry(source.fetch, base_delay_s=1.0, sleep=fake_sleep)

    assert tickers == [BTC, ETH]
    assert len(slept) == 1
    assert slept[0] >= 7


async def test_500_is_temporary(server: FakeBinance, make_source: MakeSource) -> None:
    source = make_source()
    server.fail_next("server_error_500", path=TICKER_PATH)

    with pytest.raises(TemporaryExchangeError) as info:
        await source.fetch()

    # A bare 5xx: ccxt's httpExceptions table says ExchangeNotAvailable.
    assert isinstance(info.value.__cause__, ccxt.ExchangeNotAvailable)
    assert info.value.retry_after_s is None


async def test_500_with_binance_unknown_error_body_is_temporary(
    server: FakeBinance, make_source: MakeSource
) -> None:
    source = make_source()
    server.fail_next("unknown_error_500", path=TICKER_PATH)

    with pytest.raises(TemporaryExchangeError) as info:
        await source.fetch()

    # -1000 is OperationFailed: neither a NetworkError nor an ExchangeError.
    cause = info.value.__cause__
    assert type(cause) is ccxt.OperationFailed


async def test_load_markets_failure_is_retried_on_next_fetch(
    server: FakeBinance, make_source: MakeSource
) -> None:
    source = make_source()
    server.fail_next("server_error_500", path=INFO_PATH)

    with pytest.raises(TemporaryExchangeError):
        await source.fetch()
    tickers = await source.fetch()

    assert tickers == [BTC, ETH]
    assert server.paths() == [INFO_PATH, INFO_PATH, TICKER_PATH]


async def test_timeout_is_temporary_and_ignores_stale_headers(
    server: FakeBinance, make_source: MakeSource
) -> None:
    source = make_source(timeout_s=0.3)
    server.fail_next("rate_limit_429", path=TICKER_PATH)
    with pytest.raises(TemporaryExchangeError):
        await source.fetch()
    server.fail_next("timeout", path=TICKER_PATH)

    with pytest.raises(TemporaryExchangeError) as info:
        await source.fetch()

    assert isinstance(info.value.__cause__, ccxt.RequestTimeout)
    # The 429's Retry-After must not leak into the next error.
    assert info.value.retry_after_s is None


async def test_malformed_json_is_temporary(server: FakeBinance, make_source: MakeSource) -> None:
    source = make_source()
    server.fail_next("malformed_json", path=TICKER_PATH)

    with pytest.raises(ExchangeError) as info:
        await source.fetch()

    # Temporary, not permanent: a cut-off 200 body comes from a dropped connection or a
    # proxy and the next poll normally succeeds; ccxt classes BadResponse as retryable
    # (OperationFailed). ccxt itself raises a bare AttributeError here, never a ccxt error.
    assert isinstance(info.value, TemporaryExchangeError)
    assert "not valid JSON" in str(info.value)
    assert not isinstance(info.value.__cause__, ccxt.BaseError)
    assert await source.fetch() == [BTC, ETH]


async def test_unknown_symbol_is_permanent_and_makes_no_ticker_request(
    server: FakeBinance, make_source: MakeSource
) -> None:
    source = make_source(("BTC/USDT", "XRP/USDT"))

    with pytest.raises(PermanentExchangeError, match="XRP/USDT"):
        await source.fetch()

    assert server.paths() == [INFO_PATH]


async def test_symbol_rejected_by_the_exchange_is_permanent(
    server: FakeBinance, make_source: MakeSource
) -> None:
    source = make_source()
    await source.fetch()
    del server.tickers["ETHUSDT"]  # delisted after the markets were loaded

    with pytest.raises(PermanentExchangeError) as info:
        await source.fetch()

    assert isinstance(info.value.__cause__, ccxt.BadSymbol)  # Binance's -1121


async def test_symbol_of_the_other_market_is_permanent(make_source: MakeSource) -> None:
    source = make_source(market="futures", options={"fetchMarkets": {"types": ["spot"]}})

    with pytest.raises(PermanentExchangeError, match="not futures"):
        await source.fetch()


async def test_fetch_after_close_is_permanent(make_source: MakeSource) -> None:
    source = make_source()
    await source.close()
    await source.close()  # idempotent

    with pytest.raises(PermanentExchangeError, match="closed"):
        await source.fetch()


# -- construction -------------------------------------------------------------------------


def test_unknown_exchange_id_is_permanent() -> None:
    with pytest.raises(PermanentExchangeError, match="notanexchange: unknown CCXT exchange id"):
        CcxtTickerSource("notanexchange", "spot", ["BTC/USDT"], clock=ReplayClock())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"api_url": "127.0.0.1:8080"}, "api_url"),
        ({"timeout_s": 0}, "timeout_s"),
    ],
)
def test_bad_arguments_are_permanent(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(PermanentExchangeError, match=match):
        CcxtTickerSource("binance", "spot", ["BTC/USDT"], clock=ReplayClock(), **kwargs)


def test_empty_symbols_and_bad_market_are_permanent() -> None:
    with pytest.raises(PermanentExchangeError, match="symbols"):
        CcxtTickerSource("binance", "spot", [], clock=ReplayClock())
    with pytest.raises(PermanentExchangeError, match="market"):
        CcxtTickerSource("binance", "options", ["BTC/USDT"], clock=ReplayClock())  # type: ignore[arg-type]


def test_sandbox_without_testnet_is_permanent() -> None:
    with pytest.raises(PermanentExchangeError, match="no sandbox"):
        CcxtTickerSource("kraken", "spot", ["BTC/USD"], clock=ReplayClock(), sandbox=True)


async def test_sandbox_then_api_url_keeps_testnet_paths() -> None:
    source = CcxtTickerSource(
        "binance",
        "spot",
        ["BTC/USDT"],
        clock=ReplayClock(),
        sandbox=True,
        api_url="http://127.0.0.1:9/proxy/",
    )
    try:
        api = source._exchange.urls["api"]
        assert api["public"] == "http://127.0.0.1:9/proxy/api/v3"
        assert api["fapiPublic"] == "http://127.0.0.1:9/proxy/fapi/v1"
        assert source._exchange.options["sandboxMode"] is True
        assert source._exchange.timeout == 10_000
        assert source._exchange.enableRateLimit is True
    finally:
        await source.close()


def test_rewrite_api_urls_handles_nested_dicts_and_keeps_paths() -> None:
    urls = {
        "public": {"spot": "https://api.gateio.ws/api/v4", "root": "https://api.gateio.ws"},
        "rest": "https://{hostname}",
        "charts": "https://futures.kraken.com/api/charts/",
        "withQuery": "https://x.example/a?b=1",
        "list": ["https://a.example/p"],
    }

    out = rewrite_api_urls(urls, "http://127.0.0.1:8080/")

    assert out == {
        "public": {"spot": "http://127.0.0.1:8080/api/v4", "root": "http://127.0.0.1:8080"},
        "rest": "http://127.0.0.1:8080",
        "charts": "http://127.0.0.1:8080/api/charts/",
        "withQuery": "http://127.0.0.1:8080/a?b=1",
        "list": ["http://127.0.0.1:8080/p"],
    }
    assert rewrite_api_urls("https://api.kraken.com", "http://h:1") == "http://h:1"


@pytest.mark.parametrize(
    ("exchange_id", "market", "loaded"),
    [
        ("binance", "spot", ["spot"]),
        ("binance", "futures", ["linear", "inverse"]),
        ("bybit", "futures", ["linear", "inverse"]),
        ("okx", "spot", ["spot"]),
        ("okx", "futures", ["future", "swap"]),
        ("binanceusdm", "futures", ["linear"]),
    ],
)
async def test_market_types_loaded_follow_the_market(
    exchange_id: str, market: Any, loaded: list[str]
) -> None:
    source = CcxtTickerSource(exchange_id, market, ["BTC/USDT"], clock=ReplayClock())
    try:
        assert source._exchange.options["fetchMarkets"]["types"] == loaded
    finally:
        await source.close()


# -- map_ccxt_error -----------------------------------------------------------------------

TEMPORARY = [
    ccxt.RateLimitExceeded,
    ccxt.DDoSProtection,
    ccxt.RequestTimeout,
    ccxt.NetworkError,
    ccxt.ExchangeNotAvailable,
    ccxt.OnMaintenance,
    ccxt.InvalidNonce,
    ccxt.OperationFailed,
    ccxt.BadResponse,
    ccxt.NullResponse,
    ccxt.CancelPending,
]
PERMANENT = [
    ccxt.ExchangeError,
    ccxt.AuthenticationError,
    ccxt.PermissionDenied,
    ccxt.AccountSuspended,
    ccxt.BadRequest,
    ccxt.BadSymbol,
    ccxt.NotSupported,
    ccxt.ArgumentsRequired,
    ccxt.InsufficientFunds,
    ccxt.InvalidOrder,
    ccxt.OrderNotFound,
    ccxt.ExchangeClosedByUser,
    ccxt.BaseError,
]


@pytest.mark.parametrize("cls", TEMPORARY, ids=lambda c: c.__name__)
def test_map_temporary_ccxt_errors(cls: type[Exception]) -> None:
    error = map_ccxt_error("okx", cls("okx boom"))

    assert type(error) is TemporaryExchangeError
    assert error.exchange == "okx"
    assert str(error) == f"okx: {cls.__name__}: okx boom"
    assert error.retry_after_s is None


@pytest.mark.parametrize("cls", PERMANENT, ids=lambda c: c.__name__)
def test_map_permanent_ccxt_errors(cls: type[Exception]) -> None:
    error = map_ccxt_error("kraken", cls("kraken nope"), response_headers={"Retry-After": "5"})

    assert type(error) is PermanentExchangeError
    assert error.exchange == "kraken"
    assert error.retry_after_s is None


def test_ccxt_hierarchy_is_what_the_mapping_assumes() -> None:
    # If ccxt moves these, the isinstance order in map_ccxt_error must be revisited.
    assert issubclass(ccxt.RateLimitExceeded, ccxt.NetworkError)
    assert issubclass(ccxt.OnMaintenance, ccxt.ExchangeNotAvailable)
    assert issubclass(ccxt.BadSymbol, ccxt.BadRequest)
    assert issubclass(ccxt.PermissionDenied, ccxt.AuthenticationError)
    assert not issubclass(ccxt.NetworkError, ccxt.ExchangeError)
    assert not issubclass(ccxt.BadResponse, ccxt.NetworkError)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7),
        ({"retry-after": " 30 "}, 30),
        (
            {
                "Retry-After": "Tue, 14 Nov 2023 22:13:30 GMT",
                "Date": "Tue, 14 Nov 2023 22:13:20 GMT",
            },
            10,
        ),
        ({"Retry-After": "Tue, 14 Nov 2023 22:13:30 GMT"}, None),  # no Date to measure from
        ({"Retry-After": "soon"}, None),
        ({"Content-Type": "application/json"}, None),
        (None, None),
    ],
)
def test_map_reads_retry_after(headers: dict[str, str] | None, expected: float | None) -> None:
    error = map_ccxt_error("binance", ccxt.DDoSProtection("429"), response_headers=headers)

    assert isinstance(error, TemporaryExchangeError)
    assert error.retry_after_s == expected


def test_map_non_ccxt_errors() -> None:
    assert isinstance(map_ccxt_error("bybit", TimeoutError()), TemporaryExchangeError)
    assert isinstance(map_ccxt_error("bybit", ConnectionResetError()), TemporaryExchangeError)
    assert isinstance(map_ccxt_error("bybit", ValueError("x")), PermanentExchangeError)


def test_map_truncates_huge_messages() -> None:
    body = json.dumps({"msg": "x" * 10_000})

    error = map_ccxt_error("binance", ccxt.ExchangeNotAvailable(body))

    assert len(str(error)) <= len("binance: ") + 500
