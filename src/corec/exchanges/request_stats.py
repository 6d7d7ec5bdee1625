"""Per-exchange request statistics: latency percentiles and errors by kind."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal

LATENCY_WINDOW = 1000
"""Latencies kept for the percentiles (the most recent requests)."""

_MS_QUANTUM = Decimal("0.1")


@dataclass
class RequestStats:
    """What one exchange's HTTP requests did, across its markets.

    Fields:
        requests: requests issued (failed ones included).
        errors_by_kind: failed requests counted by the CCXT error class name
            (``RateLimitExceeded``, ``RequestTimeout``, ``AuthenticationError``…), or
            ``MalformedResponse`` for a body that is not the JSON the exchange sends.
        latencies_ns: the last :data:`LATENCY_WINDOW` request durations, ns
            (time to answer or to fail; a timeout counts its full wait).
    """

    requests: int = 0
    errors_by_kind: dict[str, int] = field(default_factory=dict)
    latencies_ns: deque[int] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))

    def record(self, latency_ns: int | None, error_kind: str | None = None) -> None:
        """Count one request that took ``latency_ns`` (``None``: not a latency, such as
        a WebSocket wait) and failed with ``error_kind`` (``None``: succeeded)."""
        self.requests += 1
        if latency_ns is not None:
            self.latencies_ns.append(latency_ns)
        if error_kind is not None:
            self.errors_by_kind[error_kind] = self.errors_by_kind.get(error_kind, 0) + 1

    @property
    def errors(self) -> int:
        """Failed requests of every kind."""
        return sum(self.errors_by_kind.values())

    def latency_ms(self, percentile: int) -> Decimal | None:
        """The ``percentile`` (0–100) of recent latencies in ms, to 0.1 ms; None if none.

        Nearest-rank method (the smallest value with at least ``percentile`` % of the
        samples at or below it), so the figure is always an observed latency.
        """
        if not 0 <= percentile <= 100:
            raise ValueError(f"percentile must be within 0..100, got {percentile}")
        if not self.latencies_ns:
            return None
        ordered = sorted(self.latencies_ns)
        rank = max(1, -(-percentile * len(ordered) // 100))  # ceil(p × n / 100)
        return (Decimal(ordered[rank - 1]) / Decimal(1_000_000)).quantize(_MS_QUANTUM)
