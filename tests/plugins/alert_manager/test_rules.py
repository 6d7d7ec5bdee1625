"""Alert rules in YAML: the shipped rules on real payloads, params, resolution, and every
bad input failing at load with file, line and reason."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from corec.core import channels
from corec.core.notices import Alert, PluginStateChanged
from corec.messages.capital_data import (
    AllocationGranted,
    ContributionRecorded,
    WithdrawalQueued,
    WithdrawalRecorded,
)
from corec.messages.macro_data import MacroObservation, MacroSeriesStale
from corec.messages.market_data import MarketSnapshot
from corec.messages.trading_results import TradeClosed
from corec.plugins.alert_manager.rules import (
    CONFIG_PARAMS,
    SHIPPED_RULES,
    Ladder,
    RuleError,
    RuleSet,
    load_rules,
)

D = Decimal
T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def trade(pnl: str, *, trade_id: str = "t1", fees: str = "0") -> TradeClosed:
    """A long of 1 BTC from 10,000 whose realized PnL (net of ``fees``) is ``pnl``."""
    return TradeClosed(
        trade_id=trade_id,
        allocation_id=f"a-{trade_id}",
        strategy="sma",
        exchange="binance",
        market="spot",
        symbol="BTC/USDT",
        side="long",
        quantity=D(1),
        entry_price=D(10000),
        exit_price=D(10000) + D(pnl) + D(fees),
        fees_usd=D(fees),
        realized_pnl_usd=D(pnl),
        opened_ts_ns=T0 - 60_000_000_000,
        closed_ts_ns=T0,
        exit_reason="stop_loss",
    )


def withdrawal(amount: str) -> WithdrawalRecorded:
    return WithdrawalRecorded(
        withdrawal_id="w1", member="alice", amount_usd=D(amount), units=D(amount), nav_per_unit=D(1)
    )


def contribution(amount: str) -> ContributionRecorded:
    return ContributionRecorded(
        contribution_id="c1", member="bob", amount_usd=D(amount), units=D(amount), nav_per_unit=D(1)
    )


def vix(value: str, *, series: str = "VIX") -> MacroObservation:
    return MacroObservation(
        series=series, source_id="VIXCLS", date="2026-01-02", value=D(value), available_ts_ns=T0
    )


def snapshot(spread_bps: str | None, return_pct: str | None = None) -> MarketSnapshot:
    return MarketSnapshot(
        exchange="kraken",
        market="spot",
        symbol="BTC/USD",
        bid=D(100) if spread_bps is not None else None,
        ask=D(101) if spread_bps is not None else None,
        last=D(100),
        mid=D("100.5"),
        price=D(100),
        spread_bps=D(spread_bps) if spread_bps is not None else None,
        return_pct=D(return_pct) if return_pct is not None else None,
        window_s=300,
        exchange_ts_ns=T0,
    )


def write(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def load(tmp_path: Path, text: str, **params: str) -> RuleSet:
    """Only ``text``'s rules (not the shipped ones), with ``params`` from config."""
    path = write(tmp_path, text)
    return load_rules([path], shipped=False, params={k: D(v) for k, v in params.items()})


def fails(tmp_path: Path, text: str, line: int | None, reason: str, **params: str) -> RuleError:
    """Loading ``text`` fails at ``line`` with ``reason`` in the message."""
    path = tmp_path / "rules.yaml"
    with pytest.raises(RuleError) as caught:
        load(tmp_path, text, **params)
    err = caught.value
    assert (err.path, err.line) == (path, line), str(err)
    assert str(err).startswith(f"{path}:{line}: "), str(err)
    assert reason in err.reason, str(err)
    return err


def shipped_line(text: str) -> int:
    """The 1-based line of the shipped file that contains ``text`` (once)."""
    [line] = [i for i, row in enumerate(SHIPPED_RULES.read_text().splitlines(), 1) if text in row]
    return line


@pytest.fixture(scope="module")
def shipped() -> RuleSet:
    return load_rules([])


# -- the shipped rules ---------------------------------------------------------------------


