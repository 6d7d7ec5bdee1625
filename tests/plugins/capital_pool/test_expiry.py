"""An allocation no position uses within ``allocation_timeout_s`` expires: its capital
returns to cash, once, before the next grant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from corec.core.clock import NS_PER_S, ReplayClock
from corec.core.store import Store
from corec.core.store.migrate import upgrade
from corec.messages.capital_data import AllocationGranted, AllocationReleased, AllocationRequest
from corec.plugins.capital_pool import models as m
from corec.plugins.capital_pool.config import CapitalPoolConfig, MemberConfig
from corec.plugins.capital_pool.plugin import CapitalPoolPlugin
from corec.plugins.capital_pool.service import PoolService

from .helpers import EXCHANGE, MARKET, START_NS, SYMBOL, D, opened_for

CONFIG = CapitalPoolConfig(
    members=(MemberConfig(name="alice", opening_contribution_usd=D(10_000)),),
    allocation_timeout_s=300,
)


def request() -> AllocationRequest:
    return AllocationRequest(
        strategy="sma",
        exchange=EXCHANGE,
        market=MARKET,
        symbol=SYMBOL,
        side="long",
        stop_loss_pct=D(10),
    )


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    store = Store(db_url, name="capital_pool")
    try:
        await upgrade(store, CapitalPoolPlugin.migrations)
        yield store
    finally:
        await store.dispose()


async def statuses(store: Store) -> dict[str, str]:
    query = select(m.allocations.c.allocation_id, m.allocations.c.status)
    return await store.read(lambda conn: {r[0]: r[1] for r in conn.execute(query)})


async def test_an_unused_allocation_expires_before_the_next_grant(store: Store) -> None:
    published: list[Any] = []

    async def publish(_channel: str, payload: Any, _key: str | None) -> None:
        published.append(payload)

    clock = ReplayClock(START_NS)
    svc = PoolService(store, CONFIG, clock, publish=publish)
    await svc.open()
    await svc.register_members()

    unused = await svc.allocate(request())
    used = await svc.allocate(request())
    assert isinstance(unused, AllocationGranted) and isinstance(used, AllocationGranted)
    await svc.on_position_opened(
        opened_for(svc.ledger.allocations[used.allocation_id], "t-1", "0.02", "50000")
    )
    cash_with_both = svc.ledger.figures().cash_usd
    assert cash_with_both == D(8000)

    clock.advance_to(START_NS + 299 * NS_PER_S)
    assert svc.expired_allocations(clock.now_ns()) == []
    clock.advance_to(START_NS + 300 * NS_PER_S)  # the timeout reached: only the unused one
    assert svc.expired_allocations(clock.now_ns()) == [unused.allocation_id]

    clock.advance_to(START_NS + 301 * NS_PER_S)
    third = await svc.allocate(request())  # expiry first: the capital is free again
    assert isinstance(third, AllocationGranted)
    [released] = [p for p in published if isinstance(p, AllocationReleased)]
    assert (released.allocation_id, released.returned_usd) == (unused.allocation_id, D(1000))
    assert svc.ledger.figures().cash_usd == D(8000)  # 1,000 back, 1,000 granted anew
    assert await statuses(store) == {
        unused.allocation_id: "expired",
        used.allocation_id: "open",
        third.allocation_id: "open",
    }
    assert await svc.expire_allocations() == 0  # once
    assert svc.ledger.figures().nav_usd == D(10_000)
