"""Reading the ledger from, and appending it to, capital_pool's store.

Writes are one transaction each and optimistic: an entry is inserted with
``seq = last + 1``; if another writer (a CLI command next to a running node, another
instance) took that ``seq`` or ``ref`` first, the insert fails and
:class:`~corec.core.errors.ConcurrencyConflict` tells the caller to reload and retry.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from corec.core import money
from corec.core.errors import ConcurrencyConflict, InvalidEvent
from corec.core.store import Store
from corec.plugins.capital_pool import models as m
from corec.plugins.capital_pool.ledger import (
    MEMBER_PREFIX,
    Allocation,
    JournalEntry,
    Ledger,
    PoolFigures,
    Position,
    Rules,
)

Extra = Callable[[Connection], None]
"""More rows to write in the same transaction as a journal entry."""


def _load(conn: Connection, rules: Rules) -> Ledger:
    ledger = Ledger(rules=rules)
    ledger.members = set(conn.execute(select(m.members.c.name)).scalars())
    entries = conn.execute(select(m.journal_entries.c.seq, m.journal_entries.c.ref)).all()
    ledger.refs = {row.ref for row in entries}
    ledger.seq = max((row.seq for row in entries), default=0)
    lines = conn.execute(
        select(m.journal_lines.c.account, m.journal_lines.c.amount_usd, m.journal_lines.c.units)
    )
    for account, amount, units in lines:
        ledger.balances[account] = ledger.balances.get(account, Decimal(0)) + amount
        if units:
            member = account.removeprefix(MEMBER_PREFIX)
            ledger.member_units[member] = ledger.member_units.get(member, Decimal(0)) + units
    for row in conn.execute(
        select(m.allocations).where(m.allocations.c.status == "open")
    ).mappings():
        position = None
        if row["trade_id"] is not None:
            position = Position(
                trade_id=row["trade_id"],
                side=row["side"],
                quantity=row["quantity"],
                entry_price=row["entry_price"],
                entry_fee_usd=row["entry_fee_usd"],
                opened_ts_ns=row["opened_ts_ns"],
            )
        ledger.add_allocation(
            Allocation(
                allocation_id=row["allocation_id"],
                strategy=row["strategy"],
                exchange=row["exchange"],
                market=row["market"],
                symbol=row["symbol"],
                side=row["side"],
                amount_usd=row["amount_usd"],
                granted_ts_ns=row["granted_ts_ns"],
                position=position,
            )
        )
    for row in conn.execute(select(m.marks)):
        ledger.mark((row.exchange, row.market, row.symbol), row.price)
    return ledger


async def load_ledger(store: Store, rules: Rules) -> Ledger:
    """Rebuild the in-memory :class:`Ledger` from the journal, open allocations and marks
    (one consistent snapshot)."""
    return await store.read(lambda conn: _load(conn, rules))


def _state_row(entry: JournalEntry, figures: PoolFigures) -> dict[str, object]:
    return {
        "seq": entry.seq,
        "ts_ns": entry.ts_ns,
        "nav_usd": money.to_stored(figures.nav_usd),
        "nav_per_unit": money.to_stored(figures.nav_per_unit),
        "units": figures.units,
        "cash_usd": figures.cash_usd,
        "allocated_usd": figures.allocated_usd,
        "unrealized_pnl_usd": money.to_stored(figures.unrealized_pnl_usd),
        "phase": figures.phase,
        "risk_per_trade": figures.risk_per_trade,
    }


async def append_entry(
    store: Store, entry: JournalEntry, after: PoolFigures, extra: Extra | None = None
) -> None:
    """Insert ``entry``, its lines, the pool state after it and ``extra`` rows, atomically.

    Raises:
        ConcurrencyConflict: ``entry.seq`` or ``entry.ref`` exists already.
        InvalidEvent: another constraint refused the rows (e.g. a trade id that is
            already another allocation's); nothing was written.
    """

    def write(conn: Connection) -> None:
        conn.execute(
            insert(m.journal_entries),
            {
                "seq": entry.seq,
                "ts_ns": entry.ts_ns,
                "kind": entry.kind,
                "ref": entry.ref,
                "memo": entry.memo[:256],
            },
        )
        conn.execute(
            insert(m.journal_lines),
            [
                {
                    "entry_seq": entry.seq,
                    "account": ln.account,
                    "amount_usd": ln.amount_usd,
                    "units": ln.units,
                }
                for ln in entry.lines
            ],
        )
        conn.execute(insert(m.pool_state), _state_row(entry, after))
        if extra is not None:
            extra(conn)

    try:
        await store.write(write)
    except IntegrityError as exc:
        if "journal_entries" not in str(exc.orig):  # not a race for seq or ref: bad input
            raise InvalidEvent(
                f"journal entry {entry.ref}: refused by the store: {exc.orig}"
            ) from exc
        raise ConcurrencyConflict(
            f"journal entry {entry.seq} ({entry.ref}) was written by another writer"
        ) from exc


async def add_member(store: Store, name: str, ts_ns: int, *, reinvest: bool = True) -> bool:
    """Register ``name``; returns False when it exists already (nothing changed)."""

    def write(conn: Connection) -> bool:
        if conn.execute(select(m.members.c.name).where(m.members.c.name == name)).first():
            return False
        conn.execute(
            insert(m.members), {"name": name, "created_ts_ns": ts_ns, "reinvest": reinvest}
        )
        return True

    return await store.write(write)


async def member_rows(store: Store) -> list[dict[str, object]]:
    """Every stored member: name, created_ts_ns, reinvest; by name."""
    query = select(m.members).order_by(m.members.c.name)
    return [dict(r) for r in await store.read(lambda conn: conn.execute(query).mappings().all())]


_UPDATE_ALLOCATION = update(m.allocations).where(
    m.allocations.c.allocation_id == bindparam("key_allocation_id")
)


def update_allocation(conn: Connection, allocation_id: str, **values: object) -> None:
    """Set ``values`` on the ``allocations`` row of ``allocation_id`` (inside a transaction)."""
    conn.execute(_UPDATE_ALLOCATION, {"key_allocation_id": allocation_id, **values})


async def record_position(store: Store, allocation: Allocation) -> None:
    """Store the fill of an open allocation (quantity, entry price, fee)."""
    pos = allocation.position
    assert pos is not None
    await store.write(
        lambda conn: update_allocation(
            conn,
            allocation.allocation_id,
            trade_id=pos.trade_id,
            quantity=pos.quantity,
            entry_price=pos.entry_price,
            entry_fee_usd=pos.entry_fee_usd,
            opened_ts_ns=pos.opened_ts_ns,
        )
    )


async def save_marks(store: Store, marks: dict[tuple[str, str, str], Decimal], ts_ns: int) -> None:
    """Replace the stored marks with ``marks`` (for NAV while no node runs)."""
    rows = [
        {"exchange": e, "market": mk, "symbol": s, "price": price, "ts_ns": ts_ns}
        for (e, mk, s), price in marks.items()
    ]

    def write(conn: Connection) -> None:
        conn.execute(m.marks.delete())
        if rows:
            conn.execute(insert(m.marks), rows)

    await store.write(write)


# -- the withdrawal queue ------------------------------------------------------------------
async def queued_withdrawal(store: Store, withdrawal_id: str) -> dict[str, object] | None:
    """The queue row of ``withdrawal_id`` (any status), or None if it never queued."""
    q = m.withdrawal_queue
    query = select(q).where(q.c.withdrawal_id == withdrawal_id)
    row = await store.read(lambda conn: conn.execute(query).mappings().first())
    return dict(row) if row else None


async def queued_withdrawals(store: Store) -> list[dict[str, object]]:
    """Withdrawals still waiting, first in first."""
    q = m.withdrawal_queue
    query = select(q).where(q.c.status == "queued").order_by(q.c.position)
    return [dict(r) for r in await store.read(lambda conn: conn.execute(query).mappings().all())]


async def add_to_queue(
    store: Store,
    withdrawal_id: str,
    member: str,
    amount_usd: Decimal,
    ts_ns: int,
    kind: str = "withdrawal",
) -> None:
    """Queue a withdrawal or a distribution (``kind``), in one transaction.

    Raises:
        ConcurrencyConflict: the id was queued meanwhile (by another process).
    """
    row = {
        "withdrawal_id": withdrawal_id,
        "member": member,
        "amount_usd": amount_usd,
        "status": "queued",
        "queued_ts_ns": ts_ns,
        "kind": kind,
    }
    try:
        await store.write(lambda conn: conn.execute(insert(m.withdrawal_queue), row))
    except IntegrityError as exc:
        raise ConcurrencyConflict(f"withdrawal {withdrawal_id} was queued meanwhile") from exc


def settle_queued(
    conn: Connection,
    withdrawal_id: str,
    status: str,
    ts_ns: int,
    *,
    paid_usd: Decimal | None = None,
    reason: str | None = None,
) -> bool:
    """Mark a queued withdrawal ``paid`` or ``cancelled`` (only if still queued).

    Returns:
        False when it was no longer queued (settled meanwhile): nothing changed.
    """
    q = m.withdrawal_queue
    result = conn.execute(
        update(q)
        .where(q.c.withdrawal_id == withdrawal_id, q.c.status == "queued")
        .values(status=status, settled_ts_ns=ts_ns, paid_usd=paid_usd, reason=reason)
    )
    return bool(result.rowcount)
