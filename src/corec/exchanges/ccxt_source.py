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

import email.utils
from collections.abc import Awaitable, Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar, get_args
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support as ccxt_async

from corec.core.clock import Clock
from corec.core.errors import ExchangeError, PermanentExchangeError, TemporaryExchangeError
from corec.messages.exchange_data import Market, Ticker

T = TypeVar("T")

_NS_PER_MS = 1_000_000
_MAX_MESSAGE_CHARS = 500

# CCXT market-type names (as used in ``options["fetchMarkets"]``) that belong to each
# CoreC market.
_LOAD_TYPES: dict[str, frozenset[str]] = {
    "spot": frozenset({"spot"}),
    "futures": frozenset({"linear", "inverse", "swap", "future", "futures", "contract"}),
}

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
    if isinstance(exc, _TEMPORARY_CCXT_ERRORS) or (
        not isinstance(exc, ccxt.BaseError) and isinstance(exc, TimeoutError | ConnectionError)
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


class CcxtTickerSource:
    """Polls public tickers of one exchange and market through ``ccxt.async_support``.

    Args:
        exchange_id: any CCXT id (``binance``, ``binanceusdm``, ``kucoin``,
            ``kucoinfutures``, ``bybit``, ``okx``, ``kraken``, ``krakenfutures``…).
        market: ``spot`` or ``futures``; every symbol must be a market of that kind.
        symbols: CCXT unified symbols (``BTC/USDT`` spot, ``BTC/USDT:USDT`` perpetual).
        clock: stamps ``received_ts_ns`` (UTC ns).
        api_url: replace the scheme and host of every REST URL (testnets, proxies,
            a loopback server in tests); the paths are kept. See :func:`rewrite_api_urls`.
        sandbox: use the exchange's testnet (``set_sandbox_mode(True)``), applied
            before ``api_url``.
        timeout_s: per-request HTTP timeout in seconds.
        options: CCXT ``options`` merged over the exchange's defaults. Giving
            ``fetchMarkets`` here turns off the narrowing of markets loaded to ``market``.

    Raises:
        PermanentExchangeError: unknown exchange id, bad market, no symbols, an
            ``api_url`` that is not an http(s) URL, or no sandbox on this exchange.

    Counters (for health): ``requests_made`` — CCXT REST calls issued to the exchange
    (``load_markets``, ``fetch_tickers``, ``fetch_ticker``), failed ones included;
    ``skipped`` — tickers dropped because none of bid/ask/last was a positive price;
    ``missing`` — requested symbols the exchange did not return.

    Always ``await close()`` (or use ``async with``): it closes the HTTP session.
    """

    def __init__(
        self,
        exchange_id: str,
        market: Market,
        symbols: Sequence[str],
        *,
        clock: Clock,
        api_url: str | None = None,
        sandbox: bool = False,
        timeout_s: float = 10.0,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        if exchange_id not in ccxt_async.exchanges:
            raise PermanentExchangeError(
                exchange_id, "unknown CCXT exchange id (see ccxt.exchanges for the valid ids)"
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
        self.market: Market = market
        self.symbols: tuple[str, ...] = tuple(dict.fromkeys(symbols))
        self.requests_made = 0
        self.skipped = 0
        self.missing = 0
        self._clock = clock
        self._markets_checked = False
        self._closed = False
        user_options = dict(options or {})
        exchange_class = getattr(ccxt_async, exchange_id)
        self._exchange: ccxt_async.Exchange = exchange_class(
            {
                "enableRateLimit": True,
                "timeout": max(1, round(timeout_s * 1000)),
                "options": user_options,
            }
        )
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

        The first call loads the markets (binance spot: ``GET /api/v3/exchangeInfo``)
        and checks that every symbol exists and is a ``market`` market. Each call then
        makes ONE ``fetch_tickers(symbols)`` request when the exchange supports it
        (binance spot: ``GET /api/v3/ticker/24hr?symbols=[...]``), else one
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
                ``retry_after_s``, 5xx, network, malformed JSON).
            PermanentExchangeError: unknown symbol, symbol of the wrong market, bad
                request, unsupported call, a closed source.
        """
        if self._closed:
            raise PermanentExchangeError(self.exchange_id, "the source is closed")
        await self._ensure_markets()
        tickers: list[Ticker] = []
        if self._exchange.has.get("fetchTickers"):
            raw = await self._call(lambda: self._exchange.fetch_tickers(list(self.symbols)))
            received_ns = self._clock.now_ns()
            if not isinstance(raw, Mapping):
                raise TemporaryExchangeError(
                    self.exchange_id, f"fetch_tickers returned {type(raw).__name__}, not a dict"
                )
            for symbol in self.symbols:
                self._collect(tickers, symbol, raw.get(symbol), received_ns)
        else:
            for symbol in self.symbols:
                one = await self._call(lambda s=symbol: self._exchange.fetch_ticker(s))
                self._collect(tickers, symbol, one, self._clock.now_ns())
        return tickers

    async def close(self) -> None:
        """Close the HTTP session (idempotent). Never raises for a closing error."""
        if self._closed:
            return
        self._closed = True
        await self._exchange.close()

    # -- internals -----------------------------------------------------------------------

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

    async def _ensure_markets(self) -> None:
        if self._markets_checked:
            return
        if not self._exchange.markets:
            await self._call(self._exchange.load_markets)
        markets: Mapping[str, Any] = self._exchange.markets or {}
        for symbol in self.symbols:
            info = markets.get(symbol)
            if info is None:
                raise PermanentExchangeError(
                    self.exchange_id, f"unknown symbol {symbol!r} on its {self.market} markets"
                )
            if self.market == "spot":
                fits = bool(info.get("spot"))
            else:
                fits = bool(info.get("contract")) and not info.get("option")
            if not fits:
                raise PermanentExchangeError(
                    self.exchange_id,
                    f"symbol {symbol!r} is a {info.get('type')} market, not {self.market}",
                )
        self._markets_checked = True

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run one CCXT REST call; raise only CoreC exchange errors."""
        exchange = self._exchange
        # CCXT keeps the previous response's text and headers when a call fails before
        # a response arrives (a timeout): clear them so they describe this call only.
        exchange.last_response_headers = None
        exchange.last_http_response = None
        self.requests_made += 1
        try:
            return await call()
        except ccxt.BaseError as exc:
            raise map_ccxt_error(
                self.exchange_id, exc, response_headers=exchange.last_response_headers
            ) from exc
        except Exception as exc:
            body = exchange.last_http_response
            if isinstance(body, str) and body and exchange.parse_json(body) is None:
                # Malformed JSON → TEMPORARY. CCXT does not raise for it: it keeps the
                # text and its parser then trips (AttributeError). A cut-off or garbled
                # body with a 2xx status comes from a dropped connection, a proxy or a
                # CDN page, and the next poll normally succeeds; CCXT itself classes
                # BadResponse under OperationFailed (retryable), not ExchangeError.
                # Retries stay bounded by the caller's backoff and circuit breaker.
                bad = ccxt.BadResponse(f"response is not valid JSON: {body[:200]!r}")
                raise map_ccxt_error(self.exchange_id, bad) from exc
            # A well-formed answer CCXT could not understand (an API change or a CCXT
            # bug) will not fix itself by retrying.
            raise map_ccxt_error(self.exchange_id, exc) from exc

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
        into.append(
            Ticker(
                exchange=self.exchange_id,
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
        )


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
    text = f"{type(exc).__name__}: {exc}"
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
