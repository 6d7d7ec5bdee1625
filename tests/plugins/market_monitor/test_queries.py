"""``market_monitor.consolidated`` in a real node: every symbol's consolidated quote now,
from the monitor's latest ticker per venue, with filters and staleness at request time."""

from __future__ import annotations

from decimal import Decimal

from corec.core import channels
from corec.core.clock import NS_PER_S, ReplayClock
from corec.core.nucleus import Node
from corec.core.queries import Refused
from corec.messages.market_data import (
    CONSOLIDATED,
    BasisQuote,
    ConsolidatedQuote,
    ConsolidatedQuotes,
    ConsolidatedRequest,
)
from corec.plugins.market_monitor.plugin import MarketMonitorPlugin
from tests.harness import Recorder, started_node
from tests.plugins.market_monitor.test_market_monitor import (
    T0,
    MakeConfig,
    feed,
    monitor_config,
    ticker,
)

D = Decimal
S = NS_PER_S
SETTINGS = {"move_alert_pct": "50", "stale_after_s": 60, "consolidate_interval_s": 0}


async def consolidated(node: Node, **request: object) -> ConsolidatedQuotes:
    reply = await node.bus.request(
        CONSOLIDATED,
        ConsolidatedRequest(**request),
        timeout_s=5,  # type: ignore[arg-type]
    )
    assert isinstance(reply, ConsolidatedQuotes), reply
    return reply


def published(rec: Recorder, market: str, symbol: str) -> ConsolidatedQuote:
    """The last consolidated quote published for (market, symbol)."""
    return [
        q
        for q in rec.payloads(ConsolidatedQuote, channel=channels.MARKET_DATA)
        if (q.market, q.symbol) == (market, symbol)
    ][-1]


def keys(reply: ConsolidatedQuotes) -> list[tuple[str, str]]:
    return [(q.market, q.symbol) for q in reply.items]


async def test_consolidated_serves_the_latest_view_of_every_symbol(
    make_config: MakeConfig,
) -> None:
    config = monitor_config(make_config, clock="replay", **SETTINGS)
    async with started_node(config, channels.MARKET_DATA) as (node, rec):
        assert (await consolidated(node)).items == ()
        await feed(node, ticker(T0, bid="100", ask="101", exchange="binance"))
        await feed(
            node,
            ticker(T0 + S, bid="100.8", ask="101.6", exchange="kraken"),
            ticker(
                T0 + S,
                bid="101",
                ask="102",
                exchange="binance",
                market="futures",
                symbol="BTC/USDT:USDT",
            ),
            ticker(T0 + S, bid="2000", ask="2001", exchange="binance", symbol="ETH/USDT"),
        )
        everything = await consolidated(node)
        btc_spot = published(rec, "spot", "BTC/USDT")
        btc_perp = published(rec, "futures", "BTC/USDT:USDT")
        eth_spot = published(rec, "spot", "ETH/USDT")

        # filters: a pair matches its spot symbol and its futures; a full symbol itself
        by_pair = await consolidated(node, symbol="BTC/USDT")
        by_contract = await consolidated(node, symbol="BTC/USDT:USDT")
        spot_only = await consolidated(node, market="spot")
        spot_btc = await consolidated(node, market="spot", symbol="BTC/USDT")
        futures_eth = await consolidated(node, market="futures", symbol="ETH/USDT")
        unknown = await consolidated(node, symbol="SOL/USDT")
        refused = await node.bus.request(
            CONSOLIDATED,
            ConsolidatedRequest(market="margin"),  # type: ignore[arg-type]
            timeout_s=5,
        )

        # two minutes later without a ticker: every venue is stale now, though the last
        # published quotes still show them fresh
        assert isinstance(node.clock, ReplayClock)
        node.clock.advance_to(T0 + 121 * S)
        later = await consolidated(node, symbol="BTC/USDT", market="spot")

    # the same quotes the monitor published, measured at the same time
    assert everything.as_of_ts_ns == T0 + S
    assert everything.items == (btc_perp, btc_spot, eth_spot)  # by pair, market, symbol
    assert [v.exchange for v in btc_spot.venues] == ["binance", "kraken"]
    assert (btc_spot.best_bid, btc_spot.best_bid_exchange) == (D("100.8"), "kraken")
    assert (btc_spot.best_ask, btc_spot.best_ask_exchange) == (D(101), "binance")
    assert btc_spot.gap_bps == D("69.6517")
    assert btc_perp.basis == (
        BasisQuote(
            exchange="binance",
            spot_symbol="BTC/USDT",
            futures_symbol="BTC/USDT:USDT",
            spot_mid=D("100.5"),
            futures_mid=D("101.5"),
            basis_bps=D("99.5025"),  # (101.5 - 100.5) / 100.5 × 10 000
        ),
    )

    assert keys(by_pair) == [("futures", "BTC/USDT:USDT"), ("spot", "BTC/USDT")]
    assert keys(by_contract) == [("futures", "BTC/USDT:USDT")]
    assert keys(spot_only) == [("spot", "BTC/USDT"), ("spot", "ETH/USDT")]
    assert spot_btc.items == (btc_spot,)
    assert futures_eth.items == ()
    assert unknown.items == ()
    assert isinstance(refused, Refused)
    assert (refused.code, refused.field) == ("invalid", "market")

    [stale] = later.items
    assert later.as_of_ts_ns == stale.as_of_ts_ns == T0 + 121 * S
    assert [(v.exchange, v.age_s, v.stale) for v in stale.venues] == [
        ("binance", D("121.000"), True),
        ("kraken", D("120.000"), True),
    ]
    assert (stale.best_bid, stale.best_ask, stale.mid, stale.gap_bps) == (None, None, None, 0)
    assert all(not v.stale for v in btc_spot.venues)


async def test_no_ticker_yet_means_no_quote(make_config: MakeConfig) -> None:
    config = monitor_config(make_config, clock="replay", **SETTINGS)
    async with started_node(config) as (node, _):
        reply = await consolidated(node)
    assert reply.items == ()


def test_endpoint_is_declared() -> None:
    assert CONSOLIDATED in MarketMonitorPlugin.serves
