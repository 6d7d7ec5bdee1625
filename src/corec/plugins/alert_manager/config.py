"""alert_manager's configuration section."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field, model_validator

from corec.core.config import FrozenModel
from corec.core.notices import Severity
from corec.core.plugin import PluginConfig


class Thresholds(FrozenModel):
    """USD thresholds per severity; a value at or above a threshold gets that severity
    (the highest that applies). A severity left out is never assigned."""

    low: Decimal | None = Field(default=None, gt=0)
    medium: Decimal | None = Field(default=None, gt=0)
    high: Decimal | None = Field(default=None, gt=0)
    critical: Decimal | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _ascending(self) -> Thresholds:
        given = [v for v in (self.low, self.medium, self.high, self.critical) if v is not None]
        if given != sorted(given) or len(set(given)) != len(given):
            raise ValueError("thresholds must increase from low to critical")
        return self

    def classify(self, value_usd: Decimal) -> Severity | None:
        """The highest severity whose threshold ``value_usd`` reaches, or ``None``."""
        for severity, threshold in (
            ("critical", self.critical),
            ("high", self.high),
            ("medium", self.medium),
            ("low", self.low),
        ):
            if threshold is not None and value_usd >= threshold:
                return severity  # type: ignore[return-value]
        return None


class AlertManagerConfig(PluginConfig):
    """alert_manager settings.

    Fields:
        dedup_ttl_s: the same alert (name + labels) within this many seconds of its
            first firing is counted, not reported again.
        trade_loss_usd: severities for a closed trade's loss (absolute USD).
        withdrawal_usd: severities for a withdrawal's amount.
        severity_overrides: force the severity of alerts by name (``price_move: high``).
    """

    dedup_ttl_s: float = Field(default=3600.0, gt=0)
    trade_loss_usd: Thresholds = Thresholds(
        low=Decimal(50), medium=Decimal(200), high=Decimal(500), critical=Decimal(2000)
    )
    withdrawal_usd: Thresholds = Thresholds(
        medium=Decimal(1000), high=Decimal(5000), critical=Decimal(20000)
    )
    severity_overrides: dict[str, Severity] = {}
