"""Open positions and trade history."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from corec.api.deps import DEFAULT_LIMIT, Caller, Limit, Offset, gateway
from corec.api.gateway import Gateway
from corec.api.models import page_model
from corec.api.routes.common import listing
from corec.messages import trading_results

router = APIRouter(tags=["trading"])

Text = Annotated[str | None, Query(min_length=1, max_length=100)]
TsNs = Annotated[int | None, Query(ge=0, le=2**63 - 1, description="UTC nanoseconds")]


@router.get(
    "/positions", response_model=page_model(trading_results.PositionRow, "PositionsListing")
)
async def positions(
    _: Caller,
    gw: Annotated[Gateway, Depends(gateway)],
    strategy: Text = None,
    symbol: Text = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> Any:
    """Open positions: side, quantity, entry, mark, notional and unrealized PnL in USD."""
    reply = await gw.ask(
        trading_results.POSITIONS,
        trading_results.PositionsRequest(
            strategy=strategy, symbol=symbol, limit=limit, offset=offset
        ),
        trading_results.PositionsPage,
    )
    return listing(reply, limit, offset)


@router.get("/trades", response_model=page_model(trading_results.TradeClosed, "TradesListing"))
async def trades(
    _: Caller,
    gw: Annotated[Gateway, Depends(gateway)],
    strategy: Text = None,
    symbol: Text = None,
    from_ts_ns: TsNs = None,
    to_ts_ns: TsNs = None,
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> Any:
    """Closed trades, newest first: entry and exit, fees and realized PnL in USD."""
    reply = await gw.ask(
        trading_results.TRADES,
        trading_results.TradesRequest(
            strategy=strategy,
            symbol=symbol,
            from_ts_ns=from_ts_ns,
            to_ts_ns=to_ts_ns,
            limit=limit,
            offset=offset,
        ),
        trading_results.TradesPage,
    )
    return listing(reply, limit, offset)
