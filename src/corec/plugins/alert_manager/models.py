"""alert_manager's table: one row per alert firing, with its repeat count."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, String, Table, Text

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
)