def test_shipped_rules_file_is_inside_the_package() -> None:
    package = Path(__import__("corec").__file__).parent
    assert SHIPPED_RULES == package / "plugins" / "alert_manager" / "rules" / "default.yaml"
    assert SHIPPED_RULES.is_file()


def test_shipped_rules_load(shipped: RuleSet) -> None:
    assert [(r.name, r.channel, r.type) for r in shipped.rules] == [
        ("trade_loss", "trading_results", "trade_closed"),
        ("trade_gain", "trading_results", "trade_closed"),
        ("large_contribution", "capital_data", "contribution_recorded"),
        ("large_withdrawal", "capital_data", "withdrawal_recorded"),
        ("vix_high", "macro_data", "macro_observation"),
    ]
    assert shipped.channels() == {
        channels.TRADING_RESULTS,
        channels.CAPITAL_DATA,
        channels.MACRO_DATA,
    }
    assert channels.ALERTS not in shipped.channels()
    assert shipped.params["trade_loss_low_usd"] == D(50)
    assert shipped.params["vix_extreme"] == D(30)
    loss = shipped.rules[0]
    assert isinstance(loss.severity, Ladder)
    assert loss.severity.levels == (
        ("critical", D(-2000)),
        ("high", D(-500)),
        ("medium", D(-200)),
        ("low", D(-50)),
    )
    assert all(type(t) is Decimal for _, t in loss.severity.levels)


@pytest.mark.parametrize(
    ("pnl", "severity"),
    [
        ("-49.99", None),
        ("-50", "low"),
        ("-199.99", "low"),
        ("-200", "medium"),
        ("-500", "high"),
        ("-1999.99", "high"),
        ("-2000", "critical"),
        ("-9000", "critical"),
        ("0", None),
        ("120", None),
    ],
)
def test_trade_loss_ladder(shipped: RuleSet, pnl: str, severity: str | None) -> None:
    alerts = shipped.evaluate(channels.TRADING_RESULTS, trade(pnl))
    assert [(a.name, a.severity) for a in alerts] == (
        [("trade_loss", severity)] if severity else []
    )


def test_trade_loss_alert_in_full(shipped: RuleSet) -> None:
    [alert] = shipped.evaluate(channels.TRADING_RESULTS, trade("-250.123456", fees="12.5"))
    assert alert == Alert(
        name="trade_loss",
        severity="medium",
        message=(
            "sma lost on long BTC/USDT (binance spot): realized PnL -250.12 USD after 12.50 USD "
            "fees (stop_loss; entry 10000, exit 9762.376544)"
        ),
        labels={"strategy": "sma", "symbol": "BTC/USDT", "trade_id": "t1"},
        state="firing",
    )


def test_trade_gain(shipped: RuleSet) -> None:
    assert shipped.evaluate(channels.TRADING_RESULTS, trade("499.99")) == []
    [alert] = shipped.evaluate(channels.TRADING_RESULTS, trade("500", trade_id="t9"))
    assert alert == Alert(
        name="trade_gain",
        severity="low",
        message=(
            "sma gained on long BTC/USDT (binance spot): realized PnL +500.00 USD after 0.00 USD "
            "fees (stop_loss; entry 10000, exit 10500)"
        ),
        labels={"strategy": "sma", "symbol": "BTC/USDT", "trade_id": "t9"},
    )


@pytest.mark.parametrize(
    ("amount", "severity"),
    [
        ("999.99", None),
        ("1000", "medium"),
        ("4999.99", "medium"),
        ("5000", "high"),
        ("20000", "critical"),
    ],
)
def test_large_withdrawal(shipped: RuleSet, amount: str, severity: str | None) -> None:
    alerts = shipped.evaluate(channels.CAPITAL_DATA, withdrawal(amount))
    assert [(a.name, a.severity) for a in alerts] == (
        [("large_withdrawal", severity)] if severity else []
    )


def test_withdrawal_message_keeps_the_decimal_exactly(shipped: RuleSet) -> None:
    [alert] = shipped.evaluate(channels.CAPITAL_DATA, withdrawal("1234.56789012"))
    assert alert.message == (
        "alice withdrew 1234.56789012 USD (1234.56789012 units at NAV per unit 1)"
    )
    assert alert.labels == {"member": "alice", "withdrawal_id": "w1"}
    assert alert.severity == "medium"


