"""trading_execution with capital_pool in one real node: crosses, fills, stops, settlement."""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from fractions import Fraction
from typing import Any

from sqlalchemy import select

from corec.core import channels
from corec.core.clock import NS_PER_S
from corec.core.config import CorecConfig
from corec.core.events import make_event
from corec.core.nucleus import Node
from corec.core.registry import discover_plugins
from corec.messages.capital_data import AllocationGranted, AllocationReleased
from corec.messages.market_data import MarketSnapshot
from corec.messages.trading_results import AllocationUnused, PositionOpened, TradeClosed
from corec.plugins.trading_execution import models as m
from corec.plugins.trading_execution.plugin import TradingExecutionPlugin
from tests.harness import Recorder, count_rows, started_node

D = Decimal
MakeConfig = Callable[..., CorecConfig]
M0 = 1_700_000_040 * NS_PER_S  # a minute boundary
MINUTE = 60 * NS_PER_S
FEE_RATE = D("0.0005")
QUANTUM = D("0.00000001")
STRATEGY = {
    "name": "sma",
    "exchange": "binance",
    "market": "spot",
    "symbol": "BTC/USDT",
    "fast": 2,
    "slow": 4,
    "stop_loss_pct": "2",
    "sides": "long_short",
}
# closes 1-4 put the fast SMA below the slow one; close 5 crosses up (fast 101 > 100.75)
WARM_UP = ("101", "101", "100", "100")
CROSS_UP = "102"


def config_for(make_config: MakeConfig, *, members: bool = True, **strategy: Any) -> CorecConfig:
    pool: dict[str, Any] = {}
    if members:
        pool["members"] = [{"name": "alice", "opening_contribution_usd": "10000"}]
    return make_config(
        {
            "node": {"plugins": ["capital_pool", "trading_execution"]},
            "capital_pool": pool,
            "trading_execution": {"strategies": [{**STRATEGY, **strategy}]},
        }
    )


def snapshot(
    ts_ns: int, last: str, *, bid: str | None = None, ask: str | None = None
) -> MarketSnapshot:
    price = D(last)
    return MarketSnapshot(
        exchange="binance",
        market="spot",
        symbol="BTC/USDT",
        bid=None if bid is None else D(bid),
        ask=None if ask is None else D(ask),
        last=price,
        mid=price if bid is None or ask is None else (D(bid) + D(ask)) / 2,
        price=price,
        spread_bps=None,
        return_pct=None,
        window_s=3600,
        exchange_ts_ns=ts_ns,
    )


async def publish(node: Node, snap: MarketSnapshot) -> None:
    await node.bus.publish(
        make_event(channels.MARKET_DATA, snap, source="test@x", clock=node.clock)
    )


async def closes(node: Node, first_minute: int, *prices: str) -> None:
    """One snapshot per price, stamped exactly on consecutive minute boundaries."""
    for i, price in enumerate(prices):
        await publish(node, snapshot(M0 + (first_minute + i) * MINUTE, price))


def fee(quantity: Decimal, price: Decimal) -> Decimal:
    """Taker fee, rounded up to 8 decimals."""
    return (quantity * price * FEE_RATE).quantize(QUANTUM, rounding=ROUND_UP)


def max_quantity(budget: Decimal, price: Decimal) -> Decimal:
    """Largest 8-decimal quantity whose notional plus (rounded-up) fee fits ``budget``."""
    exact = Fraction(budget) / (Fraction(price) * (1 + Fraction(FEE_RATE)))
    quantity = D(math.floor(exact * 10**8)) / 10**8
    while quantity * price + fee(quantity, price) > budget:
        quantity -= QUANTUM
    assert quantity * price * (1 + FEE_RATE) <= budget
    assert (quantity + QUANTUM) * price + fee(quantity + QUANTUM, price) > budget
    return quantity


def results(rec: Recorder) -> tuple[list[PositionOpened], list[TradeClosed]]:
    return (
        rec.payloads(PositionOpened, channel=channels.TRADING_RESULTS),
        rec.payloads(TradeClosed, channel=channels.TRADING_RESULTS),
    )


def strategy_health(node: Node) -> dict[str, Any]:
    return node.health()["plugins"]["trading_execution"]["strategies"]["sma"]


async def stored(node: Node, table: Any) -> list[dict[str, Any]]:
    store = node.store("trading_execution")
    assert store is not None
    return await store.read(lambda conn: [dict(r) for r in conn.execute(select(table)).mappings()])


# -- the happy path -------------------------------------------------------------------------


