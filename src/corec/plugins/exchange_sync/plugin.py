"""exchange_sync plugin: publishes ``exchange_data`` from a replayed recording or from
CCXT (polls or streams of the configured exchanges, and their open orders), keeps the
latest tickers in a cache served as ``exchange_sync.latest``, stores every ticker, and
records each exchange's health.

Query endpoints (:mod:`.queries`): ``exchange_sync.health``, ``exchange_sync.open_orders``,
``exchange_sync.order_book``."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

from corec.core import channels
from corec.core.clock import NS_PER_S, ReplayClock, format_ts
from corec.core.errors import ConfigError, InvalidEvent, PermanentExchangeError, StoreError
from corec.core.events import Payload
from corec.core.notices import BreakerState
from corec.core.plugin import Plugin, PluginContext, PluginHealth
from corec.core.queries import Refused
from corec.core.store import Store
from corec.exchanges.credentials import default_prefix, load_credentials
from corec.exchanges.replay import Instrument, RecordingError, RecordingReader
from corec.messages.exchange_data import (
    HEALTH,
    LATEST,
    OPEN_ORDERS,
    ORDER_BOOK,
    ExchangeHealthReport,
    ExchangeHealthRequest,
    LatestRequest,
    LatestTickers,
    OpenOrdersPage,
    OpenOrdersRequest,
    OpenOrdersSnapshot,
    OrderBook,
    OrderBookRequest,
    Ticker,
    TickerBatch,
)
from corec.plugins.exchange_sync import queries
from corec.plugins.exchange_sync.cache import RedisTickerMirror, TickerCache
from corec.plugins.exchange_sync.config import ExchangeSyncConfig
from corec.plugins.exchange_sync.storage import (
    TickerWriter,
    prune,
    read_cursor,
    save_health,
    save_open_orders,
    ticker_stats,
)

DEFAULT_RECORDING = "btc-perp_1m_2022-01.csv"
YIELD_EVERY_ROWS = 500
MIRROR_FLUSH_S = 0.5
"""How often cached tickers are copied to Redis (with ``cache_url``)."""


def bundled_recording(name: str = DEFAULT_RECORDING) -> Path:
    """Path of a recording bundled with CoreC (``corec/data/``)."""
    return Path(str(resources.files("corec") / "data" / name))


class ExchangeSyncPlugin(Plugin):
    """Market data in: replay of a recording, or CCXT polls of the configured venues."""

    name = "exchange_sync"
    Config = ExchangeSyncConfig
    publishes = (channels.EXCHANGE_DATA, channels.SYSTEM, channels.ALERTS)
    serves = (LATEST, HEALTH, OPEN_ORDERS, ORDER_BOOK)
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
        self.workers: dict[str, Any] = {}
        self.cache = TickerCache(ttl_s=self.config.cache_ttl_s)
        self.mirror: RedisTickerMirror | None = None
        if self.config.cache_url is not None:
            self.mirror = RedisTickerMirror(
                self.config.cache_url,
                instance_id=ctx.config.node.instance_id,
                ttl_s=self.config.cache_ttl_s,
            )
            ctx.spawn("cache_mirror", self._flush_mirror_periodically)
        ctx.serve(LATEST, self._latest)
        ctx.serve(HEALTH, self._health)
        ctx.serve(OPEN_ORDERS, self._open_orders)
        ctx.serve(ORDER_BOOK, self._order_book)
        if self.config.source == "replay":
            await self._prepare_replay()
            ctx.spawn("replay", self._replay, essential=True)
        else:
            await self._prepare_ccxt()
            if self.config.retention_s is not None:
                ctx.spawn("prune", self._prune_periodically)

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
        cache, mirror = self.cache, self.mirror
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
            cache.put((ticker,))
            if mirror is not None:
                mirror.put((ticker,))
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

    # -- CCXT ----------------------------------------------------------------------------
    async def _prepare_ccxt(self) -> None:
        # imported here: CCXT takes about a second to import, which a replay never needs
        from corec.plugins.exchange_sync.worker import ExchangeWorker

        settings = self.config.ccxt
        markets_dir = self.ctx.config.node.data_dir / "exchange_sync" / "markets"
        for name, exchange in settings.exchanges.items():
            prefix = exchange.credentials_env or default_prefix(name)
            try:
                credentials = load_credentials(prefix)
                worker = ExchangeWorker(
                    name,
                    exchange,
                    settings,
                    ctx=self.ctx,
                    credentials=credentials,
                    markets_dir=markets_dir,
                    on_tickers=self._on_tickers,
                    on_orders=self._on_orders,
                    on_health=self._on_health,
                    on_breaker=self._breaker_changed,
                )
            except PermanentExchangeError as exc:
                await self._close_workers()
                where = f"exchange_sync.ccxt.exchanges.{name}"
                raise ConfigError("exchange_sync", [f"{where}: {exc}"]) from exc
            except ConfigError:
                await self._close_workers()
                raise
            self.workers[name] = worker
        try:
            await asyncio.gather(*(w.check_symbols() for w in self.workers.values()))
        except BaseException:
            await self._close_workers()
            raise
        stagger = settings.stagger()
        for index, (name, worker) in enumerate(self.workers.items()):
            offset = stagger * index
            streamed = [
                m for m, s in worker.sources.items() if settings.mode == "stream" and s.can_stream
            ]
            worker.streaming.update(streamed)  # polled only once their stream fails
            for market in streamed:
                self.ctx.spawn(
                    f"stream.{name}.{market}", lambda w=worker, m=market: w.run_stream(m)
                )
            if settings.mode == "stream" and len(streamed) < len(worker.sources):
                self.ctx.log.info("stream_unsupported_polling", exchange=name)
            self.ctx.spawn(f"poll.{name}", lambda w=worker, o=offset: w.run_polls(o))
            if worker.has_credentials:
                self.ctx.spawn(f"orders.{name}", lambda w=worker, o=offset: w.run_orders(o))
        self.ctx.log.info(
            "ccxt_ready",
            exchanges=list(self.workers),
            mode=settings.mode,
            interval_s=settings.interval_s,
            stagger_s=stagger,
            with_credentials=[n for n, w in self.workers.items() if w.has_credentials],
        )

    async def _on_tickers(self, tickers: list[Ticker]) -> None:
        """Publish one exchange's tickers, cache them and store them."""
        await self.ctx.publish(channels.EXCHANGE_DATA, TickerBatch(tickers=tuple(tickers)))
        self.published += len(tickers)
        self.cache.put(tickers)
        if self.mirror is not None:
            self.mirror.put(tickers)
        if self.config.store_tickers:
            for ticker in tickers:
                self.writer.add(ticker)
            await self.writer.flush()

    async def _on_orders(self, snapshot: OpenOrdersSnapshot) -> None:
        await self.ctx.publish(channels.EXCHANGE_DATA, snapshot)
        await save_open_orders(self.ctx.store, snapshot)  # type: ignore[arg-type]

    async def _on_health(self, worker: Any) -> None:
        await save_health(self.ctx.store, [worker.health()])  # type: ignore[arg-type]

    async def _breaker_changed(
        self, name: str, previous: BreakerState, current: BreakerState, reason: str
    ) -> None:
        exchange = name.rsplit(".", 1)[-1]
        await self.ctx.announce_breaker(
            name, previous, current, reason, subject=exchange, labels={"exchange": exchange}
        )

    async def _close_workers(self) -> None:
        for worker in self.workers.values():
            await worker.close()

    # -- cache, retention ------------------------------------------------------------------
    async def _latest(self, request: Payload) -> LatestTickers:
        if not isinstance(request, LatestRequest):
            raise InvalidEvent(f"{LATEST} takes LatestRequest, got {type(request).__name__}")
        now = self.ctx.clock.now_ns()
        tickers = self.cache.latest(
            now, exchange=request.exchange, market=request.market, symbol=request.symbol
        )
        return LatestTickers(as_of_ts_ns=now, tickers=tuple(tickers))

    async def _health(self, request: Payload) -> ExchangeHealthReport | Refused:
        if not isinstance(request, ExchangeHealthRequest):
            return _wrong_type(HEALTH, "ExchangeHealthRequest", request)
        replay = self.config.replay
        replaying = self.config.source == "replay"
        return queries.health_report(
            self.ctx.clock.now_ns(),
            self.workers.values(),
            self.cache.get(replay.exchange, replay.market, replay.symbol) if replaying else None,
            replay_instrument=(replay.exchange, replay.market) if replaying else None,
            tickers_replayed=self.published,
        )

    async def _open_orders(self, request: Payload) -> OpenOrdersPage | Refused:
        if not isinstance(request, OpenOrdersRequest):
            return _wrong_type(OPEN_ORDERS, "OpenOrdersRequest", request)
        return await queries.open_orders_page(self.ctx.store, request)  # type: ignore[arg-type]

    async def _order_book(self, request: Payload) -> OrderBook | Refused:
        if not isinstance(request, OrderBookRequest):
            return _wrong_type(ORDER_BOOK, "OrderBookRequest", request)
        if self.config.source != "replay":
            return await queries.live_order_book(self.workers, request)
        replay = self.config.replay
        return queries.ticker_order_book(
            request,
            [(replay.exchange, replay.market)],
            self.cache.get(request.exchange, request.market, request.symbol),
        )

    async def _flush_mirror_periodically(self) -> None:
        assert self.mirror is not None
        while not await self.ctx.sleep(MIRROR_FLUSH_S):
            try:
                await self.mirror.flush()
            except StoreError as exc:
                self.ctx.log.warning("ticker_cache_redis_failed", error=str(exc))

    async def _prune_periodically(self) -> None:
        while True:
            try:
                await self.prune_now()
            except StoreError as exc:  # tried again at the next interval
                self.ctx.log.error("prune_failed", error=str(exc))
            if await self.ctx.sleep(self.config.prune_interval_s):
                return

    async def prune_now(self) -> tuple[int, int]:
        """Delete tickers and open-order snapshots older than ``retention_s``.

        Returns:
            ``(tickers deleted, snapshots deleted)``.
        """
        retention = self.config.retention_s
        if retention is None:
            return 0, 0
        cutoff = self.ctx.clock.now_ns() - int(retention * NS_PER_S)
        deleted = await prune(self.ctx.store, older_than_ns=cutoff)  # type: ignore[arg-type]
        if any(deleted):
            self.ctx.log.info(
                "pruned",
                tickers=deleted[0],
                open_order_snapshots=deleted[1],
                before=format_ts(cutoff),
            )
        return deleted

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
        try:
            # tickers published so far are stored, and a replay resumes after them
            await self.writer.flush(cursor=self._cursor)
            if self.workers:
                await save_health(self.ctx.store, [w.health() for w in self.workers.values()])  # type: ignore[arg-type]
        finally:  # the exchanges' sessions and Redis are closed whatever happened
            await self._close_workers()
            if self.mirror is not None:
                try:
                    await self.mirror.flush()
                except StoreError as exc:
                    self.ctx.log.warning("ticker_cache_redis_failed", error=str(exc))
                await self.mirror.close()

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
        if self.workers:
            details["exchanges"] = {
                name: worker.health().as_json() for name, worker in self.workers.items()
            }
        details["tickers_cached"] = len(self.cache)
        details["tickers_buffered"] = self.writer.buffered
        degraded = any(w.breaker.state != "closed" for w in self.workers.values())
        return PluginHealth(status="degraded" if degraded else "ok", details=details)

    @classmethod
    async def read_status(cls, store: Store | None, config: ExchangeSyncConfig) -> dict[str, Any]:  # type: ignore[override]
        if store is None:
            return {"tickers_stored": 0, "last_ts": None}
        count, last_ts_ns = await ticker_stats(store)
        return {"tickers_stored": count, "last_ts": format_ts(last_ts_ns)}


def _wrong_type(endpoint: str, expected: str, request: Payload) -> Refused:
    return Refused(
        code="invalid", message=f"{endpoint} takes {expected}, got {type(request).__name__}"
    )
