"""trading_execution's query endpoints in a real node with capital_pool, on SQLite and
PostgreSQL: ``trading_execution.positions`` (marked at the latest price seen) and
``trading_execution.trades`` (newest first, filtered, paged)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from corec.core import channels
from corec.core.clock import NS_PER_S
from corec.core.config import CorecConfig
from corec.core.nucleus import Node
from corec.core.queries import Refused
from corec.messages.capital_data import AllocationGranted
from corec.messages.market_data import MarketSnapshot
from corec.messages.trading_results import (
    POSITIONS,
    TRADES,
    PositionOpened,
    PositionRow,
    PositionsPage,
    PositionsRequest,
    TradeClosed,
    TradesPage,
    TradesRequest,
)
from corec.plugins.trading_execution.plugin import TradingExecutionPlugin
from tests.harness import started_node
from tests.plugins.trading_execution.test_trading_execution import (
    CROSS_UP,
    M0,
    MINUTE,
    STRATEGY,
    WARM_UP,
    MakeConfig,
    closes,
    publish,
    results,
    snapshot,
)

D = Decimal


def two_strategies(make_config: MakeConfig, database_url: str) -> CorecConfig:
    """``sma`` (long and short) and ``sma2`` (long only) on the same instrument."""
    return make_config(
        {
            "node": {"plugins": ["capital_pool", "trading_execution"]},
            "capital_pool": {"members": [{"name": "alice", "opening_contribution_usd": "10000"}]},
            "trading_execution": {
                "database_url": database_url,
                "strategies": [
                    STRATEGY,
                    {**STRATEGY, "name": "sma2", "sides": "long_only"},
                ],
            },
        }
    )


async def positions(node: Node, **request: Any) -> PositionsPage:
    reply = await node.bus.request(POSITIONS, PositionsRequest(**request), timeout_s=5)
    assert isinstance(reply, PositionsPage), reply
    return reply


async def trades(node: Node, **request: Any) -> TradesPage:
    reply = await node.bus.request(TRADES, TradesRequest(**request), timeout_s=5)
    assert isinstance(reply, TradesPage), reply
    return reply


def expected_row(
    opened: PositionOpened,
    stop: Decimal,
    mark: Decimal | None,
    mark_ts: int | None,
    allocation_usd: Decimal,
) -> PositionRow:
    """The row of ``opened`` marked at ``mark``, computed by hand."""
    unrealized = None
    if mark is not None:
        move = mark - opened.entry_price
        unrealized = (move if opened.side == "long" else -move) * opened.quantity - (
            opened.entry_fee_usd
        )
    return PositionRow(
        trade_id=opened.trade_id,
        allocation_id=opened.allocation_id,
        strategy=opened.strategy,
        exchange="binance",
        market="spot",
        symbol="BTC/USDT",
        side=opened.side,
        quantity=opened.quantity,
        entry_price=opened.entry_price,
        entry_fee_usd=opened.entry_fee_usd,
        allocation_usd=allocation_usd,
        mark_price=mark,
        mark_ts_ns=mark_ts,
        notional_usd=opened.quantity * (opened.entry_price if mark is None else mark),
        unrealized_pnl_usd=unrealized,
        stop_price=stop,
        opened_ts_ns=opened.opened_ts_ns,
    )


async def test_positions_marked_and_trades_newest_first(
    make_config: MakeConfig, db_url: str
) -> None:
    config = two_strategies(make_config, db_url)
    async with started_node(config, channels.TRADING_RESULTS, channels.CAPITAL_DATA) as (
        node,
        rec,
    ):
        assert (await positions(node)) == PositionsPage(total=0, items=())
        assert (await trades(node)) == TradesPage(total=0, items=())

        # both strategies go long on the cross up at 102 (sma first, then sma2)
        await closes(node, 0, *WARM_UP, CROSS_UP)
        [long1, long2], _ = results(rec)
        assert (long1.strategy, long2.strategy) == ("sma", "sma2")
        grants = {g.allocation_id: g.amount_usd for g in rec.payloads(AllocationGranted)}
        stop = D(102) - D("2.04")  # 2 % below the entry
        at_entry = await positions(node)
        assert at_entry.total == 2
        # newest first: same fill time, sma2's position was opened after sma's
        assert at_entry.items == (
            expected_row(long2, stop, D(102), M0 + 4 * MINUTE, grants[long2.allocation_id]),
            expected_row(long1, stop, D(102), M0 + 4 * MINUTE, grants[long1.allocation_id]),
        )
        assert at_entry.items[1].unrealized_pnl_usd == -long1.entry_fee_usd  # flat: fee only

        # a tick at 103 marks both; another instrument's tick does not
        await publish(node, snapshot(M0 + 4 * MINUTE + 30 * NS_PER_S, "103"))
        eth = MarketSnapshot(
            **{
                **{f: getattr(snapshot(0, "1"), f) for f in MarketSnapshot.__struct_fields__},
                "symbol": "ETH/USDT",
                "exchange_ts_ns": M0 + 4 * MINUTE + 40 * NS_PER_S,
            }
        )
        await publish(node, eth)
        marked = await positions(node, strategy="sma")
        assert marked.total == 1
        [row] = marked.items
        assert row == expected_row(
            long1, stop, D(103), M0 + 4 * MINUTE + 30 * NS_PER_S, grants[long1.allocation_id]
        )
        assert row.unrealized_pnl_usd == D("48.99511028") - D("2.49875063")
        assert row.notional_usd == D("48.99511028") * 103
        # paging and filters
        first = await positions(node, limit=1)
        second = await positions(node, limit=1, offset=1)
        assert (first.total, second.total) == (2, 2)
        assert [first.items[0].strategy, second.items[0].strategy] == ["sma2", "sma"]
        assert (await positions(node, symbol="BTC/USDT")).total == 2
        assert (await positions(node, symbol="ETH/USDT")).total == 0
        assert (await positions(node, strategy="nope")).total == 0
        assert (await positions(node, offset=5)).items == ()

        # cross down at 100.5: both longs close (signal), sma alone goes short
        await closes(node, 5, "101", "100.5")
        opened, closed = results(rec)
        short = opened[2]
        assert (short.strategy, short.side) == ("sma", "short")
        [row] = (await positions(node)).items
        assert (row.trade_id, row.mark_price, row.unrealized_pnl_usd) == (
            short.trade_id,
            D("100.5"),
            -short.entry_fee_usd,
        )
        # the short stops out at 102.51, mid-minute
        await publish(node, snapshot(M0 + 6 * MINUTE + 30 * NS_PER_S, "102.51"))
        _, closed = results(rec)
        assert len(closed) == 3
        assert (await positions(node)).total == 0

        everything = await trades(node)
        by_time = await trades(node, from_ts_ns=M0 + 6 * MINUTE + 1)
        before_stop = await trades(node, to_ts_ns=M0 + 6 * MINUTE + 30 * NS_PER_S)
        window = await trades(
            node, from_ts_ns=M0 + 6 * MINUTE, to_ts_ns=M0 + 6 * MINUTE + 30 * NS_PER_S + 1
        )
        sma_only = await trades(node, strategy="sma")
        pages = [await trades(node, limit=2), await trades(node, limit=2, offset=2)]
        other_symbol = await trades(node, symbol="ETH/USDT")
        refusals = [
            await node.bus.request(TRADES, TradesRequest(limit=0), timeout_s=5),
            await node.bus.request(TRADES, TradesRequest(offset=-1), timeout_s=5),
            await node.bus.request(TRADES, TradesRequest(from_ts_ns=M0, to_ts_ns=M0), timeout_s=5),
            await node.bus.request(POSITIONS, PositionsRequest(limit=1001), timeout_s=5),
        ]

    stop_out = closed[2]
    long1_closed, long2_closed = sorted(closed[:2], key=lambda t: t.strategy)
    assert stop_out.exit_reason == "stop_loss" and stop_out.trade_id == short.trade_id
    assert isinstance(stop_out, TradeClosed)
    # newest first: the stop-out, then the two signal exits at the same time (by trade
    # id, descending: sma2's position was opened after sma's)
    assert everything == TradesPage(total=3, items=(stop_out, long2_closed, long1_closed))
    assert (long1_closed.trade_id, long2_closed.trade_id) == (long1.trade_id, long2.trade_id)
    assert by_time.items == (stop_out,)
    assert before_stop.items == (long2_closed, long1_closed)
    assert window.total == 3
    assert sma_only.items == (stop_out, long1_closed)
    assert [p.total for p in pages] == [3, 3]
    assert pages[0].items + pages[1].items == everything.items
    assert other_symbol == TradesPage(total=0, items=())
    assert all(isinstance(r, Refused) for r in refusals)
    assert [(r.code, r.field) for r in refusals] == [  # type: ignore[union-attr]
        ("invalid", "limit"),
        ("invalid", "offset"),
        ("invalid", "to_ts_ns"),
        ("invalid", "limit"),
    ]


def test_endpoints_are_declared() -> None:
    assert set(TradingExecutionPlugin.serves) == {POSITIONS, TRADES}