@pytest.mark.parametrize(
    ("amount", "severity"), [("999", None), ("1000", "low"), ("10000", "medium")]
)
def test_large_contribution(shipped: RuleSet, amount: str, severity: str | None) -> None:
    alerts = shipped.evaluate(channels.CAPITAL_DATA, contribution(amount))
    expected = (
        [
            Alert(
                name="large_contribution",
                severity=severity,  # type: ignore[arg-type]
                message=f"bob contributed {amount} USD ({amount} units at NAV per unit 1)",
                labels={"member": "bob", "contribution_id": "c1"},
            )
        ]
        if severity
        else []
    )
    assert alerts == expected


@pytest.mark.parametrize(
    ("value", "severity", "state"),
    [
        ("15", "medium", "resolved"),
        ("20", "medium", "resolved"),
        ("20.01", "medium", "firing"),
        ("30", "medium", "firing"),
        ("30.5", "high", "firing"),
    ],
)
def test_vix_fires_above_20_and_30_and_resolves(
    shipped: RuleSet, value: str, severity: str, state: str
) -> None:
    [alert] = shipped.evaluate(channels.MACRO_DATA, vix(value))
    assert (alert.name, alert.severity, alert.state, alert.labels) == (
        "vix_high",
        severity,
        state,
        {"series": "VIX"},
    )
    if state == "firing":
        assert alert.message == f"VIX closed at {value} on 2026-01-02: above 20 (high above 30)"
    else:
        assert alert.message == f"VIX closed at {value} on 2026-01-02: back at or below 20"


def test_vix_rule_ignores_other_series(shipped: RuleSet) -> None:
    assert shipped.evaluate(channels.MACRO_DATA, vix("5000", series="SP500")) == []


def test_events_no_rule_reads(shipped: RuleSet) -> None:
    queued = WithdrawalQueued(
        withdrawal_id="w2", member="alice", amount_usd=D(50000), ahead_usd=D(0), queued_ts_ns=T0
    )
    assert shipped.evaluate(channels.CAPITAL_DATA, queued) == []
    # the right payload on the wrong channel is not the rule's event
    assert shipped.evaluate(channels.CAPITAL_DATA, trade("-5000")) == []
    assert shipped.evaluate(channels.SYSTEM, PluginStateChanged(plugin="x", state="failed")) == []


def test_params_from_config_override_thresholds() -> None:
    rules = load_rules(
        [], params={"trade_loss_low_usd": D(100), "vix_elevated": D("25.5"), "vix_extreme": D(40)}
    )
    assert rules.params["trade_loss_low_usd"] == D(100)
    assert rules.params["trade_loss_medium_usd"] == D(200)  # the file's default
    assert rules.evaluate(channels.TRADING_RESULTS, trade("-99.99")) == []
    [low] = rules.evaluate(channels.TRADING_RESULTS, trade("-100"))
    assert low.severity == "low"
    [resolved] = rules.evaluate(channels.MACRO_DATA, vix("25"))
    assert (resolved.state, resolved.message) == (
        "resolved",
        "VIX closed at 25 on 2026-01-02: back at or below 25.5",
    )
    [firing] = rules.evaluate(channels.MACRO_DATA, vix("35"))
    assert (firing.state, firing.severity, firing.message) == (
        "firing",
        "medium",
        "VIX closed at 35 on 2026-01-02: above 25.5 (high above 40)",
    )


def test_a_configured_param_no_file_declares_fails() -> None:
    with pytest.raises(RuleError) as caught:
        load_rules([], params={"large_withdrawl_usd": D(5)})
    assert (caught.value.path, caught.value.line) == (CONFIG_PARAMS, None)
    assert str(caught.value).startswith(
        "alert_manager.params: large_withdrawl_usd: no rule file declares this param (declared: "
    )


def test_configured_params_that_break_a_ladder_fail_at_its_line() -> None:
    with pytest.raises(RuleError) as caught:
        load_rules([], params={"trade_loss_low_usd": D(300)})
    err = caught.value
    assert (err.path, err.line) == (
        SHIPPED_RULES,
        shipped_line("critical: -$trade_loss_critical_usd"),
    )
    assert "with <= thresholds must shrink from low to critical" in err.reason
    assert "low -300" in err.reason


