"""``exchange_data``: what exchange_sync saw on the exchanges.

Published by exchange_sync; consumed by market_monitor (and anyone who wants raw
venue data). Prices are in the quote currency of ``symbol`` (CCXT unified symbols:
``BTC/USDT`` spot, ``BTC/USDT:USDT`` USDT-margined perpetual).

``exchange`` is CoreC's name of the exchange (the key in exchange_sync's config:
``binance``, ``kucoin``, ``bybit``, ``okx``, ``kraken``; ``ftx`` in the bundled recording),
the same for its spot and futures markets even where CCXT has one class per market
(``binance`` + ``binanceusdm``): futures basis compares the two markets of one exchange.

Also exchange_sync's request endpoints: ``exchange_sync.latest`` (:data:`LATEST`: the
cached latest ticker per (exchange, market, symbol)), ``exchange_sync.health``
(:data:`HEALTH`), ``exchange_sync.open_orders`` (:data:`OPEN_ORDERS`) and
``exchange_sync.order_book`` (:data:`ORDER_BOOK`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar, Final, Literal

import msgspec

from corec.core.events import Payload
from corec.core.notices import BreakerState
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


# -- query endpoints (read by the API and other readers) ---------------------------------

HEALTH: Final = "exchange_sync.health"
"""Request endpoint: :class:`ExchangeHealthRequest` → :class:`ExchangeHealthReport` (each
exchange market's breaker, latency percentiles and errors; cheap: read from memory)."""

OPEN_ORDERS: Final = "exchange_sync.open_orders"
"""Request endpoint: :class:`OpenOrdersRequest` → :class:`OpenOrdersPage` |
:class:`~corec.core.queries.Refused` (the latest stored snapshot per exchange market)."""

ORDER_BOOK: Final = "exchange_sync.order_book"
"""Request endpoint: :class:`OrderBookRequest` → :class:`OrderBook` |
:class:`~corec.core.queries.Refused` (live: CCXT ``fetch_order_book``; replay: one level
per side from the latest ticker)."""

BookSource = Literal["exchange", "ticker"]


class ExchangeHealthRequest(Payload, frozen=True, kw_only=True):
    """Ask exchange_sync for the health of every exchange market it reads (no filter)."""

    TYPE: ClassVar[str] = "exchange_health_request"


class ExchangeHealthRow(msgspec.Struct, frozen=True, kw_only=True):
    """One exchange market's health, inside an :class:`ExchangeHealthReport`.

    Fields:
        exchange, market: CoreC's exchange name and ``spot``/``futures``.
        breaker: the exchange's circuit breaker (one per exchange, shared by its
            markets): ``closed``, ``open`` or ``half_open``; ``closed`` in replay.
        last_success_ts_ns: the last successful ticker poll (or stream update) of this
            market (node clock, UTC ns); in replay the last ticker replayed; ``None``
            before the first.
        failed_polls: ticker polls of this market that failed after their retries.
        latency_p50_ms, latency_p95_ms: this market's REST request latency percentiles
            over its last 1000 requests (nearest rank, ms to 0.1); ``None`` without a
            timed request (and in replay).
        errors: this market's failed requests by CCXT error class name
            (``RateLimitExceeded``, ``RequestTimeout``, ``MalformedResponse``…).
        requests: REST/WebSocket calls this market issued (failed ones included).
        tickers: tickers received from this market.
        feed: ``poll``, ``stream``, ``poll (stream failing)`` or ``replay``.
        last_error: the exchange's last error message (secrets masked), if any.
    """

    exchange: str
    market: Market
    breaker: BreakerState
    last_success_ts_ns: int | None = None
    failed_polls: int = 0
    latency_p50_ms: Decimal | None = None
    latency_p95_ms: Decimal | None = None
    errors: dict[str, int] = {}
    requests: int = 0
    tickers: int = 0
    feed: str = "poll"
    last_error: str | None = None


class ExchangeHealthReport(Payload, frozen=True, kw_only=True):
    """Reply to :class:`ExchangeHealthRequest`: one row per exchange market, sorted by
    exchange then market; ``as_of_ts_ns`` is the node clock when it was read."""

    TYPE: ClassVar[str] = "exchange_health_report"
    as_of_ts_ns: int
    items: tuple[ExchangeHealthRow, ...]


class OpenOrdersRequest(Payload, frozen=True, kw_only=True):
    """Ask for the account's open orders, from the latest snapshot of each exchange market.

    Fields:
        exchange, market: filters; ``None`` matches anything.
        symbol: a CCXT unified symbol, or a pair (``BTC/USDT``) matching the pair's spot
            symbol and its perpetuals (as in :class:`LatestRequest`).
        limit, offset: paging (1 ≤ limit ≤ 1000, offset ≥ 0).
    """

    TYPE: ClassVar[str] = "open_orders_request"
    exchange: str | None = None
    market: Market | None = None
    symbol: str | None = None
    limit: int = 100
    offset: int = 0


class OpenOrdersPage(Payload, frozen=True, kw_only=True):
    """Reply to :class:`OpenOrdersRequest`: ``total`` matching orders before paging;
    ``items`` newest first (by ``created_ts_ns``, unknown times last, then exchange,
    market, order id)."""

    TYPE: ClassVar[str] = "open_orders_page"
    total: int
    items: tuple[OpenOrder, ...]


class OrderBookRequest(Payload, frozen=True, kw_only=True):
    """Ask for one instrument's order book.

    Fields:
        exchange, market, symbol: the instrument (CCXT unified symbol).
        depth: price levels wanted per side, 1..100.
    """

    TYPE: ClassVar[str] = "order_book_request"
    exchange: str
    market: Market
    symbol: str
    depth: int = 20


class BookLevel(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One price level: ``price`` (quote currency) and ``amount`` resting there (base
    currency, or contracts for futures); ``amount`` is ``None`` when unknown (a book
    built from a ticker)."""

    price: Decimal
    amount: Decimal | None = None

    def __post_init__(self) -> None:
        require_positive("price", self.price)
        require_non_negative("amount", self.amount)


class OrderBook(Payload, frozen=True, kw_only=True):
    """An instrument's order book (reply to :class:`OrderBookRequest`).

    Fields:
        exchange, market, symbol: the instrument.
        bids: best (highest) first; asks: best (lowest) first; at most ``depth`` each.
        exchange_ts_ns: the exchange's timestamp of the book (UTC ns), or when it was
            received where the exchange sends none (binance spot); for
            ``source="ticker"`` the ticker's exchange timestamp.
        received_ts_ns: when CoreC received it (node clock, UTC ns).
        source: ``exchange`` (CCXT ``fetch_order_book``, live) or ``ticker`` (replay:
            one level per side from the latest ticker: its bid and ask, or its last
            price on a side the recording has no book for; amounts ``None``).
    """

    TYPE: ClassVar[str] = "order_book"
    exchange: str
    market: Market
    symbol: str
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    exchange_ts_ns: int
    received_ts_ns: int
    source: BookSource

    def __post_init__(self) -> None:
        require_text("exchange", self.exchange)
        require_text("symbol", self.symbol)
