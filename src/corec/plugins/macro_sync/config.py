"""macro_sync's configuration section."""

from __future__ import annotations

import re
from datetime import time
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from corec.core.config import FrozenModel
from corec.core.plugin import PluginConfig

_SERIES_NAME = re.compile(r"[A-Z][A-Z0-9_]*")


class RecordingSettings(FrozenModel):
    """A CSV of daily values (FRED's download format).

    Fields:
        path: the CSV (header ``observation_date`` or ``DATE``, then one column per
            source id); default the bundled ``fred_vix_sp500_2021-12_2022-02.csv``.
        available_at_utc: the time of day (UTC) a date's value counts as known: after
            the US close (16:00 New York = 21:00 UTC in winter), default 21:15.
    """

    path: Path | None = None
    available_at_utc: time = time(21, 15)

    @field_validator("path")
    @classmethod
    def _exists(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_file():
            raise ValueError(f"no recording at {path} (relative paths start in {Path.cwd()})")
        return path


class FredSettings(FrozenModel):
    """FRED's public CSV download, polled over HTTP.

    Fields:
        url: the download URL, ``{id}`` replaced by the series' source id.
        interval_s: how often to download (daily series change once a day).
        timeout_s: per request.
        retry_attempts, breaker_failures, breaker_reset_s: the resilience kit (a
            breaker per series).
    """

    url: str = "https://fred.stlouisfed.org/graph/fredgraph.csv?id={id}"
    interval_s: float = Field(default=3600.0, gt=0)
    timeout_s: float = Field(default=20.0, gt=0)
    retry_attempts: int = Field(default=3, ge=1)
    breaker_failures: int = Field(default=3, ge=1)
    breaker_reset_s: float = Field(default=900.0, gt=0)

    @field_validator("url")
    @classmethod
    def _template(cls, url: str) -> str:
        if "{id}" not in url or not url.startswith(("http://", "https://")):
            raise ValueError(f"must be an http(s) URL containing {{id}}, got {url!r}")
        return url


class MacroSyncConfig(PluginConfig):
    """macro_sync settings.

    Fields:
        source: ``recording`` (a CSV replayed on the node clock) or ``fred`` (HTTP).
        series: CoreC's name of each series → the source's id (FRED ``VIXCLS``).
        recording, fred: settings of each source.
        stale_after_s: a series with no new value for this long (node clock) is flagged
            stale: an alert and a ``MacroSeriesStale`` event. Default 4 days (a long
            weekend is not stale).
    """

    source: Literal["recording", "fred"] = "recording"
    series: dict[str, str] = Field(default_factory=lambda: {"VIX": "VIXCLS", "SP500": "SP500"})
    recording: RecordingSettings = RecordingSettings()
    fred: FredSettings = FredSettings()
    stale_after_s: float = Field(default=4 * 86_400.0, gt=0)

    @field_validator("series")
    @classmethod
    def _names(cls, series: dict[str, str]) -> dict[str, str]:
        if not series:
            raise ValueError("configure at least one series")
        for name, source_id in series.items():
            if not _SERIES_NAME.fullmatch(name):
                raise ValueError(f"series name {name!r} must be upper-case letters, digits, '_'")
            if not source_id.strip():
                raise ValueError(f"series {name}: the source id is empty")
        return series
