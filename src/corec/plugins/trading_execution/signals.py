"""Signals from prices: one-minute closes, and the moving-average crossover.

:class:`MinuteCloses` turns ticks into one-minute closes. A minute ``(t-60 s, t]`` is
closed by the first tick after ``t``, or at once by a tick stamped exactly ``t`` (a
replayed bar is stamped at its close, so it closes its minute without waiting).

:class:`SmaCross` compares a fast and a slow simple moving average of those closes
(exact Decimal running sums) and reports a cross: ``long`` when the fast average
moves above the slow one, ``short`` when it moves below.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from typing import Literal

from corec.core.clock import NS_PER_S

MINUTE_NS = 60 * NS_PER_S
Signal = Literal["long", "short"]


class MinuteCloses:
    """Aggregate ticks into one-minute closes."""

    def __init__(self) -> None:
        self._end_ns: int | None = None
        self._close: Decimal | None = None
        self._emitted = False

    def add(self, ts_ns: int, price: Decimal) -> list[tuple[int, Decimal]]:
        """Feed one tick; return the minutes it closed as ``(minute_end_ns, close)``."""
        closed: list[tuple[int, Decimal]] = []
        end = -(-ts_ns // MINUTE_NS) * MINUTE_NS
        if self._end_ns is not None and end > self._end_ns:
            if not self._emitted and self._close is not None:
                closed.append((self._end_ns, self._close))
            self._emitted = False
        if self._end_ns is None or end > self._end_ns:
            self._end_ns = end
        elif end < self._end_ns:
            return closed  # a late tick of a minute already closed
        self._close = price
        if ts_ns == end and not self._emitted:
            closed.append((end, price))
            self._emitted = True
        return closed


class SmaCross:
    """Fast/slow simple moving-average crossover.

    Args:
        fast, slow: window lengths in closes (``fast < slow``).
    """

    def __init__(self, fast: int, slow: int) -> None:
        if not 1 <= fast < slow:
            raise ValueError(f"need 1 <= fast < slow, got fast={fast} slow={slow}")
        self.fast, self.slow = fast, slow
        self._closes: deque[Decimal] = deque(maxlen=slow)
        self._fast_sum = Decimal(0)
        self._slow_sum = Decimal(0)
        self._above: bool | None = None

    @property
    def ready(self) -> bool:
        """True once ``slow`` closes have been seen."""
        return len(self._closes) == self.slow

    def averages(self) -> tuple[Decimal, Decimal] | None:
        """(fast SMA, slow SMA) once ready."""
        if not self.ready:
            return None
        return self._fast_sum / self.fast, self._slow_sum / self.slow

    def on_close(self, close: Decimal) -> Signal | None:
        """Feed one close; return the cross it caused, if any."""
        closes = self._closes
        if len(closes) == self.slow:
            self._slow_sum -= closes[0]
        if len(closes) >= self.fast:
            self._fast_sum -= closes[-self.fast]
        closes.append(close)
        self._fast_sum += close
        self._slow_sum += close
        if not self.ready:
            return None
        # compare fast_sum/fast with slow_sum/slow without dividing
        above = self._fast_sum * self.slow > self._slow_sum * self.fast
        below = self._fast_sum * self.slow < self._slow_sum * self.fast
        if not above and not below:
            return None  # equal averages: no new side
        previous, self._above = self._above, above
        if previous is None or previous == above:
            return None
        return "long" if above else "short"
