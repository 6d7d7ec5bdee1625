"""macro_sync plugin: publishes ``macro_data`` (VIX, S&P 500, any configured series)
from a recording or FRED's CSV download, flags stale series, never invents a value."""

from __future__ import annotations

from collections import deque
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select

from corec.core import channels
from corec.core.clock import NS_PER_S, format_ts
from corec.core.errors import CircuitOpenError, InvalidInput, StoreError
from corec.core.events import Event
from corec.core.notices import BreakerState
from corec.core.plugin import Plugin, PluginContext, PluginHealth
from corec.core.resilience import CircuitBreaker, retry
from corec.core.store.upsert import insert_ignoring_duplicates
from corec.messages.macro_data import MacroObservation, MacroSeriesStale
from corec.plugins.macro_sync import models as m
from corec.plugins.macro_sync.config import MacroSyncConfig
from corec.plugins.macro_sync.sources import available_ts_ns, parse_fred_csv

DEFAULT_RECORDING = "fred_vix_sp500_2021-12_2022-02.csv"
LIVE_CHECK_S = 60.0
"""How often a node on the system clock looks for due values and stale series."""


class _Transient(Exception):
    """A download failure worth retrying (timeout, connection, 5xx, 429)."""


def bundled_macro_recording() -> Path:
    """The bundled FRED extract (VIX and S&P 500, Dec 2021 to Feb 2022)."""
    return Path(str(resources.files("corec") / "data" / DEFAULT_RECORDING))


