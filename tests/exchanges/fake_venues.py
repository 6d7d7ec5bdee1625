"""Loopback HTTP servers that answer like the REST APIs of CoreC's five exchanges.

One :class:`FakeVenue` per CCXT class, each an ``aiohttp.web`` server on ``127.0.0.1``
at a free port. Point a real ``ccxt.async_support`` class at it by rewriting its URLs
(``exchange.urls["api"] = rewrite_api_urls(exchange.urls["api"], fake.base_url)``, see
:func:`make_exchange`), or give ``fake.base_url`` to ``CcxtTickerSource(api_url=...)``.
One server per class, because the classes share paths (``/api/v1/orders`` is spot on
kucoin and futures on kucoinfutures) and ``rewrite_api_urls`` maps every host of a class
(``api.kucoin.com``, ``api-futures.kucoin.com``) onto the one base URL.

Endpoints served (ccxt 4.5.90; ``*`` = signed, the API-key header must be present;
everything else answers the venue's own 404 and is listed in :attr:`FakeVenue.unhandled`):

=================  ============================================================================
CCXT class         paths
=================  ============================================================================
binance,           ``/api/v3/exchangeInfo``, ``/fapi/v1/exchangeInfo``, ``/dapi/v1/exchangeInfo``
binanceusdm        (empty), ``/api/v3/ticker/24hr`` and ``/fapi/v1/ticker/24hr`` (``symbol``,
                   ``symbols=[..]`` spot only, or all), ``/api/v3/ticker/bookTicker``,
                   ``/fapi/v1/ticker/bookTicker``, ``/api/v3/time``, ``/fapi/v1/time``;
                   * ``/api/v3/openOrders``, ``/fapi/v1/openOrders``,
                   ``/sapi/v1/capital/config/getall``, ``/sapi/v1/margin/allPairs``,
                   ``/sapi/v1/margin/isolated/allPairs`` (header ``X-MBX-APIKEY``)
kucoin,            ``/api/v3/currencies``, ``/api/v2/symbols``, ``/api/v1/market/allTickers``,
kucoinfutures      ``/api/v1/market/stats``, ``/api/v1/contracts/active``,
                   ``/api/v1/allTickers``, ``/api/v1/ticker``, ``/api/v1/timestamp``;
                   * ``/api/ua/v1/account/mode``, ``/api/v3/margin/symbols``,
                   ``/api/v1/isolated/symbols``, ``/api/v1/hf/accounts/opened``,
                   ``/api/v1/orders`` (spot when ``tradeType`` is in the query, else futures),
                   ``/api/v1/hf/orders/active`` (headers ``KC-API-KEY``, ``KC-API-PASSPHRASE``)
bybit              ``/v5/market/instruments-info`` (``category`` spot, linear; inverse and
                   option empty), ``/v5/market/tickers``, ``/v5/market/time``;
                   * ``/v5/asset/coin/query-info``, ``/v5/order/realtime``,
                   ``/v5/user/query-api``, ``/v5/account/info`` (header ``X-BAPI-API-KEY``)
okx                ``/api/v5/public/instruments`` (``instType`` SPOT, SWAP; FUTURES and OPTION
                   empty), ``/api/v5/market/tickers``, ``/api/v5/market/ticker``,
                   ``/api/v5/public/time``; * ``/api/v5/asset/currencies``,
                   ``/api/v5/trade/orders-pending`` (headers ``OK-ACCESS-KEY``,
                   ``OK-ACCESS-PASSPHRASE``)
kraken             ``/0/public/Assets``, ``/0/public/AssetPairs``, ``/0/public/Ticker``
                   (``pair=ID,ID``), ``/0/public/Time``; * ``POST /0/private/OpenOrders``
                   (header ``API-Key``)
krakenfutures      ``/derivatives/api/v3/instruments``, ``/derivatives/api/v3/tickers``,
                   ``/derivatives/api/v3/tickers/{symbol}``; * ``/derivatives/api/v3/openorders``
                   (header ``APIKey``)
=================  ============================================================================

Which calls CCXT makes was read from ``ccxt/async_support/<id>.py`` and checked by running
the classes against these servers; the response shapes copy the exchanges' API docs
(Binance spot and USDⓈ-M, KuCoin "docs-new", Bybit v5, OKX v5, Kraken spot REST, Kraken
Futures v3): prices as strings where the exchange sends strings (JSON numbers for KuCoin
futures contracts and Kraken Futures), times in the exchange's unit (ms; KuCoin futures
ticker ``ts`` in ns; Kraken ``opentm`` in s; Kraken Futures ISO 8601).

Test state lives in venue-neutral form: :attr:`FakeVenue.markets`, :attr:`FakeVenue.tickers`
(``set_ticker``), :attr:`FakeVenue.open_orders` (:class:`FakeOrder`, two per market kind by
default); each venue renders it in its own shape. ``KucoinVenue.hf_account = True`` makes
``/api/v1/hf/accounts/opened`` say so (CCXT then needs a symbol for open orders). Faults
(:data:`Fault`) are queued with :meth:`FakeVenue.fail_next`; ``fake.down = True`` makes every
request fail (``fake.down_fault``, default ``service_unavailable_503``) until set back to
``False``. Every request is recorded in :attr:`FakeVenue.requests` (method, path, query,
headers, body); :meth:`FakeVenue.ticker_requests` and :meth:`FakeVenue.auth_requests` count
the ticker calls and the calls that carried the API key.

CCXT quirks met on the way (4.5.90): ``load_markets`` also calls ``fetch_currencies``,
which is private (so only sent with keys) on binance (plus ``/sapi/v1/margin/allPairs``),
bybit and okx, and public on kucoin (``/api/v3/currencies``) and kraken
(``/0/public/Assets``, needed for its symbols); with keys kucoin's load adds the account
mode, margin symbols and HF-account calls. binance raises for ``fetch_open_orders()`` without
a symbol unless ``options["warnOnFetchOpenOrdersWithoutSymbol"] = False``. bybit's
``defaultType`` is swap. A malformed or empty 200 body makes kucoin (spot), bybit, okx and
kraken return ``{}`` from ``fetch_tickers`` without raising.

Usage::

    async with FakeVenues.start(["kucoin", "okx"], extra_symbols=10) as venues:
        fake = venues["kucoin"]
        fake.set_ticker("BTC/USDT", bid="100", ask="101", last="100.5")
        fake.fail_next("rate_limit_429")
        exchange = make_exchange("kucoin", fake, credentials=True)
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar, Literal

import ccxt.async_support as ccxt_async
import pytest
from aiohttp import web

from corec.exchanges.ccxt_source import DEFAULT_IDS, rewrite_api_urls

Fault = Literal[
    "rate_limit_429",  # 429 + Retry-After: 7 + the venue's own rate-limit body
    "ban_418",  # 418 + Retry-After: 120 (Binance's IP ban); same body as the 429
    "server_error_500",  # 500 with an HTML body, as a load balancer sends it
    "service_unavailable_503",  # 503 with an HTML body (the default "down" answer)
    "timeout",  # answers only after TIMEOUT_FAULT_S (longer than the client timeout)
    "malformed_json",  # 200 application/json, the real answer cut off halfway
    "empty_body",  # 200 application/json with an empty body
]
FAULTS: tuple[Fault, ...] = (
    "rate_limit_429",
    "ban_418",
    "server_error_500",
    "service_unavailable_503",
    "timeout",
    "malformed_json",
    "empty_body",
)

VENUE_IDS: tuple[str, ...] = DEFAULT_IDS  # the eight CCXT classes of the five exchanges

SERVER_TIME_MS = 1_700_000_000_000
RETRY_AFTER_S = 7
BAN_RETRY_AFTER_S = 120

# Credentials for make_exchange(credentials=True); the servers check only that the key
# header is present, never a signature.
API_KEY = "fake-api-key"
API_SECRET = "ZmFrZS1zZWNyZXQ="  # base64, as kraken needs
API_PASSWORD = "fake-passphrase"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_KEEP: Any = object()


def _dec(value: Decimal | str | int | float | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _s(value: Decimal | None, places: int | None = None) -> str:
    """A price/quantity as the exchange's string; ``""`` when missing."""
    if value is None:
        return ""
    return f"{value:.{places}f}" if places is not None else format(value, "f")


def _f(value: Decimal | None) -> float | None:
    """A price/quantity as a JSON number (KuCoin futures, Kraken Futures)."""
    return None if value is None else float(value)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{ms % 1000:03d}Z"
    )


# -- venue-neutral state ----------------------------------------------------------------


Kind = Literal["spot", "swap"]  # swap: a linear perpetual
Side = Literal["buy", "sell"]


@dataclass(frozen=True)
class FakeMarket:
    """One instrument: ``kind`` is ``spot`` or ``swap`` (a linear perpetual)."""

    symbol: str  # CCXT unified: BTC/USDT, BTC/USDT:USDT
    base: str
    quote: str
    kind: Kind

    @property
    def settle(self) -> str | None:
        return self.quote if self.kind == "swap" else None


@dataclass
class FakeTicker:
    """Top of book and 24 h stats; ``None`` means the venue sends the field empty."""

    bid: Decimal | None
    ask: Decimal | None
    last: Decimal | None
    base_volume: Decimal
    quote_volume: Decimal
    timestamp_ms: int


@dataclass
class FakeOrder:
    """One resting order, rendered in each venue's open-orders shape.

    ``amount`` is in the venue's unit (base currency on spot, contracts on some swaps).
    """

    symbol: str
    side: Side
    price: Decimal
    amount: Decimal
    filled: Decimal = Decimal(0)
    order_id: str = ""
    client_order_id: str = ""
    created_ms: int = SERVER_TIME_MS - 60_000
    type: Literal["limit"] = "limit"

    @property
    def remaining(self) -> Decimal:
        return self.amount - self.filled


