"""The notification outbox: ``notifications`` (one row per notification to one receiver)
and ``delivery_attempts`` (every attempt and its outcome), through the plugin's
:class:`~corec.core.store.Store`.

A row's life: ``pending`` (due at ``next_attempt_ts_ns``) → ``sent``, ``failed`` (gave up
after ``max_attempts``) or ``fallback`` (a critical alert written to the local file).
:meth:`Outbox.record` writes an attempt's row(s) *and* the notification's new status in
one transaction, guarded by ``status = 'pending'``: a notification is marked sent in the
same commit that stores its successful attempt, and never twice.

The notification itself is stored as JSON (:func:`notification_to_json`): plain strings
and integers, no ``Decimal``, no floats.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import Connection, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from corec.core.store import Store
from corec.plugins.alert_manager import models as m
from corec.plugins.alert_manager.types import Notification

PENDING, SENT, FAILED, FALLBACK = "pending", "sent", "failed", "fallback"
STATUSES = (PENDING, SENT, FAILED, FALLBACK)
_ERROR_MAX_CHARS = 1_000


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, Mapping):  # MappingProxyType labels
        return dict(obj)
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


_encoder = msgspec.json.Encoder(enc_hook=_enc_hook)
_decoder = msgspec.json.Decoder(Notification)


def notification_to_json(notification: Notification) -> str:
    """``notification`` (with its alerts) as compact JSON text."""
    return _encoder.encode(notification).decode()


def notification_from_json(text: str | bytes) -> Notification:
    """The :class:`Notification` that :func:`notification_to_json` wrote.

    Raises:
        msgspec.ValidationError, msgspec.DecodeError: ``text`` is not such a notification.
    """
    return _decoder.decode(text)


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One ``notifications`` row.

    Fields:
        notification: the stored notification (alerts included).
        status: ``pending``, ``sent``, ``failed`` or ``fallback``.
        attempts: sends tried so far (refusals by an open breaker not counted).
        next_attempt_ts_ns: when a pending entry is due (UTC ns).
        done_ts_ns: when it left ``pending``; ``last_error``: the last failure's text.
    """

    notification: Notification
    status: str
    attempts: int
    created_ts_ns: int
    next_attempt_ts_ns: int
    done_ts_ns: int | None
    last_error: str | None

    @property
    def notification_id(self) -> str:
        """The notification's id (the outbox key)."""
        return self.notification.notification_id

    @property
    def receiver(self) -> str:
        """The receiver's name."""
        return self.notification.receiver


@dataclass(frozen=True, slots=True)
class AttemptRow:
    """One ``delivery_attempts`` row to write.

    Fields:
        attempt: the number of the send this row is about (1 for the first; a
            ``breaker_open`` row names the send that was refused and is not counted).
        outcome: ``sent``, ``failed``, ``rate_limited``, ``breaker_open``, ``gave_up``
            or ``fallback``.
        error: never a URL or secret (scrubbed by the caller); cut to 1,000 characters.
        retry_after_s: what a 429 asked for, seconds; ``duration_ms``: the send's time.
    """

    notification_id: str
    receiver: str
    attempt: int
    ts_ns: int
    outcome: str
    error: str | None = None
    retry_after_s: Decimal | None = None
    duration_ms: Decimal = Decimal(0)

    def row(self) -> dict[str, Any]:
        """As a ``delivery_attempts`` row."""
        return {
            "notification_id": self.notification_id,
            "receiver": self.receiver,
            "attempt": self.attempt,
            "ts_ns": self.ts_ns,
            "outcome": self.outcome,
            "error": None if self.error is None else self.error[:_ERROR_MAX_CHARS],
            "retry_after_s": self.retry_after_s,
            "duration_ms": self.duration_ms,
        }


def _entry(row: Any) -> OutboxEntry:
    return OutboxEntry(
        notification=notification_from_json(row.payload_json),
        status=row.status,
        attempts=row.attempts,
        created_ts_ns=row.created_ts_ns,
        next_attempt_ts_ns=row.next_attempt_ts_ns,
        done_ts_ns=row.done_ts_ns,
        last_error=row.last_error,
    )


