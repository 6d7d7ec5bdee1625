"""Withdrawals wait for free cash: queued first in, first out, paid as allocations are
released (each at the NAV per unit of its payment), cancellable until then; the cash
they are owed is not granted to new trades. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from corec.core.clock import ReplayClock
from corec.core.store import Store
from corec.core.store.migrate import upgrade
from corec.messages.capital_data import (
    AllocationGranted,
    AllocationRequest,
    WithdrawalCancelled,
    WithdrawalQueued,
    WithdrawalRecorded,
)
from corec.plugins.capital_pool import models as m
from corec.plugins.capital_pool.config import CapitalPoolConfig, MemberConfig
from corec.plugins.capital_pool.errors import (
    ConflictingReplay,
    InsufficientEquity,
    UnknownWithdrawal,
    WithdrawalAlreadyPaid,
    WithdrawalWasCancelled,
)
from corec.plugins.capital_pool.plugin import CapitalPoolPlugin
from corec.plugins.capital_pool.service import PoolService

from .helpers import EXCHANGE, MARKET, START_NS, SYMBOL, D, closed_for, opened_for

CONFIG = CapitalPoolConfig(
    members=(
        MemberConfig(name="alice", opening_contribution_usd=D(1000)),
        MemberConfig(name="bob", opening_contribution_usd=D(1000)),
    ),
    queue_alert_usd=D(500),
)


class Seen:
    def __init__(self) -> None:
        self.events: list[Any] = []
        self.alerts: list[tuple[str, str, str, dict[str, str]]] = []

    async def publish(self, _channel: str, payload: Any, _key: str | None) -> None:
        self.events.append(payload)

    async def alert(self, name: str, message: str, severity: str, labels: dict[str, str]) -> None:
        self.alerts.append((name, message, severity, labels))

    def of(self, cls: type) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    store = Store(db_url, name="capital_pool")
    try:
        await upgrade(store, CapitalPoolPlugin.migrations)
        yield store
    finally:
        await store.dispose()


async def service(store: Store, seen: Seen) -> PoolService:
    svc = PoolService(store, CONFIG, ReplayClock(START_NS), publish=seen.publish, alert=seen.alert)
    await svc.open()
    await svc.register_members()
    return svc


def request() -> AllocationRequest:
    return AllocationRequest(
        strategy="sma", exchange=EXCHANGE, market=MARKET, symbol=SYMBOL, side="long",
        stop_loss_pct=D(2),
    )  # fmt: skip


async def queue_rows(store: Store) -> list[tuple[str, str, Any]]:
    q = m.withdrawal_queue
    query = select(q.c.withdrawal_id, q.c.status, q.c.paid_usd).order_by(q.c.position)
    return await store.read(lambda conn: [tuple(r) for r in conn.execute(query)])


async def test_queued_withdrawals_are_paid_first_in_first_out_when_capital_returns(
    store: Store,
) -> None:
    seen = Seen()
    svc = await service(store, seen)
    granted = await svc.allocate(request())  # NAV 2,000: the 60 % cap grants 1,200
    assert isinstance(granted, AllocationGranted) and granted.amount_usd == D(1200)

    paid_now = await svc.withdraw("alice", D(500), "w-alice-1")  # 800 free: paid
    assert isinstance(paid_now, WithdrawalRecorded)
    bob = await svc.withdraw("bob", D(500), "w-bob")  # 300 free: queued
    assert isinstance(bob, WithdrawalQueued) and bob.ahead_usd == D(0)
    alice = await svc.withdraw("alice", D(200), "w-alice-2")  # 300 would pay it: FIFO
    assert isinstance(alice, WithdrawalQueued) and alice.ahead_usd == D(500)
    assert svc.ledger.cash_usd == D(300)

    # new grants leave the 300 of free cash to the queue (see the test below)

    # the trade closes 100 USD up: 1,300 back in cash, the queue is paid in order
    alloc = svc.ledger.allocations[granted.allocation_id]
    await svc.on_position_opened(opened_for(alloc, "t-1", "0.05", "20000"))
    await svc.on_trade_closed(closed_for(alloc, "t-1", "0.05", "20000", "22000"))
    paid = [(w.withdrawal_id, w.amount_usd) for w in seen.of(WithdrawalRecorded)]
    assert paid == [("w-alice-1", D(500)), ("w-bob", D(500)), ("w-alice-2", D(200))]
    assert await queue_rows(store) == [("w-bob", "paid", D(500)), ("w-alice-2", "paid", D(200))]
    assert svc.ledger.cash_usd == D(300) + D(1300) - D(700)
    # units at the NAV per unit of the payment, not of the request: the profit is shared
    nav_per_unit = seen.of(WithdrawalRecorded)[1].nav_per_unit
    assert nav_per_unit > 1

    # a repeat answers the payment; cancelling a paid one is too late
    again = await svc.withdraw("bob", D(500), "w-bob")
    assert (
        isinstance(again, WithdrawalRecorded)
        and again.units == seen.of(WithdrawalRecorded)[1].units
    )
    with pytest.raises(WithdrawalAlreadyPaid, match="too late"):
        await svc.cancel_withdrawal("w-bob")
    queued_alerts = [(a[0], a[3]) for a in seen.alerts if a[0].startswith("withdrawal_")]
    assert queued_alerts == [("withdrawal_queued", {"member": "bob"})]  # 200 is under 500


async def test_a_queued_withdrawal_can_be_cancelled_once_and_not_reused(store: Store) -> None:
    seen = Seen()
    svc = await service(store, seen)
    await svc.allocate(request())
    await svc.withdraw("alice", D(800), "w-1")  # all the free cash
    queued = await svc.withdraw("bob", D(600), "w-2")
    assert isinstance(queued, WithdrawalQueued)

    cancelled = await svc.cancel_withdrawal("w-2")
    assert cancelled == WithdrawalCancelled(
        withdrawal_id="w-2", member="bob", amount_usd=D(600), reason="cancelled by request"
    )
    assert await svc.cancel_withdrawal("w-2") == cancelled  # idempotent
    assert seen.of(WithdrawalCancelled) == [cancelled]  # published once
    assert await queue_rows(store) == [("w-2", "cancelled", None)]
    with pytest.raises(WithdrawalWasCancelled):
        await svc.withdraw("bob", D(600), "w-2")
    with pytest.raises(UnknownWithdrawal):
        await svc.cancel_withdrawal("w-9")
    assert [a[0] for a in seen.alerts if a[0].startswith("withdrawal_")] == [
        "withdrawal_queued",
        "withdrawal_cancelled",
    ]


async def test_queued_amounts_count_against_the_members_equity(store: Store) -> None:
    svc = await service(store, Seen())
    await svc.allocate(request())
    await svc.withdraw("alice", D(800), "w-1")
    assert isinstance(await svc.withdraw("bob", D(700), "w-2"), WithdrawalQueued)
    with pytest.raises(InsufficientEquity, match="with 700 USD already queued"):
        await svc.withdraw("bob", D("300.01"), "w-3")
    assert isinstance(await svc.withdraw("bob", D(300), "w-3"), WithdrawalQueued)
    with pytest.raises(ConflictingReplay, match="queued as bob 700"):
        await svc.withdraw("bob", D(701), "w-2")
    assert await queue_rows(store) == [("w-2", "queued", None), ("w-3", "queued", None)]


async def test_cash_owed_to_queued_withdrawals_is_not_granted(store: Store) -> None:
    svc = await service(store, Seen())  # NAV 2,000 all in cash: 2 % risk, 10 % stop → 400
    assert svc.ledger.size_allocation(D(10)).amount_usd == D(400)
    assert svc.ledger.size_allocation(D(10), reserved_usd=D(1900)).amount_usd == D(100)
    sized = svc.ledger.size_allocation(D(10), reserved_usd=D(2000))
    assert (sized.refusal_code, sized.refusal) == (
        "no_free_cash",
        "no free cash (kept for queued withdrawals)",
    )
