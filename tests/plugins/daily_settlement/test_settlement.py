"""Daily settlement over a real PoolService: ``capital_pool.close_day`` called directly,
one store per plugin on SQLite and on PostgreSQL (``db_url``), a replay clock moved by
hand. Exact Decimal figures worked out from the pool's rules (units at NAV per unit,
cents rounded down for what is paid out, units burned rounded up)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from corec.core import channels
from corec.core.clock import ReplayClock
from corec.core.returns import xirr
from corec.core.store import Store
from corec.core.store.migrate import upgrade
from corec.messages.capital_data import (
    AllocationGranted,
    AllocationRequest,
    DayClose,
    DayCloseRequest,
    DistributionRecorded,
    WithdrawalQueued,
)
from corec.messages.settlement_data import DailySettlement, MemberSettlement
from corec.plugins.capital_pool import models as pm
from corec.plugins.capital_pool.config import CapitalPoolConfig, MemberConfig
from corec.plugins.capital_pool.day_close import close_day
from corec.plugins.capital_pool.plugin import CapitalPoolPlugin
from corec.plugins.capital_pool.service import PoolService
from corec.plugins.daily_settlement import models as sm
from corec.plugins.daily_settlement.config import DailySettlementConfig
from corec.plugins.daily_settlement.plugin import DailySettlementPlugin
from corec.plugins.daily_settlement.service import (
    DayNotOver,
    NothingToSettle,
    SettlementService,
    date_of,
    day_bounds,
)
from tests.plugins.capital_pool.helpers import (
    EXCHANGE,
    MARKET,
    SYMBOL,
    closed_for,
    opened_for,
)

D = Decimal
NS = 1_000_000_000
Q8 = D("0.00000001")
CENT = D("0.01")

POOL_CONFIG = CapitalPoolConfig(
    members=(
        MemberConfig(name="alice"),
        MemberConfig(name="bob", reinvest=False),
    )
)


def at(day: int, hour: int = 0, minute: int = 0, *, month: int = 1) -> int:
    """UTC ns of 2026-<month>-<day> hour:minute."""
    moment = datetime(2026, month, day, hour, minute, tzinfo=UTC)
    return int(moment.timestamp()) * NS


def jan(day: int) -> date:
    return date(2026, 1, day)


def floor_cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_DOWN)


def ceil_units(value: Decimal) -> Decimal:
    return value.quantize(Q8, rounding=ROUND_UP)


class Seen:
    """What a service publishes and alerts."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any, str | None]] = []
        self.alerts: list[tuple[str, str, str, dict[str, str]]] = []

    async def publish(self, channel: str, payload: Any, key: str | None) -> None:
        self.events.append((channel, payload, key))

    async def alert(self, name: str, message: str, severity: str, labels: dict[str, str]) -> None:
        self.alerts.append((name, message, severity, labels))

    def of(self, cls: type) -> list[Any]:
        return [p for _, p, _ in self.events if isinstance(p, cls)]


@dataclass
class Stores:
    pool: Store
    settlement: Store


@pytest.fixture
async def stores(db_url: str) -> AsyncIterator[Stores]:
    """capital_pool's and daily_settlement's stores, migrated (separate SQLite files, or
    one PostgreSQL database as a node with one ``database_url`` would have)."""
    settlement_url = (
        db_url.replace("test.db", "daily_settlement.db") if db_url.startswith("sqlite") else db_url
    )
    pool = Store(db_url, name="capital_pool")
    settlement = Store(settlement_url, name="daily_settlement")
    try:
        await upgrade(pool, CapitalPoolPlugin.migrations)
        await upgrade(settlement, DailySettlementPlugin.migrations)
        yield Stores(pool, settlement)
    finally:
        await pool.dispose()
        await settlement.dispose()


@dataclass
class World:
    clock: ReplayClock
    pool: PoolService
    settlement: SettlementService
    pool_seen: Seen
    seen: Seen
    stores: Stores

    def advance(self, ts_ns: int) -> None:
        self.clock.advance_to(ts_ns)
        assert self.clock.now_ns() == ts_ns

    def published(self) -> list[DailySettlement]:
        return [p for c, p, _ in self.seen.events if c == channels.SETTLEMENT_DATA]


