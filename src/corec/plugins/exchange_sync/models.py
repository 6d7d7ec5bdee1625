"""exchange_sync's tables: every ticker received, the replay cursor, each exchange's
health, and snapshots of open orders."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from corec.core.store import DecimalColumn, plugin_metadata

metadata = plugin_metadata()

tickers = Table(
    "tickers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("exchange", String(32), nullable=False),
    Column("market", String(16), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("bid", DecimalColumn(), nullable=True),
    Column("ask", DecimalColumn(), nullable=True),
    Column("last", DecimalColumn(), nullable=True),
    Column("base_volume", DecimalColumn(), nullable=True),
    Column("quote_volume", DecimalColumn(), nullable=True),
    Column("exchange_ts_ns", BigInteger, nullable=False),
    Column("received_ts_ns", BigInteger, nullable=False),
    Column("seq", Integer, nullable=False),
    UniqueConstraint(
        "exchange", "market", "symbol", "exchange_ts_ns", "seq", name="uq_tickers_instrument_ts"
    ),
)

replay_cursor = Table(
    "replay_cursor",
    metadata,
    Column("recording", String(512), primary_key=True),
    Column("last_ts_ns", BigInteger, nullable=False),
    Column("rows_replayed", Integer, nullable=False),
)

TICKER_KEY = ("exchange", "market", "symbol", "exchange_ts_ns", "seq")

exchange_health = Table(
    "exchange_health",
    metadata,
    Column("exchange", String(32), primary_key=True),
    Column("breaker_state", String(16), nullable=False),
    Column("mode", String(32), nullable=False),
    Column("polls", Integer, nullable=False),
    Column("failed_polls", Integer, nullable=False),
    Column("consecutive_failures", Integer, nullable=False),
    Column("requests", Integer, nullable=False),
    Column("errors", Integer, nullable=False),
    Column("errors_by_kind", Text, nullable=False),
    Column("latency_p50_ms", DecimalColumn(), nullable=True),
    Column("latency_p95_ms", DecimalColumn(), nullable=True),
    Column("tickers", Integer, nullable=False),
    Column("last_success_ts_ns", BigInteger, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("updated_ts_ns", BigInteger, nullable=False),
)

open_order_snapshots = Table(
    "open_order_snapshots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("exchange", String(32), nullable=False),
    Column("market", String(16), nullable=False),
    Column("taken_ts_ns", BigInteger, nullable=False),
    Column("orders", Integer, nullable=False),
    Index("ix_open_order_snapshots_venue_ts", "exchange", "market", "taken_ts_ns"),
)

open_orders = Table(
    "open_orders",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "snapshot_id",
        Integer,
        ForeignKey("open_order_snapshots.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("exchange", String(32), nullable=False),
    Column("market", String(16), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("order_id", String(128), nullable=False),
    Column("client_order_id", String(128), nullable=True),
    Column("side", String(4), nullable=False),
    Column("type", String(32), nullable=False),
    Column("price", DecimalColumn(), nullable=True),
    Column("amount", DecimalColumn(), nullable=False),
    Column("filled", DecimalColumn(), nullable=False),
    Column("remaining", DecimalColumn(), nullable=True),
    Column("status", String(16), nullable=False),
    Column("created_ts_ns", BigInteger, nullable=True),
)

Index("ix_tickers_received_ts", tickers.c.received_ts_ns)