# -- user rules: the language --------------------------------------------------------------


def test_match_in_not_in_and_int_fields(tmp_path: Path) -> None:
    rules = load(
        tmp_path,
        """\
        params:
          silent_h: 36
        rules:
          - name: series_silent
            channel: macro_data
            type: macro_series_stale
            match: {series: [VIX, SP500]}
            when:
              - {field: silent_s, op: ">=", value: 3600}
              - {field: series, op: not_in, value: [DXY]}
            severity: high
            labels: {series: "{series}"}
            message: "{series} silent {silent_s} s, last {last_date} ({$silent_h} h allowed)"
        """,
    )
    stale = MacroSeriesStale(series="SP500", last_date=None, silent_s=7200)
    [alert] = rules.evaluate(channels.MACRO_DATA, stale)
    assert alert == Alert(
        name="series_silent",
        severity="high",
        message="SP500 silent 7200 s, last n/a (36 h allowed)",
        labels={"series": "SP500"},
    )
    assert (
        rules.evaluate(
            channels.MACRO_DATA, MacroSeriesStale(series="SP500", last_date="x", silent_s=60)
        )
        == []
    )
    assert (
        rules.evaluate(
            channels.MACRO_DATA, MacroSeriesStale(series="DXY", last_date=None, silent_s=9999)
        )
        == []
    )
    [condition, _] = rules.rules[0].when
    assert condition.value == 3600 and type(condition.value) is int


def test_optional_fields_null_and_literal_and_bool(tmp_path: Path) -> None:
    rules = load(
        tmp_path,
        """\
        rules:
          - name: wide_spread
            channel: market_data
            type: market_snapshot
            match: {market: spot}
            when:
              - {field: spread_bps, op: ">", value: 50.5}
            severity: medium
            labels: {exchange: "{exchange}", symbol: "{symbol}"}
            message: "{symbol} spread {spread_bps} bps, return {return_pct:.1f}%"
          - name: no_book
            channel: market_data
            type: market_snapshot
            when:
              - {field: spread_bps, op: "==", value: null}
            severity: low
            message: "{symbol} on {exchange} has no book"
          - name: reduced_grant
            channel: capital_data
            type: allocation_granted
            when:
              - {field: reduced, op: "==", value: true}
            severity: low
            message: "{strategy} got {amount_usd} USD, reduced"
          - name: plugin_failed
            channel: system
            type: plugin_state_changed
            when:
              - {field: state, op: in, value: [failed, restarting]}
            severity: critical
            labels: {plugin: "{plugin}"}
            message: "{plugin} is {state}: {error}"
        """,
    )
    assert [a.message for a in rules.evaluate(channels.MARKET_DATA, snapshot("50.5"))] == []
    [wide] = rules.evaluate(channels.MARKET_DATA, snapshot("99.5"))
    assert (wide.name, wide.message) == ("wide_spread", "BTC/USD spread 99.5 bps, return n/a%")
    [wide] = rules.evaluate(channels.MARKET_DATA, snapshot("99.5", return_pct="-1.25"))
    assert wide.message == "BTC/USD spread 99.5 bps, return -1.2%"  # Decimal rounds half-even
    [no_book] = rules.evaluate(channels.MARKET_DATA, snapshot(None))
    assert (no_book.name, no_book.message, no_book.labels) == (
        "no_book",
        "BTC/USD on kraken has no book",
        {},
    )
    granted = AllocationGranted(
        allocation_id="a1",
        strategy="sma",
        exchange="binance",
        market="spot",
        symbol="BTC/USDT",
        side="long",
        amount_usd=D("512.5"),
        nav_usd=D(10000),
        risk_per_trade=D("0.02"),
        reduced=True,
    )
    [reduced] = rules.evaluate(channels.CAPITAL_DATA, granted)
    assert reduced.message == "sma got 512.5 USD, reduced"
    [failed] = rules.evaluate(
        channels.SYSTEM, PluginStateChanged(plugin="macro_sync", state="failed", error="boom")
    )
    assert (failed.severity, failed.labels, failed.message) == (
        "critical",
        {"plugin": "macro_sync"},
        "macro_sync is failed: boom",
    )
    assert rules.evaluate(channels.SYSTEM, PluginStateChanged(plugin="x", state="running")) == []


