"""Random sequences of pool operations keep the ledger's invariants (hypothesis).

Operations: contributions by 1–4 members, withdrawals, allocations sized by the ledger,
positions opened on them, trades closed with gains and losses and fees, unused
allocations returned, marks moving, and replays of trades already settled. Refused
operations (``InvalidInput``) are skipped. After every step:

- every entry balances, and so does the whole journal;
- the members' equity adds up to NAV;
- NAV == cash + allocated + unrealized PnL (recomputed here from a shadow model), and
  cash, allocated, units and the PnL accounts match that model;
- cash never goes negative;
and per operation:
- a contribution or withdrawal never lowers NAV per unit and raises it by at most the
  rounding of one unit quantum; the member gets exactly their money's worth (less at
  most one quantum), the others lose nothing;
- an allocation keeps allocated ≤ max_active_ratio × NAV;
- a settlement moves NAV by realized PnL minus the position's unrealized PnL it replaces;
- the same ``TradeClosed`` applied twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)

from corec.core import money
from corec.core.errors import InvalidInput
from corec.messages.trading_results import PositionSide, TradeClosed
from corec.plugins.capital_pool.ledger import (
    FEES,
    MEMBER_PREFIX,
    REALIZED_PNL,
    Allocation,
    JournalEntry,
    Ledger,
)

from .helpers import START_NS, make_ledger, opened_for

D = Decimal
ZERO = D(0)
QUANTUM = D("0.00000001")
TINY = D("1e-20")  # the 50-digit divisions' own rounding
INSTRUMENTS = {
    ("binance", "spot", "BTC/USDT"): D(20000),
    ("okx", "futures", "ETH/USDT:USDT"): D("1500.5"),
}
FEE_RATES = (D(0), D("0.0004"), D("0.001"), D("0.002"))
MEMBERS = ("alice", "bob", "carol", "dave")


def price_near(base: Decimal, permille: int, noise: int) -> Decimal:
    """``base × permille / 1000`` plus ``noise`` 1e-8 steps: an 8-decimal price."""
    return base * permille / 1000 + D(noise).scaleb(-8)


@dataclass
class OpenPosition:
    trade_id: str
    side: PositionSide
    quantity: Decimal
    entry_price: Decimal
    entry_fee: Decimal


@dataclass
class Shadow:
    """What the ledger's balances must be, accumulated independently of it."""

    cash: Decimal = ZERO
    allocated: Decimal = ZERO
    gross: Decimal = ZERO
    fees: Decimal = ZERO


