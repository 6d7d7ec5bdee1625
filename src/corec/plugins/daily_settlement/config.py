"""daily_settlement's configuration section."""

from __future__ import annotations

from datetime import time
from decimal import Decimal

from pydantic import Field, field_validator

from corec.core.plugin import PluginConfig


class DailySettlementConfig(PluginConfig):
    """daily_settlement settings.

    Fields:
        day_end_utc: the valuation point that ends each day (UTC). ``00:00`` (default):
            day D is ``[D 00:00, D+1 00:00)``; ``16:00``: day D is
            ``[D-1 16:00, D 16:00)``.
        loss_alert_pct: alert when a day's return (NAV per unit) is below minus this
            percent (5 = -5 %).
        distribute: pay members who do not reinvest their share of each day's
            realized profit (``false``: settle and report only).
        check_interval_s: on the system clock, how often to look for a day that is due
            (a replay checks on every ``exchange_data`` event).
    """

    day_end_utc: time = time(0, 0)
    loss_alert_pct: Decimal = Field(default=Decimal(5), gt=0, lt=100)
    distribute: bool = True
    check_interval_s: float = Field(default=60.0, gt=0)

    @field_validator("day_end_utc")
    @classmethod
    def _whole_minute_utc(cls, value: time) -> time:
        if value.second or value.microsecond:
            raise ValueError(f"day_end_utc must be a whole minute (HH:MM), got {value}")
        if value.tzinfo is not None and value.utcoffset():
            raise ValueError(f"day_end_utc is UTC; got an offset of {value.utcoffset()}")
        return value.replace(tzinfo=None)