async def world(
    stores: Stores,
    *,
    pool_config: CapitalPoolConfig = POOL_CONFIG,
    settlement_config: DailySettlementConfig | None = None,
    start_ns: int | None = None,
) -> World:
    clock = ReplayClock(at(1) if start_ns is None else start_ns)
    pool_seen, seen = Seen(), Seen()
    pool = PoolService(
        stores.pool, pool_config, clock, publish=pool_seen.publish, alert=pool_seen.alert
    )
    await pool.open()
    await pool.register_members()
    settlement = SettlementService(
        stores.settlement,
        settlement_config or DailySettlementConfig(),
        clock,
        lambda req: close_day(pool, req),
        publish=seen.publish,
        alert=seen.alert,
    )
    return World(clock, pool, settlement, pool_seen, seen, stores)


def request(stop_loss_pct: str) -> AllocationRequest:
    return AllocationRequest(
        strategy="sma",
        exchange=EXCHANGE,
        market=MARKET,
        symbol=SYMBOL,
        side="long",
        stop_loss_pct=D(stop_loss_pct),
    )


async def trade(
    w: World,
    trade_id: str,
    *,
    stop: str,
    quantity: str,
    entry: str,
    exit_: str | None,
    fees: str = "0",
    close_at: int | None = None,
) -> AllocationGranted:
    """Grant (now), fill at ``entry``; close at ``exit_`` at ``close_at`` if given."""
    granted = await w.pool.allocate(request(stop))
    assert isinstance(granted, AllocationGranted), granted
    alloc = w.pool.ledger.allocations[granted.allocation_id]
    await w.pool.on_position_opened(
        opened_for(alloc, trade_id, quantity, entry, opened_ts_ns=w.clock.now_ns())
    )
    if exit_ is not None:
        assert close_at is not None
        w.advance(close_at)
        await close_trade(w, granted, trade_id, quantity, entry, exit_, fees)
    return granted


async def close_trade(
    w: World,
    granted: AllocationGranted,
    trade_id: str,
    quantity: str,
    entry: str,
    exit_: str,
    fees: str = "0",
) -> None:
    alloc = w.pool.ledger.allocations[granted.allocation_id]
    await w.pool.on_trade_closed(
        closed_for(
            alloc,
            trade_id,
            quantity,
            entry,
            exit_,
            fees,
            opened_ts_ns=alloc.granted_ts_ns,
            closed_ts_ns=w.clock.now_ns(),
        )
    )


async def table_rows(store: Store, table: Any, *order_by: Any) -> list[dict[str, Any]]:
    query = select(table).order_by(*order_by)
    return await store.read(lambda conn: [dict(r) for r in conn.execute(query).mappings()])


async def count(store: Store, table: Any) -> int:
    query = select(func.count()).select_from(table)
    return await store.read(lambda conn: conn.execute(query).scalar_one())


def member(record: DailySettlement, name: str) -> MemberSettlement:
    (found,) = [m for m in record.members if m.member == name]
    return found


async def day1_contributions(w: World) -> None:
    """2026-01-01 10:00: alice 1,200 USD, bob (no reinvest) 700 USD, both at 1 USD a unit."""
    w.advance(at(1, 10))
    await w.pool.contribute("alice", D(1200), "c-alice")
    await w.pool.contribute("bob", D(700), "c-bob")


async def day2_profit(w: World) -> None:
    """2026-01-02: 475 USD granted (NAV 1,900 × 2 % ÷ 8 %), 0.02 BTC 20,000 → 22,000,
    0.5 USD of fees: 39.5 USD realized, net of fees."""
    w.advance(at(2, 9))
    granted = await trade(
        w, "t-win", stop="8", quantity="0.02", entry="20000", exit_="22000", fees="0.5",
        close_at=at(2, 12),
    )  # fmt: skip
    assert granted.amount_usd == D(475)
    assert w.pool.ledger.nav_usd() == D("1939.5")


# -- (a) three days: contributions, a profit, a distribution --------------------------