@dataclass(frozen=True)
class RecordedRequest:
    """What a server received. ``headers`` keeps every header the client sent."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""


_DEFAULT_PRICES: dict[str, tuple[str, str, str, str, str]] = {
    # base: bid, ask, last, base volume, quote volume (spot; swaps are shifted up)
    "BTC": ("37342.35", "37342.36", "37342.36", "29754.50374", "1103906524.61298"),
    "ETH": ("2024.61", "2024.62", "2024.61", "401262.3829", "810958290.198645"),
    "SOL": ("57.12", "57.13", "57.12", "1811392.15", "103405277.4"),
}
_SWAP_SHIFT = {"BTC": Decimal("15.5"), "ETH": Decimal("1.25"), "SOL": Decimal("0.05")}


# -- the server -------------------------------------------------------------------------


class FakeVenue:
    """One CCXT class's REST API on ``127.0.0.1`` at a free port.

    Args:
        venue_id: the CCXT id this server stands in for (one of :data:`VENUE_IDS`).
        extra_symbols: add ``C0001``… ``C{n}`` markets (spot ``C0001/USDT`` and perpetual
            ``C0001/USDT:USDT`` where the venue has them) with tickers, for benchmarks.

    Attributes tests may change: :attr:`tickers` (via :meth:`set_ticker`),
    :attr:`open_orders`, :attr:`down`, :attr:`down_fault`, :attr:`TIMEOUT_FAULT_S`.
    """

    SPOT_QUOTE: ClassVar[str | None] = "USDT"
    SWAP_SETTLE: ClassVar[str | None] = "USDT"
    BASES: ClassVar[tuple[str, ...]] = ("BTC", "ETH", "SOL")
    AUTH_HEADER: ClassVar[str] = ""
    TICKER_PATHS: ClassVar[frozenset[str]] = frozenset()
    TIMEOUT_FAULT_S: float = 5.0

    def __init__(self, venue_id: str, *, extra_symbols: int = 0) -> None:
        self.venue_id = venue_id
        self.requests: list[RecordedRequest] = []
        self.unhandled: list[RecordedRequest] = []
        self.down = False
        self.down_fault: Fault = "service_unavailable_503"
        self.markets: dict[str, FakeMarket] = {}
        self.tickers: dict[str, FakeTicker] = {}
        self._faults: deque[tuple[Fault, str | None]] = deque()
        self._released = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self._build_markets(extra_symbols)
        self.open_orders: list[FakeOrder] = self.default_orders()

    # -- control -------------------------------------------------------------------------

    def fail_next(self, fault: Fault, *, path: str | None = None, times: int = 1) -> None:
        """Answer the next ``times`` requests (to ``path`` only, if given) with ``fault``."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {FAULTS}")
        for _ in range(times):
            self._faults.append((fault, path))

    def set_ticker(
        self,
        symbol: str,
        *,
        bid: Decimal | str | float | None = _KEEP,
        ask: Decimal | str | float | None = _KEEP,
        last: Decimal | str | float | None = _KEEP,
        base_volume: Decimal | str | float = _KEEP,
        quote_volume: Decimal | str | float = _KEEP,
        timestamp_ms: int = _KEEP,
    ) -> FakeTicker:
        """Replace fields of ``symbol``'s ticker (a unified symbol the venue lists).

        Omitted fields keep their value; ``None`` makes the venue send the price empty.
        """
        if symbol not in self.markets:
            raise KeyError(f"{self.venue_id} has no market {symbol!r}")
        ticker = self.tickers[symbol]
        if bid is not _KEEP:
            ticker.bid = _dec(bid)
        if ask is not _KEEP:
            ticker.ask = _dec(ask)
        if last is not _KEEP:
            ticker.last = _dec(last)
        if base_volume is not _KEEP:
            ticker.base_volume = Decimal(str(base_volume))
        if quote_volume is not _KEEP:
            ticker.quote_volume = Decimal(str(quote_volume))
        if timestamp_ms is not _KEEP:
            ticker.timestamp_ms = timestamp_ms
        return ticker

    def symbols(self, kind: Kind) -> list[str]:
        """Unified symbols of this venue's ``kind`` markets, in listing order."""
        return [m.symbol for m in self.markets.values() if m.kind == kind]

    def paths(self) -> list[str]:
        """The paths received, in order."""
        return [r.path for r in self.requests]

    def count(self, path: str) -> int:
        """How many requests reached ``path``."""
        return sum(1 for r in self.requests if r.path == path)

    def ticker_requests(self) -> int:
        """How many requests reached one of :attr:`TICKER_PATHS` (or a path below one)."""
        return sum(
            1
            for r in self.requests
            if any(r.path == p or r.path.startswith(p + "/") for p in self.TICKER_PATHS)
        )

    def auth_requests(self) -> list[RecordedRequest]:
        """Requests that carried this venue's API-key header."""
        return [r for r in self.requests if self._has_key(r.headers)]

    def clear(self) -> None:
        """Forget the recorded requests (state and queued faults are kept)."""
        self.requests.clear()
        self.unhandled.clear()

    async def start(self) -> str:
        """Listen on 127.0.0.1 at a free port; return :attr:`base_url`."""
        app = web.Application(middlewares=[self._middleware])
        self._add_routes(app.router)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        return self.base_url

    async def stop(self) -> None:
        """Wake handlers held by a ``timeout`` fault and shut the server down."""
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeVenue:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- per venue -----------------------------------------------------------------------

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        raise NotImplementedError

    def base_id(self, base: str) -> str:
        """The venue's id of a base currency (``XBT`` for BTC on kraken)."""
        return base

    def market_id(self, market: FakeMarket) -> str:
        raise NotImplementedError

    def rate_limit_body(self) -> dict[str, Any]:
        raise NotImplementedError

    def not_found_body(self) -> dict[str, Any] | str:
        return ""

    def auth_error(self) -> web.Response:
        return web.json_response({"error": "missing API key"}, status=401)

    def default_orders(self) -> list[FakeOrder]:
        """Two orders per market kind the venue lists (BTC buy, ETH sell)."""
        orders: list[FakeOrder] = []
        ids = itertools.count(1)
        kinds: tuple[Kind, ...] = ("spot", "swap")
        for kind in kinds:
            symbols = self.symbols(kind)
            if not symbols:
                continue
            btc = next(s for s in symbols if s.startswith("BTC/"))
            eth = next(s for s in symbols if s.startswith("ETH/"))
            wanted: tuple[tuple[str, Side, str, str], ...] = (
                (btc, "buy", "30000", "0.01" if kind == "spot" else "2"),
                (eth, "sell", "2500", "0.5" if kind == "spot" else "3"),
            )
            for symbol, side, price, amount in wanted:
                n = next(ids)
                orders.append(
                    FakeOrder(
                        symbol=symbol,
                        side=side,
                        price=Decimal(price),
                        amount=Decimal(amount),
                        filled=Decimal(0),
                        order_id=f"{1_000_000 + n}",
                        client_order_id=f"corec-{n:04d}",
                        created_ms=SERVER_TIME_MS - 60_000 * n,
                    )
                )
        return orders

    # -- helpers for venue subclasses ----------------------------------------------------

    def _build_markets(self, extra_symbols: int) -> None:
        bases = list(self.BASES) + [f"C{i:04d}" for i in range(1, extra_symbols + 1)]
        kinds: tuple[tuple[Kind, str | None], ...] = (
            ("spot", self.SPOT_QUOTE),
            ("swap", self.SWAP_SETTLE),
        )
        for kind, quote in kinds:
            if quote is None:
                continue
            for i, base in enumerate(bases):
                symbol = f"{base}/{quote}" + (f":{quote}" if kind == "swap" else "")
                self.markets[symbol] = FakeMarket(symbol, base, quote, kind)
                self.tickers[symbol] = _default_ticker(base, kind, i)

    def _market_by_id(self, market_id: str, kind: str | None = None) -> FakeMarket | None:
        for market in self.markets.values():
            if (kind is None or market.kind == kind) and self.market_id(market) == market_id:
                return market
        return None

    def _items(self, kind: str) -> Iterator[tuple[FakeMarket, FakeTicker]]:
        for symbol, market in self.markets.items():
            if market.kind == kind and symbol in self.tickers:
                yield market, self.tickers[symbol]

    def _orders(self, kind: str, market_id: str | None = None) -> list[FakeOrder]:
        out = []
        for order in self.open_orders:
            market = self.markets.get(order.symbol)
            if market is None or market.kind != kind:
                continue
            if market_id and self.market_id(market) != market_id:
                continue
            out.append(order)
        return out

    def _has_key(self, headers: Mapping[str, str]) -> bool:
        return bool(self.AUTH_HEADER) and any(
            k.lower() == self.AUTH_HEADER.lower() and v for k, v in headers.items()
        )

    def _private(self, handler: Handler) -> Handler:
        async def checked(request: web.Request) -> web.StreamResponse:
            if not self._has_key(request.headers):
                return self.auth_error()
            return await handler(request)

        return checked

    # -- plumbing ------------------------------------------------------------------------

    def _take_fault(self, path: str) -> Fault | None:
        if self.down:
            return self.down_fault
        for i, (fault, only_path) in enumerate(self._faults):
            if only_path is None or only_path == path:
                del self._faults[i]
                return fault
        return None

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.text() if request.can_read_body else ""
        record = RecordedRequest(
            request.method, request.path, dict(request.query), dict(request.headers), body
        )
        self.requests.append(record)
        fault = self._take_fault(request.path)
        if fault == "rate_limit_429":
            return web.json_response(
                self.rate_limit_body(), status=429, headers={"Retry-After": str(RETRY_AFTER_S)}
            )
        if fault == "ban_418":
            return web.json_response(
                self.rate_limit_body(), status=418, headers={"Retry-After": str(BAN_RETRY_AFTER_S)}
            )
        if fault == "server_error_500":
            html = "<html><body><h1>500 Internal Server Error</h1></body></html>"
            return web.Response(status=500, text=html, content_type="text/html")
        if fault == "service_unavailable_503":
            html = "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>"
            return web.Response(status=503, text=html, content_type="text/html")
        if fault == "timeout":
            try:
                await asyncio.wait_for(self._released.wait(), self.TIMEOUT_FAULT_S)
            except TimeoutError:
                pass
            return web.json_response({})
        if fault == "empty_body":
            return web.Response(status=200, body=b"", content_type="application/json")
        try:
            response = await handler(request)
        except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
            self.unhandled.append(record)
            found = self.not_found_body()
            if isinstance(found, str):
                return web.Response(status=404, text=found)
            return web.json_response(found, status=404)
        if fault == "malformed_json" and isinstance(response, web.Response):
            full = response.text or ""
            return web.Response(
                status=200, text=full[: max(1, len(full) // 2)], content_type="application/json"
            )
        return response


def _default_ticker(base: str, kind: str, index: int) -> FakeTicker:
    if base in _DEFAULT_PRICES:
        bid, ask, last, volume, quote_volume = (Decimal(x) for x in _DEFAULT_PRICES[base])
        if kind == "swap":
            shift = _SWAP_SHIFT[base]
            bid, ask, last = bid + shift, ask + shift, last + shift
    else:
        n = int(base[1:])
        bid = Decimal(100 + n) / 100
        ask = bid + Decimal("0.0001")
        last = bid
        volume = Decimal(1000 + n)
        quote_volume = volume * bid
    return FakeTicker(bid, ask, last, volume, quote_volume, SERVER_TIME_MS + 1234 + 1111 * index)


# -- Binance spot and USDⓈ-M ------------------------------------------------------------


class BinanceVenue(FakeVenue):
    """``binance`` and ``binanceusdm``: Binance spot (``/api/v3``) and USDⓈ-M (``/fapi/v1``).

    Shapes: developers.binance.com spot "General endpoints / Market data / Trading
    endpoints" and derivatives "usds-margined-futures" (whose 24 h ticker has no bid/ask:
    CCXT's ``binanceusdm.fetch_tickers`` returns ``bid``/``ask`` ``None``).
    """

    AUTH_HEADER = "X-MBX-APIKEY"
    TICKER_PATHS = frozenset(
        {
            "/api/v3/ticker/24hr",
            "/fapi/v1/ticker/24hr",
            "/api/v3/ticker/bookTicker",
            "/fapi/v1/ticker/bookTicker",
        }
    )

    def market_id(self, market: FakeMarket) -> str:
        return market.base + market.quote

    def rate_limit_body(self) -> dict[str, Any]:
        return {
            "code": -1003,
            "msg": "Too much request weight used; current limit is 6000 request weight per "
            "1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.",
        }

    def auth_error(self) -> web.Response:
        return web.json_response({"code": -2014, "msg": "API-key format invalid."}, status=401)

    def _invalid_symbol(self) -> web.Response:
        return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/api/v3/exchangeInfo", self._spot_info)
        router.add_get("/fapi/v1/exchangeInfo", self._usdm_info)
        router.add_get("/dapi/v1/exchangeInfo", self._coinm_info)
        router.add_get("/api/v3/ticker/24hr", self._spot_24hr)
        router.add_get("/fapi/v1/ticker/24hr", self._usdm_24hr)
        router.add_get("/api/v3/ticker/bookTicker", self._book_ticker("spot"))
        router.add_get("/fapi/v1/ticker/bookTicker", self._book_ticker("swap"))
        router.add_get("/api/v3/time", self._time)
        router.add_get("/fapi/v1/time", self._time)
        router.add_get("/api/v3/openOrders", self._private(self._open_orders("spot")))
        router.add_get("/fapi/v1/openOrders", self._private(self._open_orders("swap")))
        router.add_get("/sapi/v1/capital/config/getall", self._private(self._coins))
        router.add_get("/sapi/v1/margin/allPairs", self._private(self._margin_pairs))
        router.add_get("/sapi/v1/margin/isolated/allPairs", self._private(self._margin_pairs))

    async def _time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": SERVER_TIME_MS})

    def _info(self, symbols: list[dict[str, Any]], **extra: Any) -> web.Response:
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": SERVER_TIME_MS,
                **extra,
                "rateLimits": [
                    {
                        "rateLimitType": "REQUEST_WEIGHT",
                        "interval": "MINUTE",
                        "intervalNum": 1,
                        "limit": 6000,
                    },
                    {
                        "rateLimitType": "ORDERS",
                        "interval": "SECOND",
                        "intervalNum": 10,
                        "limit": 100,
                    },
                ],
                "exchangeFilters": [],
                "symbols": symbols,
            }
        )

    async def _spot_info(self, request: web.Request) -> web.Response:
        symbols = [
            {
                "symbol": self.market_id(m),
                "status": "TRADING",
                "baseAsset": m.base,
                "baseAssetPrecision": 8,
                "quoteAsset": m.quote,
                "quotePrecision": 8,
                "quoteAssetPrecision": 8,
                "baseCommissionPrecision": 8,
                "quoteCommissionPrecision": 8,
                "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT"],
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
                        "minPrice": "0.01000000",
                        "maxPrice": "1000000.00000000",
                        "tickSize": "0.01000000",
                    },
                    {
                        "filterType": "LOT_SIZE",
                        "minQty": "0.00001000",
                        "maxQty": "9000.00000000",
                        "stepSize": "0.00001000",
                    },
                    {
                        "filterType": "NOTIONAL",
                        "minNotional": "5.00000000",
                        "applyMinToMarket": True,
                        "maxNotional": "9000000.00000000",
                        "applyMaxToMarket": False,
                        "avgPriceMins": 5,
                    },
                ],
                "permissions": [],
                "permissionSets": [["SPOT", "MARGIN"]],
                "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER"],
            }
            for m in self.markets.values()
            if m.kind == "spot"
        ]
        return self._info(symbols)

    async def _usdm_info(self, request: web.Request) -> web.Response:
        symbols = [
            {
                "symbol": self.market_id(m),
                "pair": self.market_id(m),
                "contractType": "PERPETUAL",
                "deliveryDate": 4133404800000,
                "onboardDate": 1569398400000,
                "status": "TRADING",
                "maintMarginPercent": "2.5000",
                "requiredMarginPercent": "5.0000",
                "baseAsset": m.base,
                "quoteAsset": m.quote,
                "marginAsset": m.quote,
                "pricePrecision": 2,
                "quantityPrecision": 3,
                "baseAssetPrecision": 8,
                "quotePrecision": 8,
                "underlyingType": "COIN",
                "underlyingSubType": [],
                "triggerProtect": "0.0500",
                "liquidationFee": "0.012500",
                "marketTakeBound": "0.05",
                "maxMoveOrderLimit": 10000,
                "filters": [
                    {
                        "filterType": "PRICE_FILTER",
                        "maxPrice": "4529764",
                        "minPrice": "0.10",
                        "tickSize": "0.10",
                    },
                    {
                        "filterType": "LOT_SIZE",
                        "maxQty": "1000",
                        "minQty": "0.001",
                        "stepSize": "0.001",
                    },
                    {"filterType": "MIN_NOTIONAL", "notional": "100"},
                ],
                "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET"],
                "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
                "permissionSets": ["GRID", "COPY"],
            }
            for m in self.markets.values()
            if m.kind == "swap"
        ]
        assets = [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}]
        return self._info(symbols, futuresType="U_MARGINED", assets=assets)

    async def _coinm_info(self, request: web.Request) -> web.Response:
        return self._info([])

    def _ticker_24hr(self, market: FakeMarket, t: FakeTicker) -> dict[str, Any]:
        last = t.last or t.bid or Decimal(1)
        open_price = (last * Decimal("0.99")).quantize(Decimal("0.01"))
        out: dict[str, Any] = {
            "symbol": self.market_id(market),
            "priceChange": _s(last - open_price, 8),
            "priceChangePercent": "1.010",
            "weightedAvgPrice": _s(t.quote_volume / t.base_volume, 8),
            "lastPrice": _s(t.last, 8),
            "lastQty": "0.00214000",
            "openPrice": _s(open_price, 8),
            "highPrice": _s(last * Decimal("1.01"), 8),
            "lowPrice": _s(open_price * Decimal("0.99"), 8),
            "volume": _s(t.base_volume, 8),
            "quoteVolume": _s(t.quote_volume, 8),
            "openTime": t.timestamp_ms - 86_400_000,
            "closeTime": t.timestamp_ms,
            "firstId": 3272486112,
            "lastId": 3273550394,
            "count": 1064283,
        }
        if market.kind == "spot":  # USDⓈ-M's 24 h ticker carries no book
            out["prevClosePrice"] = _s(open_price, 8)
            out["bidPrice"] = _s(t.bid, 8)
            out["bidQty"] = "3.81927000"
            out["askPrice"] = _s(t.ask, 8)
            out["askQty"] = "5.02112000"
            out = {k: out[k] for k in _BINANCE_SPOT_24HR_ORDER}
        else:
            out["lastPrice"] = _s(t.last)
        return out

    async def _spot_24hr(self, request: web.Request) -> web.Response:
        return self._24hr(request, "spot")

    async def _usdm_24hr(self, request: web.Request) -> web.Response:
        if "symbols" in request.query:  # not a USDⓈ-M parameter: answers everything
            return self._24hr(request, "swap", ignore_symbols=True)
        return self._24hr(request, "swap")

    def _24hr(self, request: web.Request, kind: str, ignore_symbols: bool = False) -> web.Response:
        rows = {self.market_id(m): self._ticker_24hr(m, t) for m, t in self._items(kind)}
        if "symbol" in request.query:
            one = rows.get(request.query["symbol"])
            return self._invalid_symbol() if one is None else web.json_response(one)
        if "symbols" in request.query and not ignore_symbols:
            wanted = json.loads(request.query["symbols"])
            if any(w not in rows for w in wanted):
                return self._invalid_symbol()
            return web.json_response([rows[w] for w in wanted])
        return web.json_response(list(rows.values()))

    def _book_ticker(self, kind: str) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            rows = {
                self.market_id(m): {
                    "symbol": self.market_id(m),
                    "bidPrice": _s(t.bid, 8),
                    "bidQty": "3.81927000",
                    "askPrice": _s(t.ask, 8),
                    "askQty": "5.02112000",
                    **({"time": t.timestamp_ms} if kind == "swap" else {}),
                }
                for m, t in self._items(kind)
            }
            if "symbol" in request.query:
                one = rows.get(request.query["symbol"])
                return self._invalid_symbol() if one is None else web.json_response(one)
            return web.json_response(list(rows.values()))

        return handle

    def _open_orders(self, kind: str) -> Handler:
        async def handle(request: web.Request) -> web.Response:
            market_id = request.query.get("symbol")
            if market_id and self._market_by_id(market_id, kind) is None:
                return self._invalid_symbol()
            rows = []
            for o in self._orders(kind, market_id):
                market = self.markets[o.symbol]
                row: dict[str, Any] = {
                    "symbol": self.market_id(market),
                    "orderId": int(o.order_id) if o.order_id.isdigit() else o.order_id,
                    "clientOrderId": o.client_order_id,
                    "price": _s(o.price, 8),
                    "origQty": _s(o.amount, 8),
                    "executedQty": _s(o.filled, 8),
                    "status": "NEW" if not o.filled else "PARTIALLY_FILLED",
                    "timeInForce": "GTC",
                    "type": o.type.upper(),
                    "side": o.side.upper(),
                    "stopPrice": "0.00000000",
                    "time": o.created_ms,
                    "updateTime": o.created_ms,
                }
                if kind == "spot":
                    row |= {
                        "orderListId": -1,
                        "cummulativeQuoteQty": _s(o.filled * o.price, 8),
                        "icebergQty": "0.00000000",
                        "isWorking": True,
                        "workingTime": o.created_ms,
                        "origQuoteOrderQty": "0.00000000",
                        "selfTradePreventionMode": "EXPIRE_MAKER",
                    }
                else:
                    row |= {
                        "avgPrice": "0.00",
                        "cumQuote": _s(o.filled * o.price),
                        "origType": "LIMIT",
                        "reduceOnly": False,
                        "positionSide": "BOTH",
                        "closePosition": False,
                        "workingType": "CONTRACT_PRICE",
                        "priceProtect": False,
                        "priceMatch": "NONE",
                        "selfTradePreventionMode": "NONE",
                        "goodTillDate": 0,
                    }
                rows.append(row)
            return web.json_response(rows)

        return handle

    async def _coins(self, request: web.Request) -> web.Response:
        coins = sorted({m.base for m in self.markets.values()} | {"USDT"})
        return web.json_response(
            [
                {
                    "coin": coin,
                    "depositAllEnable": True,
                    "withdrawAllEnable": True,
                    "name": coin,
                    "free": "0",
                    "locked": "0",
                    "freeze": "0",
                    "withdrawing": "0",
                    "ipoing": "0",
                    "ipoable": "0",
                    "storage": "0",
                    "isLegalMoney": False,
                    "trading": True,
                    "networkList": [
                        {
                            "network": coin,
                            "coin": coin,
                            "withdrawIntegerMultiple": "0.00000001",
                            "isDefault": True,
                            "depositEnable": True,
                            "withdrawEnable": True,
                            "depositDesc": "",
                            "withdrawDesc": "",
                            "specialTips": "",
                            "name": coin,
                            "resetAddressStatus": False,
                            "addressRegex": "",
                            "memoRegex": "",
                            "withdrawFee": "0.0002",
                            "withdrawMin": "0.001",
                            "withdrawMax": "7500",
                            "minConfirm": 1,
                            "unLockConfirm": 2,
                            "sameAddress": False,
                            "estimatedArrivalTime": 60,
                            "busy": False,
                            "contractAddressUrl": "",
                            "contractAddress": "",
                        }
                    ],
                }
                for coin in coins
            ]
        )

    async def _margin_pairs(self, request: web.Request) -> web.Response:
        return web.json_response(
            [
                {
                    "id": 351637150141315861 + i,
                    "symbol": self.market_id(m),
                    "base": m.base,
                    "quote": m.quote,
                    "isMarginTrade": True,
                    "isBuyAllowed": True,
                    "isSellAllowed": True,
                }
                for i, m in enumerate(self.markets.values())
                if m.kind == "spot"
            ]
        )


