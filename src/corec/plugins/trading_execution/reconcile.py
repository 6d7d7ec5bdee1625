"""Reconciliation at start: make the pool and this plugin agree before trading.

A node stopped between two steps of a trade (the pool granted capital, the fill was
stored, the result was published) leaves the two sides apart; so does a result lost
in flight. At start, trading_execution asks ``capital_pool.open_allocations`` for
what the pool still holds as allocated to its strategies and compares with its own
tables (positions and closed trades):

===============================================  ====================================
the pool holds an allocation that …              trading_execution publishes
===============================================  ====================================
funds a position open here, fill unknown to it   ``PositionOpened`` again
funds a trade already closed here                ``TradeClosed`` again (settles it)
nothing here ever used                           ``AllocationUnused`` (returns it)
===============================================  ====================================

Every one of these is applied at most once by the pool (by trade or allocation id),
so reconciling twice is harmless. A position open here whose allocation the pool no
longer holds cannot be fixed automatically: it raises a high alert.
"""

from __future__ import annotations

from dataclasses import dataclass

from corec.core import channels
from corec.core.errors import InvalidEvent
from corec.core.plugin import PluginContext
from corec.messages.capital_data import OPEN_ALLOCATIONS, OpenAllocations, OpenAllocationsRequest
from corec.messages.trading_results import AllocationUnused, TradeClosed
from corec.plugins.trading_execution import storage
from corec.plugins.trading_execution.engine import StrategyEngine


@dataclass
class Reconciliation:
    """What one reconciliation did (counts, for health and tests)."""

    fills_republished: int = 0
    trades_republished: int = 0
    allocations_returned: int = 0
    orphan_positions: int = 0


async def reconcile(ctx: PluginContext, engines: list[StrategyEngine]) -> Reconciliation:
    """Compare the pool's open allocations with this plugin's tables and mend the gaps.

    Raises:
        BusError: the pool did not answer (the caller decides whether to start anyway).
        InvalidEvent: the pool answered with something else than ``OpenAllocations``.
    """
    done = Reconciliation()
    by_strategy = {engine.settings.name: engine for engine in engines}
    reply = await ctx.request(
        OPEN_ALLOCATIONS, OpenAllocationsRequest(strategies=tuple(by_strategy))
    )
    if not isinstance(reply, OpenAllocations):
        raise InvalidEvent(f"{OPEN_ALLOCATIONS} answered {type(reply).__name__}")
    held = {a.allocation_id: a for a in reply.allocations}
    positions = {e.position.allocation_id: e for e in engines if e.position is not None}
    closed = await storage.trades_for_allocations(
        ctx.store, [a for a in held if a not in positions]
    )  # type: ignore[arg-type]

    for allocation_id, allocation in held.items():
        engine = positions.get(allocation_id)
        if engine is not None:
            if allocation.trade_id is None:
                await ctx.publish(
                    channels.TRADING_RESULTS, engine.position_opened(), key=engine.position.trade_id
                )  # type: ignore[union-attr]
                done.fills_republished += 1
        elif allocation_id in closed:
            row = closed[allocation_id]
            await ctx.publish(channels.TRADING_RESULTS, TradeClosed(**row), key=row["trade_id"])
            done.trades_republished += 1
        else:
            unused = AllocationUnused(
                allocation_id=allocation_id, reason="not used before the node stopped"
            )
            await ctx.publish(channels.TRADING_RESULTS, unused, key=allocation_id)
            done.allocations_returned += 1

    for allocation_id, engine in positions.items():
        if allocation_id not in held:
            done.orphan_positions += 1
            pos = engine.position
            assert pos is not None
            await ctx.alert(
                "orphan_position",
                f"{engine.settings.name}: position {pos.trade_id} ({pos.side} {pos.quantity} {engine.settings.symbol}) "
                f"is funded by allocation {allocation_id}, which the pool no longer holds",
                severity="high",
                labels={"strategy": engine.settings.name, "trade_id": pos.trade_id},
            )
    if done != Reconciliation():
        ctx.log.warning("reconciled", **vars(done))
    return done
