"""capital_pool's query endpoints through a real node and bus (``capital_pool`` alone, a
replay clock moved by hand), on SQLite and on PostgreSQL (``db_url``).

One history, worked out from the pool's rules (units at NAV per unit, cents rounded
down for what is paid out, units burned rounded up):

- 2026-01-01 10:00 alice (configured) pays in 1,200 USD; 10:05 bob, new, pays in
  700 USD through ``capital_pool.contribute`` with ``reinvest: false``;
- 2026-01-02 a trade makes 39.5 USD net of 0.5 USD of fees (NAV 1,939.5);
  13:00 alice withdraws 100.10 USD;
- 14:00 two allocations of 459.85 USD each take free cash down to 919.70 USD;
  15:00 alice asks for 1,000 USD (queued), 15:01 bob for 100 USD (queued behind it,
  then cancelled).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any

import pytest

from corec.core import channels
from corec.core.clock import ReplayClock
from corec.core.config import CorecConfig
from corec.core.nucleus import Node
from corec.core.queries import Refused
from corec.core.returns import xirr
from corec.messages.capital_data import (
    ALLOCATE,
    CONTRIBUTE,
    FLOWS,
    MEMBERS,
    STATE,
    STATEMENT,
    WITHDRAW,
    AllocationGranted,
    AllocationRequest,
    ContributeRequest,
    ContributionRecorded,
    FlowRecord,
    FlowsPage,
    FlowsRequest,
    MembersPage,
    MembersRequest,
    MemberStatement,
    MemberSummary,
    PoolState,
    PoolStateRequest,
    StatementRequest,
    WithdrawalQueued,
    WithdrawalRecorded,
    WithdrawRequest,
)
from corec.plugins.capital_pool.plugin import CapitalPoolPlugin
from corec.plugins.capital_pool.service import PoolService
from tests.harness import Recorder, started_node
from tests.plugins.capital_pool.helpers import EXCHANGE, MARKET, SYMBOL, closed_for, opened_for

D = Decimal
NS = 1_000_000_000
Q8 = D("0.00000001")
CENT = D("0.01")
MakeConfig = Callable[..., CorecConfig]


def at(day: int, hour: int = 0, minute: int = 0) -> int:
    """UTC ns of 2026-01-<day> hour:minute."""
    return int(datetime(2026, 1, day, hour, minute, tzinfo=UTC).timestamp()) * NS


def floor_cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_DOWN)


def ceil_units(value: Decimal) -> Decimal:
    return value.quantize(Q8, rounding=ROUND_UP)


# the history's figures
NAV_AFTER_TRADE = D("1939.5")
NAVPU_AFTER_TRADE = (NAV_AFTER_TRADE / 1900).quantize(Q8)  # 1.02078947
BURNED = ceil_units(D("100.10") * 1900 / NAV_AFTER_TRADE)
UNITS = 1900 - BURNED
NAV = NAV_AFTER_TRADE - D("100.10")  # 1,839.40
GRANT = floor_cents(NAV * D("0.02") / D("0.08"))  # growth phase: 2 % risk, 8 % stop
ALICE_UNITS = 1200 - BURNED
ALICE_EQUITY = floor_cents(ALICE_UNITS * NAV / UNITS)
BOB_EQUITY = floor_cents(700 * NAV / UNITS)


def pool_config(make_config: MakeConfig, db_url: str) -> CorecConfig:
    return make_config(
        {
            "node": {"plugins": ["capital_pool"], "clock": "replay"},
            "capital_pool": {"database_url": db_url, "members": [{"name": "alice"}]},
        }
    )


@dataclass
class Pool:
    node: Node
    rec: Recorder

    @property
    def service(self) -> PoolService:
        plugin = self.node.plugin("capital_pool")
        assert isinstance(plugin, CapitalPoolPlugin)
        return plugin.service

    def advance(self, ts_ns: int) -> None:
        assert isinstance(self.node.clock, ReplayClock)
        self.node.clock.advance_to(ts_ns)

    async def ask(self, endpoint: str, payload: Any) -> Any:
        return await self.node.bus.request(endpoint, payload, timeout_s=10)

    async def trade(self, trade_id: str, *, close_at: int | None) -> AllocationGranted:
        """An allocation for a long with an 8 % stop, filled at 20,000 for 0.02 BTC;
        closed at 22,000 with 0.5 USD of fees at ``close_at`` if given."""
        granted = await self.ask(
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
        assert isinstance(granted, AllocationGranted), granted
        alloc = self.service.ledger.allocations[granted.allocation_id]
        now = self.node.clock.now_ns()
        await self.service.on_position_opened(
            opened_for(alloc, trade_id, "0.02", "20000", opened_ts_ns=now)
        )
        if close_at is not None:
            self.advance(close_at)
            await self.service.on_trade_closed(
                closed_for(
                    alloc,
                    trade_id,
                    "0.02",
                    "20000",
                    "22000",
                    "0.5",
                    opened_ts_ns=now,
                    closed_ts_ns=close_at,
                )
            )
        return granted


@asynccontextmanager
async def history(make_config: MakeConfig, db_url: str) -> AsyncIterator[Pool]:
    """A node with the module docstring's history written through the endpoints."""
    async with started_node(pool_config(make_config, db_url), channels.CAPITAL_DATA) as (
        node,
        rec,
    ):
        pool = Pool(node, rec)
        pool.advance(at(1, 10))
        alice = await pool.ask(
            CONTRIBUTE,
            ContributeRequest(member="alice", amount_usd=D(1200), contribution_id="c-alice"),
        )
        assert alice == ContributionRecorded(
            contribution_id="c-alice", member="alice", amount_usd=D(1200), units=D(1200),
            nav_per_unit=D(1),
        )  # fmt: skip
        pool.advance(at(1, 10, 5))
        bob = await pool.ask(
            CONTRIBUTE,
            ContributeRequest(
                member="bob", amount_usd=D(700), contribution_id="c-bob", reinvest=False
            ),
        )
        assert bob == ContributionRecorded(
            contribution_id="c-bob", member="bob", amount_usd=D(700), units=D(700),
            nav_per_unit=D(1),
        )  # fmt: skip

        pool.advance(at(2, 9))
        assert (await pool.trade("t-win", close_at=at(2, 12))).amount_usd == D(475)
        assert pool.service.ledger.nav_usd() == NAV_AFTER_TRADE

        pool.advance(at(2, 13))
        paid = await pool.ask(
            WITHDRAW,
            WithdrawRequest(member="alice", amount_usd=D("100.10"), withdrawal_id="w-alice"),
        )
        assert paid == WithdrawalRecorded(
            withdrawal_id="w-alice", member="alice", amount_usd=D("100.10"), units=BURNED,
            nav_per_unit=NAVPU_AFTER_TRADE,
        )  # fmt: skip

        pool.advance(at(2, 14))
        for trade_id in ("t-open-1", "t-open-2"):
            assert (await pool.trade(trade_id, close_at=None)).amount_usd == GRANT == D("459.85")
        assert pool.service.ledger.cash_usd == NAV - 2 * GRANT == D("919.70")

        pool.advance(at(2, 15))
        queued = await pool.ask(
            WITHDRAW, WithdrawRequest(member="alice", amount_usd=D(1000), withdrawal_id="w-big")
        )
        assert queued == WithdrawalQueued(
            withdrawal_id="w-big", member="alice", amount_usd=D(1000), ahead_usd=D(0),
            queued_ts_ns=at(2, 15),
        )  # fmt: skip
        pool.advance(at(2, 15, 1))
        behind = await pool.ask(
            WITHDRAW, WithdrawRequest(member="bob", amount_usd=D(100), withdrawal_id="w-bob")
        )
        assert behind == WithdrawalQueued(
            withdrawal_id="w-bob", member="bob", amount_usd=D(100), ahead_usd=D(1000),
            queued_ts_ns=at(2, 15, 1),
        )  # fmt: skip
        pool.advance(at(2, 15, 2))
        await pool.service.cancel_withdrawal("w-bob")
        pool.advance(at(2, 16))
        yield pool


