"""``exchange_data``: what exchange_sync saw on the exchanges.

Published by exchange_sync; consumed by market_monitor (and anyone who wants raw
venue data). Prices are in the quote currency of ``symbol`` (CCXT unified symbols:
``BTC/USDT`` spot, ``BTC/USDT:USDT`` USDT-margined perpetual).

``exchange`` is CoreC's name of the exchange (the key in exchange_sync's config:
``binance``, ``kucoin``, ``bybit``, ``okx``, ``kraken``; ``ftx`` in the bundled recording),
the same for its spot and futures markets even where CCXT has one class per market
(``binance`` + ``binanceusdm``): futures basis compares the two markets of one exchange.

Also the ``exchange_sync.latest`` request endpoint (:data:`LATEST`): the cached latest
ticker per (exchange, market, symbol).
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar, Final, Literal

import msgspec

from corec.core.events import Payload
from corec.messages._checks import require_non_negative, require_positive, require_text

Market = Literal["spot", "futures"]
OrderSide = Literal["buy", "sell"]

LATEST: Final = "exchange_sync.latest"
"""Request endpoint: :class:`LatestRequest` → :class:`LatestTickers` (exchange_sync's cache)."""


class Ticker(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One venue's top of book and last trade for one symbol.

    Fields:
        exchange: CoreC's exchange name (``binance``, ``kraken``; ``ftx`` for the
            recording), shared by the exchange's spot and futures markets.
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


class OpenOrder(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One order resting on an exchange (from CCXT ``fetch_open_orders``).

    Fields:
        exchange, market, symbol: where it rests (as in :class:`Ticker`).
        order_id: the exchange's order id.
        client_order_id: ours, when the order was placed with one.
        side: ``buy`` or ``sell``.
        type: ``limit``, ``market``, ``stop_limit`` … as CCXT reports it.
        price: limit price (quote currency); ``None`` for market orders.
        amount: ordered quantity (base currency, or contracts for futures).
        filled, remaining: quantities filled so far and still open.
        status: CCXT status (``open``).
        created_ts_ns: when the exchange accepted it (UTC ns), if known.
    """

    exchange: str
    market: Market
    symbol: str
    order_id: str
    client_order_id: str | None = None
    side: OrderSide
    type: str
    price: Decimal | None = None
    amount: Decimal
    filled: Decimal = Decimal(0)
    remaining: Decimal | None = None
    status: str = "open"
    created_ts_ns: int | None = None

    def __post_init__(self) -> None:
        require_text("exchange", self.exchange)
        require_text("symbol", self.symbol)
        require_text("order_id", self.order_id)
        require_positive("price", self.price)
        require_non_negative("amount", self.amount)
        require_non_negative("filled", self.filled)
        require_non_negative("remaining", self.remaining)


class OpenOrdersSnapshot(Payload, frozen=True, kw_only=True, gc=False):
    """Every open order of one exchange market at one moment (one poll).

    An empty ``orders`` means the account had no open orders there then.
    ``taken_ts_ns`` is when the answer arrived (node clock, UTC ns).
    """

    TYPE: ClassVar[str] = "open_orders_snapshot"
    exchange: str
    market: Market
    taken_ts_ns: int
    orders: tuple[OpenOrder, ...]


class LatestRequest(Payload, frozen=True, kw_only=True):
    """Ask exchange_sync for its cached latest tickers; ``None`` fields match anything.

    Fields:
        exchange, market: filter (``binance``, ``futures``).
        symbol: a CCXT unified symbol (``BTC/USDT:USDT``) or a pair (``BTC/USDT``),
            which matches the pair's spot symbol and its perpetuals.
    """

    TYPE: ClassVar[str] = "latest_request"
    exchange: str | None = None
    market: Market | None = None
    symbol: str | None = None


class LatestTickers(Payload, frozen=True, kw_only=True):
    """Reply to :class:`LatestRequest`: tickers younger than the cache TTL.

    ``as_of_ts_ns`` is the node clock when the cache was read (UTC ns).
    """

    TYPE: ClassVar[str] = "latest_tickers"
    as_of_ts_ns: int
    tickers: tuple[Ticker, ...]


def pair_of(symbol: str) -> str:
    """The spot pair of a CCXT unified symbol: ``BTC/USDT:USDT`` → ``BTC/USDT``.

    Dated futures (``BTC/USDT:USDT-261225``) map to their pair too.
    """
    return symbol.split(":", 1)[0]
