"""macro_sync's table: every observation published, once per series and date."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, String, Table, UniqueConstraint

from corec.core.store import DecimalColumn, plugin_metadata

metadata = plugin_metadata()

observations = Table(
    "macro_observations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("series", String(32), nullable=False),
    Column("source_id", String(64), nullable=False),
    Column("date", String(10), nullable=False),
    Column("value", DecimalColumn(), nullable=False),
    Column("available_ts_ns", BigInteger, nullable=False),
    UniqueConstraint("series", "date", name="uq_macro_observations_series_date"),
)
