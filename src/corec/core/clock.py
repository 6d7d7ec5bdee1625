"""Clocks: where "now" comes from, in UTC nanoseconds.

A live node uses :class:`SystemClock`. A node that replays a recording uses
:class:`ReplayClock`, which the replay source moves forward with the data, so that
timestamps, windows, TTLs and staleness are measured in the recording's time and a
replay gives the same results at any speed. Tests use :class:`ReplayClock` as a
controllable clock.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Protocol

NS_PER_S = 1_000_000_000


class Clock(Protocol):
    """A source of the current UTC time."""

    def now_ns(self) -> int:
        """Current UTC time in nanoseconds since the Unix epoch."""
        ...

    @property
    def is_simulated(self) -> bool:
        """True when time is driven by data (replay), not by the wall clock."""
        ...


class SystemClock:
    """The wall clock (``time.time_ns``)."""

    is_simulated = False

    def now_ns(self) -> int:
        """Current UTC time in nanoseconds (``time.time_ns()``)."""
        return time.time_ns()


class ReplayClock:
    """A clock moved by data: ``now_ns`` is the newest timestamp given to :meth:`advance_to`.

    Args:
        start_ns: the initial time (UTC ns); 0 until the first data point arrives.

    Time never goes backwards: advancing to an earlier timestamp keeps the current one.
    """

    is_simulated = True

    def __init__(self, start_ns: int = 0) -> None:
        self._now_ns = start_ns

    def now_ns(self) -> int:
        """The newest data timestamp seen (UTC ns)."""
        return self._now_ns

    def advance_to(self, ts_ns: int) -> None:
        """Move time forward to ``ts_ns`` (UTC ns); an earlier value is ignored."""
        if ts_ns > self._now_ns:
            self._now_ns = ts_ns


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def datetime_to_ns(moment: datetime) -> int:
    """UTC nanoseconds of an aware ``datetime``, exactly (no float on the way)."""
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def utc_date(ts_ns: int) -> date:
    """The UTC calendar date of a nanosecond timestamp, exactly."""
    return (_EPOCH + timedelta(microseconds=ts_ns // 1000)).date()


def ns_to_datetime(ts_ns: int) -> datetime:
    """UTC ``datetime`` of a nanosecond timestamp (microsecond resolution)."""
    return datetime.fromtimestamp(ts_ns / NS_PER_S, tz=UTC)


def format_ts(ts_ns: int | None) -> str | None:
    """ISO-8601 UTC text of a nanosecond timestamp, ``None`` for ``None``."""
    if ts_ns is None:
        return None
    return ns_to_datetime(ts_ns).isoformat().replace("+00:00", "Z")