_BINANCE_SPOT_24HR_ORDER = (
    "symbol",
    "priceChange",
    "priceChangePercent",
    "weightedAvgPrice",
    "prevClosePrice",
    "lastPrice",
    "lastQty",
    "bidPrice",
    "bidQty",
    "askPrice",
    "askQty",
    "openPrice",
    "highPrice",
    "lowPrice",
    "volume",
    "quoteVolume",
    "openTime",
    "closeTime",
    "firstId",
    "lastId",
    "count",
)


# -- KuCoin spot and futures ------------------------------------------------------------


class KucoinVenue(FakeVenue):
    """``kucoin`` and ``kucoinfutures`` (one CCXT implementation; both load the same APIs).

    Shapes: kucoin.com/docs-new (spot "Get All Symbols", "Get All Tickers", "Get 24hr
    Stats", "Get Open Orders"; futures "Get All Symbols" = ``/api/v1/contracts/active``,
    "Get All Tickers", "Get Ticker", "Get Order List"). Envelope ``{"code": "200000",
    "data": ...}``. KuCoin futures calls BTC ``XBT`` (``XBTUSDTM``).

    Note: CCXT's default contract ``fetch_tickers`` reads ``/api/v1/contracts/active``, which
    has a last price but no bid/ask; ``options={"fetchTickers": {"method":
    "futuresPublicGetAllTickers"}}`` reads ``/api/v1/allTickers`` (bid/ask/last).
    """

    AUTH_HEADER = "KC-API-KEY"
    TICKER_PATHS = frozenset(
        {
            "/api/v1/market/allTickers",
            "/api/v1/market/stats",
            "/api/v1/allTickers",
            "/api/v1/ticker",
            "/api/v1/contracts/active",
        }
    )

    def __init__(self, venue_id: str, *, extra_symbols: int = 0) -> None:
        super().__init__(venue_id, extra_symbols=extra_symbols)
        self.hf_account = False  # /api/v1/hf/accounts/opened

    def base_id(self, base: str) -> str:
        return "XBT" if base == "BTC" else base

    def market_id(self, market: FakeMarket) -> str:
        if market.kind == "spot":
            return f"{market.base}-{market.quote}"
        return f"{self.base_id(market.base)}{market.quote}M"

    def rate_limit_body(self) -> dict[str, Any]:
        return {"code": "429000", "msg": "Too many requests. System-level rate limit exceeded."}

    def not_found_body(self) -> dict[str, Any]:
        return {"code": "404000", "msg": "Not Found"}

    def auth_error(self) -> web.Response:
        return web.json_response({"code": "400003", "msg": "KC-API-KEY not exists"}, status=401)

    @staticmethod
    def _ok(data: Any) -> web.Response:
        return web.json_response({"code": "200000", "data": data})

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/api/v1/timestamp", self._timestamp)
        router.add_get("/api/v3/currencies", self._currencies)
        router.add_get("/api/v2/symbols", self._symbols)
        router.add_get("/api/v1/market/allTickers", self._all_tickers)
        router.add_get("/api/v1/market/stats", self._stats)
        router.add_get("/api/v1/contracts/active", self._contracts)
        router.add_get("/api/v1/allTickers", self._futures_tickers)
        router.add_get("/api/v1/ticker", self._futures_ticker)
        router.add_get("/api/ua/v1/account/mode", self._private(self._account_mode))
        router.add_get("/api/v3/margin/symbols", self._private(self._margin_symbols))
        router.add_get("/api/v1/isolated/symbols", self._private(self._isolated_symbols))
        router.add_get("/api/v1/hf/accounts/opened", self._private(self._hf_opened))
        router.add_get("/api/v1/orders", self._private(self._orders_list))
        router.add_get("/api/v1/hf/orders/active", self._private(self._hf_orders))

    async def _timestamp(self, request: web.Request) -> web.Response:
        return self._ok(SERVER_TIME_MS)

    async def _currencies(self, request: web.Request) -> web.Response:
        coins = sorted({m.base for m in self.markets.values()} | {"USDT"})
        return self._ok(
            [
                {
                    "currency": coin,
                    "name": coin,
                    "fullName": coin,
                    "precision": 8,
                    "confirms": None,
                    "contractAddress": None,
                    "isMarginEnabled": True,
                    "isDebitEnabled": True,
                    "chains": [
                        {
                            "chainName": coin,
                            "withdrawalMinSize": "0.001",
                            "depositMinSize": "0.0002",
                            "withdrawFeeRate": "0",
                            "withdrawalMinFee": "0.0005",
                            "isWithdrawEnabled": True,
                            "isDepositEnabled": True,
                            "confirms": 3,
                            "preConfirms": 1,
                            "contractAddress": "",
                            "withdrawPrecision": 8,
                            "maxWithdraw": None,
                            "maxDeposit": None,
                            "needTag": False,
                            "chainId": coin.lower(),
                        }
                    ],
                }
                for coin in coins
            ]
        )

    async def _symbols(self, request: web.Request) -> web.Response:
        return self._ok(
            [
                {
                    "symbol": self.market_id(m),
                    "name": self.market_id(m),
                    "baseCurrency": m.base,
                    "quoteCurrency": m.quote,
                    "feeCurrency": m.quote,
                    "market": "USDS",
                    "baseMinSize": "0.00001",
                    "quoteMinSize": "0.1",
                    "baseMaxSize": "10000000000",
                    "quoteMaxSize": "99999999",
                    "baseIncrement": "0.00000001",
                    "quoteIncrement": "0.000001",
                    "priceIncrement": "0.01",
                    "priceLimitRate": "0.1",
                    "minFunds": "0.1",
                    "isMarginEnabled": True,
                    "enableTrading": True,
                    "feeCategory": 1,
                    "makerFeeCoefficient": "1.00",
                    "takerFeeCoefficient": "1.00",
                    "st": False,
                    "callauctionIsEnabled": False,
                    "callauctionPriceFloor": None,
                    "callauctionPriceCeiling": None,
                    "callauctionFirstStageStartTime": None,
                    "callauctionSecondStageStartTime": None,
                    "callauctionThirdStageStartTime": None,
                    "tradingStartTime": None,
                }
                for m in self.markets.values()
                if m.kind == "spot"
            ]
        )

    def _spot_row(self, m: FakeMarket, t: FakeTicker) -> dict[str, Any]:
        last = t.last or t.bid or Decimal(1)
        return {
            "symbol": self.market_id(m),
            "symbolName": self.market_id(m),
            "buy": _s(t.bid),
            "bestBidSize": "0.7138",
            "sell": _s(t.ask),
            "bestAskSize": "1.0217",
            "changeRate": "0.0101",
            "changePrice": _s((last * Decimal("0.01")).quantize(Decimal("0.01"))),
            "high": _s(last * Decimal("1.01")),
            "low": _s(last * Decimal("0.98")),
            "vol": _s(t.base_volume),
            "volValue": _s(t.quote_volume),
            "last": _s(t.last),
            "averagePrice": _s(last),
            "takerFeeRate": "0.001",
            "makerFeeRate": "0.001",
            "takerCoefficient": "1",
            "makerCoefficient": "1",
        }

    async def _all_tickers(self, request: web.Request) -> web.Response:
        rows = [self._spot_row(m, t) for m, t in self._items("spot")]
        time_ms = max((t.timestamp_ms for _, t in self._items("spot")), default=SERVER_TIME_MS)
        return self._ok({"time": time_ms, "ticker": rows})

    async def _stats(self, request: web.Request) -> web.Response:
        market = self._market_by_id(request.query.get("symbol", ""), "spot")
        if market is None:
            return web.json_response({"code": "900001", "msg": "symbol not exists"}, status=400)
        ticker = self.tickers[market.symbol]
        row = self._spot_row(market, ticker)
        del row["symbolName"]
        return self._ok({"time": ticker.timestamp_ms, **row})

    async def _contracts(self, request: web.Request) -> web.Response:
        rows = []
        for m, t in self._items("swap"):
            last = t.last or t.bid or Decimal(1)
            rows.append(
                {
                    "symbol": self.market_id(m),
                    "rootSymbol": m.quote,
                    "type": "FFWCSX",
                    "firstOpenDate": 1585555200000,
                    "expireDate": None,
                    "settleDate": None,
                    "baseCurrency": self.base_id(m.base),
                    "quoteCurrency": m.quote,
                    "settleCurrency": m.quote,
                    "maxOrderQty": 1000000,
                    "maxPrice": 1000000.0,
                    "lotSize": 1,
                    "tickSize": 0.1,
                    "indexPriceTickSize": 0.01,
                    "multiplier": 0.001,
                    "initialMargin": 0.008,
                    "maintainMargin": 0.004,
                    "maxRiskLimit": 100000,
                    "minRiskLimit": 100000,
                    "riskStep": 50000,
                    "makerFeeRate": 0.0002,
                    "takerFeeRate": 0.0006,
                    "takerFixFee": 0.0,
                    "makerFixFee": 0.0,
                    "settlementFee": None,
                    "isDeleverage": True,
                    "isQuanto": True,
                    "isInverse": False,
                    "markMethod": "FairPrice",
                    "fairMethod": "FundingRate",
                    "status": "Open",
                    "fundingFeeRate": 0.000297,
                    "predictedFundingFeeRate": 0.000327,
                    "fundingRateGranularity": 28800000,
                    "openInterest": "8033200",
                    "turnoverOf24h": _f(t.quote_volume),
                    "volumeOf24h": _f(t.base_volume),
                    "markPrice": _f(last),
                    "indexPrice": _f(last),
                    "lastTradePrice": _f(t.last),
                    "nextFundingRateTime": 20022985,
                    "maxLeverage": 125,
                    "lowPrice": _f(last * Decimal("0.98")),
                    "highPrice": _f(last * Decimal("1.01")),
                    "priceChgPct": 0.0101,
                    "priceChg": _f((last * Decimal("0.01")).quantize(Decimal("0.1"))),
                }
            )
        return self._ok(rows)

    def _futures_row(self, m: FakeMarket, t: FakeTicker) -> dict[str, Any]:
        return {
            "sequence": 1700000000000,
            "symbol": self.market_id(m),
            "side": "sell",
            "size": 5,
            "tradeId": "1700000000001",
            "price": _s(t.last),
            "bestBidPrice": _s(t.bid),
            "bestBidSize": 120,
            "bestAskPrice": _s(t.ask),
            "bestAskSize": 80,
            "ts": t.timestamp_ms * 1_000_000,  # nanoseconds
        }

    async def _futures_tickers(self, request: web.Request) -> web.Response:
        return self._ok([self._futures_row(m, t) for m, t in self._items("swap")])

    async def _futures_ticker(self, request: web.Request) -> web.Response:
        market = self._market_by_id(request.query.get("symbol", ""), "swap")
        if market is None:
            return web.json_response(
                {"code": "100001", "msg": "Contract parameter invalid."}, status=400
            )
        return self._ok(self._futures_row(market, self.tickers[market.symbol]))

    async def _account_mode(self, request: web.Request) -> web.Response:
        return self._ok({"selfAccountMode": "CLASSIC", "subAccountModes": {}})

    async def _margin_symbols(self, request: web.Request) -> web.Response:
        items = [
            {
                "symbol": self.market_id(m),
                "name": self.market_id(m),
                "enableTrading": True,
                "market": "USDS",
                "baseCurrency": m.base,
                "quoteCurrency": m.quote,
                "baseIncrement": "0.00000001",
                "baseMinSize": "0.00001",
                "quoteIncrement": "0.000001",
                "quoteMinSize": "0.1",
                "baseMaxSize": "10000000000",
                "quoteMaxSize": "99999999",
                "priceIncrement": "0.01",
                "feeCurrency": m.quote,
                "priceLimitRate": "0.1",
                "minFunds": "0.1",
            }
            for m in self.markets.values()
            if m.kind == "spot"
        ]
        return self._ok({"timestamp": SERVER_TIME_MS, "items": items})

    async def _isolated_symbols(self, request: web.Request) -> web.Response:
        return self._ok([])

    async def _hf_opened(self, request: web.Request) -> web.Response:
        return self._ok(self.hf_account)

    def _spot_order(self, o: FakeOrder, hf: bool) -> dict[str, Any]:
        row: dict[str, Any] = {
            "id": o.order_id,
            "clientOid": o.client_order_id,
            "symbol": self.market_id(self.markets[o.symbol]),
            "opType": "DEAL",
            "type": o.type,
            "side": o.side,
            "price": _s(o.price),
            "size": _s(o.amount),
            "funds": "0",
            "dealFunds": _s(o.filled * o.price),
            "dealSize": _s(o.filled),
            "fee": "0",
            "feeCurrency": self.markets[o.symbol].quote,
            "stp": "",
            "stop": "",
            "stopTriggered": False,
            "stopPrice": "0",
            "timeInForce": "GTC",
            "postOnly": False,
            "hidden": False,
            "iceberg": False,
            "visibleSize": "0",
            "cancelAfter": 0,
            "channel": "API",
            "remark": None,
            "tags": None,
            "cancelExist": False,
            "createdAt": o.created_ms,
            "tradeType": "TRADE",
        }
        if hf:
            row |= {"active": True, "inOrderBook": True, "lastUpdatedAt": o.created_ms}
        else:
            row["isActive"] = True
        return row

    def _contract_order(self, o: FakeOrder) -> dict[str, Any]:
        market = self.markets[o.symbol]
        return {
            "id": o.order_id,
            "symbol": self.market_id(market),
            "type": o.type,
            "side": o.side,
            "price": _s(o.price),
            "size": int(o.amount),
            "value": _s(o.amount * o.price * Decimal("0.001")),
            "dealValue": "0",
            "dealSize": int(o.filled),
            "stp": "",
            "stop": "",
            "stopPriceType": "",
            "stopTriggered": False,
            "stopPrice": None,
            "timeInForce": "GTC",
            "postOnly": False,
            "hidden": False,
            "iceberg": False,
            "leverage": "3",
            "forceHold": False,
            "closeOrder": False,
            "visibleSize": 0,
            "clientOid": o.client_order_id,
            "remark": None,
            "tags": "",
            "isActive": True,
            "cancelExist": False,
            "createdAt": o.created_ms,
            "updatedAt": o.created_ms,
            "endAt": None,
            "orderTime": o.created_ms * 1_000_000,
            "settleCurrency": market.quote,
            "marginMode": "ISOLATED",
            "avgDealPrice": "0",
            "status": "open",
            "filledSize": int(o.filled),
            "filledValue": "0",
            "reduceOnly": False,
        }

    async def _orders_list(self, request: web.Request) -> web.Response:
        # One path on two hosts: spot requests carry tradeType, futures ones never do.
        spot = "tradeType" in request.query
        market_id = request.query.get("symbol")
        if spot:
            items = [self._spot_order(o, False) for o in self._orders("spot", market_id)]
        else:
            items = [self._contract_order(o) for o in self._orders("swap", market_id)]
        return self._ok(
            {
                "currentPage": 1,
                "pageSize": 50,
                "totalNum": len(items),
                "totalPage": 1,
                "items": items,
            }
        )

    async def _hf_orders(self, request: web.Request) -> web.Response:
        market_id = request.query.get("symbol")
        return self._ok([self._spot_order(o, True) for o in self._orders("spot", market_id)])


