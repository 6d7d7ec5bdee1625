"""The pool and its members as of a past moment, read from the journal.

Periods are half-open, ``[start, cutoff)``: an entry stamped exactly at a cut-off
belongs to the next period. The journal is append-only and every entry stores the
pool's figures after it (``pool_state``), so the pool as it stood at ``cutoff`` (just
before anything stamped then) is:

- ``live`` when nothing was journaled at or after ``cutoff``: the in-memory ledger,
  marked at the latest prices (the most recent valuation there is); a day close
  records it (``day_closes``), and that record answers for the same moment later;
- ``last_entry`` otherwise: the figures stored with the last entry before ``cutoff``
  (marks that moved between that entry and the cut-off are not in them; a late close
  says so rather than invent prices).

Members' units at ``cutoff`` are the sum of the unit lines of the entries before it.
Used by the day close (:mod:`.day_close`) and member statements (:mod:`.statement`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from sqlalchemy import Connection, func, select

from corec.core import money
from corec.messages.capital_data import FlowKind, MemberFlow
from corec.plugins.capital_pool import models as m
from corec.plugins.capital_pool.ledger import FEES, MEMBER_PREFIX, REALIZED_PNL, Ledger

ZERO = Decimal(0)
FLOW_TABLES: tuple[tuple[FlowKind, object, str], ...] = (
    ("contribution", m.contributions, "contribution_id"),
    ("withdrawal", m.withdrawals, "withdrawal_id"),
    ("distribution", m.distributions, "distribution_id"),
)


@dataclass(frozen=True)
class PoolAt:
    """The pool at one moment (USD; ``nav_per_unit`` unrounded; ``units`` outstanding)."""

    ts_ns: int
    valuation: Literal["live", "last_entry"]
    nav_usd: Decimal
    nav_per_unit: Decimal
    units: Decimal
    cash_usd: Decimal
    allocated_usd: Decimal
    unrealized_pnl_usd: Decimal
    member_units: dict[str, Decimal]

    def equity_usd(self, member: str) -> Decimal:
        """``member``'s units × NAV per unit, rounded down to cents."""
        units = self.member_units.get(member, ZERO)
        return money.pay(money.equity_usd(units, self.nav_usd, self.units), money.CENT)


def _member_units_at(conn: Connection, cutoff_ts_ns: int) -> dict[str, Decimal]:
    # summed here, not by SQL: SQLite keeps decimals as text and would sum floats
    e, ln = m.journal_entries, m.journal_lines
    query = (
        select(ln.c.account, ln.c.units)
        .join(e, e.c.seq == ln.c.entry_seq)
        .where(e.c.ts_ns < cutoff_ts_ns, ln.c.account.startswith(MEMBER_PREFIX))
    )
    units: dict[str, Decimal] = defaultdict(Decimal)
    for account, line_units in conn.execute(query):
        units[account.removeprefix(MEMBER_PREFIX)] += line_units
    return {member: held for member, held in units.items() if held}


def pool_at(conn: Connection, ledger: Ledger, ts_ns: int) -> PoolAt:
    """The pool as it stood at ``ts_ns`` (see the module docstring), inside a read
    transaction.

    Args:
        ledger: the service's in-memory ledger (for a ``live`` valuation).
    """
    closed = (
        conn.execute(select(m.day_closes).where(m.day_closes.c.cutoff_ts_ns == ts_ns))
        .mappings()
        .first()
    )
    if closed is not None:
        return PoolAt(
            ts_ns=ts_ns,
            valuation="live",
            nav_usd=closed["nav_usd"],
            nav_per_unit=closed["nav_per_unit"],
            units=closed["units"],
            cash_usd=closed["cash_usd"],
            allocated_usd=closed["allocated_usd"],
            unrealized_pnl_usd=closed["unrealized_pnl_usd"],
            member_units=_member_units_at(conn, ts_ns),
        )
    e = m.journal_entries
    later = conn.execute(select(e.c.seq).where(e.c.ts_ns >= ts_ns).limit(1)).first()
    units_by_member = _member_units_at(conn, ts_ns)
    if later is None:
        f = ledger.figures()
        return PoolAt(
            ts_ns=ts_ns,
            valuation="live",
            nav_usd=f.nav_usd,
            nav_per_unit=f.nav_per_unit,
            units=f.units,
            cash_usd=f.cash_usd,
            allocated_usd=f.allocated_usd,
            unrealized_pnl_usd=f.unrealized_pnl_usd,
            member_units=units_by_member,
        )
    s = m.pool_state
    row = (
        conn.execute(select(s).where(s.c.ts_ns < ts_ns).order_by(s.c.seq.desc()).limit(1))
        .mappings()
        .first()
    )
    if row is None:  # before the first entry: an empty pool
        return PoolAt(
            ts_ns, "last_entry", ZERO, money.INITIAL_NAV_PER_UNIT, ZERO, ZERO, ZERO, ZERO, {}
        )
    return PoolAt(
        ts_ns=ts_ns,
        valuation="last_entry",
        nav_usd=row["nav_usd"],
        nav_per_unit=row["nav_per_unit"],
        units=row["units"],
        cash_usd=row["cash_usd"],
        allocated_usd=row["allocated_usd"],
        unrealized_pnl_usd=row["unrealized_pnl_usd"],
        member_units=units_by_member,
    )


