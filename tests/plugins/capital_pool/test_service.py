"""PoolService over a real store: SQLite and PostgreSQL (``db_url``), idempotency,
refusals that write nothing, reload, optimistic concurrency, exact decimals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import func, select

from corec.core import channels, money
from corec.core.clock import ReplayClock
from corec.core.errors import InvalidEvent, InvalidInput
from corec.core.store import Store
from corec.core.store.migrate import upgrade
from corec.messages.capital_data import (
    AllocationGranted,
    AllocationRefused,
    AllocationReleased,
    AllocationRequest,
    ContributionRecorded,
    PhaseChanged,
    PoolState,
    WithdrawalQueued,
    WithdrawalRecorded,
)
from corec.messages.market_data import MarketSnapshot
from corec.messages.trading_results import AllocationUnused
from corec.plugins.capital_pool import models as m
from corec.plugins.capital_pool import repository as repo
from corec.plugins.capital_pool.config import CapitalPoolConfig, MemberConfig
from corec.plugins.capital_pool.errors import (
    BelowMinimum,
    ConflictingReplay,
    InsufficientEquity,
    UnknownMember,
)
from corec.plugins.capital_pool.ledger import CASH, JournalEntry, Line, member_account
from corec.plugins.capital_pool.plugin import CapitalPoolPlugin
from corec.plugins.capital_pool.service import PoolService

from .helpers import (
    EXCHANGE,
    MARKET,
    START_NS,
    SYMBOL,
    D,
    closed_for,
    make_allocation,
    opened_for,
)

CONFIG = CapitalPoolConfig(
    members=(
        MemberConfig(name="alice", opening_contribution_usd=D(1000)),
        MemberConfig(name="bob", opening_contribution_usd=D(1000)),
        MemberConfig(name="carol"),
    )
)
COUNTED = (
    m.members,
    m.journal_entries,
    m.journal_lines,
    m.contributions,
    m.withdrawals,
    m.pool_state,
    m.allocations,
)


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
async def second_store(store: Store) -> AsyncIterator[Store]:
    """Another engine on the same database, as another process would have."""
    other = Store(store.url, name="capital_pool")
    try:
        yield other
    finally:
        await other.dispose()


class Recorder:
    """Collects what the service publishes and alerts."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any, str | None]] = []
        self.alerts: list[tuple[str, str, str, dict[str, str]]] = []

    async def publish(self, channel: str, payload: Any, key: str | None) -> None:
        self.events.append((channel, payload, key))

    async def alert(self, name: str, message: str, severity: str, labels: dict[str, str]) -> None:
        self.alerts.append((name, message, severity, labels))

    def of(self, cls: type) -> list[Any]:
        return [payload for _, payload, _ in self.events if isinstance(payload, cls)]


async def open_service(
    store: Store,
    config: CapitalPoolConfig = CONFIG,
    *,
    register: bool = True,
    recorder: Recorder | None = None,
) -> PoolService:
    svc = PoolService(
        store,
        config,
        ReplayClock(START_NS),
        publish=recorder.publish if recorder else None,
        alert=recorder.alert if recorder else None,
    )
    await svc.open()
    if register:
        await svc.register_members()
    return svc


async def counts(store: Store) -> dict[str, int]:
    def count(conn: Any) -> dict[str, int]:
        return {
            table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in COUNTED
        }

    return await store.read(count)


async def rows(store: Store, table: Any, order_by: Any = None) -> list[dict[str, Any]]:
    query = select(table)
    if order_by is not None:
        query = query.order_by(order_by)
    return await store.read(lambda conn: [dict(r) for r in conn.execute(query).mappings()])


async def journal_seqs(store: Store) -> list[int]:
    query = select(m.journal_entries.c.seq).order_by(m.journal_entries.c.seq)
    return await store.read(lambda conn: list(conn.execute(query).scalars()))


