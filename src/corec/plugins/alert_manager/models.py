"""alert_manager's tables.

- ``alerts``: one row per firing of a fingerprint (repeats counted on it), with its
  state, end, acknowledgement and what muted it.
- ``silences``: matchers and a time window (Alertmanager's silences).
- ``notifications``: the outbox, one row per notification to one receiver; pending rows
  survive a restart and are delivered once after it.
- ``delivery_attempts``: every attempt to deliver a notification and its outcome.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Integer, Numeric, String, Table, Text, false

from corec.core.store import plugin_metadata

metadata = plugin_metadata()

alerts = Table(
    "alerts",
    metadata,
    Column("alert_id", String(64), primary_key=True),
    Column("fingerprint", String(32), nullable=False, index=True),
    Column("name", String(64), nullable=False),
    Column("severity", String(16), nullable=False, index=True),
    Column("source", String(128), nullable=False),
    Column("labels_json", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("first_ts_ns", BigInteger, nullable=False, index=True),
    Column("last_ts_ns", BigInteger, nullable=False),
    Column("occurrences", Integer, nullable=False),
    # firing | resolved (said so) | expired (resolve_timeout passed without a repeat)
    Column("state", String(16), nullable=False, server_default="firing", index=True),
    Column("ends_ts_ns", BigInteger, nullable=True),
    Column("acked_ts_ns", BigInteger, nullable=True),
    Column("acked_by", String(64), nullable=True),
    Column("muted_by", String(128), nullable=True),  # silence:<id> | inhibited:<fp> at receipt
    Column("resolvable", Boolean, nullable=False, server_default=false()),
)

silences = Table(
    "silences",
    metadata,
    Column("silence_id", String(64), primary_key=True),
    Column("matchers_json", Text, nullable=False),  # ["label=value", ...]
    Column("starts_ts_ns", BigInteger, nullable=False),
    Column("ends_ts_ns", BigInteger, nullable=False, index=True),
    Column("created_by", String(64), nullable=False),
    Column("comment", Text, nullable=False, server_default=""),
    Column("created_ts_ns", BigInteger, nullable=False),
    Column("expired_ts_ns", BigInteger, nullable=True),
)

notifications = Table(
    "notifications",
    metadata,
    Column("notification_id", String(64), primary_key=True),
    Column("receiver", String(64), nullable=False, index=True),
    Column("group_key", Text, nullable=False),
    Column("severity", String(16), nullable=False),
    Column("payload_json", Text, nullable=False),  # the Notification, alerts included
    # pending | sent | failed (gave up) | fallback (written to the local file)
    Column("status", String(16), nullable=False, index=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created_ts_ns", BigInteger, nullable=False),
    Column("next_attempt_ts_ns", BigInteger, nullable=False, index=True),
    Column("done_ts_ns", BigInteger, nullable=True),
    Column("last_error", Text, nullable=True),
)

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("attempt_id", Integer, primary_key=True, autoincrement=True),
    Column("notification_id", String(64), nullable=False, index=True),
    Column("receiver", String(64), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("ts_ns", BigInteger, nullable=False),
    # sent | failed | rate_limited | breaker_open | fallback
    Column("outcome", String(16), nullable=False),
    Column("error", Text, nullable=True),
    Column("retry_after_s", Numeric(20, 3), nullable=True),
    Column("duration_ms", Numeric(20, 3), nullable=False),
)
