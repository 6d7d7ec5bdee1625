"""Cheap latency histograms the core keeps for Prometheus (read at scrape time).

The bus times every handler call. A prometheus-client ``Histogram.observe`` per call
would cost more than the memory bus's whole delivery, so the hot path only bumps a
bucket counter here; the API's ``/metrics`` turns these into Prometheus histograms
(``HistogramMetricFamily``) when scraped.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Final

HANDLER_BUCKETS_NS: Final[tuple[int, ...]] = (
    10_000,  # 10 µs
    50_000,
    100_000,
    500_000,
    1_000_000,  # 1 ms
    5_000_000,
    10_000_000,
    50_000_000,
    100_000_000,
    500_000_000,
    1_000_000_000,  # 1 s
    5_000_000_000,
)
"""Upper bounds (ns, inclusive) of the handler latency buckets; one more bucket above."""


class LatencyHistogram:
    """Counts of observations per bucket, their sum and number.

    Args:
        bounds_ns: increasing upper bounds in nanoseconds.

    Attributes:
        counts: per bucket (not cumulative), ``len(bounds_ns) + 1`` long: the last
            bucket is ``+Inf``.
        sum_ns: total of the observations (ns). count: their number.
    """

    __slots__ = ("bounds_ns", "count", "counts", "sum_ns")

    def __init__(self, bounds_ns: tuple[int, ...] = HANDLER_BUCKETS_NS) -> None:
        self.bounds_ns = bounds_ns
        self.counts = [0] * (len(bounds_ns) + 1)
        self.sum_ns = 0
        self.count = 0

    def observe(self, elapsed_ns: int) -> None:
        """Count one observation of ``elapsed_ns`` nanoseconds."""
        self.counts[bisect_left(self.bounds_ns, elapsed_ns)] += 1
        self.sum_ns += elapsed_ns
        self.count += 1

    def cumulative(self) -> list[tuple[int | None, int]]:
        """``[(bound_ns, observations <= bound), ..., (None, count)]`` (``None`` = +Inf)."""
        out: list[tuple[int | None, int]] = []
        running = 0
        for bound, n in zip(self.bounds_ns, self.counts, strict=False):
            running += n
            out.append((bound, running))
        out.append((None, self.count))
        return out
