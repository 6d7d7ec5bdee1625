"""Public tickers from any CCXT exchange, as :class:`~corec.messages.exchange_data.Ticker`.

:class:`CcxtTickerSource` polls one exchange and one market (``spot`` or ``futures``)
through ``ccxt.async_support`` with CCXT's own rate limiter on, no API keys, and every
CCXT failure mapped by :func:`map_ccxt_error` onto CoreC's two exchange errors:

- :class:`~corec.core.errors.TemporaryExchangeError` — worth retrying: timeouts,
  429/418 (with ``retry_after_s`` from ``Retry-After``), 5xx, network errors,
  maintenance, unreadable (malformed JSON) responses;
- :class:`~corec.core.errors.PermanentExchangeError` — never retried: unknown exchange
  or symbol, bad request, authentication/permission, unsupported call.

Money boundary: CCXT hands out prices and volumes as Python floats. They are turned into
``Decimal`` here, once, with ``Decimal(str(x))`` (the float's shortest repr, so ``0.1``
becomes ``Decimal("0.1")`` and not its binary expansion). Nothing downstream sees a float.

CCXT quirks handled here (ccxt 4.5):

- ``binance``'s ``load_markets`` also calls the USDⓈ-M and COIN-M futures APIs
  (``/fapi/v1/exchangeInfo``, ``/dapi/v1/exchangeInfo``) by default. When an exchange
  lists the market types it loads in ``options["fetchMarkets"]`` (binance, bybit, okx,
  kucoin, gate, bitget…), the list is narrowed to the types of our market, so a spot
  source only downloads spot markets (one request on binance instead of three).
- CCXT's error hierarchy has two branches: ``ExchangeError`` (the request was refused:
  permanent) and ``OperationFailed`` → ``NetworkError`` → ``RateLimitExceeded``,
  ``DDoSProtection``, ``RequestTimeout``, ``ExchangeNotAvailable`` → ``OnMaintenance``
  (temporary), plus ``OperationFailed`` → ``BadResponse``. Binance raises
  ``DDoSProtection`` (not ``RateLimitExceeded``) for both 429 and 418,
  ``ExchangeNotAvailable`` for a bare 5xx, and ``OperationFailed`` for a 500 carrying
  its ``-1000`` "unknown error" body.
- A truncated JSON body does not raise a CCXT error: CCXT silently keeps the text and
  its parser then fails with ``AttributeError``. That case is detected and mapped.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import email.utils
import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar, get_args
from urllib.parse import urlsplit

import aiohttp
import ccxt
import ccxt.async_support as ccxt_async

from corec.core.clock import Clock
from corec.core.errors import ExchangeError, PermanentExchangeError, TemporaryExchangeError
from corec.core.logging import mask_secrets, register_secret
from corec.exchanges.credentials import Credentials
from corec.exchanges.request_stats import RequestStats
from corec.messages.exchange_data import BookLevel, Market, OpenOrder, OrderBook, Ticker

T = TypeVar("T")

_NS_PER_MS = 1_000_000

DEFAULT_IDS = (
    "binance",
    "binanceusdm",
    "kucoin",
    "kucoinfutures",
    "bybit",
    "okx",
    "kraken",
    "krakenfutures",
)
"""The CCXT classes of CoreC's five default exchanges (spot and futures)."""
_MAX_MESSAGE_CHARS = 500

# CCXT market-type names (as used in ``options["fetchMarkets"]``) that belong to each
# CoreC market.
_LOAD_TYPES: dict[str, frozenset[str]] = {
    "spot": frozenset({"spot"}),
    "futures": frozenset({"linear", "inverse", "swap", "future", "futures", "contract"}),
}

# Per-class CCXT options: kucoinfutures' default fetch_tickers reads the contract list,
# which has no bid, ask or timestamp; its allTickers endpoint has the book.
_CLASS_OPTIONS: dict[str, dict[str, Any]] = {
    "kucoinfutures": {"fetchTickers": {"method": "futuresPublicGetAllTickers"}},
}

# CCXT's market ``type`` param for each CoreC market (fetch_open_orders).
_ORDER_TYPES: dict[str, str] = {"spot": "spot", "futures": "swap"}

