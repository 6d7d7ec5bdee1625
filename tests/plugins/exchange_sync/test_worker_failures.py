"""An exchange worker under failure: a store that fails during a probe, a long
Retry-After, an empty answer, a symbol check deferred past start, transport errors and
secrets in error messages. Polls are driven by hand (``poll_once``) on a controllable
clock, so every request is counted exactly."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import aiohttp
import ccxt
import pytest

from corec.core import channels
from corec.core.clock import NS_PER_S, ReplayClock
from corec.core.config import CorecConfig
from corec.core.errors import PermanentExchangeError, StoreError, TemporaryExchangeError
from corec.core.logging import register_secret
from corec.core.nucleus import Node
from corec.core.registry import discover_plugins
from corec.exchanges.ccxt_source import map_ccxt_error
from corec.messages.exchange_data import TickerBatch
from tests.exchanges.fake_exchange import FakeBinance
from tests.harness import Recorder

MakeConfig = Callable[..., CorecConfig]
START_NS = 1_800_000_000 * NS_PER_S
TICKER_PATH = "/api/v3/ticker/24hr"


@pytest.fixture
async def binance() -> AsyncIterator[FakeBinance]:
    fake = FakeBinance()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def config_for(make_config: MakeConfig, url: str, *symbols: str, **ccxt: Any) -> CorecConfig:
    exchange = {"spot": {"id": "binance", "symbols": list(symbols)}, "api_url": url}
    settings = {"exchanges": {"binance": exchange}, "interval_s": 4, "timeout_s": 2, **ccxt}
    return make_config(
        {
            "node": {"plugins": ["exchange_sync"]},
            "exchange_sync": {"source": "ccxt", "ccxt": settings},
        }
    )


@asynccontextmanager
async def worker_of(config: CorecConfig) -> AsyncIterator[tuple[Any, Any, ReplayClock, Recorder]]:
    """The started (not running) node's binance worker, its plugin, clock and a recorder."""
    clock = ReplayClock(START_NS)
    node = Node(config, discover_plugins(), clock=clock)
    recorder = Recorder(node.bus, channels.EXCHANGE_DATA, channels.SYSTEM)
    try:
        await node.start()
        plugin: Any = node._running["exchange_sync"].plugin
        yield plugin.workers["binance"], plugin, clock, recorder
    finally:
        await node.stop()
        await node.close()


def failing(exc: BaseException) -> Callable[..., Awaitable[None]]:
    async def fail(*_args: Any, **_kwargs: Any) -> None:
        raise exc

    return fail


async def test_a_store_failing_during_the_probe_does_not_wedge_the_breaker(
    make_config: MakeConfig, binance: FakeBinance
) -> None:
    config = config_for(
        make_config, binance.url, "BTC/USDT", breaker_failures=1, breaker_reset_s=900
    )
    async with worker_of(config) as (worker, plugin, clock, rec):
        binance.fail_next("server_error_500", times=3)  # the poll's three attempts
        assert await worker.poll_once() is False
        assert worker.breaker.state == "open"

        plugin.writer.flush = failing(StoreError("database is locked"))
        clock.advance_to(START_NS + 901 * NS_PER_S)
        assert await worker.poll_once() is True  # the probe fetched; storing failed
        assert worker.breaker.state == "closed"
        assert worker.health().sink_errors == 1

        before = binance.count(TICKER_PATH)
        assert await worker.poll_once() is True  # and the exchange is polled on
        assert binance.count(TICKER_PATH) == before + 1
        assert worker.health().sink_errors == 2
        # published all the same: the bus does not depend on the database
        assert len(rec.payloads(TickerBatch)) == 2


async def test_a_long_retry_after_fails_the_poll_at_once_and_pauses_the_exchange(
    make_config: MakeConfig, binance: FakeBinance
) -> None:
    config = config_for(make_config, binance.url, "BTC/USDT", retry_attempts=3)
    async with worker_of(config) as (worker, _plugin, clock, _rec):
        binance.fail_next("ban_418")  # Retry-After: 120, far above a quarter interval (1 s)
        assert await worker.poll_once() is False
        assert binance.count(TICKER_PATH) == 1  # not retried: the wait is not ours to take
        assert worker.health().failed_polls == 1

        clock.advance_to(START_NS + 60 * NS_PER_S)
        assert await worker.poll_once() is False  # still inside the exchange's 120 s
        assert await worker.orders_once() == 0
        assert binance.count(TICKER_PATH) == 1
        assert worker.health().polls == 1  # a paused poll is not a poll

        clock.advance_to(START_NS + 121 * NS_PER_S)
        assert await worker.poll_once() is True
        assert binance.count(TICKER_PATH) == 2


async def test_an_answer_without_a_usable_ticker_is_a_failed_poll(
    make_config: MakeConfig, binance: FakeBinance
) -> None:
    config = config_for(make_config, binance.url, "BTC/USDT", retry_attempts=1)
    async with worker_of(config) as (worker, _plugin, _clock, rec):
        binance.ignore_symbols_filter = True
        binance.tickers = {}  # 200 with []
        assert await worker.poll_once() is False
        health = worker.health()
        assert health.failed_polls == 1 and health.breaker_state == "closed"
        assert "no usable ticker" in (health.last_error or "")
        assert health.consecutive_failures == 1
        assert rec.payloads(TickerBatch) == []


async def test_unknown_symbols_are_skipped_when_the_check_waited_for_the_first_poll(
    make_config: MakeConfig, binance: FakeBinance
) -> None:
    binance.fail_next("server_error_500")  # down at start: the check is deferred
    config = config_for(make_config, binance.url, "BTC/USDX", "BTC/USDT", skip_unknown_symbols=True)
    async with worker_of(config) as (worker, _plugin, _clock, rec):
        assert await worker.poll_once() is True
        [batch] = rec.payloads(TickerBatch)
        assert [t.symbol for t in batch.tickers] == ["BTC/USDT"]
        assert batch.tickers[0].bid == Decimal("37342.35")
        assert worker.sources["spot"].dropped_symbols == ("BTC/USDX",)


def test_a_body_cut_off_mid_transfer_is_temporary() -> None:
    cut = ccxt.ExchangeError("binance GET https://api.binance.com/api/v3/ticker/24hr")
    cut.__cause__ = aiohttp.ClientPayloadError("Response payload is not completed")
    assert isinstance(map_ccxt_error("binance", cut), TemporaryExchangeError)
    refused = ccxt.ExchangeError("binance {'code': -1100, 'msg': 'Illegal characters'}")
    assert isinstance(map_ccxt_error("binance", refused), PermanentExchangeError)


def test_secrets_quoted_by_ccxt_are_masked_in_exchange_errors() -> None:
    key = "AKIDsupersecretkey0123456789"
    register_secret(key)
    timeout = ccxt.RequestTimeout(f"htx GET https://api.huobi.pro/v1/order?AccessKeyId={key}&x=1")
    error = map_ccxt_error("htx", timeout)
    assert key not in str(error)
    assert "AccessKeyId=***" in str(error)
