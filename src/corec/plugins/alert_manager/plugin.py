"""alert_manager plugin: ``alerts`` plus rules over ``trading_results`` and
``capital_data`` → classified, deduplicated alerts in the log, the ``alerts`` table
and ``alert_data``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import bindparam, func, insert, select, update

from corec.core import channels, money
from corec.core.errors import InvalidEvent
from corec.core.events import Event
from corec.core.notices import SEVERITIES, Alert
from corec.core.plugin import Plugin, PluginContext, PluginHealth
from corec.core.store import Store
from corec.messages.alert_data import AlertRecorded
from corec.messages.capital_data import WithdrawalRecorded
from corec.messages.trading_results import TradeClosed
from corec.plugins.alert_manager import models as m
from corec.plugins.alert_manager.config import AlertManagerConfig
from corec.plugins.alert_manager.manager import LOG_LEVEL_BY_SEVERITY, Deduplicator

alert_log = structlog.get_logger("corec.alerts")
_REPEAT = update(m.alerts).where(m.alerts.c.alert_id == bindparam("key_alert_id"))


class AlertManagerPlugin(Plugin):
    """Every alert of the node, classified, deduplicated, logged and stored."""

    name = "alert_manager"
    Config = AlertManagerConfig
    consumes = (channels.ALERTS, channels.TRADING_RESULTS, channels.CAPITAL_DATA)
    publishes = (channels.ALERT_DATA,)
    migrations = Path(__file__).parent / "migrations"
    status_key = "alerts"

    config: AlertManagerConfig

    async def start(self, ctx: PluginContext) -> None:
        assert ctx.store is not None
        self.ctx = ctx
        self.dedup = Deduplicator(self.config)
        self.received = 0
        self.recorded = 0
        self.deduplicated = 0
        await self._restore_firings()
        ctx.subscribe(channels.ALERTS, self._on_alert)
        ctx.subscribe(channels.TRADING_RESULTS, self._on_trading_result)
        ctx.subscribe(channels.CAPITAL_DATA, self._on_capital_data)

    async def _restore_firings(self) -> None:
        since = self.ctx.clock.now_ns() - self.dedup.ttl_ns
        query = (
            select(
                m.alerts.c.fingerprint,
                m.alerts.c.alert_id,
                m.alerts.c.first_ts_ns,
                m.alerts.c.occurrences,
            )
            .where(m.alerts.c.first_ts_ns >= since)
            .order_by(m.alerts.c.first_ts_ns)
        )
        rows = await self.ctx.store.read(lambda conn: conn.execute(query).all())  # type: ignore[union-attr]
        for fp, alert_id, first_ts_ns, occurrences in rows:
            self.dedup.restore(fp, alert_id, first_ts_ns, occurrences)

    # -- sources ------------------------------------------------------------------------
    async def _on_alert(self, event: Event) -> None:
        if not isinstance(event.payload, Alert):
            raise InvalidEvent(f"alerts carries {type(event.payload).__name__}, expected Alert")
        await self.record(event.payload, event.source, event.ts_ns)

    async def _on_trading_result(self, event: Event) -> None:
        trade = event.payload
        if not isinstance(trade, TradeClosed) or trade.realized_pnl_usd >= 0:
            return
        loss = -trade.realized_pnl_usd
        severity = self.config.trade_loss_usd.classify(loss)
        if severity is None:
            return
        alert = Alert(
            name="trade_loss",
            severity=severity,
            message=(
                f"{trade.strategy} lost {loss.quantize(money.CENT)} USD on {trade.side} {trade.symbol} "
                f"({trade.exit_reason}; entry {trade.entry_price}, exit {trade.exit_price})"
            ),
            labels={"strategy": trade.strategy, "symbol": trade.symbol, "trade_id": trade.trade_id},
        )
        await self.record(alert, event.source, event.ts_ns)

    async def _on_capital_data(self, event: Event) -> None:
        flow = event.payload
        if not isinstance(flow, WithdrawalRecorded):
            return
        severity = self.config.withdrawal_usd.classify(flow.amount_usd)
        if severity is None:
            return
        alert = Alert(
            name="large_withdrawal",
            severity=severity,
            message=f"{flow.member} withdrew {flow.amount_usd} USD ({flow.units} units)",
            labels={"member": flow.member, "withdrawal_id": flow.withdrawal_id},
        )
        await self.record(alert, event.source, event.ts_ns)

    # -- recording ---------------------------------------------------------------------
    async def record(self, alert: Alert, source: str, ts_ns: int) -> None:
        """Classify, deduplicate, log, store and publish one alert."""
        self.received += 1
        decision = self.dedup.decide(alert, ts_ns)
        store = self.ctx.store
        assert store is not None
        if decision.duplicate:
            params = {
                "key_alert_id": decision.alert_id,
                "last_ts_ns": ts_ns,
                "occurrences": decision.occurrences,
            }
            await store.write(lambda conn: conn.execute(_REPEAT, params))
        else:
            row = {
                "alert_id": decision.alert_id,
                "fingerprint": decision.fingerprint,
                "name": alert.name,
                "severity": decision.severity,
                "source": source,
                "labels_json": json.dumps(alert.labels, sort_keys=True),
                "message": alert.message,
                "first_ts_ns": ts_ns,
                "last_ts_ns": ts_ns,
                "occurrences": 1,
            }
            await store.write(lambda conn: conn.execute(insert(m.alerts), row))
        if decision.duplicate:
            self.deduplicated += 1
        else:
            self.recorded += 1
            level = LOG_LEVEL_BY_SEVERITY[decision.severity]
            getattr(alert_log, level)(
                alert.message,
                alert=alert.name,
                severity=decision.severity,
                source=source,
                **alert.labels,
            )
        await self.ctx.publish(
            channels.ALERT_DATA,
            AlertRecorded(
                alert_id=decision.alert_id,
                fingerprint=decision.fingerprint,
                name=alert.name,
                severity=decision.severity,
                source=source,
                message=alert.message,
                labels=dict(alert.labels),
                occurrences=decision.occurrences,
                deduplicated=decision.duplicate,
            ),
            key=decision.alert_id,
        )

    def health(self) -> PluginHealth:
        return PluginHealth(
            details={
                "received": self.received,
                "recorded": self.recorded,
                "deduplicated": self.deduplicated,
            }
        )

    @classmethod
    async def read_status(cls, store: Store | None, config: AlertManagerConfig) -> dict[str, Any]:  # type: ignore[override]
        by_severity = dict.fromkeys(SEVERITIES, 0)
        if store is not None:
            query = select(m.alerts.c.severity, func.count()).group_by(m.alerts.c.severity)
            for severity, count in await store.read(lambda conn: conn.execute(query).all()):
                by_severity[severity] = count
        return {"total": sum(by_severity.values()), "by_severity": by_severity}


async def list_alerts(
    store: Store, *, severity: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Stored alerts, newest first, optionally of one severity."""
    query = (
        select(m.alerts)
        .order_by(m.alerts.c.first_ts_ns.desc(), m.alerts.c.alert_id.desc())
        .limit(limit)
    )
    if severity is not None:
        query = query.where(m.alerts.c.severity == severity)
    rows = await store.read(lambda conn: conn.execute(query).mappings().all())
    return [{**dict(r), "labels": json.loads(r["labels_json"])} for r in rows]
