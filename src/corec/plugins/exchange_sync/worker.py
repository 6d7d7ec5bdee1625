"""One exchange's schedule: ticker polls (or streams), open-order polls, its breaker.

An :class:`ExchangeWorker` owns one :class:`~corec.exchanges.ccxt_source.CcxtTickerSource`
per market (spot, futures), one :class:`~corec.exchanges.request_stats.RequestStats`
and one :class:`~corec.core.resilience.CircuitBreaker`. Workers share nothing, so one
exchange's retries, backoff or open breaker never move another's schedule.

A *poll* fetches the tickers of every market of the exchange (one ``fetch_tickers``
request per market), each with retries for temporary errors; it fails when any market
still fails after its retries, or fails permanently. The tickers of the markets that
answered are published either way. The breaker counts failed polls: after
``breaker_failures`` in a row it opens for ``breaker_reset_s`` (node clock), during
which polls are skipped without a request; then one probe poll, without retries,
closes it or opens it again.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from corec.core.clock import NS_PER_S, format_ts
from corec.core.errors import (
    BusError,
    CircuitOpenError,
    ConfigError,
    ExchangeError,
    PermanentExchangeError,
    StoreError,
    TemporaryExchangeError,
)
from corec.core.plugin import PluginContext
from corec.core.resilience import BreakerListener, CircuitBreaker, retry
from corec.exchanges.ccxt_source import CcxtTickerSource, UnknownSymbolError
from corec.exchanges.credentials import Credentials
from corec.exchanges.request_stats import RequestStats
from corec.messages.exchange_data import (
    ExchangeHealthRow,
    Market,
    OpenOrdersSnapshot,
    OrderBook,
    Ticker,
)
from corec.plugins.exchange_sync.config import CcxtSettings, ExchangeSettings
from corec.plugins.exchange_sync.health import ExchangeHealth, MarketStats

TickersSink = Callable[[list[Ticker]], Awaitable[None]]
OrdersSink = Callable[[OpenOrdersSnapshot], Awaitable[None]]
HealthSink = Callable[["ExchangeWorker"], Awaitable[None]]

START_CHECK_TIMEOUT_S = 20.0
"""How long the start-up symbol check waits for an exchange before deferring it."""

STREAM_BACKOFF_MAX_S = 60.0
STREAM_HEALTH_EVERY_S = 10.0
MAX_RETRY_WAIT_S = 30.0
"""Longest wait between two attempts of one poll (also capped at a quarter interval)."""

T = TypeVar("T")


class _Stopping(Exception):
    """The node is stopping: a retry's wait was cut short."""


