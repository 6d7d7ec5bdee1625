"""capital_pool's configuration section."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field, model_validator

from corec.core.config import FrozenModel
from corec.core.plugin import PluginConfig
from corec.plugins.capital_pool.macro import MacroSettings

MEMBER_NAME_PATTERN = r"^[a-z][a-z0-9_.-]{0,63}$"


class PhaseConfig(FrozenModel):
    """A capital band: from ``min_nav_usd`` up, risk ``risk_per_trade`` (fraction of NAV)."""

    name: str = Field(min_length=1, max_length=32)
    min_nav_usd: Decimal = Field(ge=0)
    risk_per_trade: Decimal = Field(gt=0, le=1)


class MemberConfig(FrozenModel):
    """A member registered at start, with an optional opening contribution.

    The opening contribution is recorded once (id ``opening-<name>``), however many
    times the node starts. ``reinvest: false`` pays the member's share of each day's
    realized profit out at the daily settlement instead of leaving it in the pool.
    """

    name: str = Field(pattern=MEMBER_NAME_PATTERN)
    opening_contribution_usd: Decimal | None = Field(default=None, gt=0, decimal_places=2)
    reinvest: bool = True


DEFAULT_PHASES = (
    PhaseConfig(name="seed", min_nav_usd=Decimal(100), risk_per_trade=Decimal("0.03")),
    PhaseConfig(name="growth", min_nav_usd=Decimal(1000), risk_per_trade=Decimal("0.02")),
    PhaseConfig(name="established", min_nav_usd=Decimal(10000), risk_per_trade=Decimal("0.01")),
)


class CapitalPoolConfig(PluginConfig):
    """capital_pool settings.

    Fields:
        min_contribution_usd: smallest contribution accepted (default 100).
        max_active_ratio: allocated capital never exceeds this fraction of NAV (0.6).
        min_allocation_usd: grants smaller than this are refused (10).
        phases: capital bands; defaults 100–999 USD: 3 %, 1,000–9,999: 2 %, 10,000+: 1 %.
        members: members to register at start, with opening contributions.
        marks_save_interval_s: how often the latest marks are saved for offline NAV.
        macro: risk cut while the VIX is high or macro data is stale (see
            :mod:`corec.plugins.capital_pool.macro`).
        allocation_timeout_s: an allocation no position uses within this long (node
            clock) expires: its capital returns to cash (checked before each grant, and
            periodically on a live clock).
        queue_alert_usd: queued and cancelled withdrawals of at least this many USD
            raise an alert (paid ones are alert_manager's withdrawal rule).
    """

    min_contribution_usd: Decimal = Field(default=Decimal(100), gt=0, decimal_places=2)
    max_active_ratio: Decimal = Field(default=Decimal("0.6"), gt=0, le=1)
    min_allocation_usd: Decimal = Field(default=Decimal(10), ge=0)
    phases: tuple[PhaseConfig, ...] = Field(default=DEFAULT_PHASES, min_length=1)
    members: tuple[MemberConfig, ...] = ()
    marks_save_interval_s: float = Field(default=60.0, gt=0)
    macro: MacroSettings = MacroSettings()
    allocation_timeout_s: float = Field(default=300.0, gt=0)
    queue_alert_usd: Decimal = Field(default=Decimal(500), ge=0)

    @model_validator(mode="after")
    def _check(self) -> CapitalPoolConfig:
        names = [p.name for p in self.phases]
        if len(set(names)) != len(names):
            raise ValueError("phases: names must be unique")
        floors = [p.min_nav_usd for p in self.phases]
        if len(set(floors)) != len(floors):
            raise ValueError("phases: min_nav_usd values must be distinct")
        members = [m.name for m in self.members]
        if len(set(members)) != len(members):
            raise ValueError("members: names must be unique")
        for member in self.members:
            amount = member.opening_contribution_usd
            if amount is not None and amount < self.min_contribution_usd:
                raise ValueError(
                    f"members: {member.name}'s opening_contribution_usd {amount} is below "
                    f"min_contribution_usd {self.min_contribution_usd}"
                )
        return self
