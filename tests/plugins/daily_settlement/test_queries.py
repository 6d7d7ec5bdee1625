"""daily_settlement's query endpoints through a real node and bus (``daily_settlement``
and ``capital_pool``, a replay clock moved by hand), on SQLite and on PostgreSQL.

Three settled days (as in test_settlement): 2026-01-01 alice pays in 1,200 USD and bob
(profit paid out) 700 USD; 2026-01-02 a trade makes 39.5 USD net of 0.5 USD of fees and
bob's share, 14.55 USD, is paid at the day's settlement; 2026-01-03 nothing else. Days
are settled by the plugin's own service just after each cut-off, over the
``capital_pool.close_day`` request, as a running node does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_UP, Decimal
from typing import Any

import pytest

from corec.core.clock import ReplayClock
from corec.core.config import CorecConfig
from corec.core.nucleus import Node
from corec.core.queries import Refused
from corec.messages.capital_data import (
    ALLOCATE,
    CONTRIBUTE,
    AllocationGranted,
    AllocationRequest,
    ContributeRequest,
    ContributionRecorded,
)
from corec.messages.settlement_data import (
    MEMBER_SETTLEMENTS,
    SETTLEMENTS,
    DailySettlement,
    MemberSettlementRow,
    MemberSettlementsPage,
    MemberSettlementsRequest,
    SettlementsPage,
    SettlementsRequest,
    SettlementSummary,
)
from corec.plugins.capital_pool.plugin import CapitalPoolPlugin
from corec.plugins.daily_settlement.plugin import DailySettlementPlugin
from tests.harness import started_node
from tests.plugins.capital_pool.helpers import EXCHANGE, MARKET, SYMBOL, closed_for, opened_for

D = Decimal
NS = 1_000_000_000
Q8 = D("0.00000001")
MakeConfig = Callable[..., CorecConfig]


def at(day: int, hour: int = 0, minute: int = 0) -> int:
    """UTC ns of 2026-01-<day> hour:minute."""
    return int(datetime(2026, 1, day, hour, minute, tzinfo=UTC).timestamp()) * NS


SHARE = D("14.55")  # bob's 700/1,900 of 39.5 USD, rounded down to cents
BURNED = (SHARE * 1900 / D("1939.5")).quantize(Q8, rounding=ROUND_UP)
NAVPU2 = D("1.02078947")


@dataclass
class Days:
    node: Node
    settled: list[DailySettlement]

    async def ask(self, endpoint: str, payload: Any) -> Any:
        return await self.node.bus.request(endpoint, payload, timeout_s=10)


def node_config(make_config: MakeConfig, db_url: str) -> CorecConfig:
    def url(name: str) -> str:
        return db_url.replace("test.db", f"{name}.db") if db_url.startswith("sqlite") else db_url

    return make_config(
        {
            "node": {"plugins": ["daily_settlement", "capital_pool"], "clock": "replay"},
            "capital_pool": {"database_url": url("capital_pool")},
            "daily_settlement": {"database_url": url("daily_settlement")},
        }
    )


@pytest.fixture
async def days(make_config: MakeConfig, db_url: str) -> AsyncIterator[Days]:
    async with started_node(node_config(make_config, db_url)) as (node, _):
        clock = node.clock
        assert isinstance(clock, ReplayClock)
        pool = node.plugin("capital_pool")
        settlement = node.plugin("daily_settlement")
        assert isinstance(pool, CapitalPoolPlugin)
        assert isinstance(settlement, DailySettlementPlugin)
        d = Days(node, [])

        clock.advance_to(at(1, 10))
        for member, amount, reinvest in (("alice", 1200, True), ("bob", 700, False)):
            recorded = await d.ask(
                CONTRIBUTE,
                ContributeRequest(
                    member=member,
                    amount_usd=D(amount),
                    contribution_id=f"c-{member}",
                    reinvest=reinvest,
                ),
            )
            assert isinstance(recorded, ContributionRecorded), recorded
        clock.advance_to(at(2, 0, 5))
        d.settled += await settlement.service.run_due()

        clock.advance_to(at(2, 9))
        granted = await d.ask(
            ALLOCATE,
            AllocationRequest(
                strategy="sma",
                exchange=EXCHANGE,
                market=MARKET,
                symbol=SYMBOL,
                side="long",
                stop_loss_pct=D(8),
            ),
        )
        assert isinstance(granted, AllocationGranted) and granted.amount_usd == 475
        alloc = pool.service.ledger.allocations[granted.allocation_id]
        await pool.service.on_position_opened(
            opened_for(alloc, "t-win", "0.02", "20000", opened_ts_ns=at(2, 9))
        )
        clock.advance_to(at(2, 12))
        await pool.service.on_trade_closed(
            closed_for(
                alloc,
                "t-win",
                "0.02",
                "20000",
                "22000",
                "0.5",
                opened_ts_ns=at(2, 9),
                closed_ts_ns=at(2, 12),
            )
        )
        for day in (3, 4):
            clock.advance_to(at(day, 0, 5))
            d.settled += await settlement.service.run_due()
        assert [s.date for s in d.settled] == ["2026-01-01", "2026-01-02", "2026-01-03"]
        yield d


def summary_of(s: DailySettlement) -> SettlementSummary:
    """What the endpoint must answer for a settlement the service published."""
    return SettlementSummary(
        date=s.date,
        cutoff_ts_ns=s.cutoff_ts_ns,
        nav_usd=s.nav_usd,
        nav_per_unit=s.nav_per_unit,
        units=s.units,
        realized_pnl_usd=s.realized_pnl_usd,
        fees_usd=s.fees_usd,
        return_pct=s.day_return * 100,
        twr_since_inception_pct=s.twr_since_inception * 100,
        net_flows_usd=s.net_flows_usd,
        distributions_usd=s.distributions_usd,
        valuation=s.valuation,
    )


def member_rows_of(s: DailySettlement) -> list[MemberSettlementRow]:
    return [
        MemberSettlementRow(
            date=s.date,
            member=x.member,
            units=x.units,
            equity_usd=x.equity_usd,
            pnl_usd=x.pnl_usd,
            twr=x.time_weighted_return,
            xirr=x.money_weighted_return,
            distribution_usd=x.distribution_usd,
            distribution_queued=x.distribution_queued,
        )
        for x in sorted(s.members, key=lambda x: x.member)
    ]


# -- daily_settlement.settlements ---------------------------------------------------------


async def test_settlements_newest_first_with_the_published_figures(days: Days) -> None:
    page = await days.ask(SETTLEMENTS, SettlementsRequest())
    assert isinstance(page, SettlementsPage)
    assert page.total == 3
    assert page.items == tuple(summary_of(s) for s in reversed(days.settled))
    day3, day2, day1 = page.items
    assert (day1.date, day1.cutoff_ts_ns, day1.valuation) == ("2026-01-01", at(2), "live")
    assert (day1.nav_usd, day1.nav_per_unit, day1.units) == (D("1900.00"), D(1), D(1900))
    assert (day1.return_pct, day1.net_flows_usd, day1.distributions_usd) == (0, D(1900), 0)
    assert (day2.nav_usd, day2.nav_per_unit, day2.units) == (D("1939.50"), NAVPU2, D(1900))
    assert (day2.realized_pnl_usd, day2.fees_usd) == (D("39.50"), D("0.50"))
    assert day2.return_pct == day2.twr_since_inception_pct == D("2.078947")
    assert day2.distributions_usd == SHARE
    # bob's distribution is day 3's flow: paid at 00:05, NAV and units fall with it
    assert (day3.nav_usd, day3.units) == (D("1939.5") - SHARE, 1900 - BURNED)
    assert day3.net_flows_usd == -SHARE
    assert (day3.realized_pnl_usd, day3.distributions_usd) == (0, 0)
    assert day3.return_pct == (day3.nav_per_unit / NAVPU2 - 1).quantize(Q8) * 100


@pytest.mark.parametrize(
    ("request_", "dates", "total"),
    [
        (SettlementsRequest(from_date="2026-01-02"), ["2026-01-03", "2026-01-02"], 2),
        (SettlementsRequest(to_date="2026-01-01"), ["2026-01-01"], 1),
        (SettlementsRequest(from_date="2026-01-02", to_date="2026-01-02"), ["2026-01-02"], 1),
        (SettlementsRequest(from_date="2026-02-01"), [], 0),
        (SettlementsRequest(limit=1, offset=1), ["2026-01-02"], 3),
        (SettlementsRequest(limit=2, offset=2), ["2026-01-01"], 3),
    ],
)
async def test_settlements_filters_and_paging(
    days: Days, request_: SettlementsRequest, dates: list[str], total: int
) -> None:
    page = await days.ask(SETTLEMENTS, request_)
    assert ([s.date for s in page.items], page.total) == (dates, total)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (SettlementsRequest(from_date="2026-02-30"), "from_date"),
        (SettlementsRequest(to_date="01/02/2026"), "to_date"),
        (SettlementsRequest(from_date="2026-01-03", to_date="2026-01-01"), "from_date"),
        (SettlementsRequest(limit=1001), "limit"),
        (SettlementsRequest(offset=-1), "offset"),
    ],
)
async def test_settlements_refusals(days: Days, request_: SettlementsRequest, field: str) -> None:
    refused = await days.ask(SETTLEMENTS, request_)
    assert isinstance(refused, Refused)
    assert (refused.code, refused.field) == ("invalid", field)


# -- daily_settlement.member_settlements ----------------------------------------------------


async def test_member_settlements_newest_day_first_members_by_name(days: Days) -> None:
    page = await days.ask(MEMBER_SETTLEMENTS, MemberSettlementsRequest())
    assert isinstance(page, MemberSettlementsPage)
    expected = [row for s in reversed(days.settled) for row in member_rows_of(s)]
    assert page == MemberSettlementsPage(total=6, items=tuple(expected))
    bob2 = next(r for r in page.items if (r.date, r.member) == ("2026-01-02", "bob"))
    assert (bob2.units, bob2.equity_usd, bob2.pnl_usd) == (D(700), D("714.55"), D("14.55"))
    assert (bob2.twr, bob2.distribution_usd, bob2.distribution_queued) == (NAVPU2 - 1, SHARE, False)
    alice2 = next(r for r in page.items if (r.date, r.member) == ("2026-01-02", "alice"))
    assert (alice2.equity_usd, alice2.pnl_usd, alice2.distribution_usd) == (
        D("1224.94"), D("24.94"), 0
    )  # fmt: skip
    bob1 = next(r for r in page.items if (r.date, r.member) == ("2026-01-01", "bob"))
    assert bob1.xirr is None  # under a day of history


async def test_member_settlements_member_filter_isolates_one_member(days: Days) -> None:
    page = await days.ask(MEMBER_SETTLEMENTS, MemberSettlementsRequest(member="bob"))
    assert page.total == 3
    assert [(r.date, r.member) for r in page.items] == [
        ("2026-01-03", "bob"),
        ("2026-01-02", "bob"),
        ("2026-01-01", "bob"),
    ]
    bob3 = page.items[0]
    assert bob3.units == 700 - BURNED and bob3.distribution_usd == 0
    # a name with no settled day (not a member, or joined today) has nothing yet
    assert await days.ask(MEMBER_SETTLEMENTS, MemberSettlementsRequest(member="zed")) == (
        MemberSettlementsPage(total=0, items=())
    )


@pytest.mark.parametrize(
    ("request_", "rows", "total"),
    [
        (
            MemberSettlementsRequest(from_date="2026-01-02", to_date="2026-01-02"),
            [("2026-01-02", "alice"), ("2026-01-02", "bob")],
            2,
        ),
        (
            MemberSettlementsRequest(member="alice", to_date="2026-01-02"),
            [("2026-01-02", "alice"), ("2026-01-01", "alice")],
            2,
        ),
        (
            MemberSettlementsRequest(limit=2, offset=1),
            [("2026-01-03", "bob"), ("2026-01-02", "alice")],
            6,
        ),
        (MemberSettlementsRequest(member="alice", limit=1, offset=2), [("2026-01-01", "alice")], 3),
    ],
)
async def test_member_settlements_filters_and_paging(
    days: Days, request_: MemberSettlementsRequest, rows: list[tuple[str, str]], total: int
) -> None:
    page = await days.ask(MEMBER_SETTLEMENTS, request_)
    assert ([(r.date, r.member) for r in page.items], page.total) == (rows, total)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (MemberSettlementsRequest(from_date="2026-1-2"), "from_date"),
        (MemberSettlementsRequest(to_date=""), "to_date"),
        (MemberSettlementsRequest(from_date="2026-01-02", to_date="2026-01-01"), "from_date"),
        (MemberSettlementsRequest(member=""), "member"),
        (MemberSettlementsRequest(limit=0), "limit"),
    ],
)
async def test_member_settlements_refusals(
    days: Days, request_: MemberSettlementsRequest, field: str
) -> None:
    refused = await days.ask(MEMBER_SETTLEMENTS, request_)
    assert isinstance(refused, Refused)
    assert (refused.code, refused.field) == ("invalid", field)


async def test_the_plugin_declares_its_endpoints() -> None:
    assert set(DailySettlementPlugin.serves) == {SETTLEMENTS, MEMBER_SETTLEMENTS}
