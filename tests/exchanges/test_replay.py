"""The recording reader on real data and on broken copies of it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from corec.exchanges.replay import Instrument, RecordingError, RecordingReader, parse_timestamp_ns
from tests.conftest import RECORDING, TRADES_RECORDING

BTC = Instrument("ftx", "futures", "BTC/USD:USD")


def broken_copy(tmp_path: Path, inserts: dict[int, bytes], rows: int = 50) -> Path:
    """The first ``rows`` rows of the real recording with raw lines inserted at indexes."""
    lines = RECORDING.read_bytes().split(b"\n")[: rows + 1]
    for index in sorted(inserts, reverse=True):
        lines.insert(index, inserts[index])
    path = tmp_path / "broken.csv"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_bars_become_tickers_at_their_close(tmp_path: Path) -> None:
    reader = RecordingReader(broken_copy(tmp_path, {}), BTC)
    tickers = list(reader.tickers())
    assert reader.format == "ohlcv" and len(tickers) == 50 and reader.malformed == 0
    first = tickers[0]
    assert first.last == Decimal("46377.0") and first.bid is None and first.ask is None
    assert first.quote_volume == Decimal("2300413.7295") and first.base_volume is None
    assert first.exchange_ts_ns == parse_timestamp_ns("2021-12-31 23:02:00")


def test_bad_bytes_stray_quotes_and_blank_lines_fail_only_their_row(tmp_path: Path) -> None:
    path = broken_copy(
        tmp_path,
        {
            5: b"2021-12-31 23:05:30.000000,1\xff,2,1,1,1",
            10: b'"unterminated,1,2,3,4,5',
            15: b"",
            20: b"2021-12-31 23:19:30.000000,46000,45000,46500,46100,1",
        },
    )
    reader = RecordingReader(path, BTC)
    tickers = list(reader.tickers())
    assert len(tickers) == 50  # every real row survives, none is swallowed
    assert reader.malformed == 3
    assert reader.problems == [
        "broken.csv:6: not valid UTF-8",
        "broken.csv:12: timestamp '\"unterminated' is neither ISO-8601 nor an epoch number",
        "broken.csv:24: high 45000 / low 46500 do not contain open 46000 and close 46100",
    ]


def test_out_of_order_and_duplicate_bars_are_malformed(tmp_path: Path) -> None:
    path = broken_copy(
        tmp_path,
        {3: b"2021-12-31 23:01:00.000000,46319.0,46385.0,46319.0,46377.0,1"},  # row 1 again
    )
    reader = RecordingReader(path, BTC)
    assert len(list(reader.tickers())) == 50
    assert reader.problems == ["broken.csv:4: timestamp is not after the previous row's"]


def test_trades_at_the_same_instant_are_numbered(tmp_path: Path) -> None:
    reader = RecordingReader(TRADES_RECORDING, Instrument("binance", "spot", "BTC/USDT"))
    tickers = list(reader.tickers())
    assert reader.format == "trades" and len(tickers) == 2001
    keys = {(t.exchange_ts_ns, t.seq) for t in tickers}
    assert len(keys) == 2001  # the (timestamp, seq) identity is unique
    assert max(t.seq for t in tickers) >= 1


def test_skip_rows_resumes_after_the_rows_already_replayed() -> None:
    full = list(RecordingReader(RECORDING, BTC).tickers())[:200]
    resumed = RecordingReader(RECORDING, BTC, skip_rows=150)
    assert list(resumed.tickers())[:50] == full[150:200]
    assert resumed.rows_skipped_resume == 150


def test_unknown_layout_and_missing_file(tmp_path: Path) -> None:
    odd = tmp_path / "odd.csv"
    odd.write_text("time,price\n1,2\n", encoding="utf-8")
    with pytest.raises(RecordingError, match="is not an OHLCV or trades layout"):
        RecordingReader(odd, BTC)
    with pytest.raises(RecordingError, match="does not exist"):
        RecordingReader(tmp_path / "none.csv", BTC)


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("2022-01-01 00:00:00", 1_640_995_200_000_000_000),
        ("2022-01-01T00:00:00.000001+00:00", 1_640_995_200_000_001_000),
        ("1640995200", 1_640_995_200_000_000_000),
        ("1640995200000", 1_640_995_200_000_000_000),
        ("1640995200000000", 1_640_995_200_000_000_000),
        ("1640995200000000123", 1_640_995_200_000_000_123),
    ],
)
def test_timestamps(text: str, ns: int) -> None:
    assert parse_timestamp_ns(text) == ns