async def test_three_days_contributions_profit_and_a_distribution(stores: Stores) -> None:
    w = await world(stores)
    await day1_contributions(w)

    # day 1 is settled just after its cut-off
    w.advance(at(2, 0, 5))
    (day1,) = await w.settlement.run_due()
    assert (day1.date, day1.start_ts_ns, day1.cutoff_ts_ns) == ("2026-01-01", at(1), at(2))
    assert day1.settled_ts_ns == at(2, 0, 5)
    assert day1.valuation == "live"
    assert (day1.nav_usd, day1.nav_per_unit, day1.units) == (D("1900.00"), D(1), D(1900))
    assert (day1.cash_usd, day1.allocated_usd, day1.realized_pnl_usd) == (D(1900), 0, 0)
    assert day1.net_flows_usd == D(1900)
    assert (day1.day_return, day1.twr_since_inception, day1.distributions_usd) == (0, 0, 0)
    alice1, bob1 = member(day1, "alice"), member(day1, "bob")
    assert (alice1.units, alice1.equity_usd, alice1.contributions_usd) == (1200, 1200, 1200)
    assert (bob1.units, bob1.equity_usd, bob1.net_flow_usd, bob1.pnl_usd) == (700, 700, 700, 0)
    assert bob1.distribution_usd == 0 and bob1.time_weighted_return == 0

    # day 2: a winning trade closes
    await day2_profit(w)
    w.advance(at(3, 0, 5))
    (day2,) = await w.settlement.run_due()
    realized = D("39.5")
    nav2 = D("1939.5")
    navpu2 = (nav2 / D(1900)).quantize(Q8)
    assert navpu2 == D("1.02078947")
    assert day2.valuation == "live"
    assert (day2.nav_usd, day2.nav_per_unit, day2.units) == (nav2, navpu2, D(1900))
    assert (day2.realized_pnl_usd, day2.fees_usd) == (realized, D("0.5"))
    assert day2.net_flows_usd == 0
    assert day2.day_return == (navpu2 / day1.nav_per_unit - 1).quantize(Q8) == D("0.02078947")
    assert day2.twr_since_inception == D("0.02078947")
    share = floor_cents(realized * 700 / 1900)  # 14.5526... → 14.55
    assert share == D("14.55")
    assert day2.distributions_usd == share
    bob2 = member(day2, "bob")
    assert (bob2.distribution_usd, bob2.distribution_queued) == (share, False)
    assert bob2.units == 700  # at the cut-off: before the distribution (paid on day 3)
    assert bob2.equity_usd == floor_cents(D(700) * nav2 / 1900) == D("714.55")
    assert bob2.pnl_usd == D("14.55")
    assert bob2.time_weighted_return == D("0.02078947")
    alice2 = member(day2, "alice")
    assert (alice2.distribution_usd, alice2.equity_usd) == (0, D("1224.94"))
    assert alice2.pnl_usd == D("24.94")

    # bob was paid 14.55 USD at NAV per unit now: units burned rounded up
    burned = ceil_units(share * 1900 / nav2)
    (paid,) = w.pool_seen.of(DistributionRecorded)
    assert paid == DistributionRecorded(
        distribution_id="2026-01-02:bob",
        member="bob",
        amount_usd=share,
        units=burned,
        nav_per_unit=navpu2,
    )
    rows = await table_rows(stores.pool, pm.distributions)
    assert [
        (r["distribution_id"], r["member"], r["amount_usd"], r["units"], r["ts_ns"]) for r in rows
    ] == [("2026-01-02:bob", "bob", share, burned, at(3, 0, 5))]
    assert w.pool.ledger.member_units["bob"] == 700 - burned
    assert w.pool.ledger.cash_usd == nav2 - share
    assert await count(stores.pool, pm.withdrawal_queue) == 0

    # day 3: nothing happens but the distribution, listed as bob's flow of the day
    w.advance(at(4, 0, 5))
    (day3,) = await w.settlement.run_due()
    units3 = D(1900) - burned
    nav3 = nav2 - share
    navpu3 = (nav3 / units3).quantize(Q8)
    assert (day3.nav_usd, day3.units, day3.nav_per_unit) == (nav3, units3, navpu3)
    assert day3.realized_pnl_usd == 0 and day3.distributions_usd == 0
    assert day3.net_flows_usd == -share
    assert day3.day_return == (navpu3 / navpu2 - 1).quantize(Q8)
    assert day3.twr_since_inception == (navpu3 - 1).quantize(Q8)
    bob3 = member(day3, "bob")
    assert (bob3.distributions_usd, bob3.net_flow_usd, bob3.distribution_usd) == (share, -share, 0)
    assert bob3.units == 700 - burned
    equity3 = floor_cents((700 - burned) * nav3 / units3)
    assert bob3.equity_usd == equity3
    assert bob3.pnl_usd == equity3 + share - 700
    flows = await table_rows(stores.settlement, sm.member_flows, sm.member_flows.c.ts_ns)
    assert [(r["kind"], r["flow_id"], r["member"], r["date"], r["amount_usd"]) for r in flows] == [
        ("contribution", "c-alice", "alice", "2026-01-01", D(1200)),
        ("contribution", "c-bob", "bob", "2026-01-01", D(700)),
        ("distribution", "2026-01-02:bob", "bob", "2026-01-03", share),
    ]

    # everything was published in order, and is what is stored
    assert [r.date for r in w.published()] == ["2026-01-01", "2026-01-02", "2026-01-03"]
    assert w.published() == [day1, day2, day3]
    assert await w.settlement.history() == [day1, day2, day3]
    assert await w.settlement.history(jan(2), jan(2)) == [day2]
    assert w.seen.alerts == []
    assert (w.settlement.settled_count, w.settlement.last_settled) == (3, "2026-01-03")

    # (h) a member's money-weighted return is the XIRR of their own flows + equity
    assert bob3.money_weighted_return == xirr(
        [(at(1, 10), D(-700)), (at(3, 0, 5), share), (at(4), equity3)]
    )
    assert bob3.money_weighted_return is not None and bob3.money_weighted_return > 0
    assert alice2.money_weighted_return == xirr([(at(1, 10), D(-1200)), (at(3), D("1224.94"))])
    # under a day of history it is undefined
    assert alice1.money_weighted_return is None and bob1.money_weighted_return is None