def request(stop_loss_pct: str = "4", side: Any = "long") -> AllocationRequest:
    return AllocationRequest(
        strategy="sma",
        exchange=EXCHANGE,
        market=MARKET,
        symbol=SYMBOL,
        side=side,
        stop_loss_pct=D(stop_loss_pct),
    )


def snapshot(price: str) -> MarketSnapshot:
    return MarketSnapshot(
        exchange=EXCHANGE,
        market=MARKET,
        symbol=SYMBOL,
        bid=None,
        ask=None,
        last=D(price),
        mid=D(price),
        price=D(price),
        spread_bps=None,
        return_pct=None,
        window_s=60,
        exchange_ts_ns=START_NS,
    )


async def grant_and_fill(svc: PoolService, trade_id: str = "t1") -> AllocationGranted:
    """Allocate 500 (NAV 2,000 × 2 % ÷ 8 %) and fill 0.02 BTC at 20,000 with a 0.4 fee."""
    granted = await svc.allocate(request("8"))
    assert isinstance(granted, AllocationGranted)
    alloc = make_allocation(granted.allocation_id, granted.amount_usd)
    await svc.on_position_opened(opened_for(alloc, trade_id, "0.02", "20000", "0.4"))
    return granted


# -- members and idempotency ---------------------------------------------------------


async def test_register_members_records_opening_contributions_once(store: Store) -> None:
    svc = await open_service(store)
    await svc.register_members()

    assert svc.ledger.members == {"alice", "bob", "carol"}
    assert svc.ledger.member_units == {"alice": D(1000), "bob": D(1000)}
    assert svc.ledger.cash_usd == D(2000)
    assert await counts(store) == {
        "members": 3,
        "journal_entries": 2,
        "journal_lines": 4,
        "contributions": 2,
        "withdrawals": 0,
        "pool_state": 2,
        "allocations": 0,
    }
    contributions = await rows(store, m.contributions, m.contributions.c.entry_seq)
    assert [
        (r["contribution_id"], r["member"], r["amount_usd"], r["units"]) for r in contributions
    ] == [
        ("opening-alice", "alice", D(1000), D(1000)),
        ("opening-bob", "bob", D(1000), D(1000)),
    ]

    # a restart: a new service opens the store and registers again
    again = await open_service(store)
    assert again.ledger.member_units == {"alice": D(1000), "bob": D(1000)}
    assert (await counts(store))["contributions"] == 2
    assert await journal_seqs(store) == [1, 2]


async def test_register_members_on_a_service_opened_before_they_existed(
    store: Store, second_store: Store
) -> None:
    """Two instances start on an empty database: both open, then both register.

    The second finds the members already stored; it must still know them and see the
    opening contributions instead of refusing them as unknown members.
    """
    first = await open_service(store, register=False)
    second = await open_service(second_store, register=False)
    await first.register_members()

    await second.register_members()

    assert second.ledger.members == {"alice", "bob", "carol"}
    assert second.ledger.member_units == {"alice": D(1000), "bob": D(1000)}
    assert (await counts(store))["contributions"] == 2
    assert await journal_seqs(store) == [1, 2]


async def test_same_contribution_id_recorded_once(store: Store) -> None:
    recorder = Recorder()
    svc = await open_service(store, recorder=recorder)
    first = await svc.contribute("carol", D("250.50"), "deposit-7")
    before = await counts(store)

    second = await svc.contribute("carol", D("250.50"), "deposit-7")

    assert first.units == D("250.5")
    assert second == first
    assert await counts(store) == before
    assert svc.ledger.member_units["carol"] == D("250.5")
    published = [c for c in recorder.of(ContributionRecorded) if c.contribution_id == "deposit-7"]
    assert published == [first]
    entries = await rows(store, m.journal_entries, m.journal_entries.c.seq)
    assert [e["ref"] for e in entries].count("contribution:deposit-7") == 1


