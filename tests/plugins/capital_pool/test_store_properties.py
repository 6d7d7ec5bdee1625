"""Random sequences of commands through the real :class:`PoolService` keep the pool's
invariants in what is STORED (hypothesis; SQLite and PostgreSQL).

Each example opens a service on a store emptied for it, registers 1–4 members with an
opening contribution each, then runs 14–21 operations: a member added, contributions
(some below the minimum), withdrawals (paid, or queued while free cash is short or others
wait), cancellations of queued withdrawals, allocations through ``allocate``, positions
opened on them, trades closed with gains, losses and fees (some with no position seen
first, some delivered twice), unused allocations, and marks through ``on_market`` (some
saved). A refused command (``InvalidInput``) is skipped, after checking that it wrote
nothing. The clock moves one second per operation, so no allocation gets anywhere near
``allocation_timeout_s`` (300 s) and none expires behind the test's back. Prices and
quantities have 8 decimals (as the paper broker's, without slippage), so a PnL has at most
16 and NUMERIC(38, 18) stores every amount exactly.

After every operation, from the journal, lines, pool states, flows, allocations and
withdrawal queue read back from the store:

1. seq runs 1..n without gaps, every entry has two lines or more, and its lines sum to
   exactly 0 (debits = credits), entry by entry;
2. the running balance of ``asset:cash`` is never negative after any entry, and each
   stored pool state matches the running cash, allocated and units at its seq;
3. every contribution and withdrawal (queued ones paid later included) leaves NAV per
   unit where it was, or raises it by at most the rounding of one unit quantum:
   ``0 ≤ after − before ≤ before × 10⁻⁸ ÷ units after`` (units are issued rounded down
   and burned rounded up, so the pool keeps under one quantum's worth each time);
4. nobody's equity moves because of another member's flow: their units are unchanged and
   their equity rises by at most ``units × before × 10⁻⁸ ÷ units after`` (their share of
   that rounding) and never falls; the member's own equity moves by their amount less at
   most ``before × 10⁻⁸`` (one quantum at the price);
5. at each grant, allocated ≤ ``max_active_ratio`` × NAV, and the grant leaves at least
   the cash owed to queued withdrawals; grants and unused allocations move neither NAV nor
   units, and a settlement moves NAV by its realized PnL less the unrealized PnL of the
   position it replaces;
6. queued withdrawals are paid first in, first out, each at most once, and after every
   command that pays the queue its head is waiting for cash it cannot get yet;
7. NAV recomputed from the stored balances and open positions (at the service's marks)
   equals the service's, and the members' equity ``units × NAV ÷ units outstanding`` adds
   up to NAV (tolerance below); rounded down to cents, as reported, it adds up to NAV
   less under one cent per member;
8. the service's in-memory ledger equals a second ledger loaded from the store
   (``repository.load_ledger``): seq, refs, members, balances, member units, open
   allocations and positions; with the marks too, and so NAV, when they were saved.

Checks 3 and 4 run twice: exactly, on the service's in-memory figures right before and
after each entry (captured when the service publishes ``PoolState``), and on the stored
figures, whose NAV per unit is rounded half-even to 18 decimals: each stored price is
within ``0.5 × 10⁻¹⁸`` of the true one, so differences of two prices get ``10⁻¹⁸``
(:data:`STORED_SLACK`) of slack and equities ``units × 10⁻¹⁸``. When the last units are
burned, the NAV left must be under one quantum's worth (the burn rounded up), and the next
contribution, priced at 1.00, finds exactly that NAV.

Tolerances. The issue/burn rounding dust is not lost: it stays in NAV and belongs to
the units outstanding, so Σ units × NAV ÷ units outstanding is NAV *exactly* in real
numbers (Σ units IS units outstanding). The only error left is :mod:`corec.core.money`'s
50-digit division: each member's equity is rounded once to 50 significant digits, an
error under ``|NAV| × 10⁻⁴⁹``, so the sum is within ``members × |NAV| × 10⁻⁴⁹``
(:func:`division_error`); a looser bound such as "one unit quantum × NAV per unit × the
number of members" would let real dust go missing unnoticed. The "exact" in-memory checks
allow the same 50-digit error on each NAV per unit (``npu × 10⁻⁴⁸``). Sums are taken in
a 100-digit context: Python's default 28 digits would round them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Context, Decimal, localcontext
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from corec.core import money
from corec.core.clock import NS_PER_S, ReplayClock
from corec.core.errors import InvalidEvent, InvalidInput
from corec.core.store import Store
from corec.core.store.migrate import upgrade
from corec.messages.capital_data import (
    AllocationGranted,
    AllocationRefused,
    AllocationRequest,
    PoolState,
)
from corec.messages.market_data import MarketSnapshot
from corec.messages.trading_results import (
    AllocationUnused,
    PositionOpened,
    PositionSide,
    TradeClosed,
)
from corec.plugins.capital_pool import models as m
from corec.plugins.capital_pool import repository as repo
from corec.plugins.capital_pool.config import CapitalPoolConfig
from corec.plugins.capital_pool.ledger import ALLOCATED, CASH, MEMBER_PREFIX, Ledger
from corec.plugins.capital_pool.plugin import CapitalPoolPlugin
from corec.plugins.capital_pool.service import PoolService

from .helpers import START_NS

D = Decimal
ZERO = D(0)
QUANTUM = money.UNITS_QUANTUM
STORED_SLACK = money.STORED_QUANTUM  # two stored prices, each within 0.5e-18
EXACT = Context(prec=100)
CONFIG = CapitalPoolConfig()  # min contribution 100, max_active_ratio 0.6, timeout 300 s
RATIO = CONFIG.max_active_ratio
MEMBERS = ("alice", "bob", "carol", "dave")
INSTRUMENTS: tuple[tuple[str, Any, str, Decimal], ...] = (
    ("binance", "spot", "BTC/USDT", D(20000)),
    ("okx", "futures", "ETH/USDT:USDT", D("1500.5")),
)
FEE_RATES = (D(0), D("0.0004"), D("0.001"), D("0.002"))
STOPS = ("0.5", "1", "2", "3.5", "5", "10", "25")


def division_error(nav: Decimal, terms: int) -> Decimal:
    """Bound on Σ equity − NAV: one 50-significant-digit rounding per member's equity."""
    return terms * abs(nav) * D("1e-49")


