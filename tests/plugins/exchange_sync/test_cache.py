"""exchange_sync's building blocks, one at a time: the ticker cache and its Redis mirror,
request statistics, API credentials, and the wire codec on ticker batches.

Redis tests use the real server at ``127.0.0.1:6379``: they skip on a laptop without it
and fail when ``CI=true``. Each test has its own instance id (key prefix) and deletes
its keys afterwards.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from corec.core import channels
from corec.core.clock import NS_PER_S, ReplayClock
from corec.core.codec import ZSTD_MAGIC, Codec
from corec.core.errors import ConfigError, StoreError
from corec.core.events import make_event
from corec.exchanges.credentials import Credentials, default_prefix, load_credentials
from corec.exchanges.request_stats import LATENCY_WINDOW, RequestStats
from corec.messages.exchange_data import Ticker, TickerBatch
from corec.plugins.exchange_sync.cache import (
    RedisTickerMirror,
    TickerCache,
    read_redis_tickers,
    redis_prefix,
)
from tests.plugins.exchange_sync.conftest import REDIS_URL

pytestmark = pytest.mark.timeout(30)

D = Decimal
NOW_NS = 1_700_000_100_000_000_000
MS = 1_000_000  # ns


def ticker(
    symbol: str = "BTC/USDT",
    *,
    exchange: str = "binance",
    market: str = "spot",
    exchange_ts_ns: int = NOW_NS - 2 * NS_PER_S,
    received_ts_ns: int = NOW_NS - NS_PER_S,
    **fields: Any,
) -> Ticker:
    prices: dict[str, Any] = {
        "bid": D("37342.35"),
        "ask": D("37342.36"),
        "last": D("37342.36"),
        "base_volume": D("29754.50374"),
        "quote_volume": D("1103906524.61298"),
        **fields,
    }
    return Ticker(
        exchange=exchange,
        market=market,  # type: ignore[arg-type]
        symbol=symbol,
        exchange_ts_ns=exchange_ts_ns,
        received_ts_ns=received_ts_ns,
        **prices,
    )


# -- TickerCache ------------------------------------------------------------------------------


def test_cache_put_then_latest_returns_the_ticker() -> None:
    cache = TickerCache(ttl_s=60)
    t = ticker()
    assert cache.put([t]) == [t]
    assert len(cache) == 1
    assert cache.latest(NOW_NS) == [t]
    [got] = cache.latest(NOW_NS)
    assert (got.bid, got.ask, got.last) == (D("37342.35"), D("37342.36"), D("37342.36"))


def test_cache_keeps_the_newer_ticker_by_exchange_timestamp() -> None:
    cache = TickerCache(ttl_s=60)
    newer = ticker(exchange_ts_ns=NOW_NS - 1 * NS_PER_S, last=D("2"))
    older = ticker(exchange_ts_ns=NOW_NS - 5 * NS_PER_S, last=D("1"), bid=None, ask=None)
    assert cache.put([newer]) == [newer]
    # arrives later (received later) but the exchange stamped it earlier: not taken
    assert cache.put([older]) == []
    assert cache.latest(NOW_NS) == [newer]
    # an equal exchange timestamp replaces (a re-poll of the same ticker)
    same = ticker(exchange_ts_ns=NOW_NS - 1 * NS_PER_S, last=D("3"))
    assert cache.put([same]) == [same]
    assert [t.last for t in cache.latest(NOW_NS)] == [D("3")]
    assert len(cache) == 1


def test_cache_ttl_is_measured_on_the_received_time() -> None:
    cache = TickerCache(ttl_s=10)
    inside = ticker("BTC/USDT", received_ts_ns=NOW_NS - 10 * NS_PER_S)  # exactly ttl old
    outside = ticker("ETH/USDT", received_ts_ns=NOW_NS - 10 * NS_PER_S - 1, last=D("2024.61"))
    cache.put([inside, outside])
    assert len(cache) == 2
    assert [t.symbol for t in cache.latest(NOW_NS)] == ["BTC/USDT"]
    # one nanosecond later the first is too old as well; earlier, both are fresh
    assert cache.latest(NOW_NS + 1) == []
    assert [t.symbol for t in cache.latest(NOW_NS - 1)] == ["BTC/USDT", "ETH/USDT"]


def test_cache_filters_by_exchange_market_symbol_and_pair() -> None:
    cache = TickerCache(ttl_s=60)
    spot = ticker("BTC/USDT")
    perp = ticker("BTC/USDT:USDT", market="futures", bid=D("37357.85"), ask=D("37357.86"))
    eth = ticker("ETH/USDT", bid=D("2024.61"), ask=D("2024.62"), last=D("2024.61"))
    okx = ticker("BTC/USDT", exchange="okx", bid=D("37340"), ask=D("37341"), last=D("37341"))
    cache.put([spot, perp, eth, okx])

    def keys(**filters: Any) -> list[tuple[str, str, str]]:
        return [(t.exchange, t.market, t.symbol) for t in cache.latest(NOW_NS, **filters)]

    # sorted by (exchange, market, symbol)
    assert keys() == [
        ("binance", "futures", "BTC/USDT:USDT"),
        ("binance", "spot", "BTC/USDT"),
        ("binance", "spot", "ETH/USDT"),
        ("okx", "spot", "BTC/USDT"),
    ]
    assert keys(exchange="okx") == [("okx", "spot", "BTC/USDT")]
    assert keys(exchange="kraken") == []
    assert keys(market="futures") == [("binance", "futures", "BTC/USDT:USDT")]
    # a pair matches its spot symbol and its perpetuals
    assert keys(symbol="BTC/USDT") == [
        ("binance", "futures", "BTC/USDT:USDT"),
        ("binance", "spot", "BTC/USDT"),
        ("okx", "spot", "BTC/USDT"),
    ]
    # a contract matches only itself
    assert keys(symbol="BTC/USDT:USDT") == [("binance", "futures", "BTC/USDT:USDT")]
    assert keys(symbol="BTC/USDT", market="spot", exchange="binance") == [
        ("binance", "spot", "BTC/USDT")
    ]
    assert keys(symbol="ETH/USDT:USDT") == []
    assert keys(symbol="BTC/USD") == []


# -- RedisTickerMirror ------------------------------------------------------------------------


async def redis_keys(instance_id: str) -> list[str]:
    import redis.asyncio as redis

    client: Any = redis.Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=redis_prefix(instance_id) + "*")]
        return sorted(k.decode() for k in keys)
    finally:
        await client.aclose()


@pytest.mark.redis
async def test_redis_mirror_round_trip_keeps_exact_decimals(redis_instance: str) -> None:
    mirror = RedisTickerMirror(REDIS_URL, instance_id=redis_instance, ttl_s=60)
    try:
        spot = ticker("BTC/USDT", bid=D("37342.350"))
        perp = ticker(
            "BTC/USDT:USDT",
            market="futures",
            bid=None,
            ask=None,
            last=D("37357.86000001"),
            quote_volume=D("123456789012345678.123456789"),
        )
        mirror.put([spot, perp])
        # a later put of the same instrument replaces the pending one
        newer_spot = ticker(
            "BTC/USDT", bid=D("37342.30"), base_volume=D("0.000000010"), exchange_ts_ns=NOW_NS
        )
        mirror.put([newer_spot])
        assert await mirror.flush() == 2
        assert await mirror.flush() == 0  # nothing dirty any more
        assert mirror.written == 2
    finally:
        await mirror.close()

    got = await read_redis_tickers(REDIS_URL, redis_instance)
    by_symbol = {t.symbol: t for t in got}
    assert set(by_symbol) == {"BTC/USDT", "BTC/USDT:USDT"}
    assert by_symbol["BTC/USDT"] == newer_spot
    assert by_symbol["BTC/USDT:USDT"] == perp
    assert str(by_symbol["BTC/USDT"].bid) == "37342.30"
    assert str(by_symbol["BTC/USDT"].base_volume) == "1.0E-8"
    assert str(by_symbol["BTC/USDT:USDT"].last) == "37357.86000001"
    assert str(by_symbol["BTC/USDT:USDT"].quote_volume) == "123456789012345678.123456789"
    assert by_symbol["BTC/USDT:USDT"].bid is None
    assert all(type(t.last) is Decimal for t in got)
    prefix = redis_prefix(redis_instance)
    assert await redis_keys(redis_instance) == [
        f"{prefix}ticker:binance:futures:BTC/USDT:USDT",
        f"{prefix}ticker:binance:spot:BTC/USDT",
        f"{prefix}tickers",
    ]


@pytest.mark.redis
async def test_redis_mirror_keys_expire_with_the_ttl(redis_instance: str) -> None:
    mirror = RedisTickerMirror(REDIS_URL, instance_id=redis_instance, ttl_s=0.3)
    try:
        mirror.put([ticker("BTC/USDT"), ticker("ETH/USDT", last=D("2024.61"))])
        assert await mirror.flush() == 2
    finally:
        await mirror.close()
    assert [t.symbol for t in await read_redis_tickers(REDIS_URL, redis_instance)] == [
        "BTC/USDT",
        "ETH/USDT",
    ]
    assert len(await redis_keys(redis_instance)) == 3  # two tickers and the index
    await asyncio.sleep(0.6)
    assert await read_redis_tickers(REDIS_URL, redis_instance) == []
    assert await redis_keys(redis_instance) == []


async def test_redis_mirror_flush_failure_hides_the_password_and_keeps_the_tickers() -> None:
    url = "redis://:hunter2secret@127.0.0.1:1/0"  # nothing listens on port 1
    mirror = RedisTickerMirror(url, instance_id="test-unreachable", ttl_s=60)
    try:
        mirror.put([ticker("BTC/USDT"), ticker("ETH/USDT", last=D("2024.61"))])
        with pytest.raises(StoreError) as first:
            await mirror.flush()
        message = str(first.value)
        assert "hunter2secret" not in message
        assert message.startswith("Redis at redis://:***@127.0.0.1:1/0: ")
        assert "onnect" in message  # ConnectionError: ... connecting to 127.0.0.1:1
        assert mirror.written == 0
        # the tickers were kept: the next flush tries (and fails) to write them again;
        # with nothing marked it would return 0 without touching Redis
        with pytest.raises(StoreError) as second:
            await mirror.flush()
        assert "hunter2secret" not in str(second.value)
        assert mirror.written == 0
    finally:
        await mirror.close()

    with pytest.raises(StoreError) as reading:
        await read_redis_tickers(url, "test-unreachable")
    assert "hunter2secret" not in str(reading.value)
    assert "127.0.0.1:1" in str(reading.value)


# -- RequestStats ---------------------------------------------------------------------------------


def test_request_stats_nearest_rank_percentiles() -> None:
    stats = RequestStats()
    assert stats.latency_ms(50) is None
    # ten requests of 1 … 10 ms, recorded out of order, plus sub-millisecond detail
    for ms in (7, 3, 10, 1, 5, 9, 2, 8, 4, 6):
        stats.record(ms * MS + 234_567)
    assert stats.requests == 10
    assert stats.latency_ms(0) == D("1.2")  # rank max(1, 0) = 1: the smallest
    assert stats.latency_ms(10) == D("1.2")  # rank ceil(1.0) = 1
    assert stats.latency_ms(11) == D("2.2")  # rank ceil(1.1) = 2
    assert stats.latency_ms(50) == D("5.2")  # rank 5
    assert stats.latency_ms(51) == D("6.2")  # rank ceil(5.1) = 6
    assert stats.latency_ms(95) == D("10.2")  # rank ceil(9.5) = 10
    assert stats.latency_ms(100) == D("10.2")
    assert str(stats.latency_ms(50)) == "5.2"
    with pytest.raises(ValueError, match=r"within 0\.\.100"):
        stats.latency_ms(101)
    with pytest.raises(ValueError):
        stats.latency_ms(-1)


def test_request_stats_count_errors_and_keep_a_window() -> None:
    stats = RequestStats()
    stats.record(5 * MS, "RequestTimeout")
    stats.record(1 * MS)
    stats.record(2 * MS, "RateLimitExceeded")
    stats.record(3 * MS, "RequestTimeout")
    assert stats.requests == 4
    assert stats.errors_by_kind == {"RequestTimeout": 2, "RateLimitExceeded": 1}
    assert stats.errors == 3
    assert stats.latency_ms(50) == D("2.0")  # 1, 2, 3, 5 → rank 2

    window = RequestStats()
    window.record(900 * MS)  # the oldest: falls out of the window below
    for _ in range(LATENCY_WINDOW):
        window.record(1 * MS)
    assert window.requests == LATENCY_WINDOW + 1
    assert len(window.latencies_ns) == LATENCY_WINDOW
    assert window.latency_ms(100) == D("1.0")


# -- credentials ---------------------------------------------------------------------------------

KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


def test_credentials_from_the_environment() -> None:
    assert default_prefix("kucoin") == "COREC_KUCOIN"
    env = {
        "COREC_KUCOIN_API_KEY": KEY,
        "COREC_KUCOIN_API_SECRET": SECRET,
        "COREC_KUCOIN_API_PASSPHRASE": "correct horse",
        "COREC_OKX_API_KEY": "other",
    }
    creds = load_credentials("COREC_KUCOIN", env)
    assert creds == Credentials(api_key=KEY, secret=SECRET, passphrase="correct horse")
    assert creds.ccxt_config() == {"apiKey": KEY, "secret": SECRET, "password": "correct horse"}
    assert creds.secrets() == (KEY, SECRET, "correct horse")
    # nothing set: public data only
    assert load_credentials("COREC_BINANCE", env) is None
    assert load_credentials("COREC_BINANCE", {"COREC_BINANCE_API_KEY": ""}) is None
    without_passphrase = load_credentials(
        "COREC_BINANCE", {"COREC_BINANCE_API_KEY": KEY, "COREC_BINANCE_API_SECRET": SECRET}
    )
    assert without_passphrase is not None
    assert without_passphrase.passphrase is None
    assert without_passphrase.ccxt_config() == {"apiKey": KEY, "secret": SECRET}


def test_credentials_from_files(tmp_path: Path) -> None:
    key_file, secret_file = tmp_path / "key", tmp_path / "secret"
    key_file.write_text(f"  {KEY}\n", encoding="utf-8")
    secret_file.write_text(f"{SECRET}\n\n", encoding="utf-8")
    env = {
        "COREC_BYBIT_API_KEY_FILE": str(key_file),
        "COREC_BYBIT_API_SECRET_FILE": str(secret_file),
    }
    creds = load_credentials("COREC_BYBIT", env)
    assert creds == Credentials(api_key=KEY, secret=SECRET)
    # a file and a variable may be mixed across fields
    mixed = load_credentials(
        "COREC_BYBIT",
        {"COREC_BYBIT_API_KEY": KEY, "COREC_BYBIT_API_SECRET_FILE": str(secret_file)},
    )
    assert mixed == Credentials(api_key=KEY, secret=SECRET)


def test_credentials_errors_name_the_variables_never_the_values(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as only_key:
        load_credentials("COREC_OKX", {"COREC_OKX_API_KEY": KEY})
    assert only_key.value.source == "environment"
    assert only_key.value.problems == [
        "COREC_OKX_API_SECRET is not set (the other half of the API credentials is)"
    ]
    with pytest.raises(ConfigError) as only_secret:
        load_credentials("COREC_OKX", {"COREC_OKX_API_SECRET": SECRET})
    assert only_secret.value.problems == [
        "COREC_OKX_API_KEY is not set (the other half of the API credentials is)"
    ]

    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET, encoding="utf-8")
    with pytest.raises(ConfigError) as both:
        load_credentials(
            "COREC_OKX",
            {
                "COREC_OKX_API_KEY": KEY,
                "COREC_OKX_API_SECRET": SECRET,
                "COREC_OKX_API_SECRET_FILE": str(secret_file),
            },
        )
    assert both.value.problems == [
        "both COREC_OKX_API_SECRET and COREC_OKX_API_SECRET_FILE are set; keep one"
    ]

    missing = tmp_path / "nowhere" / "key"
    with pytest.raises(ConfigError) as unreadable:
        load_credentials(
            "COREC_OKX",
            {"COREC_OKX_API_KEY_FILE": str(missing), "COREC_OKX_API_SECRET": SECRET},
        )
    [problem] = unreadable.value.problems
    assert problem.startswith(f"COREC_OKX_API_KEY_FILE: cannot read {missing}: ")
    for error in (only_key, only_secret, both, unreadable):
        assert KEY not in str(error.value)
        assert SECRET not in str(error.value)


def test_credentials_repr_never_shows_a_secret() -> None:
    creds = Credentials(api_key=KEY, secret=SECRET, passphrase="correct horse")
    text = repr(creds)
    assert text == "Credentials(api_key=***Eh8A, secret=***, passphrase=***)"
    assert str(creds) == text
    assert f"{creds}" == text
    assert str([creds]) == f"[{text}]"
    short = Credentials(api_key="short-key", secret="s3cr3t-value")
    assert repr(short) == "Credentials(api_key=***, secret=***, passphrase=None)"
    for shown in (text, repr(short)):
        assert SECRET not in shown and KEY not in shown
        assert "short-key" not in shown and "s3cr3t-value" not in shown
        assert "correct horse" not in shown


# -- the wire codec on ticker batches -------------------------------------------------------------


def many_tickers(n: int) -> tuple[Ticker, ...]:
    return tuple(
        ticker(
            f"C{i:04d}/USDT",
            bid=D(f"{100 + i}.12345678"),
            ask=D(f"{100 + i}.12345679"),
            last=D(f"{100 + i}.1234567"),
            base_volume=D(f"{1000 + i}.000000001"),
            quote_volume=D("57253987.123456789012345678"),
            exchange_ts_ns=NOW_NS + i * MS,
            received_ts_ns=NOW_NS + i * MS + 1,
        )
        for i in range(n)
    )


@pytest.mark.parametrize("wire_format", ["msgpack", "json"])
def test_codec_round_trips_a_large_ticker_batch_zstd_compressed(wire_format: str) -> None:
    codec = Codec(wire_format)  # type: ignore[arg-type]
    assert codec.compress_threshold_bytes == 1024
    clock = ReplayClock(NOW_NS)
    batch = TickerBatch(tickers=many_tickers(500))
    event = make_event(channels.EXCHANGE_DATA, batch, source="exchange_sync@node-1", clock=clock)

    frame = codec.encode(event)
    assert frame[:4] == ZSTD_MAGIC == b"\x28\xb5\x2f\xfd"
    uncompressed = Codec(wire_format, compress_threshold_bytes=10**9).encode(event)  # type: ignore[arg-type]
    assert uncompressed[:4] != ZSTD_MAGIC
    assert len(uncompressed) >= codec.compress_threshold_bytes
    assert len(frame) < len(uncompressed) / 3  # repetitive tickers compress well

    decoded = codec.decode(frame)
    assert decoded == event
    assert decoded.payload == batch
    assert len(decoded.payload.tickers) == 500
    first, last = decoded.payload.tickers[0], decoded.payload.tickers[-1]
    assert str(first.bid) == "100.12345678"
    assert str(last.last) == "599.1234567"
    assert str(last.quote_volume) == "57253987.123456789012345678"
    assert str(first.base_volume) == "1000.000000001"
    assert last.exchange_ts_ns == NOW_NS + 499 * MS
    assert all(type(t.ask) is Decimal for t in decoded.payload.tickers)
    # the uncompressed frame decodes to the same event
    assert codec.decode(uncompressed) == event


def test_codec_leaves_a_small_batch_uncompressed() -> None:
    codec = Codec()
    event = make_event(
        channels.EXCHANGE_DATA,
        TickerBatch(tickers=many_tickers(1)),
        source="exchange_sync@node-1",
        clock=ReplayClock(NOW_NS),
    )
    frame = codec.encode(event)
    assert len(frame) < codec.compress_threshold_bytes
    assert frame[:4] != ZSTD_MAGIC
    assert codec.decode(frame) == event
    # at exactly the threshold the frame is compressed
    at_threshold = Codec(compress_threshold_bytes=len(frame))
    assert at_threshold.encode(event)[:4] == ZSTD_MAGIC
    assert Codec(compress_threshold_bytes=len(frame) + 1).encode(event) == frame
