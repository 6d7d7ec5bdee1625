"""capital_pool's tables (SQLAlchemy Core). The journal is append-only."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    String,
    Table,
    UniqueConstraint,
    true,
)

from corec.core.store import DecimalColumn, plugin_metadata

metadata = plugin_metadata()

members = Table(
    "members",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("created_ts_ns", BigInteger, nullable=False),
    # False: the member's share of each day's realized profit is paid out at settlement
    Column("reinvest", Boolean, nullable=False, server_default=true()),
)

journal_entries = Table(
    "journal_entries",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("ts_ns", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("ref", String(128), nullable=False),
    Column("memo", String(256), nullable=False),
    UniqueConstraint("ref"),
)

journal_lines = Table(
    "journal_lines",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("entry_seq", Integer, ForeignKey("journal_entries.seq"), nullable=False, index=True),
    Column("account", String(128), nullable=False),
    Column("amount_usd", DecimalColumn(), nullable=False),
    Column("units", DecimalColumn(), nullable=False),
)


def _flow_table(name: str, id_column: str, id_length: int = 64) -> Table:
    """A contribution, withdrawal or distribution record: amount, units issued or
    burned (always positive), the NAV per unit it was priced at, and its journal entry."""
    return Table(
        name,
        metadata,
        Column(id_column, String(id_length), primary_key=True),
        Column("member", String(64), ForeignKey("members.name"), nullable=False),
        Column("amount_usd", DecimalColumn(), nullable=False),
        Column("units", DecimalColumn(), nullable=False),
        Column("nav_per_unit", DecimalColumn(), nullable=False),
        Column("entry_seq", Integer, ForeignKey("journal_entries.seq"), nullable=False),
        Column("ts_ns", BigInteger, nullable=False),
    )


contributions = _flow_table("contributions", "contribution_id")
withdrawals = _flow_table("withdrawals", "withdrawal_id")
distributions = _flow_table("distributions", "distribution_id", 96)
"""Realized profit paid to members who do not reinvest; id ``<date>:<member>``."""

withdrawal_queue = Table(
    "withdrawal_queue",
    metadata,
    Column("position", Integer, primary_key=True, autoincrement=True),  # first in, first out
    Column("withdrawal_id", String(96), nullable=False, unique=True),
    Column("member", String(64), ForeignKey("members.name"), nullable=False),
    Column("amount_usd", DecimalColumn(), nullable=False),
    Column("status", String(16), nullable=False, index=True),  # queued, paid, cancelled
    # withdrawal, or distribution (a daily settlement's payout waiting for cash)
    Column("kind", String(16), nullable=False, server_default="withdrawal"),
    Column("queued_ts_ns", BigInteger, nullable=False),
    Column("settled_ts_ns", BigInteger, nullable=True),
    Column("paid_usd", DecimalColumn(), nullable=True),
    Column("reason", String(256), nullable=True),
)

allocations = Table(
    "allocations",
    metadata,
    Column("allocation_id", String(64), primary_key=True),
    Column("strategy", String(64), nullable=False),
    Column("exchange", String(32), nullable=False),
    Column("market", String(16), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("side", String(8), nullable=False),
    Column("amount_usd", DecimalColumn(), nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("granted_seq", Integer, ForeignKey("journal_entries.seq"), nullable=False),
    Column("granted_ts_ns", BigInteger, nullable=False),
    Column("trade_id", String(64), nullable=True, unique=True),
    Column("quantity", DecimalColumn(), nullable=True),
    Column("entry_price", DecimalColumn(), nullable=True),
    Column("entry_fee_usd", DecimalColumn(), nullable=True),
    Column("opened_ts_ns", BigInteger, nullable=True),
    Column("released_seq", Integer, ForeignKey("journal_entries.seq"), nullable=True),
    Column("released_ts_ns", BigInteger, nullable=True),
    Column("realized_pnl_usd", DecimalColumn(), nullable=True),
)

pool_state = Table(
    "pool_state",
    metadata,
    Column(
        "seq", Integer, ForeignKey("journal_entries.seq"), primary_key=True, autoincrement=False
    ),
    Column("ts_ns", BigInteger, nullable=False),
    Column("nav_usd", DecimalColumn(), nullable=False),
    Column("nav_per_unit", DecimalColumn(), nullable=False),
    Column("units", DecimalColumn(), nullable=False),
    Column("cash_usd", DecimalColumn(), nullable=False),
    Column("allocated_usd", DecimalColumn(), nullable=False),
    Column("unrealized_pnl_usd", DecimalColumn(), nullable=False),
    Column("phase", String(32), nullable=False),
    Column("risk_per_trade", DecimalColumn(), nullable=False),
)

marks = Table(
    "marks",
    metadata,
    Column("exchange", String(32), primary_key=True),
    Column("market", String(16), primary_key=True),
    Column("symbol", String(64), primary_key=True),
    Column("price", DecimalColumn(), nullable=False),
    Column("ts_ns", BigInteger, nullable=False),
)

day_closes = Table(
    "day_closes",
    metadata,
    # the pool valued live at a day's cut-off (capital_pool.close_day), so a later
    # statement or close of that moment reads the same figures
    Column("cutoff_ts_ns", BigInteger, primary_key=True, autoincrement=False),
    Column("date", String(10), nullable=False),
    Column("taken_ts_ns", BigInteger, nullable=False),
    Column("nav_usd", DecimalColumn(), nullable=False),
    Column("nav_per_unit", DecimalColumn(), nullable=False),
    Column("units", DecimalColumn(), nullable=False),
    Column("cash_usd", DecimalColumn(), nullable=False),
    Column("allocated_usd", DecimalColumn(), nullable=False),
    Column("unrealized_pnl_usd", DecimalColumn(), nullable=False),
)