def price_near(base: Decimal, permille: int, noise: int) -> Decimal:
    """``base × permille / 1000`` plus ``noise`` steps of 10⁻⁸: an 8-decimal price."""
    return base * permille / 1000 + D(noise).scaleb(-8)


# -- operations, as data -------------------------------------------------------------------
PICK = st.integers(0, 1_000)
NOISE = st.integers(0, 10**8 - 1)
ARGUMENTS: dict[str, st.SearchStrategy[tuple[Any, ...]]] = {
    "add_member": st.tuples(),
    "contribute": st.tuples(st.integers(0, 3), st.integers(9_000, 400_000)),  # cents
    # how much: a % of the member's equity, all of it, or the free cash plus 1–130 USD
    "withdraw": st.tuples(
        st.integers(0, 3), st.integers(1, 130), st.sampled_from(("part", "whole", "over_cash"))
    ),
    "cancel": st.tuples(PICK),
    "allocate": st.tuples(
        st.sampled_from(STOPS),
        st.sampled_from(("long", "short")),
        st.integers(0, len(INSTRUMENTS) - 1),
    ),
    "open": st.tuples(
        PICK,
        st.integers(800, 1250),  # entry price, per mille of the instrument's base
        NOISE,
        st.integers(1, 99),  # % of the allocation used (notional + fee)
        st.sampled_from(FEE_RATES),
    ),
    "close": st.tuples(
        PICK,
        # exit price: at most 1.5 × entry, so a short never loses more than its allocation
        # (the ledger models no margin: such a loss would take cash below zero)
        st.integers(500, 1500),
        NOISE,
        st.sampled_from(FEE_RATES),
        st.integers(1, 99),
        st.booleans(),  # prefer a filled position (else any allocation)
        st.booleans(),  # deliver the result twice
    ),
    "unused": st.tuples(PICK),
    "mark": st.tuples(
        st.integers(0, len(INSTRUMENTS) - 1),
        st.integers(500, 2000),
        NOISE,
        st.booleans(),  # save the marks (then the reloaded ledger has them)
    ),
}
WEIGHTS = {
    "allocate": 4,
    "open": 3,
    "close": 4,
    "withdraw": 4,
    "contribute": 2,
    "mark": 2,
    "cancel": 2,
    "unused": 1,
    "add_member": 1,
}
"""How often each operation is drawn: trades and withdrawals often, so that examples
reach open positions, queued withdrawals and their payment."""
OPERATION = st.sampled_from([k for k, n in WEIGHTS.items() for _ in range(n)]).flatmap(
    lambda kind: ARGUMENTS[kind].map(lambda args: (kind, *args))
)
OPENINGS = st.lists(st.integers(10_000, 300_000), min_size=1, max_size=4)  # cents
OPERATIONS = st.lists(OPERATION, min_size=14, max_size=21)  # with the openings: ≤ 25


