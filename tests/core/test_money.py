"""The rounding policy: what the pool pays or issues rounds down, what it charges rounds up."""

from __future__ import annotations

from decimal import Context, Decimal, InvalidOperation, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from corec.core.money import (
    CENT,
    USD_QUANTUM,
    canonical,
    charge,
    divide,
    equity_usd,
    multiply,
    nav_per_unit,
    parse_decimal,
    pay,
    quantity_down,
    to_stored,
    units_to_burn,
    units_to_issue,
)

D = Decimal
EXACT = Context(prec=100)


# -- directions -----------------------------------------------------------------------
def test_units_to_issue_rounds_down_and_units_to_burn_up() -> None:
    # 100 USD at NAV 300 for 100 units: 33.333… units
    assert units_to_issue(D(100), D(300), D(100)) == D("33.33333333")
    assert units_to_burn(D(100), D(300), D(100)) == D("33.33333334")


def test_exact_results_are_not_moved() -> None:
    assert units_to_issue(D(150), D(300), D(100)) == D("50.00000000")
    assert units_to_burn(D(150), D(300), D(100)) == D("50.00000000")
    assert pay(D("1.25"), CENT) == D("1.25")
    assert charge(D("1.25"), CENT) == D("1.25")


def test_first_contribution_issues_one_unit_per_dollar() -> None:
    assert units_to_issue(D("123.456789999"), D(0), D(0)) == D("123.45678999")
    assert units_to_issue(D("100.00"), D(0), D(0)) == D("100.00000000")


def test_units_need_a_solvent_pool() -> None:
    with pytest.raises(ValueError, match="NAV is 0"):
        units_to_issue(D(100), D(0), D(10))
    with pytest.raises(ValueError, match="NAV is -5"):
        units_to_issue(D(100), D(-5), D(10))
    with pytest.raises(ValueError, match="NAV is 0"):
        units_to_burn(D(100), D(0), D(10))


def test_pay_rounds_down_and_charge_rounds_up() -> None:
    assert pay(D("1.234567899")) == D("1.23456789")
    assert charge(D("1.234567891")) == D("1.23456790")
    assert pay(D("10.999"), CENT) == D("10.99")
    assert charge(D("10.001"), CENT) == D("10.01")
    assert str(pay(D(7), CENT)) == "7.00"
    assert str(charge(D("0.000000001"))) == "1E-8"


def test_quantity_down() -> None:
    assert quantity_down(D("0.123456789")) == D("0.12345678")
    assert quantity_down(D("0.999999999999")) == D("0.99999999")
    assert quantity_down(D("2")) == D("2.00000000")


@given(
    amount=st.decimals(min_value=D("0.01"), max_value=D("1e9"), places=2),
    nav=st.decimals(min_value=D("0.01"), max_value=D("1e12"), places=8),
    units=st.decimals(min_value=D("0.00000001"), max_value=D("1e12"), places=8),
)
def test_issue_and_burn_bracket_the_exact_value(amount: D, nav: D, units: D) -> None:
    exact = EXACT.divide(EXACT.multiply(amount, units), nav)
    issued = units_to_issue(amount, nav, units)
    burned = units_to_burn(amount, nav, units)
    assert issued <= exact <= burned
    assert burned - issued <= USD_QUANTUM
    assert exact - issued < USD_QUANTUM


@given(st.decimals(min_value=D("-1e15"), max_value=D("1e15"), places=12))
def test_pay_never_exceeds_and_charge_never_undercuts(amount: D) -> None:
    paid, charged = pay(amount), charge(amount)
    assert abs(paid) <= abs(amount) <= abs(charged)
    assert abs(charged - paid) <= USD_QUANTUM