# Checked first: retryable classes. ``OperationFailed`` and ``BadResponse`` are not
# ``NetworkError`` subclasses, and some older CCXT releases put ``BadResponse`` under
# ``ExchangeError``, so these must be tested before the permanent ``ExchangeError``.
_TEMPORARY_CCXT_ERRORS: tuple[type[BaseException], ...] = tuple(
    cls
    for cls in (
        getattr(ccxt, "OperationFailed", None),  # NetworkError, BadResponse, CancelPending
        ccxt.NetworkError,  # RateLimitExceeded, DDoSProtection, RequestTimeout, InvalidNonce
        ccxt.ExchangeNotAvailable,  # also OnMaintenance; a 5xx or connection refused
        ccxt.RequestTimeout,
        ccxt.RateLimitExceeded,
        ccxt.DDoSProtection,  # Binance's 429 and 418
        ccxt.BadResponse,  # NullResponse too
    )
    if cls is not None
)


def map_ccxt_error(
    exchange_id: str,
    exc: Exception,
    *,
    response_headers: Mapping[str, str] | None = None,
) -> ExchangeError:
    """Translate a CCXT (or transport) exception into CoreC's exchange error.

    Args:
        exchange_id: the CCXT id, stored as ``error.exchange``.
        exc: what CCXT raised.
        response_headers: headers of the HTTP response that failed, if one arrived
            (``exchange.last_response_headers``); a ``Retry-After`` in them (seconds or
            an HTTP date) sets ``retry_after_s`` on a temporary error.

    Returns:
        :class:`TemporaryExchangeError` for ``ccxt.NetworkError`` and its subclasses
        (``RateLimitExceeded``, ``DDoSProtection`` — HTTP 429/418 —, ``RequestTimeout``,
        ``ExchangeNotAvailable`` — 5xx —, ``OnMaintenance``), ``OperationFailed``,
        ``BadResponse``, and Python timeouts/connection errors;
        :class:`PermanentExchangeError` for ``ccxt.ExchangeError`` and its subclasses
        (``AuthenticationError``, ``PermissionDenied``, ``BadRequest``, ``BadSymbol``,
        ``NotSupported``, ``InvalidOrder``…) and anything else unexpected.
        The caller raises it ``from exc``; this function does not raise.
    """
    message = _describe(exc)
    if (
        isinstance(exc, _TEMPORARY_CCXT_ERRORS)
        or (not isinstance(exc, ccxt.BaseError) and isinstance(exc, TimeoutError | ConnectionError))
        # CCXT wraps aiohttp's other client errors (a body cut off mid-transfer:
        # ClientPayloadError) in a bare ExchangeError: a transport failure, not a refusal
        or isinstance(exc.__cause__, aiohttp.ClientError)
    ):
        return TemporaryExchangeError(
            exchange_id, message, retry_after_s=_retry_after_s(response_headers)
        )
    return PermanentExchangeError(exchange_id, message)


def rewrite_api_urls(urls: Any, api_url: str) -> Any:
    """Point every URL in ``urls`` (a str, or dicts/lists of them) at ``api_url``.

    The scheme, host and port of each URL are replaced by ``api_url`` (which may carry
    a path prefix); the path and query are kept:
    ``https://api.binance.com/api/v3`` with ``http://127.0.0.1:8080`` becomes
    ``http://127.0.0.1:8080/api/v3``. Values that are not absolute URLs are kept.
    """
    base = api_url.rstrip("/")
    if isinstance(urls, str):
        parts = urlsplit(urls)
        if not parts.scheme or not parts.netloc:
            return urls
        return base + parts.path + (f"?{parts.query}" if parts.query else "")
    if isinstance(urls, Mapping):
        return {key: rewrite_api_urls(value, api_url) for key, value in urls.items()}
    if isinstance(urls, list):
        return [rewrite_api_urls(value, api_url) for value in urls]
    return urls


class UnknownSymbolError(PermanentExchangeError):
    """A configured symbol is not listed by the exchange (or not in this market).

    Attributes:
        symbol: the symbol asked for.
        suggestions: the closest listed symbols of the same market (up to 5).
    """

    def __init__(self, exchange_id: str, symbol: str, reason: str, suggestions: Sequence[str]):
        self.symbol = symbol
        self.suggestions = tuple(suggestions)
        hint = f"; did you mean {', '.join(self.suggestions)}?" if self.suggestions else ""
        super().__init__(exchange_id, f"{reason}{hint}")


