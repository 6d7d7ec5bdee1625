"""Reading the ledger from, and appending it to, capital_pool's store.

Writes are one transaction each and optimistic: an entry is inserted with
``seq = last + 1``; if another writer (a CLI command next to a running node, another
instance) took that ``seq`` or ``ref`` first, the insert fails and
:class:`~corec.core.errors.ConcurrencyConflict` tells the caller to reload and retry.
:func:`write_changes` stores several commands' entries in one transaction (group
commit: one ``executemany`` per table), and can first check that the withdrawal queue
is still the one the caller's memory holds (:class:`WithdrawalQueue`), so a withdrawal
queued or settled by another writer is a conflict too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, bindparam, case, func, insert, select, update
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


@dataclass
class WithdrawalQueue:
    """The withdrawal queue in memory: every row (any status) by ``withdrawal_id``, in
    queue order (first in, first out). Rows are the table's columns as a dict."""

    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    _waiting: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, rows: Sequence[dict[str, Any]]) -> WithdrawalQueue:
        """The queue of ``rows`` given in queue order."""
        queue = cls()
        for row in rows:
            queue.add(row)
        return queue

    def add(self, row: dict[str, Any]) -> None:
        """Append ``row`` (a new one is ``queued``, at the end of the queue)."""
        self.rows[str(row["withdrawal_id"])] = row
        if row["status"] == "queued":
            self._waiting[str(row["withdrawal_id"])] = row

    def settle(self, withdrawal_id: str, status: str) -> None:
        """Mark a waiting row ``paid`` or ``cancelled``."""
        row = self._waiting.pop(withdrawal_id)
        row["status"] = status

    def waiting(self) -> list[dict[str, Any]]:
        """The rows still waiting, first in first."""
        return list(self._waiting.values())

    def is_waiting(self, withdrawal_id: str) -> bool:
        """Whether ``withdrawal_id`` waits in the queue."""
        return withdrawal_id in self._waiting

    def head(self) -> dict[str, Any] | None:
        """The first row waiting, if any."""
        return next(iter(self._waiting.values()), None)

    def owed_usd(self, member: str | None = None) -> Decimal:
        """What the waiting rows ask for (``member``'s only, when given)."""
        return sum(
            (r["amount_usd"] for r in self._waiting.values() if member in (None, r["member"])),
            Decimal(0),
        )

    @property
    def version(self) -> tuple[int, int]:
        """(rows, rows waiting): any row queued or settled changes it (rows are never
        deleted and a settled row never waits again)."""
        return (len(self.rows), len(self._waiting))


_Q = m.withdrawal_queue
_QUEUE_VERSION = select(func.count(), func.count(case((_Q.c.status == "queued", 1))))
_QUEUE_ROWS = select(_Q).order_by(_Q.c.position)


async def load_state(store: Store, rules: Rules) -> tuple[Ledger, WithdrawalQueue]:
    """The ledger (as :func:`load_ledger`) and the withdrawal queue, in one snapshot."""

    def read(conn: Connection) -> tuple[Ledger, WithdrawalQueue]:
        queue = WithdrawalQueue.of([dict(r) for r in conn.execute(_QUEUE_ROWS).mappings()])
        return _load(conn, rules), queue

    return await store.read(read)


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


@dataclass(frozen=True)
class Change:
    """One command's part of a transaction: its journal entry and the pool state after
    it (both or neither), and its other rows (``rows(conn)``, run in command order after
    every entry of the transaction is inserted)."""

    entry: JournalEntry | None = None
    after: PoolFigures | None = None
    rows: Extra | None = None


_INSERT_ENTRY = insert(m.journal_entries)
_INSERT_LINE = insert(m.journal_lines)
_INSERT_STATE = insert(m.pool_state)
_RACES = (
    "journal_entries",
    "pk_pool_state",  # PostgreSQL may insert a statement's pool state before its entry
    "pool_state.seq",
    "uq_withdrawal_queue_withdrawal_id",
    "withdrawal_queue.withdrawal_id",
)
"""Constraints another writer's rows trip: seq and ref of an entry, a queued id."""


_PG_JOURNAL = """
WITH queue AS (
    SELECT $1::bigint IS NULL OR (count(*) = $1 AND count(*) FILTER (WHERE status = 'queued') = $2)
        AS same
    FROM withdrawal_queue
), entries AS (
    INSERT INTO journal_entries (seq, ts_ns, kind, ref, memo)
    SELECT * FROM unnest($3::integer[], $4::bigint[], $5::text[], $6::text[], $7::text[])
    WHERE (SELECT same FROM queue)
), lines AS (
    INSERT INTO journal_lines (entry_seq, account, amount_usd, units)
    SELECT * FROM unnest($8::integer[], $9::text[], $10::numeric[], $11::numeric[])
    WHERE (SELECT same FROM queue)
), states AS (
    INSERT INTO pool_state (seq, ts_ns, nav_usd, nav_per_unit, units, cash_usd, allocated_usd,
                            unrealized_pnl_usd, phase, risk_per_trade)
    SELECT * FROM unnest($12::integer[], $13::bigint[], $14::numeric[], $15::numeric[],
                         $16::numeric[], $17::numeric[], $18::numeric[], $19::numeric[],
                         $20::text[], $21::numeric[])
    WHERE (SELECT same FROM queue)
)
SELECT same FROM queue
"""
"""PostgreSQL: the queue check and every entry, line and pool state of a transaction in
one statement (one round trip, one prepared statement whatever the batch size)."""
_STATE_COLUMNS = (
    "seq",
    "ts_ns",
    "nav_usd",
    "nav_per_unit",
    "units",
    "cash_usd",
    "allocated_usd",
    "unrealized_pnl_usd",
    "phase",
    "risk_per_trade",
)