# -- precision ------------------------------------------------------------------------
def test_fifty_digit_precision_on_large_values() -> None:
    amount = D("12345678901234567890.12345678")
    nav = D("98765432109876543210.98765432")
    units = D("55555555555555555555.55555555")
    # exact: 6944444381163194445.2354600637479…
    assert units_to_issue(amount, nav, units) == D("6944444381163194445.23546006")
    assert units_to_burn(amount, nav, units) == D("6944444381163194445.23546007")
    big = D("12345678901234567890123.123456789")  # 31 digits at 8 decimals
    with localcontext() as ctx:
        ctx.prec = 28  # the default context would raise InvalidOperation here
        assert pay(big) == D("12345678901234567890123.12345678")
        assert charge(big) == D("12345678901234567890123.12345679")
        assert quantity_down(big) == D("12345678901234567890123.12345678")


def test_divide_and_multiply_keep_fifty_digits() -> None:
    third = divide(D(1), D(3))
    assert len(third.as_tuple().digits) == 50
    assert multiply(D("1234567890.1234567890123456789"), D(10)) == D(
        "12345678901.234567890123456789"
    )
    a, b = D("12345678901234567890.12345"), D("98765432109876543210.54321")
    product = multiply(a, b)
    assert product == EXACT.multiply(a, b)  # 28 digits would have rounded it
    assert len(product.as_tuple().digits) == 50


def test_nav_per_unit_and_equity() -> None:
    assert nav_per_unit(D(1000), D(0)) == D(1)
    npu = nav_per_unit(D(1000), D(3))
    assert str(npu) == "333." + "3" * 47
    assert equity_usd(D(25), D(1000), D(100)) == D(250)
    assert equity_usd(D(25), D(1000), D(0)) == D(0)


def test_to_stored_rounds_half_even_to_18_places() -> None:
    assert to_stored(D("1.0000000000000000005")) == D("1.000000000000000000")
    assert to_stored(D("1.0000000000000000015")) == D("1.000000000000000002")
    assert to_stored(divide(D(1), D(3))) == D("0.333333333333333333")
    assert to_stored(divide(D(10) ** 19, D(3))) == D("3333333333333333333.333333333333333333")


# -- canonical ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("1.500", "1.5"),
        ("100", "100"),
        ("1E+2", "100"),
        ("1.2E+3", "1200"),
        ("0.000", "0"),
        ("-2.50", "-2.5"),
        ("46377.12345678", "46377.12345678"),
        ("46377.123456780000", "46377.12345678"),
    ],
)
def test_canonical(value: str, text: str) -> None:
    assert str(canonical(D(value))) == text
    assert canonical(D(value)) == D(value)


def test_canonical_keeps_38_digits() -> None:
    # NUMERIC(38, 18) values read back through DecimalColumn pass through canonical()
    value = D("12345678901234567890.123456789012345678")
    assert canonical(value) == value
    assert canonical(D("12345678901234567890.123456789012345678000")) == value
    whole = D("12345678901234567890123456789012345678")
    assert canonical(whole) == whole


# -- parse_decimal --------------------------------------------------------------------
def test_parse_decimal() -> None:
    assert parse_decimal(" 250.50 ", field="amount_usd") == D("250.50")
    assert parse_decimal("1e3", field="amount_usd") == D(1000)
    assert parse_decimal("-0.00000001", field="pnl") == D("-0.00000001")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("abc", "is not a decimal number"),
        ("", "is not a decimal number"),
        ("1,5", "is not a decimal number"),
        ("NaN", "is not a finite number"),
        ("Infinity", "is not a finite number"),
        ("-inf", "is not a finite number"),
    ],
)
def test_parse_decimal_errors_name_the_field(text: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_decimal(text, field="amount_usd")
    assert str(caught.value) == f"amount_usd: {text!r} {reason}"
    assert not isinstance(caught.value, InvalidOperation)


def test_parse_decimal_refuses_non_text() -> None:
    with pytest.raises(ValueError, match="amount_usd: None is not a decimal number"):
        parse_decimal(None, field="amount_usd")  # type: ignore[arg-type]
