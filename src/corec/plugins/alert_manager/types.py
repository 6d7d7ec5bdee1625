"""The alert manager's own value types, shared by its rules, engine, routing and delivery.

Vocabulary follows Prometheus Alertmanager: an *alert* is identified by its label set
(its *fingerprint*); alerts are *grouped* by some labels into *notifications* for a
*receiver*; *silences* and *inhibitions* mute alerts; an alert *resolves* when its
condition ends.

Every alert's label set, as matchers see it, is its own labels plus three reserved ones:
``alertname`` (the alert's name), ``severity`` and ``source`` (``plugin@instance``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from corec.core.notices import AlertState, Severity

MatchOp = Literal["=", "!=", "=~", "!~"]
MATCH_OPS: tuple[MatchOp, ...] = ("=", "!=", "=~", "!~")
RESERVED_LABELS = ("alertname", "severity", "source")
SEVERITY_RANK: dict[Severity, int] = {"critical": 3, "high": 2, "medium": 1, "low": 0}
"""Higher is more severe (for ``max`` and for "at least" routes)."""


def fingerprint(name: str, labels: Mapping[str, str]) -> str:
    """16 hex digits identifying an alert: SHA-256 over ``name`` and ``labels`` sorted by
    key (order irrelevant). Severity, message and source are not part of the identity."""
    digest = hashlib.sha256(name.encode())
    for key in sorted(labels):
        digest.update(b"\x00" + key.encode() + b"\x01" + labels[key].encode())
    return digest.hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Matcher:
    """One label matcher, Alertmanager's syntax: ``label=value``, ``label!=value``,
    ``label=~regex``, ``label!~regex`` (regexes are anchored: they match the whole value).
    A label that is absent matches as the empty string."""

    label: str
    op: MatchOp
    value: str

    def __post_init__(self) -> None:
        if self.op not in MATCH_OPS:
            raise ValueError(f"matcher {self.label!r}: unknown operator {self.op!r}")
        if self.op in ("=~", "!~"):
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"matcher {self.label}{self.op}{self.value!r}: {exc}") from exc

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """``'severity=critical'``, ``'exchange!=kraken'``, ``'symbol=~BTC.*'`` → Matcher.

        Raises:
            ValueError: no operator, an empty label name, or a bad regex.
        """
        m = re.fullmatch(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*", text)
        if m is None:
            raise ValueError(
                f"matcher {text!r}: expected LABEL=VALUE, LABEL!=VALUE, LABEL=~REGEX or "
                "LABEL!~REGEX"
            )
        value = m.group(3)
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        return cls(m.group(1), m.group(2), value)  # type: ignore[arg-type]

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` (including the reserved ones) satisfy this matcher."""
        actual = labels.get(self.label, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f"{self.label}{self.op}{self.value}"


def matches_all(matchers: tuple[Matcher, ...] | list[Matcher], labels: Mapping[str, str]) -> bool:
    """True when every matcher matches ``labels`` (an empty list matches everything)."""
    return all(matcher.matches(labels) for matcher in matchers)


@dataclass(frozen=True, slots=True)
class AlertInstance:
    """One alert as the engine holds it (one per fingerprint at a time).

    Fields:
        alert_id: id of this firing (a new one when the same fingerprint fires again
            after it resolved).
        fingerprint: :func:`fingerprint` of ``name`` + ``labels``.
        name, severity, message, labels, source: from the alert (labels without the
            reserved ones; see :meth:`match_labels`).
        state: ``firing`` or ``resolved``.
        starts_ts_ns: when this firing started; ``ends_ts_ns``: when it resolved.
        updated_ts_ns: the last time it was received (a repeat moves it).
        occurrences: how many times it was received in this firing (repeats counted).
        resolvable: it waits for an explicit resolution instead of expiring after
            ``resolve_timeout_s`` (see :class:`corec.core.notices.Alert`).
    """

    alert_id: str
    fingerprint: str
    name: str
    severity: Severity
    message: str
    labels: Mapping[str, str]
    source: str
    state: AlertState
    starts_ts_ns: int
    updated_ts_ns: int
    ends_ts_ns: int | None = None
    occurrences: int = 1
    resolvable: bool = False

    def match_labels(self) -> dict[str, str]:
        """Labels plus ``alertname``, ``severity`` and ``source``, for matchers."""
        return {
            **self.labels,
            "alertname": self.name,
            "severity": self.severity,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class Notification:
    """What one receiver is told about one group at one moment.

    Fields:
        notification_id: unique, time-ordered; the outbox's key (a retry reuses it).
        receiver: the receiver's name (see the ``receivers`` config).
        group_key: the route and the group's label values (stable across flushes).
        group_labels: the values of the ``group_by`` labels shared by the group.
        severity: the highest severity among ``firing`` (among ``resolved`` if none fire).
        firing, resolved: the group's alerts in each state at this flush (resolved
            only where the receiver wants them).
        created_ts_ns: the flush time (node clock).
        test: a test notification (``corec alerts test``): not from any alert.
    """

    notification_id: str
    receiver: str
    group_key: str
    group_labels: Mapping[str, str]
    severity: Severity
    firing: tuple[AlertInstance, ...]
    resolved: tuple[AlertInstance, ...]
    created_ts_ns: int
    test: bool = False


@dataclass(frozen=True, slots=True)
class Silence:
    """Mutes every alert whose labels match all ``matchers`` between ``starts_ts_ns``
    and ``ends_ts_ns`` (half-open). Muted alerts are still stored and published; they
    are not notified.

    Fields:
        silence_id: unique; ``created_by``: who set it (CLI user, API user);
        comment: why; ``expired_ts_ns``: set when ended early (``corec alerts unsilence``).
    """

    silence_id: str
    matchers: tuple[Matcher, ...]
    starts_ts_ns: int
    ends_ts_ns: int
    created_by: str = "cli"
    comment: str = ""
    expired_ts_ns: int | None = None

    def active(self, now_ns: int) -> bool:
        """Whether it mutes at ``now_ns``."""
        end = self.ends_ts_ns if self.expired_ts_ns is None else self.expired_ts_ns
        return self.starts_ts_ns <= now_ns < end

    def mutes(self, labels: Mapping[str, str], now_ns: int) -> bool:
        """Whether it is active and matches ``labels`` (with the reserved labels)."""
        return self.active(now_ns) and matches_all(self.matchers, labels)


@dataclass(frozen=True, slots=True)
class InhibitRule:
    """While an alert matching ``source_matchers`` fires, alerts matching
    ``target_matchers`` that have the same values for every label in ``equal`` are not
    notified (Alertmanager's ``inhibit_rules``). An alert never inhibits itself."""

    source_matchers: tuple[Matcher, ...]
    target_matchers: tuple[Matcher, ...]
    equal: tuple[str, ...] = field(default=())
