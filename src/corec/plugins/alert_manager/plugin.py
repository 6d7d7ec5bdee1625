"""alert_manager plugin: every alert of the node, with Prometheus Alertmanager's
semantics, delivered through Apprise.

Flow::

    alerts ───────────────┐
    other channels ─rules─┴─► engine (fingerprint, dedup, silences, inhibition, routes,
                                      groups) ─► outbox per receiver ─► Apprise / log
                               │                                    └─► fallback file
                               └─► alerts table (written behind), alert_data

- Sources: the ``alerts`` channel, plus the YAML rules (:mod:`.rules`) over the channels
  they name.
- The engine (:mod:`.engine`) decides; it is pure and runs on the node clock, so a
  replay groups and repeats the same way every run.
- Notifications go to a persisted outbox (:mod:`.outbox`) and are sent by one worker per
  receiver (:mod:`.delivery`): the bus never waits for a webhook.
- Silences and acknowledgements written by the CLI are picked up within
  ``SYNC_INTERVAL_S``; those made through the query endpoints (``alert_manager.ack``,
  ``alert_manager.silence``, ``alert_manager.unsilence``, see :mod:`.queries`) apply at
  once, as :meth:`AlertManagerPlugin.ack` and friends do.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import func, select

from corec.core import channels
from corec.core.clock import NS_PER_S
from corec.core.errors import ConfigError, InvalidEvent
from corec.core.events import Event
from corec.core.ids import new_id
from corec.core.notices import SEVERITIES, Alert, BreakerState
from corec.core.plugin import Plugin, PluginContext, PluginHealth
from corec.core.store import Store
from corec.messages.alert_data import (
    ACK,
    ALERTS,
    SILENCE,
    SILENCES,
    UNSILENCE,
    AlertAcknowledged,
    AlertExpired,
    AlertRecorded,
    NotificationAttempted,
    SilenceChanged,
)
from corec.plugins.alert_manager import models as m
from corec.plugins.alert_manager import records
from corec.plugins.alert_manager.config import LOG_RECEIVER, AlertManagerConfig
from corec.plugins.alert_manager.delivery import AttemptOutcome, Dispatcher
from corec.plugins.alert_manager.engine import AlertEngine
from corec.plugins.alert_manager.queries import AlertQueries
from corec.plugins.alert_manager.receivers import resolve_receivers
from corec.plugins.alert_manager.routing import build_route
from corec.plugins.alert_manager.rules import RuleError, RuleSet, load_rules
from corec.plugins.alert_manager.types import Matcher, Silence

alert_log = structlog.get_logger("corec.alerts")
LOG_LEVEL_BY_SEVERITY = {
    "critical": "critical",
    "high": "error",
    "medium": "warning",
    "low": "info",
}
SYNC_INTERVAL_S = 2.0
"""How often a running node reads silences and acks the CLI wrote."""
WRITE_BEHIND_S = 0.25
"""Alert rows are written at most this long after they changed (or at 2,000 rows)."""
WRITE_BEHIND_ROWS = 2_000
TICK_MAX_S = 1.0


def load_ruleset(config: AlertManagerConfig) -> RuleSet:
    """The shipped and configured rules with ``params`` applied.

    Raises:
        ConfigError: a rule file is invalid (the message names file, line and reason).
    """
    try:
        return load_rules(
            config.rules_files, shipped=config.shipped_rules, params=dict(config.params)
        )
    except RuleError as exc:
        raise ConfigError(f"alert_manager rules: {exc}") from exc


def build_engine(config: AlertManagerConfig) -> AlertEngine:
    """An :class:`AlertEngine` for ``config`` (routes, inhibitions, resolve timeout)."""
    send_resolved = {r.name: r.send_resolved for r in config.receivers}
    send_resolved[LOG_RECEIVER] = True
    return AlertEngine(
        route=build_route(config.route),
        inhibit_rules=[r.rule() for r in config.inhibit_rules],
        resolve_timeout_s=config.resolve_timeout_s,
        send_resolved=send_resolved,
    )


def fallback_path(config: AlertManagerConfig, data_dir: Path) -> Path:
    """The fallback file: ``fallback_file`` under ``data_dir`` when relative."""
    path = config.fallback_file
    return path if path.is_absolute() else data_dir / path


class AlertManagerPlugin(Plugin):
    """Every alert of the node: classified by rules, deduplicated by fingerprint,
    grouped, silenced or inhibited, routed, stored and delivered."""

    name = "alert_manager"
    Config = AlertManagerConfig
    consumes = (
        channels.ALERTS,
        channels.TRADING_RESULTS,
        channels.CAPITAL_DATA,
        channels.MACRO_DATA,
        channels.SETTLEMENT_DATA,
        channels.SYSTEM,
        channels.DEAD_LETTER,
    )
    publishes = (channels.ALERT_DATA,)
    serves = (ALERTS, ACK, SILENCE, SILENCES, UNSILENCE)
    migrations = Path(__file__).parent / "migrations"
    status_key = "alerts"

    config: AlertManagerConfig

    async def start(self, ctx: PluginContext) -> None:
        assert ctx.store is not None
        self.ctx = ctx
        self.store: Store = ctx.store
        self.rules = load_ruleset(self.config)
        self.engine = build_engine(self.config)
        self.writer = records.AlertWriter(self.store)
        self.received = 0
        self.recorded = 0
        self.deduplicated = 0
        self.resolved = 0
        self.muted = 0
        self.notifications = 0
        self.outcomes: dict[str, int] = {}
        self._last_write_ns = 0
        self._last_sync_ns = 0
        self._tick_lock = asyncio.Lock()
        now_ns = ctx.clock.now_ns()
        firing = records.instances_from(await records.firing_rows(self.store))
        since_ns = min((i.starts_ts_ns for i in firing), default=None)
        self.engine.restore(
            firing,
            await records.load_silences(self.store, now_ns=now_ns),
            await records.load_acks(self.store),
            notified=(
                None
                if since_ns is None
                else await records.notified_times(self.store, since_ns=since_ns)
            ),
        )
        self.dispatcher = Dispatcher(
            self.store,
            resolve_receivers(self.config.receivers),
            self.config.delivery,
            fallback_file=fallback_path(self.config, ctx.config.node.data_dir),
            on_attempt=self._on_attempt,
            on_breaker_change=self._on_breaker_change,
            now_ns=ctx.clock.now_ns,
        )
        await self.dispatcher.start()
        ctx.subscribe(channels.ALERTS, self._on_alert)
        for channel in sorted(self.rules.channels()):
            ctx.subscribe(channel, self._on_rule_event)
        ctx.spawn("timer", self._timer)
        self.queries = AlertQueries(self)
        ctx.serve(ALERTS, self.queries.alerts)
        ctx.serve(ACK, self.queries.ack)
        ctx.serve(SILENCE, self.queries.silence)
        ctx.serve(SILENCES, self.queries.silences)
        ctx.serve(UNSILENCE, self.queries.unsilence)

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self._tick(self.ctx.clock.now_ns())
        await self.writer.flush()
        await self.dispatcher.stop()

    # -- sources ---------------------------------------------------------------------
    async def _on_alert(self, event: Event) -> None:
        if not isinstance(event.payload, Alert):
            raise InvalidEvent(f"alerts carries {type(event.payload).__name__}, expected Alert")
        await self.receive(event.payload, event.source, event.ts_ns)

    async def _on_rule_event(self, event: Event) -> None:
        for alert in self.rules.evaluate(event.channel, event.payload):
            await self.receive(alert, event.source, event.ts_ns)

    # -- the alert path ---------------------------------------------------------------
    async def receive(self, alert: Alert, source: str, ts_ns: int) -> AlertRecorded | None:
        """Classify, deduplicate, record, log and publish one alert; notifications that
        became due are queued for delivery. Returns what was published (``None`` for a
        resolution of an alert that was not firing)."""
        self.received += 1
        got = self.engine.receive(alert, source, ts_ns)
        instance = got.instance
        if instance is None:  # resolves nothing that fires
            return None
        state = "resolved" if got.resolved else "firing"
        self.writer.record(records.alert_row(instance, state, got.muted_by), new=got.new_firing)
        if got.duplicate:
            self.deduplicated += 1
        else:
            self.recorded += int(got.new_firing)
            self.resolved += int(got.resolved)
            level = LOG_LEVEL_BY_SEVERITY[instance.severity] if not got.resolved else "info"
            getattr(alert_log, level)(
                instance.message,
                alert=instance.name,
                alert_id=instance.alert_id,
                severity=instance.severity,
                state=state,
                source=source,
                muted_by=got.muted_by,
                # labels nested: a label may be named like a field above (macro_risk's
                # ``state``), and a clash would make the log call raise
                labels=dict(instance.labels),
            )
        self.muted += int(got.muted_by is not None)
        recorded = AlertRecorded(
            alert_id=instance.alert_id,
            fingerprint=instance.fingerprint,
            name=instance.name,
            severity=instance.severity,
            source=source,
            message=instance.message,
            labels=dict(instance.labels),
            occurrences=instance.occurrences,
            deduplicated=got.duplicate,
            state=state,
            muted_by=got.muted_by,
        )
        await self.ctx.publish(channels.ALERT_DATA, recorded, key=instance.alert_id)
        due = self.engine.next_flush_ns()
        if (due is not None and due <= ts_ns) or len(self.writer) >= WRITE_BEHIND_ROWS:
            await self._tick(ts_ns)
        return recorded

    async def _tick(self, now_ns: int) -> None:
        """Expire stale firings, queue due notifications, write alert rows behind."""
        async with self._tick_lock:
            for instance in self.engine.expire(now_ns):
                ended = replace(instance, ends_ts_ns=now_ns)  # expired at now_ns
                self.writer.record(records.alert_row(ended, "expired", None), new=False)
                await self.ctx.publish(
                    channels.ALERT_DATA,
                    AlertExpired(
                        alert_id=instance.alert_id,
                        fingerprint=instance.fingerprint,
                        name=instance.name,
                        severity=instance.severity,
                        ends_ts_ns=now_ns,
                    ),
                    key=instance.alert_id,
                )
            for note in self.engine.flush(now_ns):
                self.notifications += 1
                await self.dispatcher.enqueue(note)
            if (
                len(self.writer) >= WRITE_BEHIND_ROWS
                or now_ns - self._last_write_ns >= WRITE_BEHIND_S * NS_PER_S
            ):
                self._last_write_ns = now_ns
                await self.writer.flush()

    async def _timer(self) -> None:
        """Tick on the node clock; read the CLI's silences and acks now and then."""
        while not self.ctx.stopping.is_set():
            now_ns = self.ctx.clock.now_ns()
            await self._tick(now_ns)
            if now_ns - self._last_sync_ns >= SYNC_INTERVAL_S * NS_PER_S:
                self._last_sync_ns = now_ns
                await self._sync_from_store(now_ns)
            due = min(
                (t for t in (self.engine.next_flush_ns(), self.engine.next_expiry_ns()) if t),
                default=None,
            )
            wait_s = TICK_MAX_S if due is None else (due - now_ns) / NS_PER_S
            if await self.ctx.sleep(min(max(wait_s, 0.05), TICK_MAX_S)):
                return

    async def _sync_from_store(self, now_ns: int) -> None:
        known = {s.silence_id for s in self.engine.silences()}
        for silence in await records.load_silences(self.store):
            if silence.silence_id not in known:
                self.engine.add_silence(silence)
            elif silence.expired_ts_ns is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self.engine.expire_silence(silence.silence_id, silence.expired_ts_ns)
        for alert_id, (ts_ns, by) in (await records.load_acks(self.store)).items():
            with contextlib.suppress(KeyError, ValueError):
                self.engine.ack(alert_id, by, ts_ns)

    async def _on_breaker_change(
        self, breaker: str, previous: BreakerState, current: BreakerState, reason: str
    ) -> None:
        receiver = breaker.removeprefix(f"{self.name}.")
        await self.ctx.announce_breaker(
            breaker,
            previous,
            current,
            reason,
            subject=f"receiver {receiver}",
            labels={"receiver": receiver},
        )

    async def _on_attempt(self, attempt: AttemptOutcome) -> None:
        self.outcomes[attempt.outcome] = self.outcomes.get(attempt.outcome, 0) + 1
        await self.ctx.publish(
            channels.ALERT_DATA,
            NotificationAttempted(
                notification_id=attempt.notification_id,
                receiver=attempt.receiver,
                attempt=attempt.attempt,
                outcome=attempt.outcome,  # type: ignore[arg-type]
                severity=attempt.severity,  # type: ignore[arg-type]
                alert_ids=list(attempt.alert_ids),
                error=attempt.error,
                retry_after_s=attempt.retry_after_s,
                duration_ms=attempt.duration_ms,
            ),
            key=attempt.notification_id,
        )

    # -- operator actions (CLI through the store; API in-process) ------------------------
    async def ack(self, alert_id: str, by: str) -> dict[str, Any]:
        """Acknowledge an alert: stored, applied and published.

        Raises:
            KeyError: no alert has this id.
        """
        now_ns = self.ctx.clock.now_ns()
        await self.writer.flush()
        row = await records.ack_alert(self.store, alert_id, by, now_ns)
        with contextlib.suppress(KeyError, ValueError):
            self.engine.ack(alert_id, by, now_ns)
        await self.ctx.publish(
            channels.ALERT_DATA,
            AlertAcknowledged(alert_id=alert_id, by=by, ts_ns=now_ns),
            key=alert_id,
        )
        return row

    async def silence(
        self, matchers: list[str], duration_s: Decimal | int, *, by: str, comment: str = ""
    ) -> Silence:
        """Create a silence from now for ``duration_s``: stored, applied and published.

        Raises:
            ValueError: a malformed matcher or a duration that is not positive.
        """
        silence = new_silence(matchers, duration_s, self.ctx.clock.now_ns(), by, comment)
        await records.add_silence(self.store, silence, silence.starts_ts_ns)
        self.engine.add_silence(silence)
        await self.ctx.publish(channels.ALERT_DATA, silence_payload(silence))
        return silence

    async def unsilence(self, silence_id: str, *, by: str) -> Silence:
        """End a silence now: stored, applied and published (ending one that has ended
        already changes and publishes nothing and returns it as it is).

        Raises:
            KeyError: no silence has this id.
        """
        now_ns = self.ctx.clock.now_ns()
        ended = await records.expire_silence(self.store, silence_id, now_ns)
        if ended.expired_ts_ns != now_ns:
            return ended
        with contextlib.suppress(KeyError, ValueError):  # not known here yet: synced later
            self.engine.expire_silence(silence_id, now_ns)
        alert_log.info("silence_ended", silence_id=silence_id, by=by)
        await self.ctx.publish(channels.ALERT_DATA, silence_payload(ended))
        return ended

    async def flush_alerts(self) -> None:
        """Write the alert rows held behind now (under the tick's lock, so rows are
        written in the order they changed)."""
        async with self._tick_lock:
            await self.writer.flush()

    def health(self) -> PluginHealth:
        return PluginHealth(
            details={
                "received": self.received,
                "recorded": self.recorded,
                "deduplicated": self.deduplicated,
                "resolved": self.resolved,
                "muted": self.muted,
                "active": len(self.engine.active()),
                "notifications": self.notifications,
                "deliveries": dict(self.outcomes),
            }
        )

    @classmethod
    async def read_status(cls, store: Store | None, config: AlertManagerConfig) -> dict[str, Any]:  # type: ignore[override]
        by_severity = dict.fromkeys(SEVERITIES, 0)
        firing = 0
        pending = 0
        if store is not None:
            query = select(m.alerts.c.severity, func.count()).group_by(m.alerts.c.severity)
            for severity, count in await store.read(lambda conn: conn.execute(query).all()):
                by_severity[severity] = count
            firing_q = select(func.count()).where(m.alerts.c.state == "firing")
            firing = await store.read(lambda conn: conn.execute(firing_q).scalar_one())
            pending_q = select(func.count()).where(m.notifications.c.status == "pending")
            pending = await store.read(lambda conn: conn.execute(pending_q).scalar_one())
        return {
            "total": sum(by_severity.values()),
            "by_severity": by_severity,
            "firing": firing,
            "notifications_pending": pending,
        }


