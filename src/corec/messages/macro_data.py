"""``macro_data``: macro-economic series (VIX, S&P 500, …) as macro_sync sees them.

Published by macro_sync; consumed by capital_pool (risk is cut while the VIX is high).
Values are the series' own units (VIX in index points, S&P 500 in index points).
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar

from corec.core.events import Payload
from corec.messages._checks import require_finite, require_text


class MacroObservation(Payload, frozen=True, kw_only=True):
    """One daily value of one series.

    Fields:
        series: CoreC's name of the series (``VIX``, ``SP500``).
        source_id: the source's id (FRED ``VIXCLS``).
        date: the observation date, ISO ``YYYY-MM-DD`` (the trading day it closes).
        value: the value (``Decimal``, as published).
        available_ts_ns: when the value became known (UTC ns): the day's
            ``available_at_utc`` for a recording, the download time for HTTP.
    """

    TYPE: ClassVar[str] = "macro_observation"
    series: str
    source_id: str
    date: str
    value: Decimal
    available_ts_ns: int

    def __post_init__(self) -> None:
        require_text("series", self.series)
        require_text("date", self.date)
        require_finite("value", self.value)


class MacroSeriesStale(Payload, frozen=True, kw_only=True):
    """A series has had no new value for longer than macro_sync's ``stale_after_s``.

    Fields:
        series: the series.
        last_date: the date of its newest value (``None``: never had one).
        silent_s: seconds since that value became known (or since macro_sync started).
    """

    TYPE: ClassVar[str] = "macro_series_stale"
    series: str
    last_date: str | None
    silent_s: int
