"""The wire codec: exact round trips, zstd above the threshold, refusal of bad frames."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from corec.core import channels
from corec.core.clock import ReplayClock
from corec.core.codec import ZSTD_MAGIC, Codec, event_to_json
from corec.core.errors import InvalidEvent
from corec.core.events import Event, make_event
from corec.core.notices import Alert
from corec.messages.exchange_data import Ticker, TickerBatch
from corec.messages.trading_results import TradeClosed

FORMATS = ["msgpack", "json"]
CLOCK = ReplayClock(1_641_038_400_123_456_789)


def ticker(symbol: str = "BTC/USDT", **prices: Decimal) -> Ticker:
    fields: dict[str, Any] = {
        "bid": Decimal("46377.12345678"),
        "ask": Decimal("46377.50"),
        "last": Decimal("46377.3"),
        "base_volume": Decimal("1234.000000001"),
        "quote_volume": Decimal("57253987.123456789012345678"),
        **prices,
    }
    return Ticker(
        exchange="binance",
        market="spot",
        symbol=symbol,
        exchange_ts_ns=1_641_038_400_000_000_000,
        received_ts_ns=1_641_038_400_120_000_000,
        **fields,
    )


def batch_event(*tickers: Ticker) -> Event:
    return make_event(
        channels.EXCHANGE_DATA,
        TickerBatch(tickers=tickers or (ticker(),)),
        source="exchange_sync@node-1",
        clock=CLOCK,
    )


def trade_closed(**overrides: Any) -> TradeClosed:
    fields: dict[str, Any] = {
        "trade_id": "trade-0001",
        "allocation_id": "alloc-0001",
        "strategy": "sma_cross",
        "exchange": "binance",
        "market": "spot",
        "symbol": "BTC/USDT",
        "side": "long",
        "quantity": Decimal("0.12345678"),
        "entry_price": Decimal("46377.12345678"),
        "exit_price": Decimal("46512.87654321"),
        "fees_usd": Decimal("5.72811002"),
        # (46512.87654321 - 46377.12345678) × 0.12345678 - 5.72811002
        "realized_pnl_usd": Decimal("11.0315289057094954"),
        "opened_ts_ns": 1_641_038_400_000_000_000,
        "closed_ts_ns": 1_641_042_000_000_000_000,
        "exit_reason": "signal",
    }
    fields.update(overrides)
    return TradeClosed(**fields)


def trade_event() -> Event:
    return make_event(
        channels.TRADING_RESULTS,
        trade_closed(),
        source="trading_execution@node-1",
        clock=CLOCK,
        key="trade-0001",
    )


def tamper(codec: Codec, data: bytes, change: Callable[[dict[str, Any]], None]) -> bytes:
    """Re-encode ``data`` (uncompressed) after ``change`` edits its payload dict in place."""
    module = msgspec.msgpack if codec.format == "msgpack" else msgspec.json
    wire = module.decode(data)
    change(wire[6])
    return module.encode(wire)


# -- round trips ----------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_ticker_batch_round_trip_is_exact(fmt: str) -> None:
    codec = Codec(fmt)  # type: ignore[arg-type]
    event = batch_event(ticker(), ticker("ETH/USDT", bid=Decimal("3682.1"), ask=Decimal("3682.2")))
    decoded = codec.decode(codec.encode(event))
    assert decoded == event
    assert isinstance(decoded.payload, TickerBatch)
    first = decoded.payload.tickers[0]
    assert str(first.bid) == "46377.12345678"
    assert str(first.ask) == "46377.50"  # the trailing zero survives
    assert str(first.base_volume) == "1234.000000001"
    assert first.quote_volume == Decimal("57253987.123456789012345678")
    assert first.quote_volume.as_tuple() == Decimal("57253987.123456789012345678").as_tuple()
    assert (decoded.id, decoded.ts_ns, decoded.source, decoded.key) == (
        event.id,
        1_641_038_400_123_456_789,
        "exchange_sync@node-1",
        None,
    )


@pytest.mark.parametrize("fmt", FORMATS)
def test_trade_closed_round_trip_is_exact(fmt: str) -> None:
    codec = Codec(fmt)  # type: ignore[arg-type]
    event = trade_event()
    decoded = codec.decode(codec.encode(event))
    assert decoded == event
    trade = decoded.payload
    assert isinstance(trade, TradeClosed)
    assert trade.realized_pnl_usd == Decimal("11.0315289057094954")
    assert trade.gross_pnl_usd - trade.fees_usd == trade.realized_pnl_usd
    assert decoded.key == "trade-0001"
    assert decoded.type == "trade_closed"


@pytest.mark.parametrize("fmt", FORMATS)
def test_tiny_and_huge_decimals_survive(fmt: str) -> None:
    codec = Codec(fmt)  # type: ignore[arg-type]
    event = batch_event(
        ticker(
            bid=Decimal("0.000000000000000001"),
            ask=Decimal("0.000000000000000002"),
            quote_volume=Decimal("12345678901234567890.123456789012345678"),
        )
    )
    decoded = codec.decode(codec.encode(event)).payload.tickers[0]
    assert decoded.bid == Decimal("1E-18")
    assert decoded.quote_volume == Decimal("12345678901234567890.123456789012345678")


def test_json_frames_are_readable_with_decimals_as_text() -> None:
    data = Codec("json", compress_threshold_bytes=1_000_000).encode(batch_event())
    assert data.startswith(b"[")
    assert b'"46377.12345678"' in data


# -- compression ----------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_frames_at_or_above_the_threshold_are_zstd(fmt: str) -> None:
    event = batch_event(*(ticker(f"COIN{n}/USDT") for n in range(20)))
    plain = Codec(fmt, compress_threshold_bytes=10**9).encode(event)  # type: ignore[arg-type]
    size = len(plain)
    assert not plain.startswith(ZSTD_MAGIC)

    at = Codec(fmt, compress_threshold_bytes=size)  # type: ignore[arg-type]
    below = Codec(fmt, compress_threshold_bytes=size + 1)  # type: ignore[arg-type]
    compressed = at.encode(event)
    assert compressed.startswith(b"\x28\xb5\x2f\xfd")
    assert len(compressed) < size
    assert below.encode(event) == plain

    assert at.decode(compressed) == event
    assert below.decode(compressed) == event  # decoding tells frames apart by the magic
    assert at.decode(plain) == event


def test_default_threshold_is_1024_bytes() -> None:
    codec = Codec()
    assert codec.compress_threshold_bytes == 1024
    small = batch_event()
    assert len(codec.encode(small)) < 1024
    assert not codec.encode(small).startswith(ZSTD_MAGIC)
    big = batch_event(*(ticker(f"COIN{n}/USDT") for n in range(30)))
    assert codec.encode(big).startswith(ZSTD_MAGIC)


def test_codec_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="compress_threshold_bytes"):
        Codec(compress_threshold_bytes=-1)
    with pytest.raises(ValueError, match="protobuf"):
        Codec("protobuf")  # type: ignore[arg-type]


# -- refusals -------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_unknown_payload_type(fmt: str) -> None:
    codec = Codec(fmt)  # type: ignore[arg-type]
    alert = Alert(name="x", message="y")
    event = Event("id-1", channels.ALERTS, "no_such_type", 1, "t@t", None, alert)
    with pytest.raises(InvalidEvent, match="unknown payload type 'no_such_type'"):
        codec.decode(codec.encode(event))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", b"\x00\x01\x02", ZSTD_MAGIC + b"not zstd at all", b'{"id": 1}'],
)
def test_garbage_bytes(fmt: str, data: bytes) -> None:
    with pytest.raises(InvalidEvent, match="undecodable event frame"):
        Codec(fmt).decode(data)  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", FORMATS)
def test_bid_above_ask_is_refused_naming_the_field(fmt: str) -> None:
    codec = Codec(fmt, compress_threshold_bytes=10**9)  # type: ignore[arg-type]
    event = batch_event()

    def crossed(payload: dict[str, Any]) -> None:
        payload["tickers"][0]["ask"] = "46000"

    with pytest.raises(InvalidEvent) as caught:
        codec.decode(tamper(codec, codec.encode(event), crossed))
    message = str(caught.value)
    assert event.id in message
    assert "bid 46377.12345678 is above ask 46000" in message
    assert "$.tickers[0]" in message


@pytest.mark.parametrize("fmt", FORMATS)
def test_realized_pnl_not_gross_minus_fees_is_refused(fmt: str) -> None:
    codec = Codec(fmt, compress_threshold_bytes=10**9)  # type: ignore[arg-type]

    def inflated(payload: dict[str, Any]) -> None:
        payload["realized_pnl_usd"] = "1000.00"

    with pytest.raises(InvalidEvent, match=r"realized_pnl_usd 1000\.00 is not gross"):
        codec.decode(tamper(codec, codec.encode(trade_event()), inflated))


@pytest.mark.parametrize("fmt", FORMATS)
def test_wrong_field_type_names_the_path(fmt: str) -> None:
    codec = Codec(fmt, compress_threshold_bytes=10**9)  # type: ignore[arg-type]

    def not_a_number(payload: dict[str, Any]) -> None:
        payload["tickers"][0]["last"] = "a lot"

    with pytest.raises(InvalidEvent, match=r"\$\.tickers\[0\]\.last"):
        codec.decode(tamper(codec, codec.encode(batch_event()), not_a_number))


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_field_names_it(fmt: str) -> None:
    codec = Codec(fmt, compress_threshold_bytes=10**9)  # type: ignore[arg-type]

    def drop(payload: dict[str, Any]) -> None:
        del payload["fees_usd"]

    with pytest.raises(InvalidEvent, match="fees_usd"):
        codec.decode(tamper(codec, codec.encode(trade_event()), drop))


def test_a_registry_limits_what_decodes() -> None:
    codec = Codec("json", registry={"alert": Alert})
    with pytest.raises(InvalidEvent, match="unknown payload type 'ticker_batch'"):
        codec.decode(codec.encode(batch_event()))


def test_payload_invariants_hold_on_construction() -> None:
    with pytest.raises(ValueError, match="realized_pnl_usd"):
        trade_closed(realized_pnl_usd=Decimal("11.03"))
    with pytest.raises(ValueError, match="above ask"):
        ticker(bid=Decimal(2), ask=Decimal(1))


def test_event_to_json() -> None:
    event = trade_event()
    text = event_to_json(event)
    decoded = msgspec.json.decode(text)
    assert decoded["id"] == event.id
    assert decoded["payload"]["realized_pnl_usd"] == "11.0315289057094954"
    # never raises, even for something that cannot be encoded
    odd = Event("id-2", "system", "odd", 1, "t@t", None, object())
    assert event_to_json(odd).startswith("Event(")