def new_silence(
    matchers: list[str], duration_s: Decimal | int, now_ns: int, by: str, comment: str = ""
) -> Silence:
    """A :class:`Silence` from ``now_ns`` for ``duration_s`` seconds (exact: whole
    nanoseconds, rounded down).

    Raises:
        ValueError: no matcher, a malformed matcher, or a duration that is not positive.
    """
    if not matchers:
        raise ValueError("a silence needs at least one matcher (LABEL=VALUE)")
    if duration_s <= 0:
        raise ValueError(f"a silence's duration must be positive, got {duration_s} s")
    return Silence(
        silence_id=new_id(),
        matchers=tuple(Matcher.parse(t) for t in matchers),
        starts_ts_ns=now_ns,
        ends_ts_ns=now_ns + int(Decimal(duration_s) * NS_PER_S),
        created_by=by,
        comment=comment,
    )


def silence_payload(silence: Silence) -> SilenceChanged:
    """``SilenceChanged`` for ``silence``."""
    return SilenceChanged(
        silence_id=silence.silence_id,
        matchers=[str(x) for x in silence.matchers],
        starts_ts_ns=silence.starts_ts_ns,
        ends_ts_ns=silence.ends_ts_ns,
        created_by=silence.created_by,
        comment=silence.comment,
        expired_ts_ns=silence.expired_ts_ns,
    )


list_alerts = records.list_alerts  # the CLI's and the API's reader