async def test_cross_up_long_cross_down_short_then_stop(make_config: MakeConfig) -> None:
    config = config_for(make_config)
    watched = (channels.TRADING_RESULTS, channels.CAPITAL_DATA)
    async with started_node(config, *watched) as (node, rec):
        ledger = node.plugin("capital_pool").service.ledger  # type: ignore[attr-defined]
        assert ledger.nav_usd() == D(10000)

        await closes(node, 0, *WARM_UP)
        assert results(rec) == ([], [])
        await closes(node, 4, CROSS_UP)

        # -- the long: NAV 10,000 is the 1 % band; stop 2 % → 10,000 × 0.01 / 0.02 = 5,000
        [granted] = rec.payloads(AllocationGranted)
        assert granted.amount_usd == D(5000)
        assert (granted.nav_usd, granted.risk_per_trade, granted.reduced) == (
            D(10000),
            D("0.01"),
            False,
        )
        [long_open], closed = results(rec)
        assert closed == []
        q1 = D("48.99511028")
        assert max_quantity(D(5000), D(102)) == q1
        assert long_open.quantity == q1
        assert long_open.side == "long"
        assert long_open.entry_price == D(102)
        assert long_open.entry_fee_usd == D("2.49875063")  # 4997.50124856 × 0.0005, up
        assert long_open.allocation_id == granted.allocation_id
        assert long_open.opened_ts_ns == M0 + 4 * MINUTE
        assert (long_open.strategy, long_open.exchange, long_open.market, long_open.symbol) == (
            "sma",
            "binance",
            "spot",
            "BTC/USDT",
        )
        assert strategy_health(node)["position"] == {"side": "long", "quantity": "48.99511028"}

        # still above; then fast 100.75 < slow 100.875 while 100.5 stays above the stop 99.96
        await closes(node, 5, "101", "100.5")
        opened, closed = results(rec)
        assert len(opened) == 2 and len(closed) == 1
        long_close = closed[0]
        exit_fee1 = fee(q1, D("100.5"))
        assert exit_fee1 == D("2.46200430")
        pnl1 = (D("100.5") - D(102)) * q1 - D("2.49875063") - exit_fee1
        assert long_close.trade_id == long_open.trade_id
        assert long_close.allocation_id == granted.allocation_id
        assert long_close.exit_reason == "signal"
        assert long_close.exit_price == D("100.5")
        assert long_close.fees_usd == D("2.49875063") + exit_fee1
        assert long_close.realized_pnl_usd == pnl1 == D("-78.45342035")
        assert long_close.closed_ts_ns == M0 + 6 * MINUTE

        # -- the short, opened at once on the same cross; NAV is now in the 2 % band,
        # so the grant is cut to the 60 % active cap
        nav1 = D(10000) + pnl1
        short_granted = rec.payloads(AllocationGranted)[1]
        assert short_granted.risk_per_trade == D("0.02")
        assert short_granted.reduced is True
        amount2 = (nav1 * D("0.6")).quantize(QUANTUM, rounding=ROUND_DOWN)
        assert amount2 == D("5952.92794779")  # 9,921.54657965 × 0.6, rounded down
        assert short_granted.amount_usd == amount2
        short_open = opened[1]
        q2 = max_quantity(amount2, D("100.5"))
        assert q2 == D("59.20351215")
        assert short_open.side == "short"
        assert short_open.quantity == q2
        assert short_open.entry_price == D("100.5")
        assert short_open.entry_fee_usd == fee(q2, D("100.5"))
        assert short_open.allocation_id == short_granted.allocation_id
        assert short_open.trade_id != long_open.trade_id

        # -- a tick through the short's stop (100.5 × 1.02 = 102.51), mid-minute
        await publish(node, snapshot(M0 + 6 * MINUTE + 20 * NS_PER_S, "102.50"))
        assert len(results(rec)[1]) == 1  # not through yet
        await publish(node, snapshot(M0 + 6 * MINUTE + 30 * NS_PER_S, "102.51"))
        opened, closed = results(rec)
        assert len(opened) == 2 and len(closed) == 2
        stop_close = closed[1]
        pnl2 = (D("100.5") - D("102.51")) * q2 - short_open.entry_fee_usd - fee(q2, D("102.51"))
        assert stop_close.exit_reason == "stop_loss"
        assert stop_close.side == "short"
        assert stop_close.exit_price == D("102.51")
        assert stop_close.realized_pnl_usd == pnl2 == D("-125.0085119315")
        assert stop_close.closed_ts_ns == M0 + 6 * MINUTE + 30 * NS_PER_S
        assert strategy_health(node)["position"] is None
        assert strategy_health(node)["trades_closed"] == 2

        # -- the pool settled both exactly
        assert ledger.nav_usd() == D(10000) + pnl1 + pnl2
        assert ledger.cash_usd == D(10000) + pnl1 + pnl2
        assert ledger.allocated_usd == 0
        assert ledger.allocations == {}
        released = rec.payloads(AllocationReleased)
        assert [(r.trade_id, r.realized_pnl_usd) for r in released] == [
            (long_open.trade_id, pnl1),
            (short_open.trade_id, pnl2),
        ]

        # -- stored rows
        trades = await stored(node, m.trades)
        assert sorted((t["trade_id"], t["exit_reason"], t["realized_pnl_usd"]) for t in trades) == (
            sorted([(long_open.trade_id, "signal", pnl1), (short_open.trade_id, "stop_loss", pnl2)])
        )
        by_id = {t["trade_id"]: t for t in trades}
        assert by_id[long_open.trade_id]["quantity"] == q1
        assert by_id[long_open.trade_id]["fees_usd"] == long_close.fees_usd
        assert by_id[short_open.trade_id]["exit_price"] == D("102.51")
        fills = sorted(await stored(node, m.fills), key=lambda f: f["id"])
        assert [
            (f["trade_id"], f["side"], f["quantity"], f["price"], f["fee_usd"]) for f in fills
        ] == [
            (long_open.trade_id, "buy", q1, D(102), D("2.49875063")),
            (long_open.trade_id, "sell", q1, D("100.5"), exit_fee1),
            (short_open.trade_id, "sell", q2, D("100.5"), short_open.entry_fee_usd),
            (short_open.trade_id, "buy", q2, D("102.51"), fee(q2, D("102.51"))),
        ]
        assert await stored(node, m.positions) == []
        stats = await TradingExecutionPlugin.read_status(
            node.store("trading_execution"), config.sections["trading_execution"]
        )
        assert stats == {
            "trades": 2,
            "wins": 0,
            "losses": 2,
            "realized_pnl_usd": pnl1 + pnl2,
            "fees_usd": long_close.fees_usd + stop_close.fees_usd,
            "open_positions": 0,
        }


