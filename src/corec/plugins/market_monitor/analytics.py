"""Per-instrument figures: mid, spread in bps, return over a window."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal

from corec.messages.exchange_data import Ticker

BPS = Decimal(10_000)
HUNDRED = Decimal(100)
TWO = Decimal(2)
BPS_QUANTUM = Decimal("0.0001")
PCT_QUANTUM = Decimal("0.0001")


def mid_price(bid: Decimal | None, ask: Decimal | None, last: Decimal | None) -> Decimal | None:
    """``(bid + ask) / 2`` when both exist, else ``last``."""
    if bid is not None and ask is not None:
        return (bid + ask) / TWO
    return last


def spread_bps(bid: Decimal | None, ask: Decimal | None) -> Decimal | None:
    """``(ask - bid) / mid × 10 000`` to 4 decimals; ``None`` without both sides."""
    if bid is None or ask is None:
        return None
    mid = (bid + ask) / TWO
    return ((ask - bid) / mid * BPS).quantize(BPS_QUANTUM)


@dataclass
class PriceWindow:
    """Prices of one instrument over the last ``window_ns``, for the window return.

    The reference price is the newest one at or before ``now - window``; the return
    is ``None`` until the window has filled.
    """

    window_ns: int
    points: deque[tuple[int, Decimal]] = field(default_factory=deque)

    def add(self, ts_ns: int, price: Decimal) -> Decimal | None:
        """Record ``price`` at ``ts_ns``; return ``(price / reference - 1) × 100`` or ``None``."""
        points = self.points
        points.append((ts_ns, price))
        boundary = ts_ns - self.window_ns
        while len(points) > 1 and points[1][0] <= boundary:
            points.popleft()
        ref_ts, ref_price = points[0]
        if ref_ts > boundary:
            return None
        return ((price / ref_price - 1) * HUNDRED).quantize(PCT_QUANTUM)

    def reference(self) -> tuple[int, Decimal]:
        """(timestamp, price) the return is measured from."""
        return self.points[0]


@dataclass
class InstrumentState:
    """What market_monitor remembers about one (exchange, market, symbol).

    ``last_ts_ns`` is the newest exchange timestamp seen (orders the tickers);
    ``last_received_ns`` when CoreC last heard from the venue (staleness: an exchange's
    own timestamp may be its last trade's, old on a quiet market). They are equal for a
    replay.
    """

    window: PriceWindow
    last_ts_ns: int = 0
    last_received_ns: int = 0
    stale: bool = False
    move_alerted: bool = False


def reference_price(ticker: Ticker) -> Decimal | None:
    """The price strategies and marks use: ``last``, else the mid."""
    return ticker.last if ticker.last is not None else mid_price(ticker.bid, ticker.ask, None)