@pytest.fixture
async def pool(make_config: MakeConfig, db_url: str) -> AsyncIterator[Pool]:
    async with history(make_config, db_url) as pool:
        yield pool


# -- capital_pool.state ----------------------------------------------------------------------


async def test_state_is_the_pool_now(pool: Pool) -> None:
    state = await pool.ask(STATE, PoolStateRequest())
    assert isinstance(state, PoolState)
    assert state.nav_usd == NAV == D("1839.40")
    assert state.units == UNITS
    assert state.nav_per_unit == (NAV / UNITS).quantize(Q8)
    assert (state.cash_usd, state.allocated_usd) == (D("919.70"), D("919.70"))
    assert state.unrealized_pnl_usd == 0  # the open positions are at their entry price
    assert (state.phase, state.risk_per_trade) == ("growth", D("0.02"))
    assert state.active_ratio == D("0.5")


# -- capital_pool.members --------------------------------------------------------------------


ALICE = MemberSummary(
    member="alice",
    reinvest=True,
    units=ALICE_UNITS,
    equity_usd=ALICE_EQUITY,
    contributed_usd=D(1200),
    withdrawn_usd=D("100.10"),  # the queued 1,000 USD is not paid yet
    distributed_usd=D(0),
    pnl_usd=ALICE_EQUITY + D("100.10") - 1200,
    joined_ts_ns=0,  # registered from the configuration at start (replay clock at 0)
)
BOB = MemberSummary(
    member="bob",
    reinvest=False,
    units=D(700),
    equity_usd=BOB_EQUITY,
    contributed_usd=D(700),
    withdrawn_usd=D(0),
    distributed_usd=D(0),
    pnl_usd=BOB_EQUITY - 700,
    joined_ts_ns=at(1, 10, 5),  # registered by its first contribution
)


