"""exchange_sync plugin: publishes ``exchange_data`` from a replayed recording or from
CCXT polls, and stores every ticker."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from corec.core import channels
from corec.core.clock import NS_PER_S, ReplayClock, format_ts
from corec.core.errors import CircuitOpenError, ExchangeError, PermanentExchangeError
from corec.core.notices import BreakerState, BreakerStateChanged
from corec.core.plugin import Plugin, PluginContext, PluginHealth
from corec.core.resilience import CircuitBreaker, retry
from corec.core.store import Store
from corec.exchanges.replay import Instrument, RecordingError, RecordingReader
from corec.messages.exchange_data import Ticker, TickerBatch
from corec.plugins.exchange_sync.config import ExchangeSyncConfig, VenueSettings
from corec.plugins.exchange_sync.storage import TickerWriter, read_cursor, ticker_stats

DEFAULT_RECORDING = "btc-perp_1m_2022-01.csv"
YIELD_EVERY_ROWS = 500


def bundled_recording(name: str = DEFAULT_RECORDING) -> Path:
    """Path of a recording bundled with CoreC (``corec/data/``)."""
    return Path(str(resources.files("corec") / "data" / name))


@dataclass
class VenueStats:
    """Counters of one polled venue, for health."""

    polls: int = 0
    failures: int = 0
    tickers: int = 0
    last_success_ts_ns: int | None = None
    last_error: str | None = None
    errors_by_kind: dict[str, int] = field(default_factory=dict)


class ExchangeSyncPlugin(Plugin):
    """Market data in: replay of a recording, or CCXT polls of the configured venues."""

    name = "exchange_sync"
    Config = ExchangeSyncConfig
    publishes = (channels.EXCHANGE_DATA, channels.SYSTEM, channels.ALERTS)
    migrations = Path(__file__).parent / "migrations"
    status_key = "exchange_sync"

    config: ExchangeSyncConfig

    async def start(self, ctx: PluginContext) -> None:
        assert ctx.store is not None
        self.ctx = ctx
        self.writer = TickerWriter(ctx.store, flush_rows=self.config.flush_rows)
        self.published = 0
        self.reader: RecordingReader | None = None
        self.total_rows = 0
        self.replay_done = False
        self.resumed_rows = 0
        self._cursor: tuple[str, int, int] | None = None
        self.venue_stats: dict[str, VenueStats] = {}
        self.breakers: dict[str, CircuitBreaker] = {}
        if self.config.source == "replay":
            await self._prepare_replay()
            ctx.spawn("replay", self._replay, essential=True)
        else:
            self._prepare_polling()

    # -- replay --------------------------------------------------------------------------
    async def _prepare_replay(self) -> None:
        settings = self.config.replay
        path = settings.path or bundled_recording()
        self.recording_key = str(path.resolve())
        last_ts_ns = 0
        if settings.resume:
            last_ts_ns, self.resumed_rows = await read_cursor(self.ctx.store, self.recording_key)  # type: ignore[arg-type]
        self.reader = RecordingReader(
            path,
            Instrument(settings.exchange, settings.market, settings.symbol),
            format=settings.format,
            bar_s=settings.bar_s,
            volume_unit=settings.volume_unit,
            skip_rows=self.resumed_rows,
        )
        self.total_rows = self.reader.count_rows()
        self.ctx.log.info(
            "replay_ready",
            recording=str(path),
            rows=self.total_rows,
            resume_after=format_ts(last_ts_ns or None),
        )

    async def _replay(self) -> None:
        assert self.reader is not None
        replayed = self._cursor[2] if self._cursor else self.resumed_rows
        if replayed != self.reader.skip_rows:  # restarted after a failure: go on, not over
            self.reader = replace(
                self.reader,
                skip_rows=replayed,
                rows_read=0,
                rows_skipped_resume=0,
                malformed=0,
                problems=[],
            )
        ctx, reader, writer = self.ctx, self.reader, self.writer
        clock = ctx.clock if isinstance(ctx.clock, ReplayClock) else None
        factor = self.config.replay.speed_factor()
        store = self.config.store_tickers
        last_ts = 0
        for ticker in reader.tickers():  # replayed data is received when it happened
            ts = ticker.exchange_ts_ns
            if (
                factor is not None
                and last_ts
                and await ctx.sleep((ts - last_ts) / NS_PER_S / factor)
            ):
                break
            if ctx.stopping.is_set():
                break  # between two bars: everything published so far is fully handled
            if clock is not None:
                clock.advance_to(ts)
            await ctx.publish(channels.EXCHANGE_DATA, TickerBatch(tickers=(ticker,)))
            self.published += 1
            replayed += 1
            last_ts = ts
            self._cursor = (self.recording_key, ts, replayed)
            if store and writer.add(ticker):
                await writer.flush(cursor=self._cursor)
            elif self.published % YIELD_EVERY_ROWS == 0:
                await asyncio.sleep(0)
        await writer.flush(cursor=self._cursor)
        if ctx.stopping.is_set():
            ctx.log.info("replay_stopped", published=self.published, cursor=self._cursor)
            return
        self.replay_done = True
        if reader.malformed:
            await ctx.alert(
                "recording_malformed_rows",
                f"{reader.malformed} malformed row(s) skipped in {reader.path.name}; first: {reader.problems[0]}",
                severity="low",
                labels={"recording": reader.path.name},
            )
        ctx.log.info("replay_finished", published=self.published, malformed=reader.malformed)
        if self.config.replay.stop_at_end:
            ctx.request_shutdown(f"recording {reader.path.name} finished")

    # -- CCXT polling ----------------------------------------------------------------------
    def _prepare_polling(self) -> None:
        venues = self.config.ccxt.venues
        interval = self.config.ccxt.interval_s
        for index, venue in enumerate(venues):
            key = f"{venue.exchange}.{venue.market}"
            self.venue_stats[key] = VenueStats()
            self.breakers[key] = CircuitBreaker(
                f"{self.name}.{key}",
                failure_threshold=self.config.ccxt.breaker_failures,
                reset_timeout_s=self.config.ccxt.breaker_reset_s,
                clock=self.ctx.clock,
                on_change=self._breaker_changed,
            )
            offset = interval * index / len(venues)
            self.ctx.spawn(f"poll.{key}", lambda v=venue, k=key, o=offset: self._poll(v, k, o))

    async def _poll(self, venue: VenueSettings, key: str, offset_s: float) -> None:
        # imported here: CCXT takes about a second to import, which a replay never needs
        from corec.exchanges.ccxt_source import CcxtTickerSource

        settings = self.config.ccxt
        stats, breaker = self.venue_stats[key], self.breakers[key]
        try:
            source = CcxtTickerSource(
                venue.exchange,
                venue.market,
                venue.symbols,
                clock=self.ctx.clock,
                api_url=venue.api_url,
                sandbox=venue.sandbox,
                timeout_s=settings.timeout_s,
            )
        except PermanentExchangeError as exc:
            stats.last_error = str(exc)
            await self.ctx.alert(
                "exchange_config_error", str(exc), severity="high", labels={"venue": key}
            )
            return
        try:
            if await self.ctx.sleep(offset_s):
                return
            while True:
                await self._poll_once(source, stats, breaker, key)
                if await self.ctx.sleep(settings.interval_s):
                    return
        finally:
            await source.close()

    async def _poll_once(
        self, source: Any, stats: VenueStats, breaker: CircuitBreaker, key: str
    ) -> None:
        settings = self.config.ccxt
        stats.polls += 1
        try:
            tickers: list[Ticker] = await breaker.call(
                lambda: retry(
                    source.fetch,
                    attempts=settings.retry_attempts,
                    max_delay_s=settings.interval_s / 4,
                )
            )
        except CircuitOpenError:
            return
        except ExchangeError as exc:
            stats.failures += 1
            kind = type(exc).__name__
            stats.errors_by_kind[kind] = stats.errors_by_kind.get(kind, 0) + 1
            stats.last_error = str(exc)
            self.ctx.log.warning("exchange_poll_failed", venue=key, error=str(exc))
            if isinstance(exc, PermanentExchangeError):
                await self.ctx.alert(
                    "exchange_api_error", str(exc), severity="high", labels={"venue": key}
                )
            return
        stats.tickers += len(tickers)
        stats.last_success_ts_ns = self.ctx.clock.now_ns()
        if tickers:
            await self.ctx.publish(channels.EXCHANGE_DATA, TickerBatch(tickers=tuple(tickers)))
            self.published += len(tickers)
            if self.config.store_tickers:
                for ticker in tickers:
                    self.writer.add(ticker)
                await self.writer.flush()

    async def _breaker_changed(
        self, name: str, previous: BreakerState, current: BreakerState, reason: str
    ) -> None:
        await self.ctx.publish(
            channels.SYSTEM,
            BreakerStateChanged(breaker=name, previous=previous, current=current, reason=reason),
        )
        severity = "high" if current == "open" else "low"
        await self.ctx.alert(
            f"breaker_{current}",
            f"{name}: breaker {previous} -> {current} ({reason})",
            severity=severity,
            labels={"breaker": name},
        )

    @classmethod
    def replay_start_ns(cls, config: ExchangeSyncConfig) -> int | None:  # type: ignore[override]
        if config.source != "replay":
            return None
        settings = config.replay
        try:
            reader = RecordingReader(
                settings.path or bundled_recording(),
                Instrument(settings.exchange, settings.market, settings.symbol),
                format=settings.format,
                bar_s=settings.bar_s,
            )
            first = next(reader.tickers(), None)
        except RecordingError:
            return None  # reported when the plugin starts
        return None if first is None else first.exchange_ts_ns

    # -- lifecycle ------------------------------------------------------------------------
    async def stop(self) -> None:
        # tickers published so far are stored, and a replay resumes after them
        await self.writer.flush(cursor=self._cursor)

    def health(self) -> PluginHealth:
        details: dict[str, Any] = {
            "source": self.config.source,
            "tickers_published": self.published,
        }
        if self.reader is not None:
            details.update(
                rows_read=self.reader.rows_read,
                bars_processed=self.published,
                malformed_rows=self.reader.malformed,
                problems=self.reader.problems[:5],
                resumed_rows=self.resumed_rows,
                progress={"done": self.reader.rows_read, "total": self.total_rows},
                finished=self.replay_done,
            )
        if self.venue_stats:
            details["venues"] = {
                key: {
                    "polls": s.polls,
                    "failures": s.failures,
                    "tickers": s.tickers,
                    "last_success": format_ts(s.last_success_ts_ns),
                    "last_error": s.last_error,
                    "errors_by_kind": s.errors_by_kind,
                    "breaker": self.breakers[key].state,
                }
                for key, s in self.venue_stats.items()
            }
        details["tickers_buffered"] = self.writer.buffered
        degraded = any(b.state != "closed" for b in self.breakers.values())
        return PluginHealth(status="degraded" if degraded else "ok", details=details)

    @classmethod
    async def read_status(cls, store: Store | None, config: ExchangeSyncConfig) -> dict[str, Any]:  # type: ignore[override]
        if store is None:
            return {"tickers_stored": 0, "last_ts": None}
        count, last_ts_ns = await ticker_stats(store)
        return {"tickers_stored": count, "last_ts": format_ts(last_ts_ns)}