# -- (b) idempotency -------------------------------------------------------------------


async def test_settling_the_same_day_twice_settles_and_pays_once(stores: Stores) -> None:
    w = await world(stores)
    await day1_contributions(w)
    await day2_profit(w)
    w.advance(at(3, 1))
    first = await w.settlement.run(jan(2))
    assert [r.date for r in first] == ["2026-01-01", "2026-01-02"]

    again = await w.settlement.run(jan(2))
    assert again == [first[1]]
    assert await w.settlement.run(jan(1)) == [first[0]]
    assert await w.settlement.run_due() == []  # nothing new is due

    # a restarted settlement service (and pool service) on the same stores
    w.advance(at(3, 2))
    pool = PoolService(stores.pool, POOL_CONFIG, w.clock)
    await pool.open()
    restarted = SettlementService(
        stores.settlement, DailySettlementConfig(), w.clock, lambda req: close_day(pool, req)
    )
    assert await restarted.run(jan(2)) == [first[1]]
    assert await restarted.run_due() == []

    # closing the day again by hand does not pay again: it answers the first payment
    start, cutoff = day_bounds(jan(2), time(0, 0))
    close = await close_day(
        pool, DayCloseRequest(date="2026-01-02", start_ts_ns=start, cutoff_ts_ns=cutoff)
    )
    assert member_day(close, "bob") == (D("14.55"), False)
    assert close.nav_usd == D("1939.50") and close.valuation == "live"

    assert await count(stores.settlement, sm.settlements) == 2
    assert await count(stores.settlement, sm.member_settlements) == 4
    assert await count(stores.pool, pm.distributions) == 1
    assert len(w.pool_seen.of(DistributionRecorded)) == 1
    assert [r.date for r in w.published()] == ["2026-01-01", "2026-01-02"]


def member_day(close: DayClose, name: str) -> tuple[Decimal, bool]:
    (found,) = [m for m in close.members if m.member == name]
    return found.distribution_usd, found.distribution_queued


# -- (c) downtime -----------------------------------------------------------------------


async def test_days_missed_during_downtime_are_settled_in_order(stores: Stores) -> None:
    w = await world(stores)
    await day1_contributions(w)
    w.advance(at(2, 0, 1))
    assert [r.date for r in await w.settlement.run_due()] == ["2026-01-01"]
    assert not w.settlement.is_due(at(2, 23, 59))
    assert w.settlement.is_due(at(3))
    await day2_profit(w)

    # the node is down three days: it comes back on 2026-01-05 at 00:05
    w.advance(at(5, 0, 5))
    assert w.settlement.is_due(w.clock.now_ns())
    done = await w.settlement.run_due()
    dates = [r.date for r in done]
    assert dates == ["2026-01-02", "2026-01-03", "2026-01-04"]
    assert [date.fromisoformat(d).toordinal() for d in dates] == [
        jan(2).toordinal() + i for i in range(3)
    ]
    assert [r.date for r in w.published()] == ["2026-01-01", *dates]
    assert not w.settlement.is_due(w.clock.now_ns())

    # day 2 was valued live; days 3 and 4 from the journal (the distribution was paid now,
    # after their cut-offs), all at the same NAV per unit as the end of day 2
    navpu = D("1.02078947")
    assert [(r.valuation, r.nav_per_unit, r.nav_usd) for r in done] == [
        ("live", navpu, D("1939.50")),
        ("last_entry", navpu, D("1939.50")),
        ("last_entry", navpu, D("1939.50")),
    ]
    assert [r.day_return for r in done] == [D("0.02078947"), 0, 0]
    assert [r.distributions_usd for r in done] == [D("14.55"), 0, 0]
    (paid,) = w.pool_seen.of(DistributionRecorded)
    assert paid.distribution_id == "2026-01-02:bob"
    rows = await table_rows(stores.pool, pm.distributions)
    assert [r["ts_ns"] for r in rows] == [at(5, 0, 5)]

    # the stored days are contiguous
    stored = await table_rows(stores.settlement, sm.settlements, sm.settlements.c.date)
    assert [r["date"] for r in stored] == ["2026-01-01", *dates]