async def test_members_sorted_by_name_with_their_figures(pool: Pool) -> None:
    page = await pool.ask(MEMBERS, MembersRequest())
    assert page == MembersPage(total=2, items=(ALICE, BOB))
    assert ALICE.equity_usd == D("1124.84") and BOB.equity_usd == D("714.55")
    assert ALICE.pnl_usd == D("24.94") and BOB.pnl_usd == D("14.55")


async def test_members_filter_and_paging(pool: Pool) -> None:
    assert await pool.ask(MEMBERS, MembersRequest(member="bob")) == MembersPage(
        total=1, items=(BOB,)
    )
    assert await pool.ask(MEMBERS, MembersRequest(limit=1, offset=1)) == MembersPage(
        total=2, items=(BOB,)
    )
    assert await pool.ask(MEMBERS, MembersRequest(offset=5)) == MembersPage(total=2, items=())
    refused = await pool.ask(MEMBERS, MembersRequest(member="zed"))
    assert isinstance(refused, Refused)
    assert (refused.code, refused.field) == ("not_found", "member")
    bad = await pool.ask(MEMBERS, MembersRequest(limit=0))
    assert (bad.code, bad.field) == ("invalid", "limit")


# -- capital_pool.flows ----------------------------------------------------------------------


C_ALICE = FlowRecord(
    flow_id="c-alice", kind="contribution", member="alice", amount_usd=D(1200), units=D(1200),
    nav_per_unit=D(1), ts_ns=at(1, 10), status="done",
)  # fmt: skip
C_BOB = FlowRecord(
    flow_id="c-bob", kind="contribution", member="bob", amount_usd=D(700), units=D(700),
    nav_per_unit=D(1), ts_ns=at(1, 10, 5), status="done",
)  # fmt: skip
W_ALICE = FlowRecord(
    flow_id="w-alice", kind="withdrawal", member="alice", amount_usd=D("100.10"), units=BURNED,
    nav_per_unit=NAVPU_AFTER_TRADE, ts_ns=at(2, 13), status="done",
)  # fmt: skip
W_BIG = FlowRecord(
    flow_id="w-big", kind="withdrawal", member="alice", amount_usd=D(1000), units=None,
    nav_per_unit=None, ts_ns=at(2, 15), status="queued",
)  # fmt: skip
W_BOB = FlowRecord(
    flow_id="w-bob", kind="withdrawal", member="bob", amount_usd=D(100), units=None,
    nav_per_unit=None, ts_ns=at(2, 15, 1), status="cancelled",
)  # fmt: skip


