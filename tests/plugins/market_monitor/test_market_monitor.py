"""market_monitor in a real node: exchange_data in, market_data and alerts out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec

from corec.core import channels
from corec.core.clock import NS_PER_S, ReplayClock
from corec.core.config import CorecConfig
from corec.core.events import make_event
from corec.core.notices import Alert, DeadLetter
from corec.core.nucleus import Node
from corec.messages.exchange_data import Ticker, TickerBatch
from corec.messages.market_data import MarketSnapshot
from corec.plugins.market_monitor.analytics import PriceWindow, mid_price, spread_bps
from tests.harness import Recorder, started_node

D = Decimal
T0 = 1_700_000_040 * NS_PER_S  # a minute boundary
HOUR_NS = 3600 * NS_PER_S
MakeConfig = Callable[..., CorecConfig]


def ticker(
    ts_ns: int,
    *,
    last: str | None = None,
    bid: str | None = None,
    ask: str | None = None,
    exchange: str = "binance",
    market: str = "spot",
    symbol: str = "BTC/USDT",
) -> Ticker:
    return Ticker(
        exchange=exchange,
        market=market,  # type: ignore[arg-type]
        symbol=symbol,
        bid=None if bid is None else D(bid),
        ask=None if ask is None else D(ask),
        last=None if last is None else D(last),
        exchange_ts_ns=ts_ns,
        received_ts_ns=ts_ns,
    )


async def feed(node: Node, *tickers: Ticker, advance: bool = True) -> None:
    """Publish one TickerBatch on exchange_data (moving a replay clock to its newest ts)."""
    if advance and isinstance(node.clock, ReplayClock):
        node.clock.advance_to(max(t.exchange_ts_ns for t in tickers))
    await node.bus.publish(
        make_event(
            channels.EXCHANGE_DATA,
            TickerBatch(tickers=tickers),
            source="test@x",
            clock=node.clock,
        )
    )


def monitor_config(make_config: MakeConfig, clock: str = "system", **section: Any) -> CorecConfig:
    return make_config(
        {"node": {"plugins": ["market_monitor"], "clock": clock}, "market_monitor": section}
    )


def snapshots(rec: Recorder) -> list[MarketSnapshot]:
    return rec.payloads(MarketSnapshot, channel=channels.MARKET_DATA)


def alerts(rec: Recorder, name: str | None = None) -> list[Alert]:
    return [a for a in rec.payloads(Alert, channel=channels.ALERTS) if name in (None, a.name)]


# -- pure figures -------------------------------------------------------------------------


def test_mid_and_spread_formulas() -> None:
    assert mid_price(D(100), D(101), D(7)) == D("100.5")
    assert mid_price(None, D(101), D(7)) == D(7)
    assert mid_price(D(100), None, None) is None
    assert spread_bps(D(100), D(101)) == D("99.5025")
    assert spread_bps(D(100), None) is None
    assert spread_bps(D("2024.61"), D("2024.62")) == D("0.0494")


def test_price_window_return_is_none_until_filled() -> None:
    window = PriceWindow(3600 * NS_PER_S)
    assert window.add(T0, D(100)) is None
    assert window.add(T0 + HOUR_NS - 1, D(104)) is None
    assert window.add(T0 + HOUR_NS, D(105)) == D("5.0000")
    assert window.reference() == (T0, D(100))
    # the reference moves to the newest price at or before now - window
    assert window.add(T0 + 2 * HOUR_NS - 1, D(84)) == D("-19.2308")  # 84 / 104 - 1
    assert window.reference() == (T0 + HOUR_NS - 1, D(104))
    assert window.add(T0 + 2 * HOUR_NS, D(84)) == D("-20.0000")  # 84 / 105 - 1
    assert window.reference() == (T0 + HOUR_NS, D(105))


# -- snapshots --------------------------------------------------------------------------


async def test_snapshot_with_book_has_exact_mid_and_spread(make_config: MakeConfig) -> None:
    async with started_node(monitor_config(make_config), channels.MARKET_DATA) as (node, rec):
        await feed(node, ticker(T0, bid="100", ask="101", last="100.7"))

        assert snapshots(rec) == [
            MarketSnapshot(
                exchange="binance",
                market="spot",
                symbol="BTC/USDT",
                bid=D(100),
                ask=D(101),
                last=D("100.7"),
                mid=D("100.5"),
                price=D("100.7"),
                spread_bps=D("99.5025"),
                return_pct=None,
                window_s=3600,
                exchange_ts_ns=T0,
            )
        ]
        snap = snapshots(rec)[0]
        assert str(snap.spread_bps) == "99.5025"
        assert node.health()["plugins"]["market_monitor"]["snapshots_published"] == 1


async def test_book_without_last_uses_mid_as_price(make_config: MakeConfig) -> None:
    async with started_node(monitor_config(make_config), channels.MARKET_DATA) as (node, rec):
        await feed(node, ticker(T0, bid="100", ask="101"))
        [snap] = snapshots(rec)
        assert (snap.mid, snap.price, snap.last) == (D("100.5"), D("100.5"), None)


async def test_bar_only_ticker_mid_is_last_and_spread_none(make_config: MakeConfig) -> None:
    async with started_node(monitor_config(make_config), channels.MARKET_DATA) as (node, rec):
        await feed(node, ticker(T0, last="46377.0"))
        [snap] = snapshots(rec)
        assert snap.mid == D("46377.0")
        assert snap.price == D("46377.0")
        assert snap.bid is None and snap.ask is None
        assert snap.spread_bps is None
        assert snap.return_pct is None


async def test_return_pct_none_until_window_filled_then_exact(make_config: MakeConfig) -> None:
    config = monitor_config(make_config, window_s=3600, move_alert_pct="50")
    async with started_node(config, channels.MARKET_DATA) as (node, rec):
        await feed(node, ticker(T0, last="100"))
        await feed(node, ticker(T0 + 1800 * NS_PER_S, last="102"))
        await feed(node, ticker(T0 + HOUR_NS - NS_PER_S, last="103"))
        await feed(node, ticker(T0 + HOUR_NS, last="105"))
        await feed(node, ticker(T0 + HOUR_NS + 1800 * NS_PER_S, last="99.96"))

        returns = [s.return_pct for s in snapshots(rec)]
        # the last one is measured from 102, the newest price at or before now - 1 h
        assert returns == [None, None, None, D("5.0000"), D("-2.0000")]
        assert str(returns[3]) == "5.0000"
        assert all(s.window_s == 3600 for s in snapshots(rec))


async def test_older_ticker_is_ignored(make_config: MakeConfig) -> None:
    async with started_node(monitor_config(make_config), channels.MARKET_DATA) as (node, rec):
        await feed(node, ticker(T0, last="100"))
        await feed(node, ticker(T0 - NS_PER_S, last="90"))
        await feed(node, ticker(T0, last="101"))  # same timestamp: accepted
        assert [s.price for s in snapshots(rec)] == [D(100), D(101)]


# -- price moves --------------------------------------------------------------------------


async def test_one_price_move_alert_per_excursion(make_config: MakeConfig) -> None:
    config = monitor_config(make_config, window_s=3600, move_alert_pct="5")
    async with started_node(config, channels.ALERTS, channels.MARKET_DATA) as (node, rec):
        s = NS_PER_S
        await feed(node, ticker(T0, last="100"))
        await feed(node, ticker(T0 + HOUR_NS, last="105"))  # +5.0000 %: at threshold
        await feed(node, ticker(T0 + HOUR_NS + 60 * s, last="106"))  # still beyond
        await feed(node, ticker(T0 + HOUR_NS + 120 * s, last="107"))  # still beyond
        assert len(alerts(rec, "price_move")) == 1

        await feed(node, ticker(T0 + HOUR_NS + 180 * s, last="104.99"))  # back under: re-armed
        assert len(alerts(rec, "price_move")) == 1
        await feed(node, ticker(T0 + HOUR_NS + 240 * s, last="110"))  # +10 %: high
        await feed(node, ticker(T0 + HOUR_NS + 300 * s, last="111"))

        assert [s.return_pct for s in snapshots(rec)] == [
            None,
            D("5.0000"),
            D("6.0000"),
            D("7.0000"),
            D("4.9900"),
            D("10.0000"),
            D("11.0000"),
        ]
        moves = alerts(rec, "price_move")
        assert [(a.severity, a.labels) for a in moves] == [
            (
                "medium",
                {
                    "plugin": "market_monitor",
                    "exchange": "binance",
                    "market": "spot",
                    "symbol": "BTC/USDT",
                    "direction": "up",
                },
            ),
            (
                "high",
                {
                    "plugin": "market_monitor",
                    "exchange": "binance",
                    "market": "spot",
                    "symbol": "BTC/USDT",
                    "direction": "up",
                },
            ),
        ]
        assert "+5.0000%" in moves[0].message
        assert "100 -> 105" in moves[0].message
        assert node.health()["plugins"]["market_monitor"]["move_alerts"] == 2


async def test_price_move_down_below_twice_threshold_is_medium(make_config: MakeConfig) -> None:
    config = monitor_config(make_config, window_s=600, move_alert_pct="2")
    async with started_node(config, channels.ALERTS) as (node, rec):
        args = {"exchange": "okx", "market": "futures", "symbol": "ETH/USDT:USDT"}
        await feed(node, ticker(T0, last="2000", **args))
        await feed(node, ticker(T0 + 600 * NS_PER_S, last="1920.02", **args))  # -3.999 %
        [move] = alerts(rec, "price_move")
        assert move.severity == "medium"
        assert move.labels == {
            "plugin": "market_monitor",
            "exchange": "okx",
            "market": "futures",
            "symbol": "ETH/USDT:USDT",
            "direction": "down",
        }
        assert "-3.9990%" in move.message


async def test_move_alerts_are_per_instrument(make_config: MakeConfig) -> None:
    config = monitor_config(make_config, window_s=60, move_alert_pct="1")
    async with started_node(config, channels.ALERTS) as (node, rec):
        minute = 60 * NS_PER_S
        await feed(node, ticker(T0, last="100"), ticker(T0, last="10", symbol="ETH/USDT"))
        await feed(
            node,
            ticker(T0 + minute, last="102"),
            ticker(T0 + minute, last="9.7", symbol="ETH/USDT"),
        )
        moves = alerts(rec, "price_move")
        assert [(m.labels["symbol"], m.labels["direction"], m.severity) for m in moves] == [
            ("BTC/USDT", "up", "high"),
            ("ETH/USDT", "down", "high"),
        ]


# -- staleness ----------------------------------------------------------------------------


async def test_gap_longer_than_stale_after_raises_stale_data(make_config: MakeConfig) -> None:
    config = monitor_config(make_config, stale_after_s=300)
    async with started_node(config, channels.ALERTS, channels.MARKET_DATA) as (node, rec):
        await feed(node, ticker(T0, last="100"))
        await feed(node, ticker(T0 + 300 * NS_PER_S, last="100"))  # exactly 300 s: not stale
        assert alerts(rec, "stale_data") == []
        await feed(node, ticker(T0 + 601 * NS_PER_S, last="100"))  # 301 s gap

        [stale] = alerts(rec, "stale_data")
        assert stale.severity == "medium"
        assert stale.labels == {
            "plugin": "market_monitor",
            "exchange": "binance",
            "market": "spot",
            "symbol": "BTC/USDT",
        }
        assert "no ticker for 301 s" in stale.message
        assert len(snapshots(rec)) == 3  # the late ticker still goes through
        health = node.health()["plugins"]["market_monitor"]
        assert health["stale_alerts"] == 1
        assert health["stale"] == []  # it is fresh again
        assert health["status"] == "ok"


async def test_replay_clock_flags_silent_instrument(make_config: MakeConfig) -> None:
    config = monitor_config(
        make_config, clock="replay", stale_after_s=300, stale_check_interval_s=30
    )
    async with started_node(config, channels.ALERTS) as (node, rec):
        assert isinstance(node.clock, ReplayClock)
        minute = 60 * NS_PER_S
        await feed(node, ticker(T0, last="100"), ticker(T0, last="10", symbol="ETH/USDT"))
        for i in range(1, 6):  # BTC keeps ticking for 5 minutes; ETH is silent
            await feed(node, ticker(T0 + i * minute, last="100"))
        assert alerts(rec, "stale_data") == []  # ETH silent for exactly 300 s: not yet

        await feed(node, ticker(T0 + 6 * minute, last="100"))
        [stale] = alerts(rec, "stale_data")
        assert stale.labels["symbol"] == "ETH/USDT"
        assert "no ticker for 360 s" in stale.message
        health = node.health()["plugins"]["market_monitor"]
        assert health["stale"] == ["binance:spot:ETH/USDT"]
        assert health["status"] == "degraded"

        for i in range(7, 12):  # still silent: no second alert for the same silence
            await feed(node, ticker(T0 + i * minute, last="100"))
        assert len(alerts(rec, "stale_data")) == 1

        # ETH comes back: fresh again, and its gap is not reported a second time
        await feed(node, ticker(T0 + 12 * minute, last="10", symbol="ETH/USDT"))
        assert len(alerts(rec, "stale_data")) == 1
        assert node.health()["plugins"]["market_monitor"]["stale"] == []
        assert node.health()["plugins"]["market_monitor"]["status"] == "ok"


# -- bad input ----------------------------------------------------------------------------


async def test_non_ticker_batch_goes_to_dead_letter(make_config: MakeConfig) -> None:
    config = monitor_config(make_config)
    async with started_node(config, channels.DEAD_LETTER, channels.MARKET_DATA) as (node, rec):
        wrong = Alert(name="not_a_batch", message="oops")
        await node.bus.publish(
            make_event(channels.EXCHANGE_DATA, wrong, source="test@x", clock=node.clock)
        )

        [letter] = rec.payloads(DeadLetter, channel=channels.DEAD_LETTER)
        assert letter.channel == channels.EXCHANGE_DATA
        assert letter.event_type == "alert"
        assert letter.handler == "market_monitor"
        assert letter.error_type == "InvalidEvent"
        assert "expected TickerBatch" in letter.error
        assert rec.payloads(channel=channels.MARKET_DATA) == []

        # the plugin keeps working afterwards
        await feed(node, ticker(T0, last="100"))
        assert len(rec.payloads(MarketSnapshot)) == 1


async def test_live_clock_checks_staleness_periodically(make_config: MakeConfig) -> None:
    config = monitor_config(make_config, stale_after_s=0.3, stale_check_interval_s=0.1)
    async with started_node(config, channels.ALERTS) as (node, rec):
        assert not node.clock.is_simulated
        await feed(node, ticker(time.time_ns(), last="100"))
        assert alerts(rec, "stale_data") == []

        reason = await node.run(duration_s=0.8, handle_signals=False)

        assert reason == "duration elapsed"
        [stale] = alerts(rec, "stale_data")  # once per silence, not once per check
        assert stale.labels["symbol"] == "BTC/USDT"
        assert "(last update at " in stale.message
        assert node.health()["plugins"]["market_monitor"]["stale"] == ["binance:spot:BTC/USDT"]


async def test_staleness_counts_from_the_last_update_received(make_config: MakeConfig) -> None:
    # a quiet market: the exchange's ticker time (its last trade) is an hour old, but
    # the venue answers every 0.1 s, well within stale_after_s
    config = monitor_config(make_config, stale_after_s=0.4, stale_check_interval_s=0.1)
    hour_ago = time.time_ns() - 3600 * NS_PER_S

    async def answer_every_poll(node: Node) -> None:
        for _ in range(10):
            quiet = msgspec.structs.replace(
                ticker(hour_ago, last="100"), received_ts_ns=time.time_ns()
            )
            await feed(node, quiet, advance=False)
            await asyncio.sleep(0.1)

    async with started_node(config, channels.ALERTS) as (node, rec):
        feeder = asyncio.create_task(answer_every_poll(node))
        await node.run(duration_s=0.9, handle_signals=False)
        await feeder
        assert alerts(rec, "stale_data") == []
        assert node.health()["plugins"]["market_monitor"]["stale"] == []
