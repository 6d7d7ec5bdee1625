"""A loopback HTTP server that stands in for Binance spot's public REST API.

It answers the two endpoints ccxt 4.5's ``binance`` class calls for public tickers once
``load_markets`` is limited to spot markets:

- ``GET /api/v3/exchangeInfo`` (``load_markets`` → ``fetch_markets`` → ``publicGetExchangeInfo``)
- ``GET /api/v3/ticker/24hr`` with ``symbols=["BTCUSDT","ETHUSDT"]`` (``fetch_tickers``) or
  ``symbol=BTCUSDT`` (``fetch_ticker``); an unknown symbol gets Binance's
  ``400 {"code":-1121,"msg":"Invalid symbol."}``.

With :attr:`FakeBinance.websocket` set before ``start()``, ``/ws/...`` also speaks
Binance's market-stream WebSocket (SUBSCRIBE, then ``24hrTicker`` events) for ccxt.pro.

Anything else gets a 404, as Binance's CDN does for a path it does not know.

Response bodies copy the shape Binance sends (prices and quantities as strings, times
in epoch milliseconds). Tests can replace :attr:`FakeBinance.tickers` and queue faults
with :meth:`FakeBinance.fail_next`. Every request is recorded in
:attr:`FakeBinance.requests` so tests can count HTTP calls.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

Fault = Literal[
    "rate_limit_429",  # 429 + Retry-After: 7, Binance's -1003 body
    "ban_418",  # 418 + Retry-After: 120 (IP auto-banned after ignoring 429s)
    "server_error_500",  # 500 with a plain HTML body, as a CDN/load balancer sends it
    "unknown_error_500",  # 500 with Binance's own {"code":-1000,...} body
    "timeout",  # never answers within the client's timeout
    "malformed_json",  # 200 application/json whose body is cut off mid-object
]

SERVER_TIME_MS = 1_700_000_000_000

# Trimmed from a real GET /api/v3/exchangeInfo answer (fields as Binance sends them).
_RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]


def _symbol_info(symbol: str, base: str, quote: str, tick: str, step: str) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": [
            "LIMIT",
            "LIMIT_MAKER",
            "MARKET",
            "STOP_LOSS",
            "STOP_LOSS_LIMIT",
            "TAKE_PROFIT",
            "TAKE_PROFIT_LIMIT",
        ],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "otoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": True,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": tick,
                "maxPrice": "1000000.00000000",
                "tickSize": tick,
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": step,
                "maxQty": "9000.00000000",
                "stepSize": step,
            },
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": "0.00000000",
                "maxQty": "76.27488779",
                "stepSize": "0.00000000",
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": "5.00000000",
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
        ],
        "permissions": [],
        "permissionSets": [["SPOT", "MARGIN"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }


EXCHANGE_INFO: dict[str, Any] = {
    "timezone": "UTC",
    "serverTime": SERVER_TIME_MS,
    "rateLimits": _RATE_LIMITS,
    "exchangeFilters": [],
    "symbols": [
        _symbol_info("BTCUSDT", "BTC", "USDT", "0.01000000", "0.00001000"),
        _symbol_info("ETHUSDT", "ETH", "USDT", "0.01000000", "0.00010000"),
        _symbol_info("BNBUSDT", "BNB", "USDT", "0.10000000", "0.00100000"),
    ],
}


def ticker_24hr(
    symbol: str,
    *,
    bid: str,
    ask: str,
    last: str,
    volume: str,
    quote_volume: str,
    close_time_ms: int,
    **overrides: Any,
) -> dict[str, Any]:
    """One element of ``GET /api/v3/ticker/24hr`` (type FULL), strings as Binance sends.

    ``overrides`` replace any other field by its Binance name (``openPrice=...``).
    """
    return {
        "symbol": symbol,
        "priceChange": "512.34000000",
        "priceChangePercent": "1.391",
        "weightedAvgPrice": "37102.55712399",
        "prevClosePrice": "36830.01000000",
        "lastPrice": last,
        "lastQty": "0.00214000",
        "bidPrice": bid,
        "bidQty": "3.81927000",
        "askPrice": ask,
        "askQty": "5.02112000",
        "openPrice": "36830.00000000",
        "highPrice": "37555.00000000",
        "lowPrice": "36622.70000000",
        "volume": volume,
        "quoteVolume": quote_volume,
        "openTime": close_time_ms - 86_400_000,
        "closeTime": close_time_ms,
        "firstId": 3272486112,
        "lastId": 3273550394,
        "count": 1064283,
        **overrides,
    }


def default_tickers() -> dict[str, dict[str, Any]]:
    """The tickers served by default, keyed by Binance market id."""
    return {
        "BTCUSDT": ticker_24hr(
            "BTCUSDT",
            bid="37342.35000000",
            ask="37342.36000000",
            last="37342.36000000",
            volume="29754.50374000",
            quote_volume="1103906524.61298000",
            close_time_ms=1_700_000_001_234,
        ),
        "ETHUSDT": ticker_24hr(
            "ETHUSDT",
            bid="2024.61000000",
            ask="2024.62000000",
            last="2024.61000000",
            volume="401262.38290000",
            quote_volume="810958290.19864500",
            close_time_ms=1_700_000_002_345,
        ),
        "BNBUSDT": ticker_24hr(
            "BNBUSDT",
            bid="253.40000000",
            ask="253.50000000",
            last="253.40000000",
            volume="472936.41900000",
            quote_volume="119849285.36160000",
            close_time_ms=1_700_000_003_456,
        ),
    }


@dataclass(frozen=True)
class RecordedRequest:
    """What the server received: method, path and query parameters."""

    method: str
    path: str
    query: dict[str, str]


class FakeBinance:
    """Binance spot's public REST API on ``127.0.0.1`` at a free port.

    Use ``await start()`` (returns the base URL, e.g. ``http://127.0.0.1:41234``) and
    ``await stop()``. Attributes tests may change: :attr:`tickers` (keyed by market id)
    and :attr:`ignore_symbols_filter` (answer every ticker whatever was asked for).
    """

    TIMEOUT_FAULT_SLEEP_S = 5.0

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.tickers: dict[str, dict[str, Any]] = default_tickers()
        self.ignore_symbols_filter = False
        self._faults: deque[tuple[Fault, str | None]] = deque()
        self._released = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.websocket = False
        self.ws_subscriptions: list[list[str]] = []
        self.ws_messages_sent = 0
        self.WS_PUSH_INTERVAL_S = 0.1

    # -- control ---------------------------------------------------------------------

    def fail_next(self, fault: Fault, *, path: str | None = None, times: int = 1) -> None:
        """Answer the next ``times`` requests (to ``path`` only, if given) with ``fault``."""
        for _ in range(times):
            self._faults.append((fault, path))

    def paths(self) -> list[str]:
        """The paths received, in order."""
        return [r.path for r in self.requests]

    def count(self, path: str) -> int:
        """How many requests reached ``path``."""
        return sum(1 for r in self.requests if r.path == path)

    async def start(self) -> str:
        """Listen on 127.0.0.1 at a free port; return the base URL."""
        app = web.Application(middlewares=[self._record_and_inject])
        app.router.add_get("/api/v3/exchangeInfo", self._exchange_info)
        app.router.add_get("/api/v3/ticker/24hr", self._ticker_24hr)
        if self.websocket:
            app.router.add_get("/ws/{stream:.*}", self._websocket)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self.url

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        """Binance's market streams (``wss://stream.binance.com:9443/ws``), as ccxt.pro
        uses them: ``{"method": "SUBSCRIBE", "params": ["btcusdt@ticker"], "id": N}``
        answered by ``{"result": null, "id": N}``, then a ``24hrTicker`` event per
        subscribed symbol every :attr:`WS_PUSH_INTERVAL_S`, built from :attr:`tickers`
        (field names of Binance's individual symbol ticker stream)."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        streams: list[str] = []
        pusher: asyncio.Task[None] | None = None

        async def push() -> None:
            while not ws.closed:
                for stream in streams:
                    market_id = stream.split("@", 1)[0].upper()
                    t = self.tickers.get(market_id)
                    if t is None:
                        continue
                    await ws.send_json(
                        {
                            "e": "24hrTicker",
                            "E": t["closeTime"],
                            "s": market_id,
                            "c": t["lastPrice"],
                            "b": t["bidPrice"],
                            "B": t["bidQty"],
                            "a": t["askPrice"],
                            "A": t["askQty"],
                            "o": t["openPrice"],
                            "h": t["highPrice"],
                            "l": t["lowPrice"],
                            "v": t["volume"],
                            "q": t["quoteVolume"],
                            "C": t["closeTime"],
                        }
                    )
                    self.ws_messages_sent += 1
                await asyncio.sleep(self.WS_PUSH_INTERVAL_S)

        try:
            async for message in ws:
                data = json.loads(message.data)
                if data.get("method") == "SUBSCRIBE":
                    streams.extend(data["params"])
                    self.ws_subscriptions.append(list(data["params"]))
                    await ws.send_json({"result": None, "id": data["id"]})
                    if pusher is None:
                        pusher = asyncio.create_task(push())
        finally:
            if pusher is not None:
                pusher.cancel()
        return ws

    async def stop(self) -> None:
        """Wake any handler held by a ``timeout`` fault and shut the server down."""
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- plumbing --------------------------------------------------------------------

    def _take_fault(self, path: str) -> Fault | None:
        for i, (fault, only_path) in enumerate(self._faults):
            if only_path is None or only_path == path:
                del self._faults[i]
                return fault
        return None

    @web.middleware
    async def _record_and_inject(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append(RecordedRequest(request.method, request.path, dict(request.query)))
        fault = self._take_fault(request.path)
        if fault == "rate_limit_429":
            body = {
                "code": -1003,
                "msg": "Too much request weight used; current limit is 6000 request weight "
                "per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling "
                "the API.",
            }
            return web.json_response(body, status=429, headers={"Retry-After": "7"})
        if fault == "ban_418":
            body = {"code": -1003, "msg": "Way too much request weight used; IP banned."}
            return web.json_response(body, status=418, headers={"Retry-After": "120"})
        if fault == "server_error_500":
            html = "<html><body><h1>500 Internal Server Error</h1></body></html>"
            return web.Response(status=500, text=html, content_type="text/html")
        if fault == "unknown_error_500":
            body = {
                "code": -1000,
                "msg": "An unknown error occurred while processing the request.",
            }
            return web.json_response(body, status=500)
        if fault == "timeout":
            try:
                await asyncio.wait_for(self._released.wait(), self.TIMEOUT_FAULT_SLEEP_S)
            except TimeoutError:
                pass
            return web.json_response({})
        if fault == "malformed_json":
            full = json.dumps(list(self.tickers.values()))
            return web.Response(
                status=200, text=full[: len(full) // 2], content_type="application/json"
            )
        known = request.path in ("/api/v3/exchangeInfo", "/api/v3/ticker/24hr") or (
            self.websocket and request.path.startswith("/ws/")
        )
        if not known:
            return web.Response(status=404, text="")
        return await handler(request)

    async def _exchange_info(self, request: web.Request) -> web.Response:
        return web.json_response(EXCHANGE_INFO)

    async def _ticker_24hr(self, request: web.Request) -> web.Response:
        invalid = web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        if "symbol" in request.query:
            one = self.tickers.get(request.query["symbol"])
            return invalid if one is None else web.json_response(copy.deepcopy(one))
        if "symbols" in request.query and not self.ignore_symbols_filter:
            wanted = json.loads(request.query["symbols"])
            if any(market_id not in self.tickers for market_id in wanted):
                return invalid
            return web.json_response([copy.deepcopy(self.tickers[m]) for m in wanted])
        return web.json_response([copy.deepcopy(t) for t in self.tickers.values()])