# -- figures ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Snap:
    """The service's in-memory figures at one moment (exact)."""

    seq: int
    nav: Decimal
    npu: Decimal
    units: Decimal
    cash: Decimal
    allocated: Decimal
    member_units: dict[str, Decimal]


def snap(ledger: Ledger) -> Snap:
    f = ledger.figures()
    return Snap(
        ledger.seq,
        f.nav_usd,
        f.nav_per_unit,
        f.units,
        f.cash_usd,
        f.allocated_usd,
        dict(ledger.member_units),
    )


@dataclass(frozen=True)
class Stored:
    """Every row of capital_pool's tables, read in one snapshot."""

    entries: list[dict[str, Any]]
    lines: dict[int, list[dict[str, Any]]]
    states: dict[int, dict[str, Any]]
    contributions: list[dict[str, Any]]
    withdrawals: list[dict[str, Any]]
    allocations: list[dict[str, Any]]
    queue: list[dict[str, Any]]


async def read_stored(store: Store) -> Stored:
    def rows(conn: Any, table: Any, *order: Any) -> list[dict[str, Any]]:
        return [dict(r) for r in conn.execute(select(table).order_by(*order)).mappings()]

    def work(conn: Any) -> Stored:
        lines: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for line in rows(conn, m.journal_lines, m.journal_lines.c.id):
            lines[line["entry_seq"]].append(line)
        return Stored(
            entries=rows(conn, m.journal_entries, m.journal_entries.c.seq),
            lines=lines,
            states={r["seq"]: r for r in rows(conn, m.pool_state, m.pool_state.c.seq)},
            contributions=rows(conn, m.contributions, m.contributions.c.entry_seq),
            withdrawals=rows(conn, m.withdrawals, m.withdrawals.c.entry_seq),
            allocations=rows(conn, m.allocations, m.allocations.c.granted_seq),
            queue=rows(conn, m.withdrawal_queue, m.withdrawal_queue.c.position),
        )

    return await store.read(work)


def flow_of(entry: dict[str, Any], lines: list[dict[str, Any]]) -> tuple[str, Decimal, Decimal]:
    """(member, signed amount in, signed units) of a contribution or withdrawal entry."""
    (member_line,) = [ln for ln in lines if ln["account"].startswith(MEMBER_PREFIX)]
    (cash_line,) = [ln for ln in lines if ln["account"] == CASH]
    member = member_line["account"][len(MEMBER_PREFIX) :]
    units = member_line["units"]
    if entry["kind"] == "contribution":
        assert cash_line["amount_usd"] > 0 and units > 0
    else:
        assert cash_line["amount_usd"] < 0 and units < 0
    return member, cash_line["amount_usd"], units


def check_flow(
    member: str,
    amount_in: Decimal,
    units_before: dict[str, Decimal],
    units_after: dict[str, Decimal],
    npu_before: Decimal,
    npu_after: Decimal,
    total_after: Decimal,
    price_slack: Decimal,
) -> None:
    """Checks 3 and 4 for one flow; ``price_slack`` is the error allowed on each NAV per
    unit (0 up to the 50-digit division when exact, 0.5e-18 when stored)."""
    with localcontext(EXACT):
        delta = npu_after - npu_before
        assert delta >= -2 * price_slack, f"NAV per unit fell by {-delta}"
        one_quantum = npu_before * QUANTUM
        assert delta <= one_quantum / total_after + 2 * price_slack, delta
        for name in set(units_before) | set(units_after):
            before_u = units_before.get(name, ZERO)
            after_u = units_after.get(name, ZERO)
            change = after_u * npu_after - before_u * npu_before
            slack = (before_u + after_u) * price_slack
            if name == member:
                # the member gets their money's worth, less at most one quantum at the price
                assert amount_in - one_quantum - slack <= change <= amount_in + slack, (
                    change,
                    amount_in,
                )
            else:
                assert after_u == before_u, f"{name}'s units moved with {member}'s flow"
                assert change >= -slack, f"{name} lost {-change} to {member}'s flow"
                assert change <= after_u * one_quantum / total_after + slack, change


