"""The alert manager's rows: alerts (written behind, in batches), silences and acks.

Alerts are recorded in memory first (the engine) and written to ``alerts`` by a
write-behind buffer: every change of a firing (new, repeat, resolved, expired, acked) is
queued and :meth:`AlertWriter.flush` writes the latest version of each changed row in one
transaction (a burst of 10,000 alerts is a few transactions, not 10,000). Silences and
acknowledgements are written at once, since a person waits for them; a running node reads
the ones the CLI wrote with :func:`load_silences` / :func:`load_acks`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Boolean, Connection, bindparam, insert, or_, select, update

from corec.core.store import Store
from corec.plugins.alert_manager import models as m
from corec.plugins.alert_manager.outbox import FAILED, notification_from_json
from corec.plugins.alert_manager.types import AlertInstance, Matcher, Silence

_UPDATE_ALERT = (
    update(m.alerts)
    .where(m.alerts.c.alert_id == bindparam("key_alert_id"))
    .values(
        severity=bindparam("severity"),
        message=bindparam("message"),
        last_ts_ns=bindparam("last_ts_ns"),
        occurrences=bindparam("occurrences"),
        state=bindparam("state"),
        ends_ts_ns=bindparam("ends_ts_ns"),
        # a repeat may make a firing resolvable; nothing makes it unresolvable
        resolvable=or_(m.alerts.c.resolvable, bindparam("resolvable", type_=Boolean)),
    )
)


def alert_row(instance: AlertInstance, state: str, muted_by: str | None) -> dict[str, Any]:
    """The ``alerts`` row of ``instance`` (``state``: firing, resolved or expired)."""
    return {
        "alert_id": instance.alert_id,
        "fingerprint": instance.fingerprint,
        "name": instance.name,
        "severity": instance.severity,
        "source": instance.source,
        "labels_json": json.dumps(dict(instance.labels), sort_keys=True),
        "message": instance.message,
        "first_ts_ns": instance.starts_ts_ns,
        "last_ts_ns": instance.updated_ts_ns,
        "occurrences": instance.occurrences,
        "state": state,
        "ends_ts_ns": instance.ends_ts_ns,
        "muted_by": muted_by,
        "resolvable": instance.resolvable,
    }


class AlertWriter:
    """Write-behind buffer of ``alerts`` rows.

    :meth:`record` remembers the latest row per alert id (new rows are inserted, known
    ones updated); :meth:`flush` writes them all in one transaction. Nothing is lost on
    a clean stop (the plugin flushes); a crash loses at most the unflushed interval of
    alert *rows* — never a pending notification (those go to the outbox at once).
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._new: dict[str, dict[str, Any]] = {}
        self._changed: dict[str, dict[str, Any]] = {}
        self.rows_written = 0

    def __len__(self) -> int:
        return len(self._new) + len(self._changed)

    def record(self, row: dict[str, Any], *, new: bool) -> None:
        """Queue ``row`` (see :func:`alert_row`); ``new`` when it is a new firing."""
        alert_id = row["alert_id"]
        if new or alert_id in self._new:
            if not new:  # muted_by is what muted the first receipt (as updates keep it)
                first = self._new[alert_id]
                row = {
                    **row,
                    "muted_by": first["muted_by"],
                    "resolvable": first["resolvable"] or row["resolvable"],
                }
            self._new[alert_id] = row
        else:
            self._changed[alert_id] = row

    async def flush(self) -> int:
        """Write every queued row in one transaction; returns how many."""
        if not self._new and not self._changed:
            return 0
        new, changed = list(self._new.values()), list(self._changed.values())
        self._new, self._changed = {}, {}
        updates = [
            {
                "key_alert_id": r["alert_id"],
                "severity": r["severity"],
                "message": r["message"],
                "last_ts_ns": r["last_ts_ns"],
                "occurrences": r["occurrences"],
                "state": r["state"],
                "ends_ts_ns": r["ends_ts_ns"],
                "resolvable": r["resolvable"],
            }
            for r in changed
        ]

        def write(conn: Connection) -> None:
            if new:
                conn.execute(insert(m.alerts), new)
            if updates:
                conn.execute(_UPDATE_ALERT, updates)

        try:
            await self.store.write(write)
        except BaseException:
            for r in new:  # keep them for the next flush
                self._new.setdefault(r["alert_id"], r)
            for r in changed:
                self._changed.setdefault(r["alert_id"], r)
            raise
        self.rows_written += len(new) + len(updates)
        return len(new) + len(updates)


