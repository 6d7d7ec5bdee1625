"""market_monitor's consolidated view in a real node: quotes across venues, gap and basis
alerts, staleness per venue, and the consumers of market_data that ignore it."""

from __future__ import annotations

import time
from decimal import Decimal

from corec.core import channels
from corec.core.clock import NS_PER_S, ReplayClock
from corec.core.events import make_event
from corec.core.notices import Alert, DeadLetter
from corec.messages.exchange_data import OpenOrder, OpenOrdersSnapshot, Ticker
from corec.messages.market_data import ConsolidatedQuote, MarketSnapshot, VenueQuote
from corec.plugins.market_monitor.consolidate import consolidate
from tests.harness import Recorder, started_node
from tests.plugins.market_monitor.test_market_monitor import (
    T0,
    MakeConfig,
    alerts,
    feed,
    monitor_config,
    ticker,
)

D = Decimal
S = NS_PER_S
CALM = {"move_alert_pct": "50"}  # no price_move alerts in these tests


def quotes(rec: Recorder) -> list[ConsolidatedQuote]:
    return rec.payloads(ConsolidatedQuote, channel=channels.MARKET_DATA)


def spot(exchange: str, ts_ns: int, bid: str, ask: str, symbol: str = "BTC/USDT") -> Ticker:
    return ticker(ts_ns, bid=bid, ask=ask, exchange=exchange, symbol=symbol)


def perp(exchange: str, ts_ns: int, bid: str, ask: str) -> Ticker:
    return ticker(
        ts_ns, bid=bid, ask=ask, exchange=exchange, market="futures", symbol="BTC/USDT:USDT"
    )


async def test_batches_of_several_exchanges_publish_consolidated_quotes(
    make_config: MakeConfig,
) -> None:
    config = monitor_config(make_config, clock="replay", **CALM)
    async with started_node(config, channels.MARKET_DATA) as (node, rec):
        await feed(node, spot("binance", T0, "100", "101"))
        await feed(node, spot("kraken", T0 + S, "100.8", "101.6"))

        # each batch: its snapshots first, then the consolidated quote
        assert [type(p).__name__ for p in rec.payloads(channel=channels.MARKET_DATA)] == [
            "MarketSnapshot",
            "ConsolidatedQuote",
            "MarketSnapshot",
            "ConsolidatedQuote",
        ]
        first, second = quotes(rec)
        assert [v.exchange for v in first.venues] == ["binance"]
        assert first.gap_bps == 0
        assert second == ConsolidatedQuote(
            pair="BTC/USDT",
            market="spot",
            symbol="BTC/USDT",
            venues=(
                VenueQuote(
                    exchange="binance",
                    symbol="BTC/USDT",
                    bid=D(100),
                    ask=D(101),
                    last=None,
                    mid=D("100.5"),
                    spread_bps=D("99.5025"),
                    exchange_ts_ns=T0,
                    age_s=D("1.000"),
                    stale=False,
                ),
                VenueQuote(
                    exchange="kraken",
                    symbol="BTC/USDT",
                    bid=D("100.8"),
                    ask=D("101.6"),
                    last=None,
                    mid=D("101.2"),
                    spread_bps=D("79.0514"),
                    exchange_ts_ns=T0 + S,
                    age_s=D("0.000"),
                    stale=False,
                ),
            ),
            best_bid=D("100.8"),
            best_bid_exchange="kraken",
            best_ask=D(101),
            best_ask_exchange="binance",
            mid=D("100.9"),
            spread_bps=D("19.8216"),
            high_mid=D("101.2"),
            high_mid_exchange="kraken",
            low_mid=D("100.5"),
            low_mid_exchange="binance",
            gap_bps=D("69.6517"),
            basis=(),
            as_of_ts_ns=T0 + S,
        )

        # one batch touching two symbols: both snapshots, then both quotes
        rec.events.clear()
        await feed(
            node,
            spot("okx", T0 + 2 * S, "100.5", "100.7"),
            spot("okx", T0 + 2 * S, "2000", "2001", symbol="ETH/USDT"),
        )
        kinds = [(type(p).__name__, p.symbol) for p in rec.payloads(channel=channels.MARKET_DATA)]
        assert kinds == [
            ("MarketSnapshot", "BTC/USDT"),
            ("MarketSnapshot", "ETH/USDT"),
            ("ConsolidatedQuote", "BTC/USDT"),
            ("ConsolidatedQuote", "ETH/USDT"),
        ]
        btc = quotes(rec)[0]
        assert [v.exchange for v in btc.venues] == ["binance", "kraken", "okx"]
        assert (btc.best_ask, btc.best_ask_exchange) == (D("100.7"), "okx")
        assert str(btc.spread_bps) == "-9.9256"  # kraken's bid above okx's ask

        health = node.health()["plugins"]["market_monitor"]
        assert health["pairs"] == 2
        assert health["consolidated_published"] == 4
        assert health["gaps_bps"] == {"spot:BTC/USDT": "69.6517"}
        assert health["snapshots_published"] == 4


