"""exchange_sync's tables: every ticker received, and the replay cursor."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, String, Table, UniqueConstraint

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