async def test_a_late_first_settlement_values_past_days_from_the_journal(stores: Stores) -> None:
    """Nothing settled yet; the first run comes after entries of later days."""
    w = await world(stores)
    await day1_contributions(w)
    await day2_profit(w)
    w.advance(at(3, 0, 5))
    done = await w.settlement.run_due()
    assert [(r.date, r.valuation, r.nav_usd, r.nav_per_unit) for r in done] == [
        ("2026-01-01", "last_entry", D("1900.00"), D(1)),
        ("2026-01-02", "live", D("1939.50"), D("1.02078947")),
    ]


# -- (d) refusals --------------------------------------------------------------------


async def test_a_day_not_over_and_a_day_before_the_first_are_refused(stores: Stores) -> None:
    w = await world(stores)
    w.advance(at(3))
    # an empty pool: nothing to settle, nothing due
    with pytest.raises(NothingToSettle, match="no journal entries"):
        await w.settlement.run(jan(1))
    assert await w.settlement.run_due() == []

    w.advance(at(3, 10))
    await w.pool.contribute("alice", D(1000), "c-1")
    w.advance(at(4, 12))
    with pytest.raises(DayNotOver, match=r"2026-01-04 is not over: its cut-off is 2026-01-05T00"):
        await w.settlement.run(jan(4))
    with pytest.raises(DayNotOver, match="the last day due is 2026-01-03"):
        await w.settlement.run(jan(9))
    with pytest.raises(NothingToSettle, match="2026-01-02 is before the pool's first day"):
        await w.settlement.run(jan(2))
    assert await count(stores.settlement, sm.settlements) == 0

    (day3,) = await w.settlement.run(jan(3))
    assert day3.date == "2026-01-03" and day3.nav_usd == D(1000)
    with pytest.raises(NothingToSettle):
        await w.settlement.run(jan(2))
    assert await count(stores.settlement, sm.settlements) == 1
    assert [r.date for r in w.published()] == ["2026-01-03"]


async def test_the_first_day_not_over_yet_settles_nothing(stores: Stores) -> None:
    w = await world(stores)
    w.advance(at(1, 10))
    await w.pool.contribute("alice", D(1000), "c-1")
    assert await w.settlement.run_due() == []
    assert not w.settlement.is_due(at(1, 23, 59))
    assert w.settlement.is_due(at(2))
    assert w.published() == []


# -- (e) loss alert -------------------------------------------------------------------


async def test_a_day_lost_beyond_the_limit_raises_daily_loss(stores: Stores) -> None:
    config = CapitalPoolConfig(members=(MemberConfig(name="alice"), MemberConfig(name="bob")))
    w = await world(stores, pool_config=config)
    w.advance(at(1, 10))
    await w.pool.contribute("alice", D(1000), "c-alice")
    await w.pool.contribute("bob", D(1000), "c-bob")

    # day 2: 1,200 granted (60 % cap), 0.05 BTC 20,000 → 18,000: -100 USD, exactly -5 %
    w.advance(at(2, 9))
    granted = await trade(
        w, "t-5", stop="2", quantity="0.05", entry="20000", exit_="18000", close_at=at(2, 10)
    )
    assert granted.amount_usd == D(1200)
    # day 3: a loss of 0.0631.. %: -1.2 USD
    w.advance(at(3, 9))
    await trade(w, "t-s", stop="2", quantity="0.0004", entry="20000", exit_="17000",
                close_at=at(3, 10))  # fmt: skip
    # day 4: 0.05 BTC 20,000 → 17,000 with 0.3 USD of fees: -150.3 USD
    w.advance(at(4, 9))
    await trade(w, "t-big", stop="2", quantity="0.05", entry="20000", exit_="17000",
                fees="0.3", close_at=at(4, 10))  # fmt: skip

    w.advance(at(5, 0, 1))
    done = await w.settlement.run_due()
    assert [r.date for r in done] == ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]
    navpu = [r.nav_per_unit for r in done]
    assert navpu == [D(1), D("0.95"), D("0.9494"), (D("1748.5") / 2000).quantize(Q8)]
    assert [r.realized_pnl_usd for r in done] == [0, D(-100), D("-1.20"), D("-150.30")]
    assert [r.day_return for r in done] == [
        0,
        D("-0.05"),  # exactly the limit: no alert
        (D("0.9494") / D("0.95") - 1).quantize(Q8),
        (navpu[3] / navpu[2] - 1).quantize(Q8),
    ]
    assert done[3].day_return == D("-0.07915526")
    assert [r.distributions_usd for r in done] == [0, 0, 0, 0]  # losses pay nobody
    assert [(a[0], a[2], a[3]) for a in w.seen.alerts] == [
        ("daily_loss", "high", {"date": "2026-01-04"})
    ]
    assert "lost 7.92% on 2026-01-04" in w.seen.alerts[0][1]
    assert "-5%" in w.seen.alerts[0][1]


