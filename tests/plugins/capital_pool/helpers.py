"""Builders shared by the capital_pool tests: rules, allocations, trading results."""

from __future__ import annotations

from decimal import Decimal

from corec.messages.exchange_data import Market
from corec.messages.trading_results import PositionOpened, PositionSide, TradeClosed
from corec.plugins.capital_pool.ledger import (
    Allocation,
    JournalEntry,
    Ledger,
    Phase,
    Rules,
)

D = Decimal
START_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
EXCHANGE = "binance"
MARKET: Market = "spot"
SYMBOL = "BTC/USDT"

DEFAULT_PHASES = (
    Phase("seed", D(100), D("0.03")),
    Phase("growth", D(1000), D("0.02")),
    Phase("established", D(10000), D("0.01")),
)


def make_rules(
    *,
    min_contribution_usd: Decimal = D(100),
    max_active_ratio: Decimal = D("0.6"),
    min_allocation_usd: Decimal = D(10),
    phases: tuple[Phase, ...] = DEFAULT_PHASES,
) -> Rules:
    """The default rules of the plugin's configuration, with overrides."""
    return Rules(
        min_contribution_usd=min_contribution_usd,
        max_active_ratio=max_active_ratio,
        min_allocation_usd=min_allocation_usd,
        phases=phases,
    )


def make_ledger(*members: str, rules: Rules | None = None) -> Ledger:
    """An empty ledger with ``members`` registered."""
    ledger = Ledger(rules=rules or make_rules())
    ledger.members.update(members)
    return ledger


def line_sum(entry: JournalEntry) -> Decimal:
    """Sum of the entry's line amounts (0 for a balanced entry)."""
    return sum((line.amount_usd for line in entry.lines), D(0))


def contribute(ledger: Ledger, member: str, amount: str | Decimal, cid: str) -> JournalEntry:
    """Build and apply a contribution entry."""
    entry = ledger.contribution(cid, member, D(amount), START_NS)
    ledger.apply(entry)
    return entry


def withdraw(ledger: Ledger, member: str, amount: str | Decimal, wid: str) -> JournalEntry:
    """Build and apply a withdrawal entry."""
    entry = ledger.withdrawal(wid, member, D(amount), START_NS)
    ledger.apply(entry)
    return entry


def make_allocation(
    allocation_id: str,
    amount: str | Decimal,
    *,
    side: PositionSide = "long",
    symbol: str = SYMBOL,
    exchange: str = EXCHANGE,
    market: Market = MARKET,
) -> Allocation:
    """An allocation record (not yet granted)."""
    return Allocation(
        allocation_id=allocation_id,
        strategy="sma",
        exchange=exchange,
        market=market,
        symbol=symbol,
        side=side,
        amount_usd=D(amount),
        granted_ts_ns=START_NS,
    )


def grant(ledger: Ledger, allocation: Allocation) -> JournalEntry:
    """Build, apply and track an allocation entry, as the service does."""
    entry = ledger.allocation(allocation)
    ledger.apply(entry)
    ledger.add_allocation(allocation)
    return entry


def opened_for(
    allocation: Allocation,
    trade_id: str,
    quantity: str | Decimal,
    entry_price: str | Decimal,
    entry_fee: str | Decimal = "0",
    **overrides: object,
) -> PositionOpened:
    """A ``PositionOpened`` funded by ``allocation``."""
    fields: dict[str, object] = {
        "trade_id": trade_id,
        "allocation_id": allocation.allocation_id,
        "strategy": allocation.strategy,
        "exchange": allocation.exchange,
        "market": allocation.market,
        "symbol": allocation.symbol,
        "side": allocation.side,
        "quantity": D(quantity),
        "entry_price": D(entry_price),
        "entry_fee_usd": D(entry_fee),
        "opened_ts_ns": START_NS,
    }
    fields.update(overrides)
    return PositionOpened(**fields)  # type: ignore[arg-type]


def closed_for(
    allocation: Allocation,
    trade_id: str,
    quantity: str | Decimal,
    entry_price: str | Decimal,
    exit_price: str | Decimal,
    fees: str | Decimal = "0",
    **overrides: object,
) -> TradeClosed:
    """A consistent ``TradeClosed`` (realized = gross − fees) for ``allocation``."""
    side = overrides.get("side", allocation.side)
    move = D(exit_price) - D(entry_price)
    gross = (move if side == "long" else -move) * D(quantity)
    fields: dict[str, object] = {
        "trade_id": trade_id,
        "allocation_id": allocation.allocation_id,
        "strategy": allocation.strategy,
        "exchange": allocation.exchange,
        "market": allocation.market,
        "symbol": allocation.symbol,
        "side": side,
        "quantity": D(quantity),
        "entry_price": D(entry_price),
        "exit_price": D(exit_price),
        "fees_usd": D(fees),
        "realized_pnl_usd": gross - D(fees),
        "opened_ts_ns": START_NS,
        "closed_ts_ns": START_NS + 60_000_000_000,
        "exit_reason": "signal",
    }
    fields.update(overrides)
    return TradeClosed(**fields)  # type: ignore[arg-type]


def settle(ledger: Ledger, closed: TradeClosed) -> JournalEntry | None:
    """Build, apply and release a settlement, as the service does; None if a repeat."""
    entry = ledger.settlement(closed)
    if entry is not None:
        ledger.apply(entry)
        ledger.release_allocation(closed.allocation_id)
    return entry


def realize_gain(
    ledger: Ledger, allocation_id: str, amount: str, exit_price: str, fees: str
) -> JournalEntry:
    """Grant ``amount`` and close a 0.02 BTC long from 20,000 at ``exit_price``."""
    alloc = make_allocation(allocation_id, amount)
    grant(ledger, alloc)
    entry = settle(
        ledger, closed_for(alloc, f"t-{allocation_id}", "0.02", "20000", exit_price, fees)
    )
    assert entry is not None
    return entry
