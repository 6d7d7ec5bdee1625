"""market_monitor's query endpoint ``market_monitor.consolidated`` (see
:mod:`corec.core.queries` for the conventions)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import get_args

from corec.core.queries import Refused
from corec.messages.exchange_data import Market, Ticker, pair_of
from corec.messages.market_data import ConsolidatedQuote, ConsolidatedQuotes, ConsolidatedRequest
from corec.plugins.market_monitor.consolidate import GroupKey, consolidate_symbol

_MARKETS: tuple[str, ...] = get_args(Market)


def consolidated_quotes(
    latest: Mapping[GroupKey, Mapping[str, Ticker]],
    request: ConsolidatedRequest,
    *,
    now_ns: int,
    stale_after_ns: int,
) -> ConsolidatedQuotes | Refused:
    """The ``market_monitor.consolidated`` reply: the :class:`ConsolidatedQuote` of every
    (market, symbol) in ``latest`` (the monitor's latest ticker per venue) that passes the
    request's filters, built now (ages and staleness at ``now_ns``, as the published
    quotes are), sorted by pair, market, symbol.

    ``symbol`` is a CCXT unified symbol, or a pair (no ``:``) that matches the pair's spot
    symbol and its futures. Refused (``invalid``, field ``market``) for a market other
    than ``spot``/``futures``; an unknown symbol simply matches nothing.
    """
    market, symbol = request.market, request.symbol
    if market is not None and market not in _MARKETS:
        return Refused(
            code="invalid",
            message=f"market must be one of {', '.join(_MARKETS)}, got {market!r}",
            field="market",
        )
    quotes: list[ConsolidatedQuote] = []
    for (group_market, group_symbol), venues in latest.items():
        if market is not None and group_market != market:
            continue
        if symbol is not None and group_symbol != symbol:
            if ":" in symbol or pair_of(group_symbol) != symbol:
                continue
        spot = latest.get(("spot", pair_of(group_symbol))) if group_market == "futures" else None
        quote = consolidate_symbol(
            venues.values(),
            spot=spot.values() if spot else (),
            now_ns=now_ns,
            stale_after_ns=stale_after_ns,
        )
        if quote is not None:
            quotes.append(quote)
    quotes.sort(key=lambda q: (q.pair, q.market, q.symbol))
    return ConsolidatedQuotes(as_of_ts_ns=now_ns, items=tuple(quotes))