async def test_same_withdrawal_id_recorded_once(store: Store) -> None:
    svc = await open_service(store)
    first = await svc.withdraw("alice", D("100.10"), "payout-1")
    second = await svc.withdraw("alice", D("100.10"), "payout-1")
    assert second == first
    assert first.units == D("100.1")
    assert svc.ledger.member_units["alice"] == D("899.9")
    assert (await counts(store))["withdrawals"] == 1
    assert (await counts(store))["journal_entries"] == 3


async def test_a_reused_id_with_other_content_is_refused(store: Store) -> None:
    svc = await open_service(store)
    await svc.contribute("carol", D("250.50"), "deposit-8")
    before = await counts(store)
    with pytest.raises(ConflictingReplay, match=r"deposit-8 was recorded as carol 250\.50 USD"):
        await svc.contribute("carol", D("300"), "deposit-8")
    with pytest.raises(ConflictingReplay, match=r"cannot now be alice 250\.50 USD"):
        await svc.contribute("alice", D("250.50"), "deposit-8")
    assert (await svc.contribute("carol", D("250.5"), "deposit-8")).amount_usd == D("250.50")
    assert await counts(store) == before


# -- refusals ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "member", "amount", "error"),
    [
        ("contribute", "alice", "99.99", BelowMinimum),
        ("contribute", "mallory", "500", UnknownMember),
        ("contribute", "alice", "100.001", InvalidInput),
        ("withdraw", "alice", "1000.01", InsufficientEquity),
        ("withdraw", "carol", "1", InsufficientEquity),
        ("withdraw", "mallory", "1", UnknownMember),
    ],
)
async def test_refused_command_writes_nothing(
    store: Store, command: str, member: str, amount: str, error: type[Exception]
) -> None:
    svc = await open_service(store)
    granted = await svc.allocate(request("2"))  # 1,200 of 2,000 out: 800 free cash
    assert isinstance(granted, AllocationGranted) and granted.amount_usd == D(1200)
    before_rows, before_figures = await counts(store), svc.ledger.figures()
    before_seq, before_units = svc.ledger.seq, dict(svc.ledger.member_units)

    with pytest.raises(error):
        await getattr(svc, command)(member, D(amount), "refused-1")

    assert await counts(store) == before_rows
    assert svc.ledger.figures() == before_figures
    assert (svc.ledger.seq, svc.ledger.member_units) == (before_seq, before_units)
    assert "refused-1" not in str(svc.ledger.refs)
    # the same id is still free for a valid command
    if command == "withdraw" and member == "alice":
        record = await svc.withdraw("alice", D(800), "refused-1")
        assert record.units == D(800)


async def test_refused_allocation_and_invalid_results_write_nothing(store: Store) -> None:
    svc = await open_service(store)
    await svc.allocate(request("2"))  # up to the 60 % cap
    before = await counts(store)

    refused = await svc.allocate(request("2"))
    assert isinstance(refused, AllocationRefused)
    assert refused.code == "active_cap"
    ghost = make_allocation("no-such-allocation", "100")
    with pytest.raises(InvalidEvent):
        await svc.on_trade_closed(closed_for(ghost, "t9", "0.001", "20000", "21000"))
    with pytest.raises(InvalidEvent):
        await svc.on_position_opened(opened_for(ghost, "t9", "0.001", "20000"))
    with pytest.raises(InvalidEvent):
        await svc.on_allocation_unused(AllocationUnused(allocation_id="nope", reason="x"))

    assert await counts(store) == before
    assert svc.results_applied == 0


# -- allocations and trading results ---------------------------------------------------


