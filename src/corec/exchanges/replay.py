"""Reading real market recordings (CSV) as tickers.

Two layouts are recognised by their header (``format="auto"``):

- OHLCV bars: ``timestamp,open,high,low,close,volume``. A bar becomes one ticker
  whose ``last`` is the close, stamped at the bar's *close* time
  (``timestamp + bar_s``, as the timestamp is the bar's open), with the bar's volume
  as ``quote_volume`` (or ``base_volume``, per ``volume_unit``). Bars have no book,
  so ``bid`` and ``ask`` are ``None``: nothing is invented.
- Trades: ``timestamp,trade_id,price,quantity[,buyer_maker]``. A trade becomes one
  ticker with ``last`` = price and ``base_volume`` = quantity.

Timestamps are UTC: ``YYYY-MM-DD HH:MM:SS[.ffffff]`` (ISO-8601), or integer epoch
seconds, milliseconds, microseconds or nanoseconds (told apart by magnitude).

Trades at the same instant keep their order through ``Ticker.seq`` (0, 1, 2 …). Fields
are split on commas (the layouts have no quoted fields); blank lines are ignored.

A malformed row (bytes that are not UTF-8, wrong number of columns, a value that is not a number, a
non-positive price, a bar whose high/low do not contain its open/close, a timestamp
before the previous row's, or equal to it for bars) is skipped and counted; :attr:`RecordingReader.problems`
keeps the first few with their line numbers. It never raises for a bad row.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Literal

from corec.core.clock import NS_PER_S
from corec.messages.exchange_data import Market, Ticker

RecordingFormat = Literal["auto", "ohlcv", "trades"]
OHLCV_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
TRADES_COLUMNS = ("timestamp", "trade_id", "price", "quantity")
MAX_PROBLEMS_KEPT = 20
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class RecordingError(ValueError):
    """The recording cannot be read at all (missing file, unknown header)."""


def parse_timestamp_ns(text: str) -> int:
    """UTC nanoseconds of an ISO-8601 UTC timestamp or an integer epoch value.

    Raises:
        ValueError: unparseable text.
    """
    text = text.strip()
    if text.isdigit():
        value = int(text)
        if value >= 10**17:
            return value
        if value >= 10**14:
            return value * 1_000
        if value >= 10**11:
            return value * 1_000_000
        return value * NS_PER_S
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"timestamp {text!r} is neither ISO-8601 nor an epoch number") from None
    dt = dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * 1_000


def _positive(text: str, column: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{column} {text!r} is not a number") from None
    if not value.is_finite() or value <= 0:
        raise ValueError(f"{column} {text!r} is not a positive number")
    return value


def _non_negative(text: str, column: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{column} {text!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"{column} {text!r} is negative or not finite")
    return value


@dataclass(frozen=True)
class Instrument:
    """What a recording is a recording of: CCXT exchange id, market, unified symbol."""

    exchange: str
    market: Market
    symbol: str


@dataclass
class RecordingReader:
    """Iterate a recording's rows as tickers, skipping and counting malformed rows.

    Args:
        path: the CSV file.
        instrument: exchange, market and symbol to stamp on each ticker.
        format: ``auto`` (by header), ``ohlcv`` or ``trades``.
        bar_s: bar length in seconds (OHLCV), to stamp the close time.
        volume_unit: whether an OHLCV ``volume`` is in the quote or the base asset.
        skip_rows: skip this many valid rows first (resuming a replay where it stopped).

    Raises (on construction):
        RecordingError: the file is missing or its header matches no known layout.
    """

    path: Path
    instrument: Instrument
    format: RecordingFormat = "auto"
    bar_s: int = 60
    volume_unit: Literal["quote", "base"] = "quote"
    skip_rows: int = 0
    rows_read: int = 0
    rows_skipped_resume: int = 0
    malformed: int = 0
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.path.is_file():
            raise RecordingError(f"recording {self.path} does not exist")
        with self.path.open(encoding="utf-8", errors="replace") as fh:
            header = fh.readline().rstrip("\r\n").split(",")
        columns = tuple(c.strip().lower() for c in header)
        detected: RecordingFormat | None = None
        if columns[: len(OHLCV_COLUMNS)] == OHLCV_COLUMNS:
            detected = "ohlcv"
        elif columns[: len(TRADES_COLUMNS)] == TRADES_COLUMNS:
            detected = "trades"
        if detected is None or (self.format != "auto" and self.format != detected):
            raise RecordingError(
                f"recording {self.path}: header {','.join(header)!r} is not "
                f"{'an OHLCV or trades' if self.format == 'auto' else self.format} layout "
                f"(expected {','.join(OHLCV_COLUMNS)} or {','.join(TRADES_COLUMNS)})"
            )
        self.format = detected
        self._width = len(columns)

    def count_rows(self) -> int:
        """Data rows in the file (lines after the header), for progress bars."""
        with self.path.open("rb") as fh:
            return max(0, sum(1 for _ in fh) - 1)

    def _problem(self, line: int, reason: str) -> None:
        self.malformed += 1
        if len(self.problems) < MAX_PROBLEMS_KEPT:
            self.problems.append(f"{self.path.name}:{line}: {reason}")

    def tickers(self, received_ts_ns: int | None = None) -> Iterator[Ticker]:
        """Yield one ticker per valid row, in file order.

        Args:
            received_ts_ns: ``received_ts_ns`` for every ticker; default each ticker's
                own exchange timestamp (a replay receives data when it happened).
        """
        inst = self.instrument
        ohlcv = self.format == "ohlcv"
        bar_ns = self.bar_s * NS_PER_S
        last_ts = -1
        seq = 0
        # plain comma splitting (the layouts have no quoted fields, so a stray quote
        # cannot swallow the rows after it); undecodable bytes become U+FFFD and fail
        # their row only
        with self.path.open(encoding="utf-8", errors="replace", newline="") as fh:
            fh.readline()
            for line, text in enumerate(fh, start=2):
                text = text.rstrip("\r\n")
                if not text.strip():
                    continue  # blank line
                self.rows_read += 1
                if "\ufffd" in text:
                    self._problem(line, "not valid UTF-8")
                    continue
                row = text.split(",")
                if len(row) != self._width:
                    self._problem(line, f"expected {self._width} columns, got {len(row)}")
                    continue
                try:
                    ts_ns = parse_timestamp_ns(row[0])
                    if ohlcv:
                        open_ = _positive(row[1], "open")
                        high = _positive(row[2], "high")
                        low = _positive(row[3], "low")
                        close = _positive(row[4], "close")
                        volume = _non_negative(row[5], "volume")
                        if not (low <= open_ <= high and low <= close <= high):
                            raise ValueError(
                                f"high {high} / low {low} do not contain open {open_} and close {close}"
                            )
                        ts_ns += bar_ns
                        price = close
                        base_volume = volume if self.volume_unit == "base" else None
                        quote_volume = volume if self.volume_unit == "quote" else None
                    else:
                        price = _positive(row[2], "price")
                        base_volume = _non_negative(row[3], "quantity")
                        quote_volume = None
                except ValueError as exc:
                    self._problem(line, str(exc))
                    continue
                if ts_ns < last_ts or (ohlcv and ts_ns == last_ts):
                    self._problem(line, "timestamp is not after the previous row's")
                    continue
                seq = seq + 1 if ts_ns == last_ts else 0
                last_ts = ts_ns
                if self.rows_skipped_resume < self.skip_rows:
                    self.rows_skipped_resume += 1
                    continue
                yield Ticker(
                    exchange=inst.exchange,
                    market=inst.market,
                    symbol=inst.symbol,
                    last=price,
                    base_volume=base_volume,
                    quote_volume=quote_volume,
                    exchange_ts_ns=ts_ns,
                    received_ts_ns=ts_ns if received_ts_ns is None else received_ts_ns,
                    seq=seq,
                )