def _insert_journal_pg(
    conn: Connection,
    entries: list[tuple[JournalEntry, PoolFigures]],
    queue_version: tuple[int, int] | None,
) -> bool:
    """PostgreSQL: insert ``entries`` unless the queue moved; False when it did."""
    lines = [(e.seq, ln) for e, _ in entries for ln in e.lines]
    states = [_state_row(e, after) for e, after in entries]
    params = (
        *(queue_version if queue_version is not None else (None, None)),
        [e.seq for e, _ in entries],
        [e.ts_ns for e, _ in entries],
        [e.kind for e, _ in entries],
        [e.ref for e, _ in entries],
        [e.memo[:256] for e, _ in entries],
        [seq for seq, _ in lines],
        [ln.account for _, ln in lines],
        [_exact(ln.amount_usd) for _, ln in lines],
        [_exact(ln.units) for _, ln in lines],
        *(
            [_exact(s[c]) if c not in ("seq", "ts_ns", "phase") else s[c] for s in states]
            for c in _STATE_COLUMNS
        ),
    )
    return bool(conn.exec_driver_sql(_PG_JOURNAL, params).scalar_one())


def _exact(value: object) -> Decimal:
    """A value for a NUMERIC array: Decimal only (what ``DecimalColumn`` accepts)."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise TypeError(f"decimal column needs Decimal, got {type(value).__name__} {value!r}")
    value = Decimal(value)
    if not value.is_finite():
        raise ValueError(f"decimal column refuses {value}")
    return value


def _insert_changes(
    conn: Connection, changes: Sequence[Change], queue_version: tuple[int, int] | None
) -> None:
    entries = [(c.entry, c.after) for c in changes if c.entry is not None]
    if conn.dialect.name == "postgresql" and entries:
        if not _insert_journal_pg(conn, entries, queue_version):  # type: ignore[arg-type]
            raise ConcurrencyConflict("the withdrawal queue was changed by another writer")
    else:
        if queue_version is not None and tuple(conn.execute(_QUEUE_VERSION).one()) != queue_version:
            raise ConcurrencyConflict("the withdrawal queue was changed by another writer")
        if entries:
            conn.execute(
                _INSERT_ENTRY,
                [
                    {
                        "seq": e.seq,
                        "ts_ns": e.ts_ns,
                        "kind": e.kind,
                        "ref": e.ref,
                        "memo": e.memo[:256],
                    }
                    for e, _ in entries
                ],
            )
            conn.execute(
                _INSERT_LINE,
                [
                    {
                        "entry_seq": e.seq,
                        "account": ln.account,
                        "amount_usd": ln.amount_usd,
                        "units": ln.units,
                    }
                    for e, _ in entries
                    for ln in e.lines
                ],
            )
            conn.execute(_INSERT_STATE, [_state_row(e, after) for e, after in entries])  # type: ignore[arg-type]
    for change in changes:
        if change.rows is not None:
            change.rows(conn)


async def write_changes(
    store: Store, changes: Sequence[Change], queue_version: tuple[int, int] | None = None
) -> None:
    """Store ``changes`` in one transaction (all or nothing), entries in their order.

    Args:
        queue_version: when given, the :attr:`WithdrawalQueue.version` the caller's
            memory holds; the transaction first checks the stored queue still has it.

    Raises:
        ConcurrencyConflict: an entry's ``seq`` or ``ref``, or a queued withdrawal's id,
            exists already, the queue changed, or a ``rows`` function raised it: another
            writer was first; nothing was written.
        InvalidEvent: another constraint refused the rows (e.g. a trade id that is
            already another allocation's); nothing was written.
    """

    def write(conn: Connection) -> None:
        _insert_changes(conn, changes, queue_version)

    try:
        await store.write(write)
    except IntegrityError as exc:
        refs = ", ".join(c.entry.ref for c in changes if c.entry is not None) or "queue"
        if not any(race in str(exc.orig) for race in _RACES):  # not a race: bad input
            raise InvalidEvent(f"journal entry {refs}: refused by the store: {exc.orig}") from exc
        raise ConcurrencyConflict(f"{refs}: written by another writer first") from exc


async def append_entry(
    store: Store, entry: JournalEntry, after: PoolFigures, extra: Extra | None = None
) -> None:
    """Insert ``entry``, its lines, the pool state after it and ``extra`` rows, atomically.

    Raises:
        ConcurrencyConflict: ``entry.seq`` or ``entry.ref`` exists already.
        InvalidEvent: another constraint refused the rows (e.g. a trade id that is
            already another allocation's); nothing was written.
    """
    await write_changes(store, [Change(entry, after, extra)])


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


def insert_queued(conn: Connection, row: dict[str, Any]) -> None:
    """Insert a queue row (inside a transaction); the database numbers its position."""
    conn.execute(insert(m.withdrawal_queue), {k: v for k, v in row.items() if k != "position"})


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