# -- Bybit v5 ---------------------------------------------------------------------------


class BybitVenue(FakeVenue):
    """``bybit`` (spot ``category=spot`` and USDT perpetuals ``category=linear``).

    Shapes: bybit-exchange.github.io/docs/v5 ("Get Instruments Info", "Get Tickers",
    "Get Open & Closed Orders", "Get Coin Info", "Get API Key Information", "Get Account
    Info"). Envelope ``{"retCode": 0, "retMsg": "OK", "result": ..., "time": ms}``. Bybit's
    ticker rows carry no time, so CCXT's bybit tickers have ``timestamp`` ``None``.
    """

    AUTH_HEADER = "X-BAPI-API-KEY"
    TICKER_PATHS = frozenset({"/v5/market/tickers"})

    def market_id(self, market: FakeMarket) -> str:
        return market.base + market.quote

    def rate_limit_body(self) -> dict[str, Any]:
        return {"retCode": 10006, "retMsg": "Too many visits!", "result": {}, "time": 0}

    def auth_error(self) -> web.Response:
        return web.json_response(
            {"retCode": 10003, "retMsg": "API key is invalid.", "result": {}}, status=401
        )

    @staticmethod
    def _ok(result: Any) -> web.Response:
        return web.json_response(
            {
                "retCode": 0,
                "retMsg": "OK",
                "result": result,
                "retExtInfo": {},
                "time": SERVER_TIME_MS,
            }
        )

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/v5/market/time", self._time)
        router.add_get("/v5/market/instruments-info", self._instruments)
        router.add_get("/v5/market/tickers", self._tickers)
        router.add_get("/v5/asset/coin/query-info", self._private(self._coins))
        router.add_get("/v5/order/realtime", self._private(self._open_orders))
        router.add_get("/v5/user/query-api", self._private(self._query_api))
        router.add_get("/v5/account/info", self._private(self._account_info))

    def _kind(self, request: web.Request) -> str | None:
        return {"spot": "spot", "linear": "swap"}.get(request.query.get("category", ""))

    def _bad_category(self) -> web.Response:
        return web.json_response(
            {"retCode": 10001, "retMsg": "Illegal category", "result": {}, "time": 0}
        )

    async def _time(self, request: web.Request) -> web.Response:
        seconds = SERVER_TIME_MS // 1000
        return self._ok({"timeSecond": str(seconds), "timeNano": str(SERVER_TIME_MS * 10**6)})

    async def _instruments(self, request: web.Request) -> web.Response:
        category = request.query.get("category", "")
        if category not in ("spot", "linear", "inverse", "option"):
            return self._bad_category()
        kind = self._kind(request)
        rows: list[dict[str, Any]] = []
        if request.query.get("status") == "PreLaunch":
            kind = None
        for m in self.markets.values():
            if m.kind != kind:
                continue
            if kind == "spot":
                rows.append(
                    {
                        "symbol": self.market_id(m),
                        "baseCoin": m.base,
                        "quoteCoin": m.quote,
                        "innovation": "0",
                        "status": "Trading",
                        "marginTrading": "utaOnly",
                        "stTag": "0",
                        "lotSizeFilter": {
                            "basePrecision": "0.000001",
                            "quotePrecision": "0.00000001",
                            "minOrderQty": "0.000048",
                            "maxOrderQty": "71.73956243",
                            "minOrderAmt": "1",
                            "maxOrderAmt": "2000000",
                        },
                        "priceFilter": {"tickSize": "0.01"},
                        "riskParameters": {
                            "priceLimitRatioX": "0.01",
                            "priceLimitRatioY": "0.02",
                        },
                    }
                )
            else:
                rows.append(
                    {
                        "symbol": self.market_id(m),
                        "contractType": "LinearPerpetual",
                        "status": "Trading",
                        "baseCoin": m.base,
                        "quoteCoin": m.quote,
                        "launchTime": "1585526400000",
                        "deliveryTime": "0",
                        "deliveryFeeRate": "",
                        "priceScale": "2",
                        "leverageFilter": {
                            "minLeverage": "1",
                            "maxLeverage": "100.00",
                            "leverageStep": "0.01",
                        },
                        "priceFilter": {
                            "minPrice": "0.10",
                            "maxPrice": "1999999.80",
                            "tickSize": "0.10",
                        },
                        "lotSizeFilter": {
                            "maxOrderQty": "1190.000",
                            "minOrderQty": "0.001",
                            "qtyStep": "0.001",
                            "postOnlyMaxOrderQty": "1190.000",
                            "maxMktOrderQty": "500.000",
                            "minNotionalValue": "5",
                        },
                        "unifiedMarginTrade": True,
                        "fundingInterval": 480,
                        "settleCoin": m.quote,
                        "copyTrading": "both",
                        "upperFundingRate": "0.00375",
                        "lowerFundingRate": "-0.00375",
                        "isPreListing": False,
                        "preListingInfo": None,
                    }
                )
        result: dict[str, Any] = {"category": category, "list": rows}
        if category != "spot":
            result["nextPageCursor"] = ""
        return self._ok(result)

    def _ticker_row(self, m: FakeMarket, t: FakeTicker) -> dict[str, Any]:
        last = t.last or t.bid or Decimal(1)
        row: dict[str, Any] = {
            "symbol": self.market_id(m),
            "bid1Price": _s(t.bid),
            "bid1Size": "1.254",
            "ask1Price": _s(t.ask),
            "ask1Size": "0.837",
            "lastPrice": _s(t.last),
            "prevPrice24h": _s((last * Decimal("0.99")).quantize(Decimal("0.01"))),
            "price24hPcnt": "0.0101",
            "highPrice24h": _s(last * Decimal("1.01")),
            "lowPrice24h": _s(last * Decimal("0.98")),
            "turnover24h": _s(t.quote_volume),
            "volume24h": _s(t.base_volume),
        }
        if m.kind == "spot":
            row["usdIndexPrice"] = _s(last)
        else:
            row |= {
                "indexPrice": _s(last),
                "markPrice": _s(last),
                "prevPrice1h": _s(last),
                "openInterest": "53612.322",
                "openInterestValue": _s(Decimal("53612.322") * last),
                "fundingRate": "0.0001",
                "nextFundingTime": str(SERVER_TIME_MS + 3_600_000),
                "predictedDeliveryPrice": "",
                "basisRate": "",
                "deliveryFeeRate": "",
                "deliveryTime": "0",
                "basis": "",
                "preOpenPrice": "",
                "preQty": "",
                "curPreListingPhase": "",
            }
        return row

    async def _tickers(self, request: web.Request) -> web.Response:
        kind = self._kind(request)
        category = request.query.get("category", "")
        if category not in ("spot", "linear", "inverse", "option"):
            return self._bad_category()
        rows = [self._ticker_row(m, t) for m, t in self._items(kind or "")]
        if "symbol" in request.query:
            rows = [r for r in rows if r["symbol"] == request.query["symbol"]]
            if not rows:
                return web.json_response(
                    {"retCode": 10001, "retMsg": "Not supported symbols", "result": {}}
                )
        return self._ok({"category": category, "list": rows})

    async def _coins(self, request: web.Request) -> web.Response:
        coins = sorted({m.base for m in self.markets.values()} | {"USDT"})
        rows = [
            {
                "name": coin,
                "coin": coin,
                "remainAmount": "150",
                "chains": [
                    {
                        "chainType": coin,
                        "confirmation": "1",
                        "withdrawFee": "0.0005",
                        "depositMin": "0.0001",
                        "withdrawMin": "0.001",
                        "chain": coin,
                        "chainDeposit": "1",
                        "chainWithdraw": "1",
                        "minAccuracy": "8",
                        "withdrawPercentageFee": "0",
                        "contractAddress": "",
                        "safeConfirmNumber": "1",
                    }
                ],
            }
            for coin in coins
        ]
        return self._ok({"rows": rows})

    async def _open_orders(self, request: web.Request) -> web.Response:
        kind = self._kind(request)
        category = request.query.get("category", "")
        if kind is None:
            return self._ok({"list": [], "nextPageCursor": "", "category": category})
        settle = request.query.get("settleCoin")
        market_id = request.query.get("symbol")
        rows = []
        for o in self._orders(kind, market_id):
            m = self.markets[o.symbol]
            if settle and m.settle != settle:
                continue
            rows.append(
                {
                    "orderId": o.order_id,
                    "orderLinkId": o.client_order_id,
                    "blockTradeId": "",
                    "symbol": self.market_id(m),
                    "price": _s(o.price),
                    "qty": _s(o.amount),
                    "side": o.side.capitalize(),
                    "isLeverage": "0" if kind == "spot" else "",
                    "positionIdx": 0,
                    "orderStatus": "New" if not o.filled else "PartiallyFilled",
                    "cancelType": "UNKNOWN",
                    "rejectReason": "EC_NoError",
                    "avgPrice": "0" if not o.filled else _s(o.price),
                    "leavesQty": _s(o.remaining),
                    "leavesValue": _s(o.remaining * o.price),
                    "cumExecQty": _s(o.filled),
                    "cumExecValue": _s(o.filled * o.price),
                    "cumExecFee": "0",
                    "timeInForce": "GTC",
                    "orderType": "Limit",
                    "stopOrderType": "",
                    "orderIv": "",
                    "triggerPrice": "0.00",
                    "takeProfit": "0.00",
                    "stopLoss": "0.00",
                    "tpTriggerBy": "",
                    "slTriggerBy": "",
                    "triggerDirection": 0,
                    "triggerBy": "",
                    "lastPriceOnCreated": "",
                    "reduceOnly": False,
                    "closeOnTrigger": False,
                    "smpType": "None",
                    "smpGroup": 0,
                    "smpOrderId": "",
                    "tpslMode": "",
                    "tpLimitPrice": "",
                    "slLimitPrice": "",
                    "placeType": "",
                    "createdTime": str(o.created_ms),
                    "updatedTime": str(o.created_ms),
                }
            )
        return self._ok({"list": rows, "nextPageCursor": "", "category": category})

    async def _query_api(self, request: web.Request) -> web.Response:
        return self._ok(
            {
                "id": "13770661",
                "note": "corec-test",
                "apiKey": request.headers.get(self.AUTH_HEADER, ""),
                "readOnly": 0,
                "secret": "",
                "permissions": {"ContractTrade": ["Order", "Position"], "Spot": ["SpotTrade"]},
                "ips": ["*"],
                "type": 1,
                "deadlineDay": 66,
                "expiredAt": "2030-01-01T00:00:00Z",
                "createdAt": "2023-11-14T22:13:20Z",
                "unified": 0,
                "uta": 1,
                "userID": 24617703,
                "inviterID": 0,
                "vipLevel": "No VIP",
                "mktMakerLevel": "0",
                "affiliateID": 0,
                "rsaPublicKey": "",
                "isMaster": True,
                "parentUid": "0",
                "kycLevel": "LEVEL_DEFAULT",
                "kycRegion": "",
            }
        )

    async def _account_info(self, request: web.Request) -> web.Response:
        return self._ok(
            {
                "unifiedMarginStatus": 6,
                "marginMode": "REGULAR_MARGIN",
                "isMasterTrader": False,
                "spotHedgingStatus": "OFF",
                "updatedTime": str(SERVER_TIME_MS),
                "dcpStatus": "OFF",
                "timeWindow": 10,
                "smpGroup": 0,
            }
        )