async def test_the_loss_limit_is_configurable(stores: Stores) -> None:
    config = CapitalPoolConfig(members=(MemberConfig(name="alice"),))
    w = await world(stores, pool_config=config,
                    settlement_config=DailySettlementConfig(loss_alert_pct=D(1)))  # fmt: skip
    w.advance(at(1, 10))
    await w.pool.contribute("alice", D(2000), "c-alice")
    w.advance(at(2, 9))
    await trade(w, "t-1", stop="2", quantity="0.05", entry="20000", exit_="19500",
                close_at=at(2, 10))  # fmt: skip  # -25 USD: -1.25 %
    w.advance(at(3, 0, 1))
    done = await w.settlement.run_due()
    assert done[1].day_return == D("-0.0125")
    assert [(a[0], a[3]) for a in w.seen.alerts] == [("daily_loss", {"date": "2026-01-02"})]


# -- (f) a distribution waits for free cash ----------------------------------------------


async def test_a_distribution_is_queued_while_cash_is_out_and_paid_on_release(
    stores: Stores,
) -> None:
    config = CapitalPoolConfig(
        members=POOL_CONFIG.members, max_active_ratio=D(1), allocation_timeout_s=86_400 * 10
    )
    w = await world(stores, pool_config=config)
    await day1_contributions(w)
    await day2_profit(w)
    # 13:00: every dollar goes into another trade (cap 100 %): 1,939.5 granted
    w.advance(at(2, 13))
    big = await trade(w, "t-big", stop="1", quantity="0.09", entry="20000", exit_=None)
    assert big.amount_usd == D("1939.5")
    assert w.pool.ledger.cash_usd == 0

    w.advance(at(3, 0, 5))
    _day1, day2 = await w.settlement.run_due()
    assert day2.nav_usd == D("1939.50") and day2.allocated_usd == D("1939.50")
    assert day2.cash_usd == 0
    bob2 = member(day2, "bob")
    assert (bob2.distribution_usd, bob2.distribution_queued) == (D("14.55"), True)
    assert day2.distributions_usd == D("14.55")
    queued = w.pool_seen.of(WithdrawalQueued)
    assert [(q.withdrawal_id, q.kind, q.amount_usd, q.ahead_usd) for q in queued] == [
        ("2026-01-02:bob", "distribution", D("14.55"), 0)
    ]
    q = pm.withdrawal_queue
    rows = await table_rows(stores.pool, q, q.c.position)
    assert [(r["withdrawal_id"], r["member"], r["kind"], r["status"], r["amount_usd"])
            for r in rows] == [("2026-01-02:bob", "bob", "distribution", "queued", D("14.55"))]  # fmt: skip
    assert await count(stores.pool, pm.distributions) == 0
    assert w.pool.ledger.member_units["bob"] == 700

    # a repeated close of day 2 answers the queued one, and does not queue it twice
    start, cutoff = day_bounds(jan(2), time(0, 0))
    again = await close_day(
        w.pool, DayCloseRequest(date="2026-01-02", start_ts_ns=start, cutoff_ts_ns=cutoff)
    )
    assert member_day(again, "bob") == (D("14.55"), True)
    assert await count(stores.pool, pm.withdrawal_queue) == 1

    # day 3 10:00: the big trade closes flat: its capital returns, the queue is paid
    w.advance(at(3, 10))
    await close_trade(w, big, "t-big", "0.09", "20000", "20000")
    nav = D("1939.5")
    burned = ceil_units(D("14.55") * 1900 / nav)
    (paid,) = w.pool_seen.of(DistributionRecorded)
    assert paid == DistributionRecorded(
        distribution_id="2026-01-02:bob",
        member="bob",
        amount_usd=D("14.55"),
        units=burned,
        nav_per_unit=(nav / 1900).quantize(Q8),
    )
    rows = await table_rows(stores.pool, q, q.c.position)
    assert [(r["status"], r["paid_usd"], r["settled_ts_ns"]) for r in rows] == [
        ("paid", D("14.55"), at(3, 10))
    ]
    dist = await table_rows(stores.pool, pm.distributions)
    assert [(r["distribution_id"], r["units"], r["ts_ns"]) for r in dist] == [
        ("2026-01-02:bob", burned, at(3, 10))
    ]

    # day 3 lists the payment as bob's flow; it pays no new distribution
    w.advance(at(4, 0, 5))
    (day3,) = await w.settlement.run_due()
    bob3 = member(day3, "bob")
    assert (bob3.distributions_usd, bob3.distribution_usd, bob3.distribution_queued) == (
        D("14.55"),
        0,
        False,
    )
    assert bob3.units == 700 - burned
    assert day3.net_flows_usd == D("-14.55")
    assert day3.realized_pnl_usd == 0
    assert await count(stores.pool, pm.distributions) == 1


