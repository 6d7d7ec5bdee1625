"""exchange_sync's query endpoints (see :mod:`corec.core.queries` for the conventions).

- ``exchange_sync.health`` (:func:`health_report`): one row per exchange market, read
  from memory (the workers' request statistics; in replay, the replayed instrument).
- ``exchange_sync.open_orders`` (:func:`open_orders_page`): the orders of the latest
  stored snapshot of each exchange market (``open_order_snapshots``/``open_orders``).
- ``exchange_sync.order_book`` (:func:`live_order_book`, :func:`ticker_order_book`):
  live, CCXT ``fetch_order_book`` through the exchange's breaker and rate limiter;
  replaying, one level per side from the latest cached ticker.

Every responder returns :class:`~corec.core.queries.Refused` for a request it cannot
answer because of the request (naming the field), never raises for it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Final, get_args

from sqlalchemy import Connection, func, select

from corec.core.errors import CircuitOpenError, ExchangeError
from corec.core.queries import Refused, page, paging_refusal
from corec.core.store import Store
from corec.messages.exchange_data import (
    BookLevel,
    ExchangeHealthReport,
    ExchangeHealthRow,
    Market,
    OpenOrder,
    OpenOrdersPage,
    OpenOrdersRequest,
    OrderBook,
    OrderBookRequest,
    Ticker,
)
from corec.plugins.exchange_sync import models as m

if TYPE_CHECKING:  # the worker imports CCXT, which a replay never needs
    from corec.plugins.exchange_sync.worker import ExchangeWorker

MAX_BOOK_DEPTH: Final = 100
"""Deepest order book served (levels per side)."""

_MARKETS: tuple[str, ...] = get_args(Market)


def market_refusal(market: object, *, optional: bool) -> Refused | None:
    """``Refused(invalid, field="market")`` unless ``market`` is spot/futures (or None
    when ``optional``)."""
    if (optional and market is None) or market in _MARKETS:
        return None
    return Refused(
        code="invalid",
        message=f"market must be one of {', '.join(_MARKETS)}, got {market!r}",
        field="market",
    )


# -- exchange_sync.health ------------------------------------------------------------------


def health_report(
    now_ns: int,
    workers: Iterable[ExchangeWorker],
    replayed: Ticker | None = None,
    *,
    replay_instrument: tuple[str, Market] | None = None,
    tickers_replayed: int = 0,
) -> ExchangeHealthReport:
    """The ``exchange_sync.health`` reply: the workers' market rows, or in replay one row
    for ``replay_instrument`` (breaker ``closed``, last success = the last ticker
    replayed, ``replayed``), sorted by exchange then market."""
    rows: list[ExchangeHealthRow] = []
    for worker in workers:
        rows.extend(worker.market_rows())
    if replay_instrument is not None:
        exchange, market = replay_instrument
        rows.append(
            ExchangeHealthRow(
                exchange=exchange,
                market=market,
                breaker="closed",
                last_success_ts_ns=None if replayed is None else replayed.received_ts_ns,
                tickers=tickers_replayed,
                feed="replay",
            )
        )
    rows.sort(key=lambda r: (r.exchange, r.market))
    return ExchangeHealthReport(as_of_ts_ns=now_ns, items=tuple(rows))


# -- exchange_sync.open_orders ---------------------------------------------------------------


def _latest_orders(conn: Connection, exchange: str | None, market: str | None) -> list[OpenOrder]:
    snaps = m.open_order_snapshots
    latest = select(func.max(snaps.c.id).label("id")).group_by(snaps.c.exchange, snaps.c.market)
    if exchange is not None:
        latest = latest.where(snaps.c.exchange == exchange)
    if market is not None:
        latest = latest.where(snaps.c.market == market)
    o = m.open_orders
    query = select(o).where(o.c.snapshot_id.in_(latest.scalar_subquery()))
    return [
        OpenOrder(
            exchange=r["exchange"],
            market=r["market"],
            symbol=r["symbol"],
            order_id=r["order_id"],
            client_order_id=r["client_order_id"],
            side=r["side"],
            type=r["type"],
            price=r["price"],
            amount=r["amount"],
            filled=r["filled"],
            remaining=r["remaining"],
            status=r["status"],
            created_ts_ns=r["created_ts_ns"],
        )
        for r in conn.execute(query).mappings()
    ]


def _newest_first(order: OpenOrder) -> tuple[int, int, str, str, str]:
    known = order.created_ts_ns is not None
    return (
        0 if known else 1,
        -(order.created_ts_ns or 0),
        order.exchange,
        order.market,
        order.order_id,
    )


async def open_orders_page(store: Store, request: OpenOrdersRequest) -> OpenOrdersPage | Refused:
    """The ``exchange_sync.open_orders`` reply: the orders of the latest stored snapshot
    of each exchange market (an empty latest snapshot means none there), filtered,
    newest first, paged."""
    refusal = paging_refusal(request.limit, request.offset) or market_refusal(
        request.market, optional=True
    )
    if refusal is not None:
        return refusal
    orders = await store.read(lambda conn: _latest_orders(conn, request.exchange, request.market))
    if request.symbol is not None:
        orders = [o for o in orders if _symbol_matches(o.symbol, request.symbol)]
    orders.sort(key=_newest_first)
    total, items = page(orders, request.limit, request.offset)
    return OpenOrdersPage(total=total, items=items)


def _symbol_matches(symbol: str, wanted: str) -> bool:
    """``wanted`` is ``symbol``, or a pair (no ``:``) whose perpetuals ``symbol`` is."""
    return symbol == wanted or (":" not in wanted and symbol.split(":", 1)[0] == wanted)


# -- exchange_sync.order_book ----------------------------------------------------------------


def book_request_refusal(request: OrderBookRequest) -> Refused | None:
    """``Refused(invalid)`` for a malformed order book request (empty exchange or symbol,
    unknown market, depth outside 1..:data:`MAX_BOOK_DEPTH`), else None."""
    for name in ("exchange", "symbol"):
        value = getattr(request, name)
        if not isinstance(value, str) or not value:
            return Refused(code="invalid", message=f"{name} must not be empty", field=name)
    refusal = market_refusal(request.market, optional=False)
    if refusal is not None:
        return refusal
    if not isinstance(request.depth, int) or not 1 <= request.depth <= MAX_BOOK_DEPTH:
        return Refused(
            code="invalid",
            message=f"depth must be between 1 and {MAX_BOOK_DEPTH}, got {request.depth!r}",
            field="depth",
        )
    return None


async def live_order_book(
    workers: dict[str, ExchangeWorker], request: OrderBookRequest
) -> OrderBook | Refused:
    """The ``exchange_sync.order_book`` reply from the exchange (CCXT ``fetch_order_book``).

    Refused: ``invalid`` (see :func:`book_request_refusal`); ``not_found`` for an exchange
    or market exchange_sync does not read, or a symbol the exchange does not list there;
    ``unavailable`` while the exchange's breaker is not closed or a ``Retry-After`` runs
    (``retry_after_s`` set), or when the exchange failed or refused the request.
    """
    from corec.exchanges.ccxt_source import UnknownSymbolError  # CCXT: live only

    refusal = book_request_refusal(request)
    if refusal is not None:
        return refusal
    worker = workers.get(request.exchange)
    if worker is None:
        return Refused(
            code="not_found",
            message=f"exchange {request.exchange!r} is not read by exchange_sync "
            f"(configured: {', '.join(sorted(workers)) or 'none'})",
            field="exchange",
        )
    if request.market not in worker.sources:
        return Refused(
            code="not_found",
            message=f"{request.exchange} has no {request.market} market configured",
            field="market",
        )
    try:
        return await worker.order_book(request.market, request.symbol, request.depth)
    except CircuitOpenError as exc:
        return Refused(
            code="unavailable",
            message=f"{request.exchange} is not being called now (breaker or Retry-After); "
            "ask again later",
            retry_after_s=max(1, math.ceil(exc.retry_in_s)),
        )
    except UnknownSymbolError as exc:
        return Refused(code="not_found", message=str(exc), field="symbol")
    except ExchangeError as exc:  # temporary (timeouts, 429, 5xx) or refused
        wait = exc.retry_after_s
        return Refused(
            code="unavailable",
            message=f"order book not available: {exc}",
            retry_after_s=None if wait is None else max(1, math.ceil(wait)),
        )


def ticker_order_book(
    request: OrderBookRequest,
    instruments: Sequence[tuple[str, Market]],
    latest: Ticker | None,
) -> OrderBook | Refused:
    """The ``exchange_sync.order_book`` reply in replay: one level per side from
    ``latest`` (the instrument's latest cached ticker): its bid and ask, or its last
    price on a side it has no book for (recordings of bars or trades); amounts unknown.

    Refused: ``invalid`` (see :func:`book_request_refusal`); ``not_found`` for an exchange
    or market not replayed (``instruments``: the replayed (exchange, market)s) or a
    symbol without a ticker yet.
    """
    refusal = book_request_refusal(request)
    if refusal is not None:
        return refusal
    exchanges = {exchange for exchange, _ in instruments}
    if request.exchange not in exchanges:
        return Refused(
            code="not_found",
            message=f"exchange {request.exchange!r} is not replayed "
            f"(replaying: {', '.join(sorted(exchanges)) or 'nothing'})",
            field="exchange",
        )
    if (request.exchange, request.market) not in instruments:
        return Refused(
            code="not_found",
            message=f"{request.exchange} {request.market} is not replayed",
            field="market",
        )
    if latest is None:
        return Refused(
            code="not_found",
            message=f"no ticker of {request.symbol} on {request.exchange} {request.market} yet",
            field="symbol",
        )
    bid = latest.bid if latest.bid is not None else latest.last
    ask = latest.ask if latest.ask is not None else latest.last
    return OrderBook(
        exchange=latest.exchange,
        market=latest.market,
        symbol=latest.symbol,
        bids=() if bid is None else (BookLevel(price=bid),),
        asks=() if ask is None else (BookLevel(price=ask),),
        exchange_ts_ns=latest.exchange_ts_ns,
        received_ts_ns=latest.received_ts_ns,
        source="ticker",
    )