async def test_the_plugin_and_the_function_agree(make_config: MakeConfig) -> None:
    """What the plugin publishes is what ``consolidate`` (``corec prices``) computes."""
    config = monitor_config(make_config, clock="replay", **CALM)
    fed = [
        spot("binance", T0, "100", "101"),
        perp("binance", T0, "100.9", "101.1"),
        perp("okx", T0 + S, "101.4", "101.6"),
        spot("okx", T0 + 2 * S, "100.5", "100.7"),
    ]
    async with started_node(config, channels.MARKET_DATA) as (node, rec):
        for t in fed:
            await feed(node, t)
        published = {(q.market, q.symbol): q for q in quotes(rec)}  # the latest of each
        expected = consolidate(fed, now_ns=T0 + 2 * S, stale_after_ns=600 * S)
        assert [published[(q.market, q.symbol)] for q in expected] == expected
        # the last batch was okx spot: the perpetual was republished with okx's basis
        assert [type(p).__name__ for p in rec.payloads(channel=channels.MARKET_DATA)][-3:] == [
            "MarketSnapshot",
            "ConsolidatedQuote",
            "ConsolidatedQuote",
        ]
        assert [(b.exchange, str(b.basis_bps)) for b in expected[1].basis] == [
            ("binance", "49.7512"),
            ("okx", "89.4632"),
        ]


async def test_gap_alert_fires_once_per_excursion_and_re_arms(make_config: MakeConfig) -> None:
    config = monitor_config(make_config, clock="replay", gap_alert_bps="50", **CALM)
    async with started_node(config, channels.ALERTS, channels.MARKET_DATA) as (node, rec):
        await feed(node, spot("binance", T0, "100", "101"))  # mid 100.5
        await feed(node, spot("kraken", T0 + S, "100.8", "101.6"))  # mid 101.2: 69.6517 bps
        await feed(node, spot("kraken", T0 + 2 * S, "100.9", "101.5"))  # still 69.6517
        [gap] = alerts(rec, "cross_exchange_gap")
        assert gap.severity == "medium"
        assert gap.labels == {
            "plugin": "market_monitor",
            "market": "spot",
            "symbol": "BTC/USDT",
            "pair": "BTC/USDT",
            "high_exchange": "kraken",
            "low_exchange": "binance",
        }
        assert gap.message == (
            "BTC/USDT spot: kraken mid 101.2 is 69.6517 bps above binance mid 100.5 "
            "(alert at 50 bps)"
        )

        await feed(node, spot("kraken", T0 + 3 * S, "100.5", "100.7"))  # 9.9502: re-armed
        assert len(alerts(rec, "cross_exchange_gap")) == 1
        await feed(node, spot("kraken", T0 + 4 * S, "101.9", "102.3"))  # 159.2040: crossed
        _, second = alerts(rec, "cross_exchange_gap")
        assert second.severity == "high"  # at least twice the threshold
        assert second.message == (
            "BTC/USDT spot: kraken mid 102.1 is 159.2040 bps above binance mid 100.5 "
            "(alert at 50 bps); books crossed: bid 101.9 on kraken above ask 101 on binance"
        )
        assert [str(q.gap_bps) for q in quotes(rec)] == [
            "0.0000",
            "69.6517",
            "69.6517",
            "9.9502",
            "159.2040",
        ]
        health = node.health()["plugins"]["market_monitor"]
        assert health["gap_alerts"] == 2
        assert health["gaps_bps"] == {"spot:BTC/USDT": "159.2040"}