async def test_allocation_position_and_trade_settle_once(store: Store) -> None:
    recorder = Recorder()
    svc = await open_service(store, recorder=recorder)

    granted = await grant_and_fill(svc)
    assert granted.amount_usd == D(500)
    assert (granted.nav_usd, granted.risk_per_trade, granted.reduced) == (
        D(2000),
        D("0.02"),
        False,
    )
    [row] = await rows(store, m.allocations)
    assert (row["status"], row["amount_usd"], row["granted_seq"]) == ("open", D(500), 3)
    assert (row["trade_id"], row["quantity"], row["entry_price"], row["entry_fee_usd"]) == (
        "t1",
        D("0.02"),
        D(20000),
        D("0.4"),
    )
    svc.on_market(snapshot("21000"))
    assert svc.ledger.nav_usd() == D("2019.6")

    alloc = make_allocation(granted.allocation_id, granted.amount_usd)
    closed = closed_for(alloc, "t1", "0.02", "20000", "21000", "0.84")
    await svc.on_trade_closed(closed)
    await svc.on_trade_closed(closed)

    assert (svc.results_applied, svc.results_ignored) == (1, 1)
    assert svc.ledger.allocations == {}
    assert svc.ledger.cash_usd == D("2019.16")
    assert svc.ledger.allocated_usd == 0
    assert svc.ledger.nav_usd() == D("2019.16")
    [row] = await rows(store, m.allocations)
    assert row["status"] == "released"
    assert (row["released_seq"], row["realized_pnl_usd"]) == (4, D("19.16"))
    assert row["released_ts_ns"] == closed.closed_ts_ns
    assert await journal_seqs(store) == [1, 2, 3, 4]
    [released] = recorder.of(AllocationReleased)
    assert (released.amount_usd, released.realized_pnl_usd, released.returned_usd) == (
        D(500),
        D("19.16"),
        D("519.16"),
    )
    states = await rows(store, m.pool_state, m.pool_state.c.seq)
    assert states[-1]["nav_usd"] == D("2019.16")
    assert states[-1]["nav_per_unit"] == D("1.00958")
    assert states[-1]["cash_usd"] == D("2019.16")
    assert states[-1]["allocated_usd"] == 0
    # the same result after a restart is still ignored
    restarted = await open_service(store)
    await restarted.on_trade_closed(closed)
    assert (restarted.results_applied, restarted.results_ignored) == (0, 1)
    assert await journal_seqs(store) == [1, 2, 3, 4]


async def test_position_opened_twice_is_recorded_once(store: Store) -> None:
    svc = await open_service(store)
    granted = await grant_and_fill(svc)
    alloc = make_allocation(granted.allocation_id, granted.amount_usd)
    await svc.on_position_opened(opened_for(alloc, "t1", "0.02", "20000", "0.4"))
    assert svc.results_ignored == 1
    with pytest.raises(InvalidEvent, match="already funds t1"):
        await svc.on_position_opened(opened_for(alloc, "t2", "0.01", "20000"))
    [row] = await rows(store, m.allocations)
    assert row["trade_id"] == "t1"


async def test_unused_allocation_returns_to_cash_once(store: Store) -> None:
    svc = await open_service(store)
    granted = await svc.allocate(request("8"))
    assert isinstance(granted, AllocationGranted)
    unused = AllocationUnused(allocation_id=granted.allocation_id, reason="exchange rejected")
    await svc.on_allocation_unused(unused)
    await svc.on_allocation_unused(unused)
    assert (svc.results_ignored, svc.ledger.cash_usd, svc.ledger.allocated_usd) == (1, D(2000), 0)
    [row] = await rows(store, m.allocations)
    assert (row["status"], row["released_seq"]) == ("unused", 4)
    assert await journal_seqs(store) == [1, 2, 3, 4]


async def test_pool_state_and_phase_change_are_published(store: Store) -> None:
    recorder = Recorder()
    config = CapitalPoolConfig(members=(MemberConfig(name="alice"),))
    svc = await open_service(store, config, recorder=recorder)
    await svc.contribute("alice", D(600), "c1")
    await svc.contribute("alice", D(400), "c2")

    states = recorder.of(PoolState)
    assert [(s.nav_usd, s.phase, s.risk_per_trade) for s in states] == [
        (D(600), "seed", D("0.03")),
        (D(1000), "growth", D("0.02")),
    ]
    changes = recorder.of(PhaseChanged)
    assert [(c.previous, c.current) for c in changes] == [("none", "seed"), ("seed", "growth")]
    assert [a[0] for a in recorder.alerts] == ["pool_phase_changed", "pool_phase_changed"]
    assert all(channel == channels.CAPITAL_DATA for channel, _, _ in recorder.events)
    [c1, c2] = recorder.of(ContributionRecorded)
    assert (c1.units, c2.units, c2.nav_per_unit) == (D(600), D(400), D(1))


