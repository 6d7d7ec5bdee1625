"""``alert_data``: alerts as the alert manager classified and recorded them, and what
became of their notifications."""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar, Literal

from corec.core.events import Payload
from corec.core.notices import AlertState, Severity

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