# -- reading -------------------------------------------------------------------------------
def row_to_instance(row: Any) -> AlertInstance:
    """An ``alerts`` row (mapping) as an :class:`AlertInstance` (for restore)."""
    return AlertInstance(
        alert_id=row["alert_id"],
        fingerprint=row["fingerprint"],
        name=row["name"],
        severity=row["severity"],
        message=row["message"],
        labels=json.loads(row["labels_json"]),
        source=row["source"],
        state="firing" if row["state"] == "firing" else "resolved",
        starts_ts_ns=row["first_ts_ns"],
        updated_ts_ns=row["last_ts_ns"],
        ends_ts_ns=row["ends_ts_ns"],
        occurrences=row["occurrences"],
        resolvable=bool(row["resolvable"]),
    )


async def firing_rows(store: Store) -> list[dict[str, Any]]:
    """Every alert still firing, oldest first (to restore the engine after a restart)."""
    query = select(m.alerts).where(m.alerts.c.state == "firing").order_by(m.alerts.c.first_ts_ns)
    return [dict(r) for r in await store.read(lambda c: c.execute(query).mappings().all())]


def alerts_filter(
    *,
    severity: str | None = None,
    state: str | None = None,
    name_prefix: str | None = None,
    acked: bool | None = None,
) -> list[Any]:
    """The WHERE conditions on ``alerts`` for these filters (``name_prefix`` literal:
    ``_`` matches only ``_``; ``acked`` True/False: acknowledged or not). The one
    filter of the CLI's and the API's listings."""
    a = m.alerts
    conditions: list[Any] = []
    if severity is not None:
        conditions.append(a.c.severity == severity)
    if state is not None:
        conditions.append(a.c.state == state)
    if name_prefix:
        conditions.append(a.c.name.startswith(name_prefix, autoescape=True))
    if acked is not None:
        conditions.append(a.c.acked_ts_ns.is_not(None) if acked else a.c.acked_ts_ns.is_(None))
    return conditions


NEWEST_FIRST = (m.alerts.c.first_ts_ns.desc(), m.alerts.c.alert_id.desc())
"""The order of every alert listing: newest first receipt, then id."""