class PoolMachine(RuleBasedStateMachine):
    settled = Bundle("settled")

    def __init__(self) -> None:
        super().__init__()
        self.ledger: Ledger = make_ledger()
        self.members: tuple[str, ...] = ()
        self.units: dict[str, Decimal] = {}
        self.shadow = Shadow()
        self.allocs: dict[str, Allocation] = {}
        self.positions: dict[str, OpenPosition] = {}
        self.marks: dict[tuple[str, str, str], Decimal] = {}
        self.counter = 0
        self.entries: list[JournalEntry] = []

    # -- helpers ------------------------------------------------------------------------
    def next_id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def apply(self, entry: JournalEntry) -> None:
        assert entry.seq == self.ledger.seq + 1
        assert sum((line.amount_usd for line in entry.lines), ZERO) == 0
        self.ledger.apply(entry)
        self.entries.append(entry)

    def unrealized(self, allocation_id: str) -> Decimal:
        pos = self.positions.get(allocation_id)
        if pos is None:
            return ZERO
        alloc = self.allocs[allocation_id]
        mark = self.marks.get(alloc.instrument, pos.entry_price)
        move = mark - pos.entry_price
        return (move if pos.side == "long" else -move) * pos.quantity - pos.entry_fee

    def nav_per_unit(self) -> Decimal:
        return self.ledger.figures().nav_per_unit

    def equities(self) -> dict[str, Decimal]:
        return {name: self.ledger.member_equity_usd(name) for name in self.members}

    def check_unit_price_kept(
        self, member: str, amount_in: Decimal, before: dict[str, Decimal], npu: Decimal
    ) -> None:
        """After a contribution (``amount_in`` > 0) or a withdrawal (< 0) by ``member``."""
        units_after = self.ledger.units_outstanding
        if units_after == 0:
            assert self.ledger.nav_usd() == 0  # the last member took everything out
            return
        delta = self.nav_per_unit() - npu
        assert delta >= 0, f"NAV per unit fell by {-delta}"
        assert delta <= money.divide(npu * QUANTUM, units_after) + TINY, delta
        after = self.equities()
        change = after[member] - before[member]
        # the member gets their money's worth, less at most one unit quantum
        assert amount_in - npu * QUANTUM - TINY <= change <= amount_in + TINY, (change, amount_in)
        for other in self.members:
            if other != member:
                assert after[other] >= before[other] - TINY

    def position_fill(
        self, alloc: Allocation, permille: int, noise: int, fill_pct: int, rate: Decimal
    ) -> tuple[Decimal, Decimal, Decimal]:
        """(quantity, entry price, entry fee) using ``fill_pct`` % of the allocation."""
        price = price_near(INSTRUMENTS[alloc.instrument], permille, noise)
        budget = alloc.amount_usd * fill_pct / 100
        qty = money.quantity_down(money.divide(budget, price * (1 + rate)))
        return qty, price, money.charge(qty * price * rate)

    # -- operations ---------------------------------------------------------------------
    @initialize(n=st.integers(1, 4))
    def setup(self, n: int) -> None:
        self.members = MEMBERS[:n]
        self.ledger.members.update(self.members)

    @rule(who=st.integers(0, 3), cents=st.integers(5_000, 3_000_000))
    def contribute(self, who: int, cents: int) -> None:
        member = self.members[who % len(self.members)]
        amount = D(cents).scaleb(-2)
        npu, before, units_before = (
            self.nav_per_unit(),
            self.equities(),
            self.ledger.units_outstanding,
        )
        try:
            entry = self.ledger.contribution(self.next_id("c"), member, amount, START_NS)
        except InvalidInput:
            assert amount < self.ledger.rules.min_contribution_usd
            return
        issued = entry.lines[1].units
        if units_before == 0:
            assert issued == amount
        else:
            exact = money.divide(amount * units_before, self.ledger.nav_usd())
            assert exact - QUANTUM < issued <= exact
        self.apply(entry)
        self.units[member] = self.units.get(member, ZERO) + issued
        self.shadow.cash += amount
        if units_before > 0:
            self.check_unit_price_kept(member, amount, before, npu)

    @rule(who=st.integers(0, 3), pct=st.integers(1, 130), whole=st.booleans())
    def withdraw(self, who: int, pct: int, whole: bool) -> None:
        member = self.members[who % len(self.members)]
        equity = self.ledger.member_equity_usd(member)
        amount = money.pay(equity if whole else equity * pct / 100, money.CENT)
        if amount <= 0:
            return
        npu, before = self.nav_per_unit(), self.equities()
        units_before, cash_before = self.ledger.units_outstanding, self.ledger.cash_usd
        try:
            entry = self.ledger.withdrawal(self.next_id("w"), member, amount, START_NS)
        except InvalidInput:
            assert amount > equity or amount > cash_before
            return
        assert amount <= equity and amount <= cash_before
        burned = -entry.lines[1].units
        exact = money.divide(amount * units_before, self.ledger.nav_usd())
        assert exact <= burned < exact + QUANTUM
        assert burned <= self.units[member]
        self.apply(entry)
        self.units[member] -= burned
        self.shadow.cash -= amount
        self.check_unit_price_kept(member, -amount, before, npu)

    @rule(
        stop=st.sampled_from(["0.5", "1", "2", "3.5", "5", "10", "25"]),
        side=st.sampled_from(["long", "short"]),
        instrument=st.sampled_from(sorted(INSTRUMENTS)),
    )
    def allocate(self, stop: str, side: PositionSide, instrument: tuple[str, str, str]) -> None:
        nav, allocated = self.ledger.nav_usd(), self.ledger.allocated_usd
        ratio = self.ledger.rules.max_active_ratio
        decision = self.ledger.size_allocation(D(stop))
        assert decision.nav_usd == nav
        if decision.refusal_code is not None:
            assert decision.amount_usd == 0
            if decision.refusal_code == "active_cap":
                assert allocated >= money.pay(nav * ratio) - QUANTUM
            elif decision.refusal_code == "no_phase":
                assert nav < 100
            return
        phase = self.ledger.rules.phase_for(nav)
        assert phase is not None and decision.risk_per_trade == phase.risk_per_trade
        assert decision.sized_usd == money.pay(nav * phase.risk_per_trade * 100 / D(stop))
        assert decision.amount_usd <= decision.sized_usd
        assert decision.reduced == (decision.amount_usd < decision.sized_usd)
        assert decision.amount_usd >= self.ledger.rules.min_allocation_usd
        alloc = Allocation(
            allocation_id=self.next_id("a"),
            strategy="prop",
            exchange=instrument[0],
            market=instrument[1],  # type: ignore[arg-type]
            symbol=instrument[2],
            side=side,
            amount_usd=decision.amount_usd,
            granted_ts_ns=START_NS,
        )
        self.apply(self.ledger.allocation(alloc))
        self.ledger.add_allocation(alloc)
        self.allocs[alloc.allocation_id] = alloc
        self.shadow.cash -= alloc.amount_usd
        self.shadow.allocated += alloc.amount_usd
        assert self.ledger.allocated_usd <= ratio * nav
        assert self.ledger.nav_usd() == nav

    @rule(
        pick=st.integers(0, 1_000),
        permille=st.integers(800, 1250),
        noise=st.integers(0, 10**8 - 1),
        fill_pct=st.integers(1, 99),
        rate=st.sampled_from(FEE_RATES),
    )
    def open_position(
        self, pick: int, permille: int, noise: int, fill_pct: int, rate: Decimal
    ) -> None:
        idle = sorted(a for a in self.allocs if a not in self.positions)
        if not idle:
            return
        alloc = self.allocs[idle[pick % len(idle)]]
        qty, price, fee = self.position_fill(alloc, permille, noise, fill_pct, rate)
        if qty <= 0:
            return
        trade_id = self.next_id("t")
        opened = opened_for(alloc, trade_id, qty, price, fee)
        updated = self.ledger.check_opened(opened)
        assert updated is not None
        self.ledger.add_allocation(updated)
        self.positions[alloc.allocation_id] = OpenPosition(trade_id, alloc.side, qty, price, fee)
        assert self.ledger.check_opened(opened) is None  # recorded once

    @rule(
        target=settled,
        pick=st.integers(0, 1_000),
        permille=st.integers(600, 1500),
        noise=st.integers(0, 10**8 - 1),
        rate=st.sampled_from(FEE_RATES),
        fill_pct=st.integers(1, 99),
        filled=st.booleans(),
    )
    def close_trade(
        self, pick: int, permille: int, noise: int, rate: Decimal, fill_pct: int, filled: bool
    ) -> TradeClosed | None:
        candidates = sorted(self.positions if filled and self.positions else self.allocs)
        if not candidates:
            return None
        allocation_id = candidates[pick % len(candidates)]
        alloc = self.allocs[allocation_id]
        pos = self.positions.get(allocation_id)
        if pos is None:  # a result with no PositionOpened seen first
            qty, entry_price, entry_fee = self.position_fill(alloc, 1000, noise, fill_pct, rate)
            if qty <= 0:
                return None
            pos = OpenPosition(self.next_id("t"), alloc.side, qty, entry_price, entry_fee)
        exit_price = price_near(INSTRUMENTS[alloc.instrument], permille, noise)
        fees = pos.entry_fee + money.charge(pos.quantity * exit_price * rate)
        move = exit_price - pos.entry_price
        gross = (move if pos.side == "long" else -move) * pos.quantity
        closed = TradeClosed(
            trade_id=pos.trade_id,
            allocation_id=allocation_id,
            strategy=alloc.strategy,
            exchange=alloc.exchange,
            market=alloc.market,
            symbol=alloc.symbol,
            side=pos.side,
            quantity=pos.quantity,
            entry_price=pos.entry_price,
            exit_price=exit_price,
            fees_usd=fees,
            realized_pnl_usd=gross - fees,
            opened_ts_ns=START_NS,
            closed_ts_ns=START_NS + 1,
            exit_reason="signal",
        )
        nav_before = self.ledger.nav_usd()
        replaced = self.unrealized(allocation_id)
        entry = self.ledger.settlement(closed)
        assert entry is not None
        self.apply(entry)
        self.ledger.release_allocation(allocation_id)
        del self.allocs[allocation_id]
        self.positions.pop(allocation_id, None)
        self.shadow.cash += alloc.amount_usd + gross - fees
        self.shadow.allocated -= alloc.amount_usd
        self.shadow.gross += gross
        self.shadow.fees += fees
        assert self.ledger.nav_usd() - nav_before == closed.realized_pnl_usd - replaced
        return closed

    @rule(closed=consumes(settled))
    def replay_trade(self, closed: TradeClosed | None) -> None:
        if closed is None:
            return
        seq, balances, units = (
            self.ledger.seq,
            dict(self.ledger.balances),
            dict(self.ledger.member_units),
        )
        nav = self.ledger.nav_usd()
        assert self.ledger.settlement(closed) is None
        assert self.ledger.seq == seq
        assert self.ledger.balances == balances
        assert self.ledger.member_units == units
        assert self.ledger.nav_usd() == nav

    @rule(pick=st.integers(0, 1_000))
    def return_unused(self, pick: int) -> None:
        idle = sorted(a for a in self.allocs if a not in self.positions)
        if not idle:
            return
        allocation_id = idle[pick % len(idle)]
        amount = self.allocs[allocation_id].amount_usd
        nav = self.ledger.nav_usd()
        entry = self.ledger.return_unused(allocation_id, "not placed", START_NS)
        assert entry is not None
        self.apply(entry)
        self.ledger.release_allocation(allocation_id)
        del self.allocs[allocation_id]
        self.shadow.cash += amount
        self.shadow.allocated -= amount
        assert self.ledger.nav_usd() == nav
        assert self.ledger.return_unused(allocation_id, "again", START_NS) is None

    @rule(
        instrument=st.sampled_from(sorted(INSTRUMENTS)),
        permille=st.integers(600, 1500),
        noise=st.integers(0, 10**8 - 1),
    )
    def mark(self, instrument: tuple[str, str, str], permille: int, noise: int) -> None:
        price = price_near(INSTRUMENTS[instrument], permille, noise)
        units = dict(self.ledger.member_units)
        self.ledger.mark(instrument, price)
        self.marks[instrument] = price
        assert self.ledger.member_units == units

    # -- invariants ---------------------------------------------------------------------
    @invariant()
    def journal_balances(self) -> None:
        assert all(sum((ln.amount_usd for ln in e.lines), ZERO) == 0 for e in self.entries)
        assert sum(self.ledger.balances.values(), ZERO) == 0
        assert [e.seq for e in self.entries] == list(range(1, len(self.entries) + 1))

    @invariant()
    def balances_match_shadow(self) -> None:
        ledger, shadow = self.ledger, self.shadow
        assert ledger.cash_usd == shadow.cash
        assert ledger.cash_usd >= 0
        assert ledger.allocated_usd == shadow.allocated
        assert ledger.allocated_usd == sum((a.amount_usd for a in self.allocs.values()), ZERO)
        assert ledger.balance(REALIZED_PNL) == -shadow.gross
        assert ledger.balance(FEES) == shadow.fees
        assert {m: u for m, u in ledger.member_units.items() if u} == {
            m: u for m, u in self.units.items() if u
        }
        member_total = sum(
            (v for k, v in ledger.balances.items() if k.startswith(MEMBER_PREFIX)), ZERO
        )
        assert -member_total == shadow.cash + shadow.allocated - shadow.gross + shadow.fees

    @invariant()
    def nav_is_cash_allocated_unrealized(self) -> None:
        unrealized = sum((self.unrealized(a) for a in self.allocs), ZERO)
        assert self.ledger.unrealized_pnl_usd() == unrealized
        nav = self.ledger.nav_usd()
        assert nav == self.shadow.cash + self.shadow.allocated + unrealized
        figures = self.ledger.figures()
        assert figures.nav_usd == nav
        assert figures.units == sum(self.units.values(), ZERO)

    @invariant()
    def equity_adds_up_to_nav(self) -> None:
        units = self.ledger.units_outstanding
        if units == 0:
            return
        nav = self.ledger.nav_usd()
        total = sum(
            (money.equity_usd(u, nav, units) for u in self.ledger.member_units.values()), ZERO
        )
        assert abs(total - nav) < TINY, total - nav


PoolMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestPoolInvariants = PoolMachine.TestCase
