"""One-minute closes and the SMA crossover, against hand-made and brute-force answers."""

from __future__ import annotations

import itertools
import random
from decimal import Decimal
from fractions import Fraction

import pytest

from corec.core.clock import NS_PER_S
from corec.plugins.trading_execution.signals import MINUTE_NS, MinuteCloses, SmaCross

D = Decimal
M0 = 1_700_000_040 * NS_PER_S  # a minute boundary
S = NS_PER_S


# -- MinuteCloses -------------------------------------------------------------------------


def test_ticks_on_minute_boundaries_close_their_minute_at_once() -> None:
    closes = MinuteCloses()
    assert closes.add(M0, D(100)) == [(M0, D(100))]
    assert closes.add(M0 + MINUTE_NS, D(101)) == [(M0 + MINUTE_NS, D(101))]
    assert closes.add(M0 + 2 * MINUTE_NS, D(102)) == [(M0 + 2 * MINUTE_NS, D(102))]


def test_mid_minute_ticks_close_on_the_next_minute_with_the_last_price() -> None:
    closes = MinuteCloses()
    assert closes.add(M0 + 10 * S, D(100)) == []
    assert closes.add(M0 + 30 * S, D(101)) == []
    assert closes.add(M0 + 59 * S, D(102)) == []
    # the minute (M0, M0 + 60 s] is closed by the first tick after its end
    assert closes.add(M0 + 61 * S, D(103)) == [(M0 + MINUTE_NS, D(102))]
    assert closes.add(M0 + 119 * S, D(104)) == []
    assert closes.add(M0 + 200 * S, D(105)) == [(M0 + 2 * MINUTE_NS, D(104))]


def test_tick_at_minute_end_closes_a_minute_started_mid_way() -> None:
    closes = MinuteCloses()
    assert closes.add(M0 + 20 * S, D(100)) == []
    assert closes.add(M0 + MINUTE_NS, D(99)) == [(M0 + MINUTE_NS, D(99))]
    # the next tick opens the next minute and does not close the first one again
    assert closes.add(M0 + 70 * S, D(98)) == []
    assert closes.add(M0 + 2 * MINUTE_NS, D(97)) == [(M0 + 2 * MINUTE_NS, D(97))]


def test_repeated_boundary_tick_does_not_close_twice() -> None:
    closes = MinuteCloses()
    assert closes.add(M0, D(100)) == [(M0, D(100))]
    assert closes.add(M0, D(101)) == []
    assert closes.add(M0 + 30 * S, D(102)) == []
    assert closes.add(M0 + 90 * S, D(103)) == [(M0 + MINUTE_NS, D(102))]


def test_late_ticks_are_ignored() -> None:
    closes = MinuteCloses()
    assert closes.add(M0 + 30 * S, D(100)) == []
    assert closes.add(M0 + 90 * S, D(101)) == [(M0 + MINUTE_NS, D(100))]
    assert closes.add(M0 + 45 * S, D(1)) == []  # a minute already closed
    assert closes.add(M0 + 100 * S, D(102)) == []
    assert closes.add(M0 + 121 * S, D(103)) == [(M0 + 2 * MINUTE_NS, D(102))]


def test_minutes_without_ticks_produce_no_close() -> None:
    closes = MinuteCloses()
    assert closes.add(M0 + 30 * S, D(100)) == []
    assert closes.add(M0 + 10 * MINUTE_NS + 30 * S, D(110)) == [(M0 + MINUTE_NS, D(100))]


# -- SmaCross -----------------------------------------------------------------------------


def brute_force_crosses(closes: list[Decimal], fast: int, slow: int) -> list[tuple[int, str]]:
    """Crosses by recomputing both SMAs from scratch at every close, exactly (Fraction)."""
    crosses: list[tuple[int, str]] = []
    side: bool | None = None
    for i in range(len(closes)):
        if i + 1 < slow:
            continue
        fast_sma = sum(Fraction(c) for c in closes[i + 1 - fast : i + 1]) / fast
        slow_sma = sum(Fraction(c) for c in closes[i + 1 - slow : i + 1]) / slow
        if fast_sma == slow_sma:
            continue
        above = fast_sma > slow_sma
        if side is not None and above != side:
            crosses.append((i, "long" if above else "short"))
        side = above
    return crosses


@pytest.mark.parametrize(
    ("seed", "fast", "slow", "cents"),
    [(1, 2, 4, False), (2, 3, 7, True), (3, 5, 20, True), (4, 1, 2, False), (5, 20, 60, True)],
)
def test_sma_cross_matches_brute_force(seed: int, fast: int, slow: int, cents: bool) -> None:
    rng = random.Random(seed)
    price = D(100)
    closes: list[Decimal] = []
    for _ in range(2000):
        # integer steps make equal averages frequent; cents steps make long drifts
        step = D(rng.randint(-300, 300)) / 100 if cents else D(rng.randint(-2, 2))
        price = max(D(1), price + step)
        closes.append(price)

    signal = SmaCross(fast, slow)
    got = [(i, s) for i, c in enumerate(closes) if (s := signal.on_close(c)) is not None]

    expected = brute_force_crosses(closes, fast, slow)
    assert len(expected) > 20  # the series really crosses
    assert got == expected
    sides = [s for _, s in got]
    assert all(a != b for a, b in itertools.pairwise(sides))  # they alternate


def test_averages_are_exact_running_means() -> None:
    signal = SmaCross(2, 3)
    assert signal.averages() is None
    for close in ("1.1", "2.2", "3.3", "4.4"):
        signal.on_close(D(close))
    assert signal.ready
    assert signal.averages() == (D("3.85"), D("3.3"))


def test_no_signal_during_warm_up() -> None:
    signal = SmaCross(2, 4)
    # with fewer than `slow` closes, the short average swings up and down: no signal
    for close in ("100", "90", "110"):
        assert signal.on_close(D(close)) is None
        assert not signal.ready
    assert signal.on_close(D(80)) is None  # window 100,90,110,80: fast 95 == slow 95
    assert signal.ready
    assert signal.on_close(D(120)) is None  # window 90,110,80,120: fast 100 == slow 100
    assert signal.on_close(D(130)) is None  # fast 125 > slow 110: first side, not a cross
    assert signal.on_close(D(60)) == "short"  # fast 95 < slow 97.5


def test_first_side_after_warm_up_is_not_a_cross() -> None:
    signal = SmaCross(2, 4)
    results = [signal.on_close(D(c)) for c in ("101", "101", "100", "100", "102", "101", "100.5")]
    # close 4: fast 100 < slow 100.5 (side set, no signal); close 5: fast 101 > 100.75;
    # close 6: still above; close 7: fast 100.75 < slow 100.875
    assert results == [None, None, None, None, "long", None, "short"]


def test_fast_must_be_shorter_than_slow() -> None:
    with pytest.raises(ValueError, match="fast < slow"):
        SmaCross(4, 4)
    with pytest.raises(ValueError, match="fast < slow"):
        SmaCross(0, 4)
