"""``/metrics``: the node in Prometheus's text format (prometheus-client).

Where each family comes from:

- read from the bus when scraped: ``corec_events_published_total{channel}``,
  ``corec_events_delivered_total{channel}``, ``corec_dead_letters_total{channel}``,
  ``corec_requests_total{endpoint}``, ``corec_request_errors_total{endpoint}``,
  ``corec_handler_latency_seconds{channel,group}`` (histogram, from
  :mod:`corec.core.metrics`);
- asked of the plugins when scraped (skipped when a plugin is not enabled):
  ``corec_exchange_request_latency_ms{exchange,market,quantile}`` (p50/p95 over the
  recent window), ``corec_exchange_errors_total{exchange,market,kind}``,
  ``corec_exchange_breaker_state{exchange,market}`` from ``exchange_sync.health``; the
  pool's ``corec_pool_nav_usd``, ``corec_pool_nav_per_unit``,
  ``corec_pool_allocated_ratio`` from ``capital_pool.state``;
- counted from the events the API sees (since it started):
  ``corec_breaker_state{breaker}`` (0 closed, 1 half-open, 2 open),
  ``corec_alerts_total{severity,state}``, ``corec_notifications_total{receiver,outcome}``,
  ``corec_node_mode{mode}`` (1 for the current mode);
- the process collectors of prometheus-client (CPU, memory, open files).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from corec.core import channels
from corec.core.bus import Bus
from corec.core.errors import BusError
from corec.core.events import Event
from corec.core.notices import NODE_MODES, BreakerStateChanged, ModeChanged
from corec.messages import alert_data, capital_data, exchange_data

BREAKER_VALUE = {"closed": 0, "half_open": 1, "open": 2}
NS_PER_S = Decimal(1_000_000_000)


def _seconds(ns: int) -> float:
    # prometheus-client's families take float samples: the text format has no decimals.
    return float(Decimal(ns) / NS_PER_S)


class BusCollector(Collector):
    """Bus counters and handler latency, read when scraped."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    def collect(self) -> Iterator[Metric]:
        """The families listed in the module docstring's first group."""
        stats = self.bus.stats
        for name, doc, values, label in (
            ("corec_events_published", "Events published, by channel", stats.published, "channel"),
            (
                "corec_events_delivered",
                "Handler calls that returned, by channel",
                stats.delivered,
                "channel",
            ),
            (
                "corec_dead_letters",
                "Handler calls that raised, by channel",
                stats.dead_letters,
                "channel",
            ),
            ("corec_requests", "Requests served, by endpoint", stats.requests, "endpoint"),
            (
                "corec_request_errors",
                "Requests failed or timed out, by endpoint",
                stats.request_errors,
                "endpoint",
            ),
        ):
            family = CounterMetricFamily(name, doc, labels=[label])
            for key, value in sorted(values.items()):
                family.add_metric([key], value)
            yield family
        histogram = HistogramMetricFamily(
            "corec_handler_latency_seconds",
            "Handler call latency on the bus, by channel and consumer group",
            labels=["channel", "group"],
        )
        for (channel, group), latency in sorted(self.bus.handler_latency().items()):
            buckets = [
                ("+Inf" if bound is None else repr(_seconds(bound)), count)
                for bound, count in latency.cumulative()
            ]
            histogram.add_metric([channel, group], buckets, _seconds(latency.sum_ns))
        yield histogram


class SnapshotCollector(Collector):
    """Figures asked of plugins just before a scrape (see :meth:`Metrics.refresh`)."""

    def __init__(self) -> None:
        self.families: list[Metric] = []

    def collect(self) -> Iterator[Metric]:
        """The families built by the last refresh."""
        yield from self.families