async def test_futures_basis_alert_on_either_sign(make_config: MakeConfig) -> None:
    config = monitor_config(make_config, clock="replay", basis_alert_bps="100", **CALM)
    async with started_node(config, channels.ALERTS, channels.MARKET_DATA) as (node, rec):
        await feed(node, spot("binance", T0, "100", "101"))  # spot mid 100.5
        await feed(node, perp("okx", T0, "101.4", "102"))  # okx has no spot: no basis
        await feed(node, perp("binance", T0 + S, "101.4", "101.8"))  # 101.6: +109.4527 bps
        await feed(node, perp("binance", T0 + 2 * S, "101.5", "101.7"))  # still beyond
        [basis] = alerts(rec, "futures_basis")
        assert basis.severity == "medium"
        assert basis.labels == {
            "plugin": "market_monitor",
            "exchange": "binance",
            "pair": "BTC/USDT",
            "symbol": "BTC/USDT:USDT",
            "direction": "contango",
        }
        assert basis.message == (
            "BTC/USDT:USDT on binance: futures mid 101.6 vs BTC/USDT spot mid 100.5, "
            "basis +109.4527 bps (alert at ±100 bps)"
        )
        assert alerts(rec, "cross_exchange_gap") == []  # okx and binance futures: 19.7 bps

        # spot moves up: the futures quote is republished with the new basis (re-armed)
        rec.events.clear()
        await feed(node, spot("binance", T0 + 3 * S, "100.6", "101.4"))  # spot mid 101.0
        [spot_quote, futures_quote] = quotes(rec)
        assert (spot_quote.market, futures_quote.market) == ("spot", "futures")
        assert [str(b.basis_bps) for b in futures_quote.basis] == ["59.4059"]

        await feed(node, perp("binance", T0 + 4 * S, "97.9", "98.1"))  # 98: -297.0297 bps
        [second] = alerts(rec, "futures_basis")
        assert second.severity == "high"
        assert second.labels["direction"] == "backwardation"
        assert "basis -297.0297 bps" in second.message
        health = node.health()["plugins"]["market_monitor"]
        assert health["basis_alerts"] == 2
        assert health["basis_bps"] == {"binance:BTC/USDT:USDT": "-297.0297"}
        assert health["pairs"] == 1


async def test_silent_venue_goes_stale_and_leaves_the_view(make_config: MakeConfig) -> None:
    config = monitor_config(
        make_config, clock="replay", stale_after_s=600, stale_check_interval_s=30, **CALM
    )
    async with started_node(config, channels.ALERTS, channels.MARKET_DATA) as (node, rec):
        minute = 60 * S
        await feed(node, spot("binance", T0, "100", "101"), spot("kraken", T0, "100.8", "101.6"))
        for i in range(1, 11):  # binance keeps ticking; kraken is silent
            await feed(node, spot("binance", T0 + i * minute, "100", "101"))
        assert alerts(rec, "stale_data") == []  # exactly 600 s: not yet
        assert node.health()["plugins"]["market_monitor"]["gaps_bps"] == {
            "spot:BTC/USDT": "69.6517"
        }

        rec.events.clear()
        await feed(node, spot("binance", T0 + 11 * minute, "100", "101"))
        [stale] = alerts(rec, "stale_data")
        assert stale.labels["exchange"] == "kraken"
        assert "no ticker for 660 s" in stale.message
        [quote] = quotes(rec)  # once per batch, even though kraken also went stale
        kraken = quote.venues[1]
        assert (kraken.exchange, kraken.stale, kraken.age_s) == ("kraken", True, D("660.000"))
        assert (quote.best_bid_exchange, quote.best_ask_exchange) == ("binance", "binance")
        assert quote.gap_bps == 0
        health = node.health()["plugins"]["market_monitor"]
        assert health["gaps_bps"] == {}
        assert health["stale"] == ["kraken:spot:BTC/USDT"]

        await feed(node, spot("kraken", T0 + 12 * minute, "100.8", "101.6"))
        assert not quotes(rec)[-1].venues[1].stale
        assert node.health()["plugins"]["market_monitor"]["stale"] == []


async def test_live_clock_marks_silent_venues_stale(make_config: MakeConfig) -> None:
    config = monitor_config(
        make_config,
        stale_after_s=0.3,
        stale_check_interval_s=0.1,
        consolidate_interval_s=0,  # every change published at once
        **CALM,
    )
    async with started_node(config, channels.ALERTS, channels.MARKET_DATA) as (node, rec):
        assert not node.clock.is_simulated
        now = time.time_ns()
        await feed(node, spot("binance", now, "100", "101"), spot("okx", now, "100.2", "101.2"))
        fresh = quotes(rec)[-1]
        assert [v.stale for v in fresh.venues] == [False, False]
        assert str(fresh.gap_bps) == "19.9005"

        await node.run(duration_s=0.8, handle_signals=False)

        assert sorted(a.labels["exchange"] for a in alerts(rec, "stale_data")) == ["binance", "okx"]
        stale = quotes(rec)[-1]  # republished by the periodic check
        assert [v.stale for v in stale.venues] == [True, True]
        assert stale.mid is None
        assert stale.as_of_ts_ns > fresh.as_of_ts_ns