async def list_alerts(
    store: Store,
    *,
    severity: str | None = None,
    state: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Stored alerts, newest first; optionally of one severity and/or state
    (``firing``, ``resolved``, ``expired``). Each row has ``labels`` decoded."""
    query = (
        select(m.alerts)
        .where(*alerts_filter(severity=severity, state=state))
        .order_by(*NEWEST_FIRST)
        .limit(limit)
        .offset(offset)
    )
    rows = await store.read(lambda conn: conn.execute(query).mappings().all())
    return [{**dict(r), "labels": json.loads(r["labels_json"])} for r in rows]


async def get_alert(store: Store, alert_id: str) -> dict[str, Any] | None:
    """One stored alert with its notifications and their attempts, or ``None``.

    Returns:
        the ``alerts`` row (``labels`` decoded) plus ``notifications``: the outbox rows
        whose payload names this alert, each with its ``attempts`` (oldest first).
    """

    def read(conn: Connection) -> dict[str, Any] | None:
        row = conn.execute(select(m.alerts).where(m.alerts.c.alert_id == alert_id)).mappings()
        found = row.first()
        if found is None:
            return None
        out = {**dict(found), "labels": json.loads(found["labels_json"])}
        notes = conn.execute(
            select(m.notifications)
            .where(m.notifications.c.payload_json.contains(alert_id))
            .order_by(m.notifications.c.created_ts_ns)
        ).mappings()
        out["notifications"] = []
        for note in notes:
            attempts = conn.execute(
                select(m.delivery_attempts)
                .where(m.delivery_attempts.c.notification_id == note["notification_id"])
                .order_by(m.delivery_attempts.c.attempt_id)
            ).mappings()
            entry = {k: v for k, v in dict(note).items() if k != "payload_json"}
            entry["attempts"] = [dict(a) for a in attempts]
            out["notifications"].append(entry)
        return out

    return await store.read(read)


# -- acknowledgements ------------------------------------------------------------------
async def ack_alert(store: Store, alert_id: str, by: str, ts_ns: int) -> dict[str, Any]:
    """Acknowledge a stored alert (one transaction); acking again keeps the first ack.

    Returns:
        the row after the ack.

    Raises:
        KeyError: no alert has this id.
    """

    def write(conn: Connection) -> dict[str, Any]:
        row = conn.execute(select(m.alerts).where(m.alerts.c.alert_id == alert_id)).mappings()
        found = row.first()
        if found is None:
            raise KeyError(f"no alert with id {alert_id!r} (see `corec alerts list`)")
        if found["acked_ts_ns"] is None:
            conn.execute(
                update(m.alerts)
                .where(m.alerts.c.alert_id == alert_id)
                .values(acked_ts_ns=ts_ns, acked_by=by)
            )
            return {**dict(found), "acked_ts_ns": ts_ns, "acked_by": by}
        return dict(found)

    return await store.write(write)


async def load_acks(store: Store) -> dict[str, tuple[int, str]]:
    """Acks of alerts still firing: alert id → (acked_ts_ns, acked_by)."""
    a = m.alerts
    query = select(a.c.alert_id, a.c.acked_ts_ns, a.c.acked_by).where(
        a.c.state == "firing", a.c.acked_ts_ns.is_not(None)
    )
    rows = await store.read(lambda conn: conn.execute(query).all())
    return {alert_id: (ts, by or "") for alert_id, ts, by in rows}


# -- silences ----------------------------------------------------------------------------
def silence_row(silence: Silence, created_ts_ns: int) -> dict[str, Any]:
    """The ``silences`` row of ``silence``."""
    return {
        "silence_id": silence.silence_id,
        "matchers_json": json.dumps([str(x) for x in silence.matchers]),
        "starts_ts_ns": silence.starts_ts_ns,
        "ends_ts_ns": silence.ends_ts_ns,
        "created_by": silence.created_by,
        "comment": silence.comment,
        "created_ts_ns": created_ts_ns,
        "expired_ts_ns": silence.expired_ts_ns,
    }


def row_to_silence(row: Any) -> Silence:
    """A ``silences`` row as a :class:`Silence`."""
    return Silence(
        silence_id=row["silence_id"],
        matchers=tuple(Matcher.parse(t) for t in json.loads(row["matchers_json"])),
        starts_ts_ns=row["starts_ts_ns"],
        ends_ts_ns=row["ends_ts_ns"],
        created_by=row["created_by"],
        comment=row["comment"],
        expired_ts_ns=row["expired_ts_ns"],
    )


async def add_silence(store: Store, silence: Silence, created_ts_ns: int) -> None:
    """Store a new silence (one transaction)."""
    row = silence_row(silence, created_ts_ns)
    await store.write(lambda conn: conn.execute(insert(m.silences), row))


async def expire_silence(store: Store, silence_id: str, ts_ns: int) -> Silence:
    """End a silence now.

    Raises:
        KeyError: no silence has this id.
    """

    def write(conn: Connection) -> Silence:
        found = (
            conn.execute(select(m.silences).where(m.silences.c.silence_id == silence_id))
            .mappings()
            .first()
        )
        if found is None:
            raise KeyError(f"no silence with id {silence_id!r} (see `corec alerts silences`)")
        if found["expired_ts_ns"] is None and ts_ns < found["ends_ts_ns"]:
            conn.execute(
                update(m.silences)
                .where(m.silences.c.silence_id == silence_id)
                .values(expired_ts_ns=ts_ns)
            )
            return row_to_silence({**dict(found), "expired_ts_ns": ts_ns})
        return row_to_silence(found)

    return await store.write(write)


async def load_silences(store: Store, *, now_ns: int | None = None) -> list[Silence]:
    """Stored silences, oldest first; with ``now_ns`` only those not yet ended."""
    s = m.silences
    query = select(s).order_by(s.c.starts_ts_ns, s.c.silence_id)
    if now_ns is not None:
        query = query.where(s.c.ends_ts_ns > now_ns, s.c.expired_ts_ns.is_(None))
    rows = await store.read(lambda conn: conn.execute(query).mappings().all())
    return [row_to_silence(r) for r in rows]


async def notified_times(store: Store, *, since_ns: int) -> dict[str, int]:
    """Alert id → when a notification listing it as firing was last created (at or
    after ``since_ns``; entries that were given up are left out): what receivers were
    already told, so that a restart does not notify it again (the engine's ``notified``).
    """
    n = m.notifications
    query = select(n.c.payload_json, n.c.created_ts_ns).where(
        n.c.created_ts_ns >= since_ns, n.c.status != FAILED
    )
    rows = await store.read(lambda conn: conn.execute(query).all())
    out: dict[str, int] = {}
    for payload_json, created_ts_ns in rows:
        for alert in notification_from_json(payload_json).firing:
            out[alert.alert_id] = max(out.get(alert.alert_id, created_ts_ns), created_ts_ns)
    return out


def instances_from(rows: Iterable[dict[str, Any]]) -> list[AlertInstance]:
    """Rows from :func:`firing_rows` as instances."""
    return [row_to_instance(r) for r in rows]
