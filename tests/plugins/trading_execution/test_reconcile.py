"""Reconciliation at start: a node stopped between the steps of a trade is mended when
it starts again (the pool and trading_execution end up agreeing, each result once)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from corec.core import channels
from corec.messages.capital_data import ALLOCATE, AllocationGranted, AllocationRequest
from corec.messages.trading_results import AllocationUnused, PositionOpened, TradeClosed
from corec.plugins.capital_pool import models as pool_models
from corec.plugins.trading_execution import models as m
from tests.harness import count_rows, started_node
from tests.plugins.trading_execution.test_trading_execution import (
    CROSS_UP,
    WARM_UP,
    MakeConfig,
    closes,
    config_for,
)

RESULTS = channels.TRADING_RESULTS


def reconciled(node: Any) -> dict[str, int]:
    return node.health()["plugins"]["trading_execution"]["reconciled_at_start"]


def pool_ledger(node: Any) -> Any:
    return node.plugin("capital_pool").service.ledger


async def test_an_allocation_granted_but_never_used_is_returned(make_config: MakeConfig) -> None:
    config = config_for(make_config)
    async with started_node(config) as (node, _):
        grant = await node.bus.request(
            ALLOCATE,
            AllocationRequest(
                strategy="sma",
                exchange="binance",
                market="spot",
                symbol="BTC/USDT",
                side="long",
                stop_loss_pct=Decimal(2),
            ),
            timeout_s=5,
        )
        assert isinstance(grant, AllocationGranted)
        assert pool_ledger(node).allocated_usd == grant.amount_usd == Decimal(5000)
    # the node stopped between the grant and the fill: start again
    async with started_node(config, RESULTS) as (node, rec):
        assert reconciled(node) == {
            "fills_republished": 0,
            "trades_republished": 0,
            "allocations_returned": 1,
            "orphan_positions": 0,
        }
        [unused] = rec.payloads(AllocationUnused)
        assert unused.allocation_id == grant.allocation_id
        ledger = pool_ledger(node)
        assert ledger.allocated_usd == 0
        assert ledger.cash_usd == ledger.nav_usd() == Decimal(10000)
    async with started_node(config, RESULTS) as (node, rec):  # nothing left to mend
        assert sum(reconciled(node).values()) == 0
        assert rec.payloads() == []


async def test_a_trade_closed_but_never_settled_is_settled_once(make_config: MakeConfig) -> None:
    config = config_for(make_config)
    async with started_node(config, RESULTS) as (node, rec):
        await closes(node, 0, *WARM_UP, CROSS_UP)
        [opened] = rec.payloads(PositionOpened)
    # simulate a stop after trading_execution stored the closed trade but before the
    # pool heard of it: the trade row exists, the position row is gone
    exit_price = Decimal(103)
    exit_fee = Decimal("2.52")
    gross = (exit_price - opened.entry_price) * opened.quantity
    fees = opened.entry_fee_usd + exit_fee
    row = {
        "trade_id": opened.trade_id,
        "allocation_id": opened.allocation_id,
        "strategy": "sma",
        "exchange": "binance",
        "market": "spot",
        "symbol": "BTC/USDT",
        "side": "long",
        "quantity": opened.quantity,
        "entry_price": opened.entry_price,
        "exit_price": exit_price,
        "fees_usd": fees,
        "realized_pnl_usd": gross - fees,
        "opened_ts_ns": opened.opened_ts_ns,
        "closed_ts_ns": opened.opened_ts_ns + 60_000_000_000,
        "exit_reason": "signal",
    }
    async with started_node(config_for(make_config, name="other")) as (node, _):
        store = node.store("trading_execution")

        def crash_after_save(conn: sa.Connection) -> None:
            conn.execute(sa.insert(m.trades), row)
            conn.execute(sa.delete(m.positions))

        await store.write(crash_after_save)
    async with started_node(config, RESULTS) as (node, rec):
        assert reconciled(node)["trades_republished"] == 1
        [settled] = rec.payloads(TradeClosed)
        assert settled.trade_id == opened.trade_id
        ledger = pool_ledger(node)
        assert ledger.allocations == {}
        assert ledger.nav_usd() == Decimal(10000) + gross - fees
        entries = await count_rows(node.store("capital_pool"), pool_models.journal_entries)
    async with started_node(config, RESULTS) as (node, rec):  # applied once, not again
        assert sum(reconciled(node).values()) == 0
        assert await count_rows(node.store("capital_pool"), pool_models.journal_entries) == entries


async def test_a_fill_the_pool_missed_is_republished(make_config: MakeConfig) -> None:
    config = config_for(make_config)
    async with started_node(config, RESULTS) as (node, rec):
        await closes(node, 0, *WARM_UP, CROSS_UP)
        [opened] = rec.payloads(PositionOpened)
    # simulate a stop after the fill was stored but before the pool recorded it
    async with started_node(config_for(make_config, name="other")) as (node, _):
        clear = sa.update(pool_models.allocations).values(
            trade_id=None, quantity=None, entry_price=None, entry_fee_usd=None, opened_ts_ns=None
        )
        await node.store("capital_pool").write(lambda conn: conn.execute(clear))
    async with started_node(config, RESULTS) as (node, rec):
        assert reconciled(node)["fills_republished"] == 1
        assert rec.payloads(PositionOpened) == [opened]
        [allocation] = pool_ledger(node).allocations.values()
        assert allocation.position is not None and allocation.position.trade_id == opened.trade_id


async def test_a_position_whose_allocation_the_pool_released_is_an_orphan(
    make_config: MakeConfig,
) -> None:
    config = config_for(make_config)
    async with started_node(config, RESULTS) as (node, rec):
        await closes(node, 0, *WARM_UP, CROSS_UP)
        [opened] = rec.payloads(PositionOpened)
    async with started_node(config_for(make_config, name="other")) as (node, _):
        release = sa.update(pool_models.allocations).values(status="released")
        await node.store("capital_pool").write(lambda conn: conn.execute(release))
    async with started_node(config, channels.ALERTS) as (node, rec):
        assert reconciled(node)["orphan_positions"] == 1
        assert node.health()["plugins"]["trading_execution"]["status"] == "degraded"
        names = [a.name for a in rec.payloads()]
        assert "orphan_position" in names
        assert opened.trade_id in next(
            a.message for a in rec.payloads() if a.name == "orphan_position"
        )
