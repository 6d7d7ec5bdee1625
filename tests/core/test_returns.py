"""Investment returns in Decimal: time-weighted (NAV per unit) and XIRR (actual/365),
checked against values worked out by hand and published references."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from decimal import Decimal, localcontext

import pytest

from corec.core.returns import (
    MIN_XIRR_HORIZON_NS,
    NS_PER_YEAR,
    RATE_QUANTUM,
    time_weighted_return,
    xirr,
)

D = Decimal
DAY_NS = 86_400 * 1_000_000_000
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def ns(year: int, month: int, day: int) -> int:
    return int(datetime(year, month, day, tzinfo=UTC).timestamp()) * 1_000_000_000


def npv(rate: Decimal, flows: list[tuple[int, Decimal]]) -> Decimal:
    """The XIRR formula, written independently (60 digits): sum cf / (1 + r)^(days/365)."""
    with localcontext() as ctx:
        ctx.prec = 60
        t0 = min(ts for ts, _ in flows)
        base = 1 + rate
        return sum((amount / base ** (D(ts - t0) / D(NS_PER_YEAR)) for ts, amount in flows), D(0))


def root_by_bisection(flows: list[tuple[int, Decimal]], low: str, high: str) -> Decimal:
    """An independent root of ``npv`` in ``[low, high]`` (it must change sign there)."""
    lo, hi = D(low), D(high)
    positive_at_low = npv(lo, flows) > 0
    for _ in range(120):
        mid = (lo + hi) / 2
        if (npv(mid, flows) > 0) == positive_at_low:
            lo = mid
        else:
            hi = mid
    return lo


# -- time-weighted -------------------------------------------------------------------


def test_time_weighted_return_is_end_over_start_minus_one() -> None:
    assert time_weighted_return(D(1), D("1.05")) == D("0.05")
    assert time_weighted_return(D("1.2"), D("0.9")) == D("-0.25")
    assert time_weighted_return(D("1.23456789"), D("1.23456789")) == 0
    assert time_weighted_return(D(2), D(0)) == D(-1)


def test_time_weighted_return_keeps_thirty_digits() -> None:
    assert time_weighted_return(D(3), D(1)) == D("-0.666666666666666666666666666667")
    # 4/3 is rounded to 30 significant digits before the 1 is taken away
    assert time_weighted_return(D(3), D(4)) == D("0.33333333333333333333333333333")


@pytest.mark.parametrize("start", [D(0), D("-1")])
def test_time_weighted_return_refuses_a_start_that_is_not_positive(start: Decimal) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        time_weighted_return(start, D(1))


# -- XIRR ----------------------------------------------------------------------------


def test_xirr_ten_percent_over_one_year_exactly() -> None:
    assert xirr([(T0, D(-1000)), (T0 + 365 * DAY_NS, D(1100))]) == D("0.10000000")


def test_xirr_loss_of_ten_percent_over_one_year() -> None:
    assert xirr([(T0, D(-1000)), (T0 + 365 * DAY_NS, D(900))]) == D("-0.10000000")


def test_xirr_flow_order_does_not_matter() -> None:
    flows = [(T0 + 365 * DAY_NS, D(1100)), (T0, D(-1000))]
    assert xirr(flows) == D("0.10000000")


def test_xirr_half_year_compounds_annually() -> None:
    # 3x in 182 days: (1 + r) = 3 ** (365 / 182)
    rate = xirr([(T0, D(-1000)), (T0 + 182 * DAY_NS, D(3000))])
    assert rate is not None
    assert rate == rate.quantize(RATE_QUANTUM)
    assert abs(float(rate) - (3 ** (365 / 182) - 1)) < 6e-9
    assert rate == D("8.05449128")


def test_xirr_two_contributions_solves_the_npv_equation() -> None:
    flows = [
        (T0, D(-1000)),
        (T0 + 100 * DAY_NS, D(-500)),
        (T0 + 365 * DAY_NS, D(1700)),
    ]
    rate = xirr(flows)
    assert rate is not None
    # substituted back into the formula, the NPV is zero (relative to the money moved)
    scale = sum(abs(a) for _, a in flows)
    assert abs(npv(rate, flows)) / scale < D("1e-6")
    # and it is the root to its 8 decimals: one quantum either side brackets zero
    assert npv(rate - RATE_QUANTUM, flows) > 0 > npv(rate + RATE_QUANTUM, flows)
    assert abs(rate - root_by_bisection(flows, "0", "1")) <= D("0.000000005")
    assert rate == D("0.14748132")


def test_xirr_with_a_withdrawal_in_between() -> None:
    flows = [
        (T0, D(-2000)),
        (T0 + 90 * DAY_NS, D(500)),
        (T0 + 200 * DAY_NS, D(-300)),
        (T0 + 400 * DAY_NS, D(1900)),
    ]
    rate = xirr(flows)
    assert rate is not None
    assert abs(npv(rate, flows)) / sum(abs(a) for _, a in flows) < D("1e-6")
    assert abs(rate - root_by_bisection(flows, "-0.5", "1")) <= D("0.000000005")


def test_xirr_matches_the_excel_reference_example() -> None:
    """Microsoft's XIRR example: 37.34 % (shown as 0.373362535); the root is 0.3733625335."""
    flows = [
        (ns(2008, 1, 1), D(-10000)),
        (ns(2008, 3, 1), D(2750)),
        (ns(2008, 10, 30), D(4250)),
        (ns(2009, 2, 15), D(3250)),
        (ns(2009, 4, 1), D(2750)),
    ]
    rate = xirr(flows)
    assert rate == D("0.37336253")
    assert rate is not None and abs(rate - D("0.373362535")) <= D("5e-9")


