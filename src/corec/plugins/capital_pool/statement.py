"""A member's statement over a period: opening and closing position, every flow with
the units it moved, and the period's result and returns.

The period runs from ``from_date`` 00:00 UTC to the end of ``to_date`` (or now, if
sooner); positions are valued as :mod:`.valuation` says (live at the end of a period
that reaches the present). Figures:

- ``pnl_usd`` = closing equity − opening equity − (contributions − withdrawals −
  distributions): what the pool earned for the member in the period;
- ``time_weighted_return`` = closing NAV per unit ÷ opening NAV per unit − 1 (the
  pool's result, independent of the member's flows);
- ``money_weighted_return`` = XIRR of the opening equity (paid in at the start), the
  member's flows and the closing equity (paid out at the end); annual, ``None`` when
  undefined (see :func:`corec.core.returns.xirr`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from corec.core import money
from corec.core.clock import datetime_to_ns, utc_date
from corec.core.errors import InvalidInput
from corec.core.returns import RATE_QUANTUM, time_weighted_return, xirr
from corec.messages.capital_data import MemberFlow
from corec.plugins.capital_pool.errors import UnknownMember
from corec.plugins.capital_pool.ledger import Ledger
from corec.plugins.capital_pool.valuation import PoolAt, flows_between, pool_at

ZERO = Decimal(0)


def _midnight_ns(day: date) -> int:
    moment = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    return datetime_to_ns(moment)


@dataclass(frozen=True)
class StatementLine:
    """One flow and the member's units after it."""

    flow: MemberFlow
    units_after: Decimal


@dataclass(frozen=True)
class Position:
    """The member at one end of the period."""

    ts_ns: int
    valuation: str
    units: Decimal
    nav_per_unit: Decimal
    equity_usd: Decimal


@dataclass(frozen=True)
class Statement:
    """See the module docstring; amounts in USD, returns as fractions (8 decimals)."""

    member: str
    from_date: date
    to_date: date
    opening: Position
    closing: Position
    lines: list[StatementLine] = field(default_factory=list)
    contributions_usd: Decimal = ZERO
    withdrawals_usd: Decimal = ZERO
    distributions_usd: Decimal = ZERO
    pnl_usd: Decimal = ZERO
    time_weighted_return: Decimal | None = None
    money_weighted_return: Decimal | None = None

    @property
    def net_flow_usd(self) -> Decimal:
        """contributions − withdrawals − distributions."""
        return self.contributions_usd - self.withdrawals_usd - self.distributions_usd


def _position(pool: PoolAt, member: str) -> Position:
    return Position(
        ts_ns=pool.ts_ns,
        valuation=pool.valuation,
        units=pool.member_units.get(member, ZERO),
        nav_per_unit=pool.nav_per_unit.quantize(money.NAV_PER_UNIT_QUANTUM),
        equity_usd=pool.equity_usd(member),
    )


def statement_period(
    from_date: date | None, to_date: date | None, first_flow_ts_ns: int | None, now_ns: int
) -> tuple[date, date, int, int]:
    """``(from, to, start_ts_ns, end_ts_ns)``: ``from`` defaults to the member's first
    flow's day, ``to`` to today; the end is capped at ``now_ns``.

    Raises:
        InvalidInput: ``from`` after ``to``, or ``from`` in the future.
    """
    today = utc_date(now_ns)
    first_day = utc_date(first_flow_ts_ns) if first_flow_ts_ns is not None else today
    start_day = from_date or first_day
    end_day = to_date or today
    if start_day > end_day:
        raise InvalidInput(f"--from {start_day} is after --to {end_day}")
    if start_day > today:
        raise InvalidInput(f"--from {start_day} is in the future (today is {today} UTC)")
    start_ns = _midnight_ns(start_day)
    end_ns = min(_midnight_ns(end_day + timedelta(days=1)), now_ns + 1)
    return start_day, end_day, start_ns, end_ns


def build_statement(
    conn: object,
    ledger: Ledger,
    member: str,
    from_date: date | None,
    to_date: date | None,
    now_ns: int,
) -> Statement:
    """``member``'s statement (inside a read transaction on capital_pool's store).

    Raises:
        UnknownMember: not a member; InvalidInput: a bad period (see
        :func:`statement_period`).
    """
    if member not in ledger.members:
        known = ", ".join(sorted(ledger.members)) or "none yet"
        raise UnknownMember(f"unknown member {member!r}; members are: {known}")
    every = flows_between(conn, 0, now_ns + 1, member).get(member, [])  # type: ignore[arg-type]
    first_ts = every[0].ts_ns if every else None
    start_day, end_day, start_ns, end_ns = statement_period(from_date, to_date, first_ts, now_ns)
    opening = _position(pool_at(conn, ledger, start_ns), member)  # type: ignore[arg-type]
    closing = _position(pool_at(conn, ledger, end_ns), member)  # type: ignore[arg-type]
    flows = [f for f in every if start_ns <= f.ts_ns < end_ns]
    units, lines = opening.units, []
    totals = {"contribution": ZERO, "withdrawal": ZERO, "distribution": ZERO}
    cash_flows: list[tuple[int, Decimal]] = []
    if opening.equity_usd > 0:
        cash_flows.append((start_ns, -opening.equity_usd))
    for flow in flows:
        units += flow.units if flow.kind == "contribution" else -flow.units
        lines.append(StatementLine(flow, units))
        totals[flow.kind] += flow.amount_usd
        cash_flows.append(
            (flow.ts_ns, -flow.amount_usd if flow.kind == "contribution" else flow.amount_usd)
        )
    if closing.equity_usd > 0:
        cash_flows.append((end_ns, closing.equity_usd))
    net = totals["contribution"] - totals["withdrawal"] - totals["distribution"]
    return Statement(
        member=member,
        from_date=start_day,
        to_date=end_day,
        opening=opening,
        closing=closing,
        lines=lines,
        contributions_usd=totals["contribution"],
        withdrawals_usd=totals["withdrawal"],
        distributions_usd=totals["distribution"],
        pnl_usd=closing.equity_usd - opening.equity_usd - net,
        time_weighted_return=time_weighted_return(
            opening.nav_per_unit, closing.nav_per_unit
        ).quantize(RATE_QUANTUM),
        money_weighted_return=xirr(cash_flows),
    )
