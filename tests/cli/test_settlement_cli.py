"""``corec settlement run|list`` and ``corec pool statement`` in-process (Typer's
CliRunner) over a SQLite data_dir whose pool history was written days ago by a
PoolService on a replay clock; the CLI itself runs on the system clock."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from typer.testing import CliRunner

from corec.cli.main import app
from corec.core.clock import ReplayClock
from corec.core.logging import close_logging
from corec.core.returns import xirr
from corec.core.store import Store
from corec.core.store.migrate import upgrade
from corec.messages.capital_data import AllocationGranted, AllocationRequest
from corec.plugins.capital_pool.config import CapitalPoolConfig, MemberConfig
from corec.plugins.capital_pool.plugin import CapitalPoolPlugin
from corec.plugins.capital_pool.service import PoolService
from tests.plugins.capital_pool.helpers import EXCHANGE, MARKET, SYMBOL, closed_for, opened_for

D = Decimal
NS = 1_000_000_000
Q8 = D("0.00000001")
CENT = D("0.01")
runner = CliRunner()


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """The CLI configures process-wide logging; put it back afterwards."""
    saved = structlog.get_config()
    root = logging.getLogger()
    root_level = root.level
    names = ("aiosqlite", "asyncio", "alembic", "sqlalchemy", "ccxt")
    noisy = {name: logging.getLogger(name).level for name in names}
    try:
        yield
    finally:
        close_logging()
        structlog.configure(**saved)
        root.setLevel(root_level)
        for name, level in noisy.items():
            logging.getLogger(name).setLevel(level)


def floor_cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_DOWN)


def ceil_units(value: Decimal) -> Decimal:
    return value.quantize(Q8, rounding=ROUND_UP)


def ns_at(day: date, hour: int = 0, minute: int = 0) -> int:
    moment = datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
    return int(moment.timestamp()) * NS


@dataclass
class Pool:
    """A data_dir with a pool history from ``d0`` (five days ago, UTC)."""

    tmp: Path
    config: str
    d0: date
    today: date

    def day(self, offset: int) -> str:
        return (self.d0 + timedelta(days=offset)).isoformat()


def corec(*args: str, config: str | None = None) -> Any:
    full = [*args, "--config", config] if config is not None else list(args)
    return runner.invoke(app, full, catch_exceptions=False)


def write_config(tmp: Path) -> str:
    data = {
        "node": {"data_dir": str(tmp / "var")},
        "capital_pool": {
            "members": [{"name": "alice"}, {"name": "bob", "reinvest": False}],
        },
        "daily_settlement": {"loss_alert_pct": 5},
    }
    path = tmp / "corec.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return str(path)


async def write_history(tmp: Path, d0: date) -> None:
    """d0 10:00 alice 1,200 and bob 700; d0+1 a trade makes 39.5 USD net of 0.5 of fees;
    d0+2 11:00 alice withdraws 100.10."""
    store = Store(f"sqlite:///{tmp / 'var' / 'capital_pool.db'}", name="capital_pool")
    try:
        await upgrade(store, CapitalPoolPlugin.migrations)
        config = CapitalPoolConfig(
            members=(MemberConfig(name="alice"), MemberConfig(name="bob", reinvest=False))
        )
        clock = ReplayClock(ns_at(d0, 10))
        pool = PoolService(store, config, clock)
        await pool.open()
        await pool.register_members()
        await pool.contribute("alice", D(1200), "c-alice")
        await pool.contribute("bob", D(700), "c-bob")
        d1 = d0 + timedelta(days=1)
        clock.advance_to(ns_at(d1, 9))
        granted = await pool.allocate(
            AllocationRequest(
                strategy="sma", exchange=EXCHANGE, market=MARKET, symbol=SYMBOL, side="long",
                stop_loss_pct=D(8),
            )
        )  # fmt: skip
        assert isinstance(granted, AllocationGranted) and granted.amount_usd == D(475)
        alloc = pool.ledger.allocations[granted.allocation_id]
        await pool.on_position_opened(
            opened_for(alloc, "t-1", "0.02", "20000", opened_ts_ns=ns_at(d1, 9))
        )
        clock.advance_to(ns_at(d1, 12))
        await pool.on_trade_closed(
            closed_for(alloc, "t-1", "0.02", "20000", "22000", "0.5",
                       opened_ts_ns=ns_at(d1, 9), closed_ts_ns=ns_at(d1, 12))
        )  # fmt: skip
        clock.advance_to(ns_at(d0 + timedelta(days=2), 11))
        await pool.withdraw("alice", D("100.10"), "w-alice")
        assert pool.ledger.nav_usd() == D("1839.40")
    finally:
        await store.dispose()


@pytest.fixture
def pool(tmp_path: Path) -> Pool:
    today = datetime.now(UTC).date()
    d0 = today - timedelta(days=5)
    config = write_config(tmp_path)
    asyncio.run(write_history(tmp_path, d0))
    return Pool(tmp_path, config, d0, today)


# figures of the history, worked out by hand
NAV_AFTER_TRADE = D("1939.5")
NAVPU_AFTER_TRADE = D("1.02078947")
BURNED_BY_WITHDRAWAL = ceil_units(D("100.10") * 1900 / NAV_AFTER_TRADE)
UNITS_AFTER_WITHDRAWAL = D(1900) - BURNED_BY_WITHDRAWAL
NAV_AFTER_WITHDRAWAL = D("1839.40")
BOB_SHARE = D("14.55")  # floor(39.5 × 700 / 1900)


def numbers(data: Any) -> Any:
    """JSON with decimal strings as Decimals: ``"1939.50"`` and ``"1939.5"`` compare equal
    (a day read back from the store may drop trailing zeros)."""
    if isinstance(data, dict):
        return {k: numbers(v) for k, v in data.items()}
    if isinstance(data, list):
        return [numbers(v) for v in data]
    if isinstance(data, str):
        try:
            return D(data)
        except ArithmeticError:
            return data
    return data


def run_json(pool: Pool, *args: str) -> Any:
    result = corec(*args, "--json", config=pool.config)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


# -- corec settlement run / list --------------------------------------------------------


def test_settlement_run_up_to_a_date_as_json(pool: Pool) -> None:
    records = run_json(pool, "settlement", "run", "--date", pool.day(1))
    assert [r["date"] for r in records] == [pool.day(0), pool.day(1)]
    day0, day1 = records
    assert day0["cutoff_ts_ns"] == ns_at(pool.d0 + timedelta(days=1))
    assert (day0["valuation"], day0["nav_usd"], day0["nav_per_unit"]) == (
        "last_entry", "1900.00", "1.00000000"
    )  # fmt: skip
    assert (day0["day_return"], day0["net_flows_usd"]) == ("0E-8", "1900")
    assert D(day0["day_return"]) == 0
    assert day1["valuation"] == "last_entry"  # alice's withdrawal came after its cut-off
    assert D(day1["nav_usd"]) == NAV_AFTER_TRADE
    assert D(day1["nav_per_unit"]) == NAVPU_AFTER_TRADE
    assert (D(day1["realized_pnl_usd"]), D(day1["fees_usd"])) == (D("39.5"), D("0.5"))
    assert D(day1["day_return"]) == D("0.02078947")
    assert D(day1["twr_since_inception"]) == D("0.02078947")
    assert D(day1["distributions_usd"]) == BOB_SHARE
    members = {m["member"]: m for m in day1["members"]}
    assert set(members) == {"alice", "bob"}
    bob = members["bob"]
    assert (D(bob["units"]), D(bob["equity_usd"]), D(bob["pnl_usd"])) == (
        D(700), D("714.55"), D("14.55")
    )  # fmt: skip
    assert (D(bob["distribution_usd"]), bob["distribution_queued"]) == (BOB_SHARE, False)
    assert D(bob["money_weighted_return"]) == xirr(
        [(ns_at(pool.d0, 10), D(-700)), (ns_at(pool.d0 + timedelta(days=2)), D("714.55"))]
    )
    alice = members["alice"]
    assert (D(alice["equity_usd"]), D(alice["distribution_usd"])) == (D("1224.94"), 0)

    # a second run answers the stored day, and pays nothing again
    again = run_json(pool, "settlement", "run", "--date", pool.day(1))
    assert numbers(again) == numbers([day1])

    # the table output
    shown = corec("settlement", "run", "--date", pool.day(1), config=pool.config)
    assert shown.exit_code == 0, shown.stderr
    assert pool.day(1) in shown.stdout and "Members at the close of" in shown.stdout
    assert "+2.08%" in shown.stdout and "14.55" in shown.stdout


def test_settlement_run_every_day_due_then_nothing(pool: Pool) -> None:
    records = run_json(pool, "settlement", "run")
    assert [r["date"] for r in records] == [pool.day(i) for i in range(5)]
    assert pool.day(4) == (pool.today - timedelta(days=1)).isoformat()
    assert [D(r["distributions_usd"]) for r in records] == [0, BOB_SHARE, 0, 0, 0]
    # day 2: alice's withdrawal; bob's distribution was paid now (today), not in these days
    assert D(records[2]["net_flows_usd"]) == D("-100.10")
    assert D(records[2]["nav_usd"]) == NAV_AFTER_WITHDRAWAL
    assert run_json(pool, "settlement", "run") == []
    shown = corec("settlement", "run", config=pool.config)
    assert shown.exit_code == 0
    assert "nothing to settle" in shown.stdout


def test_settlement_run_refuses_a_day_not_over_and_a_bad_date(pool: Pool) -> None:
    today = corec("settlement", "run", "--date", pool.today.isoformat(), config=pool.config)
    assert today.exit_code == 2
    message = " ".join(today.stderr.split())
    assert f"{pool.today.isoformat()} is not over" in message
    assert f"the last day due is {pool.day(4)}" in message

    future = corec("settlement", "run", "--date", pool.day(30), config=pool.config)
    assert future.exit_code == 2 and "is not over" in future.stderr

    before = corec("settlement", "run", "--date", pool.day(-1), config=pool.config)
    assert before.exit_code == 2
    assert f"is before the pool's first day, {pool.day(0)}" in " ".join(before.stderr.split())

    bad = corec("settlement", "run", "--date", "2026-02-30", config=pool.config)
    assert bad.exit_code == 2
    assert "--date: expected a date as YYYY-MM-DD, got '2026-02-30'" in bad.stderr
    # nothing was settled by the refusals
    assert run_json(pool, "settlement", "list") == []


def test_settlement_list(pool: Pool) -> None:
    shown = corec("settlement", "list", config=pool.config)
    assert shown.exit_code == 0 and "no settled days yet" in shown.stdout
    settled = run_json(pool, "settlement", "run", "--date", pool.day(2))
    listed = run_json(pool, "settlement", "list")
    assert numbers(listed) == numbers(settled)
    assert [r["date"] for r in listed] == [pool.day(0), pool.day(1), pool.day(2)]
    one = run_json(pool, "settlement", "list", "--from", pool.day(1), "--to", pool.day(1))
    assert numbers(one) == numbers([settled[1]])
    tail = run_json(pool, "settlement", "list", "--from", pool.day(1))
    assert [r["date"] for r in tail] == [pool.day(1), pool.day(2)]
    table = corec("settlement", "list", "--to", pool.day(1), config=pool.config)
    assert table.exit_code == 0
    assert "2 settled day(s)" in table.stdout and pool.day(2) not in table.stdout
    bad = corec("settlement", "list", "--from", "yesterday", config=pool.config)
    assert bad.exit_code == 2 and "--from: expected a date as YYYY-MM-DD" in bad.stderr


# -- corec pool statement ---------------------------------------------------------------


def test_statement_of_a_past_period_as_json(pool: Pool) -> None:
    s = run_json(pool, "pool", "statement", "bob", "--from", pool.day(0), "--to", pool.day(1))
    assert (s["member"], s["from"], s["to"]) == ("bob", pool.day(0), pool.day(1))
    assert (D(s["opening_equity_usd"]), D(s["opening_units"])) == (0, 0)
    assert D(s["opening_nav_per_unit"]) == 1
    assert (D(s["closing_units"]), D(s["closing_equity_usd"])) == (D(700), D("714.55"))
    assert D(s["closing_nav_per_unit"]) == NAVPU_AFTER_TRADE
    assert s["valuation"] == "last_entry"
    assert D(s["contributions_usd"]) == D(700)
    assert D(s["withdrawals_usd"]) == D(s["distributions_usd"]) == 0
    assert D(s["net_flow_usd"]) == D(700)
    assert D(s["pnl_usd"]) == D("14.55") == D("714.55") - 0 - D(700)
    assert D(s["time_weighted_return"]) == D("0.02078947")
    end = ns_at(pool.d0 + timedelta(days=2))
    assert D(s["money_weighted_return"]) == xirr(
        [(ns_at(pool.d0, 10), D(-700)), (end, D("714.55"))]
    )
    assert [(line["kind"], line["id"]) for line in s["lines"]] == [
        ("opening", ""),
        ("contribution", "c-bob"),
        ("closing", ""),
    ]
    contribution = s["lines"][1]
    assert (D(contribution["amount_usd"]), D(contribution["units"])) == (D(700), D(700))
    assert D(contribution["units_after"]) == D(700)
    assert D(contribution["nav_per_unit"]) == 1


def test_statement_with_a_withdrawal_and_a_distribution(pool: Pool) -> None:
    # the settlement pays bob's 14.55 USD now, at the NAV per unit after alice's withdrawal
    run_json(pool, "settlement", "run", "--date", pool.day(1))
    burned = ceil_units(BOB_SHARE * UNITS_AFTER_WITHDRAWAL / NAV_AFTER_WITHDRAWAL)
    units_now = UNITS_AFTER_WITHDRAWAL - burned
    nav_now = NAV_AFTER_WITHDRAWAL - BOB_SHARE

    s = run_json(pool, "pool", "statement", "bob", "--from", pool.day(0))
    assert s["to"] == pool.today.isoformat() and s["valuation"] == "live"
    closing = floor_cents((700 - burned) * nav_now / units_now)
    assert D(s["closing_units"]) == 700 - burned
    assert D(s["closing_equity_usd"]) == closing
    assert D(s["closing_nav_per_unit"]) == (nav_now / units_now).quantize(Q8)
    assert (D(s["contributions_usd"]), D(s["distributions_usd"])) == (D(700), BOB_SHARE)
    assert D(s["net_flow_usd"]) == D(700) - BOB_SHARE
    assert D(s["pnl_usd"]) == closing - 0 - (D(700) - BOB_SHARE)
    kinds = [(line["kind"], line["id"]) for line in s["lines"]]
    assert kinds == [
        ("opening", ""),
        ("contribution", "c-bob"),
        ("distribution", f"{pool.day(1)}:bob"),
        ("closing", ""),
    ]
    paid = s["lines"][2]
    assert (D(paid["amount_usd"]), D(paid["units"])) == (-BOB_SHARE, -burned)
    assert D(paid["units_after"]) == 700 - burned
    assert D(paid["nav_per_unit"]) == (NAV_AFTER_WITHDRAWAL / UNITS_AFTER_WITHDRAWAL).quantize(Q8)

    # the default period starts at the member's first flow
    default = run_json(pool, "pool", "statement", "bob")
    assert default["from"] == pool.day(0)
    assert default["closing_equity_usd"] == s["closing_equity_usd"]


def test_statement_as_csv(pool: Pool) -> None:
    result = corec(
        "pool", "statement", "alice", "--from", pool.day(0), "--to", pool.day(2), "--csv",
        config=pool.config,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == [
        "ts", "kind", "id", "amount_usd", "units", "nav_per_unit", "units_after", "equity_usd",
    ]  # fmt: skip
    assert [r["kind"] for r in rows] == ["opening", "contribution", "withdrawal", "closing"]
    opening, paid_in, paid_out, closing = rows
    assert opening["ts"] == f"{pool.day(0)}T00:00:00Z"
    assert (D(opening["units_after"]), D(opening["equity_usd"])) == (0, 0)
    assert (paid_in["id"], D(paid_in["amount_usd"]), D(paid_in["units"])) == (
        "c-alice", D(1200), D(1200)
    )  # fmt: skip
    assert paid_in["ts"] == f"{pool.day(0)}T10:00:00Z" and paid_in["equity_usd"] == ""
    assert (paid_out["id"], D(paid_out["amount_usd"])) == ("w-alice", D("-100.10"))
    assert D(paid_out["units"]) == -BURNED_BY_WITHDRAWAL
    assert D(paid_out["units_after"]) == 1200 - BURNED_BY_WITHDRAWAL
    assert D(paid_out["nav_per_unit"]) == NAVPU_AFTER_TRADE
    assert closing["ts"] == f"{pool.day(3)}T00:00:00Z"
    equity = floor_cents(
        (1200 - BURNED_BY_WITHDRAWAL) * NAV_AFTER_WITHDRAWAL / UNITS_AFTER_WITHDRAWAL
    )
    assert D(closing["units_after"]) == 1200 - BURNED_BY_WITHDRAWAL
    assert D(closing["equity_usd"]) == equity == D("1124.84")

    s = run_json(pool, "pool", "statement", "alice", "--from", pool.day(0), "--to", pool.day(2))
    assert D(s["closing_equity_usd"]) == equity
    assert D(s["pnl_usd"]) == equity - 0 - (D(1200) - D("100.10"))


def test_statement_of_a_member_added_and_paid_in_through_the_cli(pool: Pool) -> None:
    added = corec("members", "add", "carol", "--no-reinvest", config=pool.config)
    assert added.exit_code == 0, added.stderr
    assert "member carol: added (profit paid out daily)" in added.stdout
    paid = corec("pool", "contribute", "carol", "250", "--id", "c-carol", config=pool.config)
    assert paid.exit_code == 0, paid.stderr
    navpu = NAV_AFTER_WITHDRAWAL / UNITS_AFTER_WITHDRAWAL
    units = (D(250) * UNITS_AFTER_WITHDRAWAL / NAV_AFTER_WITHDRAWAL).quantize(
        Q8, rounding=ROUND_DOWN
    )
    s = run_json(pool, "pool", "statement", "carol")
    assert (s["from"], s["to"]) == (pool.today.isoformat(), pool.today.isoformat())
    assert (D(s["opening_units"]), D(s["opening_equity_usd"])) == (0, 0)
    assert D(s["opening_nav_per_unit"]) == navpu.quantize(Q8)  # the pool at today's midnight
    assert D(s["closing_units"]) == units
    closing = floor_cents(units * (NAV_AFTER_WITHDRAWAL + 250) / (UNITS_AFTER_WITHDRAWAL + units))
    assert D(s["closing_equity_usd"]) == closing
    assert D(s["contributions_usd"]) == D(250)
    assert D(s["pnl_usd"]) == closing - D(250)
    assert D(s["time_weighted_return"]) == 0
    assert s["money_weighted_return"] is None  # under a day of history
    assert [line["kind"] for line in s["lines"]] == ["opening", "contribution", "closing"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("zed",), "unknown member 'zed'; members are: alice, bob"),
        (("bob", "--from", "DAY2", "--to", "DAY1"), "--from DAY2 is after --to DAY1"),
        (("bob", "--from", "2026-1-5"), "--from: expected a date as YYYY-MM-DD, got '2026-1-5'"),
        (("bob", "--to", "2026/11/05"), "--to: expected a date as YYYY-MM-DD"),
        (("bob", "--from", "FUTURE"), "is after --to"),  # --to defaults to today
        (("bob", "--from", "FUTURE", "--to", "FUTURE"), "--from FUTURE is in the future"),
        (("bob", "--json", "--csv"), "--json and --csv: choose one"),
    ],
)
def test_statement_refusals_exit_2(pool: Pool, args: tuple[str, ...], message: str) -> None:
    names = {"DAY1": pool.day(1), "DAY2": pool.day(2), "FUTURE": pool.day(10)}
    args = tuple(names.get(a, a) for a in args)
    for name, day in names.items():
        message = message.replace(name, day)
    result = corec("pool", "statement", *args, config=pool.config)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert message in " ".join(result.stderr.split())
    assert result.stdout == ""
