"""daily_settlement's tables: one row per settled day, one per member and day, and
every member flow seen (for money-weighted returns)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, String, Table

from corec.core.store import DecimalColumn, plugin_metadata

metadata = plugin_metadata()

settlements = Table(
    "settlements",
    metadata,
    Column("date", String(10), primary_key=True),  # ISO, UTC
    Column("start_ts_ns", BigInteger, nullable=False),
    Column("cutoff_ts_ns", BigInteger, nullable=False),
    Column("settled_ts_ns", BigInteger, nullable=False),
    Column("valuation", String(16), nullable=False),
    Column("nav_usd", DecimalColumn(), nullable=False),
    Column("nav_per_unit", DecimalColumn(), nullable=False),
    Column("units", DecimalColumn(), nullable=False),
    Column("cash_usd", DecimalColumn(), nullable=False),
    Column("allocated_usd", DecimalColumn(), nullable=False),
    Column("unrealized_pnl_usd", DecimalColumn(), nullable=False),
    Column("realized_pnl_usd", DecimalColumn(), nullable=False),
    Column("fees_usd", DecimalColumn(), nullable=False),
    Column("net_flows_usd", DecimalColumn(), nullable=False),
    Column("distributions_usd", DecimalColumn(), nullable=False),
    Column("day_return", DecimalColumn(), nullable=False),
    Column("twr_since_inception", DecimalColumn(), nullable=False),
)

member_settlements = Table(
    "member_settlements",
    metadata,
    Column("date", String(10), primary_key=True),
    Column("member", String(64), primary_key=True),
    Column("units", DecimalColumn(), nullable=False),
    Column("equity_usd", DecimalColumn(), nullable=False),
    Column("contributions_usd", DecimalColumn(), nullable=False),
    Column("withdrawals_usd", DecimalColumn(), nullable=False),
    Column("distributions_usd", DecimalColumn(), nullable=False),
    Column("net_flow_usd", DecimalColumn(), nullable=False),
    Column("distribution_usd", DecimalColumn(), nullable=False),
    Column("distribution_queued", Boolean, nullable=False),
    Column("pnl_usd", DecimalColumn(), nullable=False),
    Column("time_weighted_return", DecimalColumn(), nullable=True),
    Column("money_weighted_return", DecimalColumn(), nullable=True),
)

member_flows = Table(
    "member_flows",
    metadata,
    Column("kind", String(16), primary_key=True),  # contribution, withdrawal, distribution
    Column("flow_id", String(96), primary_key=True),
    Column("member", String(64), nullable=False, index=True),
    Column("date", String(10), nullable=False),
    Column("amount_usd", DecimalColumn(), nullable=False),
    Column("units", DecimalColumn(), nullable=False),
    Column("nav_per_unit", DecimalColumn(), nullable=False),
    Column("ts_ns", BigInteger, nullable=False),
)