async def test_long_only_fills_at_the_book_and_stops_out(make_config: MakeConfig) -> None:
    config = config_for(make_config, sides="long_only")
    async with started_node(config, channels.TRADING_RESULTS) as (node, rec):
        ledger = node.plugin("capital_pool").service.ledger  # type: ignore[attr-defined]
        for i, price in enumerate((*WARM_UP, CROSS_UP)):
            p = D(price)
            await publish(node, snapshot(M0 + i * MINUTE, price, bid=str(p - 1), ask=str(p + 1)))
        [opened], _ = results(rec)
        # a buy fills at the ask
        assert opened.entry_price == D(103)
        assert opened.quantity == max_quantity(D(5000), D(103))
        # stop 103 × 0.98 = 100.94 is checked against the snapshot's price (last)
        await publish(
            node, snapshot(M0 + 4 * MINUTE + 10 * NS_PER_S, "100.95", bid="100.9", ask="101")
        )
        assert results(rec)[1] == []
        await publish(
            node, snapshot(M0 + 4 * MINUTE + 20 * NS_PER_S, "100.94", bid="100.5", ask="101")
        )
        [_], [closed] = results(rec)
        assert closed.exit_reason == "stop_loss"
        assert closed.exit_price == D("100.5")  # a sell fills at the bid
        q = opened.quantity
        assert closed.realized_pnl_usd == (
            (D("100.5") - D(103)) * q - fee(q, D(103)) - fee(q, D("100.5"))
        )
        # closes 100.94 then 100 → fast < slow: a short cross, but long_only opens nothing
        await publish(node, snapshot(M0 + 6 * MINUTE, "100"))
        assert len(results(rec)[0]) == 1
        assert ledger.nav_usd() == D(10000) + closed.realized_pnl_usd
        assert ledger.allocations == {}


async def test_signals_on_other_instruments_are_ignored(make_config: MakeConfig) -> None:
    config = config_for(make_config)
    async with started_node(config, channels.TRADING_RESULTS) as (node, rec):
        for i, price in enumerate((*WARM_UP, CROSS_UP)):
            snap = snapshot(M0 + i * MINUTE, price)
            other = MarketSnapshot(**{**_fields(snap), "symbol": "ETH/USDT"})
            await publish(node, other)
        assert rec.events == []


def _fields(snap: MarketSnapshot) -> dict[str, Any]:
    return {f: getattr(snap, f) for f in snap.__struct_fields__}


# -- refusals ---------------------------------------------------------------------------------