# -- OKX v5 -----------------------------------------------------------------------------


class OkxVenue(FakeVenue):
    """``okx`` (spot ``instType=SPOT`` and USDT perpetuals ``instType=SWAP``).

    Shapes: okx.com/docs-v5 ("Get instruments", "Get tickers", "Get ticker", "Get order
    List", "Get currencies"). Envelope ``{"code": "0", "msg": "", "data": [...]}``; times are
    ms as strings. A swap's ``sz`` is in contracts (``ctVal`` 0.01 BTC).
    """

    AUTH_HEADER = "OK-ACCESS-KEY"
    TICKER_PATHS = frozenset({"/api/v5/market/tickers", "/api/v5/market/ticker"})
    _INST_TYPES = {"SPOT": "spot", "SWAP": "swap"}

    def market_id(self, market: FakeMarket) -> str:
        suffix = "-SWAP" if market.kind == "swap" else ""
        return f"{market.base}-{market.quote}{suffix}"

    def rate_limit_body(self) -> dict[str, Any]:
        return {"code": "50011", "msg": "Too Many Requests", "data": []}

    def not_found_body(self) -> dict[str, Any]:
        return {"code": "50030", "msg": "Illegal API endpoint", "data": []}

    def auth_error(self) -> web.Response:
        return web.json_response(
            {"code": "50103", "msg": 'Request header "OK-ACCESS-KEY" can not be empty.'},
            status=401,
        )

    @staticmethod
    def _ok(data: list[Any]) -> web.Response:
        return web.json_response({"code": "0", "msg": "", "data": data})

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/api/v5/public/time", self._time)
        router.add_get("/api/v5/public/instruments", self._instruments)
        router.add_get("/api/v5/market/tickers", self._tickers)
        router.add_get("/api/v5/market/ticker", self._ticker)
        router.add_get("/api/v5/asset/currencies", self._private(self._currencies))
        router.add_get("/api/v5/trade/orders-pending", self._private(self._orders_pending))

    async def _time(self, request: web.Request) -> web.Response:
        return self._ok([{"ts": str(SERVER_TIME_MS)}])

    def _inst_type_error(self) -> web.Response:
        return web.json_response(
            {"code": "51000", "msg": "Parameter instType error", "data": []}, status=400
        )

    async def _instruments(self, request: web.Request) -> web.Response:
        inst_type = request.query.get("instType", "")
        if inst_type not in ("SPOT", "SWAP", "FUTURES", "OPTION", "MARGIN"):
            return self._inst_type_error()
        kind = self._INST_TYPES.get(inst_type)
        rows = []
        for m in self.markets.values():
            if m.kind != kind:
                continue
            common = {
                "alias": "",
                "category": "1",
                "expTime": "",
                "instId": self.market_id(m),
                "instType": inst_type,
                "listTime": "1548133413000",
                "maxIcebergSz": "9999999999",
                "maxTriggerSz": "9999999999",
                "maxTwapSz": "9999999999",
                "optType": "",
                "ruleType": "normal",
                "state": "live",
                "stk": "",
                "tickSz": "0.01",
            }
            if m.kind == "spot":
                rows.append(
                    common
                    | {
                        "baseCcy": m.base,
                        "quoteCcy": m.quote,
                        "settleCcy": "",
                        "ctMult": "",
                        "ctType": "",
                        "ctVal": "",
                        "ctValCcy": "",
                        "instFamily": "",
                        "lever": "10",
                        "lotSz": "0.00000001",
                        "minSz": "0.00001",
                        "maxLmtAmt": "1000000",
                        "maxLmtSz": "9999999999",
                        "maxMktAmt": "1000000",
                        "maxMktSz": "",
                        "maxStopSz": "",
                        "uly": "",
                    }
                )
            else:
                family = f"{m.base}-{m.quote}"
                rows.append(
                    common
                    | {
                        "baseCcy": "",
                        "quoteCcy": "",
                        "settleCcy": m.quote,
                        "ctMult": "1",
                        "ctType": "linear",
                        "ctVal": "0.01",
                        "ctValCcy": m.base,
                        "instFamily": family,
                        "lever": "100",
                        "lotSz": "0.01",
                        "minSz": "0.01",
                        "maxLmtAmt": "20000000",
                        "maxLmtSz": "100000000",
                        "maxMktAmt": "",
                        "maxMktSz": "12000",
                        "maxStopSz": "12000",
                        "uly": family,
                    }
                )
        return self._ok(rows)

    def _ticker_row(self, m: FakeMarket, t: FakeTicker) -> dict[str, Any]:
        last = t.last or t.bid or Decimal(1)
        open_24h = _s((last * Decimal("0.99")).quantize(Decimal("0.01")))
        spot = m.kind == "spot"
        return {
            "instType": "SPOT" if spot else "SWAP",
            "instId": self.market_id(m),
            "last": _s(t.last),
            "lastSz": "0.00123",
            "askPx": _s(t.ask),
            "askSz": "0.5",
            "bidPx": _s(t.bid),
            "bidSz": "1.2",
            "open24h": open_24h,
            "high24h": _s(last * Decimal("1.01")),
            "low24h": _s(last * Decimal("0.98")),
            # spot: volCcy24h in quote, vol24h in base; swap: volCcy24h in base, vol24h in
            # contracts (ctVal 0.01)
            "volCcy24h": _s(t.quote_volume if spot else t.base_volume),
            "vol24h": _s(t.base_volume if spot else t.base_volume * 100),
            "ts": str(t.timestamp_ms),
            "sodUtc0": open_24h,
            "sodUtc8": open_24h,
        }

    async def _tickers(self, request: web.Request) -> web.Response:
        inst_type = request.query.get("instType", "")
        if inst_type not in ("SPOT", "SWAP", "FUTURES", "OPTION"):
            return self._inst_type_error()
        kind = self._INST_TYPES.get(inst_type, "")
        return self._ok([self._ticker_row(m, t) for m, t in self._items(kind)])

    async def _ticker(self, request: web.Request) -> web.Response:
        market = self._market_by_id(request.query.get("instId", ""))
        if market is None:
            return web.json_response(
                {"code": "51001", "msg": "Instrument ID does not exist", "data": []}
            )
        return self._ok([self._ticker_row(market, self.tickers[market.symbol])])

    async def _currencies(self, request: web.Request) -> web.Response:
        coins = sorted({m.base for m in self.markets.values()} | {"USDT"})
        return self._ok(
            [
                {
                    "canDep": True,
                    "canInternal": True,
                    "canWd": True,
                    "ccy": coin,
                    "chain": f"{coin}-{coin}",
                    "depQuotaFixed": "",
                    "depQuoteDailyLayer2": "",
                    "logoLink": "",
                    "mainNet": True,
                    "maxFee": "0.0004",
                    "maxFeeForCtAddr": "",
                    "maxWd": "500",
                    "minDep": "0.00005",
                    "minDepArrivalConfirm": "1",
                    "minFee": "0.0002",
                    "minFeeForCtAddr": "",
                    "minWd": "0.0005",
                    "minWdUnlockConfirm": "2",
                    "name": coin,
                    "needTag": False,
                    "usedDepQuotaFixed": "",
                    "usedWdQuota": "0",
                    "wdQuota": "10000000",
                    "wdTickSz": "8",
                }
                for coin in coins
            ]
        )

    async def _orders_pending(self, request: web.Request) -> web.Response:
        inst_type = request.query.get("instType")
        inst_id = request.query.get("instId")
        rows = []
        for o in self.open_orders:
            m = self.markets.get(o.symbol)
            if m is None:
                continue
            if inst_type and self._INST_TYPES.get(inst_type) != m.kind:
                continue
            if inst_id and self.market_id(m) != inst_id:
                continue
            spot = m.kind == "spot"
            rows.append(
                {
                    "accFillSz": _s(o.filled),
                    "algoClOrdId": "",
                    "algoId": "",
                    "attachAlgoClOrdId": "",
                    "attachAlgoOrds": [],
                    "avgPx": "",
                    "cTime": str(o.created_ms),
                    "cancelSource": "",
                    "cancelSourceReason": "",
                    "category": "normal",
                    "ccy": "",
                    "clOrdId": o.client_order_id,
                    "fee": "0",
                    "feeCcy": m.base if spot else m.quote,
                    "fillPx": "",
                    "fillSz": "0",
                    "fillTime": "",
                    "instId": self.market_id(m),
                    "instType": "SPOT" if spot else "SWAP",
                    "isTpLimit": "false",
                    "lever": "" if spot else "3",
                    "linkedAlgoOrd": {"algoId": ""},
                    "ordId": o.order_id,
                    "ordType": o.type,
                    "pnl": "0",
                    "posSide": "net",
                    "px": _s(o.price),
                    "pxType": "",
                    "pxUsd": "",
                    "pxVol": "",
                    "quickMgnType": "",
                    "rebate": "0",
                    "rebateCcy": m.quote,
                    "reduceOnly": "false",
                    "side": o.side,
                    "slOrdPx": "",
                    "slTriggerPx": "",
                    "slTriggerPxType": "",
                    "source": "",
                    "state": "live" if not o.filled else "partially_filled",
                    "stpId": "",
                    "stpMode": "cancel_maker",
                    "sz": _s(o.amount),
                    "tag": "",
                    "tdMode": "cash" if spot else "cross",
                    "tgtCcy": "",
                    "tpOrdPx": "",
                    "tpTriggerPx": "",
                    "tpTriggerPxType": "",
                    "tradeId": "",
                    "uTime": str(o.created_ms),
                }
            )
        return self._ok(rows)