# -- reload ----------------------------------------------------------------------------


async def test_reload_sees_the_same_pool(store: Store) -> None:
    svc = await open_service(store)
    await svc.contribute("carol", D("333.33"), "c-carol")
    held = await grant_and_fill(svc, "t-held")  # a filled position stays open
    settled = await svc.allocate(request("8"))
    assert isinstance(settled, AllocationGranted)
    alloc = make_allocation(settled.allocation_id, settled.amount_usd)
    await svc.on_trade_closed(closed_for(alloc, "t-done", "0.01", "20000", "20500.5", "0.41"))
    idle = await svc.allocate(request("25", side="short"))
    assert isinstance(idle, AllocationGranted)
    await svc.withdraw("bob", D("123.45"), "w-bob")
    svc.on_market(snapshot("19876.54321"))
    await svc.save_marks()

    reopened = PoolService(store, CONFIG, ReplayClock(START_NS))
    await reopened.open()

    assert reopened.ledger.figures() == svc.ledger.figures()
    assert reopened.ledger.member_units == svc.ledger.member_units
    assert reopened.ledger.members == svc.ledger.members
    assert reopened.ledger.balances == svc.ledger.balances
    assert reopened.ledger.refs == svc.ledger.refs
    assert reopened.ledger.seq == svc.ledger.seq == 8
    assert reopened.ledger.marks == svc.ledger.marks
    assert set(reopened.ledger.allocations) == {held.allocation_id, idle.allocation_id}
    assert reopened.ledger.allocations == svc.ledger.allocations
    position = reopened.ledger.allocations[held.allocation_id].position
    assert position is not None
    assert (position.trade_id, position.quantity, position.entry_fee_usd) == (
        "t-held",
        D("0.02"),
        D("0.4"),
    )
    assert reopened.ledger.allocations[idle.allocation_id].position is None
    for member in ("alice", "bob", "carol"):
        assert reopened.ledger.member_equity_usd(member) == svc.ledger.member_equity_usd(member)


# -- concurrency -----------------------------------------------------------------------


async def test_stale_writer_reloads_and_records(store: Store, second_store: Store) -> None:
    svc1 = await open_service(store)
    svc2 = await open_service(second_store)  # both at seq 2
    assert svc1.ledger.seq == svc2.ledger.seq == 2

    await svc1.contribute("carol", D(500), "c-1")
    record = await svc2.contribute("alice", D(250), "c-2")  # stale: seq 3 is taken

    assert record.units == D(250)
    assert svc2.ledger.seq == 4
    assert svc2.ledger.member_units == {"alice": D(1250), "bob": D(1000), "carol": D(500)}
    assert svc2.ledger.cash_usd == D(2750)
    assert await journal_seqs(store) == [1, 2, 3, 4]
    await svc1.reload()
    assert svc1.ledger.figures() == svc2.ledger.figures()
    states = await rows(store, m.pool_state, m.pool_state.c.seq)
    assert [s["cash_usd"] for s in states] == [D(1000), D(2000), D(2500), D(2750)]
    assert [s["units"] for s in states] == [D(1000), D(2000), D(2500), D(2750)]


async def test_stale_writer_with_the_same_contribution_id_records_nothing(
    store: Store, second_store: Store
) -> None:
    svc1 = await open_service(store)
    svc2 = await open_service(second_store)
    first = await svc1.contribute("carol", D(500), "same-id")

    again = await svc2.contribute("carol", D(500), "same-id")

    assert again == first
    assert svc2.ledger.member_units["carol"] == D(500)
    assert await journal_seqs(store) == [1, 2, 3]
    assert (await counts(store))["contributions"] == 3


