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
from collections.abc import Awaitable, Callable
from pathlib import Path

from corec.core.errors import (
    CircuitOpenError,
    ConfigError,
    ExchangeError,
    PermanentExchangeError,
    TemporaryExchangeError,
)
from corec.core.plugin import PluginContext
from corec.core.resilience import BreakerListener, CircuitBreaker, retry
from corec.exchanges.ccxt_source import CcxtTickerSource, UnknownSymbolError
from corec.exchanges.credentials import Credentials
from corec.exchanges.request_stats import RequestStats
from corec.messages.exchange_data import Market, OpenOrdersSnapshot, Ticker
from corec.plugins.exchange_sync.config import CcxtSettings, ExchangeSettings
from corec.plugins.exchange_sync.health import ExchangeHealth

TickersSink = Callable[[list[Ticker]], Awaitable[None]]
OrdersSink = Callable[[OpenOrdersSnapshot], Awaitable[None]]
HealthSink = Callable[["ExchangeWorker"], Awaitable[None]]

START_CHECK_TIMEOUT_S = 20.0
"""How long the start-up symbol check waits for an exchange before deferring it."""

STREAM_BACKOFF_MAX_S = 60.0


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
        for market, market_settings in settings.markets():
            self.sources[market] = CcxtTickerSource(
                market_settings.id,
                market,
                market_settings.symbols,
                clock=ctx.clock,
                exchange_name=name,
                api_url=market_settings.api_url or settings.api_url,
                sandbox=settings.sandbox,
                timeout_s=ccxt.timeout_s,
                credentials=credentials,
                markets_cache=(
                    None
                    if markets_dir is None
                    else markets_dir
                    / f"{market_settings.id}-{market}{'-sandbox' if settings.sandbox else ''}.json"
                ),
                markets_ttl_s=ccxt.markets_cache_ttl_s,
                stream=ccxt.mode == "stream",
                stats=self.stats,
            )
        self.has_credentials = credentials is not None
        self.streaming: set[Market] = set()
        self.orders_snapshots = 0

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
            for symbol in dropped:
                self.ctx.log.warning(
                    "unknown_symbol_skipped", exchange=self.name, market=market, symbol=symbol
                )
            if source.markets_from_cache:
                self.ctx.log.info("markets_from_cache", exchange=self.name, market=market)

    # -- schedules -------------------------------------------------------------------------
    async def run_polls(self, offset_s: float) -> None:
        """Poll every ``interval_s``, starting ``offset_s`` from now, until stopping.

        The schedule is absolute (start + offset + k × interval): a slow poll does not
        push the next ones back; a tick missed entirely is skipped, not made up.
        """
        loop = asyncio.get_running_loop()
        interval = self.ccxt.interval_s
        next_at = loop.time() + offset_s
        while not await self.ctx.sleep(max(0.0, next_at - loop.time())):
            markets = [m for m in self.sources if m not in self.streaming]
            if markets:
                await self.poll_once(markets)
            next_at += interval
            now = loop.time()
            if next_at <= now:
                next_at += ((now - next_at) // interval + 1) * interval

    async def run_orders(self, offset_s: float) -> None:
        """Poll open orders of every market every ``orders_interval_s`` (with credentials)."""
        if await self.ctx.sleep(offset_s):
            return
        while True:
            await self.orders_once()
            if await self.ctx.sleep(self.ccxt.orders_interval_s):
                return

    async def run_stream(self, market: Market) -> None:
        """Stream one market's tickers (ccxt.pro ``watch_tickers``) until stopping.

        Errors reconnect with exponential backoff (1 s, 2 s … 60 s); after
        ``stream_failures_before_poll`` errors in a row the market is polled instead for
        ``breaker_reset_s``, then streaming is tried again. An alert says so.
        """
        source = self.sources[market]
        failures = 0
        self.streaming.add(market)
        while not self.ctx.stopping.is_set():
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
                if await self.ctx.sleep(self.ccxt.breaker_reset_s):
                    return
                failures = 0
                self.streaming.add(market)
                self.health_.mode = "stream"
                continue
            failures = 0
            self.health_.tickers += len(tickers)
            self.health_.last_success_ts_ns = self.ctx.clock.now_ns()
            if tickers:
                await self._on_tickers(tickers)

    # -- one poll ------------------------------------------------------------------------
    async def poll_once(self, markets: list[Market] | None = None) -> bool:
        """Poll the tickers of ``markets`` (default all) once, through the breaker.

        Returns:
            True when the poll succeeded, False when it failed or the breaker refused it.
        """
        try:
            await self.breaker.before_call()
        except CircuitOpenError:
            self.ctx.log.debug("poll_skipped_breaker_open", exchange=self.name)
            return False
        probing = self.breaker.state == "half_open"
        attempts = 1 if probing else self.ccxt.retry_attempts
        health = self.health_
        health.polls += 1
        tickers: list[Ticker] = []
        errors: list[ExchangeError] = []
        for market in markets or list(self.sources):
            source = self.sources[market]
            try:
                tickers += await retry(
                    source.fetch,
                    attempts=attempts,
                    max_delay_s=min(30.0, self.ccxt.interval_s / 4),
                )
            except ExchangeError as exc:
                errors.append(exc)
        if tickers:
            health.tickers += len(tickers)
            await self._on_tickers(tickers)
        if errors:
            health.failed_polls += 1
            health.last_error = "; ".join(str(e) for e in errors)
            self.ctx.log.warning(
                "exchange_poll_failed", exchange=self.name, error=health.last_error
            )
            for exc in errors:
                if isinstance(exc, PermanentExchangeError):
                    await self.ctx.alert(
                        "exchange_api_error",
                        f"{self.name}: {exc}",
                        severity="high",
                        labels={"exchange": self.name, "kind": _kind(exc)},
                    )
            await self.breaker.record_failure(health.last_error)
        else:
            health.last_success_ts_ns = self.ctx.clock.now_ns()
            await self.breaker.record_success()
        await self._on_health(self)
        return not errors

    async def orders_once(self) -> int:
        """Snapshot the open orders of every market once; return the snapshots taken.

        Skipped while the breaker is open (the exchange is known to be failing);
        failures are counted and alerted when permanent (refused credentials), but do
        not move the breaker, which follows the ticker polls.
        """
        if not self.has_credentials or self.breaker.state == "open":
            return 0
        taken = 0
        for market, source in self.sources.items():
            try:
                orders = await retry(
                    source.fetch_open_orders,
                    attempts=self.ccxt.retry_attempts,
                    max_delay_s=min(30.0, self.ccxt.orders_interval_s / 4),
                )
            except ExchangeError as exc:
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
            await self._on_orders(snapshot)
            taken += 1
        self.orders_snapshots += taken
        return taken

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
        )

    async def close(self) -> None:
        """Close every market's HTTP/WebSocket session."""
        for source in self.sources.values():
            await source.close()


def _kind(exc: ExchangeError) -> str:
    cause = exc.__cause__
    return type(cause).__name__ if cause is not None else type(exc).__name__