# -- one example -----------------------------------------------------------------------------
@dataclass
class Fill:
    trade_id: str
    side: PositionSide
    quantity: Decimal
    entry_price: Decimal
    entry_fee: Decimal
    opened_ts_ns: int


class Run:
    """One example: the service, the allocations it granted, what was checked."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.clock = ReplayClock(START_NS)
        self.svc = PoolService(store, CONFIG, self.clock, publish=self.publish)
        self.members: list[str] = []
        self.granted: list[str] = []  # open allocation ids, in grant order
        self.fills: dict[str, Fill] = {}
        self.counter = 0
        self.marks_saved = True
        self.snapshots: list[Snap] = []
        self.queued_before = ZERO
        self.queue_paid = False  # this step ran pay_queue
        self.queue_settled = True  # pay_queue ran since anything could make the head payable
        self.orphan_dust = ZERO  # NAV left when the last units were burned (< 1 quantum's worth)
        self.settles_by: Decimal | None = None  # how much the next settlement moves NAV

    async def publish(self, _channel: str, payload: Any, _key: str | None) -> None:
        if isinstance(payload, PoolState):  # after each entry is stored and applied
            self.snapshots.append(snap(self.svc.ledger))

    def next_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def member(self, who: int) -> str:
        return self.members[who % len(self.members)]

    async def step(self, op: tuple[Any, ...]) -> None:
        self.clock.advance_to(self.clock.now_ns() + NS_PER_S)
        self.snapshots = [snap(self.svc.ledger)]
        queue = await repo.queued_withdrawals(self.store)
        self.queued_before = sum((w["amount_usd"] for w in queue), ZERO)
        seq = self.svc.ledger.seq
        self.queue_paid = False
        try:
            await getattr(self, f"op_{op[0]}")(*op[1:])
        except InvalidEvent:  # every result sent here is valid: refusing one is a bug
            raise
        except InvalidInput as exc:
            assert self.svc.ledger.seq == seq, f"{op[0]} refused ({exc}) after writing"
            assert await repo.queued_withdrawals(self.store) == queue
        if self.queue_paid:
            self.queue_settled = True
        elif op[0] in ("open", "mark"):  # a fee or a mark can lower the head's equity
            self.queue_settled = False
        await self.check()

    # -- operations ----------------------------------------------------------------------
    async def op_add_member(self) -> None:
        if len(self.members) < len(MEMBERS):
            name = MEMBERS[len(self.members)]
            assert await self.svc.add_member(name)
            self.members.append(name)

    async def op_contribute(self, who: int, cents: int) -> None:
        await self.svc.contribute(self.member(who), D(cents).scaleb(-2), self.next_id("c"))
        self.queue_paid = True

    async def op_withdraw(self, who: int, size: int, how: str) -> None:
        member = self.member(who)
        equity = self.svc.ledger.member_equity_usd(member)
        if how == "over_cash":  # queued, unless it is more than the member's equity
            amount = money.pay(self.svc.ledger.cash_usd, money.CENT) + size
        else:
            amount = money.pay(equity if how == "whole" else equity * size / 100, money.CENT)
        if amount <= 0:
            return
        waiting = await repo.queued_withdrawals(self.store)
        await self.svc.withdraw(member, amount, self.next_id("w"))
        # paid, or queued as the head because free cash is short (amount ≤ equity)
        self.queue_paid = not waiting

    async def op_cancel(self, pick: int) -> None:
        q = m.withdrawal_queue
        query = select(q.c.withdrawal_id, q.c.status).order_by(q.c.position)
        rows = await self.store.read(lambda conn: conn.execute(query).all())
        if rows:  # any status: cancelling a paid one is refused, a cancelled one repeats
            withdrawal_id, status = rows[pick % len(rows)]
            await self.svc.cancel_withdrawal(withdrawal_id)
            self.queue_paid = status == "queued"  # cancelled now, then the queue is paid

    async def op_allocate(self, stop: str, side: PositionSide, which: int) -> None:
        exchange, market, symbol, _ = INSTRUMENTS[which]
        result = await self.svc.allocate(
            AllocationRequest(
                strategy="prop",
                exchange=exchange,
                market=market,
                symbol=symbol,
                side=side,
                stop_loss_pct=D(stop),
            )
        )
        if isinstance(result, AllocationRefused):
            assert len(self.snapshots) == 1, "a refused allocation wrote an entry"
            return
        assert isinstance(result, AllocationGranted)
        assert self.svc.ledger.allocations[result.allocation_id].amount_usd == result.amount_usd
        self.granted.append(result.allocation_id)

    def idle(self) -> list[str]:
        return [a for a in self.granted if a not in self.fills]

    def fill(
        self, allocation_id: str, permille: int, noise: int, fill_pct: int, rate: Decimal
    ) -> Fill | None:
        alloc = self.svc.ledger.allocations[allocation_id]
        base = next(b for e, _, s, b in INSTRUMENTS if (e, s) == (alloc.exchange, alloc.symbol))
        price = price_near(base, permille, noise)
        budget = alloc.amount_usd * fill_pct / 100
        qty = money.quantity_down(money.divide(budget, price * (1 + rate)))
        if qty <= 0:
            return None
        fee = money.charge(qty * price * rate)
        return Fill(self.next_id("t"), alloc.side, qty, price, fee, self.clock.now_ns())

    async def op_open(
        self, pick: int, permille: int, noise: int, fill_pct: int, rate: Decimal
    ) -> None:
        idle = self.idle()
        if not idle:
            return
        allocation_id = idle[pick % len(idle)]
        fill = self.fill(allocation_id, permille, noise, fill_pct, rate)
        if fill is None:
            return
        alloc = self.svc.ledger.allocations[allocation_id]
        await self.svc.on_position_opened(
            PositionOpened(
                trade_id=fill.trade_id,
                allocation_id=allocation_id,
                strategy=alloc.strategy,
                exchange=alloc.exchange,
                market=alloc.market,
                symbol=alloc.symbol,
                side=alloc.side,
                quantity=fill.quantity,
                entry_price=fill.entry_price,
                entry_fee_usd=fill.entry_fee,
                opened_ts_ns=fill.opened_ts_ns,
            )
        )
        self.fills[allocation_id] = fill

    async def op_close(
        self,
        pick: int,
        permille: int,
        noise: int,
        rate: Decimal,
        fill_pct: int,
        filled: bool,
        twice: bool,
    ) -> None:
        candidates = [a for a in self.granted if a in self.fills] if filled else []
        candidates = candidates or self.granted
        if not candidates:
            return
        allocation_id = candidates[pick % len(candidates)]
        alloc = self.svc.ledger.allocations[allocation_id]
        # a result with no PositionOpened seen first: filled at the base price
        fill = self.fills.get(allocation_id) or self.fill(
            allocation_id, 1000, noise, fill_pct, rate
        )
        if fill is None:
            return
        base = next(b for e, _, s, b in INSTRUMENTS if (e, s) == (alloc.exchange, alloc.symbol))
        exit_price = price_near(base, permille, noise)
        fees = fill.entry_fee + money.charge(fill.quantity * exit_price * rate)
        move = exit_price - fill.entry_price
        gross = (move if fill.side == "long" else -move) * fill.quantity
        closed = TradeClosed(
            trade_id=fill.trade_id,
            allocation_id=allocation_id,
            strategy=alloc.strategy,
            exchange=alloc.exchange,
            market=alloc.market,
            symbol=alloc.symbol,
            side=fill.side,
            quantity=fill.quantity,
            entry_price=fill.entry_price,
            exit_price=exit_price,
            fees_usd=fees,
            realized_pnl_usd=gross - fees,
            opened_ts_ns=fill.opened_ts_ns,
            closed_ts_ns=self.clock.now_ns(),
            exit_reason="signal",
        )
        # NAV moves by the realized PnL, less the position's unrealized PnL it replaces
        position = alloc.position
        replaced = (
            position.unrealized_pnl_usd(self.svc.ledger.marks.get(alloc.instrument))
            if position
            else ZERO
        )
        self.settles_by = closed.realized_pnl_usd - replaced
        await self.svc.on_trade_closed(closed)
        self.queue_paid = True
        self.granted.remove(allocation_id)
        self.fills.pop(allocation_id, None)
        if twice:  # at-least-once delivery: the repeat changes nothing
            seq, applied = self.svc.ledger.seq, self.svc.results_applied
            await self.svc.on_trade_closed(closed)
            assert (self.svc.ledger.seq, self.svc.results_applied) == (seq, applied)

    async def op_unused(self, pick: int) -> None:
        idle = self.idle()
        if idle:
            allocation_id = idle[pick % len(idle)]
            await self.svc.on_allocation_unused(
                AllocationUnused(allocation_id=allocation_id, reason="not placed")
            )
            self.queue_paid = True
            self.granted.remove(allocation_id)

    async def op_mark(self, which: int, permille: int, noise: int, save: bool) -> None:
        exchange, market, symbol, base = INSTRUMENTS[which]
        price = price_near(base, permille, noise)
        self.svc.on_market(
            MarketSnapshot(
                exchange=exchange,
                market=market,
                symbol=symbol,
                bid=None,
                ask=None,
                last=price,
                mid=price,
                price=price,
                spread_bps=None,
                return_pct=None,
                window_s=60,
                exchange_ts_ns=self.clock.now_ns(),
            )
        )
        if save:
            await self.svc.save_marks()
        self.marks_saved = save

    # -- the checks ----------------------------------------------------------------------
    async def check(self) -> None:
        ledger = self.svc.ledger
        stored = await read_stored(self.store)
        units_at = self.check_journal(stored)
        self.check_entries_in_memory(stored)
        self.check_stored_flows(stored, units_at)
        self.check_allocations(stored)
        self.check_queue(stored)
        self.check_nav_and_equity(stored, units_at[ledger.seq])
        await self.check_reload()

    def check_journal(self, stored: Stored) -> dict[int, dict[str, Decimal]]:
        """Checks 1 and 2; returns each member's units after each seq (from the lines)."""
        ledger = self.svc.ledger
        seqs = [e["seq"] for e in stored.entries]
        assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) == ledger.seq
        assert sorted(stored.lines) == seqs and sorted(stored.states) == seqs
        balances: dict[str, Decimal] = {}
        units: dict[str, Decimal] = {}
        units_at: dict[int, dict[str, Decimal]] = {0: {}}
        with localcontext(EXACT):
            for seq in seqs:
                lines = stored.lines[seq]
                assert len(lines) >= 2
                total = sum((ln["amount_usd"] for ln in lines), ZERO)
                assert total == 0, f"entry {seq}: debits and credits differ by {total}"
                for ln in lines:
                    account = ln["account"]
                    balances[account] = balances.get(account, ZERO) + ln["amount_usd"]
                    if ln["units"]:
                        assert account.startswith(MEMBER_PREFIX)
                        member = account[len(MEMBER_PREFIX) :]
                        units[member] = units.get(member, ZERO) + ln["units"]
                        assert units[member] >= 0
                assert balances.get(CASH, ZERO) >= 0, f"cash is {balances[CASH]} after {seq}"
                state = stored.states[seq]
                assert state["cash_usd"] == balances.get(CASH, ZERO)
                assert state["allocated_usd"] == balances.get(ALLOCATED, ZERO)
                assert state["units"] == sum(units.values(), ZERO)
                units_at[seq] = dict(units)
        assert balances == ledger.balances
        assert units == ledger.member_units
        return units_at

    def check_entries_in_memory(self, stored: Stored) -> None:
        """Checks 3–5 on the exact figures before and after each entry of this step."""
        first = self.snapshots[0].seq
        assert [s.seq for s in self.snapshots] == list(range(first, self.svc.ledger.seq + 1))
        for before, after in zip(self.snapshots, self.snapshots[1:], strict=False):
            entry = stored.entries[after.seq - 1]
            lines = stored.lines[after.seq]
            kind = entry["kind"]
            if kind in ("contribution", "withdrawal"):
                member, amount_in, units = flow_of(entry, lines)
                assert after.nav == before.nav + amount_in
                assert after.member_units.get(member, ZERO) == (
                    before.member_units.get(member, ZERO) + units
                )
                if before.units == 0:
                    # the first units, at 1.00 each, into an empty pool (or one holding the
                    # dust of the last units burned, under one quantum's worth)
                    assert units == amount_in
                    assert before.nav == self.orphan_dust, (before.nav, self.orphan_dust)
                elif after.units == 0:
                    # the last units burned: the rounding up leaves under a quantum's worth
                    assert ZERO <= after.nav <= before.npu * QUANTUM
                    self.orphan_dust = after.nav
                    event("the last units were burned")
                else:
                    check_flow(
                        member,
                        amount_in,
                        before.member_units,
                        after.member_units,
                        before.npu,
                        after.npu,
                        after.units,
                        max(before.npu, after.npu) * D("1e-48"),
                    )
                continue
            assert after.member_units == before.member_units, f"{kind} moved units"
            if kind == "allocation":
                assert after.nav == before.nav
                assert after.allocated <= RATIO * after.nav, "a grant went over the cap"
                assert after.cash >= self.queued_before, "a grant took cash owed to the queue"
            elif kind == "allocation_unused":
                assert after.nav == before.nav
            else:
                assert kind == "settlement", kind
                assert after.nav - before.nav == self.settles_by

    def check_stored_flows(self, stored: Stored, units_at: dict[int, dict[str, Decimal]]) -> None:
        """Checks 3 and 4 on the stored figures of every flow so far."""
        flows = [("contribution", r) for r in stored.contributions]
        flows += [("withdrawal", r) for r in stored.withdrawals]
        assert len(flows) == sum(
            e["kind"] in ("contribution", "withdrawal") for e in stored.entries
        )
        for kind, row in flows:
            seq = row["entry_seq"]
            entry = stored.entries[seq - 1]
            assert entry["kind"] == kind
            member, amount_in, units = flow_of(entry, stored.lines[seq])
            assert (row["member"], row["units"]) == (member, abs(units))
            assert row["amount_usd"] == abs(amount_in)
            state = stored.states[seq]
            before_total = sum(units_at[seq - 1].values(), ZERO)
            if before_total == 0:  # priced at 1.00 (the NAV left is checked in memory)
                assert row["nav_per_unit"] == 1 and units == amount_in
            elif state["units"] == 0:
                assert ZERO <= state["nav_usd"] <= row["nav_per_unit"] * QUANTUM + STORED_SLACK
            else:
                check_flow(
                    member,
                    amount_in,
                    units_at[seq - 1],
                    units_at[seq],
                    row["nav_per_unit"],  # the price it was made at (stored)
                    state["nav_per_unit"],
                    state["units"],
                    STORED_SLACK / 2,
                )

    def check_allocations(self, stored: Stored) -> None:
        """Check 5 on the stored pool state at each grant; open ones match memory."""
        for row in stored.allocations:
            seq = row["granted_seq"]
            entry = stored.entries[seq - 1]
            assert entry["kind"] == "allocation"
            amounts = {ln["account"]: ln["amount_usd"] for ln in stored.lines[seq]}
            assert amounts == {ALLOCATED: row["amount_usd"], CASH: -row["amount_usd"]}
            state = stored.states[seq]
            # the stored NAV is within 0.5e-18 of the NAV the cap was computed on
            assert state["allocated_usd"] <= RATIO * (state["nav_usd"] + money.STORED_QUANTUM)
        still_open = {r["allocation_id"] for r in stored.allocations if r["status"] == "open"}
        assert still_open == set(self.svc.ledger.allocations) == set(self.granted)

    def check_queue(self, stored: Stored) -> None:
        """Check 6."""
        paid_seqs = []
        withdrawals = {r["withdrawal_id"]: r for r in stored.withdrawals}
        for row in stored.queue:
            if row["status"] == "paid":
                flow = withdrawals[row["withdrawal_id"]]
                assert flow["member"] == row["member"]
                assert flow["amount_usd"] == row["paid_usd"] <= row["amount_usd"]
                if row["paid_usd"] < row["amount_usd"]:
                    event("a queued withdrawal was paid the member's smaller equity")
                paid_seqs.append(flow["entry_seq"])
            else:
                assert row["status"] in ("queued", "cancelled")
                assert row["withdrawal_id"] not in withdrawals
        assert paid_seqs == sorted(paid_seqs), "the queue was not paid first in, first out"
        waiting = [r for r in stored.queue if r["status"] == "queued"]
        if waiting and self.queue_settled:
            head = waiting[0]
            equity = money.pay(self.svc.ledger.member_equity_usd(head["member"]), money.CENT)
            payable = min(head["amount_usd"], equity)
            assert payable > money.pay(self.svc.ledger.cash_usd, money.CENT) and payable > 0, (
                "the head of the queue could be paid and was not"
            )

    def check_nav_and_equity(self, stored: Stored, units: dict[str, Decimal]) -> None:
        """Check 7."""
        ledger = self.svc.ledger
        nav = ledger.nav_usd()
        state = stored.states.get(ledger.seq)
        cash = state["cash_usd"] if state else ZERO
        allocated = state["allocated_usd"] if state else ZERO
        with localcontext(EXACT):
            unrealized = ZERO
            for row in stored.allocations:
                if row["status"] != "open" or row["trade_id"] is None:
                    continue
                key = (row["exchange"], row["market"], row["symbol"])
                price = ledger.marks.get(key, row["entry_price"])
                move = price - row["entry_price"]
                signed = move if row["side"] == "long" else -move
                unrealized += signed * row["quantity"] - row["entry_fee_usd"]
            assert cash + allocated + unrealized == nav, "NAV from the store differs"
            total_units = sum(units.values(), ZERO)
            if total_units == 0:
                return
            equities = [money.equity_usd(u, nav, total_units) for u in units.values()]
            total = sum(equities, ZERO)
            assert abs(total - nav) <= division_error(nav, len(equities)), total - nav
            if nav >= 0:
                cents = sum((money.pay(e, money.CENT) for e in equities), ZERO)
                dust = nav - cents
                assert -division_error(nav, len(equities)) <= dust < money.CENT * len(equities)

    async def check_reload(self) -> None:
        """Check 8."""
        ledger = self.svc.ledger
        reloaded = await repo.load_ledger(self.store, self.svc.rules)
        assert reloaded.seq == ledger.seq
        assert reloaded.refs == ledger.refs
        assert reloaded.members == ledger.members == set(self.members)
        assert reloaded.balances == ledger.balances
        assert reloaded.member_units == ledger.member_units
        assert reloaded.allocations == ledger.allocations
        if self.marks_saved:
            assert reloaded.marks == ledger.marks
            assert reloaded.figures() == ledger.figures()
        else:
            assert (reloaded.cash_usd, reloaded.allocated_usd, reloaded.units_outstanding) == (
                ledger.cash_usd,
                ledger.allocated_usd,
                ledger.units_outstanding,
            )


