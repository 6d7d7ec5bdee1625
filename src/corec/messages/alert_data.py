"""``alert_data``: alerts as the alert manager classified and recorded them, and what
became of their notifications."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar, Final, Literal

import msgspec

from corec.core.events import Payload
from corec.core.notices import AlertState, Severity
from corec.core.queries import DEFAULT_PAGE_LIMIT

DeliveryOutcome = Literal["sent", "failed", "rate_limited", "breaker_open", "gave_up", "fallback"]


class AlertRecorded(Payload, frozen=True, kw_only=True):
    """A classified alert: a new firing, a repeat of an active one, or its resolution.

    Fields:
        alert_id: the stored firing's id; ``fingerprint``: its identity (name + labels).
        severity: after classification; ``occurrences``: receipts in this firing.
        deduplicated: true when this was a repeat of an active firing (not re-notified).
        state: ``firing`` or ``resolved`` (this receipt ended the firing).
        muted_by: ``silence:<id>`` or ``inhibited:<fingerprint>`` when muted at receipt.
    """

    TYPE: ClassVar[str] = "alert_recorded"
    alert_id: str
    fingerprint: str
    name: str
    severity: Severity
    source: str
    message: str
    labels: dict[str, str]
    occurrences: int
    deduplicated: bool
    state: AlertState = "firing"
    muted_by: str | None = None


class NotificationAttempted(Payload, frozen=True, kw_only=True):
    """One attempt to deliver a notification to a receiver, and its outcome.

    Fields:
        notification_id: the outbox entry (one group, one receiver, one moment).
        receiver: the receiver's name; ``attempt``: 1 for the first try.
        outcome: ``sent``; ``failed`` (will retry); ``rate_limited`` (429, will retry
            after ``retry_after_s``); ``breaker_open`` (not tried); ``gave_up`` (no
            attempts left); ``fallback`` (a critical alert written to the local file).
        error: what went wrong (never a URL or a secret); ``duration_ms``: the send.
        severity: the notification's severity; ``alert_ids``: the alerts it carried.
    """

    TYPE: ClassVar[str] = "notification_attempted"
    notification_id: str
    receiver: str
    attempt: int
    outcome: DeliveryOutcome
    severity: Severity
    alert_ids: list[str]
    error: str | None = None
    retry_after_s: Decimal | None = None
    duration_ms: Decimal = Decimal(0)


class AlertExpired(Payload, frozen=True, kw_only=True):
    """A one-off firing lapsed: nothing repeated it for ``resolve_timeout_s`` (stored as
    state ``expired``; no resolved notification is sent). ``ends_ts_ns``: when (node clock)."""

    TYPE: ClassVar[str] = "alert_expired"
    alert_id: str
    fingerprint: str
    name: str
    severity: Severity
    ends_ts_ns: int


class AlertAcknowledged(Payload, frozen=True, kw_only=True):
    """A person acknowledged an alert: it is no longer re-notified while it fires."""

    TYPE: ClassVar[str] = "alert_acknowledged"
    alert_id: str
    by: str
    ts_ns: int


class SilenceChanged(Payload, frozen=True, kw_only=True):
    """A silence was created or ended early (``expired_ts_ns`` set).

    Fields:
        matchers: ``LABEL=VALUE`` style, all must match; ``starts_ts_ns`` / ``ends_ts_ns``:
        the window (UTC ns, half-open).
    """

    TYPE: ClassVar[str] = "silence_changed"
    silence_id: str
    matchers: list[str]
    starts_ts_ns: int
    ends_ts_ns: int
    created_by: str
    comment: str = ""
    expired_ts_ns: int | None = None


# -- query endpoints (conventions in corec.core.queries) -----------------------------------
ALERTS: Final = "alert_manager.alerts"
"""Request endpoint: :class:`AlertsRequest` → :class:`AlertsPage` |
:class:`~corec.core.queries.Refused` (``invalid``: a bad filter)."""

ACK: Final = "alert_manager.ack"
"""Request endpoint: :class:`AckRequest` → :class:`AlertAcknowledged` |
:class:`~corec.core.queries.Refused` (``not_found``: no such alert)."""

SILENCE: Final = "alert_manager.silence"
"""Request endpoint: :class:`SilenceRequest` → :class:`SilenceChanged` |
:class:`~corec.core.queries.Refused` (``invalid``: a bad matcher or duration)."""

SILENCES: Final = "alert_manager.silences"
"""Request endpoint: :class:`SilencesRequest` → :class:`SilencesPage`."""

UNSILENCE: Final = "alert_manager.unsilence"
"""Request endpoint: :class:`UnsilenceRequest` → :class:`SilenceChanged` |
:class:`~corec.core.queries.Refused` (``not_found``: no such silence)."""

StoredAlertState = Literal["firing", "resolved", "expired"]
"""A stored firing's state: ``expired`` = ``resolve_timeout`` passed without a repeat."""