# -- Kraken spot ------------------------------------------------------------------------


class KrakenVenue(FakeVenue):
    """``kraken`` spot (``BTC/USD``, ``ETH/USD``, ``SOL/USD``).

    Shapes: docs.kraken.com/api/docs/rest-api ("Get Asset Info", "Get Tradable Asset
    Pairs", "Get Ticker Information", "Get Open Orders"). Envelope ``{"error": [],
    "result": ...}``; legacy ids ``XXBTZUSD``/``XETHZUSD``. Kraken's ticker has no time,
    so CCXT's kraken tickers have ``timestamp`` ``None``.
    """

    SPOT_QUOTE = "USD"
    SWAP_SETTLE = None
    AUTH_HEADER = "API-Key"
    TICKER_PATHS = frozenset({"/0/public/Ticker"})
    _ASSET_IDS: ClassVar[dict[str, str]] = {"BTC": "XXBT", "ETH": "XETH", "USD": "ZUSD"}

    def base_id(self, base: str) -> str:
        return "XBT" if base == "BTC" else base

    def _asset_id(self, code: str) -> str:
        return self._ASSET_IDS.get(code, code)

    def market_id(self, market: FakeMarket) -> str:
        if market.base in ("BTC", "ETH"):
            return self._asset_id(market.base) + self._asset_id(market.quote)
        return market.base + market.quote

    def _altname(self, market: FakeMarket) -> str:
        return self.base_id(market.base) + market.quote

    def rate_limit_body(self) -> dict[str, Any]:
        return {"error": ["EAPI:Rate limit exceeded"]}

    def not_found_body(self) -> dict[str, Any]:
        return {"error": ["EGeneral:Unknown method"]}

    def auth_error(self) -> web.Response:
        return web.json_response({"error": ["EAPI:Invalid key"]})

    @staticmethod
    def _ok(result: Any) -> web.Response:
        return web.json_response({"error": [], "result": result})

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/0/public/Time", self._time)
        router.add_get("/0/public/Assets", self._assets)
        router.add_get("/0/public/AssetPairs", self._asset_pairs)
        router.add_get("/0/public/Ticker", self._ticker)
        router.add_post("/0/private/OpenOrders", self._private(self._open_orders))

    async def _time(self, request: web.Request) -> web.Response:
        seconds = SERVER_TIME_MS // 1000
        rfc = datetime.fromtimestamp(seconds, UTC).strftime("%a, %d %b %y %H:%M:%S +0000")
        return self._ok({"unixtime": seconds, "rfc1123": rfc})

    async def _assets(self, request: web.Request) -> web.Response:
        codes = sorted({m.base for m in self.markets.values()} | {"USD"})
        result = {}
        for code in codes:
            result[self._asset_id(code)] = {
                "aclass": "currency",
                "altname": self.base_id(code),
                "decimals": 4 if code == "USD" else 10,
                "display_decimals": 2 if code == "USD" else 5,
                "collateral_value": 1.0,
                "status": "enabled",
            }
        return self._ok(result)

    async def _asset_pairs(self, request: web.Request) -> web.Response:
        result = {}
        for m in self.markets.values():
            result[self.market_id(m)] = {
                "altname": self._altname(m),
                "wsname": f"{self.base_id(m.base)}/{m.quote}",
                "aclass_base": "currency",
                "base": self._asset_id(m.base),
                "aclass_quote": "currency",
                "quote": self._asset_id(m.quote),
                "lot": "unit",
                "cost_decimals": 5,
                "pair_decimals": 2,
                "lot_decimals": 8,
                "lot_multiplier": 1,
                "leverage_buy": [2, 3, 4, 5],
                "leverage_sell": [2, 3, 4, 5],
                "fees": [[0, 0.4], [10000, 0.35]],
                "fees_maker": [[0, 0.25], [10000, 0.2]],
                "fee_volume_currency": "ZUSD",
                "margin_call": 80,
                "margin_stop": 40,
                "ordermin": "0.0001",
                "costmin": "0.5",
                "tick_size": "0.01",
                "status": "online",
                "long_position_limit": 250,
                "short_position_limit": 200,
            }
        return self._ok(result)

    def _ticker_row(self, t: FakeTicker) -> dict[str, Any]:
        last = t.last or t.bid or Decimal(1)
        vwap = (t.quote_volume / t.base_volume).quantize(Decimal("0.00001"))
        return {
            "a": [_s(t.ask), "1", "1.000"],
            "b": [_s(t.bid), "3", "3.000"],
            "c": [_s(t.last), "0.00050000"],
            "v": [_s(t.base_volume / 2), _s(t.base_volume)],
            "p": [_s(vwap), _s(vwap)],
            "t": [11234, 22468],
            "l": [_s(last * Decimal("0.98")), _s(last * Decimal("0.98"))],
            "h": [_s(last * Decimal("1.01")), _s(last * Decimal("1.01"))],
            "o": _s((last * Decimal("0.99")).quantize(Decimal("0.01"))),
        }

    async def _ticker(self, request: web.Request) -> web.Response:
        rows = {self.market_id(m): (m, t) for m, t in self._items("spot")}
        by_alt = {self._altname(m): key for key, (m, _) in rows.items()}
        if "pair" in request.query:
            wanted = [p for p in request.query["pair"].split(",") if p]
            result = {}
            for pair in wanted:
                key = pair if pair in rows else by_alt.get(pair)
                if key is None:
                    return web.json_response({"error": ["EQuery:Unknown asset pair"]})
                result[key] = self._ticker_row(rows[key][1])
            return self._ok(result)
        return self._ok({key: self._ticker_row(t) for key, (_, t) in rows.items()})

    async def _open_orders(self, request: web.Request) -> web.Response:
        result = {}
        for o in self._orders("spot"):
            m = self.markets[o.symbol]
            txid = f"O{o.order_id[-5:]:0>5}-BW3P3-BUCMWZ"
            result[txid] = {
                "refid": None,
                "userref": 0,
                "cl_ord_id": o.client_order_id,
                "status": "open",
                "opentm": o.created_ms / 1000,
                "starttm": 0,
                "expiretm": 0,
                "descr": {
                    "pair": self._altname(m),
                    "type": o.side,
                    "ordertype": o.type,
                    "price": _s(o.price),
                    "price2": "0",
                    "leverage": "none",
                    "order": f"{o.side} {_s(o.amount)} {self._altname(m)} @ limit {_s(o.price)}",
                    "close": "",
                },
                "vol": _s(o.amount),
                "vol_exec": _s(o.filled),
                "cost": _s(o.filled * o.price),
                "fee": "0.00000",
                "price": "0.00000",
                "stopprice": "0.00000",
                "limitprice": "0.00000",
                "misc": "",
                "oflags": "fciq",
            }
        return self._ok({"open": result})