async def empty(store: Store) -> None:
    """Delete every row of capital_pool's tables (children first): a fresh pool."""

    def work(conn: Any) -> None:
        for table in reversed(m.metadata.sorted_tables):
            conn.execute(delete(table))

    await store.write(work)


async def run_example(store: Store, openings: list[int], operations: list[tuple[Any, ...]]) -> None:
    await empty(store)
    run = Run(store)
    await run.svc.open()
    for cents in openings:
        await run.step(("add_member",))
        await run.step(("contribute", len(run.members) - 1, cents))
    for op in operations:
        await run.step(op)
    # what the example reached (pytest --hypothesis-show-statistics)
    stored = await read_stored(store)
    kinds = {e["kind"] for e in stored.entries}
    for kind in sorted(kinds):
        event(f"journal has {kind}")
    for status in sorted({r["status"] for r in stored.queue}):
        event(f"a withdrawal was queued, then {status}")


# -- the tests -------------------------------------------------------------------------------
async def migrated(url: str) -> Store:
    store = Store(url, name="capital_pool")
    await upgrade(store, CapitalPoolPlugin.migrations)
    return store


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    """One SQLite file per test function, emptied before each example."""
    store = await migrated(f"sqlite:///{tmp_path / 'pool.db'}")
    try:
        yield store
    finally:
        await store.dispose()


@pytest.fixture
async def pg_store(pg_url: str) -> AsyncIterator[Store]:
    """One fresh PostgreSQL database per test function (fails when CI=true and the
    server is unreachable, see conftest), emptied before each example."""
    store = await migrated(pg_url)
    try:
        yield store
    finally:
        await store.dispose()


COMMON = settings(
    deadline=None,
    # no shrinking: an example takes 0.1–1 s, so shrinking a failure takes minutes and runs
    # into the 120 s test timeout; a failure is reported as drawn (≤ 25 operations, printed
    # by hypothesis). Add Phase.shrink here to shrink one locally.
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # the store is emptied before each example
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@settings(COMMON, max_examples=25)
@given(openings=OPENINGS, operations=OPERATIONS)
async def test_stored_pool_keeps_its_invariants_sqlite(
    sqlite_store: Store, openings: list[int], operations: list[tuple[Any, ...]]
) -> None:
    await run_example(sqlite_store, openings, operations)


@settings(COMMON, max_examples=10)
@given(openings=OPENINGS, operations=OPERATIONS)
async def test_stored_pool_keeps_its_invariants_postgresql(
    pg_store: Store, openings: list[int], operations: list[tuple[Any, ...]]
) -> None:
    await run_example(pg_store, openings, operations)