async def test_stale_withdrawal_revalidated_against_the_stored_cash(
    store: Store, second_store: Store
) -> None:
    svc1 = await open_service(store)
    svc2 = await open_service(second_store)
    await svc1.allocate(request("2"))  # 800 free cash left
    await svc1.withdraw("alice", D(500), "w-1")
    before = await counts(store)

    # fitted the stale 2,000 of cash; against the stored 300 it waits in the queue
    queued = await svc2.withdraw("bob", D(500), "w-2")
    assert isinstance(queued, WithdrawalQueued)
    assert (queued.amount_usd, queued.ahead_usd) == (D(500), D(0))

    assert await counts(store) == before
    assert svc2.ledger.cash_usd == D(300)
    assert svc2.ledger.seq == 4


async def test_results_for_an_allocation_granted_by_another_instance_settle(
    store: Store, second_store: Store
) -> None:
    """Two instances share the store; the bus's consumer group hands the trade's results
    to the one that did not grant its allocation. They must still settle (once), not be
    refused as "allocation is not open" and leave the capital allocated forever."""
    svc1 = await open_service(store)
    svc2 = await open_service(second_store)
    granted = await svc1.allocate(request("8"))
    assert isinstance(granted, AllocationGranted)
    alloc = make_allocation(granted.allocation_id, granted.amount_usd)
    closed = closed_for(alloc, "t1", "0.02", "20000", "21000", "0.84")

    await svc2.on_position_opened(opened_for(alloc, "t1", "0.02", "20000", "0.4"))
    await svc2.on_trade_closed(closed)
    await svc1.on_trade_closed(closed)  # redelivered to the granting instance

    assert svc2.results_applied + svc1.results_applied == 1
    assert svc2.ledger.cash_usd == D("2019.16")
    assert svc2.ledger.allocated_usd == 0
    [row] = await rows(store, m.allocations)
    assert (row["status"], row["realized_pnl_usd"]) == ("released", D("19.16"))
    assert await journal_seqs(store) == [1, 2, 3, 4]


@pytest.mark.parametrize(("amount", "winners"), [("500", 1), ("300", 2)])
async def test_concurrent_withdrawals_never_overdraw_free_cash(
    store: Store, second_store: Store, amount: str, winners: int
) -> None:
    svc1 = await open_service(store)
    svc2 = await open_service(second_store)
    granted = await svc1.allocate(request("2"))
    assert isinstance(granted, AllocationGranted)
    await svc2.reload()
    assert svc1.ledger.cash_usd == svc2.ledger.cash_usd == D(800)

    results = await asyncio.gather(
        svc1.withdraw("alice", D(amount), "w-alice"),
        svc2.withdraw("bob", D(amount), "w-bob"),
        return_exceptions=True,
    )

    ok = [r for r in results if isinstance(r, WithdrawalRecorded)]
    failed = [r for r in results if not isinstance(r, WithdrawalRecorded)]
    assert len(ok) == winners, results
    assert all(isinstance(e, WithdrawalQueued) for e in failed), failed  # waits its turn
    final = await open_service(store, register=False)
    assert final.ledger.cash_usd == D(800) - winners * D(amount)
    assert final.ledger.cash_usd >= 0
    assert (await counts(store))["withdrawals"] == winners
    assert await journal_seqs(store) == list(range(1, 4 + winners))
    cash_lines = sum(
        (r["amount_usd"] for r in await rows(store, m.journal_lines) if r["account"] == CASH),
        D(0),
    )
    assert cash_lines == final.ledger.cash_usd