def _next_tick(previous: float, interval: float, now: float) -> float:
    """The next tick of an absolute schedule after ``previous``, skipping missed ones."""
    following = previous + interval
    if following <= now:
        following += ((now - following) // interval + 1) * interval
    return following


class ExchangeWorker:
    """Polls (or streams) one exchange's markets and open orders.

    Args:
        name: CoreC's exchange name (``binance``).
        settings: the exchange's markets and overrides.
        ccxt: the shared schedule, retry and breaker settings.
        ctx: the plugin's context (clock, sleep, alerts, log).
        credentials: API credentials; open orders are polled only with them.
        markets_dir: where each market's ``load_markets`` answer is cached.
        on_tickers, on_orders, on_health: where results go (publish, cache, store).
        on_breaker: the breaker's transition listener.
    """

    def __init__(
        self,
        name: str,
        settings: ExchangeSettings,
        ccxt: CcxtSettings,
        *,
        ctx: PluginContext,
        credentials: Credentials | None,
        markets_dir: Path | None,
        on_tickers: TickersSink,
        on_orders: OrdersSink,
        on_health: HealthSink,
        on_breaker: BreakerListener,
    ) -> None:
        self.name = name
        self.ccxt = ccxt
        self.ctx = ctx
        self.stats = RequestStats()
        self.health_ = ExchangeHealth(exchange=name, mode=ccxt.mode)
        self._on_tickers, self._on_orders, self._on_health = on_tickers, on_orders, on_health
        self.breaker = CircuitBreaker(
            f"exchange_sync.{name}",
            failure_threshold=ccxt.breaker_failures,
            reset_timeout_s=ccxt.breaker_reset_s,
            clock=ctx.clock,
            on_change=on_breaker,
        )
        self.sources: dict[Market, CcxtTickerSource] = {}
        self.market_stats: dict[Market, MarketStats] = {}
        for market, market_settings in settings.markets():
            api_url = market_settings.api_url or settings.api_url
            self.market_stats[market] = MarketStats(parent=self.stats)
            self.sources[market] = CcxtTickerSource(
                market_settings.id,
                market,
                market_settings.symbols,
                clock=ctx.clock,
                exchange_name=name,
                api_url=api_url,
                sandbox=settings.sandbox,
                timeout_s=ccxt.timeout_s,
                credentials=credentials,
                markets_cache=None
                if markets_dir is None
                else markets_dir
                / _cache_name(market_settings.id, market, api_url, settings.sandbox),
                skip_unknown=ccxt.skip_unknown_symbols,
                markets_ttl_s=ccxt.markets_cache_ttl_s,
                stream=ccxt.mode == "stream",
                stats=self.market_stats[market],
            )
        self.has_credentials = credentials is not None
        self.streaming: set[Market] = set()
        self.orders_snapshots = 0
        self._next_poll_at: float | None = None
        self._next_orders_at: float | None = None
        self._not_before_ns = 0
        self._dropped_reported: set[Market] = set()

    # -- start-up ------------------------------------------------------------------------
    async def check_symbols(self) -> None:
        """Check every configured symbol against the exchange's markets, at start.

        Unknown symbols raise, or are skipped with a warning when
        ``skip_unknown_symbols``; when the exchange cannot be reached in
        :data:`START_CHECK_TIMEOUT_S`, the check happens at the first poll instead.

        Raises:
            ConfigError: a symbol is not listed (naming the closest listed ones), or
                with ``skip_unknown_symbols`` none of a market's symbols is.
        """
        for market, source in self.sources.items():
            where = f"exchange_sync.ccxt.exchanges.{self.name}.{market}"
            try:
                dropped = await asyncio.wait_for(
                    source.validate_symbols(skip_unknown=self.ccxt.skip_unknown_symbols),
                    timeout=START_CHECK_TIMEOUT_S,
                )
            except UnknownSymbolError as exc:
                raise ConfigError(
                    "exchange_sync",
                    [
                        f"{where}.symbols: {exc} (or set exchange_sync.ccxt.skip_unknown_symbols: true)"
                    ],
                ) from exc
            except PermanentExchangeError as exc:
                raise ConfigError("exchange_sync", [f"{where}: {exc}"]) from exc
            except (TemporaryExchangeError, TimeoutError) as exc:
                self.ctx.log.warning(
                    "exchange_unreachable_at_start",
                    exchange=self.name,
                    market=market,
                    error=str(exc) or type(exc).__name__,
                    note="symbols are checked at the first successful poll",
                )
                continue
            if dropped:
                self._report_dropped(market, source)
            if source.markets_from_cache:
                self.ctx.log.info("markets_from_cache", exchange=self.name, market=market)

    # -- schedules -------------------------------------------------------------------------
    async def run_polls(self, offset_s: float) -> None:
        """Poll every ``interval_s``, starting ``offset_s`` from the first start, until
        stopping.

        The schedule is absolute (start + offset + k × interval) and kept on the worker:
        a slow poll does not push the next ones back, a restarted task keeps the
        exchange's slot, and a tick missed entirely is skipped, not made up.
        """
        loop = asyncio.get_running_loop()
        interval = self.ccxt.interval_s
        if self._next_poll_at is None:
            self._next_poll_at = loop.time() + offset_s
        while not await self.ctx.sleep(max(0.0, self._next_poll_at - loop.time())):
            markets = [m for m in self.sources if m not in self.streaming]
            if markets:
                await self.poll_once(markets)
            self._next_poll_at = _next_tick(self._next_poll_at, interval, loop.time())

    async def run_orders(self, offset_s: float) -> None:
        """Poll open orders of every market every ``orders_interval_s`` (with
        credentials), on an absolute schedule like :meth:`run_polls`."""
        loop = asyncio.get_running_loop()
        interval = self.ccxt.orders_interval_s
        if self._next_orders_at is None:
            self._next_orders_at = loop.time() + offset_s
        while not await self.ctx.sleep(max(0.0, self._next_orders_at - loop.time())):
            await self.orders_once()
            self._next_orders_at = _next_tick(self._next_orders_at, interval, loop.time())

    async def run_stream(self, market: Market) -> None:
        """Stream one market's tickers (ccxt.pro ``watch_tickers``) until stopping.

        Errors reconnect with exponential backoff (1 s, 2 s … 60 s); after
        ``stream_failures_before_poll`` errors in a row the market is polled instead for
        ``breaker_reset_s``, then streaming is tried again. An alert says so. The
        exchange's health is saved every :data:`STREAM_HEALTH_EVERY_S`.
        """
        source = self.sources[market]
        loop = asyncio.get_running_loop()
        failures = 0
        health_saved_at = loop.time()
        self.streaming.add(market)
        while not self.ctx.stopping.is_set():
            if loop.time() - health_saved_at >= STREAM_HEALTH_EVERY_S:
                health_saved_at = loop.time()
                await self._deliver("health", self._on_health(self))
            try:
                tickers = await source.watch()
            except ExchangeError as exc:
                failures += 1
                self.health_.last_error = str(exc)
                if failures < self.ccxt.stream_failures_before_poll and not isinstance(
                    exc, PermanentExchangeError
                ):
                    if await self.ctx.sleep(min(STREAM_BACKOFF_MAX_S, 2.0 ** (failures - 1))):
                        return
                    continue
                self.streaming.discard(market)
                self.health_.mode = "poll (stream failing)"
                await self.ctx.alert(
                    "exchange_stream_failing",
                    f"{self.name} {market}: ticker stream failed {failures} time(s) "
                    f"({exc}); polling every {self.ccxt.interval_s:g} s instead for "
                    f"{self.ccxt.breaker_reset_s:g} s",
                    severity="medium",
                    labels={"exchange": self.name, "market": market},
                )
                await self._deliver("health", self._on_health(self))
                if await self.ctx.sleep(self.ccxt.breaker_reset_s):
                    return
                failures = 0
                self.streaming.add(market)
                self.health_.mode = "stream"
                continue
            failures = 0
            self.health_.tickers += len(tickers)
            self.health_.last_success_ts_ns = self.ctx.clock.now_ns()
            stats = self.market_stats[market]
            stats.tickers += len(tickers)
            stats.last_success_ts_ns = self.health_.last_success_ts_ns
            if tickers:
                await self._deliver("tickers", self._on_tickers(tickers))

    # -- one poll ------------------------------------------------------------------------
    async def poll_once(self, markets: list[Market] | None = None) -> bool:
        """Poll the tickers of ``markets`` (default all) once, through the breaker.

        The breaker hears the outcome before anything is published or stored, so a
        failing store can never leave it waiting for a probe's result.

        Returns:
            True when the poll succeeded; False when it failed, the breaker refused it,
            or the exchange asked us to wait (``Retry-After``) and the wait is not over.
        """
        if self._paused():
            return False
        try:
            await self.breaker.before_call()
        except CircuitOpenError:
            self.ctx.log.debug("poll_skipped_breaker_open", exchange=self.name)
            return False
        probing = self.breaker.state == "half_open"
        health = self.health_
        health.polls += 1
        tickers: list[Ticker] = []
        errors: list[ExchangeError] = []
        try:
            for market in markets or list(self.sources):
                source = self.sources[market]
                stats = self.market_stats[market]
                try:
                    got = await self._retry(source.fetch, attempts=1 if probing else None)
                except ExchangeError as exc:
                    errors.append(exc)
                    self._pause_for(exc)
                    stats.failed_polls += 1
                else:
                    tickers += got
                    stats.tickers += len(got)
                    stats.last_success_ts_ns = self.ctx.clock.now_ns()
                self._report_dropped(market, source)
        except _Stopping:
            await self.breaker.record_failure("stopped during the poll")
            return False
        if errors:
            health.failed_polls += 1
            health.last_error = "; ".join(str(e) for e in errors)
            self.ctx.log.warning(
                "exchange_poll_failed", exchange=self.name, error=health.last_error
            )
            await self.breaker.record_failure(health.last_error)
            for exc in errors:
                if isinstance(exc, PermanentExchangeError):
                    await self.ctx.alert(
                        "exchange_api_error",
                        f"{self.name}: {exc}",
                        severity="high",
                        labels={"exchange": self.name, "kind": _kind(exc)},
                    )
        else:
            health.last_success_ts_ns = self.ctx.clock.now_ns()
            await self.breaker.record_success()
        if tickers:
            health.tickers += len(tickers)
            await self._deliver("tickers", self._on_tickers(tickers))
        await self._deliver("health", self._on_health(self))
        return not errors

    async def orders_once(self) -> int:
        """Snapshot the open orders of every market once; return the snapshots taken.

        Only while the breaker is closed (an open breaker means the exchange is failing;
        half-open means one probe poll, nothing else) and no ``Retry-After`` wait is
        running. Failures are counted and alerted when permanent (refused credentials),
        but do not move the breaker, which follows the ticker polls.
        """
        if not self.has_credentials or self.breaker.state != "closed" or self._paused():
            return 0
        taken = 0
        for market, source in self.sources.items():
            try:
                orders = await self._retry(source.fetch_open_orders)
            except _Stopping:
                return taken
            except ExchangeError as exc:
                self._pause_for(exc)
                self.health_.last_error = str(exc)
                self.ctx.log.warning(
                    "open_orders_failed", exchange=self.name, market=market, error=str(exc)
                )
                if isinstance(exc, PermanentExchangeError):
                    await self.ctx.alert(
                        "exchange_api_error",
                        f"{self.name} {market} open orders: {exc}",
                        severity="high",
                        labels={"exchange": self.name, "kind": _kind(exc)},
                    )
                continue
            snapshot = OpenOrdersSnapshot(
                exchange=self.name,
                market=market,
                taken_ts_ns=self.ctx.clock.now_ns(),
                orders=tuple(orders),
            )
            if await self._deliver("open_orders", self._on_orders(snapshot)):
                taken += 1
        self.orders_snapshots += taken
        return taken

    # -- order book (exchange_sync.order_book) ------------------------------------------
    async def order_book(self, market: Market, symbol: str, depth: int) -> OrderBook:
        """One request for ``symbol``'s book on ``market`` (CCXT ``fetch_order_book``).

        Only while the breaker is closed and no ``Retry-After`` wait runs (like
        :meth:`orders_once`); one attempt, no retries (the reader may ask again); the
        outcome is recorded in the market's request statistics but does not move the
        breaker, which follows the ticker polls. A ``Retry-After`` in a failure is
        honoured by the whole exchange.

        Raises:
            CircuitOpenError: the breaker is not closed, or a ``Retry-After`` wait runs
                (``retry_in_s`` says how long); no request was made.
            KeyError: ``market`` is not configured for this exchange.
            ExchangeError: from :meth:`CcxtTickerSource.fetch_order_book`.
        """
        source = self.sources[market]
        if self.breaker.state != "closed":
            raise CircuitOpenError(self.breaker.name, self.breaker.retry_in_s())
        wait_ns = self._not_before_ns - self.ctx.clock.now_ns()
        if wait_ns > 0:
            raise CircuitOpenError(self.breaker.name, wait_ns / NS_PER_S)
        try:
            return await source.fetch_order_book(symbol, depth)
        except ExchangeError as exc:
            self._pause_for(exc)
            raise

    # -- helpers -----------------------------------------------------------------------------
    async def _retry(self, call: Callable[[], Awaitable[T]], *, attempts: int | None = None) -> T:
        """``call`` with the retry policy: backoff with jitter, waiting out a
        ``Retry-After`` up to a quarter interval (longer: the call fails now and the
        exchange is left alone until then, see :meth:`_pause_for`); a stop interrupts
        the wait (:class:`_Stopping`)."""

        async def sleep(seconds: float) -> None:
            if await self.ctx.sleep(seconds):
                raise _Stopping

        budget = min(MAX_RETRY_WAIT_S, self.ccxt.interval_s / 4)
        return await retry(
            call,
            attempts=attempts or self.ccxt.retry_attempts,
            max_delay_s=budget,
            max_retry_after_s=budget,
            sleep=sleep,
        )

    def _pause_for(self, exc: ExchangeError) -> None:
        """Honour an error's ``Retry-After``: no request to this exchange before then."""
        wait_s = getattr(exc, "retry_after_s", None)
        if wait_s:
            until = self.ctx.clock.now_ns() + int(float(wait_s) * NS_PER_S)
            self._not_before_ns = max(self._not_before_ns, until)

    def _paused(self) -> bool:
        if self.ctx.clock.now_ns() >= self._not_before_ns:
            return False
        self.ctx.log.debug(
            "exchange_paused_retry_after", exchange=self.name, until=format_ts(self._not_before_ns)
        )
        return True

    def _report_dropped(self, market: Market, source: CcxtTickerSource) -> None:
        if source.dropped_symbols and market not in self._dropped_reported:
            self._dropped_reported.add(market)
            for symbol in source.dropped_symbols:
                self.ctx.log.warning(
                    "unknown_symbol_skipped", exchange=self.name, market=market, symbol=symbol
                )

    async def _deliver(self, what: str, delivery: Awaitable[None]) -> bool:
        """Await a sink (publish, store); a bus or store failure is logged and counted,
        never allowed to stop the exchange's schedule. True when it went through."""
        try:
            await delivery
        except (StoreError, BusError) as exc:
            self.health_.sink_errors += 1
            self.ctx.log.error(
                "exchange_sync_delivery_failed", exchange=self.name, what=what, error=str(exc)
            )
            return False
        return True

    # -- health & lifecycle --------------------------------------------------------------
    def health(self) -> ExchangeHealth:
        """The exchange's health now (a fresh copy)."""
        h = self.health_
        return ExchangeHealth(
            exchange=self.name,
            breaker_state=self.breaker.state,
            mode=h.mode,
            polls=h.polls,
            failed_polls=h.failed_polls,
            consecutive_failures=self.breaker.consecutive_failures,
            requests=self.stats.requests,
            errors_by_kind=dict(self.stats.errors_by_kind),
            latency_p50_ms=self.stats.latency_ms(50),
            latency_p95_ms=self.stats.latency_ms(95),
            tickers=h.tickers,
            last_success_ts_ns=h.last_success_ts_ns,
            last_error=h.last_error,
            updated_ts_ns=self.ctx.clock.now_ns(),
            sink_errors=h.sink_errors,
        )

    def market_rows(self) -> list[ExchangeHealthRow]:
        """One ``exchange_sync.health`` row per market, from memory (cheap)."""
        rows = []
        for market, stats in self.market_stats.items():
            p50, p95 = stats.percentiles_ms()
            if market in self.streaming:
                feed = "stream"
            elif self.ccxt.mode == "stream" and self.sources[market].can_stream:
                feed = "poll (stream failing)"
            else:
                feed = "poll"
            rows.append(
                ExchangeHealthRow(
                    exchange=self.name,
                    market=market,
                    breaker=self.breaker.state,
                    last_success_ts_ns=stats.last_success_ts_ns,
                    failed_polls=stats.failed_polls,
                    latency_p50_ms=p50,
                    latency_p95_ms=p95,
                    errors=dict(stats.errors_by_kind),
                    requests=stats.requests,
                    tickers=stats.tickers,
                    feed=feed,
                    last_error=self.health_.last_error,
                )
            )
        return rows

    async def close(self) -> None:
        """Close every market's HTTP/WebSocket session."""
        for source in self.sources.values():
            await source.close()


def _cache_name(ccxt_id: str, market: str, api_url: str | None, sandbox: bool) -> str:
    """The markets cache file of one CCXT class and market (per API URL: a testnet's or
    a proxy's markets are not the exchange's)."""
    suffix = "-sandbox" if sandbox else ""
    if api_url:
        suffix += "-" + hashlib.sha256(api_url.encode()).hexdigest()[:10]
    return f"{ccxt_id}-{market}{suffix}.json"


def _kind(exc: ExchangeError) -> str:
    cause = exc.__cause__
    return type(cause).__name__ if cause is not None else type(exc).__name__
