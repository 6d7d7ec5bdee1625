"""``market_data``: market_monitor's view of each instrument and of each symbol across venues.

- :class:`MarketSnapshot`: one instrument on one venue, on every ticker market_monitor
  accepts; consumed by strategies (trading_execution) and by capital_pool to mark open
  positions.
- :class:`ConsolidatedQuote`: one symbol across venues (best bid/ask and where they are,
  mid, spread, the cross-exchange gap, futures basis, staleness per venue), after the
  snapshots of each ticker batch. Consumers that only want snapshots ignore it.

Also the ``market_monitor.consolidated`` request endpoint (:data:`CONSOLIDATED`).

Prices are in the quote currency of the symbol; ``*_bps`` are basis points to 4 decimals.
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar, Final

import msgspec

from corec.core.events import Payload
from corec.messages._checks import (
    require_finite,
    require_non_negative,
    require_positive,
    require_text,
)
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


class VenueQuote(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One venue's latest quote for a symbol, inside a :class:`ConsolidatedQuote`.

    Fields:
        exchange: CoreC's exchange name (as in ``exchange_data``).
        symbol: the venue's CCXT unified symbol (the quote's ``symbol``).
        bid, ask, last: from the venue's latest ticker (``None`` where it has none).
        mid: ``(bid + ask) / 2``, or ``last`` when the venue has no book (bars, trades).
        spread_bps: ``(ask - bid) / mid × 10 000`` to 4 decimals; ``None`` without a book.
        exchange_ts_ns: the ticker's exchange timestamp (UTC ns).
        age_s: ``(as_of_ts_ns - received_ts_ns) / 10⁹`` in seconds, to the millisecond
            (half up): how long since CoreC last heard from the venue (for a replay, the
            recording's time, as received equals exchange time there).
        stale: ``age_s`` is above the monitor's ``stale_after_s``; a stale venue is listed
            but left out of best bid/ask, mid, gap and basis.
    """

    exchange: str
    symbol: str
    bid: Decimal | None
    ask: Decimal | None
    last: Decimal | None
    mid: Decimal
    spread_bps: Decimal | None
    exchange_ts_ns: int
    age_s: Decimal
    stale: bool

    def __post_init__(self) -> None:
        require_text("exchange", self.exchange)
        require_text("symbol", self.symbol)
        require_positive("bid", self.bid)
        require_positive("ask", self.ask)
        require_positive("last", self.last)
        require_positive("mid", self.mid)
        require_finite("spread_bps", self.spread_bps)
        require_finite("age_s", self.age_s)


