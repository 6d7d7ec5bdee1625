"""Investment returns in ``Decimal``: time-weighted (from NAV per unit) and money-weighted
(XIRR).

Definitions (GIPS, the CFA Institute's Global Investment Performance Standards):

- **Time-weighted return** over a period is the growth of one unit:
  ``NAV per unit at the end / NAV per unit at the start - 1``. Flows in and out do not
  move NAV per unit (units are issued and burned at it), so this is the manager's
  result, the same for every holder of the period.
- **Money-weighted return** is the annual rate ``r`` that sets the net present value of
  one investor's own cash flows to zero (Excel's ``XIRR``, actual/365):
  ``sum(cf_i / (1 + r) ** ((t_i - t_0) / 365 days)) = 0``. Money paid in is negative,
  money paid out (withdrawals, distributions, the closing value) positive.

No floats: discounting is ``Decimal`` ``exp`` and ``ln`` in a 30-digit context.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Context, Decimal, InvalidOperation, Overflow

ONE = Decimal(1)
ZERO = Decimal(0)
NS_PER_YEAR = 365 * 86_400 * 1_000_000_000
"""Actual/365: the year of ``XIRR``."""
MIN_XIRR_HORIZON_NS = 86_400 * 1_000_000_000
"""Below a day, an annualized rate says nothing: :func:`xirr` answers ``None``."""
RATE_QUANTUM = Decimal("0.00000001")
_CTX = Context(prec=30, Emax=999_999, Emin=-999_999)
_NEWTON_STEPS = 50
_TOLERANCE = Decimal("1e-12")
_LOWEST_RATE = Decimal("-0.999999999")
_HIGHEST_RATE = Decimal(10) ** 9


def time_weighted_return(nav_per_unit_start: Decimal, nav_per_unit_end: Decimal) -> Decimal:
    """``end / start - 1`` (a fraction: ``0.05`` = 5 %), unrounded (30 digits).

    Raises:
        ValueError: ``nav_per_unit_start`` is not positive.
    """
    if nav_per_unit_start <= 0:
        raise ValueError(f"NAV per unit at the start must be positive, got {nav_per_unit_start}")
    return _CTX.subtract(_CTX.divide(nav_per_unit_end, nav_per_unit_start), ONE)


def _npv(rate: Decimal, flows: Sequence[tuple[Decimal, Decimal]]) -> tuple[Decimal, Decimal]:
    """NPV at ``rate`` of ``(years, amount)`` flows, and its derivative in ``rate``."""
    log_base = _CTX.ln(_CTX.add(ONE, rate))
    value = derivative = ZERO
    for years, amount in flows:
        discounted = _CTX.multiply(amount, _CTX.exp(_CTX.minus(_CTX.multiply(years, log_base))))
        value = _CTX.add(value, discounted)
        derivative = _CTX.subtract(
            derivative, _CTX.divide(_CTX.multiply(years, discounted), _CTX.add(ONE, rate))
        )
    return value, derivative


def xirr(flows: Sequence[tuple[int, Decimal]]) -> Decimal | None:
    """The annual money-weighted return of ``flows`` (a fraction, to 8 decimals).

    Args:
        flows: ``(ts_ns, amount_usd)`` pairs in the investor's view: contributions
            negative; withdrawals, distributions and the closing equity positive.

    Returns:
        ``r`` with ``NPV(r) = 0`` (actual/365; Newton's method from 10 %, bisection on
        ``(-1, 1e9]`` when Newton leaves the range or stalls), or ``None`` when it is
        undefined: flows of one sign only, less than a day between the first and the
        last, or no root in that range. A loss faster than the range's floor answers
        ``-1`` (-100 % a year).
    """
    if not any(a < 0 for _, a in flows) or not any(a > 0 for _, a in flows):
        return None
    t0 = min(ts for ts, _ in flows)
    if max(ts for ts, _ in flows) - t0 < MIN_XIRR_HORIZON_NS:
        return None
    years = [(_CTX.divide(Decimal(ts - t0), Decimal(NS_PER_YEAR)), a) for ts, a in flows]
    try:
        rate = _newton(years)
        if rate is None:
            rate = _bisect(years)
    except (InvalidOperation, Overflow):
        return None
    return None if rate is None else rate.quantize(RATE_QUANTUM)


def _newton(flows: Sequence[tuple[Decimal, Decimal]]) -> Decimal | None:
    rate = Decimal("0.1")
    for _ in range(_NEWTON_STEPS):
        value, derivative = _npv(rate, flows)
        if derivative == 0:
            return None
        step = _CTX.divide(value, derivative)
        rate = _CTX.subtract(rate, step)
        if not _LOWEST_RATE < rate < _HIGHEST_RATE:
            return None
        if abs(step) < _TOLERANCE:
            return rate
    return None


def _bisect(flows: Sequence[tuple[Decimal, Decimal]]) -> Decimal | None:
    low, high = _LOWEST_RATE, Decimal(1)
    npv_low = _npv(low, flows)[0]
    npv_high = _npv(high, flows)[0]
    while npv_low * npv_high > 0 and high < _HIGHEST_RATE:
        high *= 10
        npv_high = _npv(high, flows)[0]
    if npv_low * npv_high > 0:
        # a loss so fast that even -99.9999999 % a year does not discount it away
        return _LOWEST_RATE if npv_low < 0 else None
    while high - low > _TOLERANCE:
        mid = _CTX.divide(low + high, Decimal(2))
        npv_mid = _npv(mid, flows)[0]
        if (npv_mid > 0) == (npv_low > 0):
            low, npv_low = mid, npv_mid
        else:
            high = mid
    return _CTX.divide(low + high, Decimal(2))
