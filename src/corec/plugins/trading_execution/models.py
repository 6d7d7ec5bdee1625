"""trading_execution's tables: open positions, fills, closed trades."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, String, Table

from corec.core.store import DecimalColumn, plugin_metadata

metadata = plugin_metadata()

positions = Table(
    "positions",
    metadata,
    Column("trade_id", String(64), primary_key=True),
    Column("allocation_id", String(64), nullable=False),
    Column("strategy", String(64), nullable=False, index=True),
    Column("exchange", String(32), nullable=False),
    Column("market", String(16), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("side", String(8), nullable=False),
    Column("quantity", DecimalColumn(), nullable=False),
    Column("entry_price", DecimalColumn(), nullable=False),
    Column("entry_fee_usd", DecimalColumn(), nullable=False),
    Column("stop_price", DecimalColumn(), nullable=False),
    Column("allocation_usd", DecimalColumn(), nullable=False),
    Column("opened_ts_ns", BigInteger, nullable=False),
)

fills = Table(
    "fills",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("trade_id", String(64), nullable=False, index=True),
    Column("side", String(4), nullable=False),
    Column("quantity", DecimalColumn(), nullable=False),
    Column("price", DecimalColumn(), nullable=False),
    Column("fee_usd", DecimalColumn(), nullable=False),
    Column("ts_ns", BigInteger, nullable=False),
)

trades = Table(
    "trades",
    metadata,
    Column("trade_id", String(64), primary_key=True),
    Column("allocation_id", String(64), nullable=False),
    Column("strategy", String(64), nullable=False),
    Column("exchange", String(32), nullable=False),
    Column("market", String(16), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("side", String(8), nullable=False),
    Column("quantity", DecimalColumn(), nullable=False),
    Column("entry_price", DecimalColumn(), nullable=False),
    Column("exit_price", DecimalColumn(), nullable=False),
    Column("fees_usd", DecimalColumn(), nullable=False),
    Column("realized_pnl_usd", DecimalColumn(), nullable=False),
    Column("opened_ts_ns", BigInteger, nullable=False),
    Column("closed_ts_ns", BigInteger, nullable=False, index=True),
    Column("exit_reason", String(16), nullable=False),
)