class BasisQuote(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Futures basis on one exchange: a futures contract against the spot pair.

    Fields:
        exchange: the exchange quoting both legs (basis never mixes exchanges).
        spot_symbol: the spot pair (``BTC/USDT``).
        futures_symbol: the contract (``BTC/USDT:USDT``).
        spot_mid, futures_mid: each leg's venue mid (see :class:`VenueQuote`).
        basis_bps: ``(futures_mid - spot_mid) / spot_mid × 10 000`` to 4 decimals;
            positive is contango (futures above spot), negative backwardation.
    """

    exchange: str
    spot_symbol: str
    futures_symbol: str
    spot_mid: Decimal
    futures_mid: Decimal
    basis_bps: Decimal

    def __post_init__(self) -> None:
        require_text("exchange", self.exchange)
        require_positive("spot_mid", self.spot_mid)
        require_positive("futures_mid", self.futures_mid)
        require_finite("basis_bps", self.basis_bps)


class ConsolidatedQuote(Payload, frozen=True, kw_only=True, gc=False):
    """One symbol across venues: where the best prices are, the gap between venues, basis.

    Published by market_monitor after the :class:`MarketSnapshot` of a ticker batch, for
    every (market, symbol) the batch touched (and for the futures of a pair whose spot
    moved, as their basis changed), and when a venue goes stale; at most once per
    ``consolidate_interval_s`` of node-clock time per symbol (an update inside the
    interval is published when it ends). ``corec prices`` builds the same view with
    :func:`corec.plugins.market_monitor.consolidate.consolidate`.

    Venues are grouped by market and CCXT unified symbol: spot ``BTC/USDT`` on every
    exchange together, the perpetual ``BTC/USDT:USDT`` on every exchange together (a
    dated or inverse contract of the same pair is a symbol, and a quote, of its own).

    Fields:
        pair: the spot pair (``pair_of(symbol)``).
        market, symbol: what is quoted (``futures``, ``BTC/USDT:USDT``).
        venues: every venue's latest quote, stale ones included, sorted by exchange.
        best_bid, best_bid_exchange: the highest fresh bid and the venue holding it
            (``None`` when no fresh venue has a book); ties go to the first exchange
            in name order.
        best_ask, best_ask_exchange: the lowest fresh ask and its venue.
        mid: ``(best_bid + best_ask) / 2``; without a book on any fresh venue,
            ``(high_mid + low_mid) / 2`` (one last-only venue: its last); ``None``
            when every venue is stale.
        spread_bps: ``(best_ask - best_bid) / mid × 10 000`` to 4 decimals, negative
            when venues are crossed (one venue's bid above another's ask: an
            arbitrage); ``None`` without both sides.
        high_mid, high_mid_exchange: the highest fresh venue mid and its venue.
        low_mid, low_mid_exchange: the lowest fresh venue mid and its venue.
        gap_bps: the cross-exchange gap ``(high_mid - low_mid) / low_mid × 10 000`` to 4
            decimals; 0 with fewer than two fresh venues.
        basis: futures quotes only (empty for spot): per exchange quoting this contract
            and the spot pair, both fresh, the :class:`BasisQuote`, by exchange.
        as_of_ts_ns: the time ages are measured at (the node clock, UTC ns).
    """

    TYPE: ClassVar[str] = "consolidated_quote"
    pair: str
    market: Market
    symbol: str
    venues: tuple[VenueQuote, ...]
    best_bid: Decimal | None
    best_bid_exchange: str | None
    best_ask: Decimal | None
    best_ask_exchange: str | None
    mid: Decimal | None
    spread_bps: Decimal | None
    high_mid: Decimal | None
    high_mid_exchange: str | None
    low_mid: Decimal | None
    low_mid_exchange: str | None
    gap_bps: Decimal
    basis: tuple[BasisQuote, ...] = ()
    as_of_ts_ns: int

    def __post_init__(self) -> None:
        require_text("pair", self.pair)
        require_text("symbol", self.symbol)
        require_positive("best_bid", self.best_bid)
        require_positive("best_ask", self.best_ask)
        require_positive("mid", self.mid)
        require_finite("spread_bps", self.spread_bps)
        require_positive("high_mid", self.high_mid)
        require_positive("low_mid", self.low_mid)
        require_non_negative("gap_bps", self.gap_bps)
        if (self.best_bid is None) != (self.best_bid_exchange is None):
            raise ValueError("best_bid and best_bid_exchange must be given together")
        if (self.best_ask is None) != (self.best_ask_exchange is None):
            raise ValueError("best_ask and best_ask_exchange must be given together")
        if (self.high_mid is None) != (self.high_mid_exchange is None) or (
            self.low_mid is None
        ) != (self.low_mid_exchange is None):
            raise ValueError("high_mid/low_mid and their exchanges must be given together")
        if self.market == "spot" and self.basis:
            raise ValueError("basis is only quoted on futures")


# -- query endpoint (read by the API and other readers) ----------------------------------

CONSOLIDATED: Final = "market_monitor.consolidated"
"""Request endpoint: :class:`ConsolidatedRequest` → :class:`ConsolidatedQuotes` |
:class:`~corec.core.queries.Refused` (the consolidated view of every symbol now)."""


class ConsolidatedRequest(Payload, frozen=True, kw_only=True):
    """Ask market_monitor for its consolidated view; ``None`` filters match anything.

    Fields:
        symbol: a CCXT unified symbol (``BTC/USDT:USDT``), or a pair (``BTC/USDT``)
            matching the pair's spot symbol and its futures.
        market: ``spot`` or ``futures``.
    """

    TYPE: ClassVar[str] = "consolidated_request"
    symbol: str | None = None
    market: Market | None = None


class ConsolidatedQuotes(Payload, frozen=True, kw_only=True):
    """Reply to :class:`ConsolidatedRequest`: one :class:`ConsolidatedQuote` per (market,
    symbol) seen, built from each venue's latest ticker with ages and staleness measured
    at ``as_of_ts_ns`` (node clock, UTC ns); sorted by pair, market, symbol."""

    TYPE: ClassVar[str] = "consolidated_quotes"
    as_of_ts_ns: int
    items: tuple[ConsolidatedQuote, ...]
