"""A worked example of the pool, figures computed by hand, on SQLite and PostgreSQL.

Three members join at different NAVs per unit; two trades win and one loses (all with
fees); a withdrawal asked while the free cash is out in a trade waits in the queue and
is paid, first in first out, when the trade closes, at the NAV per unit of the payment.
Every figure below is worked out in the comments so that it can be checked with a
pencil, and asserted exactly (``Decimal`` equality): units issued and burned, NAV, NAV
per unit (to 8 decimals), each member's equity in cents (rounded down, as reported),
cash and allocated capital.

Rules (the plugin's defaults): minimum contribution 100; allocations are sized as
``NAV × risk_per_trade ÷ stop``, with ``risk_per_trade`` 2 % from NAV 1,000 to 9,999
("growth"), capped at 60 % of NAV (``max_active_ratio``) and at the free cash. Fees are
0.1 % of each fill's notional, rounded up to the cent. Units are issued rounded DOWN
and burned rounded UP to 0.00000001 (the pool's favour, :mod:`corec.core.money`).

Time comes from a :class:`ReplayClock` moved one minute per step: timestamps are
deterministic, and no allocation waits anywhere near ``allocation_timeout_s`` (300 s)
before its position is opened, so none expires.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal, localcontext
from typing import Any

import pytest
from sqlalchemy import select

from corec.core import money
from corec.core.clock import NS_PER_S, ReplayClock
from corec.core.store import Store
from corec.core.store.migrate import upgrade
from corec.messages.capital_data import (
    AllocationGranted,
    AllocationRequest,
    ContributionRecorded,
    WithdrawalQueued,
    WithdrawalRecorded,
)
from corec.messages.market_data import MarketSnapshot
from corec.plugins.capital_pool import models as m
from corec.plugins.capital_pool import repository as repo
from corec.plugins.capital_pool.config import CapitalPoolConfig
from corec.plugins.capital_pool.ledger import Allocation
from corec.plugins.capital_pool.plugin import CapitalPoolPlugin
from corec.plugins.capital_pool.service import PoolService, members_report

from .helpers import EXCHANGE, MARKET, START_NS, SYMBOL, D, closed_for, opened_for

CONFIG = CapitalPoolConfig()  # the defaults quoted in the module docstring
MINUTE_NS = 60 * NS_PER_S


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    store = Store(db_url, name="capital_pool")
    try:
        await upgrade(store, CapitalPoolPlugin.migrations)
        yield store
    finally:
        await store.dispose()


class Published:
    """What the service publishes (withdrawals paid from the queue are only seen here)."""

    def __init__(self) -> None:
        self.payloads: list[Any] = []

    async def publish(self, _channel: str, payload: Any, _key: str | None) -> None:
        self.payloads.append(payload)

    def of(self, cls: type) -> list[Any]:
        return [p for p in self.payloads if isinstance(p, cls)]


class Pool:
    """The service under test, its clock, and short ways to read its figures."""

    def __init__(self, svc: PoolService, clock: ReplayClock) -> None:
        self.svc = svc
        self.clock = clock

    def tick(self) -> int:
        """One minute later (UTC ns)."""
        self.clock.advance_to(self.clock.now_ns() + MINUTE_NS)
        return self.clock.now_ns()

    def nav(self) -> Decimal:
        return self.svc.ledger.nav_usd()

    def nav_per_unit(self) -> Decimal:
        """NAV per unit to 8 decimals (as published)."""
        return self.svc.ledger.figures().nav_per_unit.quantize(money.NAV_PER_UNIT_QUANTUM)

    def cash_allocated(self) -> tuple[Decimal, Decimal]:
        return self.svc.ledger.cash_usd, self.svc.ledger.allocated_usd

    def units(self) -> dict[str, Decimal]:
        return dict(self.svc.ledger.member_units)

    def equity_cents(self) -> dict[str, Decimal]:
        """Each member's equity rounded down to the cent (``corec pool members``)."""
        return {row["member"]: row["equity_usd"] for row in members_report(self.svc.ledger)}

    async def contribute(self, member: str, amount: str, cid: str) -> ContributionRecorded:
        self.tick()
        return await self.svc.contribute(member, D(amount), cid)

    async def trade(
        self,
        stop_loss_pct: str,
        trade_id: str,
        quantity: str,
        entry_price: str,
        entry_fee: str,
    ) -> tuple[AllocationGranted, Allocation]:
        """Ask for capital for a BTC long and fill it; returns the grant and allocation."""
        self.tick()
        granted = await self.svc.allocate(
            AllocationRequest(
                strategy="sma",
                exchange=EXCHANGE,
                market=MARKET,
                symbol=SYMBOL,
                side="long",
                stop_loss_pct=D(stop_loss_pct),
            )
        )
        assert isinstance(granted, AllocationGranted), granted
        alloc = self.svc.ledger.allocations[granted.allocation_id]
        opened_ts = self.tick()  # one minute later: far inside allocation_timeout_s
        await self.svc.on_position_opened(
            opened_for(alloc, trade_id, quantity, entry_price, entry_fee, opened_ts_ns=opened_ts)
        )
        return granted, alloc

    async def close(
        self,
        alloc: Allocation,
        trade_id: str,
        quantity: str,
        entry_price: str,
        exit_price: str,
        fees: str,
        exit_reason: str = "signal",
    ) -> None:
        opened = self.svc.ledger.allocations[alloc.allocation_id].position
        assert opened is not None
        await self.svc.on_trade_closed(
            closed_for(
                alloc,
                trade_id,
                quantity,
                entry_price,
                exit_price,
                fees,
                opened_ts_ns=opened.opened_ts_ns,
                closed_ts_ns=self.tick(),
                exit_reason=exit_reason,
            )
        )

    def mark(self, price: str) -> None:
        self.tick()
        self.svc.on_market(
            MarketSnapshot(
                exchange=EXCHANGE,
                market=MARKET,
                symbol=SYMBOL,
                bid=None,
                ask=None,
                last=D(price),
                mid=D(price),
                price=D(price),
                spread_bps=None,
                return_pct=None,
                window_s=60,
                exchange_ts_ns=self.clock.now_ns(),
            )
        )


