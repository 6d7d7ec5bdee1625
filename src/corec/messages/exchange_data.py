"""``exchange_data``: what exchange_sync saw on the exchanges.

Published by exchange_sync; consumed by market_monitor (and anyone who wants raw
venue data). Prices are in the quote currency of ``symbol`` (CCXT unified symbols:
``BTC/USDT`` spot, ``BTC/USDT:USDT`` USDT-margined perpetual).
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar, Literal

import msgspec

from corec.core.events import Payload
from corec.messages._checks import require_non_negative, require_positive, require_text

Market = Literal["spot", "futures"]


class Ticker(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One venue's top of book and last trade for one symbol.

    Fields:
        exchange: CCXT exchange id (``binance``, ``kraken``, ``ftx`` for the recording).
        market: ``spot`` or ``futures`` (perpetuals and dated futures).
        symbol: CCXT unified symbol.
        bid, ask: best bid and ask; ``None`` when the source has no book (bars, trades).
        last: last traded price (a bar's close when replaying bars).
        base_volume, quote_volume: traded volume over the source's window (24 h for
            exchange tickers, the bar or trade when replaying); ``None`` if unknown.
        exchange_ts_ns: the exchange's timestamp, UTC ns.
        received_ts_ns: when CoreC received it, UTC ns (the node clock).
        seq: position among this instrument's tickers with the same ``exchange_ts_ns``
            (trades at the same instant: 0, 1, 2 …); 0 for exchange tickers. With the
            instrument and timestamp it identifies the ticker.

    Invariants (checked on construction and decoding): prices positive, volumes
    non-negative, at least one of bid/ask/last present, ``bid <= ask``.
    """

    exchange: str
    market: Market
    symbol: str
    bid: Decimal | None = None
    ask: Decimal | None = None
    last: Decimal | None = None
    base_volume: Decimal | None = None
    quote_volume: Decimal | None = None
    exchange_ts_ns: int
    received_ts_ns: int
    seq: int = 0

    def __post_init__(self) -> None:
        require_text("exchange", self.exchange)
        if self.seq < 0:
            raise ValueError(f"seq must be >= 0, got {self.seq}")
        require_text("symbol", self.symbol)
        require_positive("bid", self.bid)
        require_positive("ask", self.ask)
        require_positive("last", self.last)
        require_non_negative("base_volume", self.base_volume)
        require_non_negative("quote_volume", self.quote_volume)
        if self.bid is None and self.ask is None and self.last is None:
            raise ValueError(f"{self.exchange} {self.symbol}: ticker has no bid, ask or last")
        if self.bid is not None and self.ask is not None and self.bid > self.ask:
            raise ValueError(
                f"{self.exchange} {self.symbol}: bid {self.bid} is above ask {self.ask}"
            )


class TickerBatch(Payload, frozen=True, kw_only=True, gc=False):
    """Tickers received together (one poll of one exchange, or one replay step)."""

    TYPE: ClassVar[str] = "ticker_batch"
    tickers: tuple[Ticker, ...]
