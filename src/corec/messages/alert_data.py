"""``alert_data``: alerts as the alert manager classified and recorded them."""

from __future__ import annotations

from typing import ClassVar

from corec.core.events import Payload
from corec.core.notices import Severity


class AlertRecorded(Payload, frozen=True, kw_only=True):
    """A classified alert, first seen or repeated.

    Fields:
        alert_id: the stored alert's id; ``fingerprint``: its identity (name + labels).
        severity: after classification; ``occurrences``: times seen in this firing.
        deduplicated: true when this was a repeat within the dedup TTL (not re-notified).
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
