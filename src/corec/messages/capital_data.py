"""``capital_data`` and the ``capital_pool.allocate`` endpoint.

Published by capital_pool: pool state after every ledger change, contributions,
withdrawals, allocations granted and released, phase changes. Money in USD; units and
NAV per unit to 8 decimals (see :mod:`corec.core.money`). Ratios are fractions
(``0.6`` = 60 %); percents are named ``*_pct``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar, Final, Literal

import msgspec

from corec.core.events import Payload
from corec.core.queries import DEFAULT_PAGE_LIMIT
from corec.messages._checks import (
    require_finite,
    require_non_negative,
    require_positive,
    require_text,
)
from corec.messages.exchange_data import Market
from corec.messages.trading_results import PositionSide

ALLOCATE: Final = "capital_pool.allocate"
"""Request endpoint: :class:`AllocationRequest` → :class:`AllocationGranted` | :class:`AllocationRefused`."""

CLOSE_DAY: Final = "capital_pool.close_day"
"""Request endpoint: :class:`DayCloseRequest` → :class:`DayClose` (the pool at a day's
cut-off, and the distributions paid for it; daily_settlement's source)."""

FlowKind = Literal["contribution", "withdrawal", "distribution"]

OPEN_ALLOCATIONS: Final = "capital_pool.open_allocations"
"""Request endpoint: :class:`OpenAllocationsRequest` → :class:`OpenAllocations` (what the
pool holds as allocated, so a strategy host can reconcile after a restart)."""


class AllocationRequest(Payload, frozen=True, kw_only=True):
    """A strategy asks for capital for one trade.

    Fields:
        strategy, exchange, market, symbol, side: the intended trade.
        stop_loss_pct: distance of the stop from entry in percent (2 = 2 %); the grant
            is sized so that hitting the stop loses ``NAV × risk_per_trade``.
    """

    TYPE: ClassVar[str] = "allocation_request"
    strategy: str
    exchange: str
    market: Market
    symbol: str
    side: PositionSide
    stop_loss_pct: Decimal

    def __post_init__(self) -> None:
        require_text("strategy", self.strategy)
        require_positive("stop_loss_pct", self.stop_loss_pct)
        if self.stop_loss_pct >= 100:
            raise ValueError(f"stop_loss_pct must be below 100, got {self.stop_loss_pct}")


class AllocationGranted(Payload, frozen=True, kw_only=True):
    """Capital set aside for one trade (reply to ``capital_pool.allocate``, and an event).

    Fields:
        allocation_id: quote it in the trade's results.
        amount_usd: capital granted; it must cover the entry notional and fee.
        nav_usd, risk_per_trade: the figures it was sized from.
        reduced: true when the 60 % active cap (or free cash) cut the sized amount.
    """

    TYPE: ClassVar[str] = "allocation_granted"
    allocation_id: str
    strategy: str
    exchange: str
    market: Market
    symbol: str
    side: PositionSide
    amount_usd: Decimal
    nav_usd: Decimal
    risk_per_trade: Decimal
    reduced: bool

    def __post_init__(self) -> None:
        require_positive("amount_usd", self.amount_usd)


RefusalCode = Literal["no_phase", "active_cap", "no_free_cash", "too_small", "insolvent"]


class AllocationRefused(Payload, frozen=True, kw_only=True):
    """Reply to ``capital_pool.allocate`` when nothing can be granted.

    Fields:
        code: machine-readable reason; ``reason``: the sentence for people.
    """

    TYPE: ClassVar[str] = "allocation_refused"
    code: RefusalCode
    reason: str


class AllocationReleased(Payload, frozen=True, kw_only=True):
    """An allocation came back to the pool with its trade's result.

    Fields:
        returned_usd: ``amount_usd + realized_pnl_usd`` (what flowed back to cash).
    """

    TYPE: ClassVar[str] = "allocation_released"
    allocation_id: str
    trade_id: str
    amount_usd: Decimal
    realized_pnl_usd: Decimal
    returned_usd: Decimal


class ContributionRecorded(Payload, frozen=True, kw_only=True):
    """Money in: ``units`` issued to ``member`` at ``nav_per_unit`` (rounded down)."""

    TYPE: ClassVar[str] = "contribution_recorded"
    contribution_id: str
    member: str
    amount_usd: Decimal
    units: Decimal
    nav_per_unit: Decimal

    def __post_init__(self) -> None:
        require_positive("amount_usd", self.amount_usd)
        require_non_negative("units", self.units)


class WithdrawalRecorded(Payload, frozen=True, kw_only=True):
    """Money out: ``units`` burned from ``member`` at ``nav_per_unit`` (rounded up)."""

    TYPE: ClassVar[str] = "withdrawal_recorded"
    withdrawal_id: str
    member: str
    amount_usd: Decimal
    units: Decimal
    nav_per_unit: Decimal

    def __post_init__(self) -> None:
        require_positive("amount_usd", self.amount_usd)
        require_positive("units", self.units)


class DistributionRecorded(Payload, frozen=True, kw_only=True):
    """A member who does not reinvest was paid their share of a day's realized profit:
    ``units`` burned at ``nav_per_unit`` (rounded up), like a withdrawal.

    Fields:
        distribution_id: ``<date>:<member>`` (one per member and settled day).
    """

    TYPE: ClassVar[str] = "distribution_recorded"
    distribution_id: str
    member: str
    amount_usd: Decimal
    units: Decimal
    nav_per_unit: Decimal

    def __post_init__(self) -> None:
        require_positive("amount_usd", self.amount_usd)
        require_positive("units", self.units)


class WithdrawalQueued(Payload, frozen=True, kw_only=True):
    """A withdrawal waiting for free cash (the rest is out in trades).

    Queued withdrawals are paid first-in first-out as allocations are released, each at
    the NAV per unit of its payment (then a :class:`WithdrawalRecorded`), at most the
    member's equity at that time; until then they can be cancelled.

    Fields:
        withdrawal_id, member, amount_usd: the request.
        ahead_usd: queued amounts to be paid before this one.
        queued_ts_ns: when it was queued (node clock, UTC ns).
        kind: ``withdrawal``, or ``distribution`` (a settlement's payout that waits for
            cash like a withdrawal; its id is the distribution's).
    """

    TYPE: ClassVar[str] = "withdrawal_queued"
    withdrawal_id: str
    member: str
    amount_usd: Decimal
    ahead_usd: Decimal
    queued_ts_ns: int
    kind: Literal["withdrawal", "distribution"] = "withdrawal"

    def __post_init__(self) -> None:
        require_text("withdrawal_id", self.withdrawal_id)
        require_positive("amount_usd", self.amount_usd)
        require_non_negative("ahead_usd", self.ahead_usd)


class WithdrawalCancelled(Payload, frozen=True, kw_only=True):
    """A queued withdrawal will not be paid (cancelled by request, or nothing left).

    Fields:
        withdrawal_id, member, amount_usd: the request.
        reason: why (``cancelled by request`` …).
    """

    TYPE: ClassVar[str] = "withdrawal_cancelled"
    withdrawal_id: str
    member: str
    amount_usd: Decimal
    reason: str


class PoolState(Payload, frozen=True, kw_only=True):
    """The pool after a ledger change.

    Fields:
        nav_usd: ``cash_usd + allocated_usd + unrealized_pnl_usd``.
        nav_per_unit: ``nav_usd / units`` (1 before the first contribution).
        units: units outstanding.
        cash_usd: free cash (not allocated to trades).
        allocated_usd: capital out in trades.
        unrealized_pnl_usd: open positions marked at the latest ``market_data``.
        phase: the capital band's name; ``risk_per_trade``: its risk as a fraction.
        active_ratio: ``allocated_usd / nav_usd``.
    """

    TYPE: ClassVar[str] = "pool_state"
    nav_usd: Decimal
    nav_per_unit: Decimal
    units: Decimal
    cash_usd: Decimal
    allocated_usd: Decimal
    unrealized_pnl_usd: Decimal
    phase: str
    risk_per_trade: Decimal
    active_ratio: Decimal

    def __post_init__(self) -> None:
        require_finite("nav_usd", self.nav_usd)


class PhaseChanged(Payload, frozen=True, kw_only=True):
    """The pool moved to another capital band (and risk per trade)."""

    TYPE: ClassVar[str] = "phase_changed"
    previous: str
    current: str
    nav_usd: Decimal
    risk_per_trade: Decimal


class OpenAllocationsRequest(Payload, frozen=True, kw_only=True):
    """Ask for the allocations still open for these strategies."""

    TYPE: ClassVar[str] = "open_allocations_request"
    strategies: tuple[str, ...]


class OpenAllocation(msgspec.Struct, frozen=True, kw_only=True):
    """One allocation the pool holds as out in a trade.

    Fields:
        trade_id: the position funded by it, or ``None`` if the pool saw no fill yet.
    """

    allocation_id: str
    strategy: str
    exchange: str
    market: Market
    symbol: str
    side: PositionSide
    amount_usd: Decimal
    trade_id: str | None


class OpenAllocations(Payload, frozen=True, kw_only=True):
    """Reply to ``capital_pool.open_allocations``."""

    TYPE: ClassVar[str] = "open_allocations"
    allocations: tuple[OpenAllocation, ...]


class DayCloseRequest(Payload, frozen=True, kw_only=True):
    """Close the pool's day ``date``: value it at ``cutoff_ts_ns`` and, with
    ``distribute``, pay members who do not reinvest their share of its realized profit.

    Fields:
        date: the day, ISO ``YYYY-MM-DD`` (UTC).
        start_ts_ns: the previous day's cut-off: flows and realized PnL count in
            ``[start_ts_ns, cutoff_ts_ns)``.
        cutoff_ts_ns: the day's valuation point (UTC ns): the pool as it stood then,
            before anything stamped at that instant.
        distribute: pay the day's distributions; ``False`` only reads.
    """

    TYPE: ClassVar[str] = "day_close_request"
    date: str
    start_ts_ns: int
    cutoff_ts_ns: int
    distribute: bool = True

    def __post_init__(self) -> None:
        if self.cutoff_ts_ns <= self.start_ts_ns:
            raise ValueError(
                f"cutoff_ts_ns {self.cutoff_ts_ns} must be after start_ts_ns {self.start_ts_ns}"
            )


class MemberFlow(msgspec.Struct, frozen=True, kw_only=True):
    """One contribution, withdrawal or distribution of a member (amounts > 0)."""

    flow_id: str
    kind: FlowKind
    amount_usd: Decimal
    units: Decimal
    nav_per_unit: Decimal
    ts_ns: int


class MemberDay(msgspec.Struct, frozen=True, kw_only=True):
    """A member at a day's cut-off.

    Fields:
        units, equity_usd: held at the cut-off (equity = units × NAV per unit, rounded
            down to cents).
        flows: their flows in the day, oldest first.
        distribution_usd: their share of the day's realized profit paid out for this
            day (0 when they reinvest or the day made no profit); ``distribution_queued``
            when it waits in the withdrawal queue for free cash.
    """

    member: str
    reinvest: bool
    units: Decimal
    equity_usd: Decimal
    flows: tuple[MemberFlow, ...]
    distribution_usd: Decimal
    distribution_queued: bool = False


class DayClose(Payload, frozen=True, kw_only=True):
    """Reply to ``capital_pool.close_day``: the pool at the cut-off.

    Fields:
        valuation: ``live`` (nothing journaled since the cut-off: the ledger marked at
            the latest prices) or ``last_entry`` (closed late: the figures stored with
            the last journal entry before the cut-off).
        nav_usd, nav_per_unit, units, cash_usd, allocated_usd, unrealized_pnl_usd: the
            pool at the cut-off (NAV per unit to 8 decimals).
        realized_pnl_usd: trades closed in the day, net of their fees; ``fees_usd``
            those fees.
        first_entry_ts_ns: when the pool's journal starts (``None``: empty).
    """

    TYPE: ClassVar[str] = "day_close"
    date: str
    cutoff_ts_ns: int
    valuation: Literal["live", "last_entry"]
    nav_usd: Decimal
    nav_per_unit: Decimal
    units: Decimal
    cash_usd: Decimal
    allocated_usd: Decimal
    unrealized_pnl_usd: Decimal
    realized_pnl_usd: Decimal
    fees_usd: Decimal
    first_entry_ts_ns: int | None
    members: tuple[MemberDay, ...]


# -- query endpoints (the API's reads and commands; conventions in corec.core.queries) -----
STATE: Final = "capital_pool.state"
"""Request endpoint: :class:`PoolStateRequest` → :class:`PoolState` (the pool now)."""

MEMBERS: Final = "capital_pool.members"
"""Request endpoint: :class:`MembersRequest` → :class:`MembersPage` |
:class:`~corec.core.queries.Refused` (``not_found``: an unknown ``member``)."""

FLOWS: Final = "capital_pool.flows"
"""Request endpoint: :class:`FlowsRequest` → :class:`FlowsPage` |
:class:`~corec.core.queries.Refused` (``invalid``: a bad filter; ``not_found``: an
unknown ``member``)."""

CONTRIBUTE: Final = "capital_pool.contribute"
"""Request endpoint: :class:`ContributeRequest` → :class:`ContributionRecorded` |
:class:`~corec.core.queries.Refused`."""

WITHDRAW: Final = "capital_pool.withdraw"
"""Request endpoint: :class:`WithdrawRequest` → :class:`WithdrawalRecorded` |
:class:`WithdrawalQueued` | :class:`~corec.core.queries.Refused`."""

STATEMENT: Final = "capital_pool.statement"
"""Request endpoint: :class:`StatementRequest` → :class:`MemberStatement` |
:class:`~corec.core.queries.Refused`."""

FlowStatus = Literal["done", "queued", "cancelled"]
"""``done``: journaled (units moved); ``queued``: a withdrawal or distribution waiting
for free cash; ``cancelled``: a queued one that will not be paid."""


class PoolStateRequest(Payload, frozen=True, kw_only=True):
    """Ask for the pool now (``capital_pool.state``)."""

    TYPE: ClassVar[str] = "pool_state_request"


class MembersRequest(Payload, frozen=True, kw_only=True):
    """List the pool's members (``capital_pool.members``), sorted by name.

    Fields:
        member: only this member (the API passes a member's own name).
        limit, offset: paging (see :mod:`corec.core.queries`).
    """

    TYPE: ClassVar[str] = "members_request"
    member: str | None = None
    limit: int = DEFAULT_PAGE_LIMIT
    offset: int = 0


class MemberSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One member now.

    Fields:
        reinvest: leaves realized profit in the pool (``False``: paid out daily).
        units: held now; ``equity_usd``: units × NAV per unit at the latest marks,
            rounded down to cents (what ``corec members list`` shows).
        contributed_usd, withdrawn_usd, distributed_usd: every flow of theirs so far
            (queued withdrawals not yet paid are not counted).
        pnl_usd: ``equity_usd + withdrawn_usd + distributed_usd - contributed_usd``.
        joined_ts_ns: when the member was registered (UTC ns).
    """

    member: str
    reinvest: bool
    units: Decimal
    equity_usd: Decimal
    contributed_usd: Decimal
    withdrawn_usd: Decimal
    distributed_usd: Decimal
    pnl_usd: Decimal
    joined_ts_ns: int


class MembersPage(Payload, frozen=True, kw_only=True):
    """Reply to ``capital_pool.members``: ``total`` members matched, this page of them."""

    TYPE: ClassVar[str] = "members_page"
    total: int
    items: tuple[MemberSummary, ...]


class FlowsRequest(Payload, frozen=True, kw_only=True):
    """List contributions, withdrawals (queued ones included) and distributions
    (``capital_pool.flows``), newest first.

    Fields:
        kind: only this kind; ``member``: only this member's.
        from_ts_ns, to_ts_ns: only flows with ``from_ts_ns <= ts_ns < to_ts_ns`` (UTC ns).
        limit, offset: paging.
    """

    TYPE: ClassVar[str] = "flows_request"
    kind: FlowKind | None = None
    member: str | None = None
    from_ts_ns: int | None = None
    to_ts_ns: int | None = None
    limit: int = DEFAULT_PAGE_LIMIT
    offset: int = 0


class FlowRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One contribution, withdrawal or distribution of a member (amounts > 0).

    Fields:
        flow_id: the contribution, withdrawal or distribution id.
        amount_usd: paid in or out (``done``), or asked for (``queued``, ``cancelled``).
        units: issued or burned (always positive); ``nav_per_unit``: the price they
            moved at (8 decimals). Both ``None`` unless ``status`` is ``done``: a
            queued flow is priced when it is paid.
        ts_ns: when it was journaled (``done``) or queued (UTC ns).
        status: see :data:`FlowStatus`.
    """

    flow_id: str
    kind: FlowKind
    member: str
    amount_usd: Decimal
    units: Decimal | None
    nav_per_unit: Decimal | None
    ts_ns: int
    status: FlowStatus


class FlowsPage(Payload, frozen=True, kw_only=True):
    """Reply to ``capital_pool.flows``: ``total`` flows matched, this page, newest first."""

    TYPE: ClassVar[str] = "flows_page"
    total: int
    items: tuple[FlowRecord, ...]


class ContributeRequest(Payload, frozen=True, kw_only=True):
    """Record a contribution (``capital_pool.contribute``), as ``corec pool contribute``.

    Fields:
        member: who pays in; a new name is registered as a member first (with
            ``reinvest``, default true).
        amount_usd: whole cents, at least the pool's ``min_contribution_usd``.
        contribution_id: the client's id (at most 64 characters): the same id is
            recorded once, and a repeat answers the first record; a new id when ``None``.
        reinvest: for a new member, their choice; for a known one it must match theirs
            (``None``: no check).
    """

    TYPE: ClassVar[str] = "contribute_request"
    member: str
    amount_usd: Decimal
    contribution_id: str | None = None
    reinvest: bool | None = None


class WithdrawRequest(Payload, frozen=True, kw_only=True):
    """Pay a withdrawal (``capital_pool.withdraw``), as ``corec pool withdraw``: from free
    cash, or queued (:class:`WithdrawalQueued`) while free cash is out in trades.

    Fields:
        amount_usd: whole cents, at most the member's equity (with their queued
            withdrawals counted).
        withdrawal_id: the client's id (at most 64 characters), recorded once; a new
            id when ``None``.
    """

    TYPE: ClassVar[str] = "withdraw_request"
    member: str
    amount_usd: Decimal
    withdrawal_id: str | None = None


class StatementRequest(Payload, frozen=True, kw_only=True):
    """A member's statement over a period (``capital_pool.statement``), as
    ``corec pool statement``.

    Fields:
        from_date: first day, ``YYYY-MM-DD`` (UTC); default their first flow's day.
        to_date: last day, inclusive; default today (the end is capped at now).
    """

    TYPE: ClassVar[str] = "statement_request"
    member: str
    from_date: str | None = None
    to_date: str | None = None


class MemberStatement(Payload, frozen=True, kw_only=True):
    """Reply to ``capital_pool.statement`` (the figures of ``corec pool statement``).

    Fields:
        from_date, to_date: the period (``YYYY-MM-DD``, UTC, both inclusive).
        opening_units, opening_equity_usd, opening_nav_per_unit: the member at the
            period's start (00:00 UTC of ``from_date``); ``closing_*`` at its end (the
            end of ``to_date``, or now if sooner). Equity rounded down to cents.
        contributions_usd, withdrawals_usd, distributions_usd: their flows in the period;
            ``net_flow_usd`` = contributions − withdrawals − distributions.
        pnl_usd: closing equity − opening equity − net flow.
        twr: time-weighted return, closing NAV per unit ÷ opening − 1 (a fraction, 8
            decimals); ``xirr``: money-weighted return, the annual XIRR of the opening
            equity, their flows and the closing equity (``None`` when undefined).
        valuation: how the closing position was valued (``live`` or ``last_entry``).
        flows: the period's flows, oldest first (all ``done``).
    """

    TYPE: ClassVar[str] = "member_statement"
    member: str
    from_date: str
    to_date: str
    opening_units: Decimal
    opening_equity_usd: Decimal
    opening_nav_per_unit: Decimal
    closing_units: Decimal
    closing_equity_usd: Decimal
    closing_nav_per_unit: Decimal
    contributions_usd: Decimal
    withdrawals_usd: Decimal
    distributions_usd: Decimal
    net_flow_usd: Decimal
    pnl_usd: Decimal
    twr: Decimal | None
    xirr: Decimal | None
    valuation: Literal["live", "last_entry"]
    flows: tuple[FlowRecord, ...]
