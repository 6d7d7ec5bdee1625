"""The order gate and the node's mode, in a real node with capital_pool: ``safe`` opens
nothing but lets positions close (signal or stop), ``emergency`` places no order at all,
and every refusal is counted in health and logged once per mode.

The mode is set on the node object directly (``node.mode``), as the operator's
``node.set_mode`` does after its bookkeeping; the gate reads it on every order."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from structlog.testing import capture_logs

from corec.core import channels
from corec.core.clock import NS_PER_S
from corec.core.events import Event
from corec.core.nucleus import Node
from corec.messages.capital_data import AllocationGranted, AllocationReleased
from corec.messages.trading_results import (
    POSITIONS,
    AllocationUnused,
    PositionsPage,
    PositionsRequest,
)
from tests.harness import Recorder, started_node
from tests.plugins.trading_execution.test_trading_execution import (
    CROSS_UP,
    M0,
    MINUTE,
    WARM_UP,
    MakeConfig,
    closes,
    config_for,
    publish,
    results,
    snapshot,
)

D = Decimal
S = NS_PER_S
STOP = "99.96"  # the long's stop: 102 × 0.98


def refused(node: Node) -> dict[str, int]:
    return node.health()["plugins"]["trading_execution"]["orders_refused_by_mode"]


def refusal_logs(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "order_refused_by_mode"]


async def open_positions(node: Node) -> int:
    page = await node.bus.request(POSITIONS, PositionsRequest(), timeout_s=5)
    assert isinstance(page, PositionsPage)
    return page.total


async def go_long(node: Node, rec: Recorder) -> None:
    """Warm up and cross up at minute 4: a long at 102, stop 99.96 (mode normal)."""
    await closes(node, 0, *WARM_UP, CROSS_UP)
    [long], [] = results(rec)
    assert (long.side, long.entry_price) == ("long", D(102))


async def test_safe_mode_closes_on_a_cross_but_opens_nothing(make_config: MakeConfig) -> None:
    watched = (channels.TRADING_RESULTS, channels.CAPITAL_DATA)
    async with started_node(config_for(make_config), *watched) as (node, rec):
        await go_long(node, rec)
        node.mode = "safe"
        with capture_logs() as logs:
            # cross down at minute 6: the long closes (it reduces exposure); the short
            # that normal mode would open (see test_trading_execution) is refused
            await closes(node, 5, "101", "100.5")
            opened, closed = results(rec)
            assert len(opened) == 1
            assert [(t.side, t.exit_reason, t.exit_price) for t in closed] == [
                ("long", "signal", D("100.5"))
            ]
            # the pool was not even asked for the short
            assert len(rec.payloads(AllocationGranted)) == 1
            assert refused(node) == {"safe": 1, "emergency": 0}

            # back up: 105, 106 cross up at minute 8; refused again, logged once only
            await closes(node, 7, "105", "106")
            assert len(results(rec)[0]) == 1
            assert refused(node) == {"safe": 2, "emergency": 0}
        assert [(e["mode"], e["action"], e["strategy"]) for e in refusal_logs(logs)] == [
            ("safe", "open short", "sma")
        ]
        assert await open_positions(node) == 0
        ledger = node.plugin("capital_pool").service.ledger  # type: ignore[attr-defined]
        assert ledger.allocations == {}
        strategy = node.health()["plugins"]["trading_execution"]["strategies"]["sma"]
        assert strategy["orders_refused_by_mode"] == {"safe": 2, "emergency": 0}
        assert node.health()["plugins"]["trading_execution"]["node_mode"] == "safe"

        # normal again: the next cross opens as usual
        node.mode = "normal"
        await closes(node, 9, "100", "99")  # fast falls below slow: a short
        opened, _ = results(rec)
        assert [p.side for p in opened] == ["long", "short"]
        assert refused(node) == {"safe": 2, "emergency": 0}


async def test_safe_mode_lets_a_position_stop_out(make_config: MakeConfig) -> None:
    async with started_node(config_for(make_config), channels.TRADING_RESULTS) as (node, rec):
        await go_long(node, rec)
        node.mode = "safe"
        await publish(node, snapshot(M0 + 4 * MINUTE + 20 * S, STOP))
        opened, [stopped] = results(rec)
        assert len(opened) == 1
        assert (stopped.exit_reason, stopped.exit_price) == ("stop_loss", D(STOP))
        assert refused(node) == {"safe": 0, "emergency": 0}
        assert await open_positions(node) == 0


async def test_emergency_places_no_order_and_keeps_the_position(make_config: MakeConfig) -> None:
    watched = (channels.TRADING_RESULTS, channels.CAPITAL_DATA)
    async with started_node(config_for(make_config), *watched) as (node, rec):
        await go_long(node, rec)
        node.mode = "emergency"
        with capture_logs() as logs:
            # through the stop three times: no exit
            for seconds in (10, 20, 30):
                await publish(node, snapshot(M0 + 4 * MINUTE + seconds * S, "99"))
            # a cross down would close the long and open a short: neither happens
            await closes(node, 5, "99.5", "98")
        opened, closed = results(rec)
        assert (len(opened), closed) == (1, [])
        assert len(rec.payloads(AllocationGranted)) == 1
        # 3 stop exits, the stop again at minute 5 (99.5) and minute 6 (98), and the
        # cross's close at minute 6: 6 orders refused, one log line
        assert refused(node) == {"safe": 0, "emergency": 6}
        assert [(e["mode"], e["action"]) for e in refusal_logs(logs)] == [
            ("emergency", "stop_loss")
        ]
        assert await open_positions(node) == 1
        ledger = node.plugin("capital_pool").service.ledger  # type: ignore[attr-defined]
        assert len(ledger.allocations) == 1  # still funded

        # back to normal: the next bar through the stop exits
        node.mode = "normal"
        await publish(node, snapshot(M0 + 6 * MINUTE + 10 * S, "97"))
        _, [stopped] = results(rec)
        assert (stopped.exit_reason, stopped.exit_price) == ("stop_loss", D(97))
        assert await open_positions(node) == 0
        assert len(rec.payloads(AllocationReleased)) == 1
        assert refused(node) == {"safe": 0, "emergency": 6}


async def test_a_mode_change_during_the_allocation_request_returns_the_capital(
    make_config: MakeConfig,
) -> None:
    watched = (channels.TRADING_RESULTS, channels.CAPITAL_DATA)
    async with started_node(config_for(make_config), *watched) as (node, rec):

        def halt_on_grant(event: Event) -> None:
            if isinstance(event.payload, AllocationGranted):
                node.mode = "safe"  # an operator acting while the pool answers

        node.bus.subscribe(channels.CAPITAL_DATA, halt_on_grant, group="test-operator")
        await closes(node, 0, *WARM_UP, CROSS_UP)
        [granted] = rec.payloads(AllocationGranted)
        assert results(rec) == ([], [])
        [unused] = rec.payloads(AllocationUnused)
        assert unused.allocation_id == granted.allocation_id
        assert unused.reason == "node in safe mode: no new position"
        assert refused(node) == {"safe": 1, "emergency": 0}
        ledger = node.plugin("capital_pool").service.ledger  # type: ignore[attr-defined]
        assert ledger.allocations == {}
        assert ledger.cash_usd == 10000
        assert await open_positions(node) == 0