# -- exact decimals --------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "0.12345678",  # units
        "1234.56",  # a contribution
        "0.000000000000000001",  # the smallest NUMERIC(38, 18) step
        "-12.3456789012345678",  # a PnL with 16 decimals (8-decimal price × quantity)
        "98765432109.87654321",  # a large amount with 8 decimals
    ],
)
async def test_decimals_read_back_exactly(store: Store, value: str) -> None:
    svc = await open_service(store)
    await svc.contribute("carol", D("1234.56"), "c-exact")
    [row] = [r for r in await rows(store, m.contributions) if r["member"] == "carol"]
    assert (row["amount_usd"], row["units"]) == (D("1234.56"), D("1234.56"))

    entry = JournalEntry(
        seq=svc.ledger.seq + 1,
        ts_ns=START_NS,
        kind="test",
        ref="test:exact",
        memo="exact decimals",
        lines=(
            Line("test:debit", D(value)),
            Line(member_account("carol"), -D(value), D(value)),
        ),
    )
    svc.ledger.apply(entry)
    await repo.append_entry(store, entry, svc.ledger.figures())

    lines = [r for r in await rows(store, m.journal_lines) if r["entry_seq"] == entry.seq]
    assert sorted((r["account"], r["amount_usd"], r["units"]) for r in lines) == [
        (member_account("carol"), -D(value), D(value)),
        ("test:debit", D(value), D(0)),
    ]
    for r in lines:
        assert abs(r["amount_usd"]) == D(value).copy_abs()
        assert r["amount_usd"].as_tuple().exponent >= -18
    reloaded = await repo.load_ledger(store, svc.rules)
    assert reloaded.member_units["carol"] == D("1234.56") + D(value)
    assert reloaded.balances == svc.ledger.balances


async def test_units_and_nav_per_unit_after_a_gain_read_back_exactly(store: Store) -> None:
    svc = await open_service(store)
    granted = await svc.allocate(request("8"))
    assert isinstance(granted, AllocationGranted)
    alloc = make_allocation(granted.allocation_id, granted.amount_usd)
    await svc.on_trade_closed(closed_for(alloc, "t1", "0.02", "20500", "21462.3", "0.41"))
    assert svc.ledger.nav_usd() == D("2018.836")

    record = await svc.contribute("carol", D(500), "c-carol")

    # 500 × 2,000 / 2,018.836 = 495.334935576…, rounded down
    assert record.units == D("495.33493557")
    assert record.nav_per_unit == D("1.00941800")
    [row] = [r for r in await rows(store, m.contributions) if r["member"] == "carol"]
    assert row["units"] == D("495.33493557")
    assert row["nav_per_unit"] == D("1.009418")
    assert (await svc.contribute("carol", D(500), "c-carol")) == record
    [state] = [s for s in await rows(store, m.pool_state) if s["seq"] == svc.ledger.seq]
    expected = money.to_stored(money.divide(D("2518.836"), D("2495.33493557")))
    assert state["nav_per_unit"] == expected
    assert state["units"] == D("2495.33493557")
    reloaded = await repo.load_ledger(store, svc.rules)
    assert reloaded.member_units["carol"] == D("495.33493557")
    assert reloaded.nav_usd() == D("2518.836")


# -- memory never drifts from the journal ----------------------------------------------


def snapshot_of(ledger: Any) -> tuple[Any, ...]:
    figures = ledger.figures()
    return (
        ledger.seq,
        figures.nav_usd,
        figures.cash_usd,
        figures.allocated_usd,
        dict(ledger.member_units),
        sorted(ledger.allocations),
        sorted(ledger.refs),
    )


