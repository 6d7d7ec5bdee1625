"""exchange_sync in a real node: replay of the real recordings, and CCXT polling of a
loopback Binance."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from corec.core import channels
from corec.core.clock import NS_PER_S, ReplayClock
from corec.core.config import CorecConfig
from corec.core.notices import Alert, BreakerStateChanged
from corec.core.nucleus import Node
from corec.core.registry import discover_plugins
from corec.exchanges import ccxt_source  # noqa: F401 - import CCXT (slow) before timing polls
from corec.messages.exchange_data import Ticker, TickerBatch
from corec.plugins.exchange_sync import models as m
from corec.plugins.exchange_sync.plugin import ExchangeSyncPlugin
from tests.conftest import RECORDING, TRADES_RECORDING, write_recording_slice
from tests.exchanges.fake_exchange import FakeBinance
from tests.harness import Recorder, count_rows, started_node

D = Decimal
MakeConfig = Callable[..., CorecConfig]
RUN_LIMIT_S = 30.0  # a safety net: every replay here ends by itself much sooner
POLL_RUN_S = 2.5  # building the CCXT exchange and loading markets takes up to ~1 s


def replay_config(make_config: MakeConfig, path: Path, **replay: Any) -> CorecConfig:
    return make_config(
        {
            "node": {"plugins": ["exchange_sync"]},
            "exchange_sync": {"source": "replay", "replay": {"path": str(path), **replay}},
        }
    )


def tickers(rec: Recorder) -> list[Ticker]:
    return [t for b in rec.payloads(TickerBatch, channel=channels.EXCHANGE_DATA) for t in b.tickers]


def batches(rec: Recorder) -> list[TickerBatch]:
    return rec.payloads(TickerBatch, channel=channels.EXCHANGE_DATA)


def health(node: Node) -> dict[str, Any]:
    return node.health()["plugins"]["exchange_sync"]


def store_of(node: Node) -> Any:
    store = node.store("exchange_sync")
    assert store is not None
    return store


async def stored_tickers(node: Node) -> list[dict[str, Any]]:
    query = select(m.tickers).order_by(m.tickers.c.exchange_ts_ns, m.tickers.c.symbol)
    return await store_of(node).read(lambda conn: [dict(r) for r in conn.execute(query).mappings()])


def ts_ns(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * NS_PER_S


# -- replay -----------------------------------------------------------------------------------


async def test_replay_of_a_recording_slice(make_config: MakeConfig, tmp_path: Path) -> None:
    path = write_recording_slice(tmp_path / "slice.csv", 120)
    config = replay_config(make_config, path, stop_at_end=True)
    async with started_node(config, channels.EXCHANGE_DATA) as (node, rec):
        assert isinstance(node.clock, ReplayClock)
        reason = await node.run(duration_s=RUN_LIMIT_S, handle_signals=False)

        assert reason == "recording slice.csv finished"
        assert len(batches(rec)) == 120
        assert all(len(b.tickers) == 1 for b in batches(rec))
        got = tickers(rec)
        first, last = got[0], got[-1]
        # the first bar opens at 2021-12-31 23:01 and is stamped at its close, 60 s later
        assert first.exchange_ts_ns == ts_ns("2021-12-31 23:01:00") + 60 * NS_PER_S
        assert first.last == D("46377.0") and str(first.last) == "46377.0"
        assert (first.bid, first.ask, first.base_volume) == (None, None, None)
        assert first.quote_volume == D("2300413.7295")
        assert (first.exchange, first.market, first.symbol) == ("ftx", "futures", "BTC/USD:USD")
        assert first.received_ts_ns == first.exchange_ts_ns
        assert last.exchange_ts_ns == ts_ns("2022-01-01 01:00:00") + 60 * NS_PER_S
        deltas = {b.exchange_ts_ns - a.exchange_ts_ns for a, b in itertools.pairwise(got)}
        assert deltas == {60 * NS_PER_S}
        assert node.clock.now_ns() == last.exchange_ts_ns

        assert await count_rows(store_of(node), m.tickers) == 120
        rows = await stored_tickers(node)
        assert rows[0]["last"] == D("46377.0")
        assert rows[0]["exchange_ts_ns"] == first.exchange_ts_ns
        assert rows[-1]["exchange_ts_ns"] == last.exchange_ts_ns
        assert [r["last"] for r in rows] == [t.last for t in got]
        status = await ExchangeSyncPlugin.read_status(
            store_of(node), config.sections["exchange_sync"]
        )
        assert status == {"tickers_stored": 120, "last_ts": "2022-01-01T01:01:00Z"}
        h = health(node)
        assert h["tickers_published"] == 120
        assert h["malformed_rows"] == 0
        assert h["progress"] == {"done": 120, "total": 120}
        assert h["finished"] is True
        assert h["tickers_buffered"] == 0


async def test_second_run_resumes_after_the_cursor(make_config: MakeConfig, tmp_path: Path) -> None:
    path = write_recording_slice(tmp_path / "slice.csv", 120)
    config = replay_config(make_config, path, stop_at_end=True)
    async with started_node(config, channels.EXCHANGE_DATA) as (node, rec):
        await node.run(duration_s=RUN_LIMIT_S, handle_signals=False)
        assert len(batches(rec)) == 120

    assert config.node.fresh_start is False
    async with started_node(config, channels.EXCHANGE_DATA) as (node, rec):
        reason = await node.run(duration_s=RUN_LIMIT_S, handle_signals=False)
        assert reason == "recording slice.csv finished"
        assert batches(rec) == []
        assert await count_rows(store_of(node), m.tickers) == 120
        h = health(node)
        assert h["resumed_rows"] == 120
        assert h["tickers_published"] == 0
        assert h["finished"] is True

    # with fresh_start the cursor is gone: everything is replayed (and stored once)
    fresh = make_config(
        {
            "node": {"plugins": ["exchange_sync"], "fresh_start": True},
            "exchange_sync": {"replay": {"path": str(path)}},
        }
    )
    async with started_node(fresh, channels.EXCHANGE_DATA) as (node, rec):
        await node.run(duration_s=RUN_LIMIT_S, handle_signals=False)
        assert len(batches(rec)) == 120
        assert await count_rows(store_of(node), m.tickers) == 120


async def test_replay_of_a_longer_file_resumes_where_it_stopped(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    path = tmp_path / "growing.csv"
    write_recording_slice(path, 50)
    config = replay_config(make_config, path, stop_at_end=True)
    async with started_node(config, channels.EXCHANGE_DATA) as (node, rec):
        await node.run(duration_s=RUN_LIMIT_S, handle_signals=False)
        assert len(batches(rec)) == 50

    write_recording_slice(path, 80)  # the recording grew by 30 bars
    async with started_node(config, channels.EXCHANGE_DATA) as (node, rec):
        await node.run(duration_s=RUN_LIMIT_S, handle_signals=False)
        got = tickers(rec)
        assert len(got) == 30
        assert got[0].exchange_ts_ns == ts_ns("2021-12-31 23:51:00") + 60 * NS_PER_S
        assert await count_rows(store_of(node), m.tickers) == 80
        assert health(node)["resumed_rows"] == 50


async def test_interrupted_replay_resumes_after_the_last_row_stored(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    """A replay stopped half-way (Ctrl-C, duration) must not publish its rows again."""
    path = write_recording_slice(tmp_path / "slice.csv", 20)
    paced = replay_config(make_config, path, speed=600)  # one bar every 0.1 s
    async with started_node(paced, channels.EXCHANGE_DATA) as (node, rec):
        reason = await node.run(duration_s=0.55, handle_signals=False)
        assert reason == "duration elapsed"
        first_run = tickers(rec)
    assert 0 < len(first_run) < 20

    async with started_node(replay_config(make_config, path), channels.EXCHANGE_DATA) as (
        node,
        rec,
    ):
        # stop() stored every published ticker...
        assert await count_rows(store_of(node), m.tickers) == len(first_run)
        reason = await node.run(duration_s=RUN_LIMIT_S, handle_signals=False)
        assert reason == "recording slice.csv finished"
        second_run = tickers(rec)
        # ...so the second run continues after the last of them, publishing none twice
        assert health(node)["resumed_rows"] == len(first_run)
        assert second_run[0].exchange_ts_ns == first_run[-1].exchange_ts_ns + 60 * NS_PER_S
        assert len(first_run) + len(second_run) == 20
        assert await count_rows(store_of(node), m.tickers) == 20


async def test_malformed_rows_are_skipped_counted_and_alerted(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    lines = RECORDING.read_text(encoding="utf-8").splitlines()[:121]  # header + 120 rows
    bad_number = "2021-12-31 23:05:30.000000,46420.0,abc,46420.0,46427.0,1012894.5416"
    wrong_columns = "2021-12-31 23:10:30.000000,46415.0,46456.0,46415.0"
    high_below_low = "2021-12-31 23:20:30.000000,46470.0,46453.0,46474.0,46467.0,514135.7067"
    # file lines (1-based, header = 1): bar rows 2-121; insert after bars 5, 10 and 20
    lines.insert(6, bad_number)  # line 7
    lines.insert(12, wrong_columns)  # line 13
    lines.insert(23, high_below_low)  # line 24
    path = tmp_path / "damaged.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    config = replay_config(make_config, path, stop_at_end=True)
    async with started_node(config, channels.EXCHANGE_DATA, channels.ALERTS) as (node, rec):
        reason = await node.run(duration_s=RUN_LIMIT_S, handle_signals=False)

        assert reason == "recording damaged.csv finished"
        assert len(batches(rec)) == 120
        assert await count_rows(store_of(node), m.tickers) == 120
        h = health(node)
        assert h["malformed_rows"] == 3
        assert h["rows_read"] == 123
        assert h["problems"] == [
            "damaged.csv:7: high 'abc' is not a number",
            "damaged.csv:13: expected 6 columns, got 4",
            "damaged.csv:24: high 46453.0 / low 46474.0 do not contain open 46470.0 and "
            "close 46467.0",
        ]
        [malformed] = [a for a in rec.payloads(Alert) if a.name == "recording_malformed_rows"]
        assert malformed.severity == "low"
        assert malformed.labels == {"plugin": "exchange_sync", "recording": "damaged.csv"}
        assert malformed.message.startswith("3 malformed row(s) skipped in damaged.csv; first: ")
        assert "damaged.csv:7:" in malformed.message


async def test_clean_replay_raises_no_malformed_alert(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    path = write_recording_slice(tmp_path / "slice.csv", 10)
    config = replay_config(make_config, path)
    async with started_node(config, channels.ALERTS) as (node, rec):
        await node.run(duration_s=RUN_LIMIT_S, handle_signals=False)
        assert [a.name for a in rec.payloads(Alert)] == []


async def test_trades_recording_replays_every_trade(make_config: MakeConfig) -> None:
    config = make_config(
        {
            "node": {"plugins": ["exchange_sync"]},
            "exchange_sync": {
                "replay": {
                    "path": str(TRADES_RECORDING),
                    "format": "auto",
                    "exchange": "binance",
                    "market": "spot",
                    "symbol": "BTC/USDT",
                }
            },
        }
    )
    async with started_node(config, channels.EXCHANGE_DATA) as (node, rec):
        reason = await node.run(duration_s=RUN_LIMIT_S, handle_signals=False)

        assert reason == f"recording {TRADES_RECORDING.name} finished"
        got = tickers(rec)
        assert len(got) == 2001
        assert all(t.base_volume is not None and t.quote_volume is None for t in got)
        assert got[0].last == D("39432.48")
        assert got[0].base_volume == D("0.000263")
        assert got[0].exchange_ts_ns == ts_ns("2021-01-08 00:00:00") + 278_000_000
        assert (got[0].exchange, got[0].market, got[0].symbol) == ("binance", "spot", "BTC/USDT")
        assert health(node)["malformed_rows"] == 0
        # trades sharing a timestamp keep their order in seq, and every one is stored
        distinct_ts = len({t.exchange_ts_ns for t in got})
        assert distinct_ts == 1371
        assert sum(1 for t in got if t.seq > 0) == 2001 - distinct_ts
        for before, after in itertools.pairwise(got):
            same_instant = after.exchange_ts_ns == before.exchange_ts_ns
            assert after.seq == (before.seq + 1 if same_instant else 0)
        assert await count_rows(store_of(node), m.tickers) == 2001


async def test_replay_speed_paces_the_bars(make_config: MakeConfig, tmp_path: Path) -> None:
    path = write_recording_slice(tmp_path / "four.csv", 4)
    config = replay_config(make_config, path, speed=600)
    async with started_node(config, channels.EXCHANGE_DATA) as (node, rec):
        started = time.monotonic()
        reason = await node.run(duration_s=RUN_LIMIT_S, handle_signals=False)
        elapsed = time.monotonic() - started

        assert reason == "recording four.csv finished"
        assert len(batches(rec)) == 4
        assert elapsed >= 0.25  # 3 gaps of 60 s at 600× real time = 0.3 s


async def test_without_stop_at_end_the_node_keeps_running(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    path = write_recording_slice(tmp_path / "slice.csv", 5)
    config = replay_config(make_config, path, stop_at_end=False)
    async with started_node(config, channels.EXCHANGE_DATA) as (node, rec):
        reason = await node.run(duration_s=0.5, handle_signals=False)
        assert reason == "duration elapsed"
        assert len(batches(rec)) == 5
        assert health(node)["finished"] is True


# -- CCXT polling ---------------------------------------------------------------------------


@pytest.fixture
async def binance() -> AsyncIterator[FakeBinance]:
    fake = FakeBinance()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def ccxt_config(make_config: MakeConfig, url: str, **ccxt: Any) -> CorecConfig:
    binance = {"spot": {"id": "binance", "symbols": ["BTC/USDT", "ETH/USDT"]}, "api_url": url}
    return make_config(
        {
            "node": {"plugins": ["exchange_sync"]},
            "exchange_sync": {
                "source": "ccxt",
                "ccxt": {
                    "exchanges": {"binance": binance},
                    "interval_s": 0.3,
                    "timeout_s": 2,
                    **ccxt,
                },
            },
        }
    )


async def test_ccxt_polling_publishes_exact_decimals(
    make_config: MakeConfig, binance: FakeBinance
) -> None:
    config = ccxt_config(make_config, binance.url)
    node = Node(config, discover_plugins())
    rec = Recorder(node.bus, channels.EXCHANGE_DATA)
    await node.start()
    try:
        assert not node.clock.is_simulated
        before_ns = time.time_ns()
        reason = await node.run(duration_s=POLL_RUN_S, handle_signals=False)

        # the polling task runs on until node.stop(): take every count now, without awaiting
        polled = batches(rec)
        h = health(node)
        ticker_requests = binance.count("/api/v3/ticker/24hr")

        assert reason == "duration elapsed"
        assert len(polled) >= 1  # every 0.3 s once the markets are loaded
        for batch in polled:
            btc, eth = batch.tickers
            assert (btc.exchange, btc.market, btc.symbol) == ("binance", "spot", "BTC/USDT")
            assert (btc.bid, btc.ask, btc.last) == (
                D("37342.35"),
                D("37342.36"),
                D("37342.36"),
            )
            assert btc.base_volume == D("29754.50374")
            assert btc.quote_volume == D("1103906524.61298")
            assert btc.exchange_ts_ns == 1_700_000_001_234_000_000
            assert btc.received_ts_ns >= before_ns
            assert eth.symbol == "ETH/USDT"
            assert (eth.bid, eth.ask, eth.last) == (D("2024.61"), D("2024.62"), D("2024.61"))
            assert eth.exchange_ts_ns == 1_700_000_002_345_000_000
            assert all(type(v) is Decimal for v in (btc.bid, btc.ask, btc.last, eth.last))
        assert binance.count("/api/v3/exchangeInfo") == 1
        # one request per poll (the last may still be in flight when run() returned)
        assert len(polled) <= ticker_requests <= len(polled) + 1
        venue = h["exchanges"]["binance"]
        assert len(polled) <= venue["polls"] <= len(polled) + 1
        assert venue["failed_polls"] == 0
        assert venue["tickers"] == 2 * len(polled)
        assert venue["breaker_state"] == "closed"
        assert venue["last_success"] is not None
        assert venue["requests"] == ticker_requests + 1  # + the markets, loaded once
        assert Decimal(venue["latency_p50_ms"]) > 0
        assert h["status"] == "ok"
        assert h["tickers_published"] == 2 * len(polled)

        # after stop (which flushes): the exchange's timestamps did not change between
        # polls, so each ticker is stored once
        await node.stop()
        rows = await stored_tickers(node)
        assert [(r["symbol"], r["bid"], r["ask"], r["last"]) for r in rows] == [
            ("BTC/USDT", D("37342.35"), D("37342.36"), D("37342.36")),
            ("ETH/USDT", D("2024.61"), D("2024.62"), D("2024.61")),
        ]
        assert rows[0]["exchange_ts_ns"] == 1_700_000_001_234_000_000
    finally:
        await node.stop()
        await node.close()


async def test_ccxt_breaker_opens_on_repeated_500s(
    make_config: MakeConfig, binance: FakeBinance
) -> None:
    binance.fail_next("server_error_500", times=1000)
    config = ccxt_config(make_config, binance.url, retry_attempts=1, breaker_failures=2)
    async with started_node(config, channels.SYSTEM, channels.ALERTS, channels.EXCHANGE_DATA) as (
        node,
        rec,
    ):
        await node.run(duration_s=POLL_RUN_S, handle_signals=False)

        assert batches(rec) == []
        [change] = rec.payloads(BreakerStateChanged)
        assert change.breaker == "exchange_sync.binance"
        assert (change.previous, change.current) == ("closed", "open")
        assert "ExchangeNotAvailable" in change.reason
        [opened] = [a for a in rec.payloads(Alert) if a.name == "breaker_open"]
        assert opened.severity == "high"
        assert opened.labels == {
            "plugin": "exchange_sync",
            "breaker": "exchange_sync.binance",
            "exchange": "binance",
        }
        assert "closed -> open" in opened.message

        h = health(node)
        assert h["status"] == "degraded"
        venue = h["exchanges"]["binance"]
        assert venue["breaker_state"] == "open"
        assert venue["failed_polls"] == 2  # then the open breaker refuses without calling
        # the symbol check at start found the exchange down too (and deferred the check)
        assert venue["errors_by_kind"] == {"ExchangeNotAvailable": 3}
        assert venue["tickers"] == 0
        assert venue["last_success"] is None
        assert len(binance.requests) == 3  # start + one attempt per poll, no retries
        assert await count_rows(store_of(node), m.tickers) == 0


async def test_ccxt_breaker_probes_and_closes_when_the_exchange_recovers(
    make_config: MakeConfig, binance: FakeBinance
) -> None:
    binance.fail_next("server_error_500", times=3)  # the check at start, then two polls
    config = ccxt_config(
        make_config, binance.url, retry_attempts=1, breaker_failures=2, breaker_reset_s=0.5
    )
    async with started_node(config, channels.SYSTEM, channels.ALERTS, channels.EXCHANGE_DATA) as (
        node,
        rec,
    ):
        await node.run(duration_s=POLL_RUN_S + 1.0, handle_signals=False)
        polled = batches(rec)
        h = health(node)

        changes = [(c.previous, c.current) for c in rec.payloads(BreakerStateChanged)]
        assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
        breaker_alerts = [
            (a.name, a.severity, a.state)
            for a in rec.payloads(Alert)
            if a.name.startswith("breaker_")
        ]
        assert breaker_alerts == [  # the closing resolves the opening
            ("breaker_open", "high", "firing"),
            ("breaker_half_open", "low", "firing"),
            ("breaker_open", "high", "resolved"),
        ]
        assert len(polled) >= 1
        assert polled[0].tickers[0].last == D("37342.36")
        assert h["status"] == "ok"
        assert h["exchanges"]["binance"]["breaker_state"] == "closed"
        assert h["exchanges"]["binance"]["failed_polls"] == 2
