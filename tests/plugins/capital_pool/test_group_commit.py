"""Group commit in :class:`PoolService` (SQLite and PostgreSQL): concurrent commands on
one service share transactions, a command the store refuses fails alone, a withdrawal
queued by another writer is seen, and a dropped PostgreSQL connection fails nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import Engine, event

from corec.core.errors import InvalidEvent
from corec.core.store import Store
from corec.core.store.migrate import upgrade
from corec.messages.capital_data import (
    AllocationGranted,
    AllocationRefused,
    ContributionRecorded,
    PoolState,
    WithdrawalQueued,
    WithdrawalRecorded,
)
from corec.plugins.capital_pool import models as m
from corec.plugins.capital_pool import repository as repo
from corec.plugins.capital_pool.config import CapitalPoolConfig, MemberConfig
from corec.plugins.capital_pool.plugin import CapitalPoolPlugin
from corec.plugins.capital_pool.service import PoolService

from ...conftest import PG_ADMIN_DSN
from .helpers import D, make_allocation, opened_for
from .test_service import Recorder, counts, journal_seqs, open_service, request, rows


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    """capital_pool's store, migrated, on SQLite and on PostgreSQL."""
    store = Store(db_url, name="capital_pool")
    try:
        await upgrade(store, CapitalPoolPlugin.migrations)
        yield store
    finally:
        await store.dispose()


@pytest.fixture
async def pg_store(pg_url: str) -> AsyncIterator[Store]:
    """capital_pool's store, migrated, on PostgreSQL only (fails without it when CI=true)."""
    store = Store(pg_url, name="capital_pool")
    try:
        await upgrade(store, CapitalPoolPlugin.migrations)
        yield store
    finally:
        await store.dispose()


@pytest.fixture
def commits() -> Iterator[list[int]]:
    """How many transactions committed (every engine of the process) while the test ran;
    ``commits[0]``."""
    counter = [0]

    def count(*_args: Any) -> None:
        counter[0] += 1

    event.listen(Engine, "commit", count)
    try:
        yield counter
    finally:
        event.remove(Engine, "commit", count)


def snapshot_of(ledger: Any) -> tuple[Any, ...]:
    figures = ledger.figures()
    return (
        ledger.seq,
        figures,
        dict(ledger.balances),
        dict(ledger.member_units),
        {k: (a.amount_usd, a.position) for k, a in ledger.allocations.items()},
        set(ledger.refs),
    )


async def assert_memory_is_the_journal(svc: PoolService) -> None:
    fresh = await repo.load_ledger(svc.store, svc.rules)
    assert snapshot_of(svc.ledger) == snapshot_of(fresh)
    seqs = await journal_seqs(svc.store)
    assert seqs == list(range(1, len(seqs) + 1))


async def test_concurrent_commands_share_transactions(store: Store, commits: list[int]) -> None:
    recorder = Recorder()
    svc = await open_service(store, recorder=recorder)  # alice and bob, 1,000 each
    commits[0] = 0
    n = 24

    results = await asyncio.gather(
        *(
            svc.contribute("carol" if k % 2 else "alice", D(100 + k), f"c-{k}")
            if k % 3
            else svc.allocate(request("40"))
            for k in range(n)
        )
    )

    assert commits[0] < n / 2, f"{commits[0]} transactions for {n} commands"
    contributions = [r for r in results if isinstance(r, ContributionRecorded)]
    grants = [r for r in results if isinstance(r, AllocationGranted)]
    assert len(contributions) == 16 and len(grants) == 8
    stored = await counts(store)
    assert stored["contributions"] == 2 + 16  # the openings, then each command once
    assert stored["allocations"] == 8
    assert stored["journal_entries"] == stored["pool_state"] == 2 + n
    assert {r["contribution_id"] for r in await rows(store, m.contributions)} >= {
        f"c-{k}" for k in range(n) if k % 3
    }
    assert len(recorder.of(PoolState)) == 2 + n  # one per entry, after its commit
    await assert_memory_is_the_journal(svc)
    # each stored pool state is the pool right after its own entry, in journal order
    states = await rows(store, m.pool_state, m.pool_state.c.seq)
    assert [s["cash_usd"] for s in states] == [p.cash_usd for p in recorder.of(PoolState)]
    assert states[-1]["cash_usd"] == svc.ledger.cash_usd


