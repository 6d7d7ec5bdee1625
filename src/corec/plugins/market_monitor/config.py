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
        stale_after_s: a venue with no ticker for longer than this is stale: alerted
            on (``stale_data``) and left out of the consolidated quotes. In the node
            clock's time (the recording's time when replaying). The default, 600 s, is
            two polls of exchange_sync's default 300 s interval: one missed poll is not
            yet stale, two are.
        stale_check_interval_s: how often to look for silent instruments (live clock;
            a replay looks at most this often in the recording's time).
        gap_alert_bps: alert (``cross_exchange_gap``) when a symbol's highest venue mid
            is at least this many bps above its lowest (severity ``high`` from twice
            that); once per excursion, re-armed when the gap is back under.
        basis_alert_bps: alert (``futures_basis``) when ``|basis|`` of a futures
            contract against its spot pair on one exchange is at least this many bps
            (``high`` from twice that); once per excursion, like the gap.
        consolidate_interval_s: publish a symbol's consolidated quote at most once per
            this many seconds of node-clock time; an update inside the interval is held
            and published when it ends, so none is lost, only delayed (0: after every
            ticker batch). Bounds the rate of fast feeds (trade replays, streams); one
            minute bars and polls of several exchanges a second apart are unaffected.
    """

    window_s: int = Field(default=3600, gt=0)
    move_alert_pct: Decimal = Field(default=Decimal(5), gt=0)
    stale_after_s: float = Field(default=600.0, gt=0)
    stale_check_interval_s: float = Field(default=30.0, gt=0)
    gap_alert_bps: Decimal = Field(default=Decimal(50), gt=0)
    basis_alert_bps: Decimal = Field(default=Decimal(100), gt=0)
    consolidate_interval_s: float = Field(default=1.0, ge=0)