class Outbox:
    """The outbox over ``store`` (tables of :mod:`.models`, migrated by the plugin)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def enqueue(
        self,
        notification: Notification,
        *,
        now_ns: int,
        done: tuple[str, Sequence[AttemptRow]] | None = None,
    ) -> bool:
        """Store ``notification`` as pending, due at once; idempotent by its id.

        Args:
            notification: what to deliver (its ``receiver`` says to whom).
            now_ns: the time of enqueueing (UTC ns).
            done: ``(status, attempt rows)`` to store it already finished, in the same
                transaction (the log receiver: sent at once).

        Returns:
            True when stored now, False when a row with this id already existed
            (then nothing is written).
        """
        row = {
            "notification_id": notification.notification_id,
            "receiver": notification.receiver,
            "group_key": notification.group_key,
            "severity": notification.severity,
            "payload_json": notification_to_json(notification),
            "status": PENDING if done is None else done[0],
            "attempts": 0 if done is None else sum(r.outcome != "breaker_open" for r in done[1]),
            "created_ts_ns": now_ns,
            "next_attempt_ts_ns": now_ns,
            "done_ts_ns": None if done is None else now_ns,
            "last_error": None,
        }

        def work(conn: Connection) -> bool:
            exists = conn.execute(
                select(m.notifications.c.notification_id).where(
                    m.notifications.c.notification_id == notification.notification_id
                )
            ).first()
            if exists is not None:
                return False
            conn.execute(insert(m.notifications), row)
            if done is not None and done[1]:
                conn.execute(insert(m.delivery_attempts), [r.row() for r in done[1]])
            return True

        try:
            return await self.store.write(work)
        except IntegrityError:  # another writer inserted the same id between check and insert
            return False

    async def due(self, receiver: str, now_ns: int, limit: int = 50) -> list[OutboxEntry]:
        """Pending entries of ``receiver`` due at ``now_ns``, oldest due first."""
        n = m.notifications.c
        query = (
            select(m.notifications)
            .where(n.receiver == receiver, n.status == PENDING, n.next_attempt_ts_ns <= now_ns)
            .order_by(n.next_attempt_ts_ns, n.created_ts_ns, n.notification_id)
            .limit(limit)
        )
        rows = await self.store.read(lambda conn: conn.execute(query).all())
        return [_entry(r) for r in rows]

    async def next_due_ns(self, receiver: str) -> int | None:
        """When ``receiver``'s earliest pending entry is due (``None``: nothing pending)."""
        n = m.notifications.c
        query = select(func.min(n.next_attempt_ts_ns)).where(
            n.receiver == receiver, n.status == PENDING
        )
        return await self.store.read(lambda conn: conn.execute(query).scalar_one())

    async def get(self, notification_id: str) -> OutboxEntry | None:
        """The entry with this id, or ``None``."""
        query = select(m.notifications).where(m.notifications.c.notification_id == notification_id)
        row = await self.store.read(lambda conn: conn.execute(query).first())
        return None if row is None else _entry(row)

    async def record(
        self,
        notification_id: str,
        rows: Sequence[AttemptRow],
        *,
        status: str,
        attempts: int,
        next_attempt_ts_ns: int,
        done_ts_ns: int | None = None,
        last_error: str | None = None,
    ) -> bool:
        """Store attempt ``rows`` and the entry's new state in one transaction.

        Only a ``pending`` entry changes: when it is no longer pending (another worker
        or process finished it), nothing is written and False is returned.

        Args:
            status: the entry's status after these attempts.
            attempts: sends tried so far; ``next_attempt_ts_ns``: when due again.
            done_ts_ns: set when ``status`` is final; ``last_error``: scrubbed text.
        """
        n = m.notifications.c
        values = {
            "status": status,
            "attempts": attempts,
            "next_attempt_ts_ns": next_attempt_ts_ns,
            "done_ts_ns": done_ts_ns,
            "last_error": None if last_error is None else last_error[:_ERROR_MAX_CHARS],
        }
        statement = (
            update(m.notifications)
            .where(n.notification_id == notification_id, n.status == PENDING)
            .values(**values)
        )

        def work(conn: Connection) -> bool:
            if conn.execute(statement).rowcount != 1:
                return False
            if rows:
                conn.execute(insert(m.delivery_attempts), [r.row() for r in rows])
            return True

        return await self.store.write(work)

    async def pending_counts(self) -> dict[str, int]:
        """Pending entries per receiver (receivers with none are absent)."""
        n = m.notifications.c
        query = select(n.receiver, func.count()).where(n.status == PENDING).group_by(n.receiver)
        rows = await self.store.read(lambda conn: conn.execute(query).all())
        return {receiver: count for receiver, count in rows}

    async def pending_receivers(self) -> set[str]:
        """Receivers that have pending entries."""
        return set(await self.pending_counts())

    async def containing(
        self, alert_ids: Sequence[str], *, exclude_id: str, exclude_receiver: str = "log"
    ) -> list[OutboxEntry]:
        """Other entries whose notification carries one of ``alert_ids`` (firing or
        resolved), except ``exclude_id`` and the receiver ``exclude_receiver``."""
        if not alert_ids:
            return []
        n = m.notifications.c
        query = select(m.notifications).where(
            and_(
                n.notification_id != exclude_id,
                n.receiver != exclude_receiver,
                or_(*(n.payload_json.contains(f'"{a}"', autoescape=True) for a in alert_ids)),
            )
        )
        rows = await self.store.read(lambda conn: conn.execute(query).all())
        wanted = set(alert_ids)
        out = []
        for row in rows:
            entry = _entry(row)
            carried = {
                a.alert_id for a in (*entry.notification.firing, *entry.notification.resolved)
            }
            if carried & wanted:
                out.append(entry)
        return out

    async def list_entries(
        self, *, status: str | None = None, receiver: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Entries for the CLI and the API, newest first, without the payload.

        Each dict: ``notification_id``, ``receiver``, ``group_key``, ``severity``,
        ``status``, ``attempts``, ``created_ts_ns``, ``next_attempt_ts_ns``,
        ``done_ts_ns``, ``last_error``.

        Raises:
            ValueError: an unknown ``status``.
        """
        if status is not None and status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        n = m.notifications.c
        query = select(*(c for c in m.notifications.c if c.name != "payload_json"))
        if status is not None:
            query = query.where(n.status == status)
        if receiver is not None:
            query = query.where(n.receiver == receiver)
        query = query.order_by(n.created_ts_ns.desc(), n.notification_id.desc()).limit(limit)
        rows = await self.store.read(lambda conn: conn.execute(query).all())
        return [dict(r._mapping) for r in rows]

    async def attempts(
        self, notification_id: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """``delivery_attempts`` rows (of one notification, or all), oldest first."""
        a = m.delivery_attempts.c
        query = select(m.delivery_attempts)
        if notification_id is not None:
            query = query.where(a.notification_id == notification_id)
        query = query.order_by(a.attempt_id).limit(limit)
        rows = await self.store.read(lambda conn: conn.execute(query).all())
        return [dict(r._mapping) for r in rows]