# -- (g) a day that ends at 16:00 UTC ------------------------------------------------------


def test_day_bounds_and_date_of_with_a_16_00_cut_off() -> None:
    four = time(16, 0)
    assert day_bounds(jan(2), four) == (at(1, 16), at(2, 16))
    assert date_of(at(1, 16), four) == jan(2)  # exactly at a cut-off: the next day
    assert date_of(at(1, 16) - 1, four) == jan(1)
    assert date_of(at(2, 15, 59), four) == jan(2)
    assert date_of(at(2, 16) - 1, four) == jan(2)
    assert date_of(at(2, 16), four) == jan(3)
    assert date_of(at(2), four) == jan(2)  # after midnight, before 16:00
    assert date_of(at(1, 23, 59), four) == jan(2)
    # month and year ends
    assert day_bounds(date(2026, 2, 1), four) == (at(31, 16), at(1, 16, month=2))
    assert date_of(at(31, 16), four) == date(2026, 2, 1)


def test_day_bounds_and_date_of_at_midnight() -> None:
    midnight = time(0, 0)
    assert day_bounds(jan(2), midnight) == (at(2), at(3))
    assert date_of(at(3), midnight) == jan(3)
    assert date_of(at(3) - 1, midnight) == jan(2)
    assert date_of(at(2), midnight) == jan(2)
    assert day_bounds(date(2025, 12, 31), midnight)[1] == at(1)
    assert date_of(at(1) - 1, midnight) == date(2025, 12, 31)


def test_day_end_must_be_a_whole_minute() -> None:
    with pytest.raises(ValueError, match="whole minute"):
        DailySettlementConfig(day_end_utc=time(16, 0, 30))
    assert DailySettlementConfig(day_end_utc="16:00").day_end_utc == time(16, 0)  # type: ignore[arg-type]


async def test_an_entry_at_a_16_00_cut_off_belongs_to_the_next_day(stores: Stores) -> None:
    w = await world(stores, settlement_config=DailySettlementConfig(day_end_utc=time(16, 0)),
                    start_ns=at(1, 12))  # fmt: skip
    await w.pool.contribute("alice", D(1000), "c-alice")  # 12:00: day 2026-01-01
    w.advance(at(1, 16))
    await w.pool.contribute("bob", D(500), "c-bob")  # 16:00 sharp: day 2026-01-02
    w.advance(at(2, 15, 59))
    with pytest.raises(DayNotOver, match="cut-off is 2026-01-02T16:00:00Z"):
        await w.settlement.run(jan(2))
    w.advance(at(2, 16))
    day1, day2 = await w.settlement.run(jan(2))
    assert (day1.start_ts_ns, day1.cutoff_ts_ns) == (at(1, 16) - 86_400 * NS, at(1, 16))
    assert (day2.start_ts_ns, day2.cutoff_ts_ns) == (at(1, 16), at(2, 16))
    # day 1 is valued from the journal before 16:00: alice alone
    assert (day1.valuation, day1.nav_usd, day1.units) == ("last_entry", D(1000), D(1000))
    assert [m.member for m in day1.members] == ["alice", "bob"]
    assert member(day1, "bob").units == 0 and member(day1, "bob").contributions_usd == 0
    assert member(day1, "alice").contributions_usd == D(1000)
    assert (day2.valuation, day2.nav_usd, day2.units) == ("live", D(1500), D(1500))
    assert member(day2, "bob").contributions_usd == D(500)
    assert member(day2, "alice").contributions_usd == 0
    assert day2.net_flows_usd == D(500)
    flows = await table_rows(stores.settlement, sm.member_flows, sm.member_flows.c.ts_ns)
    assert [(r["flow_id"], r["date"]) for r in flows] == [
        ("c-alice", "2026-01-01"),
        ("c-bob", "2026-01-02"),
    ]