# -- Kraken Futures ---------------------------------------------------------------------


class KrakenFuturesVenue(FakeVenue):
    """``krakenfutures`` multi-collateral perpetuals (``PF_XBTUSD`` = ``BTC/USD:USD``).

    Shapes: docs.futures.kraken.com ("Get instruments", "Get tickers", "Get ticker by
    symbol", "Get open orders"). Envelope ``{"result": "success", ..., "serverTime":
    ISO 8601}``; prices are JSON numbers. CCXT 4.5.90's krakenfutures ``parse_order``
    drops ``limitPrice`` on purpose, so open orders come back with ``price`` ``None``.
    """

    SPOT_QUOTE = None
    SWAP_SETTLE = "USD"
    AUTH_HEADER = "APIKey"
    TICKER_PATHS = frozenset({"/derivatives/api/v3/tickers"})

    def base_id(self, base: str) -> str:
        return "XBT" if base == "BTC" else base

    def market_id(self, market: FakeMarket) -> str:
        return f"PF_{self.base_id(market.base)}{market.quote}"

    def rate_limit_body(self) -> dict[str, Any]:
        return {"result": "error", "error": "apiLimitExceeded", "serverTime": _iso(SERVER_TIME_MS)}

    def not_found_body(self) -> str:
        return "<html><body><h1>404 Not Found</h1></body></html>"

    def auth_error(self) -> web.Response:
        return web.json_response(
            {"result": "error", "error": "authenticationError", "serverTime": _iso(SERVER_TIME_MS)}
        )

    @staticmethod
    def _ok(**payload: Any) -> web.Response:
        return web.json_response(
            {"result": "success", **payload, "serverTime": _iso(SERVER_TIME_MS)}
        )

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/derivatives/api/v3/instruments", self._instruments)
        router.add_get("/derivatives/api/v3/tickers", self._tickers)
        router.add_get("/derivatives/api/v3/tickers/{symbol}", self._ticker)
        router.add_get("/derivatives/api/v3/openorders", self._private(self._open_orders))

    async def _instruments(self, request: web.Request) -> web.Response:
        rows = [
            {
                "symbol": self.market_id(m),
                "type": "flexible_futures",
                "tradeable": True,
                "tickSize": 0.5 if m.base == "BTC" else 0.01,
                "contractSize": 1,
                "impactMidSize": 1,
                "maxPositionSize": 1000000,
                "openingDate": "2022-01-01T00:00:00.000Z",
                "marginLevels": [
                    {"numNonContractUnits": 0, "initialMargin": 0.02, "maintenanceMargin": 0.01}
                ],
                "fundingRateCoefficient": 8,
                "maxRelativeFundingRate": 0.001,
                "isin": "GB00J62YGL67",
                "contractValueTradePrecision": 4,
                "postOnly": False,
                "feeScheduleUid": "eef90775-995b-4596-9257-0917f6134766",
                "mtf": False,
                "base": self.base_id(m.base),
                "quote": m.quote,
                "pair": f"{self.base_id(m.base)}:{m.quote}",
                "category": "Layer 1",
                "tags": [],
                "tradfi": False,
            }
            for m in self.markets.values()
        ]
        return self._ok(instruments=rows)

    def _ticker_row(self, m: FakeMarket, t: FakeTicker) -> dict[str, Any]:
        last = t.last or t.bid or Decimal(1)
        return {
            "tag": "perpetual",
            "pair": f"{self.base_id(m.base)}:{m.quote}",
            "symbol": self.market_id(m),
            "markPrice": _f(last),
            "bid": _f(t.bid),
            "bidSize": 0.5,
            "ask": _f(t.ask),
            "askSize": 0.2,
            "vol24h": _f(t.base_volume),
            "volumeQuote": _f(t.quote_volume),
            "openInterest": 1234.5,
            "open24h": _f((last * Decimal("0.99")).quantize(Decimal("0.01"))),
            "high24h": _f(last * Decimal("1.01")),
            "low24h": _f(last * Decimal("0.98")),
            "last": _f(t.last),
            "lastTime": _iso(t.timestamp_ms),
            "lastSize": 0.01,
            "suspended": False,
            "fundingRate": 0.0000051,
            "fundingRatePrediction": 0.0000049,
            "postOnly": False,
        }

    async def _tickers(self, request: web.Request) -> web.Response:
        return self._ok(tickers=[self._ticker_row(m, t) for m, t in self._items("swap")])

    async def _ticker(self, request: web.Request) -> web.Response:
        market = self._market_by_id(request.match_info["symbol"].upper())
        if market is None:
            return web.json_response(
                {"result": "error", "error": "Not Found", "serverTime": _iso(SERVER_TIME_MS)},
                status=404,
            )
        return self._ok(ticker=self._ticker_row(market, self.tickers[market.symbol]))

    async def _open_orders(self, request: web.Request) -> web.Response:
        rows = [
            {
                "order_id": o.order_id,
                "cliOrdId": o.client_order_id,
                "symbol": self.market_id(self.markets[o.symbol]),
                "side": o.side,
                "orderType": "lmt",
                "limitPrice": _f(o.price),
                "unfilledSize": _f(o.remaining),
                "receivedTime": _iso(o.created_ms),
                "status": "untouched" if not o.filled else "partiallyFilled",
                "filledSize": _f(o.filled),
                "reduceOnly": False,
                "lastUpdateTime": _iso(o.created_ms),
            }
            for o in self._orders("swap")
        ]
        return self._ok(openOrders=rows)


