"""Reading FRED's CSV format: ``observation_date,<ID>[,<ID>…]`` (older downloads:
``DATE``), one row per date, a missing value written as an empty field or ``.``."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation

from corec.core.clock import NS_PER_S
from corec.core.errors import InvalidInput

_DATE_COLUMNS = ("observation_date", "DATE", "date")


@dataclass(frozen=True)
class Observation:
    """One dated value of one source column."""

    source_id: str
    date: date
    value: Decimal


def parse_fred_csv(text: str, source_ids: list[str], *, origin: str) -> list[Observation]:
    """Every non-missing value of ``source_ids`` in a FRED CSV, by date then id.

    Args:
        text: the CSV text.
        source_ids: the columns wanted (FRED series ids).
        origin: the file or URL, for error messages.

    Raises:
        InvalidInput: no date column, a wanted column missing, or a row with a bad
            date or a value that is not a decimal (naming the line).
    """
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header:
        raise InvalidInput(f"{origin}: empty, expected a header {_DATE_COLUMNS[0]},<ID>")
    header = [h.strip() for h in header]
    date_col = next((i for i, h in enumerate(header) if h in _DATE_COLUMNS), None)
    if date_col is None:
        raise InvalidInput(
            f"{origin}: no date column (one of {', '.join(_DATE_COLUMNS)}) in {header}"
        )
    missing = [s for s in source_ids if s not in header]
    if missing:
        raise InvalidInput(f"{origin}: no column {', '.join(missing)}; columns are {header}")
    columns = {s: header.index(s) for s in source_ids}
    out: list[Observation] = []
    for line_no, row in enumerate(reader, start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        try:
            day = date.fromisoformat(row[date_col].strip())
        except (ValueError, IndexError) as exc:
            raise InvalidInput(f"{origin}:{line_no}: bad date {row[:1]}: {exc}") from exc
        for source_id, col in columns.items():
            cell = row[col].strip() if col < len(row) else ""
            if cell in ("", "."):
                continue  # a holiday or a value not published: never invented
            try:
                value = Decimal(cell)
            except InvalidOperation as exc:
                raise InvalidInput(
                    f"{origin}:{line_no}: {source_id} value {cell!r} is not a decimal"
                ) from exc
            if not value.is_finite():
                raise InvalidInput(f"{origin}:{line_no}: {source_id} value {cell!r} is not finite")
            out.append(Observation(source_id, day, value))
    return out


def available_ts_ns(day: date, at: time) -> int:
    """``day`` at ``at`` UTC, in ns: when a recorded daily value counts as known."""
    moment = datetime.combine(day, at).replace(tzinfo=UTC)
    return int(moment.timestamp()) * NS_PER_S + moment.microsecond * 1000