# -- regressions: bugs found while writing these tests ---------------------------------
#
# The first two: a trade's settlement entry was journaled with the trade's own
# ``closed_ts_ns`` (exchange time) while every other entry used the node clock, so the
# journal's timestamps were not monotonic in ``seq``; the day windows and
# ``pool_at``'s ``last_entry`` assume they are. Entries are now stamped when booked.


async def test_a_late_trade_result_is_booked_in_the_day_it_arrives(
    stores: Stores,
) -> None:
    config = CapitalPoolConfig(members=(MemberConfig(name="alice"), MemberConfig(name="bob")))
    w = await world(stores, pool_config=config)
    w.advance(at(1, 10))
    await w.pool.contribute("alice", D(1000), "c-alice")
    w.advance(at(1, 22))
    granted = await trade(w, "t-1", stop="8", quantity="0.01", entry="20000", exit_=None)
    w.advance(at(2) + 30 * NS)  # day 2, 00:00:30: bob pays in
    await w.pool.contribute("bob", D(1000), "c-bob")
    w.advance(at(2, 0, 1))  # the trade's result arrives: it closed at 23:59 on day 1
    alloc = w.pool.ledger.allocations[granted.allocation_id]
    await w.pool.on_trade_closed(
        closed_for(alloc, "t-1", "0.01", "20000", "30000", "0",
                   opened_ts_ns=at(1, 22), closed_ts_ns=at(1, 23, 59))
    )  # fmt: skip
    w.advance(at(2, 0, 5))
    (day1,) = await w.settlement.run_due()
    # booked on day 2: day 1 holds alice's 1,000 only
    assert sum(m.units for m in day1.members) == day1.units
    assert day1.net_flows_usd == D(1000) and day1.nav_usd < D(2000)


async def test_a_result_arriving_after_its_day_was_settled_is_distributed_the_next_day(
    stores: Stores,
) -> None:
    w = await world(stores)
    await day1_contributions(w)  # alice 1,200, bob 700 (reinvest: false)
    w.advance(at(1, 22))
    granted = await trade(w, "t-1", stop="8", quantity="0.01", entry="20000", exit_=None)
    w.advance(at(2) + 30 * NS)
    assert [r.date for r in await w.settlement.run_due()] == ["2026-01-01"]
    w.advance(at(2, 0, 1))  # closed at 23:59 on day 1, applied on day 2: +100 USD
    alloc = w.pool.ledger.allocations[granted.allocation_id]
    await w.pool.on_trade_closed(
        closed_for(alloc, "t-1", "0.01", "20000", "30000", "0",
                   opened_ts_ns=at(1, 22), closed_ts_ns=at(1, 23, 59))
    )  # fmt: skip
    w.advance(at(3, 0, 5))
    done = await w.settlement.run_due()
    assert done[-1].nav_usd == D(2000)  # the profit is in NAV,
    history = await w.settlement.history()
    # in day 2's realized PnL (booked then), and bob is paid his share of it
    assert sum(r.realized_pnl_usd for r in history) == D(100)
    assert sum(r.distributions_usd for r in history) == floor_cents(D(100) * 700 / 1900)


async def test_is_due_stays_true_after_a_partial_run(stores: Stores) -> None:
    w = await world(stores)
    await day1_contributions(w)
    w.advance(at(5, 0, 5))
    assert [r.date for r in await w.settlement.run(jan(2))] == ["2026-01-01", "2026-01-02"]
    assert w.settlement.is_due(w.clock.now_ns())  # 2026-01-03 and 2026-01-04 are due


async def test_nothing_to_settle_names_the_pool_first_day(stores: Stores) -> None:
    w = await world(stores, start_ns=at(3, 10))
    await w.pool.contribute("alice", D(1000), "c-1")
    w.advance(at(4, 12))
    await w.settlement.run(jan(3))
    with pytest.raises(NothingToSettle, match="before the pool's first day, 2026-01-03"):
        await w.settlement.run(jan(2))
