"""The five exchanges, spot and futures, in one node: exchange_sync polls ten markets of
eight CCXT classes (loopback servers answering like each exchange's REST API), and
market_monitor turns them into one view per symbol."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

import pytest

from corec.core import channels
from corec.core.config import CorecConfig
from corec.messages.exchange_data import TickerBatch
from corec.messages.market_data import ConsolidatedQuote
from tests.exchanges.fake_venues import FakeVenues
from tests.harness import started_node

D = Decimal
MakeConfig = Callable[..., CorecConfig]

LAYOUT = {  # CoreC exchange → market → CCXT class
    "binance": {"spot": "binance", "futures": "binanceusdm"},
    "kucoin": {"spot": "kucoin", "futures": "kucoinfutures"},
    "bybit": {"spot": "bybit", "futures": "bybit"},
    "okx": {"spot": "okx", "futures": "okx"},
    "kraken": {"spot": "kraken", "futures": "krakenfutures"},
}
USDT = {"spot": ["BTC/USDT", "ETH/USDT"], "futures": ["BTC/USDT:USDT", "ETH/USDT:USDT"]}
USD = {"spot": ["BTC/USD", "ETH/USD"], "futures": ["BTC/USD:USD", "ETH/USD:USD"]}
# BTC books, distinct per exchange so that best bid, best ask and basis have one answer
SPOT_BTC = {
    "binance": ("41000.00", "41001.00"),
    "kucoin": ("41002.00", "41003.00"),  # the best bid, above bybit's ask: crossed
    "bybit": ("40999.00", "41000.50"),  # the best ask
    "okx": ("41001.00", "41002.00"),
    "kraken": ("41010.00", "41012.00"),  # USD: a symbol of its own
}
PERP_BTC = {
    "binance": ("41041.00", "41043.00"),
    "kucoin": ("41022.50", "41023.50"),
    "bybit": ("40979.25", "40980.75"),
    "okx": ("41101.00", "41103.00"),
    "kraken": ("41030.00", "41034.00"),
}


def symbols(exchange: str, market: str) -> list[str]:
    return (USD if exchange == "kraken" else USDT)[market]


@pytest.fixture
async def venues() -> AsyncIterator[FakeVenues]:
    ids = sorted({ccxt_id for markets in LAYOUT.values() for ccxt_id in markets.values()})
    async with FakeVenues.start(ids) as running:
        for exchange, markets in LAYOUT.items():
            for market, ccxt_id in markets.items():
                bid, ask = (SPOT_BTC if market == "spot" else PERP_BTC)[exchange]
                symbol = symbols(exchange, market)[0]
                running[ccxt_id].set_ticker(symbol, bid=bid, ask=ask, last=bid)
        yield running


def five_exchanges_config(make_config: MakeConfig, venues: FakeVenues) -> CorecConfig:
    exchanges: dict[str, Any] = {
        exchange: {
            market: {
                "id": ccxt_id,
                "symbols": symbols(exchange, market),
                "api_url": venues[ccxt_id].base_url,
            }
            for market, ccxt_id in markets.items()
        }
        for exchange, markets in LAYOUT.items()
    }
    return make_config(
        {
            "node": {"plugins": ["exchange_sync", "market_monitor"]},
            "exchange_sync": {
                "source": "ccxt",
                # every exchange at once (no stagger), then CCXT's own rate limiter
                # (about 1 s on binance and kraken) sets the pace
                "ccxt": {"exchanges": exchanges, "interval_s": 30, "stagger_s": 0},
            },
        }
    )


async def test_five_exchanges_spot_and_futures_in_one_consolidated_view(
    make_config: MakeConfig, venues: FakeVenues
) -> None:
    config = five_exchanges_config(make_config, venues)
    async with started_node(config, channels.EXCHANGE_DATA, channels.MARKET_DATA) as (node, rec):
        # CCXT's rate limiter spaces binance's and kraken's calls by about 1 s; quotes
        # are published at most once a second per symbol (consolidate_interval_s)
        await node.run(duration_s=5.0, handle_signals=False)
        batches = rec.payloads(TickerBatch)
        quotes = rec.payloads(ConsolidatedQuote)
        health = node.health()["plugins"]["exchange_sync"]["exchanges"]

    # every exchange and market published both symbols, with the book as served
    seen = {(t.exchange, t.market, t.symbol): t for b in batches for t in b.tickers}
    assert set(seen) == {
        (exchange, market, symbol)
        for exchange, markets in LAYOUT.items()
        for market in markets
        for symbol in symbols(exchange, market)
    }
    for exchange, markets in LAYOUT.items():
        for market in markets:
            bid, ask = (SPOT_BTC if market == "spot" else PERP_BTC)[exchange]
            btc = seen[(exchange, market, symbols(exchange, market)[0])]
            assert (btc.bid, btc.ask, btc.last) == (D(bid), D(ask), D(bid)), (exchange, market)
        assert health[exchange]["polls"] == 1  # interval 30 s: one poll each in 5 s
        assert health[exchange]["failed_polls"] == 0
        assert health[exchange]["breaker_state"] == "closed"

    # per market: one load_markets at start, then ONE ticker call per poll (binanceusdm
    # adds one bookTicker call for its book); counted as CCXT calls, because aiohttp may
    # resend a request transparently when the server closed a pooled connection
    for exchange, markets in LAYOUT.items():
        extra = 1 if exchange == "binance" else 0
        assert health[exchange]["requests"] == 2 * len(markets) + extra, exchange
    for ccxt_id, fake in venues.items():
        markets = 2 if ccxt_id in ("bybit", "okx") else 1
        extra = 1 if ccxt_id == "binanceusdm" else 0
        assert fake.ticker_requests() >= markets + extra, ccxt_id

    latest = {(q.market, q.symbol): q for q in quotes}
    spot = latest[("spot", "BTC/USDT")]
    assert sorted(v.exchange for v in spot.venues) == ["binance", "bybit", "kucoin", "okx"]
    assert (spot.best_bid, spot.best_bid_exchange) == (D("41002.00"), "kucoin")
    assert (spot.best_ask, spot.best_ask_exchange) == (D("41000.50"), "bybit")
    assert spot.mid == D("41001.25")
    assert spot.spread_bps == D("-0.3658")  # (41000.50 - 41002) / 41001.25 × 10 000
    # venue mids: binance 41000.5, kucoin 41002.5, bybit 40999.75, okx 41001.5
    assert (spot.high_mid_exchange, spot.low_mid_exchange) == ("kucoin", "bybit")
    assert spot.gap_bps == D("0.6707")  # (41002.5 - 40999.75) / 40999.75 × 10 000
    assert spot.basis == ()

    perp = latest[("futures", "BTC/USDT:USDT")]
    basis = {b.exchange: b.basis_bps for b in perp.basis}
    # (perp mid - spot mid) / spot mid × 10 000 on the same exchange
    assert basis == {
        "binance": D("10.1218"),  # 41042 vs 41000.5
        "bybit": D("-4.8171"),  # 40980 vs 40999.75
        "kucoin": D("4.9997"),  # 41023 vs 41002.5
        "okx": D("24.5113"),  # 41102 vs 41001.5
    }
    kraken = latest[("futures", "BTC/USD:USD")]
    assert [b.exchange for b in kraken.basis] == ["kraken"]
    assert kraken.basis[0].basis_bps == D("5.1206")  # 41032 vs 41011
