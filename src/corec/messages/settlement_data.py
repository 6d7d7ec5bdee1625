"""``settlement_data``: one record per settled day, published by daily_settlement.

Money in USD (cents); units and NAV per unit to 8 decimals; returns are fractions to 8
decimals (``0.0125`` = 1.25 %). Formulas are in :mod:`corec.core.returns`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar, Final, Literal

import msgspec

from corec.core.events import Payload
from corec.core.queries import DEFAULT_PAGE_LIMIT
from corec.messages._checks import require_finite, require_non_negative


class MemberSettlement(msgspec.Struct, frozen=True, kw_only=True):
    """A member at a day's cut-off.

    Fields:
        units, equity_usd: held at the cut-off (equity rounded down to cents).
        contributions_usd, withdrawals_usd, distributions_usd: their flows in the day.
        net_flow_usd: ``contributions - withdrawals - distributions`` of the day.
        distribution_usd: their share of the day's realized profit paid for this day
            (0 when they reinvest); ``distribution_queued`` when it waits for free cash.
        pnl_usd: since their first flow, ``equity + withdrawals + distributions -
            contributions``.
        time_weighted_return: NAV per unit now over NAV per unit at their first
            contribution, minus 1.
        money_weighted_return: the XIRR of their own flows and today's equity (annual;
            ``None`` when undefined, e.g. under a day of history).
    """

    member: str
    units: Decimal
    equity_usd: Decimal
    contributions_usd: Decimal
    withdrawals_usd: Decimal
    distributions_usd: Decimal
    net_flow_usd: Decimal
    distribution_usd: Decimal
    distribution_queued: bool
    pnl_usd: Decimal
    time_weighted_return: Decimal | None
    money_weighted_return: Decimal | None


class DailySettlement(Payload, frozen=True, kw_only=True):
    """The pool's settled day.

    Fields:
        date: the day (ISO, UTC); its period is ``[start_ts_ns, cutoff_ts_ns)``.
        valuation: ``live`` (valued at its cut-off with the latest marks) or
            ``last_entry`` (settled late, from the last journal entry before the cut-off).
        nav_usd, nav_per_unit, units: the pool at the cut-off.
        realized_pnl_usd, fees_usd: trades closed in the day (PnL net of fees).
        net_flows_usd: members' contributions minus withdrawals and distributions.
        day_return: NAV per unit over the previous day's, minus 1 (time-weighted).
        twr_since_inception: NAV per unit minus 1 (units start at 1 USD).
        distributions_usd: paid (or queued) for this day to members who do not reinvest.
    """

    TYPE: ClassVar[str] = "daily_settlement"
    date: str
    start_ts_ns: int
    cutoff_ts_ns: int
    settled_ts_ns: int
    valuation: Literal["live", "last_entry"]
    nav_usd: Decimal
    nav_per_unit: Decimal
    units: Decimal
    cash_usd: Decimal
    allocated_usd: Decimal
    unrealized_pnl_usd: Decimal
    realized_pnl_usd: Decimal
    fees_usd: Decimal
    net_flows_usd: Decimal
    distributions_usd: Decimal
    day_return: Decimal
    twr_since_inception: Decimal
    members: tuple[MemberSettlement, ...]

    def __post_init__(self) -> None:
        require_finite("nav_usd", self.nav_usd)
        require_non_negative("units", self.units)
        require_non_negative("distributions_usd", self.distributions_usd)


# -- query endpoints (conventions in corec.core.queries) -----------------------------------
SETTLEMENTS: Final = "daily_settlement.settlements"
"""Request endpoint: :class:`SettlementsRequest` → :class:`SettlementsPage` |
:class:`~corec.core.queries.Refused` (``invalid``: a malformed date)."""

MEMBER_SETTLEMENTS: Final = "daily_settlement.member_settlements"
"""Request endpoint: :class:`MemberSettlementsRequest` → :class:`MemberSettlementsPage` |
:class:`~corec.core.queries.Refused` (``invalid``: a malformed date)."""


class SettlementsRequest(Payload, frozen=True, kw_only=True):
    """List settled days (``daily_settlement.settlements``), newest first: the NAV series.

    Fields:
        from_date, to_date: only days in this range, ``YYYY-MM-DD`` (UTC), inclusive.
        limit, offset: paging (see :mod:`corec.core.queries`).
    """

    TYPE: ClassVar[str] = "settlements_request"
    from_date: str | None = None
    to_date: str | None = None
    limit: int = DEFAULT_PAGE_LIMIT
    offset: int = 0


class SettlementSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One settled day (the figures of ``corec settlement list``).

    Fields:
        date: the day (ISO, UTC); ``cutoff_ts_ns``: its valuation point (UTC ns).
        nav_usd, nav_per_unit, units: the pool at the cut-off.
        realized_pnl_usd, fees_usd: trades closed in the day (PnL net of fees).
        return_pct: the day's time-weighted return in percent (NAV per unit over the
            previous day's, minus 1, × 100; ``1.25`` = 1.25 %).
        twr_since_inception_pct: NAV per unit minus 1, × 100 (units start at 1 USD).
        net_flows_usd: contributions minus withdrawals and distributions in the day.
        distributions_usd: paid (or queued) for the day to members who do not reinvest.
        valuation: ``live`` or ``last_entry`` (see :class:`DailySettlement`).
    """

    date: str
    cutoff_ts_ns: int
    nav_usd: Decimal
    nav_per_unit: Decimal
    units: Decimal
    realized_pnl_usd: Decimal
    fees_usd: Decimal
    return_pct: Decimal | None
    twr_since_inception_pct: Decimal
    net_flows_usd: Decimal
    distributions_usd: Decimal
    valuation: Literal["live", "last_entry"]


