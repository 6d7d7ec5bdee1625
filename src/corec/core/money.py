"""The one rounding policy for money, units and quantities (DESIGN.md, "Money").

Rule (ERC-4626's, in the pool's favour): what the pool *pays out or issues* rounds
down; what it *charges or burns* rounds up. Concretely:

============================  ==========================  ===========
value                         function                    direction
============================  ==========================  ===========
units issued on contribution  :func:`units_to_issue`      down
units burned on withdrawal    :func:`units_to_burn`       up
amount paid out / granted     :func:`pay`                 down
fee or amount charged         :func:`charge`              up
order quantity bought/sold    :func:`quantity_down`       down
============================  ==========================  ===========

Quanta: USD at the edges (contributions, withdrawals, reports) in cents
(:data:`CENT`); inside (allocations, PnL, fees) 8 decimals (:data:`USD_QUANTUM`);
pool units and asset quantities 8 decimals (:data:`UNITS_QUANTUM`,
:data:`QUANTITY_QUANTUM`). Divisions run in a 50-digit context so only the final
quantization rounds.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_UP, Context, Decimal, InvalidOperation

CENT = Decimal("0.01")
USD_QUANTUM = Decimal("0.00000001")
UNITS_QUANTUM = Decimal("0.00000001")
QUANTITY_QUANTUM = Decimal("0.00000001")
NAV_PER_UNIT_QUANTUM = Decimal("0.00000001")
PRICE_QUANTUM = Decimal("0.00000001")
"""Simulated fill prices (a slipped paper fill) are rounded to this, against us."""
INITIAL_NAV_PER_UNIT = Decimal("1")

_CTX = Context(prec=50)


def divide(numerator: Decimal, denominator: Decimal) -> Decimal:
    """``numerator / denominator`` in the 50-digit context (no premature rounding)."""
    return _CTX.divide(numerator, denominator)


def multiply(a: Decimal, b: Decimal) -> Decimal:
    """``a × b`` in the 50-digit context."""
    return _CTX.multiply(a, b)


def add(*values: Decimal) -> Decimal:
    """The exact sum of ``values`` in the 50-digit context (the default context keeps
    28 digits: a large NAV with 16-decimal PnL would round)."""
    total = Decimal(0)
    for value in values:
        total = _CTX.add(total, value)
    return total


def pay(amount: Decimal, quantum: Decimal = USD_QUANTUM) -> Decimal:
    """An amount the pool pays out or grants, rounded down to ``quantum``."""
    return amount.quantize(quantum, rounding=ROUND_DOWN, context=_CTX)


def charge(amount: Decimal, quantum: Decimal = USD_QUANTUM) -> Decimal:
    """An amount the pool is charged (fees), rounded up to ``quantum``."""
    return amount.quantize(quantum, rounding=ROUND_UP, context=_CTX)


def quantity_down(quantity: Decimal) -> Decimal:
    """An order quantity, rounded down to :data:`QUANTITY_QUANTUM`."""
    return quantity.quantize(QUANTITY_QUANTUM, rounding=ROUND_DOWN, context=_CTX)


def nav_per_unit(nav_usd: Decimal, units: Decimal) -> Decimal:
    """NAV per unit = NAV / units, unrounded (50 digits); 1 when no units exist."""
    if units == 0:
        return INITIAL_NAV_PER_UNIT
    return divide(nav_usd, units)


def units_to_issue(amount_usd: Decimal, nav_usd: Decimal, units_outstanding: Decimal) -> Decimal:
    """Units issued for a contribution of ``amount_usd`` at the current NAV (round down).

    Formula: ``amount × units_outstanding / NAV`` (one division, no intermediate
    rounding), or ``amount / 1`` when no units exist yet.

    Raises:
        ValueError: units exist but NAV is not positive (the pool is insolvent).
    """
    if units_outstanding == 0:
        return (amount_usd / INITIAL_NAV_PER_UNIT).quantize(
            UNITS_QUANTUM, rounding=ROUND_DOWN, context=_CTX
        )
    if nav_usd <= 0:
        raise ValueError(
            f"cannot issue units: NAV is {nav_usd} with {units_outstanding} units outstanding"
        )
    return divide(multiply(amount_usd, units_outstanding), nav_usd).quantize(
        UNITS_QUANTUM, rounding=ROUND_DOWN, context=_CTX
    )


def units_to_burn(amount_usd: Decimal, nav_usd: Decimal, units_outstanding: Decimal) -> Decimal:
    """Units burned to pay ``amount_usd`` out at the current NAV (round up).

    Formula: ``amount × units_outstanding / NAV``.

    Raises:
        ValueError: NAV is not positive.
    """
    if nav_usd <= 0:
        raise ValueError(f"cannot burn units: NAV is {nav_usd}")
    return divide(multiply(amount_usd, units_outstanding), nav_usd).quantize(
        UNITS_QUANTUM, rounding=ROUND_UP, context=_CTX
    )


def equity_usd(units: Decimal, nav_usd: Decimal, units_outstanding: Decimal) -> Decimal:
    """A holder's equity: ``units × NAV / units_outstanding``, unrounded (50 digits)."""
    if units_outstanding == 0:
        return Decimal(0)
    return divide(multiply(units, nav_usd), units_outstanding)


STORED_QUANTUM = Decimal("1e-18")


def to_stored(value: Decimal) -> Decimal:
    """``value`` rounded half-even to 18 decimals, the scale of stored NUMERIC columns.

    Only for derived figures (NAV, NAV per unit); amounts that move money are already
    on their quantum and are stored as they are.
    """
    return value.quantize(STORED_QUANTUM, context=_CTX)


def parse_decimal(text: str, *, field: str) -> Decimal:
    """``text`` as a finite Decimal.

    Raises:
        ValueError: ``text`` is not a finite decimal number; the message names ``field``.
    """
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, AttributeError):
        raise ValueError(f"{field}: {text!r} is not a decimal number") from None
    if not value.is_finite():
        raise ValueError(f"{field}: {text!r} is not a finite number")
    return value


def canonical(value: Decimal) -> Decimal:
    """``value`` without trailing zeros and without exponent notation (1.500 → 1.5)."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1), context=_CTX)
    return value.normalize(context=_CTX)
