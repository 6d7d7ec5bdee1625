"""Exact conversions between nanosecond timestamps and UTC dates."""

from __future__ import annotations

from datetime import UTC, date, datetime

from corec.core.clock import datetime_to_ns, utc_date

MIDNIGHT_2026 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z


def test_datetime_to_ns_is_exact() -> None:
    assert datetime_to_ns(datetime(2026, 1, 1, tzinfo=UTC)) == MIDNIGHT_2026
    assert datetime_to_ns(datetime(2026, 1, 1, 0, 0, 0, 1, tzinfo=UTC)) == MIDNIGHT_2026 + 1000


def test_utc_date_at_a_midnight_boundary() -> None:
    assert utc_date(MIDNIGHT_2026) == date(2026, 1, 1)
    assert utc_date(MIDNIGHT_2026 - 1) == date(2025, 12, 31)