async def test_concurrent_commands_on_two_services_leave_memory_equal_to_the_journal(
    store: Store, second_store: Store
) -> None:
    """Two services on one database (a node and a CLI, or two instances) interleave
    contributions, withdrawals, allocations and refusals; afterwards each one's memory,
    reloaded or not, equals a fresh load of the journal, and seq is gapless."""
    first = await open_service(store)
    second = await open_service(second_store, register=False)

    async def attempt(command: Any) -> None:
        try:
            await command
        except InvalidInput:
            pass  # refusals are part of the mix: they must leave nothing behind

    commands = []
    for n in range(12):
        svc = first if n % 2 else second
        commands += [
            attempt(svc.contribute("carol", D(100 + n), f"c-{n}")),
            attempt(svc.withdraw("alice", D("37.50"), f"w-{n}")),
            attempt(svc.allocate(request("4"))),
            attempt(svc.contribute("carol", D(50), f"too-small-{n}")),
        ]
    await asyncio.gather(*commands)

    fresh = await repo.load_ledger(store, first.rules)
    seqs = await journal_seqs(store)
    assert seqs == list(range(1, len(seqs) + 1))
    for svc in (first, second):
        await svc.reload()
        assert snapshot_of(svc.ledger)[:-1] == snapshot_of(fresh)[:-1]
    assert len([r for r in fresh.refs if r.startswith("contribution:c-")]) == 12
    assert not any(r.startswith("contribution:too-small") for r in fresh.refs)
    # the one who did not reload last still agrees once it writes again
    await first.contribute("carol", D(100), "after")
    assert (
        snapshot_of(first.ledger)[:-1]
        == snapshot_of(await repo.load_ledger(store, first.rules))[:-1]
    )


async def test_a_phase_crossed_by_the_market_alone_is_announced(store: Store) -> None:
    recorder = Recorder()
    config = CapitalPoolConfig(
        members=(MemberConfig(name="alice", opening_contribution_usd=D(1000)),)
    )
    svc = await open_service(store, config, recorder=recorder)
    assert [(p.previous, p.current) for p in recorder.of(PhaseChanged)] == [("none", "growth")]
    granted = await svc.allocate(request("4"))  # 1,000 x 2% / 4% = 500
    assert isinstance(granted, AllocationGranted)
    alloc = make_allocation(granted.allocation_id, granted.amount_usd)
    await svc.on_position_opened(opened_for(alloc, "t1", "0.02", "20000", "0"))
    svc.on_market(snapshot("15000"))  # 0.02 BTC lose 100 USD: NAV 900, below 1,000
    await svc.announce_phase()
    assert [(p.previous, p.current) for p in recorder.of(PhaseChanged)] == [
        ("none", "growth"),
        ("growth", "seed"),
    ]
    assert [a[0] for a in recorder.alerts].count("pool_phase_changed") == 2
    await svc.announce_phase()  # announced once, not on every look
    assert len(recorder.of(PhaseChanged)) == 2


async def test_a_loss_beyond_its_allocation_raises_a_critical_alert(store: Store) -> None:
    """A short that loses more than its allocation drives free cash below zero: booked as
    it happened (the money is gone), and a critical alert says so."""
    recorder = Recorder()
    svc = await open_service(store, recorder=recorder)
    granted = await svc.allocate(request("8", side="short"))  # NAV 2,000 × 2 % ÷ 8 % = 500
    assert isinstance(granted, AllocationGranted) and granted.amount_usd == D(500)
    alloc = make_allocation(granted.allocation_id, granted.amount_usd, side="short")
    await svc.on_position_opened(opened_for(alloc, "t1", "0.02", "20000", "0"))
    await svc.withdraw("alice", D(750), "w-alice")
    await svc.withdraw("bob", D(750), "w-bob")  # free cash: 2,000 - 500 - 1,500 = 0
    assert svc.ledger.cash_usd == 0
    # the price doubles: (20,000 - 50,000) × 0.02 = -600 gross, 1 fee; 500 comes back less 601
    await svc.on_trade_closed(closed_for(alloc, "t1", "0.02", "20000", "50000", "1"))
    assert svc.ledger.cash_usd == D(-101)
    [(_, message, severity, labels)] = [a for a in recorder.alerts if a[0] == "pool_cash_negative"]
    assert severity == "critical" and labels == {"trade_id": "t1"}
    assert "lost 601.00 USD, more than its allocation of 500.00 USD" in message
    assert "free cash is -101.00 USD" in message