@pytest.mark.parametrize(
    "flows",
    [
        [],
        [(T0, D(-1000)), (T0 + 365 * DAY_NS, D(-100))],
        [(T0, D(1000)), (T0 + 365 * DAY_NS, D(100))],
        [(T0, D(-1000)), (T0 + 365 * DAY_NS, D(0))],
    ],
    ids=["empty", "only-paid-in", "only-paid-out", "zero-closing"],
)
def test_xirr_is_undefined_for_flows_of_one_sign(flows: list[tuple[int, Decimal]]) -> None:
    assert xirr(flows) is None


def test_xirr_is_undefined_below_a_day_of_history() -> None:
    assert MIN_XIRR_HORIZON_NS == DAY_NS
    assert xirr([(T0, D(-1000)), (T0 + DAY_NS - 1, D(1001))]) is None
    assert xirr([(T0, D(-1000)), (T0, D(1001))]) is None
    # from one day on it is defined: 0.01 % in one day compounds to (1.0001)^365 - 1
    rate = xirr([(T0, D(-1000)), (T0 + DAY_NS, D("1000.1"))])
    assert rate is not None
    assert abs(float(rate) - (1.0001**365 - 1)) < 6e-9


def test_xirr_is_undefined_beyond_the_highest_rate() -> None:
    # 10 % in one day is 1.1^365 - 1 ≈ 1.3e15 a year: above the 1e9 ceiling, no root
    assert math.log10(1.1**365) > 9
    assert xirr([(T0, D(-1000)), (T0 + DAY_NS, D(1100))]) is None


def test_xirr_catastrophic_short_loss_is_minus_one() -> None:
    # 99.9 % lost in two days: (0.001)^(365/2) - 1 is -1 to hundreds of digits
    assert xirr([(T0, D(-1000)), (T0 + 2 * DAY_NS, D(1))]) == D(-1)
    assert xirr([(T0, D(-1000)), (T0 + 2 * DAY_NS, D(1))]) == D("-1.00000000")


def test_xirr_total_loss_with_closing_value_zero_is_undefined() -> None:
    # nothing came back: only negative flows remain
    assert xirr([(T0, D(-1000)), (T0 + 30 * DAY_NS, D(-1))]) is None
