"""The pool's ledger: double-entry journal, unitized ownership, no I/O.

Accounts (amount > 0 is a debit, < 0 a credit; every entry sums to zero)::

    asset:cash              free cash
    asset:allocated         capital out in trades, at cost
    equity:member:<name>    a member's contributed capital; its lines carry units
    income:realized_pnl     gross price PnL of closed trades
    expense:fees            trading fees

NAV = cash + allocated + unrealized PnL of open positions at their marks.
NAV per unit = NAV / units outstanding. Units are issued and burned at that price with
the rounding of :mod:`corec.core.money`, so a contribution or withdrawal never moves
NAV per unit against the other members (the rounding dust stays in the pool).

:class:`Ledger` validates a command against its state, returns the
:class:`JournalEntry` to write, and only changes state in :meth:`Ledger.apply` — the
caller applies an entry after it has been stored. Every entry is identified by
``seq`` (gapless, for optimistic concurrency) and ``ref`` (idempotency key).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import Context, Decimal

from corec.core import money
from corec.core.errors import InvalidEvent
from corec.messages.exchange_data import Market
from corec.messages.trading_results import PositionOpened, PositionSide, TradeClosed
from corec.plugins.capital_pool.errors import (
    BelowMinimum,
    Insolvent,
    InsufficientEquity,
    InsufficientFreeCash,
    InvalidAmount,
    UnknownMember,
)

CASH = "asset:cash"
ALLOCATED = "asset:allocated"
REALIZED_PNL = "income:realized_pnl"
FEES = "expense:fees"
MEMBER_PREFIX = "equity:member:"
ZERO = Decimal(0)
_EXACT = Context(prec=60)
MAX_AMOUNT_USD = Decimal(10) ** 15
"""Largest contribution or withdrawal accepted (well inside NUMERIC(38, 18))."""

InstrumentKey = tuple[str, str, str]
"""(exchange, market, symbol)"""


def member_account(member: str) -> str:
    """The equity account of ``member``."""
    return f"{MEMBER_PREFIX}{member}"


@dataclass(frozen=True)
class Line:
    """One journal line: ``amount_usd`` (debit > 0, credit < 0) and, on member
    accounts, ``units`` issued (> 0) or burned (< 0)."""

    account: str
    amount_usd: Decimal
    units: Decimal = ZERO


@dataclass(frozen=True)
class JournalEntry:
    """A balanced set of lines with its sequence number and idempotency reference.

    Raises:
        ValueError: the lines do not sum to zero, or there are fewer than two.
    """

    seq: int
    ts_ns: int
    kind: str
    ref: str
    memo: str
    lines: tuple[Line, ...]

    def __post_init__(self) -> None:
        if len(self.lines) < 2:
            raise ValueError(f"journal entry {self.ref}: needs at least two lines")
        total = money.add(*(line.amount_usd for line in self.lines))
        if total != 0:
            raise ValueError(f"journal entry {self.ref}: debits and credits differ by {total}")


@dataclass(frozen=True)
class Position:
    """An open position funded by an allocation (from ``PositionOpened``)."""

    trade_id: str
    side: PositionSide
    quantity: Decimal
    entry_price: Decimal
    entry_fee_usd: Decimal
    opened_ts_ns: int

    def unrealized_pnl_usd(self, mark: Decimal | None) -> Decimal:
        """``(mark - entry) × qty`` (sign flipped for shorts) minus the entry fee
        already paid; at the entry price when no mark is known."""
        price = self.entry_price if mark is None else mark
        move = money.add(price, -self.entry_price)
        gross = money.multiply(move if self.side == "long" else -move, self.quantity)
        return money.add(gross, -self.entry_fee_usd)


@dataclass(frozen=True)
class Allocation:
    """Capital set aside for one trade; ``position`` is set once it is filled."""

    allocation_id: str
    strategy: str
    exchange: str
    market: Market
    symbol: str
    side: PositionSide
    amount_usd: Decimal
    granted_ts_ns: int
    position: Position | None = None

    @property
    def instrument(self) -> InstrumentKey:
        """(exchange, market, symbol)"""
        return (self.exchange, self.market, self.symbol)


@dataclass(frozen=True)
class Phase:
    """A capital band: from ``min_nav_usd`` up, ``risk_per_trade`` (fraction) applies."""

    name: str
    min_nav_usd: Decimal
    risk_per_trade: Decimal


@dataclass(frozen=True)
class Rules:
    """The pool's limits (from configuration).

    Fields:
        min_contribution_usd: smallest contribution accepted.
        max_active_ratio: allocated capital may not exceed this fraction of NAV.
        min_allocation_usd: a grant smaller than this is refused instead.
        phases: capital bands, any order.
    """

    min_contribution_usd: Decimal
    max_active_ratio: Decimal
    min_allocation_usd: Decimal
    phases: tuple[Phase, ...]

    def phase_for(self, nav_usd: Decimal) -> Phase | None:
        """The band whose ``min_nav_usd`` is the highest not above ``nav_usd``."""
        eligible = [p for p in self.phases if p.min_nav_usd <= nav_usd]
        return max(eligible, key=lambda p: p.min_nav_usd) if eligible else None


@dataclass(frozen=True)
class PoolFigures:
    """The pool at one moment (all USD; ``nav_per_unit`` unrounded)."""

    nav_usd: Decimal
    nav_per_unit: Decimal
    units: Decimal
    cash_usd: Decimal
    allocated_usd: Decimal
    unrealized_pnl_usd: Decimal
    phase: str
    risk_per_trade: Decimal
    active_ratio: Decimal


@dataclass(frozen=True)
class AllocationDecision:
    """The outcome of sizing: ``amount_usd`` > 0 to grant, else ``refusal``."""

    amount_usd: Decimal
    sized_usd: Decimal
    reduced: bool
    nav_usd: Decimal
    risk_per_trade: Decimal
    refusal_code: str | None = None
    refusal: str | None = None


def require_cents(amount_usd: Decimal, what: str) -> None:
    """Raise :class:`InvalidAmount` unless ``amount_usd`` is a positive whole-cent amount."""
    if not amount_usd.is_finite() or amount_usd <= 0:
        raise InvalidAmount(f"{what}: amount must be a positive number of USD, got {amount_usd}")
    if amount_usd >= MAX_AMOUNT_USD:
        raise InvalidAmount(
            f"{what}: amount must be below {MAX_AMOUNT_USD:,} USD, got {amount_usd}"
        )
    if amount_usd != amount_usd.quantize(money.CENT):
        raise InvalidAmount(f"{what}: amount must be in whole cents, got {amount_usd}")


@dataclass
class Ledger:
    """In-memory state of the pool, rebuilt from the journal (see module docstring)."""

    rules: Rules
    seq: int = 0
    balances: dict[str, Decimal] = field(default_factory=dict)
    member_units: dict[str, Decimal] = field(default_factory=dict)
    members: set[str] = field(default_factory=set)
    refs: set[str] = field(default_factory=set)
    allocations: dict[str, Allocation] = field(default_factory=dict)
    marks: dict[InstrumentKey, Decimal] = field(default_factory=dict)

    # -- reading ---------------------------------------------------------------------
    def balance(self, account: str) -> Decimal:
        """Debit-positive balance of ``account``."""
        return self.balances.get(account, ZERO)

    @property
    def cash_usd(self) -> Decimal:
        """Free cash."""
        return self.balance(CASH)

    @property
    def allocated_usd(self) -> Decimal:
        """Capital out in trades, at cost."""
        return self.balance(ALLOCATED)

    @property
    def units_outstanding(self) -> Decimal:
        """Sum of every member's units."""
        return sum(self.member_units.values(), ZERO)

    def unrealized_pnl_usd(self) -> Decimal:
        """Open positions at their marks, entry fees deducted."""
        return money.add(
            *(
                alloc.position.unrealized_pnl_usd(self.marks.get(alloc.instrument))
                for alloc in self.allocations.values()
                if alloc.position is not None
            )
        )

    def nav_usd(self) -> Decimal:
        """cash + allocated + unrealized PnL."""
        return money.add(self.cash_usd, self.allocated_usd, self.unrealized_pnl_usd())

    def figures(self) -> PoolFigures:
        """Every headline figure of the pool now."""
        nav = self.nav_usd()
        units = self.units_outstanding
        phase = self.rules.phase_for(nav)
        return PoolFigures(
            nav_usd=nav,
            nav_per_unit=money.nav_per_unit(nav, units),
            units=units,
            cash_usd=self.cash_usd,
            allocated_usd=self.allocated_usd,
            unrealized_pnl_usd=money.add(nav, -self.cash_usd, -self.allocated_usd),
            phase=phase.name if phase else "none",
            risk_per_trade=phase.risk_per_trade if phase else ZERO,
            active_ratio=money.divide(self.allocated_usd, nav) if nav > 0 else ZERO,
        )

    def member_equity_usd(self, member: str) -> Decimal:
        """``member``'s units × NAV per unit (unrounded)."""
        return money.equity_usd(
            self.member_units.get(member, ZERO), self.nav_usd(), self.units_outstanding
        )

    # -- commands: validate and build the entry (state unchanged) ---------------------
    def _entry(
        self, ts_ns: int, kind: str, ref: str, memo: str, lines: Iterable[Line]
    ) -> JournalEntry:
        return JournalEntry(
            seq=self.seq + 1, ts_ns=ts_ns, kind=kind, ref=ref, memo=memo, lines=tuple(lines)
        )

    def _require_member(self, member: str) -> None:
        if member not in self.members:
            known = ", ".join(sorted(self.members)) or "none yet"
            raise UnknownMember(f"unknown member {member!r}; members are: {known}")

    def contribution(
        self, contribution_id: str, member: str, amount_usd: Decimal, ts_ns: int
    ) -> JournalEntry:
        """Entry for ``member`` paying ``amount_usd`` in (units at the current NAV, rounded down).

        Raises:
            UnknownMember, InvalidAmount, BelowMinimum, Insolvent.
        """
        self._require_member(member)
        require_cents(amount_usd, f"contribution {contribution_id}")
        if amount_usd < self.rules.min_contribution_usd:
            raise BelowMinimum(
                f"contribution {contribution_id}: {amount_usd} USD is below the minimum of "
                f"{self.rules.min_contribution_usd} USD"
            )
        units_out = self.units_outstanding
        try:
            units = money.units_to_issue(amount_usd, self.nav_usd(), units_out)
        except ValueError as exc:
            raise Insolvent(f"contribution {contribution_id}: {exc}") from exc
        if units <= 0:
            raise InvalidAmount(f"contribution {contribution_id}: {amount_usd} USD buys no units")
        return self._entry(
            ts_ns,
            "contribution",
            f"contribution:{contribution_id}",
            f"{member} contributes {amount_usd} USD",
            [Line(CASH, amount_usd), Line(member_account(member), -amount_usd, units)],
        )

    def check_withdrawable(
        self,
        withdrawal_id: str,
        member: str,
        amount_usd: Decimal,
        already_queued_usd: Decimal = ZERO,
    ) -> None:
        """Check that ``member`` may withdraw ``amount_usd`` on top of the amounts they
        already have queued (free cash aside).

        Raises:
            UnknownMember, InvalidAmount, InsufficientEquity.
        """
        self._require_member(member)
        require_cents(amount_usd, f"withdrawal {withdrawal_id}")
        equity = self.member_equity_usd(member)
        if amount_usd + already_queued_usd > equity:
            queued = f" with {already_queued_usd} USD already queued" if already_queued_usd else ""
            raise InsufficientEquity(
                f"withdrawal {withdrawal_id}: {amount_usd} USD{queued} is more than {member}'s "
                f"equity of {money.pay(equity, money.CENT)} USD"
            )

    def withdrawal(
        self,
        withdrawal_id: str,
        member: str,
        amount_usd: Decimal,
        ts_ns: int,
        kind: str = "withdrawal",
    ) -> JournalEntry:
        """Entry for paying ``amount_usd`` out to ``member`` (units burned rounded up).

        Args:
            kind: ``withdrawal`` (asked for by the member) or ``distribution`` (their
                share of a day's realized profit, paid by the daily settlement): the
                same redemption at NAV per unit, journaled under its own kind and ref.

        Raises:
            UnknownMember, InvalidAmount, InsufficientEquity, InsufficientFreeCash.
        """
        self.check_withdrawable(withdrawal_id, member, amount_usd)
        if amount_usd > self.cash_usd:
            raise InsufficientFreeCash(
                f"withdrawal {withdrawal_id}: {amount_usd} USD is more than the pool's free cash of "
                f"{money.pay(self.cash_usd, money.CENT)} USD (the rest is allocated to open trades)"
            )
        units = money.units_to_burn(amount_usd, self.nav_usd(), self.units_outstanding)
        held = self.member_units.get(member, ZERO)
        if units > held:  # unreachable when amount <= equity; kept as a guard
            raise InsufficientEquity(
                f"withdrawal {withdrawal_id}: needs {units} units, {member} holds {held}"
            )
        return self._entry(
            ts_ns,
            kind,
            f"{kind}:{withdrawal_id}",
            f"{member} {kind}: {amount_usd} USD",
            [Line(CASH, -amount_usd), Line(member_account(member), amount_usd, -units)],
        )

    def distribution(
        self, distribution_id: str, member: str, amount_usd: Decimal, ts_ns: int
    ) -> JournalEntry:
        """Entry paying ``member`` their share of a day's realized profit: a redemption
        of units at NAV per unit, like :meth:`withdrawal` (same errors)."""
        return self.withdrawal(distribution_id, member, amount_usd, ts_ns, "distribution")

    def size_allocation(
        self,
        stop_loss_pct: Decimal,
        risk_multiplier: Decimal = Decimal(1),
        reserved_usd: Decimal = ZERO,
    ) -> AllocationDecision:
        """How much to grant a trade with a stop ``stop_loss_pct`` percent away.

        Formula: ``NAV × risk_per_trade × risk_multiplier ÷ (stop_loss_pct / 100)``
        (the multiplier is the macro cut, 1 when none applies), then cut to keep
        ``allocated ≤ max_active_ratio × NAV`` and to the free cash less ``reserved_usd``
        (owed to queued withdrawals, paid first); refused when the
        pool has no phase (NAV below the lowest band), nothing is left under the cap,
        or the result is below ``min_allocation_usd``.
        """
        nav = self.nav_usd()
        phase = self.rules.phase_for(nav)
        risk = money.multiply(phase.risk_per_trade, risk_multiplier) if phase else ZERO
        base = AllocationDecision(ZERO, ZERO, False, nav, risk)
        if phase is None:
            lowest = min((p.min_nav_usd for p in self.rules.phases), default=ZERO)
            return replace(
                base,
                refusal_code="no_phase",
                refusal=f"NAV {money.pay(nav, money.CENT)} USD is below {lowest} USD",
            )
        sized = money.pay(money.divide(money.multiply(nav, risk) * 100, stop_loss_pct))
        headroom = money.pay(money.multiply(nav, self.rules.max_active_ratio) - self.allocated_usd)
        amount = min(sized, headroom, money.pay(self.cash_usd - reserved_usd))
        decision = replace(base, amount_usd=amount, sized_usd=sized, reduced=amount < sized)
        if headroom <= 0:
            return replace(
                decision,
                amount_usd=ZERO,
                refusal_code="active_cap",
                refusal=f"allocated capital is at the {self.rules.max_active_ratio * 100}% cap of NAV",
            )
        if amount <= 0:
            why = "no free cash" + (" (kept for queued withdrawals)" if reserved_usd > 0 else "")
            return replace(decision, amount_usd=ZERO, refusal_code="no_free_cash", refusal=why)
        if amount < self.rules.min_allocation_usd:
            return replace(
                decision,
                amount_usd=ZERO,
                refusal_code="too_small",
                refusal=f"{amount} USD is below the minimum allocation of {self.rules.min_allocation_usd} USD",
            )
        return decision

    def allocation(self, allocation: Allocation) -> JournalEntry:
        """Entry moving ``allocation.amount_usd`` from cash to allocated."""
        if allocation.amount_usd > self.cash_usd:
            raise InsufficientFreeCash(
                f"allocation {allocation.allocation_id}: more than free cash"
            )
        return self._entry(
            allocation.granted_ts_ns,
            "allocation",
            f"allocation:{allocation.allocation_id}",
            f"{allocation.strategy} {allocation.side} {allocation.symbol}",
            [Line(ALLOCATED, allocation.amount_usd), Line(CASH, -allocation.amount_usd)],
        )

    def check_opened(self, opened: PositionOpened) -> Allocation | None:
        """The allocation with its new position, or ``None`` if already recorded (or
        already settled: delivery is at-least-once).

        Raises:
            InvalidEvent: unknown or released allocation, a mismatching instrument or
                side, or a fill that costs more than the allocation.
        """
        alloc = self.allocations.get(opened.allocation_id)
        if alloc is None:
            if f"trade:{opened.trade_id}" in self.refs:
                return None  # delivered again after its trade settled
            raise InvalidEvent(
                f"position {opened.trade_id}: allocation {opened.allocation_id} is not open"
            )
        if alloc.position is not None:
            if alloc.position.trade_id == opened.trade_id:
                return None
            raise InvalidEvent(
                f"position {opened.trade_id}: allocation {opened.allocation_id} already funds {alloc.position.trade_id}"
            )
        if (opened.exchange, opened.market, opened.symbol, opened.side) != (
            *alloc.instrument,
            alloc.side,
        ):
            raise InvalidEvent(
                f"position {opened.trade_id}: instrument or side differs from its allocation"
            )
        cost = opened.quantity * opened.entry_price + opened.entry_fee_usd
        if cost > alloc.amount_usd:
            raise InvalidEvent(
                f"position {opened.trade_id}: costs {cost} USD, more than its allocation of {alloc.amount_usd} USD"
            )
        position = Position(
            trade_id=opened.trade_id,
            side=opened.side,
            quantity=opened.quantity,
            entry_price=opened.entry_price,
            entry_fee_usd=opened.entry_fee_usd,
            opened_ts_ns=opened.opened_ts_ns,
        )
        return replace(alloc, position=position)

    def settlement(self, closed: TradeClosed, ts_ns: int | None = None) -> JournalEntry | None:
        """Entry settling a closed trade, or ``None`` if it was applied already.

        Args:
            ts_ns: when it is booked (the node clock as the result is applied; default
                the trade's close). Every entry is stamped by its booking, so the
                journal's time order is its ``seq`` order and a result that arrives
                after its day closed counts in the day it was booked.

        Lines: cash +(allocation + gross − fees), allocated −allocation,
        realized PnL −gross, fees +fees, booked exactly (8-decimal prices and
        quantities give at most 16 decimals, inside the stored NUMERIC(38, 18)).

        Raises:
            InvalidEvent: the allocation is unknown, or the trade does not match it.
        """
        ref = f"trade:{closed.trade_id}"
        if ref in self.refs:
            return None
        alloc = self.allocations.get(closed.allocation_id)
        if alloc is None:
            raise InvalidEvent(
                f"trade {closed.trade_id}: allocation {closed.allocation_id} is not open"
            )
        if (closed.exchange, closed.market, closed.symbol, closed.side) != (
            *alloc.instrument,
            alloc.side,
        ):
            raise InvalidEvent(
                f"trade {closed.trade_id}: instrument or side differs from its allocation"
            )
        for other in self.allocations.values():
            if other is not alloc and other.position and other.position.trade_id == closed.trade_id:
                raise InvalidEvent(
                    f"trade {closed.trade_id}: is the position of allocation "
                    f"{other.allocation_id}, not of {closed.allocation_id}"
                )
        pos = alloc.position
        if pos is not None and (pos.trade_id != closed.trade_id or pos.quantity != closed.quantity):
            raise InvalidEvent(
                f"trade {closed.trade_id}: does not match the open position {pos.trade_id}"
            )
        gross, fees = closed.gross_pnl_usd, closed.fees_usd
        for name, value in (("gross PnL", gross), ("fees", fees)):
            if value != value.quantize(money.STORED_QUANTUM, context=_EXACT):
                raise InvalidEvent(
                    f"trade {closed.trade_id}: {name} {value} has more than 18 decimals and "
                    "cannot be stored exactly (prices and quantities take at most 8)"
                )
        returned = money.add(alloc.amount_usd, gross, -fees)
        return self._entry(
            closed.closed_ts_ns if ts_ns is None else ts_ns,
            "settlement",
            ref,
            f"{closed.side} {closed.symbol} {closed.exit_reason}: {closed.realized_pnl_usd} USD",
            [
                Line(CASH, returned),
                Line(ALLOCATED, -alloc.amount_usd),
                Line(REALIZED_PNL, -gross),
                Line(FEES, fees),
            ],
        )

    def return_unused(self, allocation_id: str, reason: str, ts_ns: int) -> JournalEntry | None:
        """Entry giving an unused allocation back to cash, or ``None`` if done already.

        Raises:
            InvalidEvent: the allocation is unknown, or a position was opened with it.
        """
        ref = f"unused:{allocation_id}"
        if ref in self.refs:
            return None
        alloc = self.allocations.get(allocation_id)
        if alloc is None:
            raise InvalidEvent(f"allocation {allocation_id} is not open")
        if alloc.position is not None:
            raise InvalidEvent(
                f"allocation {allocation_id} funds position {alloc.position.trade_id}"
            )
        return self._entry(
            ts_ns,
            "allocation_unused",
            ref,
            f"unused: {reason}"[:256],
            [Line(CASH, alloc.amount_usd), Line(ALLOCATED, -alloc.amount_usd)],
        )

    # -- state changes -----------------------------------------------------------------
    def apply(self, entry: JournalEntry) -> None:
        """Apply a stored entry to the in-memory state.

        Raises:
            ValueError: ``entry.seq`` is not the next sequence number.
        """
        if entry.seq != self.seq + 1:
            raise ValueError(f"entry {entry.ref} has seq {entry.seq}, expected {self.seq + 1}")
        for line in entry.lines:
            self.balances[line.account] = money.add(self.balance(line.account), line.amount_usd)
            if line.account.startswith(MEMBER_PREFIX) and line.units:
                member = line.account[len(MEMBER_PREFIX) :]
                self.member_units[member] = money.add(
                    self.member_units.get(member, ZERO), line.units
                )
        self.refs.add(entry.ref)
        self.seq = entry.seq

    def add_allocation(self, allocation: Allocation) -> None:
        """Track a granted allocation (after its entry is stored)."""
        self.allocations[allocation.allocation_id] = allocation

    def release_allocation(self, allocation_id: str) -> Allocation | None:
        """Stop tracking a settled allocation; returns it."""
        return self.allocations.pop(allocation_id, None)

    def mark(self, instrument: InstrumentKey, price: Decimal) -> None:
        """Record the latest price of an instrument for unrealized PnL."""
        self.marks[instrument] = price