class Metrics:
    """The API's registry: bus collectors, plugin snapshots, event counters.

    Args:
        bus: the node's bus (requests at scrape time, counters).
        timeout_s: how long a scrape waits for each plugin's figures.
    """

    def __init__(self, bus: Bus, timeout_s: int = 2) -> None:
        self.bus = bus
        self.timeout_s = timeout_s
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(BusCollector(bus))
        self.snapshot = SnapshotCollector()
        self.registry.register(self.snapshot)
        self.registry.register(ProcessCollector(registry=None))
        self.breakers = Gauge(
            "corec_breaker_state",
            "Circuit breaker state seen on system: 0 closed, 1 half-open, 2 open",
            ["breaker"],
            registry=self.registry,
        )
        self.alerts = Counter(
            "corec_alerts",
            "Alerts classified by the alert manager (firings and resolutions), by severity and state",
            ["severity", "state"],
            registry=self.registry,
        )
        self.notifications = Counter(
            "corec_notifications",
            "Notification delivery attempts, by receiver and outcome",
            ["receiver", "outcome"],
            registry=self.registry,
        )
        self.mode = Gauge(
            "corec_node_mode", "1 for the node's current mode", ["mode"], registry=self.registry
        )

    def observe(self, event: Event) -> None:
        """A bus handler: count the events the metrics follow (never raises)."""
        payload = event.payload
        if event.channel == channels.SYSTEM:
            if isinstance(payload, BreakerStateChanged):
                self.breakers.labels(payload.breaker).set(BREAKER_VALUE.get(payload.current, 0))
            elif isinstance(payload, ModeChanged):
                self.set_mode(payload.current)
        elif event.channel == channels.ALERT_DATA:
            if isinstance(payload, alert_data.AlertRecorded) and not payload.deduplicated:
                self.alerts.labels(payload.severity, payload.state).inc()
            elif isinstance(payload, alert_data.NotificationAttempted):
                self.notifications.labels(payload.receiver, payload.outcome).inc()

    def set_mode(self, mode: str) -> None:
        """Mark ``mode`` as the current one."""
        for each in NODE_MODES:
            self.mode.labels(each).set(1 if each == mode else 0)

    async def refresh(self) -> None:
        """Ask the plugins for the figures of :class:`SnapshotCollector` (concurrently;
        a plugin that is not enabled or does not answer in time is left out)."""
        health, pool = await asyncio.gather(
            self._ask(exchange_data.HEALTH, exchange_data.ExchangeHealthRequest()),
            self._ask(capital_data.STATE, capital_data.PoolStateRequest()),
        )
        families: list[Metric] = []
        if isinstance(health, exchange_data.ExchangeHealthReport):
            families.extend(exchange_families(health))
        if isinstance(pool, capital_data.PoolState):
            families.extend(pool_families(pool))
        self.snapshot.families = families

    async def _ask(self, endpoint: str, request: Any) -> Any:
        try:
            return await self.bus.request(endpoint, request, timeout_s=self.timeout_s)
        except BusError:
            return None

    async def render(self) -> bytes:
        """The exposition text (refreshes the plugin figures first)."""
        await self.refresh()
        return generate_latest(self.registry)


def exchange_families(report: exchange_data.ExchangeHealthReport) -> list[Metric]:
    """Exchange request latency, errors and breaker state from ``exchange_sync.health``."""
    latency = GaugeMetricFamily(
        "corec_exchange_request_latency_ms",
        "Exchange request latency over the recent window (ms), by quantile",
        labels=["exchange", "market", "quantile"],
    )
    errors = CounterMetricFamily(
        "corec_exchange_errors",
        "Exchange request errors by kind",
        labels=["exchange", "market", "kind"],
    )
    breaker = GaugeMetricFamily(
        "corec_exchange_breaker_state",
        "Exchange breaker: 0 closed, 1 half-open, 2 open",
        labels=["exchange", "market"],
    )
    for row in report.items:
        for quantile, value in (("0.5", row.latency_p50_ms), ("0.95", row.latency_p95_ms)):
            if value is not None:
                latency.add_metric([row.exchange, row.market, quantile], float(value))
        for kind, count in sorted(row.errors.items()):
            errors.add_metric([row.exchange, row.market, kind], count)
        breaker.add_metric([row.exchange, row.market], BREAKER_VALUE.get(row.breaker, 0))
    return [latency, errors, breaker]


def pool_families(pool: capital_data.PoolState) -> list[Metric]:
    """NAV, NAV per unit, units and allocated ratio from ``capital_pool.state``."""
    ratio = pool.allocated_usd / pool.nav_usd if pool.nav_usd > 0 else Decimal(0)
    out: list[Metric] = []
    for name, doc, value in (
        ("corec_pool_nav_usd", "Pool net asset value (USD)", pool.nav_usd),
        ("corec_pool_nav_per_unit", "Pool NAV per unit (USD)", pool.nav_per_unit),
        ("corec_pool_units", "Units outstanding", pool.units),
        ("corec_pool_cash_usd", "Pool cash not allocated (USD)", pool.cash_usd),
        ("corec_pool_allocated_ratio", "Allocated capital / NAV", ratio),
    ):
        out.append(GaugeMetricFamily(name, doc, value=float(value)))
    return out