async def test_flows_newest_first_with_queued_and_cancelled_withdrawals(pool: Pool) -> None:
    page = await pool.ask(FLOWS, FlowsRequest())
    assert page == FlowsPage(total=5, items=(W_BOB, W_BIG, W_ALICE, C_BOB, C_ALICE))


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (FlowsRequest(kind="withdrawal"), (W_BOB, W_BIG, W_ALICE)),
        (FlowsRequest(kind="contribution"), (C_BOB, C_ALICE)),
        (FlowsRequest(kind="distribution"), ()),
        (FlowsRequest(member="bob"), (W_BOB, C_BOB)),
        (FlowsRequest(member="alice", kind="withdrawal"), (W_BIG, W_ALICE)),
        # half-open: [from, to)
        (FlowsRequest(from_ts_ns=at(2), to_ts_ns=at(2, 15)), (W_ALICE,)),
        (FlowsRequest(from_ts_ns=at(2, 15)), (W_BOB, W_BIG)),
        (FlowsRequest(to_ts_ns=at(1, 10, 5)), (C_ALICE,)),
    ],
)
async def test_flows_filters(pool: Pool, request_: FlowsRequest, expected: tuple[Any, ...]) -> None:
    assert await pool.ask(FLOWS, request_) == FlowsPage(total=len(expected), items=expected)


async def test_flows_paging_and_refusals(pool: Pool) -> None:
    assert await pool.ask(FLOWS, FlowsRequest(limit=2, offset=1)) == FlowsPage(
        total=5, items=(W_BIG, W_ALICE)
    )
    cases = [
        (FlowsRequest(kind="deposit"), "invalid", "kind"),  # type: ignore[arg-type]
        (FlowsRequest(member="zed"), "not_found", "member"),
        (FlowsRequest(from_ts_ns=at(2), to_ts_ns=at(2)), "invalid", "to_ts_ns"),
        (FlowsRequest(from_ts_ns=-1), "invalid", "from_ts_ns"),
        (FlowsRequest(offset=-1), "invalid", "offset"),
    ]
    for request_, code, field in cases:
        refused = await pool.ask(FLOWS, request_)
        assert isinstance(refused, Refused), request_
        assert (refused.code, refused.field) == (code, field), refused


# -- capital_pool.contribute / withdraw ------------------------------------------------------


async def test_contribute_is_idempotent_by_id_and_refuses_a_conflicting_repeat(
    pool: Pool,
) -> None:
    published = len(pool.rec.payloads(ContributionRecorded))
    again = await pool.ask(
        CONTRIBUTE,
        ContributeRequest(member="bob", amount_usd=D(700), contribution_id="c-bob", reinvest=False),
    )
    assert again == ContributionRecorded(
        contribution_id="c-bob", member="bob", amount_usd=D(700), units=D(700), nav_per_unit=D(1)
    )
    assert len(pool.rec.payloads(ContributionRecorded)) == published  # not recorded twice
    other = await pool.ask(
        CONTRIBUTE, ContributeRequest(member="bob", amount_usd=D(800), contribution_id="c-bob")
    )
    assert isinstance(other, Refused)
    assert (other.code, other.field) == ("conflict", "contribution_id")
    assert "c-bob was recorded as bob 700.00 USD" in other.message
    flows = await pool.ask(FLOWS, FlowsRequest(kind="contribution"))
    assert flows.total == 2


async def test_contribute_refusals_name_the_field_and_register_nobody(pool: Pool) -> None:
    cases = [
        (ContributeRequest(member="carol", amount_usd=D(50)), "invalid", "amount_usd"),
        (ContributeRequest(member="alice", amount_usd=D("100.001")), "invalid", "amount_usd"),
        (ContributeRequest(member="alice", amount_usd=D(-100)), "invalid", "amount_usd"),
        (ContributeRequest(member="Carol!", amount_usd=D(500)), "invalid", "member"),
        (ContributeRequest(member="alice", amount_usd=D(500), reinvest=False), "conflict",
         "reinvest"),
        (ContributeRequest(member="alice", amount_usd=D(500), contribution_id=""), "invalid",
         "contribution_id"),
        (ContributeRequest(member="alice", amount_usd=D(500), contribution_id="x" * 65),
         "invalid", "contribution_id"),
    ]  # fmt: skip
    for request_, code, field in cases:
        refused = await pool.ask(CONTRIBUTE, request_)
        assert isinstance(refused, Refused), request_
        assert (refused.code, refused.field) == (code, field), refused
    below = await pool.ask(CONTRIBUTE, ContributeRequest(member="carol", amount_usd=D(50)))
    assert below.message.endswith("50 USD is below the minimum of 100 USD")
    members = await pool.ask(MEMBERS, MembersRequest())
    assert [m.member for m in members.items] == ["alice", "bob"]  # carol was not registered
    assert (await pool.ask(FLOWS, FlowsRequest())).total == 5