class CcxtTickerSource:
    """Tickers (and open orders, order books) of one exchange and market through CCXT.

    Args:
        exchange_id: any CCXT id (``binance``, ``binanceusdm``, ``kucoin``,
            ``kucoinfutures``, ``bybit``, ``okx``, ``kraken``, ``krakenfutures``…).
        market: ``spot`` or ``futures``; every symbol must be a market of that kind.
        symbols: CCXT unified symbols (``BTC/USDT`` spot, ``BTC/USDT:USDT`` perpetual).
        clock: stamps ``received_ts_ns`` (UTC ns).
        exchange_name: CoreC's name of the exchange, put in every ticker and order
            (``binance`` for both ``binance`` and ``binanceusdm``); default ``exchange_id``.
        api_url: replace the scheme and host of every REST URL (testnets, proxies,
            a loopback server in tests); the paths are kept. See :func:`rewrite_api_urls`.
        sandbox: use the exchange's testnet (``set_sandbox_mode(True)``), applied
            before ``api_url``.
        timeout_s: per-request HTTP timeout in seconds.
        options: CCXT ``options`` merged over the exchange's defaults. Giving
            ``fetchMarkets`` here turns off the narrowing of markets loaded to ``market``.
        credentials: API key/secret/passphrase, needed for :meth:`fetch_open_orders`.
        markets_cache: a JSON file where :meth:`load_markets` keeps the markets, so a
            restart within ``markets_ttl_s`` (wall time) sends no request for them.
        stream: build the ``ccxt.pro`` class (WebSocket ``watch_tickers`` as well as
            REST); see :attr:`can_stream`.
        stats: where every request's latency and error kind is recorded (one
            :class:`RequestStats` may be shared by an exchange's markets).
        skip_unknown: a symbol the exchange does not list is dropped (see
            :attr:`dropped_symbols`) instead of failing every call.

    Raises:
        PermanentExchangeError: unknown exchange id, bad market, no symbols, an
            ``api_url`` that is not an http(s) URL, or no sandbox on this exchange.

    Counters: ``requests_made`` — CCXT REST calls issued (``load_markets``,
    ``fetch_tickers``, ``fetch_ticker``, ``fetch_open_orders``, ``fetch_order_book``),
    failed ones included;
    ``skipped`` — tickers dropped because none of bid/ask/last was a positive price or
    the ticker was inconsistent; ``missing`` — requested symbols the exchange did not
    return; ``markets_from_cache`` — markets came from the disk cache.

    Always ``await close()`` (or use ``async with``): it closes the HTTP session.
    """

    def __init__(
        self,
        exchange_id: str,
        market: Market,
        symbols: Sequence[str],
        *,
        clock: Clock,
        exchange_name: str | None = None,
        api_url: str | None = None,
        sandbox: bool = False,
        timeout_s: float = 10.0,
        options: Mapping[str, Any] | None = None,
        credentials: Credentials | None = None,
        markets_cache: Path | None = None,
        markets_ttl_s: float = 86_400.0,
        stream: bool = False,
        stats: RequestStats | None = None,
        skip_unknown: bool = False,
    ) -> None:
        if exchange_id not in ccxt_async.exchanges:
            close = difflib.get_close_matches(exchange_id, ccxt_async.exchanges, n=5)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise PermanentExchangeError(
                exchange_id,
                f"unknown CCXT exchange id ({hint}the valid ids are ccxt.exchanges: "
                f"{', '.join(DEFAULT_IDS)}, …)",
            )
        if market not in get_args(Market):
            raise PermanentExchangeError(
                exchange_id, f"market must be one of {get_args(Market)}, got {market!r}"
            )
        if isinstance(symbols, str) or not symbols:
            raise PermanentExchangeError(exchange_id, "symbols must be a non-empty list")
        if timeout_s <= 0:
            raise PermanentExchangeError(exchange_id, f"timeout_s must be > 0, got {timeout_s}")
        if api_url is not None:
            parts = urlsplit(api_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise PermanentExchangeError(
                    exchange_id, f"api_url must be an http(s) URL, got {api_url!r}"
                )
        self.exchange_id = exchange_id
        self.exchange_name = exchange_name or exchange_id
        self.market: Market = market
        self.symbols: tuple[str, ...] = tuple(dict.fromkeys(symbols))
        self.requests_made = 0
        self.skipped = 0
        self.missing = 0
        self.markets_from_cache = False
        self.skip_unknown = skip_unknown
        self.dropped_symbols: tuple[str, ...] = ()
        self.stats = stats if stats is not None else RequestStats()
        self._clock = clock
        self._markets_cache = markets_cache
        self._markets_ttl_s = markets_ttl_s
        self._markets_checked = False
        self._closed = False
        user_options = {**_CLASS_OPTIONS.get(exchange_id, {}), **(options or {})}
        user_options.setdefault("warnOnFetchOpenOrdersWithoutSymbol", False)
        if stream and exchange_id.startswith("binance"):
            # binance streams ``miniTicker`` by default, which has no bid or ask
            user_options.setdefault("watchTickers", {"name": "ticker"})
        config: dict[str, Any] = {
            "enableRateLimit": True,
            "timeout": max(1, round(timeout_s * 1000)),
            "options": user_options,
        }
        if credentials is not None:
            config.update(credentials.ccxt_config())
            for secret in credentials.secrets():
                register_secret(secret)
        pro = _ccxt_pro() if stream else None
        self.can_stream = bool(pro is not None and exchange_id in pro.exchanges)
        exchange_class = getattr(pro if self.can_stream else ccxt_async, exchange_id)
        self._exchange: ccxt_async.Exchange = exchange_class(config)
        if self.can_stream and not self._exchange.has.get("watchTickers"):
            self.can_stream = False
        self.has_credentials = credentials is not None
        if "fetchMarkets" not in user_options:
            self._narrow_market_types()
        if sandbox:
            # Several exchanges (kraken, kucoin, coinbase) declare ``urls["test"] = None``;
            # ccxt's set_sandbox_mode then fails with a bare TypeError, so check first.
            if not self._exchange.urls.get("test"):
                raise PermanentExchangeError(exchange_id, "this exchange has no sandbox")
            try:
                self._exchange.set_sandbox_mode(True)
            except ccxt.BaseError as exc:
                raise map_ccxt_error(exchange_id, exc) from exc
        if api_url is not None:
            self._exchange.urls["api"] = rewrite_api_urls(self._exchange.urls["api"], api_url)

    async def __aenter__(self) -> CcxtTickerSource:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def fetch(self) -> list[Ticker]:
        """Poll the exchange once and return the tickers of :attr:`symbols`.

        The first call loads the markets (:meth:`load_markets`) and checks that every
        symbol exists and is a ``market`` market. Each call then makes ONE
        ``fetch_tickers(symbols)`` request when the exchange supports it (binance
        spot: ``GET /api/v3/ticker/24hr?symbols=[...]``), else one
        ``fetch_ticker(symbol)`` per symbol.

        Returns:
            One :class:`Ticker` per requested symbol that came back with at least one
            usable price, in the order of :attr:`symbols`. Prices and volumes are
            ``Decimal`` (``Decimal(str(float))``); a missing, zero, negative or
            non-finite price becomes ``None``; a crossed book (bid > ask) drops both
            bid and ask; a ticker with no bid, ask or last is skipped and counted in
            :attr:`skipped`. ``exchange_ts_ns`` is the exchange's ``timestamp`` (ms →
            ns), or the receive time when it has none; ``received_ts_ns`` is
            ``clock.now_ns()`` when the response arrived.

        Raises:
            TemporaryExchangeError: worth retrying (timeouts, 429/418 with
                ``retry_after_s``, 5xx, network, malformed JSON, a response that is
                not a ticker map or holds no usable ticker).
            PermanentExchangeError: unknown symbol (:class:`UnknownSymbolError`),
                symbol of the wrong market, bad request, unsupported call, a closed
                source.
        """
        self._check_open()
        await self.validate_symbols(skip_unknown=self.skip_unknown)
        exchange = self._exchange
        if exchange.has.get("fetchTickers"):
            raw = await self._call(lambda: exchange.fetch_tickers(list(self.symbols)))
            if (
                isinstance(raw, Mapping)
                and exchange.has.get("fetchBidsAsks")
                and raw
                and all(_price((raw.get(s) or {}).get("bid")) is None for s in self.symbols)
            ):
                # binanceusdm's 24 h tickers carry no book: one more request, for all
                # symbols (GET /fapi/v1/ticker/bookTicker), brings bid and ask
                books = await self._call(lambda: exchange.fetch_bids_asks(list(self.symbols)))
                raw = _with_books(raw, books)
            tickers = self.tickers_from(raw, self._clock.now_ns())
        else:
            tickers = []
            for symbol in self.symbols:
                one = await self._call(lambda s=symbol: self._exchange.fetch_ticker(s))
                self._collect(tickers, symbol, one, self._clock.now_ns())
        if not tickers:
            # a 200 without one usable ticker is a failed poll (for retries and the
            # breaker), not a quiet success; a partial answer is published as it is
            raise TemporaryExchangeError(
                self.exchange_id, f"no usable ticker for {list(self.symbols)} in the answer"
            )
        return tickers

    async def watch(self) -> list[Ticker]:
        """Wait for the next ticker update over the exchange's WebSocket (ccxt.pro).

        ``watch_tickers(symbols)`` connects on first use and reconnects inside CCXT;
        each call returns the tickers that changed since the last one.

        Raises:
            PermanentExchangeError: the source was not built with ``stream=True`` or
                the exchange cannot stream tickers (:attr:`can_stream` is False).
            TemporaryExchangeError / PermanentExchangeError: as :meth:`fetch`.
        """
        self._check_open()
        if not self.can_stream:
            raise PermanentExchangeError(self.exchange_id, "cannot stream tickers")
        await self.validate_symbols(skip_unknown=self.skip_unknown)
        # not timed: a watch waits for the market to move, its duration is no latency
        raw = await self._call(
            lambda: self._exchange.watch_tickers(list(self.symbols)), timed=False
        )
        return self.tickers_from(raw, self._clock.now_ns(), only_present=True)

    def tickers_from(
        self, raw: Any, received_ns: int, *, only_present: bool = False
    ) -> list[Ticker]:
        """Turn CCXT's ``{symbol: ticker}`` map into :class:`Ticker` objects.

        Raises:
            TemporaryExchangeError: ``raw`` is not a map (a malformed answer).
        """
        if not isinstance(raw, Mapping):
            raise TemporaryExchangeError(
                self.exchange_id, f"tickers answer is {type(raw).__name__}, not a map"
            )
        tickers: list[Ticker] = []
        for symbol in self.symbols:
            one = raw.get(symbol)
            if one is None and only_present:
                continue
            self._collect(tickers, symbol, one, received_ns)
        return tickers

    async def fetch_open_orders(self) -> list[OpenOrder]:
        """The account's open orders on this market (CCXT ``fetch_open_orders``).

        One request without a symbol where the exchange allows it (binance spot:
        ``GET /api/v3/openOrders``); else one per configured symbol.

        Returns:
            Every open order, quantities and prices as ``Decimal``; orders whose
            answer lacks an id, side or amount are skipped (counted in :attr:`skipped`).

        Raises:
            PermanentExchangeError: no credentials, or the exchange refused them
                (``AuthenticationError``, ``PermissionDenied``).
            TemporaryExchangeError: as :meth:`fetch`.
        """
        self._check_open()
        if not self.has_credentials:
            raise PermanentExchangeError(self.exchange_id, "open orders need API credentials")
        await self.validate_symbols(skip_unknown=self.skip_unknown)
        # ``type`` keeps a class that serves both markets to this one: bybit would ask
        # its default (linear) orders for a spot source, okx every instrument type
        params = {"type": _ORDER_TYPES[self.market]}
        try:
            raw = await self._call(
                lambda: self._exchange.fetch_open_orders(None, None, None, params)
            )
        except PermanentExchangeError as exc:
            if not isinstance(exc.__cause__, ccxt.ArgumentsRequired):
                raise
            raw = []
            for symbol in self.symbols:
                raw += await self._call(
                    lambda s=symbol: self._exchange.fetch_open_orders(s, None, None, params)
                )
        if not isinstance(raw, list):
            raise TemporaryExchangeError(
                self.exchange_id, f"open orders answer is {type(raw).__name__}, not a list"
            )
        orders = []
        markets: Mapping[str, Any] = self._exchange.markets or {}
        for one in raw:
            order = self._order(one)
            info = markets.get(order.symbol) if order is not None else None
            if order is None or info is None or not self._fits(info):
                self.skipped += 1  # unreadable, or of another market kind
            else:
                orders.append(order)
        return orders

    async def fetch_order_book(self, symbol: str, depth: int = 20) -> OrderBook:
        """``symbol``'s order book, ``depth`` levels per side (CCXT ``fetch_order_book``).

        One request (binance spot: ``GET /api/v3/depth?symbol=BTCUSDT&limit=20``), through
        CCXT's rate limiter like every call of this source; ``symbol`` may be any listed
        symbol of this ``market``, not only the polled ones. Where an exchange accepts
        only some sizes (binance futures: 5, 10, 20, 50, 100, 500, 1000; bybit spot: at
        most 50) the nearest accepted size is asked and the answer trimmed.

        Returns:
            An :class:`OrderBook` with ``source="exchange"``: bids best (highest) first,
            asks best (lowest) first, at most ``depth`` each, ``Decimal`` prices and
            amounts (levels with a price that is not positive, or an amount that is
            missing or negative, are left out); ``exchange_ts_ns`` from the answer's
            ``timestamp``, or the receive time when it has none.

        Raises:
            UnknownSymbolError: ``symbol`` is not listed, or is of another market kind.
            PermanentExchangeError: ``depth`` below 1, a closed source, a refused request.
            TemporaryExchangeError: as :meth:`fetch` (also an answer that is not a book).
        """
        self._check_open()
        if depth < 1:
            raise PermanentExchangeError(self.exchange_id, f"depth must be >= 1, got {depth}")
        markets = await self.load_markets()
        info = markets.get(symbol)
        if info is None or not self._fits(info):
            listed = sorted(s for s, i in markets.items() if self._fits(i))
            reason = (
                f"{symbol!r} is not listed on its {self.market} markets"
                if info is None
                else f"{symbol!r} is a {info.get('type')} market, not {self.market}"
            )
            raise UnknownSymbolError(
                self.exchange_id,
                symbol,
                reason,
                difflib.get_close_matches(symbol, listed, n=5, cutoff=0.5),
            )
        limit = _book_limit(self.exchange_id, self.market, depth)
        raw = await self._call(lambda: self._exchange.fetch_order_book(symbol, limit))
        received = self._clock.now_ns()
        if not isinstance(raw, Mapping):
            raise TemporaryExchangeError(
                self.exchange_id, f"order book answer is {type(raw).__name__}, not a map"
            )
        return OrderBook(
            exchange=self.exchange_name,
            market=self.market,
            symbol=symbol,
            bids=_book_levels(raw.get("bids"), depth, descending=True),
            asks=_book_levels(raw.get("asks"), depth, descending=False),
            exchange_ts_ns=_timestamp_ns(raw.get("timestamp")) or received,
            received_ts_ns=received,
            source="exchange",
        )

    async def load_markets(self) -> Mapping[str, Any]:
        """The exchange's markets of this ``market`` kind, from the disk cache when fresh.

        Calls CCXT ``load_markets`` (binance spot: ``GET /api/v3/exchangeInfo``) only
        when the cache file is missing, unreadable, older than ``markets_ttl_s`` or
        written for other options; then rewrites it (atomically).

        Raises:
            TemporaryExchangeError / PermanentExchangeError: as :meth:`fetch`.
        """
        exchange = self._exchange
        if exchange.markets:
            return exchange.markets
        cached = self._read_markets_cache()
        if cached is not None:
            markets, currencies = cached
            exchange.set_markets(markets, currencies)
            self.markets_from_cache = True
            return exchange.markets
        await self._call(exchange.load_markets)
        self._write_markets_cache()
        return exchange.markets or {}

    async def validate_symbols(self, *, skip_unknown: bool = False) -> tuple[str, ...]:
        """Check that every symbol is listed, and is a ``market`` market.

        Args:
            skip_unknown: drop unknown symbols from :attr:`symbols` instead of raising.

        Returns:
            The symbols dropped (empty unless ``skip_unknown``).

        Raises:
            UnknownSymbolError: a symbol is not listed or is of another market kind,
                naming the closest listed symbols of this market.
            PermanentExchangeError: every symbol was unknown (with ``skip_unknown``).
            TemporaryExchangeError: the markets could not be loaded.
        """
        if self._markets_checked:
            return ()
        markets = await self.load_markets()
        listed = sorted(s for s, info in markets.items() if self._fits(info))
        dropped: list[str] = []
        for symbol in self.symbols:
            info = markets.get(symbol)
            if info is not None and self._fits(info):
                continue
            if info is None:
                reason = f"{symbol!r} is not listed on its {self.market} markets"
            else:
                reason = f"{symbol!r} is a {info.get('type')} market, not {self.market}"
            if not skip_unknown:
                raise UnknownSymbolError(
                    self.exchange_id,
                    symbol,
                    reason,
                    difflib.get_close_matches(symbol, listed, n=5, cutoff=0.5),
                )
            dropped.append(symbol)
        if len(dropped) == len(self.symbols):
            raise PermanentExchangeError(
                self.exchange_id, f"none of the symbols {list(self.symbols)} is listed"
            )
        self.symbols = tuple(s for s in self.symbols if s not in dropped)
        self.dropped_symbols = tuple(dropped)
        self._markets_checked = True
        return tuple(dropped)

    async def close(self) -> None:
        """Close the HTTP (and WebSocket) sessions (idempotent). Never raises."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(Exception):
            await self._exchange.close()

    # -- internals -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise PermanentExchangeError(self.exchange_id, "the source is closed")

    def _fits(self, info: Mapping[str, Any]) -> bool:
        if self.market == "spot":
            return bool(info.get("spot"))
        return bool(info.get("contract")) and not info.get("option")

    def _narrow_market_types(self) -> None:
        """Load only the market types of ``self.market`` where CCXT lists them."""
        wanted = _LOAD_TYPES[self.market]
        current = self._exchange.options.get("fetchMarkets")
        if isinstance(current, Mapping) and isinstance(current.get("types"), list):
            narrowed = [t for t in current["types"] if t in wanted]
            if narrowed:
                self._exchange.options["fetchMarkets"] = {**current, "types": narrowed}
        elif isinstance(current, list):
            narrowed = [t for t in current if t in wanted]
            if narrowed:
                self._exchange.options["fetchMarkets"] = narrowed

    def _cache_signature(self) -> dict[str, Any]:
        exchange = self._exchange
        return {
            "exchange": self.exchange_id,
            "market": self.market,
            "ccxt": ccxt.__version__,
            "fetchMarkets": exchange.options.get("fetchMarkets"),
            "api": exchange.urls.get("api"),
        }

    def _read_markets_cache(self) -> tuple[list[Any], Any] | None:
        path = self._markets_cache
        if path is None or self._markets_ttl_s <= 0:
            return None
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
            saved_at = float(document["saved_at"])
            if document["signature"] != json.loads(json.dumps(self._cache_signature())):
                return None
            if not 0 <= time.time() - saved_at < self._markets_ttl_s:
                return None
            markets = list(document["markets"])
            return markets, document.get("currencies")
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing or damaged: load from the exchange

    def _write_markets_cache(self) -> None:
        path = self._markets_cache
        if path is None or self._markets_ttl_s <= 0:
            return
        exchange = self._exchange
        document = {
            "saved_at": time.time(),
            "signature": self._cache_signature(),
            "markets": list((exchange.markets or {}).values()),
            "currencies": exchange.currencies or None,
        }
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(document, default=str), encoding="utf-8")
            tmp.replace(path)
        except OSError:
            pass  # a cache that cannot be written only costs a reload next start

    async def _call(self, call: Callable[[], Awaitable[T]], *, timed: bool = True) -> T:
        """Run one CCXT call, record its latency (if ``timed``) and outcome; raise only
        CoreC errors."""
        exchange = self._exchange
        # CCXT keeps the previous response's text and headers when a call fails before
        # a response arrives (a timeout): clear them so they describe this call only.
        exchange.last_response_headers = None
        exchange.last_http_response = None
        self.requests_made += 1
        started = time.perf_counter_ns()

        def elapsed() -> int | None:
            return time.perf_counter_ns() - started if timed else None

        try:
            result = await call()
        except ccxt.BaseError as exc:
            self.stats.record(elapsed(), type(exc).__name__)
            raise map_ccxt_error(
                self.exchange_id, exc, response_headers=exchange.last_response_headers
            ) from exc
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            body = exchange.last_http_response
            if (isinstance(body, str) and exchange.parse_json(body) is None) or body == "":
                # Malformed JSON → TEMPORARY. CCXT does not raise for it: it keeps the
                # text and its parser then trips (AttributeError). A cut-off or garbled
                # body with a 2xx status comes from a dropped connection, a proxy or a
                # CDN page, and the next poll normally succeeds; CCXT itself classes
                # BadResponse under OperationFailed (retryable), not ExchangeError.
                # Retries stay bounded by the caller's backoff and circuit breaker.
                self.stats.record(elapsed(), "MalformedResponse")
                bad = ccxt.BadResponse(f"response is not valid JSON: {body[:200]!r}")
                raise map_ccxt_error(self.exchange_id, bad) from exc
            # A well-formed answer CCXT could not understand (an API change or a CCXT
            # bug) will not fix itself by retrying.
            self.stats.record(elapsed(), type(exc).__name__)
            raise map_ccxt_error(self.exchange_id, exc) from exc
        body = exchange.last_http_response
        if timed and isinstance(body, str) and exchange.parse_json(body) is None:
            # Some classes (kucoin, bybit, okx, kraken) turn an empty or cut-off 2xx
            # body into ``{}`` without an error: that is a failed call, not "no data".
            self.stats.record(elapsed(), "MalformedResponse")
            bad = ccxt.BadResponse(f"response is not valid JSON: {body[:200]!r}")
            raise map_ccxt_error(self.exchange_id, bad)
        self.stats.record(elapsed())
        return result

    def _collect(self, into: list[Ticker], symbol: str, raw: Any, received_ns: int) -> None:
        if not isinstance(raw, Mapping):
            self.missing += 1
            return
        bid = _price(raw.get("bid"))
        ask = _price(raw.get("ask"))
        last = _price(raw.get("last"))
        if bid is not None and ask is not None and bid > ask:
            bid = ask = None
        if bid is None and ask is None and last is None:
            self.skipped += 1
            return
        try:
            ticker = Ticker(
                exchange=self.exchange_name,
                market=self.market,
                symbol=symbol,
                bid=bid,
                ask=ask,
                last=last,
                base_volume=_volume(raw.get("baseVolume")),
                quote_volume=_volume(raw.get("quoteVolume")),
                exchange_ts_ns=_timestamp_ns(raw.get("timestamp")) or received_ns,
                received_ts_ns=received_ns,
            )
        except (ValueError, TypeError):
            self.skipped += 1  # inconsistent: never half a ticker
            return
        into.append(ticker)

    def _order(self, raw: Any) -> OpenOrder | None:
        if not isinstance(raw, Mapping):
            return None
        order_id, side, amount = raw.get("id"), raw.get("side"), _volume(raw.get("amount"))
        symbol = raw.get("symbol")
        if not order_id or side not in ("buy", "sell") or amount is None or not symbol:
            return None
        try:
            return OpenOrder(
                exchange=self.exchange_name,
                market=self.market,
                symbol=str(symbol),
                order_id=str(order_id),
                client_order_id=str(raw["clientOrderId"]) if raw.get("clientOrderId") else None,
                side=side,
                type=str(raw.get("type") or "unknown"),
                price=_price(raw.get("price")),
                amount=amount,
                filled=_volume(raw.get("filled")) or Decimal(0),
                remaining=_volume(raw.get("remaining")),
                status=str(raw.get("status") or "open"),
                created_ts_ns=_timestamp_ns(raw.get("timestamp")),
            )
        except (ValueError, TypeError):
            return None


def _with_books(tickers: Mapping[str, Any], books: Any) -> dict[str, Any]:
    """``tickers`` with bid and ask (and their sizes) taken from ``fetch_bids_asks``."""
    merged = dict(tickers)
    if not isinstance(books, Mapping):
        return merged
    for symbol, book in books.items():
        if symbol in merged and isinstance(book, Mapping) and isinstance(merged[symbol], Mapping):
            merged[symbol] = {
                **merged[symbol],
                **{k: book.get(k) for k in ("bid", "ask", "bidVolume", "askVolume")},
            }
    return merged


_BINANCE_FUTURES_DEPTHS = (5, 10, 20, 50, 100, 500, 1000)
_BYBIT_SPOT_MAX_DEPTH = 50


def _book_limit(exchange_id: str, market: str, depth: int) -> int:
    """The ``limit`` to ask ``fetch_order_book`` for ``depth`` levels on this class."""
    if exchange_id in ("binanceusdm", "binancecoinm") or (
        exchange_id == "binance" and market == "futures"
    ):
        return next((n for n in _BINANCE_FUTURES_DEPTHS if n >= depth), 1000)
    if exchange_id == "bybit" and market == "spot":
        return min(depth, _BYBIT_SPOT_MAX_DEPTH)
    return depth


def _book_levels(raw: Any, depth: int, *, descending: bool) -> tuple[BookLevel, ...]:
    """CCXT's ``[[price, amount, …], …]`` as at most ``depth`` :class:`BookLevel`, best
    first; unusable levels (price not positive, amount missing or negative) left out."""
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        return ()
    levels: list[BookLevel] = []
    for entry in raw:
        if not isinstance(entry, Sequence) or isinstance(entry, str) or len(entry) < 2:
            continue
        price, amount = _price(entry[0]), _volume(entry[1])
        if price is not None and amount is not None:
            levels.append(BookLevel(price=price, amount=amount))
    levels.sort(key=lambda level: level.price, reverse=descending)
    return tuple(levels[:depth])


def _ccxt_pro() -> Any:
    """``ccxt.pro`` (WebSockets), or None if this CCXT build lacks it."""
    try:
        import ccxt.pro as pro
    except ImportError:  # pragma: no cover - ccxt ships ccxt.pro since 4.0
        return None
    return pro


def _decimal(value: Any) -> Decimal | None:
    """``Decimal(str(value))`` for an int, float, str or Decimal; None if not finite."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _price(value: Any) -> Decimal | None:
    number = _decimal(value)
    return number if number is not None and number > 0 else None


def _volume(value: Any) -> Decimal | None:
    number = _decimal(value)
    return number if number is not None and number >= 0 else None


def _timestamp_ns(value: Any) -> int | None:
    """Epoch milliseconds → nanoseconds; None when missing or not positive."""
    number = _decimal(value)
    if number is None or number <= 0:
        return None
    return int(number * _NS_PER_MS)


def _describe(exc: BaseException) -> str:
    text = mask_secrets(f"{type(exc).__name__}: {exc}")  # CCXT quotes URLs, some signed
    if len(text) > _MAX_MESSAGE_CHARS:
        text = text[: _MAX_MESSAGE_CHARS - 1] + "…"
    return text


def _retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delay-seconds or HTTP date), else None."""
    if not headers:
        return None
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    date_header = next((v for k, v in headers.items() if k.lower() == "date"), None)
    if date_header is None or when.tzinfo is None:
        return None
    try:
        now = email.utils.parsedate_to_datetime(str(date_header))
    except (TypeError, ValueError):
        return None
    if now.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())
