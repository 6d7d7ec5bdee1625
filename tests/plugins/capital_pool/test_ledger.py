"""The pool's ledger as a pure domain: units, rounding, sizing, settlement (no I/O)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from corec.core import money
from corec.core.errors import InvalidEvent, InvalidInput
from corec.messages.trading_results import PositionSide
from corec.plugins.capital_pool.errors import (
    BelowMinimum,
    Insolvent,
    InsufficientEquity,
    InsufficientFreeCash,
    InvalidAmount,
    UnknownMember,
)
from corec.plugins.capital_pool.ledger import (
    ALLOCATED,
    CASH,
    FEES,
    REALIZED_PNL,
    Allocation,
    JournalEntry,
    Ledger,
    Line,
    member_account,
)

from .helpers import (
    START_NS,
    D,
    closed_for,
    contribute,
    grant,
    line_sum,
    make_allocation,
    make_ledger,
    make_rules,
    opened_for,
    realize_gain,
    settle,
    withdraw,
)

# -- contributions -------------------------------------------------------------------


def test_first_contribution_issues_units_one_for_one() -> None:
    ledger = make_ledger("alice", "bob")
    entry = contribute(ledger, "alice", "1234.56", "c1")

    assert entry.seq == 1
    assert entry.kind == "contribution"
    assert entry.ref == "contribution:c1"
    assert entry.lines == (
        Line(CASH, D("1234.56")),
        Line(member_account("alice"), D("-1234.56"), D("1234.56")),
    )
    assert line_sum(entry) == 0
    assert ledger.member_units == {"alice": D("1234.56")}
    assert ledger.cash_usd == D("1234.56")
    assert ledger.nav_usd() == D("1234.56")
    assert ledger.figures().nav_per_unit == 1
    assert ledger.member_equity_usd("alice") == D("1234.56")


def test_contribution_at_unchanged_nav_issues_units_one_for_one() -> None:
    ledger = make_ledger("alice", "bob")
    contribute(ledger, "alice", "1000", "c1")
    entry = contribute(ledger, "bob", "250.25", "c2")

    assert entry.seq == 2
    assert entry.lines[1].units == D("250.25")
    assert ledger.units_outstanding == D("1250.25")
    assert ledger.figures().nav_per_unit == 1


def test_later_contribution_priced_at_nav_per_unit_rounded_down() -> None:
    ledger = make_ledger("alice", "bob")
    contribute(ledger, "alice", "1000", "c1")
    realize_gain(ledger, "a1", "500", "20500", "0.4")  # +10 gross, −0.4 fees
    assert ledger.nav_usd() == D("1009.6")
    assert ledger.figures().nav_per_unit == D("1.0096")

    entry = contribute(ledger, "bob", "500", "c2")

    # 500 × 1000 / 1009.6 = 495.245641838…; half-even would give …84, down gives …83
    assert entry.lines[1].units == D("495.24564183")
    assert line_sum(entry) == 0
    assert entry.lines[0] == Line(CASH, D("500"))
    assert entry.lines[1].amount_usd == D("-500")
    assert ledger.member_units["bob"] == D("495.24564183")
    assert ledger.units_outstanding == D("1495.24564183")
    assert ledger.nav_usd() == D("1509.6")
    # alice keeps her whole gain; the rounding dust stays in the pool (she gains a hair)
    alice = ledger.member_equity_usd("alice")
    assert D("1009.6") <= alice < D("1009.6") + D("0.00000001")
    # bob's equity is his money minus at most one unit's worth of rounding
    bob = ledger.member_equity_usd("bob")
    assert D("500") - D("0.00000001") * D("1.0096") < bob <= D("500")
    assert alice + bob == ledger.nav_usd()


def test_contribution_to_unknown_member_lists_members() -> None:
    ledger = make_ledger("alice", "bob")
    with pytest.raises(UnknownMember, match=r"'carol'.*alice, bob"):
        ledger.contribution("c1", "carol", D(500), START_NS)
    empty = make_ledger()
    with pytest.raises(UnknownMember, match="none yet"):
        empty.contribution("c1", "carol", D(500), START_NS)


def test_contribution_below_minimum_refused_and_minimum_accepted() -> None:
    ledger = make_ledger("alice")
    with pytest.raises(BelowMinimum, match=r"99\.99 USD is below the minimum of 100"):
        ledger.contribution("c1", "alice", D("99.99"), START_NS)
    assert ledger.seq == 0
    entry = ledger.contribution("c1", "alice", D("100.00"), START_NS)
    assert entry.lines[1].units == D(100)


def test_contribution_minimum_comes_from_rules() -> None:
    ledger = make_ledger("alice", rules=make_rules(min_contribution_usd=D(250)))
    with pytest.raises(BelowMinimum):
        ledger.contribution("c1", "alice", D("249.99"), START_NS)
    assert ledger.contribution("c1", "alice", D(250), START_NS).lines[1].units == D(250)


@pytest.mark.parametrize("amount", ["100.001", "150.999", "0", "-100", "-0.01", "NaN", "Infinity"])
def test_contribution_amount_must_be_positive_whole_cents(amount: str) -> None:
    ledger = make_ledger("alice")
    with pytest.raises(InvalidAmount):
        ledger.contribution("c1", "alice", D(amount), START_NS)
    assert ledger.seq == 0 and ledger.cash_usd == 0


def test_contribution_of_absurd_amount_is_refused_as_invalid_input() -> None:
    """A mistyped 30-digit amount must be a clean refusal, not a raw decimal error
    (and it could never fit the NUMERIC(38, 18) columns anyway)."""
    ledger = make_ledger("alice")
    with pytest.raises(InvalidInput):
        ledger.contribution("c1", "alice", D("1" * 30), START_NS)


def test_contribution_refused_when_insolvent() -> None:
    ledger = make_ledger("alice", "bob", rules=make_rules(max_active_ratio=D(1)))
    contribute(ledger, "alice", "1000", "c1")
    alloc = make_allocation("a1", "1000")
    grant(ledger, alloc)
    position = ledger.check_opened(opened_for(alloc, "t1", "0.05", "20000"))
    assert position is not None
    ledger.add_allocation(position)
    ledger.mark(alloc.instrument, D(0))  # the long is worth nothing: NAV == 0
    assert ledger.nav_usd() == 0
    with pytest.raises(Insolvent, match="NAV is 0"):
        ledger.contribution("c2", "bob", D(500), START_NS)
    ledger.mark(alloc.instrument, D(1))
    assert ledger.nav_usd() == D("0.05")
    assert contribute(ledger, "bob", "500", "c2").lines[1].units == D(10_000_000)


def test_contribution_refused_when_nav_negative() -> None:
    ledger = make_ledger("alice", "bob", rules=make_rules(max_active_ratio=D(1)))
    contribute(ledger, "alice", "1000", "c1")
    alloc = make_allocation("a1", "1000", side="short")
    grant(ledger, alloc)
    settle(ledger, closed_for(alloc, "t1", "0.05", "20000", "45000"))  # −1250 gross
    assert ledger.nav_usd() == D(-250)
    with pytest.raises(Insolvent):
        ledger.contribution("c2", "bob", D(500), START_NS)


# -- withdrawals ---------------------------------------------------------------------


def _two_members_with_gain() -> Ledger:
    ledger = make_ledger("alice", "bob")
    contribute(ledger, "alice", "1000", "c1")
    contribute(ledger, "bob", "1000", "c2")
    realize_gain(ledger, "a1", "600", "21000", "0.84")  # +20 gross, −0.84 fees
    assert ledger.nav_usd() == D("2019.16")
    assert ledger.units_outstanding == D(2000)
    return ledger


def test_withdrawal_burns_units_rounded_up() -> None:
    ledger = _two_members_with_gain()
    entry = withdraw(ledger, "bob", "100", "w1")

    # 100 × 2000 / 2019.16 = 99.0510905525…; half-even would give …55, up gives …56
    assert entry.kind == "withdrawal"
    assert entry.ref == "withdrawal:w1"
    assert entry.lines == (
        Line(CASH, D(-100)),
        Line(member_account("bob"), D(100), D("-99.05109056")),
    )
    assert line_sum(entry) == 0
    assert ledger.member_units["bob"] == D("900.94890944")
    assert ledger.cash_usd == D("1919.16")
    assert ledger.member_equity_usd("alice") >= D("1009.58")


def test_withdrawal_above_equity_refused() -> None:
    ledger = _two_members_with_gain()
    with pytest.raises(
        InsufficientEquity, match=r"1009\.59 USD is more than bob's equity of 1009\.58"
    ):
        ledger.withdrawal("w1", "bob", D("1009.59"), START_NS)


def test_withdrawal_of_whole_equity_leaves_no_units() -> None:
    ledger = _two_members_with_gain()
    assert ledger.member_equity_usd("bob") == D("1009.58")
    entry = withdraw(ledger, "bob", "1009.58", "w1")

    assert entry.lines[1].units == D(-1000)
    assert ledger.member_units["bob"] == 0
    assert ledger.member_equity_usd("bob") == 0
    assert ledger.member_equity_usd("alice") == D("1009.58")
    assert ledger.nav_usd() == D("1009.58")
    assert ledger.cash_usd == D("1009.58")
    assert ledger.figures().nav_per_unit == D("1.00958")
    # and alice, the last member, can take everything out
    withdraw(ledger, "alice", "1009.58", "w2")
    assert ledger.units_outstanding == 0
    assert ledger.nav_usd() == 0
    assert ledger.cash_usd == 0


def test_withdrawal_of_equity_rounded_down_to_cents_leaves_only_dust() -> None:
    ledger = make_ledger("alice", "bob")
    contribute(ledger, "alice", "1000", "c1")
    realize_gain(ledger, "a1", "500", "20500", "0.4")
    contribute(ledger, "bob", "500", "c2")  # 495.24564183 units at 1.0096
    equity = ledger.member_equity_usd("bob")
    assert D("499.99") < equity < D(500)
    with pytest.raises(InsufficientEquity):
        ledger.withdrawal("w1", "bob", D(500), START_NS)

    withdraw(ledger, "bob", "499.99", "w1")

    left = ledger.member_units["bob"]
    assert D(0) < left < D("0.01")
    assert ledger.member_equity_usd("bob") < D("0.01")
    assert ledger.cash_usd == D("1009.61")
    # the pool kept the rounding: alice's equity did not go down
    assert ledger.member_equity_usd("alice") >= D("1009.6")


def test_withdrawal_above_free_cash_refused_when_capital_allocated() -> None:
    ledger = make_ledger("alice", "bob", rules=make_rules(max_active_ratio=D("0.6")))
    contribute(ledger, "alice", "1000", "c1")
    contribute(ledger, "bob", "1000", "c2")
    grant(ledger, make_allocation("a1", "1200"))
    assert ledger.cash_usd == D(800)
    assert ledger.member_equity_usd("alice") == D(1000)

    with pytest.raises(InsufficientFreeCash, match=r"free cash of 800\.00 USD"):
        ledger.withdrawal("w1", "alice", D("800.01"), START_NS)
    entry = withdraw(ledger, "alice", "800", "w1")
    assert entry.lines[1].units == D(-800)
    assert ledger.cash_usd == 0


@pytest.mark.parametrize("amount", ["0", "-5", "10.005"])
def test_withdrawal_amount_must_be_positive_whole_cents(amount: str) -> None:
    ledger = make_ledger("alice")
    contribute(ledger, "alice", "1000", "c1")
    with pytest.raises(InvalidAmount):
        ledger.withdrawal("w1", "alice", D(amount), START_NS)


def test_withdrawal_by_unknown_member_refused() -> None:
    ledger = make_ledger("alice")
    contribute(ledger, "alice", "1000", "c1")
    with pytest.raises(UnknownMember, match="members are: alice"):
        ledger.withdrawal("w1", "mallory", D(10), START_NS)


def test_member_without_units_cannot_withdraw() -> None:
    ledger = make_ledger("alice", "bob")
    contribute(ledger, "alice", "1000", "c1")
    with pytest.raises(InsufficientEquity):
        ledger.withdrawal("w1", "bob", D("0.01"), START_NS)


# -- allocation sizing ---------------------------------------------------------------


def _pool_with_nav(amount: str, **rules: Decimal) -> Ledger:
    ledger = make_ledger("alice", rules=make_rules(min_contribution_usd=D("0.01"), **rules))
    contribute(ledger, "alice", amount, "c1")
    return ledger


@pytest.mark.parametrize(
    ("nav", "stop_pct", "risk", "amount"),
    [
        ("100", "10", "0.03", "30"),  # seed band starts at 100
        ("500", "10", "0.03", "150"),
        ("999.99", "6", "0.03", "499.995"),  # still seed just below 1,000
        ("333.33", "7", "0.03", "142.85571428"),  # 142.855714285…: rounded down
        ("1000", "5", "0.02", "400"),  # growth from 1,000
        ("9999.99", "4", "0.02", "4999.995"),
        ("10000", "4", "0.01", "2500"),  # established from 10,000
        ("25000", "2.5", "0.01", "10000"),
    ],
)
def test_allocation_sized_from_nav_risk_and_stop(
    nav: str, stop_pct: str, risk: str, amount: str
) -> None:
    ledger = _pool_with_nav(nav)
    decision = ledger.size_allocation(D(stop_pct))

    assert decision.refusal_code is None and decision.refusal is None
    assert decision.risk_per_trade == D(risk)
    assert decision.nav_usd == D(nav)
    assert decision.amount_usd == D(amount)
    assert decision.sized_usd == D(amount)
    assert decision.reduced is False


def test_allocation_cut_to_active_cap_then_refused_at_cap() -> None:
    ledger = _pool_with_nav("1000")
    first = ledger.size_allocation(D(4))
    assert (first.amount_usd, first.reduced) == (D(500), False)
    grant(ledger, make_allocation("a1", first.amount_usd))

    second = ledger.size_allocation(D(4))
    assert second.sized_usd == D(500)
    assert second.amount_usd == D(100)  # 60 % of 1,000 minus 500 allocated
    assert second.reduced is True
    assert second.refusal_code is None
    grant(ledger, make_allocation("a2", second.amount_usd))
    assert ledger.allocated_usd == D(600)

    third = ledger.size_allocation(D(4))
    assert third.refusal_code == "active_cap"
    assert third.amount_usd == 0
    assert "60" in (third.refusal or "")


def test_allocation_larger_than_cap_is_reduced_to_cap() -> None:
    ledger = _pool_with_nav("1000")
    decision = ledger.size_allocation(D(2))
    assert decision.sized_usd == D(1000)
    assert decision.amount_usd == D(600)
    assert decision.reduced is True


def test_allocation_cap_follows_max_active_ratio() -> None:
    ledger = _pool_with_nav("1000", max_active_ratio=D("0.25"))
    decision = ledger.size_allocation(D(2))
    assert (decision.amount_usd, decision.reduced) == (D(250), True)


def test_allocation_refused_below_lowest_phase() -> None:
    ledger = _pool_with_nav("99.99")
    decision = ledger.size_allocation(D(2))
    assert decision.refusal_code == "no_phase"
    assert decision.amount_usd == 0
    assert decision.risk_per_trade == 0
    assert "99.99" in (decision.refusal or "") and "100" in (decision.refusal or "")

    empty = make_ledger()
    assert empty.size_allocation(D(2)).refusal_code == "no_phase"


def test_allocation_refused_when_too_small() -> None:
    ledger = _pool_with_nav("100")
    decision = ledger.size_allocation(D(50))
    assert decision.refusal_code == "too_small"
    assert decision.sized_usd == D(6)
    assert decision.amount_usd == 0
    assert "10" in (decision.refusal or "")
    # exactly the minimum is granted
    at_min = ledger.size_allocation(D(30))
    assert (at_min.refusal_code, at_min.amount_usd) == (None, D(10))


def test_allocation_sized_on_nav_including_unrealized_pnl() -> None:
    ledger = _pool_with_nav("1000")
    alloc = make_allocation("a1", "400")
    grant(ledger, alloc)
    pos = ledger.check_opened(opened_for(alloc, "t1", "0.02", "20000"))
    ledger.add_allocation(pos)
    ledger.mark(alloc.instrument, D(25000))  # +100 unrealized
    decision = ledger.size_allocation(D(10))
    assert decision.nav_usd == D(1100)
    assert decision.sized_usd == D(220)  # 1,100 × 2 % ÷ 10 %
    assert decision.amount_usd == D(220)  # headroom 660 − 400 = 260


def test_allocation_entry_moves_cash_to_allocated() -> None:
    ledger = _pool_with_nav("1000")
    entry = grant(ledger, make_allocation("a1", "250.12345678"))
    assert entry.kind == "allocation"
    assert entry.ref == "allocation:a1"
    assert entry.lines == (Line(ALLOCATED, D("250.12345678")), Line(CASH, D("-250.12345678")))
    assert ledger.cash_usd == D("749.87654322")
    assert ledger.allocated_usd == D("250.12345678")
    assert ledger.nav_usd() == D(1000)
    with pytest.raises(InsufficientFreeCash):
        ledger.allocation(make_allocation("a2", "749.87654323"))


# -- settlement ----------------------------------------------------------------------


def test_settlement_of_a_gain_without_recorded_position() -> None:
    ledger = make_ledger("alice")
    contribute(ledger, "alice", "1000", "c1")
    alloc = make_allocation("a1", "500")
    grant(ledger, alloc)
    closed = closed_for(alloc, "t1", "0.02", "20000", "21000", "0.84")
    assert closed.realized_pnl_usd == D("19.16")
    nav_before = ledger.nav_usd()

    entry = settle(ledger, closed)

    assert entry is not None
    assert entry.kind == "settlement"
    assert entry.ref == "trade:t1"
    assert entry.seq == 3
    assert entry.lines == (
        Line(CASH, D("519.16")),
        Line(ALLOCATED, D(-500)),
        Line(REALIZED_PNL, D(-20)),
        Line(FEES, D("0.84")),
    )
    assert line_sum(entry) == 0
    assert ledger.cash_usd == D("1019.16")
    assert ledger.allocated_usd == 0
    assert ledger.balance(REALIZED_PNL) == D(-20)
    assert ledger.balance(FEES) == D("0.84")
    assert ledger.nav_usd() - nav_before == closed.realized_pnl_usd
    assert ledger.figures().nav_per_unit == D("1.01916")
    assert "a1" not in ledger.allocations


def test_settlement_of_a_short_loss() -> None:
    ledger = make_ledger("alice")
    contribute(ledger, "alice", "1000", "c1")
    alloc = make_allocation("a1", "500", side="short")
    grant(ledger, alloc)
    closed = closed_for(alloc, "t1", "0.02", "20000", "20750.5", "0.81")
    assert closed.realized_pnl_usd == D("-15.82")

    entry = settle(ledger, closed)

    assert entry is not None
    assert entry.lines[0] == Line(CASH, D("484.18"))
    assert entry.lines[2] == Line(REALIZED_PNL, D("15.010"))
    assert ledger.nav_usd() == D("984.18")
    assert ledger.balance(REALIZED_PNL) == D("15.01")


def test_settlement_with_marked_position_moves_nav_by_exit_fee_only() -> None:
    ledger = make_ledger("alice")
    contribute(ledger, "alice", "1000", "c1")
    alloc = make_allocation("a1", "500")
    grant(ledger, alloc)
    pos = ledger.check_opened(opened_for(alloc, "t1", "0.02", "20000", "0.4"))
    assert pos is not None
    ledger.add_allocation(pos)
    ledger.mark(alloc.instrument, D(21000))
    assert ledger.nav_usd() == D("1019.6")  # +20 unrealized − 0.4 entry fee

    settle(ledger, closed_for(alloc, "t1", "0.02", "20000", "21000", "0.84"))

    # from the NAV before the position the whole move is the realized PnL
    assert ledger.nav_usd() == D(1000) + D("19.16")
    assert ledger.unrealized_pnl_usd() == 0


def test_same_trade_settles_once() -> None:
    ledger = make_ledger("alice")
    contribute(ledger, "alice", "1000", "c1")
    alloc = make_allocation("a1", "500")
    grant(ledger, alloc)
    closed = closed_for(alloc, "t1", "0.02", "20000", "21000", "0.84")
    assert settle(ledger, closed) is not None
    seq, balances = ledger.seq, dict(ledger.balances)

    assert ledger.settlement(closed) is None
    assert settle(ledger, closed) is None
    assert (ledger.seq, ledger.balances) == (seq, balances)


def test_trade_for_unknown_allocation_refused() -> None:
    ledger = make_ledger("alice")
    contribute(ledger, "alice", "1000", "c1")
    ghost = make_allocation("nope", "500")
    with pytest.raises(InvalidEvent, match="allocation nope is not open"):
        ledger.settlement(closed_for(ghost, "t1", "0.02", "20000", "21000"))


@pytest.mark.parametrize(
    "override",
    [{"symbol": "ETH/USDT"}, {"exchange": "kraken"}, {"market": "futures"}, {"side": "short"}],
)
def test_trade_not_matching_its_allocation_refused(override: dict[str, str]) -> None:
    ledger = make_ledger("alice")
    contribute(ledger, "alice", "1000", "c1")
    alloc = make_allocation("a1", "500")
    grant(ledger, alloc)
    closed = closed_for(alloc, "t1", "0.02", "20000", "21000", **override)
    with pytest.raises(InvalidEvent, match="differs from its allocation"):
        ledger.settlement(closed)
    assert ledger.seq == 2


def test_trade_not_matching_its_position_refused() -> None:
    ledger = make_ledger("alice")
    contribute(ledger, "alice", "1000", "c1")
    alloc = make_allocation("a1", "500")
    grant(ledger, alloc)
    pos = ledger.check_opened(opened_for(alloc, "t1", "0.02", "20000"))
    assert pos is not None
    ledger.add_allocation(pos)
    with pytest.raises(InvalidEvent, match="open position t1"):
        ledger.settlement(closed_for(alloc, "t2", "0.02", "20000", "21000"))
    with pytest.raises(InvalidEvent, match="open position t1"):
        ledger.settlement(closed_for(alloc, "t1", "0.01", "20000", "21000"))


# -- positions -----------------------------------------------------------------------


def _funded(side: PositionSide = "long") -> tuple[Ledger, Allocation]:
    ledger = make_ledger("alice")
    contribute(ledger, "alice", "1000", "c1")
    alloc = make_allocation("a1", "500", side=side)
    grant(ledger, alloc)
    return ledger, alloc


@pytest.mark.parametrize(
    ("side", "mark", "unrealized"),
    [
        ("long", None, "-0.4"),
        ("long", "21000", "19.6"),
        ("long", "19000.5", "-20.39"),
        ("short", None, "-0.4"),
        ("short", "19000", "19.6"),
        ("short", "21000", "-20.4"),
    ],
)
def test_position_opened_is_marked_in_nav(
    side: PositionSide, mark: str | None, unrealized: str
) -> None:
    ledger, alloc = _funded(side)
    pos = ledger.check_opened(opened_for(alloc, "t1", "0.02", "20000", "0.4"))
    assert pos is not None
    assert pos.position is not None
    assert (pos.position.trade_id, pos.position.quantity) == ("t1", D("0.02"))
    ledger.add_allocation(pos)
    if mark is not None:
        ledger.mark(alloc.instrument, D(mark))

    assert ledger.unrealized_pnl_usd() == D(unrealized)
    assert ledger.nav_usd() == D(1000) + D(unrealized)
    figures = ledger.figures()
    assert figures.unrealized_pnl_usd == D(unrealized)
    assert figures.nav_usd == figures.cash_usd + figures.allocated_usd + D(unrealized)
    assert figures.nav_per_unit == money.divide(D(1000) + D(unrealized), D(1000))


def test_mark_of_another_instrument_does_not_move_nav() -> None:
    ledger, alloc = _funded()
    pos = ledger.check_opened(opened_for(alloc, "t1", "0.02", "20000"))
    ledger.add_allocation(pos)
    ledger.mark(("binance", "futures", "BTC/USDT"), D(30000))
    ledger.mark(("kraken", "spot", "BTC/USDT"), D(30000))
    assert ledger.nav_usd() == D(1000)


def test_position_opened_recorded_once() -> None:
    ledger, alloc = _funded()
    opened = opened_for(alloc, "t1", "0.02", "20000", "0.4")
    pos = ledger.check_opened(opened)
    ledger.add_allocation(pos)

    assert ledger.check_opened(opened) is None
    with pytest.raises(InvalidEvent, match="already funds t1"):
        ledger.check_opened(opened_for(alloc, "t2", "0.01", "20000"))


def test_position_costing_more_than_its_allocation_refused() -> None:
    ledger, alloc = _funded()
    with pytest.raises(InvalidEvent, match=r"costs 500\.5.*500 USD"):
        ledger.check_opened(opened_for(alloc, "t1", "0.025", "20000", "0.5"))
    assert ledger.allocations["a1"].position is None
    # exactly the allocation (notional + fee) is accepted
    assert ledger.check_opened(opened_for(alloc, "t1", "0.02498", "20000", "0.4")) is not None


def test_position_for_unknown_or_mismatching_allocation_refused() -> None:
    ledger, alloc = _funded()
    with pytest.raises(InvalidEvent, match="is not open"):
        ledger.check_opened(opened_for(alloc, "t1", "0.01", "20000", allocation_id="zz"))
    with pytest.raises(InvalidEvent, match="differs"):
        ledger.check_opened(opened_for(alloc, "t1", "0.01", "20000", symbol="ETH/USDT"))
    with pytest.raises(InvalidEvent, match="differs"):
        ledger.check_opened(opened_for(alloc, "t1", "0.01", "20000", side="short"))


def test_return_unused_gives_allocation_back() -> None:
    ledger, _ = _funded()
    assert ledger.cash_usd == D(500)
    entry = ledger.return_unused("a1", "order rejected", START_NS)
    assert entry is not None
    assert entry.kind == "allocation_unused"
    assert entry.ref == "unused:a1"
    assert entry.memo == "unused: order rejected"
    assert entry.lines == (Line(CASH, D(500)), Line(ALLOCATED, D(-500)))
    ledger.apply(entry)
    ledger.release_allocation("a1")

    assert ledger.cash_usd == D(1000)
    assert ledger.allocated_usd == 0
    assert ledger.nav_usd() == D(1000)
    assert ledger.return_unused("a1", "again", START_NS) is None


def test_return_unused_refused_for_position_or_unknown_allocation() -> None:
    ledger, alloc = _funded()
    pos = ledger.check_opened(opened_for(alloc, "t1", "0.02", "20000"))
    ledger.add_allocation(pos)
    with pytest.raises(InvalidEvent, match="funds position t1"):
        ledger.return_unused("a1", "x", START_NS)
    with pytest.raises(InvalidEvent, match="not open"):
        ledger.return_unused("zz", "x", START_NS)


# -- journal -------------------------------------------------------------------------


def test_unbalanced_entry_cannot_exist() -> None:
    with pytest.raises(ValueError, match="differ by 1"):
        JournalEntry(1, START_NS, "x", "x:1", "", (Line(CASH, D(1)), Line(FEES, D(0))))
    with pytest.raises(ValueError, match="at least two"):
        JournalEntry(1, START_NS, "x", "x:1", "", (Line(CASH, D(0)),))


def test_entries_apply_in_sequence_only() -> None:
    ledger = make_ledger("alice")
    first = ledger.contribution("c1", "alice", D(100), START_NS)
    second = ledger.contribution("c2", "alice", D(100), START_NS)
    assert first.seq == second.seq == 1  # built from the same state
    ledger.apply(first)
    with pytest.raises(ValueError, match="expected 2"):
        ledger.apply(second)
    assert ledger.cash_usd == D(100)


def test_a_result_beyond_the_stored_decimals_is_refused() -> None:
    """Gross PnL with more than 18 decimals could not be stored exactly (NUMERIC(38, 18)
    would round it on PostgreSQL and memory would drift from the journal): refused."""
    ledger = make_ledger("alice")
    contribute(ledger, "alice", "1000", "c1")
    alloc = make_allocation("a1", "500")
    grant(ledger, alloc)
    # an unrounded slipped price (12 decimals) times an 8-decimal quantity: 20 decimals
    closed = closed_for(alloc, "t1", "0.12345678", "1000", "1000.000123456789")
    with pytest.raises(InvalidEvent, match="more than 18 decimals"):
        ledger.settlement(closed)
    assert ledger.seq == 2 and "trade:t1" not in ledger.refs


def test_a_trade_id_of_another_allocation_is_refused() -> None:
    ledger = make_ledger("alice")
    contribute(ledger, "alice", "1000", "c1")
    first, second = make_allocation("a1", "300"), make_allocation("a2", "300")
    grant(ledger, first)
    grant(ledger, second)
    opened = ledger.check_opened(opened_for(first, "t1", "0.01", "20000"))
    assert opened is not None
    ledger.add_allocation(opened)
    with pytest.raises(InvalidEvent, match="is the position of allocation a1, not of a2"):
        ledger.settlement(closed_for(second, "t1", "0.01", "20000", "21000"))
