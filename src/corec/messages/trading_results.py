"""``trading_results``: positions opened and trades closed by trading_execution.

Consumed by capital_pool (marks open positions, settles closed trades exactly once by
``trade_id``) and alert_manager (loss rules).

Money: all ``*_usd`` in the quote currency (USD/USDT, treated as USD), 8 decimals;
``quantity`` in the base asset. ``realized_pnl_usd`` is net of both fees.
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar, Literal

from corec.core.events import Payload
from corec.messages._checks import (
    require_finite,
    require_non_negative,
    require_positive,
    require_text,
)
from corec.messages.exchange_data import Market

PositionSide = Literal["long", "short"]
ExitReason = Literal["signal", "stop_loss", "manual"]


class PositionOpened(Payload, frozen=True, kw_only=True):
    """A position was filled with allocated capital.

    Fields:
        trade_id: unique id of the round trip (the same in its ``TradeClosed``).
        allocation_id: the capital_pool allocation that funds it.
        strategy, exchange, market, symbol, side: what was traded.
        quantity: base-asset quantity filled (> 0).
        entry_price: fill price (quote currency per base unit).
        entry_fee_usd: fee paid on the entry fill.
        opened_ts_ns: fill time, UTC ns.
    """

    TYPE: ClassVar[str] = "position_opened"
    trade_id: str
    allocation_id: str
    strategy: str
    exchange: str
    market: Market
    symbol: str
    side: PositionSide
    quantity: Decimal
    entry_price: Decimal
    entry_fee_usd: Decimal
    opened_ts_ns: int

    def __post_init__(self) -> None:
        require_text("trade_id", self.trade_id)
        require_text("allocation_id", self.allocation_id)
        require_positive("quantity", self.quantity)
        require_positive("entry_price", self.entry_price)
        require_non_negative("entry_fee_usd", self.entry_fee_usd)


class TradeClosed(Payload, frozen=True, kw_only=True):
    """A round trip is over; its result settles into the pool once (by ``trade_id``).

    Fields (beyond ``PositionOpened``'s):
        exit_price: fill price of the closing order.
        fees_usd: entry fee + exit fee.
        realized_pnl_usd: ``(exit - entry) × quantity`` for longs,
            ``(entry - exit) × quantity`` for shorts, minus ``fees_usd``.
        closed_ts_ns: exit fill time, UTC ns.
        exit_reason: ``signal`` (opposite cross), ``stop_loss`` or ``manual``.
    """

    TYPE: ClassVar[str] = "trade_closed"
    trade_id: str
    allocation_id: str
    strategy: str
    exchange: str
    market: Market
    symbol: str
    side: PositionSide
    quantity: Decimal
    entry_price: Decimal
    exit_price: Decimal
    fees_usd: Decimal
    realized_pnl_usd: Decimal
    opened_ts_ns: int
    closed_ts_ns: int
    exit_reason: ExitReason

    def __post_init__(self) -> None:
        require_text("trade_id", self.trade_id)
        require_text("allocation_id", self.allocation_id)
        require_positive("quantity", self.quantity)
        require_positive("entry_price", self.entry_price)
        require_positive("exit_price", self.exit_price)
        require_non_negative("fees_usd", self.fees_usd)
        require_finite("realized_pnl_usd", self.realized_pnl_usd)
        if self.closed_ts_ns < self.opened_ts_ns:
            raise ValueError(f"trade {self.trade_id}: closed_ts_ns is before opened_ts_ns")
        if self.realized_pnl_usd != self.gross_pnl_usd - self.fees_usd:
            raise ValueError(
                f"trade {self.trade_id}: realized_pnl_usd {self.realized_pnl_usd} is not "
                f"gross {self.gross_pnl_usd} minus fees {self.fees_usd}"
            )

    @property
    def gross_pnl_usd(self) -> Decimal:
        """Price PnL before fees: ``(exit - entry) × quantity``, sign flipped for shorts."""
        move = self.exit_price - self.entry_price
        return (move if self.side == "long" else -move) * self.quantity


class AllocationUnused(Payload, frozen=True, kw_only=True):
    """A granted allocation will not be used (the order could not be placed); the
    pool returns its capital to cash."""

    TYPE: ClassVar[str] = "allocation_unused"
    allocation_id: str
    reason: str

    def __post_init__(self) -> None:
        require_text("allocation_id", self.allocation_id)