def flows_between(
    conn: Connection, start_ts_ns: int, end_ts_ns: int, member: str | None = None
) -> dict[str, list[MemberFlow]]:
    """Contributions, withdrawals and distributions in ``[start_ts_ns, end_ts_ns)``, per
    member (only ``member``'s when given), oldest first (by journal order)."""
    found: list[tuple[int, str, MemberFlow]] = []
    for kind, table, id_column in FLOW_TABLES:
        t = table  # a Table
        query = select(t).where(t.c.ts_ns >= start_ts_ns, t.c.ts_ns < end_ts_ns)  # type: ignore[attr-defined]
        if member is not None:
            query = query.where(t.c.member == member)  # type: ignore[attr-defined]
        for row in conn.execute(query).mappings():
            flow = MemberFlow(
                flow_id=row[id_column],
                kind=kind,
                amount_usd=row["amount_usd"],
                units=row["units"],
                nav_per_unit=row["nav_per_unit"].quantize(money.NAV_PER_UNIT_QUANTUM),
                ts_ns=row["ts_ns"],
            )
            found.append((row["entry_seq"], row["member"], flow))
    by_member: dict[str, list[MemberFlow]] = defaultdict(list)
    for _, name, flow in sorted(found, key=lambda f: f[0]):
        by_member[name].append(flow)
    return dict(by_member)


def realized_between(conn: Connection, start_ts_ns: int, end_ts_ns: int) -> tuple[Decimal, Decimal]:
    """``(realized PnL net of fees, fees)`` of the trades settled in
    ``[start_ts_ns, end_ts_ns)`` (USD), from their settlement entries."""
    e, ln = m.journal_entries, m.journal_lines
    query = (
        select(ln.c.account, ln.c.amount_usd)
        .join(e, e.c.seq == ln.c.entry_seq)
        .where(
            e.c.kind == "settlement",
            e.c.ts_ns >= start_ts_ns,
            e.c.ts_ns < end_ts_ns,
            ln.c.account.in_((REALIZED_PNL, FEES)),
        )
    )
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for account, amount in conn.execute(query):  # summed here, as above
        sums[account] += amount
    fees = sums.get(FEES, ZERO)
    gross = -sums.get(REALIZED_PNL, ZERO)  # income is a credit
    return gross - fees, fees


def first_entry_ts_ns(conn: Connection) -> int | None:
    """When the journal starts (UTC ns), or ``None`` while it is empty."""
    return conn.execute(select(func.min(m.journal_entries.c.ts_ns))).scalar()


def record_close(conn: Connection, pool: PoolAt, date: str, taken_ts_ns: int) -> None:
    """Keep a live valuation of a day's cut-off (once; a second close of the same
    moment reads this one back through :func:`pool_at`)."""
    if pool.valuation != "live":
        return
    exists = conn.execute(
        select(m.day_closes.c.cutoff_ts_ns).where(m.day_closes.c.cutoff_ts_ns == pool.ts_ns)
    ).first()
    if exists is None:
        conn.execute(
            m.day_closes.insert(),
            {
                "cutoff_ts_ns": pool.ts_ns,
                "date": date,
                "taken_ts_ns": taken_ts_ns,
                "nav_usd": money.to_stored(pool.nav_usd),
                "nav_per_unit": money.to_stored(pool.nav_per_unit),
                "units": pool.units,
                "cash_usd": pool.cash_usd,
                "allocated_usd": pool.allocated_usd,
                "unrealized_pnl_usd": money.to_stored(pool.unrealized_pnl_usd),
            },
        )
