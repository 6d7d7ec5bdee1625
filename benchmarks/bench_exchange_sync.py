"""exchange_sync: requests per poll, and tickers per second from raw response to stored row.

Two measurements, both against loopback servers that answer like the exchanges
(``tests/exchanges/fake_venues.py``: the real CCXT classes talk HTTP to them):

1. **Requests per poll** for 1, 10 and 100 symbols on each of the eight CCXT classes
   of the five exchanges, through :class:`~corec.exchanges.ccxt_source.CcxtTickerSource`
   as exchange_sync uses it. The figure must not grow with the number of symbols.
2. **Tickers per second**, in batches of one poll (100 symbols): the raw HTTP body of a
   ``fetch_tickers`` answer → JSON → CCXT's ``parse_tickers`` → CoreC ``Ticker``
   (Decimal) → published on the in-process bus (one ``TickerBatch`` per poll, delivered
   to a subscriber) → cached → stored in SQLite (one batched insert per poll). Each
   stage's share is measured by running the pipeline up to it. Target: 50,000 tickers/s.

Run: ``make bench-exchange-sync`` (or ``.venv/bin/python benchmarks/bench_exchange_sync.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.exchanges.fake_venues

from tests.exchanges.fake_venues import FakeVenue, FakeVenues  # noqa: E402

from corec.core import channels  # noqa: E402
from corec.core.bus.memory import MemoryBus  # noqa: E402
from corec.core.clock import SystemClock  # noqa: E402
from corec.core.events import make_event  # noqa: E402
from corec.core.store import Store  # noqa: E402
from corec.core.store.migrate import upgrade  # noqa: E402
from corec.exchanges.ccxt_source import CcxtTickerSource  # noqa: E402
from corec.messages.exchange_data import TickerBatch  # noqa: E402
from corec.plugins.exchange_sync.cache import TickerCache  # noqa: E402
from corec.plugins.exchange_sync.plugin import ExchangeSyncPlugin  # noqa: E402
from corec.plugins.exchange_sync.storage import TickerWriter  # noqa: E402

TARGET_TICKERS_PER_S = 50_000
SYMBOL_COUNTS = (1, 10, 100)
POLLS = 3
COREC_BATCHES = 400
CLASSES = {  # CCXT class → CoreC market
    "binance": "spot",
    "binanceusdm": "futures",
    "kucoin": "spot",
    "kucoinfutures": "futures",
    "bybit": "futures",
    "okx": "spot",
    "kraken": "spot",
    "krakenfutures": "futures",
}


def _symbols(fake: FakeVenue, market: str, n: int) -> list[str]:
    listed = fake.symbols("spot" if market == "spot" else "swap")
    if len(listed) < n:
        raise SystemExit(f"{fake.venue_id} lists {len(listed)} {market} symbols, need {n}")
    return listed[:n]


async def requests_per_poll() -> list[dict[str, Any]]:
    """For each class and symbol count: HTTP requests per poll (markets loaded first)."""
    rows = []
    async with FakeVenues.start(list(CLASSES), extra_symbols=max(SYMBOL_COUNTS)) as venues:
        for venue_id, market in CLASSES.items():
            fake = venues[venue_id]
            row: dict[str, Any] = {"class": venue_id, "market": market}
            for n in SYMBOL_COUNTS:
                source = CcxtTickerSource(
                    venue_id,
                    market,  # type: ignore[arg-type]
                    _symbols(fake, market, n),
                    clock=SystemClock(),
                    api_url=fake.base_url,
                )
                try:
                    await source.validate_symbols()
                    fake.clear()
                    got = 0
                    for _ in range(POLLS):
                        got += len(await source.fetch())
                finally:
                    await source.close()
                if got != n * POLLS:
                    raise SystemExit(f"{venue_id}: {got} tickers for {n} symbols × {POLLS} polls")
                row[f"requests_{n}"] = len(fake.requests) / POLLS
            rows.append(row)
    return rows


async def throughput(venue_id: str, market: str, n_symbols: int, seconds: float) -> dict[str, Any]:
    """Tickers/s through each stage, for batches of ``n_symbols`` (one poll)."""
    async with FakeVenues.start([venue_id], extra_symbols=n_symbols) as venues:
        fake = venues[venue_id]
        source = CcxtTickerSource(
            venue_id,
            market,  # type: ignore[arg-type]
            _symbols(fake, market, n_symbols),
            clock=SystemClock(),
            api_url=fake.base_url,
        )
        await source.fetch()
        exchange = source._exchange  # the real CCXT object, markets loaded
        body: str = exchange.last_http_response
        with tempfile.TemporaryDirectory(prefix="corec-bench-") as scratch:
            store = Store(f"sqlite:///{Path(scratch) / 'exchange_sync.db'}", name="exchange_sync")
            await upgrade(store, ExchangeSyncPlugin.migrations)  # type: ignore[arg-type]
            try:
                results = {}
                for stage in ("parse", "ticker", "publish", "store"):
                    results[stage] = await _run_stage(stage, source, exchange, body, store, seconds)
                results["corec"] = await _run_corec_only(source, exchange, body, store)
            finally:
                await store.dispose()
                await source.close()
    return {"class": venue_id, "market": market, "batch": n_symbols, **results}


async def _run_stage(
    stage: str, source: Any, exchange: Any, body: str, store: Store, seconds: float
) -> float:
    clock = SystemClock()
    bus, delivered = _counting_bus(clock)
    writer = TickerWriter(store, flush_rows=10**9)
    cache = TickerCache(ttl_s=1800)
    symbols = list(source.symbols)
    tickers_done = 0
    batch = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        batch += 1
        raw = json.loads(body)
        _bump_timestamps(raw, batch)  # new exchange times: every row is a new row
        parsed = exchange.parse_tickers(raw, symbols)
        if stage == "parse":
            tickers_done += len(parsed)
            continue
        tickers = source.tickers_from(parsed, clock.now_ns())
        if stage == "ticker":
            tickers_done += len(tickers)
            continue
        await bus.publish(
            make_event(
                channels.EXCHANGE_DATA,
                TickerBatch(tickers=tuple(tickers)),
                source="bench",
                clock=clock,
            )
        )
        cache.put(tickers)
        if stage == "store":
            for ticker in tickers:
                writer.add(ticker)
            await writer.flush()
        tickers_done += len(tickers)
    elapsed = time.perf_counter() - started
    await bus.close()
    if stage in ("publish", "store") and delivered[0] != tickers_done:
        raise SystemExit(f"{stage}: {delivered[0]} delivered of {tickers_done}")
    if stage == "store" and writer.flushed != tickers_done:
        raise SystemExit(f"store: {writer.flushed} stored of {tickers_done}")
    return tickers_done / elapsed


async def _run_corec_only(
    source: Any, exchange: Any, body: str, store: Store, batches: int = COREC_BATCHES
) -> float:
    """CoreC's share alone: CCXT-parsed tickers (parsed beforehand, not timed) →
    ``Ticker`` → published → cached → stored."""
    clock = SystemClock()
    symbols = list(source.symbols)
    prepared = []
    for batch in range(batches):
        raw = json.loads(body)
        _bump_timestamps(raw, 1_000_000 + batch)
        prepared.append(exchange.parse_tickers(raw, symbols))
    bus, delivered = _counting_bus(clock)
    writer = TickerWriter(store, flush_rows=10**9)
    cache = TickerCache(ttl_s=1800)
    started = time.perf_counter()
    for parsed in prepared:
        tickers = source.tickers_from(parsed, clock.now_ns())
        await bus.publish(
            make_event(
                channels.EXCHANGE_DATA,
                TickerBatch(tickers=tuple(tickers)),
                source="bench",
                clock=clock,
            )
        )
        cache.put(tickers)
        for ticker in tickers:
            writer.add(ticker)
        await writer.flush()
    elapsed = time.perf_counter() - started
    await bus.close()
    if delivered[0] != writer.flushed or delivered[0] != batches * len(symbols):
        raise SystemExit(f"corec: {delivered[0]} delivered, {writer.flushed} stored")
    return delivered[0] / elapsed


def _counting_bus(clock: SystemClock) -> tuple[MemoryBus, list[int]]:
    """A bus with a subscriber on exchange_data counting the tickers delivered."""
    bus = MemoryBus(clock=clock)
    delivered = [0]

    def count(event: Any) -> None:
        delivered[0] += len(event.payload.tickers)

    bus.subscribe(channels.EXCHANGE_DATA, count, group="bench")
    return bus, delivered


def _bump_timestamps(raw: Any, batch: int) -> None:
    """binance answers a bare list of tickers: give each a new close time."""
    for item in raw:
        item["closeTime"] = 1_700_000_000_000 + batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per throughput stage")
    parser.add_argument("--json", action="store_true", help="print JSON results")
    args = parser.parse_args()

    rpp = asyncio.run(requests_per_poll())
    tput = asyncio.run(throughput("binance", "spot", 100, args.seconds))
    if args.json:
        print(json.dumps({"requests_per_poll": rpp, "throughput": tput}, indent=2))
        return
    print(
        f"machine: {platform.machine()}, {platform.python_implementation()} "
        f"{platform.python_version()}"
    )
    print("\nHTTP requests per poll (markets already loaded), by symbols per exchange:")
    print(f"  {'class':<14} {'market':<8} " + " ".join(f"{n:>6}" for n in SYMBOL_COUNTS))
    for row in rpp:
        figures = " ".join(f"{row[f'requests_{n}']:>6g}" for n in SYMBOL_COUNTS)
        print(f"  {row['class']:<14} {row['market']:<8} {figures}")
    flat = all(row["requests_1"] == row[f"requests_{max(SYMBOL_COUNTS)}"] for row in rpp)
    print(f"  requests per poll independent of the number of symbols: {'yes' if flat else 'NO'}")
    print(f"\nTickers per second, batches of {tput['batch']} ({tput['class']} {tput['market']}):")
    labels = {
        "parse": "raw body -> JSON -> CCXT parse_tickers",
        "ticker": "  + CoreC Ticker (Decimal, checks)",
        "publish": "  + published on the bus, cached",
        "store": "  + stored in SQLite (one insert per poll)",
    }
    for stage, label in labels.items():
        print(f"  {label:<44} {tput[stage]:>10,.0f} /s")
    print(
        f"  {'CoreC alone (CCXT-parsed -> Ticker -> bus -> cache -> SQLite)':<44} "
        f"{tput['corec']:>10,.0f} /s"
    )
    end_to_end = tput["store"]
    for label, rate in (("end to end", end_to_end), ("CoreC alone", tput["corec"])):
        verdict = "met" if rate >= TARGET_TICKERS_PER_S else "NOT met"
        print(f"  target {TARGET_TICKERS_PER_S:,}/s {label}: {verdict} ({rate:,.0f}/s)")


if __name__ == "__main__":
    main()
