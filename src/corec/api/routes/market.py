"""Prices, the consolidated view, order books, exchanges' health and open orders."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from corec.api.deps import DEFAULT_LIMIT, Caller, Limit, Offset, gateway, require
from corec.api.gateway import Gateway
from corec.api.models import builtins, model_of, page_model
from corec.api.routes.common import listing
from corec.messages import exchange_data, market_data

router = APIRouter(tags=["market"])

Exchange = Annotated[
    str | None, Query(min_length=1, max_length=50, description="CoreC's exchange name")
]
Symbol = Annotated[
    str | None, Query(min_length=1, max_length=50, description="CCXT symbol, e.g. BTC/USDT")
]
MarketQ = Annotated[Literal["spot", "futures"] | None, Query(description="spot or futures")]


@router.get("/prices", response_model=model_of(exchange_data.LatestTickers))
async def prices(
    _: Caller,
    gw: Annotated[Gateway, Depends(gateway)],
    exchange: Exchange = None,
    market: MarketQ = None,
    symbol: Symbol = None,
) -> Any:
    """The latest ticker per exchange, market and symbol (bid, ask, last, volumes,
    exchange time), filtered by any of ``exchange``, ``market``, ``symbol``."""
    reply = await gw.ask(
        exchange_data.LATEST,
        exchange_data.LatestRequest(exchange=exchange, market=market, symbol=symbol),
        exchange_data.LatestTickers,
    )
    return builtins(reply)


@router.get("/prices/consolidated", response_model=model_of(market_data.ConsolidatedQuotes))
async def consolidated(
    _: Caller,
    gw: Annotated[Gateway, Depends(gateway)],
    symbol: Symbol = None,
    market: MarketQ = None,
) -> Any:
    """Per symbol across exchanges: best bid and ask and where, mid, spread in bps, the
    cross-exchange gap in bps, futures basis in bps, each venue's age and staleness."""
    reply = await gw.ask(
        market_data.CONSOLIDATED,
        market_data.ConsolidatedRequest(symbol=symbol, market=market),
        market_data.ConsolidatedQuotes,
    )
    return builtins(reply)


@router.get("/order-book", response_model=model_of(exchange_data.OrderBook))
async def order_book(
    _: Caller,
    gw: Annotated[Gateway, Depends(gateway)],
    exchange: Annotated[str, Query(min_length=1, max_length=50)],
    symbol: Annotated[str, Query(min_length=1, max_length=50)],
    market: Annotated[Literal["spot", "futures"], Query()] = "spot",
    depth: Annotated[int, Query(ge=1, le=500)] = 20,
) -> Any:
    """The order book of one instrument, fetched now (live: the exchange's order book
    endpoint through CCXT; replay: one level per side from the latest ticker)."""
    reply = await gw.ask(
        exchange_data.ORDER_BOOK,
        exchange_data.OrderBookRequest(
            exchange=exchange, market=market, symbol=symbol, depth=depth
        ),
        exchange_data.OrderBook,
    )
    return builtins(reply)


@router.get("/exchanges", response_model=model_of(exchange_data.ExchangeHealthReport))
async def exchanges(_: Caller, gw: Annotated[Gateway, Depends(gateway)]) -> Any:
    """Each exchange and market: breaker state, last success, failed polls, request
    latency p50/p95 in ms and errors by kind."""
    reply = await gw.ask(
        exchange_data.HEALTH,
        exchange_data.ExchangeHealthRequest(),
        exchange_data.ExchangeHealthReport,
    )
    return builtins(reply)


@router.get("/orders/open", response_model=page_model(exchange_data.OpenOrder, "OpenOrdersListing"))
async def open_orders(
    _: Annotated[Any, Depends(require("admin", "viewer", "member"))],
    gw: Annotated[Gateway, Depends(gateway)],
    exchange: Exchange = None,
    market: MarketQ = None,
    symbol: Symbol = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> Any:
    """Open orders on the exchanges (the latest snapshot per exchange and market)."""
    reply = await gw.ask(
        exchange_data.OPEN_ORDERS,
        exchange_data.OpenOrdersRequest(
            exchange=exchange, market=market, symbol=symbol, limit=limit, offset=offset
        ),
        exchange_data.OpenOrdersPage,
    )
    return listing(reply, limit, offset)
