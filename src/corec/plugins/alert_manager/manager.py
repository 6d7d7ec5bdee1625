"""Classification, fingerprints and deduplication of alerts (no I/O).

Identity: the fingerprint is the first 16 hex digits of SHA-256 over the alert's name
and its labels sorted by key (Prometheus Alertmanager identifies alerts by their label
set the same way). An alert whose fingerprint fired less than ``dedup_ttl_s`` ago
(on the node clock) is a repeat: counted on the first firing's record, not reported.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from corec.core.clock import NS_PER_S
from corec.core.ids import new_id
from corec.core.notices import Alert, Severity
from corec.plugins.alert_manager.config import AlertManagerConfig

LOG_LEVEL_BY_SEVERITY = {
    "critical": "critical",
    "high": "error",
    "medium": "warning",
    "low": "info",
}


def fingerprint(name: str, labels: dict[str, str]) -> str:
    """16 hex digits identifying ``name`` + ``labels`` (order of labels irrelevant)."""
    digest = hashlib.sha256(name.encode())
    for key in sorted(labels):
        digest.update(b"\x00" + key.encode() + b"\x01" + labels[key].encode())
    return digest.hexdigest()[:16]


@dataclass
class Firing:
    """The current firing of one fingerprint."""

    alert_id: str
    first_ts_ns: int
    occurrences: int


@dataclass(frozen=True)
class Decision:
    """What to do with an incoming alert."""

    alert_id: str
    fingerprint: str
    severity: Severity
    occurrences: int
    duplicate: bool


class Deduplicator:
    """Severity overrides and TTL-based deduplication by fingerprint."""

    def __init__(self, config: AlertManagerConfig) -> None:
        self.config = config
        self.ttl_ns = int(config.dedup_ttl_s * NS_PER_S)
        self.firings: dict[str, Firing] = {}

    def decide(self, alert: Alert, now_ns: int) -> Decision:
        """Classify ``alert`` at ``now_ns`` and record it as new or as a repeat."""
        severity = self.config.severity_overrides.get(alert.name, alert.severity)
        fp = fingerprint(alert.name, alert.labels)
        firing = self.firings.get(fp)
        if firing is not None and now_ns - firing.first_ts_ns < self.ttl_ns:
            firing.occurrences += 1
            return Decision(firing.alert_id, fp, severity, firing.occurrences, True)
        firing = self.firings[fp] = Firing(alert_id=new_id(), first_ts_ns=now_ns, occurrences=1)
        return Decision(firing.alert_id, fp, severity, 1, False)

    def restore(self, fp: str, alert_id: str, first_ts_ns: int, occurrences: int) -> None:
        """Resume a firing stored before a restart."""
        self.firings[fp] = Firing(alert_id, first_ts_ns, occurrences)