def test_values_are_decimal_from_yaml_text(tmp_path: Path) -> None:
    rules = load(
        tmp_path,
        """\
        params: {tiny: 0.1}
        rules:
          - name: tiny_gain
            channel: trading_results
            type: trade_closed
            when:
              - {field: realized_pnl_usd, op: "==", value: 0.3}
              - {field: fees_usd, op: ">=", value: $tiny}
            severity: low
            message: "{trade_id}"
        """,
    )
    assert rules.params["tiny"] == D("0.1")
    [eq, ge] = rules.rules[0].when
    assert (eq.value, ge.value, ge.param) == (D("0.3"), D("0.1"), "$tiny")
    assert type(eq.value) is Decimal
    [alert] = rules.evaluate(channels.TRADING_RESULTS, trade("0.3", fees="0.1"))
    assert alert.message == "t1"


def test_user_files_use_shipped_params_and_come_after_shipped_rules(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        rules:
          - name: huge_withdrawal
            channel: capital_data
            type: withdrawal_recorded
            when: [{field: amount_usd, op: ">=", value: $large_withdrawal_critical_usd}]
            severity: critical
            message: "{member}: {amount_usd} USD"
        """,
    )
    rules = load_rules([path], params={"large_withdrawal_critical_usd": D(30000)})
    assert [r.name for r in rules.rules][-1] == "huge_withdrawal"
    assert [
        (a.name, a.severity) for a in rules.evaluate(channels.CAPITAL_DATA, withdrawal("30000"))
    ] == [
        ("large_withdrawal", "critical"),
        ("huge_withdrawal", "critical"),
    ]
    assert [
        (a.name, a.severity) for a in rules.evaluate(channels.CAPITAL_DATA, withdrawal("25000"))
    ] == [
        ("large_withdrawal", "high"),
    ]


def test_empty_file_has_no_rules(tmp_path: Path) -> None:
    rules = load(tmp_path, "# nothing yet\n")
    assert (rules.rules, rules.channels(), dict(rules.params)) == ((), frozenset(), {})


# -- bad input: file, line and reason ------------------------------------------------------

RULE = """\
rules:
  - name: r
    channel: capital_data
    type: withdrawal_recorded
"""


def test_unknown_top_level_key(tmp_path: Path) -> None:
    fails(tmp_path, "params: {}\nrulez: []\n", 2, "unknown key 'rulez' (expected params, rules)")


def test_unknown_rule_key(tmp_path: Path) -> None:
    fails(
        tmp_path,
        RULE + "    severity: low\n    message: x\n    labelz: {}\n",
        7,
        "unknown key 'labelz'",
    )


def test_missing_rule_key(tmp_path: Path) -> None:
    fails(tmp_path, RULE + "    severity: low\n", 2, "missing message")


def test_unknown_channel(tmp_path: Path) -> None:
    text = "rules:\n  - name: r\n    channel: capital\n    type: x\n    severity: low\n    message: x\n"
    fails(
        tmp_path, text, 3, "unknown channel 'capital' (channels: alert_data, alerts, capital_data"
    )


def test_alerts_channel_is_not_for_rules(tmp_path: Path) -> None:
    text = "rules:\n  - name: r\n    channel: alerts\n    type: alert\n    severity: low\n    message: x\n"
    fails(tmp_path, text, 3, "rules cannot read alerts")


def test_type_not_on_channel(tmp_path: Path) -> None:
    text = (
        RULE.replace("withdrawal_recorded", "trade_closed") + "    severity: low\n    message: x\n"
    )
    fails(tmp_path, text, 4, "no payload type 'trade_closed' on capital_data (types: ")


def test_unknown_field(tmp_path: Path) -> None:
    text = (
        RULE
        + """\
    when:
      - {field: amount, op: ">", value: 1}
    severity: low
    message: x
"""
    )
    err = fails(tmp_path, text, 6, "withdrawal_recorded has no field 'amount'")
    assert "amount_usd" in err.reason


def test_nested_field_is_not_readable(tmp_path: Path) -> None:
    text = """\
rules:
  - name: r
    channel: settlement_data
    type: daily_settlement
    when:
      - {field: members, op: "==", value: x}
    severity: low
    message: x
"""
    fails(tmp_path, text, 6, "field 'members' of daily_settlement is not a scalar")


def test_unknown_operator(tmp_path: Path) -> None:
    text = (
        RULE
        + """\
    when:
      - field: amount_usd
        op: "=>"
        value: 1
    severity: low
    message: x
"""
    )
    fails(tmp_path, text, 7, "unknown operator '=>' (expected ==, !=, <, <=, >, >=, in, not_in)")


def test_ordering_on_text_field(tmp_path: Path) -> None:
    text = (
        RULE
        + """\
    when:
      - {field: member, op: ">", value: a}
    severity: low
    message: x
"""
    )
    fails(tmp_path, text, 6, "> needs a number field; member is text")


def test_text_value_for_decimal_field(tmp_path: Path) -> None:
    text = (
        RULE
        + """\
    when:
      - {field: amount_usd, op: ">",
         value: lots}
    severity: low
    message: x
"""
    )
    fails(tmp_path, text, 7, "must be a number, got 'lots'")


def test_bool_value_for_decimal_field(tmp_path: Path) -> None:
    text = (
        RULE
        + """\
    when:
      - {field: amount_usd, op: ">", value: true}
    severity: low
    message: x
"""
    )
    fails(tmp_path, text, 6, "must be a number")


def test_fraction_for_int_field(tmp_path: Path) -> None:
    text = """\
rules:
  - name: r
    channel: macro_data
    type: macro_series_stale
    when:
      - {field: silent_s, op: ">", value: 2.5}
    severity: low
    message: x
"""
    fails(tmp_path, text, 6, "silent_s is an int; 2.5 is not a whole number")


def test_literal_value_out_of_choices(tmp_path: Path) -> None:
    text = """\
rules:
  - name: r
    channel: system
    type: plugin_state_changed
    match: {state: crashed}
    severity: low
    message: x
"""
    fails(tmp_path, text, 5, "'crashed' is not a value of state (one of starting, running,")


def test_null_for_required_field(tmp_path: Path) -> None:
    text = (
        RULE
        + """\
    when:
      - {field: member, op: "==", value: null}
    severity: low
    message: x
"""
    )
    fails(tmp_path, text, 6, "member is never null")


def test_unknown_param(tmp_path: Path) -> None:
    text = (
        "params:\n  big_usd: 10\n"
        + RULE
        + """\
    when:
      - {field: amount_usd, op: ">", value: -$bigg_usd}
    severity: low
    message: x
"""
    )
    fails(tmp_path, text, 8, "unknown param $bigg_usd (declared: big_usd)")


def test_param_for_text_field(tmp_path: Path) -> None:
    text = (
        "params:\n  big_usd: 10\n"
        + RULE
        + """\
    match: {member: $big_usd}
    severity: low
    message: x
"""
    )
    fails(tmp_path, text, 7, "params are numbers; member is text")


def test_param_that_is_not_a_number(tmp_path: Path) -> None:
    fails(tmp_path, "params:\n  big_usd: ten\n", 2, "params.big_usd must be a number, got 'ten'")


def test_template_with_unknown_field(tmp_path: Path) -> None:
    text = RULE + '    severity: low\n    message: "{member} took {amount} USD"\n'
    fails(tmp_path, text, 6, "{amount} is not a field of withdrawal_recorded")


def test_label_template_with_index(tmp_path: Path) -> None:
    text = RULE + '    severity: low\n    labels:\n      who: "{member[0]}"\n    message: x\n'
    fails(tmp_path, text, 7, "labels.who: {member[0]} is not a field (templates name fields")


def test_template_format_spec_that_does_not_fit(tmp_path: Path) -> None:
    text = RULE + '    severity: low\n    message: "{member:.2f}"\n'
    fails(tmp_path, text, 6, "format spec '.2f' does not fit {member}")


def test_template_with_unknown_param(tmp_path: Path) -> None:
    text = RULE + '    severity: low\n    message: "{amount_usd} above {$limit}"\n'
    fails(tmp_path, text, 6, "unknown param {$limit} (declared: none)")


def test_broken_template(tmp_path: Path) -> None:
    text = RULE + '    severity: low\n    message: "{member"\n'
    fails(tmp_path, text, 6, "bad template")


def test_unknown_severity(tmp_path: Path) -> None:
    fails(tmp_path, RULE + "    severity: urgent\n    message: x\n", 5, "unknown severity 'urgent'")


def test_ladder_out_of_order(tmp_path: Path) -> None:
    text = (
        RULE
        + """\
    severity:
      field: amount_usd
      op: ">="
      levels: {high: 100, critical: 50}
    message: x
"""
    )
    fails(
        tmp_path,
        text,
        8,
        "with >= thresholds must grow from low to critical (got high 100, critical 50",
    )


def test_ladder_on_text_field(tmp_path: Path) -> None:
    text = (
        RULE
        + """\
    severity:
      field: member
      op: ">="
      levels: {high: 100}
    message: x
"""
    )
    fails(tmp_path, text, 6, "ladders need a number field; member is text")


def test_reserved_label(tmp_path: Path) -> None:
    text = RULE + '    severity: low\n    labels: {severity: "{member}"}\n    message: x\n'
    fails(tmp_path, text, 6, "label 'severity' is reserved")


def test_resolve_when_needs_resolve_message(tmp_path: Path) -> None:
    text = (
        RULE
        + """\
    severity: low
    message: x
    resolve_when:
      - {field: amount_usd, op: "<", value: 1}
"""
    )
    fails(tmp_path, text, 8, "resolve_when needs a resolve_message")


def test_duplicate_rule_name_in_one_file(tmp_path: Path) -> None:
    one = "  - name: r\n    channel: capital_data\n    type: withdrawal_recorded\n    severity: low\n    message: x\n"
    path = tmp_path / "rules.yaml"
    fails(tmp_path, "rules:\n" + one + one, 7, f"rule r: the name is already used at {path}:2")


def test_duplicate_rule_name_across_files(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        RULE.replace("name: r", "name: trade_loss") + "    severity: low\n    message: x\n",
    )
    with pytest.raises(RuleError) as caught:
        load_rules([path])
    assert str(caught.value) == (
        f"{path}:2: rule trade_loss: the name is already used at {SHIPPED_RULES}:{shipped_line('- name: trade_loss')}"
    )


def test_duplicate_param_across_files(tmp_path: Path) -> None:
    path = write(tmp_path, "params:\n  vix_extreme: 40\n")
    with pytest.raises(RuleError) as caught:
        load_rules([path])
    assert str(caught.value).startswith(
        f"{path}:2: params: vix_extreme is already declared at {SHIPPED_RULES}:"
    )
    assert "set its value in alert_manager.params instead" in str(caught.value)


def test_repeated_key(tmp_path: Path) -> None:
    text = RULE + "    severity: low\n    severity: high\n    message: x\n"
    fails(tmp_path, text, 6, "'severity' is repeated (first at line 5)")


def test_invalid_yaml(tmp_path: Path) -> None:
    fails(
        tmp_path, "rules:\n  - name: [r\n    channel: x\n", 3, "invalid YAML: expected ',' or ']'"
    )


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(RuleError) as caught:
        load_rules([path], shipped=False)
    assert (caught.value.path, caught.value.line) == (path, None)
    assert str(caught.value).startswith(f"{path}: cannot read the rule file:")


def test_rules_not_a_list(tmp_path: Path) -> None:
    fails(tmp_path, "rules:\n  name: r\n", 2, "rules must be a list")


def test_bad_rule_name(tmp_path: Path) -> None:
    fails(
        tmp_path,
        RULE.replace("name: r", "name: Big-Loss") + "    severity: low\n    message: x\n",
        2,
        "name 'Big-Loss' must be snake_case",
    )
