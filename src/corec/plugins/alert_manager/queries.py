"""alert_manager's query endpoints (``alert_manager.alerts|ack|silence|silences|
unsilence``).

Reads come from the plugin's store after the write-behind buffer is flushed, so a list
shows every alert received so far. Acks, silences and unsilences go through the
plugin's own :meth:`~.plugin.AlertManagerPlugin.ack`,
:meth:`~.plugin.AlertManagerPlugin.silence` and
:meth:`~.plugin.AlertManagerPlugin.unsilence`: stored, applied to the running engine at
once (no wait for the CLI sync) and published on ``alert_data``. A client's mistake is
answered with :class:`~corec.core.queries.Refused` naming the field at fault.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any, get_args

from sqlalchemy import Connection, func, select

from corec.core.clock import NS_PER_S
from corec.core.events import Payload
from corec.core.notices import SEVERITIES
from corec.core.queries import Refused, page, paging_refusal
from corec.messages.alert_data import (
    AckRequest,
    AlertAcknowledged,
    AlertRow,
    AlertsPage,
    AlertsRequest,
    SilenceRequest,
    SilencesPage,
    SilencesRequest,
    StoredAlertState,
    UnsilenceRequest,
)
from corec.plugins.alert_manager import models as m
from corec.plugins.alert_manager import records

if TYPE_CHECKING:
    from corec.plugins.alert_manager.plugin import AlertManagerPlugin

STATES: tuple[str, ...] = get_args(StoredAlertState)
MAX_NAME_LENGTH = 64
"""Longest ``by`` / ``created_by`` stored (the tables' columns)."""
_TS_MAX = 2**63 - 1


def _text(value: Any, field: str, max_length: int | None = None) -> Refused | None:
    """``value`` must be a non-empty string (of at most ``max_length`` characters)."""
    if not isinstance(value, str) or not value.strip():
        return Refused(code="invalid", message=f"{field} must not be empty", field=field)
    if max_length is not None and len(value) > max_length:
        return Refused(
            code="invalid",
            message=f"{field} must be at most {max_length} characters, got {len(value)}",
            field=field,
        )
    return None


def _expect(payload: Payload, cls: type[Payload], endpoint: str) -> None:
    """A request of the wrong class is the caller's bug, not a client's mistake."""
    if not isinstance(payload, cls):
        raise TypeError(f"{endpoint} expects a {cls.__name__}, got {type(payload).__name__}")


def alert_row(row: Any) -> AlertRow:
    """An ``alerts`` row (mapping) as an :class:`AlertRow`."""
    return AlertRow(
        alert_id=row["alert_id"],
        fingerprint=row["fingerprint"],
        name=row["name"],
        severity=row["severity"],
        state=row["state"],
        source=row["source"],
        message=row["message"],
        labels=json.loads(row["labels_json"]),
        occurrences=row["occurrences"],
        starts_ts_ns=row["first_ts_ns"],
        last_ts_ns=row["last_ts_ns"],
        ends_ts_ns=row["ends_ts_ns"],
        acked_by=row["acked_by"],
        acked_ts_ns=row["acked_ts_ns"],
        muted_by=row["muted_by"],
    )


async def read_alerts(
    store: Any,
    *,
    severity: str | None = None,
    state: str | None = None,
    name_prefix: str | None = None,
    acked: bool | None = None,
    limit: int,
    offset: int,
) -> tuple[int, list[AlertRow]]:
    """``(total, page)`` of stored alerts matching the filters, newest first (by first
    receipt, then id: the order of :func:`records.list_alerts`)."""
    a = m.alerts
    conditions = records.alerts_filter(
        severity=severity, state=state, name_prefix=name_prefix, acked=acked
    )
    count = select(func.count()).select_from(a).where(*conditions)
    rows = select(a).where(*conditions).order_by(*records.NEWEST_FIRST).limit(limit).offset(offset)

    def read(conn: Connection) -> tuple[int, list[AlertRow]]:
        total = int(conn.execute(count).scalar_one())
        return total, [alert_row(r) for r in conn.execute(rows).mappings()]

    return await store.read(read)  # type: ignore[no-any-return]


class AlertQueries:
    """The responders of alert_manager's query endpoints over a started plugin.

    Each takes its request payload and returns the reply payload or a
    :class:`~corec.core.queries.Refused`; see :mod:`corec.messages.alert_data`.
    """

    def __init__(self, plugin: AlertManagerPlugin) -> None:
        self.plugin = plugin

    async def alerts(self, payload: Payload) -> Payload:
        """``alert_manager.alerts``: :class:`AlertsRequest` → :class:`AlertsPage`, or
        ``Refused(invalid)`` for a bad ``severity`` or ``state``."""
        _expect(payload, AlertsRequest, "alert_manager.alerts")
        assert isinstance(payload, AlertsRequest)
        if (refused := paging_refusal(payload.limit, payload.offset)) is not None:
            return refused
        if payload.severity is not None and payload.severity not in SEVERITIES:
            return Refused(
                code="invalid",
                message=f"severity must be one of {', '.join(SEVERITIES)}, "
                f"got {payload.severity!r}",
                field="severity",
            )
        if payload.state is not None and payload.state not in STATES:
            return Refused(
                code="invalid",
                message=f"state must be one of {', '.join(STATES)}, got {payload.state!r}",
                field="state",
            )
        if payload.name_prefix is not None and not isinstance(payload.name_prefix, str):
            return Refused(code="invalid", message="name_prefix must be text", field="name_prefix")
        await self.plugin.flush_alerts()  # the rows received so far, written
        total, items = await read_alerts(
            self.plugin.store,
            severity=payload.severity,
            state=payload.state,
            name_prefix=payload.name_prefix,
            acked=payload.acked,
            limit=payload.limit,
            offset=payload.offset,
        )
        return AlertsPage(total=total, items=tuple(items))

    async def ack(self, payload: Payload) -> Payload:
        """``alert_manager.ack``: :class:`AckRequest` → :class:`AlertAcknowledged` (the
        first acknowledgement: who and when), or ``Refused(not_found, alert_id)``."""
        _expect(payload, AckRequest, "alert_manager.ack")
        assert isinstance(payload, AckRequest)
        for refused in (
            _text(payload.alert_id, "alert_id"),
            _text(payload.by, "by", MAX_NAME_LENGTH),
        ):
            if refused is not None:
                return refused
        try:
            row = await self.plugin.ack(payload.alert_id, payload.by)
        except KeyError:
            return Refused(
                code="not_found", message=f"no alert with id {payload.alert_id!r}", field="alert_id"
            )
        return AlertAcknowledged(
            alert_id=payload.alert_id, by=row["acked_by"], ts_ns=row["acked_ts_ns"]
        )

    async def silence(self, payload: Payload) -> Payload:
        """``alert_manager.silence``: :class:`SilenceRequest` → :class:`SilenceChanged`,
        or ``Refused(invalid)`` naming ``matchers``, ``duration_s`` or ``created_by``."""
        from corec.plugins.alert_manager.plugin import silence_payload

        _expect(payload, SilenceRequest, "alert_manager.silence")
        assert isinstance(payload, SilenceRequest)
        matchers = payload.matchers
        if (
            not isinstance(matchers, (tuple, list))
            or not matchers
            or not all(isinstance(t, str) for t in matchers)
        ):
            return Refused(
                code="invalid",
                message="matchers: at least one LABEL=VALUE (or !=, =~, !~) is needed",
                field="matchers",
            )
        duration = payload.duration_s
        if (
            isinstance(duration, bool)
            or not isinstance(duration, (Decimal, int))
            or not Decimal(duration).is_finite()
            or int(Decimal(duration) * NS_PER_S) < 1
            or self.plugin.ctx.clock.now_ns() + int(Decimal(duration) * NS_PER_S) > _TS_MAX
        ):
            return Refused(
                code="invalid",
                message=f"duration_s must be a positive number of seconds, got {duration!r}",
                field="duration_s",
            )
        if (refused := _text(payload.created_by, "created_by", MAX_NAME_LENGTH)) is not None:
            return refused
        if not isinstance(payload.comment, str):
            return Refused(code="invalid", message="comment must be text", field="comment")
        try:
            made = await self.plugin.silence(
                list(matchers), Decimal(duration), by=payload.created_by, comment=payload.comment
            )
        except ValueError as exc:  # a malformed matcher (the duration is checked above)
            return Refused(code="invalid", message=str(exc), field="matchers")
        return silence_payload(made)

    async def silences(self, payload: Payload) -> Payload:
        """``alert_manager.silences``: :class:`SilencesRequest` → :class:`SilencesPage`,
        newest first; without ``include_expired`` only those not ended yet (pending or
        active)."""
        from corec.plugins.alert_manager.plugin import silence_payload

        _expect(payload, SilencesRequest, "alert_manager.silences")
        assert isinstance(payload, SilencesRequest)
        if (refused := paging_refusal(payload.limit, payload.offset)) is not None:
            return refused
        now_ns = None if payload.include_expired else self.plugin.ctx.clock.now_ns()
        found = await records.load_silences(self.plugin.store, now_ns=now_ns)
        total, items = page(found[::-1], payload.limit, payload.offset)
        return SilencesPage(total=total, items=tuple(silence_payload(s) for s in items))

    async def unsilence(self, payload: Payload) -> Payload:
        """``alert_manager.unsilence``: :class:`UnsilenceRequest` → :class:`SilenceChanged`
        (ended now; one that had ended already, unchanged), or
        ``Refused(not_found, silence_id)``."""
        from corec.plugins.alert_manager.plugin import silence_payload

        _expect(payload, UnsilenceRequest, "alert_manager.unsilence")
        assert isinstance(payload, UnsilenceRequest)
        for refused in (_text(payload.silence_id, "silence_id"), _text(payload.by, "by")):
            if refused is not None:
                return refused
        try:
            ended = await self.plugin.unsilence(payload.silence_id, by=payload.by)
        except KeyError:
            return Refused(
                code="not_found",
                message=f"no silence with id {payload.silence_id!r}",
                field="silence_id",
            )
        return silence_payload(ended)
