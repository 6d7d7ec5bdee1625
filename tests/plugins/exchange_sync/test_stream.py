"""exchange_sync in ``stream`` mode: ccxt.pro WebSockets, and polling when they fail."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from decimal import Decimal

import pytest

from corec.core import channels
from corec.core.config import CorecConfig
from corec.core.notices import Alert
from corec.messages.exchange_data import TickerBatch
from tests.exchanges.fake_exchange import FakeBinance
from tests.harness import started_node

MakeConfig = Callable[..., CorecConfig]


@pytest.fixture
async def binance() -> AsyncIterator[FakeBinance]:
    fake = FakeBinance()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def stream_config(make_config: MakeConfig, url: str) -> CorecConfig:
    return make_config(
        {
            "node": {"plugins": ["exchange_sync"]},
            "exchange_sync": {
                "source": "ccxt",
                "ccxt": {
                    "mode": "stream",
                    "exchanges": {
                        "binance": {
                            "spot": {"id": "binance", "symbols": ["BTC/USDT", "ETH/USDT"]},
                            "api_url": url,  # the WebSocket URLs too: the fake has none
                        }
                    },
                    "interval_s": 0.3,
                    "timeout_s": 2,
                    "stream_failures_before_poll": 2,
                },
            },
        }
    )


async def test_a_failing_stream_falls_back_to_polling_and_says_so(
    make_config: MakeConfig, binance: FakeBinance
) -> None:
    config = stream_config(make_config, binance.url)
    async with started_node(config, channels.EXCHANGE_DATA, channels.ALERTS) as (node, rec):
        await node.run(duration_s=4.0, handle_signals=False)
        batches = rec.payloads(TickerBatch)
        alerts = [a for a in rec.payloads(Alert) if a.name == "exchange_stream_failing"]
        h = node.health()["plugins"]["exchange_sync"]["exchanges"]["binance"]

    # the WebSocket upgrade is refused (the fake serves REST only): after 2 failures
    # (1 s of backoff between them) the market is polled, once per 0.3 s
    [alert] = alerts
    assert alert.severity == "medium"
    assert alert.labels["exchange"] == "binance" and alert.labels["market"] == "spot"
    assert "failed 2 time(s)" in alert.message
    assert h["mode"] == "poll (stream failing)"
    assert len(batches) >= 3
    assert binance.count("/api/v3/ticker/24hr") >= len(batches)
    btc = batches[-1].tickers[0]
    assert (btc.symbol, btc.bid, btc.ask) == ("BTC/USDT", Decimal("37342.35"), Decimal("37342.36"))
    # polling started only after the stream gave up: never two sources at once
    assert binance.count("/api/v3/ticker/24hr") <= len(batches) + 1


async def test_stream_mode_publishes_what_the_websocket_pushes(
    make_config: MakeConfig, binance: FakeBinance
) -> None:
    await binance.stop()
    fake = FakeBinance()
    fake.websocket = True
    await fake.start()
    try:
        config = stream_config(make_config, fake.url)
        async with started_node(config, channels.EXCHANGE_DATA, channels.ALERTS) as (node, rec):
            await node.run(duration_s=2.0, handle_signals=False)
            batches = rec.payloads(TickerBatch)
            alerts = [a for a in rec.payloads(Alert) if a.name == "exchange_stream_failing"]
            h = node.health()["plugins"]["exchange_sync"]["exchanges"]["binance"]
    finally:
        await fake.stop()

    assert alerts == []
    assert fake.ws_subscriptions == [["btcusdt@ticker", "ethusdt@ticker"]]
    assert fake.count("/api/v3/ticker/24hr") == 0  # streamed, never polled
    assert h["mode"] == "stream"
    streamed = [t for b in batches for t in b.tickers]
    assert len(streamed) >= 10  # pushed every 0.1 s per symbol
    btc = next(t for t in streamed if t.symbol == "BTC/USDT")
    assert (btc.exchange, btc.market) == ("binance", "spot")
    assert (btc.bid, btc.ask, btc.last) == (
        Decimal("37342.35"),
        Decimal("37342.36"),
        Decimal("37342.36"),
    )
    assert btc.exchange_ts_ns == 1_700_000_001_234_000_000
    assert btc.base_volume == Decimal("29754.50374")