# -- registry and helpers ---------------------------------------------------------------

VENUE_CLASSES: dict[str, type[FakeVenue]] = {
    "binance": BinanceVenue,
    "binanceusdm": BinanceVenue,
    "kucoin": KucoinVenue,
    "kucoinfutures": KucoinVenue,
    "bybit": BybitVenue,
    "okx": OkxVenue,
    "kraken": KrakenVenue,
    "krakenfutures": KrakenFuturesVenue,
}


def create_venue(venue_id: str, *, extra_symbols: int = 0) -> FakeVenue:
    """A (not yet started) fake for the CCXT class ``venue_id``."""
    try:
        cls = VENUE_CLASSES[venue_id]
    except KeyError:
        raise ValueError(f"no fake for {venue_id!r}; one of {VENUE_IDS}") from None
    return cls(venue_id, extra_symbols=extra_symbols)


class FakeVenues(Mapping[str, FakeVenue]):
    """Running fakes keyed by CCXT id; start them with :meth:`start`."""

    def __init__(self, venues: Mapping[str, FakeVenue]) -> None:
        self._venues = dict(venues)

    def __getitem__(self, venue_id: str) -> FakeVenue:
        return self._venues[venue_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._venues)

    def __len__(self) -> int:
        return len(self._venues)

    @classmethod
    @asynccontextmanager
    async def start(
        cls, venue_ids: Iterable[str] = VENUE_IDS, *, extra_symbols: int = 0
    ) -> AsyncIterator[FakeVenues]:
        """Start one server per CCXT id; stop them all on exit."""
        venues = {v: create_venue(v, extra_symbols=extra_symbols) for v in venue_ids}
        started: list[FakeVenue] = []
        try:
            for venue in venues.values():
                await venue.start()
                started.append(venue)
            yield cls(venues)
        finally:
            await asyncio.gather(*(v.stop() for v in started))


VenueFactory = Callable[..., Awaitable[FakeVenue]]


@pytest.fixture
async def fake_venue_factory() -> AsyncIterator[VenueFactory]:
    """Start fakes on demand; all are stopped at teardown.

    ``fake = await fake_venue_factory("okx", extra_symbols=10)`` returns a started
    :class:`FakeVenue`. Import it into a test module or a ``conftest.py`` to use it.
    """
    started: list[FakeVenue] = []

    async def start(venue_id: str, *, extra_symbols: int = 0) -> FakeVenue:
        fake = create_venue(venue_id, extra_symbols=extra_symbols)
        await fake.start()
        started.append(fake)
        return fake

    try:
        yield start
    finally:
        await asyncio.gather(*(fake.stop() for fake in started))


def make_exchange(
    venue_id: str,
    fake: FakeVenue | str,
    *,
    credentials: bool = False,
    **config: Any,
) -> ccxt_async.Exchange:
    """A real ``ccxt.async_support`` class with every API URL pointed at ``fake``.

    Args:
        venue_id: the CCXT id.
        fake: a started :class:`FakeVenue` or its base URL.
        credentials: set dummy ``apiKey``/``secret``/``password`` (:data:`API_KEY`…).
        config: more CCXT config (``enableRateLimit`` defaults to True; ``rateLimit``,
            ``timeout``, ``options``…).
    """
    base_url = fake if isinstance(fake, str) else fake.base_url
    settings: dict[str, Any] = {"enableRateLimit": True, **config}
    if credentials:
        settings |= {"apiKey": API_KEY, "secret": API_SECRET, "password": API_PASSWORD}
    exchange: ccxt_async.Exchange = getattr(ccxt_async, venue_id)(copy.deepcopy(settings))
    exchange.urls["api"] = rewrite_api_urls(exchange.urls["api"], base_url)
    # close() sleeps timeout_on_exit (250 ms) to let TLS shut down; loopback is plain HTTP.
    exchange.timeout_on_exit = 0
    return exchange