async def test_contribute_registers_a_new_member_with_the_contribution(pool: Pool) -> None:
    pool.advance(at(2, 17))
    record = await pool.ask(
        CONTRIBUTE, ContributeRequest(member="carol", amount_usd=D(250), contribution_id="c-carol")
    )
    units = (D(250) * UNITS / NAV).quantize(Q8, rounding=ROUND_DOWN)
    assert record == ContributionRecorded(
        contribution_id="c-carol", member="carol", amount_usd=D(250), units=units,
        nav_per_unit=(NAV / UNITS).quantize(Q8),
    )  # fmt: skip
    carol = await pool.ask(MEMBERS, MembersRequest(member="carol"))
    (summary,) = carol.items
    equity = floor_cents(units * (NAV + 250) / (UNITS + units))
    assert summary == MemberSummary(
        member="carol", reinvest=True, units=units, equity_usd=equity, contributed_usd=D(250),
        withdrawn_usd=D(0), distributed_usd=D(0), pnl_usd=equity - 250, joined_ts_ns=at(2, 17),
    )  # fmt: skip
    assert record in pool.rec.payloads(ContributionRecorded)  # published like any command


async def test_a_member_added_beside_the_node_is_picked_up(pool: Pool) -> None:
    # another writer (``corec members add``) registers dave in the same store
    other = PoolService(pool.service.store, pool.service.config, pool.node.clock)
    await other.open()
    assert await other.add_member("dave", reinvest=False)
    assert "dave" not in pool.service.ledger.members

    wrong = await pool.ask(
        CONTRIBUTE, ContributeRequest(member="dave", amount_usd=D(300), reinvest=True)
    )
    assert isinstance(wrong, Refused)
    assert (wrong.code, wrong.field) == ("conflict", "reinvest")
    assert "dave is a member already, with reinvest=False" in wrong.message
    paid = await pool.ask(
        CONTRIBUTE, ContributeRequest(member="dave", amount_usd=D(300), contribution_id="c-dave")
    )
    assert isinstance(paid, ContributionRecorded) and paid.member == "dave"
    (dave,) = (await pool.ask(MEMBERS, MembersRequest(member="dave"))).items
    assert (dave.reinvest, dave.contributed_usd) == (False, D(300))


async def test_withdraw_refusals_name_the_field(pool: Pool) -> None:
    cases = [
        (WithdrawRequest(member="zed", amount_usd=D(10)), "not_found", "member"),
        (WithdrawRequest(member="bob", amount_usd=D(5000)), "conflict", "amount_usd"),
        (WithdrawRequest(member="bob", amount_usd=D("0.001")), "invalid", "amount_usd"),
        (WithdrawRequest(member="bob", amount_usd=D(0)), "invalid", "amount_usd"),
        # alice's queued 1,000 USD counts against her equity
        (WithdrawRequest(member="alice", amount_usd=D(200)), "conflict", "amount_usd"),
        # an id recorded already, for another amount; one that was cancelled
        (WithdrawRequest(member="alice", amount_usd=D(5), withdrawal_id="w-alice"), "conflict",
         "withdrawal_id"),
        (WithdrawRequest(member="bob", amount_usd=D(100), withdrawal_id="w-bob"), "conflict",
         "withdrawal_id"),
    ]  # fmt: skip
    for request_, code, field in cases:
        refused = await pool.ask(WITHDRAW, request_)
        assert isinstance(refused, Refused), request_
        assert (refused.code, refused.field) == (code, field), refused
    more = await pool.ask(WITHDRAW, WithdrawRequest(member="alice", amount_usd=D(200)))
    assert f"with 1000 USD already queued is more than alice's equity of {ALICE_EQUITY}" in (
        more.message
    )
    # a repeat of a queued id answers its place in the queue; of a paid one, its record
    again = await pool.ask(
        WITHDRAW, WithdrawRequest(member="alice", amount_usd=D(1000), withdrawal_id="w-big")
    )
    assert isinstance(again, WithdrawalQueued) and again.ahead_usd == 0
    paid = await pool.ask(
        WITHDRAW, WithdrawRequest(member="alice", amount_usd=D("100.10"), withdrawal_id="w-alice")
    )
    assert isinstance(paid, WithdrawalRecorded) and paid.units == BURNED
    assert (await pool.ask(FLOWS, FlowsRequest())).total == 5


