"""One exchange's health, as stored in ``exchange_health`` and shown by ``corec exchanges``;
and each of its markets' request statistics (served by ``exchange_sync.health``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from corec.core.clock import format_ts
from corec.exchanges.request_stats import RequestStats


@dataclass
class ExchangeHealth:
    """What an exchange's polls and requests did, and its breaker's state.

    Fields:
        exchange: CoreC's exchange name.
        breaker_state: ``closed``, ``open`` or ``half_open``.
        mode: ``poll``, ``stream``, or ``poll (stream failing)``.
        polls, failed_polls: ticker polls (or stream reconnects) done / failed after
            retries; ``consecutive_failures`` counts the current run of failures.
        requests: HTTP/WebSocket calls issued; ``errors_by_kind`` counts the failed
            ones by CCXT error class.
        latency_p50_ms, latency_p95_ms: request latency percentiles over the last
            1000 requests, ms.
        tickers: tickers received.
        last_success_ts_ns: the last successful poll (node clock, UTC ns).
        last_error: the last poll's error message (never a credential).
        updated_ts_ns: when this was measured (node clock, UTC ns).
        sink_errors: results that could not be published or stored (bus or database
            failures; the schedule goes on). Not stored in ``exchange_health``.
    """

    exchange: str
    breaker_state: str = "closed"
    mode: str = "poll"
    polls: int = 0
    failed_polls: int = 0
    consecutive_failures: int = 0
    requests: int = 0
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    latency_p50_ms: Decimal | None = None
    latency_p95_ms: Decimal | None = None
    tickers: int = 0
    last_success_ts_ns: int | None = None
    last_error: str | None = None
    updated_ts_ns: int = 0
    sink_errors: int = 0

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict: Decimals as strings, timestamps as ISO-8601 UTC."""
        data = asdict(self)
        for key in ("latency_p50_ms", "latency_p95_ms"):
            data[key] = None if data[key] is None else str(data[key])
        data["errors"] = sum(self.errors_by_kind.values())
        data["last_success"] = format_ts(data.pop("last_success_ts_ns"))
        data["updated"] = format_ts(data.pop("updated_ts_ns"))
        return data


@dataclass
class MarketStats(RequestStats):
    """One exchange market's requests and polls (a row of ``exchange_sync.health``).

    Every request recorded here is recorded in ``parent`` too (the exchange's
    :class:`RequestStats`, behind :class:`ExchangeHealth`).

    Fields (beyond :class:`RequestStats`'):
        parent: the exchange's statistics.
        failed_polls: ticker polls of this market that failed after their retries.
        tickers: tickers received from this market.
        last_success_ts_ns: the last successful poll or stream update (node clock, UTC ns).
    """

    parent: RequestStats | None = None
    failed_polls: int = 0
    tickers: int = 0
    last_success_ts_ns: int | None = None
    _percentiles_at: int = -1
    _percentiles: tuple[Decimal | None, Decimal | None] = (None, None)

    def record(self, latency_ns: int | None, error_kind: str | None = None) -> None:
        """Count one request here and in :attr:`parent` (see :meth:`RequestStats.record`)."""
        super().record(latency_ns, error_kind)
        if self.parent is not None:
            self.parent.record(latency_ns, error_kind)

    def percentiles_ms(self) -> tuple[Decimal | None, Decimal | None]:
        """``(p50, p95)`` latency in ms (see :meth:`RequestStats.latency_ms`), computed
        again only after a new request, so reading health often costs nothing."""
        if self._percentiles_at != self.requests:
            self._percentiles = (self.latency_ms(50), self.latency_ms(95))
            self._percentiles_at = self.requests
        return self._percentiles