async def test_empty_pool_refuses_and_nothing_is_opened(make_config: MakeConfig) -> None:
    config = config_for(make_config, members=False)
    async with started_node(config, channels.TRADING_RESULTS, channels.CAPITAL_DATA) as (
        node,
        rec,
    ):
        await closes(node, 0, *WARM_UP, CROSS_UP)

        assert rec.payloads(channel=channels.TRADING_RESULTS) == []
        assert rec.payloads(AllocationGranted) == []
        health = strategy_health(node)
        assert health["allocation_refusals"] == 1
        assert health["last_refusal"].startswith("no_phase: ")
        assert health["position"] is None
        assert node.health()["plugins"]["trading_execution"]["status"] == "ok"
        assert await count_rows(node.store("trading_execution"), m.positions) == 0  # type: ignore[arg-type]
        assert await count_rows(node.store("trading_execution"), m.fills) == 0  # type: ignore[arg-type]


async def test_grant_that_buys_nothing_goes_back_to_the_pool(make_config: MakeConfig) -> None:
    config = config_for(make_config)
    async with started_node(config, channels.TRADING_RESULTS) as (node, rec):
        ledger = node.plugin("capital_pool").service.ledger  # type: ignore[attr-defined]
        # the same closes × 10^10: 5,000 USD buys less than 0.00000001 at 1.02e12
        await closes(node, 0, *(f"{p}0000000000" for p in (*WARM_UP, CROSS_UP)))

        [unused] = rec.payloads(AllocationUnused)
        assert "buys no BTC/USDT" in unused.reason
        assert results(rec) == ([], [])
        assert strategy_health(node)["position"] is None
        assert ledger.allocations == {}
        assert ledger.cash_usd == D(10000)
        assert ledger.nav_usd() == D(10000)


# -- restart ----------------------------------------------------------------------------------


async def test_restart_restores_position_and_settles_once(make_config: MakeConfig) -> None:
    config = config_for(make_config)
    async with started_node(config, channels.TRADING_RESULTS) as (node, rec):
        await closes(node, 0, *WARM_UP, CROSS_UP)
        [opened], _ = results(rec)
        assert opened.quantity == D("48.99511028")

    # a new node on the same data directory (fresh_start is false)
    assert config.node.fresh_start is False
    node = Node(config, discover_plugins())
    rec = Recorder(node.bus, channels.TRADING_RESULTS, channels.CAPITAL_DATA)
    await node.start()
    try:
        assert strategy_health(node)["position"] == {"side": "long", "quantity": "48.99511028"}
        service = node.plugin("capital_pool").service  # type: ignore[attr-defined]
        # marked at its entry price (the saved mark): NAV is down by the entry fee only
        assert service.ledger.marks == {("binance", "spot", "BTC/USDT"): D(102)}
        assert service.ledger.nav_usd() == D(10000) - D("2.49875063")
        [alloc] = service.ledger.allocations.values()
        assert alloc.amount_usd == D(5000)
        assert alloc.position is not None and alloc.position.trade_id == opened.trade_id

        # the stop survived the restart: 102 × 0.98 = 99.96
        await publish(node, snapshot(M0 + 10 * MINUTE + NS_PER_S, "99.97"))
        assert results(rec)[1] == []
        await publish(node, snapshot(M0 + 10 * MINUTE + 2 * NS_PER_S, "99.96"))
        [closed] = results(rec)[1]
        assert closed.trade_id == opened.trade_id
        assert closed.exit_reason == "stop_loss"
        assert closed.opened_ts_ns == opened.opened_ts_ns
        q = opened.quantity
        pnl = (D("99.96") - D(102)) * q - D("2.49875063") - fee(q, D("99.96"))
        assert closed.realized_pnl_usd == pnl
        assert service.ledger.nav_usd() == D(10000) + pnl
        assert service.results_applied == 1

        # the same result delivered again changes nothing
        await node.bus.publish(
            make_event(channels.TRADING_RESULTS, closed, source="test@x", clock=node.clock)
        )
        assert service.results_applied == 1
        assert service.results_ignored == 1
        assert service.ledger.nav_usd() == D(10000) + pnl
        assert len(rec.payloads(AllocationReleased)) == 1
        assert await stored(node, m.positions) == []
        assert len(await stored(node, m.trades)) == 1
    finally:
        await node.stop()
        await node.close()

    # and a third start has nothing open and the same NAV
    async with started_node(config) as (node, _):
        assert strategy_health(node)["position"] is None
        ledger = node.plugin("capital_pool").service.ledger  # type: ignore[attr-defined]
        assert ledger.nav_usd() == D(10000) + pnl
        assert ledger.allocations == {}
