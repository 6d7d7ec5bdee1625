"""Risk per trade under macro conditions: cut while the VIX is high, and while the
macro data is too old to say.

Rule (issue 4, "Macro adjustment"): risk per trade × ``risk_multiplier`` (0.5) while the
latest VIX is above ``vix_threshold`` (20); when the latest value is older than
``max_age_s`` the same conservative multiplier applies, and an alert says why. Before
any value has arrived the risk is cut only when ``required`` (a node without macro_sync
trades at full risk).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from pydantic import Field

from corec.core.clock import NS_PER_S, format_ts
from corec.core.config import FrozenModel
from corec.messages.macro_data import MacroObservation

ONE = Decimal(1)

MacroState = Literal["normal", "high_vix", "stale", "missing"]


class MacroSettings(FrozenModel):
    """capital_pool's macro adjustment.

    Fields:
        series: the ``macro_data`` series read (``VIX``).
        vix_threshold: above this value, risk is cut.
        risk_multiplier: the cut (risk per trade × this).
        max_age_s: a value older than this (node clock) counts as unknown: the cut
            applies. Default 4 days, so a long weekend does not trigger it.
        required: cut the risk also before any value has arrived.
    """

    series: str = "VIX"
    vix_threshold: Decimal = Field(default=Decimal(20), gt=0)
    risk_multiplier: Decimal = Field(default=Decimal("0.5"), gt=0, le=1)
    max_age_s: float = Field(default=4 * 86_400.0, gt=0)
    required: bool = False


@dataclass(frozen=True)
class MacroAssessment:
    """What the macro rule says now: the multiplier, the state and why."""

    multiplier: Decimal
    state: MacroState
    reason: str


class MacroRisk:
    """The latest value of the series, and the rule applied to it."""

    def __init__(self, settings: MacroSettings) -> None:
        self.settings = settings
        self.latest: MacroObservation | None = None

    def observe(self, observation: MacroObservation) -> bool:
        """Keep ``observation`` if it is the series' newest; True when kept."""
        if observation.series != self.settings.series:
            return False
        if self.latest is not None and observation.date < self.latest.date:
            return False
        self.latest = observation
        return True

    def assess(self, now_ns: int) -> MacroAssessment:
        """The multiplier at ``now_ns`` (node clock)."""
        s, latest = self.settings, self.latest
        if latest is None:
            if s.required:
                return MacroAssessment(
                    s.risk_multiplier, "missing", f"no {s.series} value received yet"
                )
            return MacroAssessment(ONE, "normal", f"no {s.series} value (not required)")
        age_s = (now_ns - latest.available_ts_ns) // NS_PER_S
        if age_s > s.max_age_s:
            return MacroAssessment(
                s.risk_multiplier,
                "stale",
                f"{s.series} {latest.value} of {latest.date} is {age_s // 3600} h old "
                f"(known since {format_ts(latest.available_ts_ns)}; max {s.max_age_s / 3600:g} h)",
            )
        if latest.value > s.vix_threshold:
            return MacroAssessment(
                s.risk_multiplier,
                "high_vix",
                f"{s.series} {latest.value} of {latest.date} is above {s.vix_threshold}",
            )
        return MacroAssessment(
            ONE,
            "normal",
            f"{s.series} {latest.value} of {latest.date} is at most {s.vix_threshold}",
        )