class MacroSyncPlugin(Plugin):
    """Daily macro series on ``macro_data``.

    With a recording and a replay clock, values are published as the replayed time
    passes each value's ``available_at_utc`` (checked on every ``exchange_data`` event,
    so a replay is deterministic); on the system clock, every minute. With FRED, each
    series is downloaded every ``interval_s`` through retry and a breaker per series.
    """

    name = "macro_sync"
    Config = MacroSyncConfig
    consumes = (channels.EXCHANGE_DATA,)  # a replay's clock ticks; the data is ignored
    publishes = (channels.MACRO_DATA, channels.SYSTEM, channels.ALERTS)
    migrations = Path(__file__).parent / "migrations"
    status_key = None

    config: MacroSyncConfig

    async def start(self, ctx: PluginContext) -> None:
        assert ctx.store is not None
        self.ctx = ctx
        self.by_source = {source_id: name for name, source_id in self.config.series.items()}
        self.latest: dict[str, MacroObservation] = {}
        self.stale: set[str] = set()
        self.published = 0
        self.started_ns = ctx.clock.now_ns()
        self.stale_ns = int(self.config.stale_after_s * NS_PER_S)
        self.pending: deque[MacroObservation] = deque()
        self.breakers: dict[str, CircuitBreaker] = {}
        self.last_error: str | None = None
        self._insert = insert_ignoring_duplicates(
            m.observations, ctx.store.dialect, ["series", "date"]
        )
        await self._republish_stored()
        if self.config.source == "recording":
            self._load_recording()
        else:
            for name in self.config.series:
                self.breakers[name] = CircuitBreaker(
                    f"macro_sync.{name}",
                    failure_threshold=self.config.fred.breaker_failures,
                    reset_timeout_s=self.config.fred.breaker_reset_s,
                    clock=ctx.clock,
                    on_change=self._breaker_changed,
                )
            ctx.spawn("fred", self._poll_fred)
        self._next_check_ns = 0
        if ctx.clock.is_simulated:
            ctx.subscribe(channels.EXCHANGE_DATA, self._on_tick)
        else:
            ctx.spawn("check", self._check_periodically)

    # -- recording ---------------------------------------------------------------------------
    def _load_recording(self) -> None:
        settings = self.config.recording
        path = settings.path or bundled_macro_recording()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidInput(f"macro recording {path}: {exc.strerror or exc}") from exc
        rows = parse_fred_csv(text, list(self.by_source), origin=str(path))
        observations = [
            MacroObservation(
                series=self.by_source[row.source_id],
                source_id=row.source_id,
                date=row.date.isoformat(),
                value=row.value,
                available_ts_ns=available_ts_ns(row.date, settings.available_at_utc),
            )
            for row in rows
        ]
        observations.sort(key=lambda o: (o.available_ts_ns, o.series))
        self.pending.extend(o for o in observations if not self._known(o))
        self.ctx.log.info("macro_recording_ready", recording=str(path), values=len(observations))

    async def _on_tick(self, _event: Event) -> None:
        now = self.ctx.clock.now_ns()
        if self.pending and self.pending[0].available_ts_ns <= now:
            await self._publish_due(now)
        if now >= self._next_check_ns:
            self._next_check_ns = now + int(LIVE_CHECK_S * NS_PER_S)
            await self._check_stale(now)

    async def _check_periodically(self) -> None:
        while True:
            now = self.ctx.clock.now_ns()
            await self._publish_due(now)
            await self._check_stale(now)
            if await self.ctx.sleep(LIVE_CHECK_S):
                return

    async def _publish_due(self, now: int) -> None:
        due: list[MacroObservation] = []
        while self.pending and self.pending[0].available_ts_ns <= now:
            due.append(self.pending.popleft())
        await self._publish(due)

    # -- FRED ----------------------------------------------------------------------------------
    async def _poll_fred(self) -> None:
        import aiohttp  # imported on use: a recording never needs it

        settings = self.config.fred
        timeout = aiohttp.ClientTimeout(total=settings.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                for name, source_id in self.config.series.items():
                    await self._download(session, name, source_id)
                if await self.ctx.sleep(settings.interval_s):
                    return

    async def _download(self, session: Any, name: str, source_id: str) -> None:
        import aiohttp

        settings = self.config.fred
        url = settings.url.format(id=source_id)
        breaker = self.breakers[name]

        async def fetch() -> str:
            try:
                async with session.get(url) as response:
                    body = await response.read()
                    try:
                        text = body.decode("utf-8")
                    except UnicodeDecodeError as exc:
                        raise InvalidInput(f"{url}: the answer is not UTF-8 text: {exc}") from exc
                    if response.status == 429 or response.status >= 500:
                        raise _Transient(f"HTTP {response.status}")
                    if response.status != 200:
                        raise InvalidInput(f"{url}: HTTP {response.status}: {text[:200]}")
                    return str(text)
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise _Transient(f"{type(exc).__name__}: {exc}") from exc

        try:
            await breaker.before_call()
        except CircuitOpenError:
            return
        try:
            text = await retry(fetch, attempts=settings.retry_attempts, retry_on=(_Transient,))
            rows = parse_fred_csv(text, [source_id], origin=url)
        except Exception as exc:  # any bad answer fails this series only, never the task
            self.last_error = f"{name}: {exc}"
            self.ctx.log.warning("macro_download_failed", series=name, url=url, error=str(exc))
            await breaker.record_failure(str(exc))
            return
        await breaker.record_success()
        now = self.ctx.clock.now_ns()
        known = self.latest.get(name)
        fresh = [r for r in rows if known is None or r.date.isoformat() > known.date]
        await self._publish(
            [
                MacroObservation(
                    series=name,
                    source_id=source_id,
                    date=r.date.isoformat(),
                    value=r.value,
                    available_ts_ns=now,
                )
                for r in fresh[-1:]  # the newest: history before it is not news
            ]
        )

    # -- publication, staleness ------------------------------------------------------------------
    def _known(self, observation: MacroObservation) -> bool:
        latest = self.latest.get(observation.series)
        return latest is not None and observation.date <= latest.date

    async def _publish(self, observations: list[MacroObservation]) -> None:
        new: list[MacroObservation] = []
        for observation in observations:
            if self._known(observation):  # also a date listed twice in one answer
                continue
            new.append(observation)
            await self.ctx.publish(
                channels.MACRO_DATA, observation, key=f"{observation.series}:{observation.date}"
            )
            self.latest[observation.series] = observation
            self.published += 1
            if observation.series in self.stale:
                self.stale.discard(observation.series)
                self.ctx.log.info("macro_series_fresh", series=observation.series)
        if not new:
            return
        rows = [
            {
                "series": o.series,
                "source_id": o.source_id,
                "date": o.date,
                "value": o.value,
                "available_ts_ns": o.available_ts_ns,
            }
            for o in new
        ]
        statement = self._insert
        try:
            await self.ctx.store.write(lambda conn: conn.execute(statement, rows))  # type: ignore[union-attr]
        except StoreError as exc:  # published all the same; stored at the next start
            self.ctx.log.error("macro_store_failed", error=str(exc))

    async def _check_stale(self, now: int) -> None:
        for name in self.config.series:
            latest = self.latest.get(name)
            since = latest.available_ts_ns if latest else self.started_ns
            silent = now - since
            if name in self.stale or silent <= self.stale_ns:
                continue
            self.stale.add(name)
            last_date = latest.date if latest else None
            await self.ctx.publish(
                channels.MACRO_DATA,
                MacroSeriesStale(series=name, last_date=last_date, silent_s=silent // NS_PER_S),
            )
            await self.ctx.alert(
                "macro_stale",
                f"{name}: no new value for {silent // 3600 // NS_PER_S} h "
                f"(last {last_date or 'never'}, known since {format_ts(since)})",
                severity="medium",
                labels={"series": name},
            )

    async def _republish_stored(self) -> None:
        """After a restart: the newest stored value of each series, so consumers know it."""
        o = m.observations
        newest = (
            select(o.c.series, func.max(o.c.date).label("date")).group_by(o.c.series).subquery()
        )
        query = select(o).join(
            newest, (o.c.series == newest.c.series) & (o.c.date == newest.c.date)
        )

        def read(conn: Connection) -> list[Any]:
            return list(conn.execute(query).mappings())

        for row in await self.ctx.store.read(read):  # type: ignore[union-attr]
            if row["series"] not in self.config.series:
                continue
            observation = MacroObservation(
                series=row["series"],
                source_id=row["source_id"],
                date=row["date"],
                value=row["value"],
                available_ts_ns=row["available_ts_ns"],
            )
            self.latest[observation.series] = observation
            await self.ctx.publish(channels.MACRO_DATA, observation)

    async def _breaker_changed(
        self, name: str, previous: BreakerState, current: BreakerState, reason: str
    ) -> None:
        await self.ctx.announce_breaker(name, previous, current, reason)

    def health(self) -> PluginHealth:
        details: dict[str, Any] = {
            "source": self.config.source,
            "published": self.published,
            "pending": len(self.pending),
            "latest": {
                name: {"date": o.date, "value": str(o.value)} for name, o in self.latest.items()
            },
            "stale": sorted(self.stale),
            "last_error": self.last_error,
        }
        if self.breakers:
            details["breakers"] = {name: b.state for name, b in self.breakers.items()}
        degraded = bool(self.stale) or any(b.state != "closed" for b in self.breakers.values())
        return PluginHealth(status="degraded" if degraded else "ok", details=details)