async def test_a_command_the_store_refuses_fails_alone(store: Store) -> None:
    """Two fills claim the same trade id for different allocations: memory accepts
    both (each allocation is free), the store's unique trade id refuses the second. The
    batch falls back to one command at a time: the others commit, that one fails."""
    recorder = Recorder()
    svc = await open_service(store, recorder=recorder)
    first, second = [await svc.allocate(request("40")) for _ in range(2)]
    assert isinstance(first, AllocationGranted) and isinstance(second, AllocationGranted)
    a1 = make_allocation(first.allocation_id, first.amount_usd)
    a2 = make_allocation(second.allocation_id, second.amount_usd)
    seq = svc.ledger.seq

    results = await asyncio.gather(
        svc.contribute("carol", D(300), "c-before"),
        svc.on_position_opened(opened_for(a1, "t-same", "0.002", "20000")),
        svc.on_position_opened(opened_for(a2, "t-same", "0.002", "20000")),
        svc.withdraw("alice", D(25), "w-after"),
        return_exceptions=True,
    )

    assert isinstance(results[0], ContributionRecorded)
    assert results[1] is None
    assert isinstance(results[2], InvalidEvent)
    assert isinstance(results[3], WithdrawalRecorded)
    assert svc.ledger.seq == seq + 2
    assert svc.ledger.allocations[a1.allocation_id].position is not None
    assert svc.ledger.allocations[a2.allocation_id].position is None
    by_id = {r["allocation_id"]: r for r in await rows(store, m.allocations)}
    assert by_id[a1.allocation_id]["trade_id"] == "t-same"
    assert by_id[a2.allocation_id]["trade_id"] is None
    await assert_memory_is_the_journal(svc)
    # the service goes on normally
    await svc.contribute("carol", D(200), "c-next")
    await assert_memory_is_the_journal(svc)


async def test_a_withdrawal_queued_by_another_writer_is_seen(store: Store) -> None:
    """A CLI (another service, its own engine) queues a withdrawal behind the node's
    back. The node's memory does not have it; its next transaction finds the stored
    queue changed, reloads, and then honours it: cash owed to it is not granted, and the
    next contribution pays it, first in first out."""
    config = CapitalPoolConfig(
        members=(
            MemberConfig(name="alice", opening_contribution_usd=D(3000)),
            MemberConfig(name="bob", opening_contribution_usd=D(1000)),
        )
    )
    node = await open_service(store, config)  # NAV 4,000: 2 % risk per trade
    cli_store = Store(store.url, name="capital_pool")
    try:
        cli = await open_service(cli_store, config, register=False)
        granted = await node.allocate(request("4"))  # 4,000 x 2 % / 4 % = 2,000
        assert isinstance(granted, AllocationGranted) and granted.amount_usd == D(2000)
        await cli.reload()
        queued = await cli.withdraw("alice", D(2100), "w-cli")  # free cash is 2,000
        assert isinstance(queued, WithdrawalQueued)
        assert node.ledger.seq == cli.ledger.seq  # queueing journals nothing

        # unaware, the node would grant the 400 left under the 60 % cap
        refused = await node.allocate(request("4"))
        assert isinstance(refused, AllocationRefused) and refused.code == "no_free_cash"

        await node.contribute("bob", D(500), "c-bob")  # 2,500 free: alice is paid first
        [row] = await rows(store, m.withdrawal_queue)
        assert (row["status"], row["paid_usd"]) == ("paid", D(2100))
        assert node.ledger.cash_usd == D(400)
        await assert_memory_is_the_journal(node)
    finally:
        await cli_store.dispose()


async def test_a_dropped_connection_does_not_fail_the_next_command(pg_store: Store) -> None:
    recorder = Recorder()
    svc = await open_service(pg_store, recorder=recorder)  # the pool holds a connection now
    database = pg_store.url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        killed = await admin.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    finally:
        await admin.close()
    assert killed, "the store had no connection to drop"
    await asyncio.sleep(0.1)  # the server has closed them

    record = await svc.contribute("carol", D(400), "c-after-drop")

    assert record.units == D(400)
    assert (await counts(pg_store))["contributions"] == 3
    await assert_memory_is_the_journal(svc)
    # concurrent commands after another drop: each recorded once
    admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND pid <> pg_backend_pid()",
            database,
        )
    finally:
        await admin.close()
    await asyncio.sleep(0.1)
    await asyncio.gather(*(svc.contribute("carol", D(100), f"c-{k}") for k in range(5)))
    assert (await counts(pg_store))["contributions"] == 8
    await assert_memory_is_the_journal(svc)
