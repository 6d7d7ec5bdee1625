"""One symbol across venues: best bid/ask and where, mid, spread, cross-exchange gap, basis.

Pure functions over the latest ticker per venue (no bus, no clock, no state):
market_monitor calls :func:`consolidate_symbol` on its latest tickers after each batch,
``corec prices`` calls :func:`consolidate` on exchange_sync's cache. Both take the time
to measure ages at (``now_ns``) and the staleness limit (``stale_after_ns``) as
arguments, so a replay's simulated clock and a live clock give the same figures.

Grouping: by market and CCXT unified symbol (spot ``BTC/USDT`` of every exchange
together; the perpetual ``BTC/USDT:USDT`` of every exchange together). Perpetual, dated
and inverse contracts of one pair are different instruments with different prices, so
each is a quote of its own; :func:`~corec.messages.exchange_data.pair_of` links a
contract to its spot pair for the basis.

Formulas (``Decimal`` throughout, bps to 4 decimals, ages to the millisecond):

- venue mid ``(bid + ask) / 2``, or ``last`` for a venue without a book (bars, trades);
  venue spread ``(ask - bid) / mid × 10 000``;
- stale: ``now_ns - received_ts_ns > stale_after_ns`` (no update from the venue for that
  long: a ticker's own timestamp may be the last trade's, old on a quiet market, or
  missing); stale venues are listed but take no part in best bid/ask, mid, gap or basis;
- best bid = highest fresh bid, best ask = lowest fresh ask (ties: first exchange by
  name); mid ``(best_bid + best_ask) / 2``; spread ``(best_ask - best_bid) / mid × 10 000``,
  negative when venues are crossed;
- gap ``(highest venue mid - lowest venue mid) / lowest venue mid × 10 000``, 0 with
  fewer than two fresh venues;
- basis, per exchange quoting both legs fresh: ``(futures mid - spot mid) / spot mid × 10 000``.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from corec.messages.exchange_data import Ticker, pair_of
from corec.messages.market_data import BasisQuote, ConsolidatedQuote, VenueQuote
from corec.plugins.market_monitor.analytics import BPS, BPS_QUANTUM, TWO, mid_price, spread_bps

ZERO_BPS = Decimal("0.0000")

GroupKey = tuple[str, str]
"""(market, symbol): the venues of one consolidated quote."""


def venue_quote(ticker: Ticker, *, now_ns: int, stale_after_ns: int) -> VenueQuote | None:
    """The venue's quote at ``now_ns``; ``None`` when the ticker has no mid (one side of
    the book and no ``last``)."""
    mid = mid_price(ticker.bid, ticker.ask, ticker.last)
    if mid is None:
        return None
    age_ns = now_ns - ticker.received_ts_ns
    return VenueQuote(
        exchange=ticker.exchange,
        symbol=ticker.symbol,
        bid=ticker.bid,
        ask=ticker.ask,
        last=ticker.last,
        mid=mid,
        spread_bps=spread_bps(ticker.bid, ticker.ask),
        exchange_ts_ns=ticker.exchange_ts_ns,
        age_s=Decimal((age_ns + 500_000) // 1_000_000).scaleb(-3),  # ms, half up
        stale=age_ns > stale_after_ns,
    )


def basis_bps(spot_mid: Decimal, futures_mid: Decimal) -> Decimal:
    """``(futures_mid - spot_mid) / spot_mid × 10 000`` to 4 decimals (> 0: contango)."""
    return ((futures_mid - spot_mid) / spot_mid * BPS).quantize(BPS_QUANTUM)


def consolidate_symbol(
    venues: Iterable[Ticker],
    *,
    spot: Iterable[Ticker] = (),
    now_ns: int,
    stale_after_ns: int,
) -> ConsolidatedQuote | None:
    """The consolidated quote of one (market, symbol) from its venues' latest tickers.

    Args:
        venues: one ticker per exchange, all of the same market and symbol.
        spot: for a futures symbol, the latest tickers of its spot pair (one per
            exchange), for the basis; ignored for spot.
        now_ns: when ages are measured (UTC ns; the node clock).
        stale_after_ns: a venue older than this is stale.

    Returns:
        The quote, or ``None`` when no venue has a mid.

    Raises:
        ValueError: venues of different markets or symbols, an exchange twice, or a
            ``spot`` ticker that is not the pair's spot.
    """
    tickers = list(venues)
    if not tickers:
        return None
    market, symbol = tickers[0].market, tickers[0].symbol
    if len(tickers) > 1:
        tickers.sort(key=_by_exchange)
        _check_venues(tickers, market, symbol)
    quotes = []
    for t in tickers:
        q = venue_quote(t, now_ns=now_ns, stale_after_ns=stale_after_ns)
        if q is not None:
            quotes.append(q)
    if not quotes:
        return None
    pair = pair_of(symbol)

    best_bid = best_ask = high = low = None
    best_bid_exchange = best_ask_exchange = high_exchange = low_exchange = None
    fresh = 0
    for q in quotes:
        if q.stale:
            continue
        fresh += 1
        if q.bid is not None and (best_bid is None or q.bid > best_bid):
            best_bid, best_bid_exchange = q.bid, q.exchange
        if q.ask is not None and (best_ask is None or q.ask < best_ask):
            best_ask, best_ask_exchange = q.ask, q.exchange
        if high is None or q.mid > high:
            high, high_exchange = q.mid, q.exchange
        if low is None or q.mid < low:
            low, low_exchange = q.mid, q.exchange

    mid: Decimal | None
    if best_bid is not None and best_ask is not None:
        mid = (best_bid + best_ask) / TWO
    elif high is not None and low is not None:
        mid = high if high == low else (high + low) / TWO
    else:
        mid = None
    gap = ZERO_BPS
    if fresh >= 2 and high is not None and low is not None:
        gap = ((high - low) / low * BPS).quantize(BPS_QUANTUM)

    basis: tuple[BasisQuote, ...] = ()
    if market == "futures":
        basis = _basis(quotes, pair, symbol, spot, now_ns=now_ns, stale_after_ns=stale_after_ns)

    return ConsolidatedQuote(
        pair=pair,
        market=market,
        symbol=symbol,
        venues=tuple(quotes),
        best_bid=best_bid,
        best_bid_exchange=best_bid_exchange,
        best_ask=best_ask,
        best_ask_exchange=best_ask_exchange,
        mid=mid,
        spread_bps=spread_bps(best_bid, best_ask),
        high_mid=high,
        high_mid_exchange=high_exchange,
        low_mid=low,
        low_mid_exchange=low_exchange,
        gap_bps=gap,
        basis=basis,
        as_of_ts_ns=now_ns,
    )


def consolidate(
    tickers: Iterable[Ticker], *, now_ns: int, stale_after_ns: int
) -> list[ConsolidatedQuote]:
    """Consolidated quotes of every (market, symbol) in ``tickers``.

    ``tickers`` may hold several tickers of one venue (exchange, market, symbol): the
    newest (by ``exchange_ts_ns``, then ``seq``) counts. Futures quotes carry their basis
    against the pair's spot tickers found in ``tickers``. Symbols whose venues all lack
    a mid are left out.

    Returns:
        Quotes sorted by pair, then spot before futures, then symbol.
    """
    groups = latest_by_symbol(tickers)
    quotes = []
    for (market, symbol), venues in groups.items():
        spot = groups.get(("spot", pair_of(symbol)), {}) if market == "futures" else {}
        quote = consolidate_symbol(
            venues.values(),
            spot=spot.values(),
            now_ns=now_ns,
            stale_after_ns=stale_after_ns,
        )
        if quote is not None:
            quotes.append(quote)
    quotes.sort(key=lambda q: (q.pair, q.market != "spot", q.symbol))
    return quotes


def latest_by_symbol(tickers: Iterable[Ticker]) -> dict[GroupKey, dict[str, Ticker]]:
    """``{(market, symbol): {exchange: newest ticker}}``."""
    groups: dict[GroupKey, dict[str, Ticker]] = {}
    for t in tickers:
        venues = groups.setdefault((t.market, t.symbol), {})
        seen = venues.get(t.exchange)
        if seen is None or (t.exchange_ts_ns, t.seq) >= (seen.exchange_ts_ns, seen.seq):
            venues[t.exchange] = t
    return groups


def _basis(
    futures: list[VenueQuote],
    pair: str,
    symbol: str,
    spot: Iterable[Ticker],
    *,
    now_ns: int,
    stale_after_ns: int,
) -> tuple[BasisQuote, ...]:
    spot_by_exchange: dict[str, Ticker] = {}
    for t in spot:
        if t.market != "spot" or t.symbol != pair:
            raise ValueError(f"{t.market} {t.symbol} is not the spot pair of {symbol}")
        spot_by_exchange[t.exchange] = t
    if not spot_by_exchange:
        return ()
    out = []
    for f in futures:
        leg = spot_by_exchange.get(f.exchange)
        if f.stale or leg is None:
            continue
        s = venue_quote(leg, now_ns=now_ns, stale_after_ns=stale_after_ns)
        if s is None or s.stale:
            continue
        out.append(
            BasisQuote(
                exchange=f.exchange,
                spot_symbol=pair,
                futures_symbol=symbol,
                spot_mid=s.mid,
                futures_mid=f.mid,
                basis_bps=basis_bps(s.mid, f.mid),
            )
        )
    return tuple(out)


def _check_venues(tickers: list[Ticker], market: str, symbol: str) -> None:
    exchanges = set()
    for t in tickers:
        if t.market != market or t.symbol != symbol:
            raise ValueError(f"cannot consolidate {t.market} {t.symbol} with {market} {symbol}")
        if t.exchange in exchanges:
            raise ValueError(f"{market} {symbol}: {t.exchange} given twice")
        exchanges.add(t.exchange)


def _by_exchange(ticker: Ticker) -> str:
    return ticker.exchange
