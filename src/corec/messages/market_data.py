"""``market_data``: market_monitor's view of each instrument.

Published by market_monitor on every ticker it accepts; consumed by strategies
(trading_execution) and by capital_pool to mark open positions.
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from corec.core.events import Payload
from corec.messages._checks import require_finite, require_positive
from corec.messages.exchange_data import Market


class MarketSnapshot(Payload, frozen=True, kw_only=True, gc=False):
    """One instrument on one venue, after a new ticker.

    Fields:
        exchange, market, symbol: the instrument (as in ``exchange_data``).
        bid, ask, last: from the ticker (``None`` where the source has none).
        mid: ``(bid + ask) / 2``, or ``last`` when the source has no book.
        price: the reference price strategies and marks use: ``last``, else ``mid``.
        spread_bps: ``(ask - bid) / mid × 10 000``; ``None`` without a book.
        return_pct: ``(price / price ~window_s ago - 1) × 100``; ``None`` until the
            window has filled.
        window_s: the return window in seconds.
        exchange_ts_ns: the ticker's exchange timestamp (UTC ns).
    """

    TYPE: ClassVar[str] = "market_snapshot"
    exchange: str
    market: Market
    symbol: str
    bid: Decimal | None
    ask: Decimal | None
    last: Decimal | None
    mid: Decimal
    price: Decimal
    spread_bps: Decimal | None
    return_pct: Decimal | None
    window_s: int
    exchange_ts_ns: int

    def __post_init__(self) -> None:
        require_positive("mid", self.mid)
        require_positive("price", self.price)
        require_finite("spread_bps", self.spread_bps)
        require_finite("return_pct", self.return_pct)
