"""The macro adjustment of risk per trade: halved while the VIX is above 20 or its
value is too old, with an alert that says why."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from corec.core.clock import NS_PER_S, ReplayClock
from corec.core.store import Store
from corec.core.store.migrate import upgrade
from corec.messages.capital_data import AllocationGranted, AllocationRequest
from corec.messages.macro_data import MacroObservation
from corec.plugins.capital_pool.config import CapitalPoolConfig, MemberConfig
from corec.plugins.capital_pool.macro import MacroRisk, MacroSettings
from corec.plugins.capital_pool.plugin import CapitalPoolPlugin
from corec.plugins.capital_pool.service import PoolService

from .helpers import EXCHANGE, MARKET, START_NS, SYMBOL, D

DAY_NS = 86_400 * NS_PER_S
CONFIG = CapitalPoolConfig(
    members=(MemberConfig(name="alice", opening_contribution_usd=D(10_000)),)
)


def vix(value: str, date: str = "2022-01-13", available_ns: int = START_NS) -> MacroObservation:
    return MacroObservation(
        series="VIX", source_id="VIXCLS", date=date, value=D(value), available_ts_ns=available_ns
    )


def request() -> AllocationRequest:
    return AllocationRequest(
        strategy="sma",
        exchange=EXCHANGE,
        market=MARKET,
        symbol=SYMBOL,
        side="long",
        stop_loss_pct=D(10),
    )


class Alerts:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str, dict[str, str]]] = []

    async def __call__(
        self, name: str, message: str, severity: str, labels: dict[str, str]
    ) -> None:
        self.seen.append((name, message, severity, labels))

    def macro(self) -> list[tuple[str, str, str, dict[str, str]]]:
        return [a for a in self.seen if a[0] == "macro_risk"]


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    store = Store(db_url, name="capital_pool")
    try:
        await upgrade(store, CapitalPoolPlugin.migrations)
        yield store
    finally:
        await store.dispose()


def test_the_rule_at_each_state() -> None:
    risk = MacroRisk(MacroSettings())
    assert risk.assess(START_NS).multiplier == 1  # no value, not required
    assert risk.observe(vix("20")) is True
    assert (risk.assess(START_NS).multiplier, risk.assess(START_NS).state) == (1, "normal")
    assert risk.observe(vix("20.31", date="2022-01-14")) is True
    high = risk.assess(START_NS)
    assert (high.multiplier, high.state) == (Decimal("0.5"), "high_vix")
    assert "VIX 20.31 of 2022-01-14 is above 20" == high.reason
    assert risk.observe(vix("15", date="2022-01-12")) is False  # older: ignored
    assert (
        risk.observe(
            MacroObservation(
                series="SP500", source_id="SP500", date="2022-01-20", value=D(1), available_ts_ns=0
            )
        )
        is False
    )
    stale = risk.assess(START_NS + 4 * DAY_NS + NS_PER_S)
    assert (stale.multiplier, stale.state) == (Decimal("0.5"), "stale")
    assert "96 h old" in stale.reason
    assert risk.assess(START_NS + 4 * DAY_NS).state == "high_vix"  # exactly 4 days: not yet

    required = MacroRisk(MacroSettings(required=True, risk_multiplier=Decimal("0.25")))
    missing = required.assess(START_NS)
    assert (missing.multiplier, missing.state) == (Decimal("0.25"), "missing")


async def test_allocations_are_halved_while_the_vix_is_high(store: Store) -> None:
    alerts = Alerts()
    svc = PoolService(store, CONFIG, ReplayClock(START_NS), alert=alerts)
    await svc.open()
    await svc.register_members()

    calm = await svc.allocate(request())
    assert isinstance(calm, AllocationGranted)
    # NAV 10,000 in the 1 % band: 10,000 × 1 % ÷ 10 % = 1,000 USD
    assert (calm.amount_usd, calm.risk_per_trade) == (D("1000"), D("0.01"))

    svc.on_macro(vix("31.96", date="2022-01-26"))
    stressed = await svc.allocate(request())
    assert isinstance(stressed, AllocationGranted)
    # the NAV is unchanged (a grant only moves cash): half the risk, half the size
    assert (stressed.amount_usd, stressed.risk_per_trade) == (D("500"), D("0.005"))
    assert not stressed.reduced
    [(name, message, severity, labels)] = alerts.macro()
    assert (name, severity, labels) == (
        "macro_risk",
        "medium",
        {"state": "high_vix", "series": "VIX"},
    )
    assert message == "risk per trade × 0.5: VIX 31.96 of 2022-01-26 is above 20"

    svc.on_macro(vix("19.96", date="2022-02-09"))
    back = await svc.allocate(request())
    assert isinstance(back, AllocationGranted)
    assert (back.amount_usd, back.risk_per_trade) == (D("1000"), D("0.01"))
    assert [a[2] for a in alerts.macro()] == ["medium", "low"]
    assert alerts.macro()[-1][1].startswith("risk per trade back to the phase's: VIX 19.96")
