"""A notification as people read it: a title with the severity first, and a short body in
plain text, Markdown (Discord, Telegram, Slack) and HTML (email).

Title: ``[CRITICAL] breaker_open: binance (2 alerts)``; ``[RESOLVED] ...`` when nothing
fires any more; ``[TEST] ...`` for a test notification. Body: how many fire and resolved,
then one line per alert (at most :data:`MAX_ALERTS_LISTED`): severity, name, message,
labels, since when (UTC) or when it resolved.

Secrets never reach a message: receiver URLs are not part of a notification; alert text
and label values are scrubbed (the ``user:password@`` of any URL, values registered with
:func:`corec.core.logging.register_secret`, which include every receiver URL's tokens),
and labels whose name looks like a secret (``token``, ``password`` ...) show ``***``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from corec.core.clock import NS_PER_S
from corec.core.logging import mask_secrets
from corec.plugins.alert_manager.receivers import strip_credentials
from corec.plugins.alert_manager.types import AlertInstance, Notification

MAX_ALERTS_LISTED = 10
"""Alerts listed per state in one message; the rest are counted ("... and 4 more")."""
_SECRET_LABEL_MARKERS = (
    "password",
    "secret",
    "token",
    "api_key",
    "apikey",
    "passphrase",
    "webhook",
)
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()|~<])")
"""Escaped in alert text (never at a line start there, so ``#``, ``>``, ``+`` are safe)."""


@dataclass(frozen=True, slots=True)
class Rendered:
    """One notification, ready to send.

    Fields:
        title: one line, severity first (an email's subject).
        text: plain text body.
        markdown: CommonMark body (Apprise converts it to the service's dialect).
        html: an HTML fragment, every value escaped.
    """

    title: str
    text: str
    markdown: str
    html: str


def clean(text: str) -> str:
    """``text`` without URL credentials or registered secrets, on one line."""
    return " ".join(mask_secrets(strip_credentials(text)).split())


def safe_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """``labels`` with secret-looking names masked and values cleaned (sorted by name)."""
    out = {}
    for key in sorted(labels):
        lowered = key.lower()
        secret = any(marker in lowered for marker in _SECRET_LABEL_MARKERS)
        out[key] = "***" if secret else clean(str(labels[key]))
    return out


def utc(ts_ns: int) -> str:
    """``2026-01-01 00:00:00 UTC`` for a UTC nanosecond timestamp."""
    return datetime.fromtimestamp(ts_ns / NS_PER_S, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def title_of(notification: Notification) -> str:
    """The title line: ``[SEVERITY] name: group values (N alerts)``."""
    if notification.test:
        return "[TEST] CoreC test notification"
    firing, resolved = notification.firing, notification.resolved
    tag = notification.severity.upper() if firing else "RESOLVED"
    alerts = firing or resolved
    group = safe_labels(notification.group_labels)
    name = group.pop("alertname", None)
    if name is None:
        names = sorted({a.name for a in alerts})
        name = ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")
    values = ", ".join(v for v in group.values() if v)
    head = f"[{tag}] {clean(name)}" + (f": {values}" if values else "")
    if firing and resolved:
        count = f"{len(firing)} firing, {len(resolved)} resolved"
    else:
        count = _plural(len(alerts), "alert")
    return f"{head} ({count})"


def _when(alert: AlertInstance) -> str:
    if alert.state == "resolved" and alert.ends_ts_ns is not None:
        return f"resolved {utc(alert.ends_ts_ns)}"
    return f"since {utc(alert.starts_ts_ns)}"


def _md(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def _code(text: str) -> str:
    return "`" + text.replace("`", "'") + "`"


def _sections(notification: Notification) -> list[tuple[str, tuple[AlertInstance, ...]]]:
    return [
        (s, a)
        for s, a in (("Firing", notification.firing), ("Resolved", notification.resolved))
        if a
    ]


def render(notification: Notification) -> Rendered:
    """The title and the three bodies of ``notification`` (see the module docstring).

    A test notification (``notification.test``) says it is a test, for which receiver,
    and when; it lists no alert.
    """
    title = title_of(notification)
    if notification.test:
        line = (
            f"Test notification to receiver '{clean(notification.receiver)}' at "
            f"{utc(notification.created_ts_ns)}. If you read this, delivery works."
        )
        return Rendered(title, line, _md(line), f"<p>{html.escape(line)}</p>")

    text: list[str] = []
    md: list[str] = []
    htm: list[str] = [f"<p><b>{html.escape(title)}</b></p>"]
    group = safe_labels(notification.group_labels)
    group.pop("alertname", None)  # in the title
    if group:
        pairs = ", ".join(f"{k}={v}" for k, v in group.items())
        text.append(f"Group: {pairs}")
        md.append("Group: " + ", ".join(_code(f"{k}={v}") for k, v in group.items()))
        htm.append(f"<p>Group: {html.escape(pairs)}</p>")
    for heading, alerts in _sections(notification):
        text.append(f"{heading} ({len(alerts)}):")
        md.append(f"**{heading} ({len(alerts)})**")
        htm.append(f"<p><b>{heading} ({len(alerts)})</b></p><ul>")
        for alert in alerts[:MAX_ALERTS_LISTED]:
            labels = safe_labels(alert.labels)
            pairs = ", ".join(f"{k}={v}" for k, v in labels.items())
            severity = alert.severity.upper()
            name, message, when = clean(alert.name), clean(alert.message), _when(alert)
            repeats = f" x{alert.occurrences}" if alert.occurrences > 1 else ""
            text.append(
                f"- [{severity}] {name}: {message}"
                + (f" ({pairs})" if pairs else "")
                + f" {when}{repeats}"
            )
            md.append(
                f"- **{severity}** {_md(name)}: {_md(message)}"
                + (" " + " ".join(_code(f"{k}={v}") for k, v in labels.items()) if labels else "")
                + f" _{when}{repeats}_"
            )
            htm.append(
                f"<li><b>{severity}</b> {html.escape(name)}: {html.escape(message)}"
                + (f" <code>{html.escape(pairs)}</code>" if pairs else "")
                + f" <i>{html.escape(when + repeats)}</i></li>"
            )
        if len(alerts) > MAX_ALERTS_LISTED:
            more = f"... and {len(alerts) - MAX_ALERTS_LISTED} more"
            text.append(more)
            md.append(_md(more))
            htm.append(f"<li>{html.escape(more)}</li>")
        htm.append("</ul>")
    return Rendered(title, "\n".join(text), "\n".join(md), "".join(htm))