async def stored_flows(
    store: Store, table: Any
) -> list[tuple[str, str, Decimal, Decimal, Decimal]]:
    """(id, member, amount, units, NAV per unit to 8 decimals) of each stored flow, in order."""
    id_column = table.c.contribution_id if table is m.contributions else table.c.withdrawal_id
    query = select(
        id_column, table.c.member, table.c.amount_usd, table.c.units, table.c.nav_per_unit
    ).order_by(table.c.entry_seq)
    return await store.read(
        lambda conn: [
            (r[0], r[1], r[2], r[3], r[4].quantize(money.NAV_PER_UNIT_QUANTUM))
            for r in conn.execute(query)
        ]
    )


async def test_three_members_two_gains_a_loss_and_a_queued_withdrawal(store: Store) -> None:
    published = Published()
    clock = ReplayClock(START_NS)
    svc = PoolService(store, CONFIG, clock, publish=published.publish)
    await svc.open()
    for name in ("alice", "bob", "carol"):
        assert await svc.add_member(name)
    pool = Pool(svc, clock)

    # -- 1. alice contributes 1,000.00 into the empty pool --------------------------------
    # No units exist yet, so the price is the initial 1.00 per unit:
    #   units = 1,000.00 / 1 = 1,000 units.          NAV 1,000.00, units 1,000, NAV/unit 1.
    alice = await pool.contribute("alice", "1000.00", "c-alice")
    assert (alice.units, alice.nav_per_unit) == (D(1000), D(1))
    assert (pool.nav(), pool.nav_per_unit()) == (D(1000), D(1))
    assert pool.cash_allocated() == (D(1000), D(0))

    # -- 2. trade A wins 50.00 net ---------------------------------------------------------
    # Grant: NAV 1,000 is in "growth" (2 %); the stop is 4 % away:
    #   sized    = 1,000 × 0.02 ÷ 0.04      = 500.00
    #   cap      = 1,000 × 0.60 − 0         = 600.00 ; free cash 1,000.00
    #   granted  = min(500, 600, 1,000)     = 500.00   → cash 500.00, allocated 500.00
    # Fill: long 0.02 BTC at 20,000 = 400.00 notional, entry fee 0.1 % = 0.40
    #   (cost 400.40 ≤ 500.00). At its entry price the position is worth −0.40 (the fee):
    #   NAV = 500.00 + 500.00 − 0.40 = 999.60.
    granted_a, alloc_a = await pool.trade("4", "t-a", "0.02", "20000", "0.40")
    assert (granted_a.amount_usd, granted_a.reduced) == (D(500), False)
    assert pool.cash_allocated() == (D(500), D(500))
    assert pool.nav() == D("999.60")
    # Close at 22,543: gross = (22,543 − 20,000) × 0.02 = 2,543 × 0.02 = 50.86;
    #   exit fee = 0.1 % × 0.02 × 22,543 = 0.1 % × 450.86 = 0.45086 → 0.46 (rounded up);
    #   fees = 0.40 + 0.46 = 0.86; net = 50.86 − 0.86 = 50.00.
    # Cash gets the allocation back with the result: 500 + 500 + 50.86 − 0.86 = 1,050.00.
    #   NAV 1,050.00 / 1,000 units = NAV/unit 1.05 (alice's equity 1,050.00).
    await pool.close(alloc_a, "t-a", "0.02", "20000", "22543", "0.86")
    assert pool.cash_allocated() == (D(1050), D(0))
    assert (pool.nav(), pool.nav_per_unit()) == (D(1050), D("1.05"))
    assert pool.equity_cents() == {"alice": D(1050), "bob": D(0), "carol": D(0)}

    # -- 3. bob joins at 1.05 and gets fewer units for his money ---------------------------
    #   units = 420.00 × 1,000 ÷ 1,050 = 420 ÷ 1.05 = 400 units (exact: no rounding).
    #   NAV 1,470.00, units 1,400, NAV/unit still 1.05; alice 1,050.00, bob 420.00.
    bob = await pool.contribute("bob", "420.00", "c-bob")
    assert (bob.units, bob.nav_per_unit) == (D(400), D("1.05"))
    assert (pool.nav(), pool.nav_per_unit()) == (D(1470), D("1.05"))
    assert pool.equity_cents() == {"alice": D(1050), "bob": D(420), "carol": D(0)}

    # -- 4. trade B loses 21.00 net (stopped out, with slippage and fees) -----------------
    # Grant: NAV 1,470, 2 %, stop 5 %: sized = 1,470 × 0.02 ÷ 0.05 = 588.00
    #   (cap 1,470 × 0.6 = 882.00, free cash 1,470.00) → granted 588.00;
    #   cash 882.00, allocated 588.00.
    # Fill: long 0.02 BTC at 20,000 (400.00), entry fee 0.40; the stop is at 19,000.
    granted_b, alloc_b = await pool.trade("5", "t-b", "0.02", "20000", "0.40")
    assert granted_b.amount_usd == D(588)
    assert pool.cash_allocated() == (D(882), D(588))
    # Stopped out at 18,989 (11 below the stop): gross = (18,989 − 20,000) × 0.02 = −20.22;
    #   exit fee = 0.1 % × 379.78 = 0.37978 → 0.38; fees = 0.40 + 0.38 = 0.78;
    #   net = −20.22 − 0.78 = −21.00.
    # Cash: 882 + 588 − 20.22 − 0.78 = 1,449.00 = NAV; NAV/unit = 1,449 ÷ 1,400 = 1.035.
    #   alice 1,000 × 1.035 = 1,035.00, bob 400 × 1.035 = 414.00: both lost 1.5 % of 1.05.
    await pool.close(alloc_b, "t-b", "0.02", "20000", "18989", "0.78", "stop_loss")
    assert pool.cash_allocated() == (D(1449), D(0))
    assert (pool.nav(), pool.nav_per_unit()) == (D(1449), D("1.035"))
    assert pool.equity_cents() == {"alice": D(1035), "bob": D(414), "carol": D(0)}

    # -- 5. carol joins after the loss, at 1.035 -------------------------------------------
    #   units = 517.50 ÷ 1.035 = 500 units (exact).
    #   NAV 1,966.50, units 1,900, NAV/unit 1.035; carol 517.50.
    carol = await pool.contribute("carol", "517.50", "c-carol")
    assert (carol.units, carol.nav_per_unit) == (D(500), D("1.035"))
    assert (pool.nav(), pool.nav_per_unit()) == (D("1966.50"), D("1.035"))
    assert pool.units() == {"alice": D(1000), "bob": D(400), "carol": D(500)}

    # -- 6. trade C takes the most the 60 % cap allows ------------------------------------
    # Grant: NAV 1,966.50, 2 %, stop 2 %: sized = 1,966.50 × 0.02 ÷ 0.02 = 1,966.50, but
    #   cap = 1,966.50 × 0.6 = 1,179.90 → granted 1,179.90 (reduced);
    #   cash = 1,966.50 − 1,179.90 = 786.60, allocated 1,179.90.
    # Fill: long 0.045 BTC at 20,000 = 900.00, entry fee 0.90 (cost 900.90 ≤ 1,179.90).
    #   NAV = 786.60 + 1,179.90 − 0.90 = 1,965.60.
    granted_c, alloc_c = await pool.trade("2", "t-c", "0.045", "20000", "0.90")
    assert (granted_c.amount_usd, granted_c.reduced) == (D("1179.90"), True)
    assert pool.cash_allocated() == (D("786.60"), D("1179.90"))
    assert pool.nav() == D("1965.60")

    # -- 7. alice asks for 800.00: more than the free cash, so it waits -------------------
    # Her equity is 1,000 × 1,965.60 ÷ 1,900 = 1,034.52631... ≥ 800: she may withdraw it,
    # but free cash is 786.60 < 800.00 → queued, nothing ahead of her.
    queued_alice = await pool.svc.withdraw("alice", D(800), "w-alice")
    assert isinstance(queued_alice, WithdrawalQueued)
    assert queued_alice.ahead_usd == D(0)
    # bob asks for 100.00: 786.60 would cover it, but nobody overtakes the queue (FIFO).
    queued_bob = await pool.svc.withdraw("bob", D(100), "w-bob")
    assert isinstance(queued_bob, WithdrawalQueued)
    assert queued_bob.ahead_usd == D(800)
    # Queued withdrawals write no journal entry: units, cash and NAV are unchanged.
    assert pool.units() == {"alice": D(1000), "bob": D(400), "carol": D(500)}
    assert pool.cash_allocated() == (D("786.60"), D("1179.90"))

    # -- 8. the market marks BTC at 21,000 while trade C is open --------------------------
    #   unrealized = (21,000 − 20,000) × 0.045 − 0.90 = 45.00 − 0.90 = 44.10
    #   NAV = 786.60 + 1,179.90 + 44.10 = 2,010.60 (no entry: marks only move NAV).
    pool.mark("21000")
    assert pool.nav() == D("2010.60")
    assert pool.cash_allocated() == (D("786.60"), D("1179.90"))

    # -- 9. trade C closes 85.50 up; the queue is paid in order at NAV/unit 1.08 ----------
    # gross = (21,942 − 20,000) × 0.045 = 1,942 × 0.045 = 87.39;
    #   exit fee = 0.1 % × 987.39 = 0.98739 → 0.99; fees = 0.90 + 0.99 = 1.89;
    #   net = 87.39 − 1.89 = 85.50.
    # Cash = 786.60 + 1,179.90 + 87.39 − 1.89 = 2,052.00 = NAV; units 1,900;
    #   NAV/unit = 2,052 ÷ 1,900 = 1.08.
    # alice's 800.00 is paid first, at 1.08 (not at the 1.0345 of her request):
    #   burned = 800 × 1,900 ÷ 2,052 = 800 ÷ 1.08 = 740.740740740...
    #          → rounded UP to 740.74074075 (the last digit rounds up: she pays the dust).
    #   units 1,900 − 740.74074075 = 1,159.25925925; NAV 2,052 − 800 = 1,252.00.
    #   Check: 1,159.25925925 × 1.08 = 1,251.99999999 (1 × 10⁻⁸ short of 1,252), so
    #   NAV/unit = 1.08 + 0.00000001 ÷ 1,159.26 = 1.08000000000863 → 1.08000000.
    # bob's 100.00 next, at that NAV/unit:
    #   burned = 100 × 1,159.25925925 ÷ 1,252 = 115,925.925925 ÷ 1,252 = 92.5925925918...
    #   (1,252 × 92.59259259 = 115,925.92592268, leaving 0.00000232: more than 92.59259259)
    #          → rounded UP to 92.59259260.
    #   units 1,159.25925925 − 92.59259260 = 1,066.66666665; NAV 1,252 − 100 = 1,152.00.
    await pool.close(alloc_c, "t-c", "0.045", "20000", "21942", "1.89")
    paid = published.of(WithdrawalRecorded)
    assert [(w.withdrawal_id, w.amount_usd, w.units, w.nav_per_unit) for w in paid] == [
        ("w-alice", D(800), D("740.74074075"), D("1.08")),
        ("w-bob", D(100), D("92.59259260"), D("1.08")),
    ]
    assert pool.cash_allocated() == (D(1152), D(0))
    assert pool.nav() == D(1152)
    assert pool.units() == {
        "alice": D("259.25925925"),  # 1,000 − 740.74074075
        "bob": D("307.40740740"),  # 400 − 92.59259260
        "carol": D(500),
    }
    # 1,066.66666665 × 1.08 = 1,151.999999982: NAV/unit = 1.08000000001687 → 1.08000000.
    assert pool.nav_per_unit() == D("1.08")

    # -- 10. carol adds 100.00: the units issued round DOWN --------------------------------
    #   units = 100 × 1,066.66666665 ÷ 1,152 = 106,666.666665 ÷ 1,152 = 92.5925925911...
    #   (1,152 × 92.59259259 = 106,666.66666368, leaving 0.00000132 < 1,152 × 10⁻⁸)
    #          → rounded DOWN to 92.59259259 (the 0.0000000011... of a unit stays in the pool).
    #   carol 500 + 92.59259259 = 592.59259259 units; units 1,159.25925924; NAV 1,252.00.
    topup = await pool.contribute("carol", "100.00", "c-carol-2")
    assert (topup.units, topup.nav_per_unit) == (D("92.59259259"), D("1.08"))
    assert pool.cash_allocated() == (D(1252), D(0))
    assert pool.nav() == D(1252)
    assert pool.nav_per_unit() == D("1.08")
    units = pool.units()
    assert units == {
        "alice": D("259.25925925"),
        "bob": D("307.40740740"),
        "carol": D("592.59259259"),
    }
    assert sum(units.values()) == D("1159.25925924")

    # -- final equity, in cents rounded down (each is units × 1,252 ÷ 1,159.25925924) -----
    #   alice 259.25925925 × 1.08000000001794 = 279.999999995 → 279.99
    #     (280.00 would be 1,080.00 at 1.08 less 800.00; rounding her burn up took
    #      0.00000000926 of a unit, 0.00000001 USD, from her, a part of which comes back
    #      as her share of the pool's dust: under a cent, but the report rounds down)
    #   bob   307.40740740 × 1.08000000001794 = 331.999999998 → 331.99  (432.00 − 100.00)
    #   carol 592.59259259 × 1.08000000001794 = 640.000000008 → 640.00  (540.00 + 100.00)
    # Total 1,251.98: the members' equity adds up to NAV 1,252.00 less under a cent each
    # for the rounding down to cents; unrounded, it adds up to NAV (the rounding dust of
    # issuing and burning stays in the pool and is shared by units).
    equity = pool.equity_cents()
    assert equity == {"alice": D("279.99"), "bob": D("331.99"), "carol": D("640.00")}
    assert D(0) <= pool.nav() - sum(equity.values()) < D("0.01") * len(equity)
    with localcontext(prec=100):  # add the 50-digit equities without rounding the sum
        unrounded = sum((pool.svc.ledger.member_equity_usd(name) for name in units), D(0))
    assert abs(unrounded - pool.nav()) < D("1e-40")

    # -- what is stored says the same --------------------------------------------------------
    assert await stored_flows(store, m.contributions) == [
        ("c-alice", "alice", D(1000), D(1000), D(1)),
        ("c-bob", "bob", D(420), D(400), D("1.05")),
        ("c-carol", "carol", D("517.50"), D(500), D("1.035")),
        ("c-carol-2", "carol", D(100), D("92.59259259"), D("1.08")),
    ]
    assert await stored_flows(store, m.withdrawals) == [
        ("w-alice", "alice", D(800), D("740.74074075"), D("1.08")),
        ("w-bob", "bob", D(100), D("92.59259260"), D("1.08")),
    ]
    queue = await store.read(
        lambda conn: [
            tuple(r)
            for r in conn.execute(
                select(
                    m.withdrawal_queue.c.withdrawal_id,
                    m.withdrawal_queue.c.status,
                    m.withdrawal_queue.c.paid_usd,
                ).order_by(m.withdrawal_queue.c.position)
            )
        ]
    )
    assert queue == [("w-alice", "paid", D(800)), ("w-bob", "paid", D(100))]
    reloaded = await repo.load_ledger(store, svc.rules)
    assert reloaded.balances == svc.ledger.balances
    assert reloaded.member_units == svc.ledger.member_units
    assert reloaded.seq == svc.ledger.seq
    assert reloaded.nav_usd() == D(1252)
    # journal: 4 contributions, 3 grants, 3 settlements, 2 withdrawals; the books close:
    # realized PnL (credit) = −(50.86 − 20.22 + 87.39) = −118.03; fees 0.86 + 0.78 + 1.89.
    assert svc.ledger.seq == 12
    assert svc.ledger.balance("income:realized_pnl") == D("-118.03")
    assert svc.ledger.balance("expense:fees") == D("3.53")
    assert sum(svc.ledger.balances.values(), D(0)) == 0