class AlertsRequest(Payload, frozen=True, kw_only=True):
    """List stored alerts (``alert_manager.alerts``), newest first (by first receipt).

    Fields:
        severity, state: only alerts of this severity / state.
        name_prefix: only alerts whose name starts with it (``breaker_``: the breakers'
            history).
        acked: only acknowledged (``True``) or unacknowledged (``False``) ones.
        limit, offset: paging (see :mod:`corec.core.queries`).
    """

    TYPE: ClassVar[str] = "alerts_request"
    severity: Severity | None = None
    state: StoredAlertState | None = None
    name_prefix: str | None = None
    acked: bool | None = None
    limit: int = DEFAULT_PAGE_LIMIT
    offset: int = 0


class AlertRow(msgspec.Struct, frozen=True, kw_only=True):
    """One stored firing of an alert.

    Fields:
        alert_id, fingerprint: the firing and its identity (name + labels).
        occurrences: receipts in this firing; ``starts_ts_ns`` / ``last_ts_ns``: the
            first and the latest (UTC ns); ``ends_ts_ns``: when it resolved or expired.
        acked_by, acked_ts_ns: its acknowledgement, if any.
        muted_by: ``silence:<id>`` or ``inhibited:<fingerprint>`` when muted at receipt.
    """

    alert_id: str
    fingerprint: str
    name: str
    severity: Severity
    state: StoredAlertState
    source: str
    message: str
    labels: dict[str, str]
    occurrences: int
    starts_ts_ns: int
    last_ts_ns: int
    ends_ts_ns: int | None
    acked_by: str | None
    acked_ts_ns: int | None
    muted_by: str | None


class AlertsPage(Payload, frozen=True, kw_only=True):
    """Reply to ``alert_manager.alerts``: ``total`` alerts matched, this page."""

    TYPE: ClassVar[str] = "alerts_page"
    total: int
    items: tuple[AlertRow, ...]


class AckRequest(Payload, frozen=True, kw_only=True):
    """Acknowledge an alert (``alert_manager.ack``): it is no longer re-notified while it
    fires. Acking again keeps the first acknowledgement (the reply says whose)."""

    TYPE: ClassVar[str] = "ack_request"
    alert_id: str
    by: str


class SilenceRequest(Payload, frozen=True, kw_only=True):
    """Silence matching alerts from now (``alert_manager.silence``).

    Fields:
        matchers: Alertmanager's ``LABEL=VALUE``, ``LABEL!=VALUE``, ``LABEL=~REGEX``,
            ``LABEL!~REGEX`` (``alertname`` and ``severity`` are labels too); all must
            match.
        duration_s: how long, in seconds (> 0; fractions allowed).
        created_by: who; ``comment``: why.
    """

    TYPE: ClassVar[str] = "silence_request"
    matchers: tuple[str, ...]
    duration_s: Decimal
    created_by: str
    comment: str = ""


class SilencesRequest(Payload, frozen=True, kw_only=True):
    """List silences (``alert_manager.silences``), newest first (by start).

    Fields:
        include_expired: also the ones that ended (by time or early).
        limit, offset: paging.
    """

    TYPE: ClassVar[str] = "silences_request"
    include_expired: bool = False
    limit: int = DEFAULT_PAGE_LIMIT
    offset: int = 0


class SilencesPage(Payload, frozen=True, kw_only=True):
    """Reply to ``alert_manager.silences``: ``total`` silences matched, this page."""

    TYPE: ClassVar[str] = "silences_page"
    total: int
    items: tuple[SilenceChanged, ...]


class UnsilenceRequest(Payload, frozen=True, kw_only=True):
    """End a silence now (``alert_manager.unsilence``); ending one that has ended
    already answers it unchanged."""

    TYPE: ClassVar[str] = "unsilence_request"
    silence_id: str
    by: str
