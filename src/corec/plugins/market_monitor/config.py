"""market_monitor's configuration section."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from corec.core.plugin import PluginConfig


class MarketMonitorConfig(PluginConfig):
    """market_monitor settings.

    Fields:
        window_s: the window of ``return_pct`` and of move alerts, in seconds.
        move_alert_pct: alert when the price moved at least this many percent within
            ``window_s`` (severity ``high`` from twice that); re-armed once the move is
            back under the threshold.
        stale_after_s: alert when an instrument had no ticker for this long (in the
            node clock's time: the recording's time when replaying).
        stale_check_interval_s: how often to look for silent instruments (live clock).
    """

    window_s: int = Field(default=3600, gt=0)
    move_alert_pct: Decimal = Field(default=Decimal(5), gt=0)
    stale_after_s: float = Field(default=300.0, gt=0)
    stale_check_interval_s: float = Field(default=30.0, gt=0)
