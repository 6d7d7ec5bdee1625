"""``trading_results``: positions opened and trades closed by trading_execution.

Consumed by capital_pool (marks open positions, settles closed trades exactly once by
``trade_id``) and alert_manager (loss rules).

Money: all ``*_usd`` in the quote currency (USD/USDT, treated as USD), 8 decimals;
``quantity`` in the base asset. ``realized_pnl_usd`` is net of both fees.

Also trading_execution's request endpoints ``trading_execution.positions``
(:data:`POSITIONS`) and ``trading_execution.trades`` (:data:`TRADES`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar, Final, Literal

import msgspec

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


# -- query endpoints (read by the API and other readers) ---------------------------------

POSITIONS: Final = "trading_execution.positions"
"""Request endpoint: :class:`PositionsRequest` → :class:`PositionsPage` |
:class:`~corec.core.queries.Refused` (open positions, marked at the latest price seen)."""

TRADES: Final = "trading_execution.trades"
"""Request endpoint: :class:`TradesRequest` → :class:`TradesPage` |
:class:`~corec.core.queries.Refused` (closed trades, newest first)."""


class PositionsRequest(Payload, frozen=True, kw_only=True):
    """Ask trading_execution for its open positions; ``None`` filters match anything.

    Fields:
        strategy: a strategy name; symbol: a CCXT unified symbol (exact).
        limit, offset: paging (1 ≤ limit ≤ 1000, offset ≥ 0).
    """

    TYPE: ClassVar[str] = "positions_request"
    strategy: str | None = None
    symbol: str | None = None
    limit: int = 100
    offset: int = 0


class PositionRow(msgspec.Struct, frozen=True, kw_only=True):
    """One open position, inside a :class:`PositionsPage`.

    Fields:
        trade_id: the position's id (its ``PositionOpened`` and future ``TradeClosed``).
        allocation_id: the capital_pool allocation funding it.
        strategy, exchange, market, symbol, side: what is held.
        quantity: base-asset quantity; entry_price: entry fill price (quote currency).
        entry_fee_usd: fee paid on the entry fill.
        allocation_usd: capital granted for it.
        mark_price: the instrument's latest price seen on ``market_data`` since the node
            started (``MarketSnapshot.price``, as capital_pool marks it); ``None`` if none.
        mark_ts_ns: that price's exchange timestamp (UTC ns), ``None`` without a mark.
        notional_usd: ``quantity × mark_price`` (``× entry_price`` without a mark).
        unrealized_pnl_usd: ``(mark - entry) × quantity`` (sign flipped for shorts) minus
            the entry fee, as capital_pool computes NAV; ``None`` without a mark.
        stop_price: the stop-loss price.
        opened_ts_ns: entry fill time, UTC ns.
    """

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
    allocation_usd: Decimal
    mark_price: Decimal | None
    mark_ts_ns: int | None
    notional_usd: Decimal
    unrealized_pnl_usd: Decimal | None
    stop_price: Decimal
    opened_ts_ns: int


class PositionsPage(Payload, frozen=True, kw_only=True):
    """Reply to :class:`PositionsRequest`: ``total`` matching positions before paging;
    ``items`` newest first (by ``opened_ts_ns``, then ``trade_id``)."""

    TYPE: ClassVar[str] = "positions_page"
    total: int
    items: tuple[PositionRow, ...]


class TradesRequest(Payload, frozen=True, kw_only=True):
    """Ask trading_execution for closed trades; ``None`` filters match anything.

    Fields:
        strategy: a strategy name; symbol: a CCXT unified symbol (exact).
        from_ts_ns, to_ts_ns: ``from_ts_ns ≤ closed_ts_ns < to_ts_ns`` (UTC ns).
        limit, offset: paging (1 ≤ limit ≤ 1000, offset ≥ 0).
    """

    TYPE: ClassVar[str] = "trades_request"
    strategy: str | None = None
    symbol: str | None = None
    from_ts_ns: int | None = None
    to_ts_ns: int | None = None
    limit: int = 100
    offset: int = 0


class TradesPage(Payload, frozen=True, kw_only=True):
    """Reply to :class:`TradesRequest`: ``total`` matching trades before paging; ``items``
    newest first (by ``closed_ts_ns``, then ``trade_id`` descending)."""

    TYPE: ClassVar[str] = "trades_page"
    total: int
    items: tuple[TradeClosed, ...]