# -- capital_pool.statement ------------------------------------------------------------------


async def test_statement_has_the_cli_figures(pool: Pool) -> None:
    s = await pool.ask(
        STATEMENT, StatementRequest(member="alice", from_date="2026-01-01", to_date="2026-01-02")
    )
    assert isinstance(s, MemberStatement)
    closing_navpu = (NAV / UNITS).quantize(Q8)
    assert (s.member, s.from_date, s.to_date, s.valuation) == (
        "alice", "2026-01-01", "2026-01-02", "live"
    )  # fmt: skip
    assert (s.opening_units, s.opening_equity_usd, s.opening_nav_per_unit) == (0, 0, 1)
    assert (s.closing_units, s.closing_equity_usd) == (ALICE_UNITS, ALICE_EQUITY)
    assert s.closing_nav_per_unit == closing_navpu
    assert (s.contributions_usd, s.withdrawals_usd, s.distributions_usd) == (
        D(1200), D("100.10"), 0
    )  # fmt: skip
    assert s.net_flow_usd == D("1099.90")
    assert s.pnl_usd == ALICE_EQUITY - D("1099.90") == D("24.94")
    assert s.twr == (closing_navpu - 1).quantize(Q8)
    end_ns = at(2, 16) + 1  # the period ends now (the end of today is later)
    assert s.xirr == xirr([(at(1, 10), D(-1200)), (at(2, 13), D("100.10")), (end_ns, ALICE_EQUITY)])
    assert s.flows == (C_ALICE, W_ALICE)  # journaled flows only, oldest first

    # the default period: from the member's first flow to today
    default = await pool.ask(STATEMENT, StatementRequest(member="bob"))
    assert (default.from_date, default.to_date) == ("2026-01-01", "2026-01-02")
    assert (default.closing_units, default.closing_equity_usd) == (D(700), BOB_EQUITY)
    assert default.flows == (C_BOB,)


async def test_statement_refusals(pool: Pool) -> None:
    cases = [
        (StatementRequest(member="zed"), "not_found", "member"),
        (StatementRequest(member="bob", from_date="2026-13-01"), "invalid", "from_date"),
        (StatementRequest(member="bob", from_date="20260101"), "invalid", "from_date"),
        (StatementRequest(member="bob", to_date="yesterday"), "invalid", "to_date"),
        (StatementRequest(member="bob", from_date="2026-01-02", to_date="2026-01-01"), "invalid",
         "from_date"),
        (StatementRequest(member="bob", from_date="2026-01-05"), "invalid", "from_date"),
    ]  # fmt: skip
    for request_, code, field in cases:
        refused = await pool.ask(STATEMENT, request_)
        assert isinstance(refused, Refused), request_
        assert (refused.code, refused.field) == (code, field), refused
    future = await pool.ask(STATEMENT, StatementRequest(member="bob", from_date="2026-01-05"))
    assert future.message == "from_date 2026-01-05 is in the future (today is 2026-01-02 UTC)"
    # the default start, bob's first flow's day, is after this end
    early = await pool.ask(STATEMENT, StatementRequest(member="bob", to_date="2025-12-31"))
    assert isinstance(early, Refused)
    assert (early.code, early.field) == ("invalid", "from_date")
    assert early.message == "from_date 2026-01-01 is after to_date 2025-12-31"


async def test_the_plugin_declares_its_endpoints() -> None:
    assert set(CapitalPoolPlugin.serves) >= {STATE, MEMBERS, FLOWS, CONTRIBUTE, WITHDRAW, STATEMENT}