class SettlementsPage(Payload, frozen=True, kw_only=True):
    """Reply to ``daily_settlement.settlements``: ``total`` days matched, this page."""

    TYPE: ClassVar[str] = "settlements_page"
    total: int
    items: tuple[SettlementSummary, ...]


class MemberSettlementsRequest(Payload, frozen=True, kw_only=True):
    """List members' settled days (``daily_settlement.member_settlements``), newest day
    first, members by name within a day.

    Fields:
        member: only this member's rows (the API passes a member's own name).
        from_date, to_date: only days in this range, ``YYYY-MM-DD`` (UTC), inclusive.
        limit, offset: paging.
    """

    TYPE: ClassVar[str] = "member_settlements_request"
    member: str | None = None
    from_date: str | None = None
    to_date: str | None = None
    limit: int = DEFAULT_PAGE_LIMIT
    offset: int = 0


class MemberSettlementRow(msgspec.Struct, frozen=True, kw_only=True):
    """A member at a settled day's cut-off (see :class:`MemberSettlement`).

    Fields:
        units, equity_usd: held at the cut-off (equity rounded down to cents).
        pnl_usd: since their first flow, ``equity + withdrawals + distributions -
            contributions``.
        twr: NAV per unit over NAV per unit at their first contribution, minus 1 (a
            fraction, 8 decimals); ``xirr``: the annual XIRR of their flows and equity.
        distribution_usd: their share of the day's realized profit paid for the day;
            ``distribution_queued`` when it waits for free cash.
    """

    date: str
    member: str
    units: Decimal
    equity_usd: Decimal
    pnl_usd: Decimal
    twr: Decimal | None
    xirr: Decimal | None
    distribution_usd: Decimal
    distribution_queued: bool


class MemberSettlementsPage(Payload, frozen=True, kw_only=True):
    """Reply to ``daily_settlement.member_settlements``: ``total`` rows matched, this page."""

    TYPE: ClassVar[str] = "member_settlements_page"
    total: int
    items: tuple[MemberSettlementRow, ...]