async def test_interval_holds_fast_updates_and_publishes_them_later(
    make_config: MakeConfig,
) -> None:
    config = monitor_config(make_config, clock="replay", **CALM)  # default: 1 s
    ms = S // 1000
    async with started_node(config, channels.MARKET_DATA) as (node, rec):
        await feed(node, spot("binance", T0, "100", "101"))
        await feed(node, spot("kraken", T0 + 300 * ms, "100.8", "101.6"))  # held
        await feed(node, spot("okx", T0 + 600 * ms, "100.5", "100.7"))  # held
        await feed(node, spot("okx", T0 + 600 * ms, "2000", "2001", symbol="ETH/USDT"))
        assert [(q.symbol, len(q.venues)) for q in quotes(rec)] == [
            ("BTC/USDT", 1),
            ("ETH/USDT", 1),  # another symbol has its own interval
        ]
        assert len(rec.payloads(MarketSnapshot)) == 4  # snapshots are never held
        assert node.health()["plugins"]["market_monitor"]["consolidated_held"] == 1

        # the next batch after the interval publishes the held symbol, with every venue
        await feed(node, spot("okx", T0 + 1000 * ms, "2000", "2002", symbol="ETH/USDT"))
        btc = quotes(rec)[-1]
        assert btc.symbol == "BTC/USDT"
        assert [v.exchange for v in btc.venues] == ["binance", "kraken", "okx"]
        assert btc.as_of_ts_ns == T0 + S
        assert len(quotes(rec)) == 3  # ETH/USDT was published 400 ms ago: held
        assert node.health()["plugins"]["market_monitor"]["consolidated_held"] == 1


async def test_live_clock_publishes_held_quotes_when_the_interval_ends(
    make_config: MakeConfig,
) -> None:
    config = monitor_config(make_config, consolidate_interval_s=0.2, **CALM)
    async with started_node(config, channels.MARKET_DATA) as (node, rec):
        now = time.time_ns()
        await feed(node, spot("binance", now, "100", "101"))
        await feed(node, spot("okx", now, "100.2", "101.2"))  # a poll a moment later
        assert [len(q.venues) for q in quotes(rec)] == [1]

        await node.run(duration_s=0.5, handle_signals=False)

        assert [len(q.venues) for q in quotes(rec)] == [1, 2]
        assert str(quotes(rec)[-1].gap_bps) == "19.9005"
        assert node.health()["plugins"]["market_monitor"]["consolidated_held"] == 0


async def test_open_orders_snapshot_is_ignored(make_config: MakeConfig) -> None:
    config = monitor_config(make_config, clock="replay")
    async with started_node(config, channels.DEAD_LETTER, channels.MARKET_DATA) as (node, rec):
        snapshot = OpenOrdersSnapshot(
            exchange="binance",
            market="spot",
            taken_ts_ns=T0,
            orders=(
                OpenOrder(
                    exchange="binance",
                    market="spot",
                    symbol="BTC/USDT",
                    order_id="1",
                    side="buy",
                    type="limit",
                    price=D(100),
                    amount=D("0.1"),
                ),
            ),
        )
        await node.bus.publish(
            make_event(channels.EXCHANGE_DATA, snapshot, source="test@x", clock=node.clock)
        )
        assert rec.payloads(DeadLetter) == []
        assert rec.payloads(channel=channels.MARKET_DATA) == []
        assert node.health()["bus"]["dead_letters"] == {}


async def test_snapshot_consumers_ignore_consolidated_quotes(make_config: MakeConfig) -> None:
    """trading_execution and capital_pool take MarketSnapshot, skip ConsolidatedQuote, and
    still refuse anything else on market_data."""
    config = make_config(
        {
            "node": {
                "plugins": ["market_monitor", "capital_pool", "trading_execution"],
                "clock": "replay",
            },
            "market_monitor": CALM,
        }
    )
    async with started_node(config, channels.DEAD_LETTER, channels.MARKET_DATA) as (node, rec):
        assert isinstance(node.clock, ReplayClock)
        await feed(
            node, ticker(T0, last="46377.0", exchange="ftx", market="futures", symbol="BTC/USD:USD")
        )
        await feed(node, spot("binance", T0, "100", "101"), spot("kraken", T0, "100.5", "101"))
        assert len(rec.payloads(ConsolidatedQuote)) == 2
        assert len(rec.payloads(MarketSnapshot)) == 3
        assert rec.payloads(DeadLetter) == []

        wrong = Alert(name="not_market_data", message="oops")
        await node.bus.publish(
            make_event(channels.MARKET_DATA, wrong, source="test@x", clock=node.clock)
        )
        letters = rec.payloads(DeadLetter)
        assert sorted(letter.handler for letter in letters) == ["capital_pool", "trading_execution"]
        assert all("expected MarketSnapshot" in letter.error for letter in letters)
