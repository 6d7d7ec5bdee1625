"""macro_sync in a real node: FRED's CSV format, the bundled FRED extract replayed on the
FTX recording's clock, stale series, FRED's download from a loopback server, restarts."""

from __future__ import annotations

import asyncio
import csv
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from corec.core import channels
from corec.core.clock import NS_PER_S, ReplayClock, SystemClock
from corec.core.config import CorecConfig
from corec.core.errors import InvalidInput
from corec.core.events import Event
from corec.core.notices import Alert, BreakerStateChanged
from corec.core.nucleus import Node
from corec.messages.exchange_data import TickerBatch
from corec.messages.macro_data import MacroObservation, MacroSeriesStale
from corec.plugins.macro_sync import models as m
from corec.plugins.macro_sync.plugin import bundled_macro_recording
from corec.plugins.macro_sync.sources import Observation, parse_fred_csv
from tests.conftest import write_recording_slice
from tests.harness import Recorder, started_node

D = Decimal
MakeConfig = Callable[..., CorecConfig]
RUN_LIMIT_S = 30.0  # a safety net: every replay here ends by itself much sooner
WAIT_S = 10.0  # the longest a loopback condition may take to come true


def ts_ns(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * NS_PER_S


def observations(rec: Recorder) -> list[MacroObservation]:
    return rec.payloads(MacroObservation, channel=channels.MACRO_DATA)


def triples(obs: list[MacroObservation]) -> list[tuple[str, str, str]]:
    """(series, date, value as written) of each observation."""
    return [(o.series, o.date, str(o.value)) for o in obs]


def macro_health(node: Node) -> dict[str, Any]:
    return node.health()["plugins"]["macro_sync"]


async def stored_rows(node: Node) -> list[dict[str, Any]]:
    store = node.store("macro_sync")
    assert store is not None
    query = select(m.observations).order_by(m.observations.c.id)
    return await store.read(
        lambda conn: [
            {k: v for k, v in r.items() if k != "id"} for r in conn.execute(query).mappings()
        ]
    )


def as_row(o: MacroObservation) -> dict[str, Any]:
    return {
        "series": o.series,
        "source_id": o.source_id,
        "date": o.date,
        "value": o.value,
        "available_ts_ns": o.available_ts_ns,
    }


def bundled_rows() -> list[dict[str, str]]:
    """The bundled FRED extract read with the csv module (independently of the plugin)."""
    with bundled_macro_recording().open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def expected_from_bundle(until_ns: int) -> list[tuple[str, str, str]]:
    """Every bundled value known (21:15 UTC of its date) by ``until_ns``, in publishing
    order: by date, then series name (SP500 before VIX)."""
    out = []
    for row in bundled_rows():
        if ts_ns(f"{row['observation_date']} 21:15:00") > until_ns:
            continue
        for series, column in (("SP500", "SP500"), ("VIX", "VIXCLS")):
            if row[column] not in ("", "."):
                out.append((series, row["observation_date"], row[column]))
    return out


def replay_config(
    make_config: MakeConfig,
    recording: Path,
    data_dir: Path,
    *,
    macro: dict[str, Any] | None = None,
    fresh_start: bool = False,
) -> CorecConfig:
    return make_config(
        {
            "node": {
                "plugins": ["exchange_sync", "macro_sync"],
                "data_dir": str(data_dir),
                "fresh_start": fresh_start,
            },
            "exchange_sync": {
                "source": "replay",
                "store_tickers": False,
                "replay": {"path": str(recording), "stop_at_end": True},
            },
            "macro_sync": {"source": "recording", **(macro or {})},
        }
    )


# -- FRED's CSV format ---------------------------------------------------------------------------


def test_parse_fred_csv_reads_both_date_headers_and_exact_decimals() -> None:
    new = "observation_date,VIXCLS,SP500\n2021-12-30,17.33,4778.73\n2021-12-31,17.22,4766.18\n"
    old = "DATE,VIXCLS\n2022-01-03,16.60\n2022-01-04,16.91\n"

    assert parse_fred_csv(new, ["VIXCLS", "SP500"], origin="new.csv") == [
        Observation("VIXCLS", datetime(2021, 12, 30).date(), D("17.33")),
        Observation("SP500", datetime(2021, 12, 30).date(), D("4778.73")),
        Observation("VIXCLS", datetime(2021, 12, 31).date(), D("17.22")),
        Observation("SP500", datetime(2021, 12, 31).date(), D("4766.18")),
    ]
    got = parse_fred_csv(old, ["VIXCLS"], origin="old.csv")
    assert [(o.source_id, o.date.isoformat(), str(o.value)) for o in got] == [
        ("VIXCLS", "2022-01-03", "16.60"),  # the trailing zero is kept: exact, not float
        ("VIXCLS", "2022-01-04", "16.91"),
    ]
    # only the wanted columns
    assert [o.source_id for o in parse_fred_csv(new, ["SP500"], origin="new.csv")] == [
        "SP500",
        "SP500",
    ]


def test_parse_fred_csv_skips_missing_values_and_never_invents_one() -> None:
    text = (
        "observation_date,VIXCLS,SP500\n"
        "2021-12-23,17.96,4725.79\n"
        "2021-12-24,,\n"  # the holiday, as FRED writes it in the bundled extract
        "2021-12-27,.,4791.19\n"  # FRED's other spelling of "no value"
        "\n"
        "2021-12-28,17.54, .\n"
        "2021-12-29,16.95\n"  # a short row: SP500 missing
    )
    got = parse_fred_csv(text, ["VIXCLS", "SP500"], origin="gaps.csv")
    assert [(o.source_id, o.date.isoformat(), o.value) for o in got] == [
        ("VIXCLS", "2021-12-23", D("17.96")),
        ("SP500", "2021-12-23", D("4725.79")),
        ("SP500", "2021-12-27", D("4791.19")),
        ("VIXCLS", "2021-12-28", D("17.54")),
        ("VIXCLS", "2021-12-29", D("16.95")),
    ]


def test_parse_fred_csv_reports_a_bad_value_by_file_line_and_column() -> None:
    text = "observation_date,VIXCLS,SP500\n2021-12-30,17.33,4778.73\n2021-12-31,17.22,n/a\n"
    with pytest.raises(InvalidInput) as caught:
        parse_fred_csv(text, ["VIXCLS", "SP500"], origin="macro.csv")
    assert str(caught.value) == "macro.csv:3: SP500 value 'n/a' is not a decimal"

    with pytest.raises(InvalidInput) as caught:
        parse_fred_csv("DATE,VIXCLS\n2022-01-03,Infinity\n", ["VIXCLS"], origin="inf.csv")
    assert str(caught.value) == "inf.csv:2: VIXCLS value 'Infinity' is not finite"

    with pytest.raises(InvalidInput) as caught:
        parse_fred_csv("DATE,VIXCLS\n2022-01-03,16.60\n03/01/2022,16.91\n", ["VIXCLS"], origin="d")
    assert str(caught.value).startswith("d:3: bad date ['03/01/2022']")


def test_parse_fred_csv_reports_missing_columns_with_the_available_ones() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_fred_csv("observation_date,VIXCLS\n2022-01-03,16.60\n", ["SP500"], origin="v.csv")
    assert str(caught.value) == "v.csv: no column SP500; columns are ['observation_date', 'VIXCLS']"

    with pytest.raises(InvalidInput) as caught:
        parse_fred_csv("day,VIXCLS\n2022-01-03,16.60\n", ["VIXCLS"], origin="x.csv")
    assert str(caught.value) == (
        "x.csv: no date column (one of observation_date, DATE, date) in ['day', 'VIXCLS']"
    )

    with pytest.raises(InvalidInput) as caught:
        parse_fred_csv("", ["VIXCLS"], origin="empty.csv")
    assert str(caught.value) == "empty.csv: empty, expected a header observation_date,<ID>"


# -- the bundled extract on the replayed FTX recording ------------------------------------------

SLICE_ROWS = 9000  # 2021-12-31 23:01 to 2022-01-07 05:00 (bar opens)
FIRST_BAR_NS = ts_ns("2021-12-31 23:02:00")  # the first bar, stamped at its close
LAST_BAR_NS = ts_ns("2022-01-07 05:01:00")


async def run_replay(config: CorecConfig) -> tuple[list[Event], list[dict[str, Any]], dict]:
    """Events seen (exchange_data, macro_data, alerts), stored rows and macro health."""
    chans = (channels.EXCHANGE_DATA, channels.MACRO_DATA, channels.ALERTS)
    async with started_node(config, *chans) as (node, rec):
        assert isinstance(node.clock, ReplayClock)
        reason = await node.run(duration_s=RUN_LIMIT_S, handle_signals=False)
        assert reason.endswith("finished")
        assert node.clock.now_ns() == LAST_BAR_NS
        return rec.events, await stored_rows(node), macro_health(node)


async def test_replay_publishes_each_value_once_the_replayed_clock_passes_its_time(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    recording = write_recording_slice(tmp_path / "slice.csv", SLICE_ROWS)
    events, rows, health = await run_replay(replay_config(make_config, recording, tmp_path / "a"))

    bars = [e for e in events if e.channel == channels.EXCHANGE_DATA]
    macro = [e for e in events if e.channel == channels.MACRO_DATA]
    assert len(bars) == SLICE_ROWS
    assert bars[0].ts_ns == FIRST_BAR_NS
    assert all(isinstance(e.payload, MacroObservation) for e in macro)  # nothing stale
    assert [e for e in events if e.channel == channels.ALERTS] == []
    published = [e.payload for e in macro]

    # everything, in date order, exactly as FRED wrote it, and nothing more
    assert triples(published) == expected_from_bundle(LAST_BAR_NS)
    assert len(published) == 52
    assert [o.date for o in published] == sorted(o.date for o in published)

    # the first bar brings every value known before it: Dec 2021 without the 24th
    assert events[0] is bars[0]
    first_batch = [e.payload for e in events[1 : events.index(bars[1])]]
    assert len(first_batch) == 44
    assert all(e.ts_ns == FIRST_BAR_NS for e in macro[:44])
    assert triples(first_batch[:2]) == [
        ("SP500", "2021-12-01", "4513.04"),
        ("VIX", "2021-12-01", "31.12"),
    ]
    assert triples(first_batch[-2:]) == [
        ("SP500", "2021-12-31", "4766.18"),
        ("VIX", "2021-12-31", "17.22"),
    ]
    assert "2021-12-24" not in {o.date for o in first_batch}
    assert {o.date for o in first_batch} == {f"2021-12-{d:02d}" for d in range(1, 32)} - {
        "2021-12-04", "2021-12-05", "2021-12-11", "2021-12-12", "2021-12-18", "2021-12-19",
        "2021-12-24", "2021-12-25", "2021-12-26",
    }  # fmt: skip
    assert first_batch[-1] == MacroObservation(
        series="VIX",
        source_id="VIXCLS",
        date="2021-12-31",
        value=D("17.22"),
        available_ts_ns=ts_ns("2021-12-31 21:15:00"),
    )

    # the next VIX, 16.60 of Monday 2022-01-03, only once the replay passes 21:15 that day
    due_ns = ts_ns("2022-01-03 21:15:00")
    before = [e.payload for e in macro if e.ts_ns < due_ns and e.payload.series == "VIX"]
    assert (before[-1].date, before[-1].value) == ("2021-12-31", D("17.22"))
    [jan3] = [e for e in macro if e.payload.series == "VIX" and e.payload.date == "2022-01-03"]
    assert str(jan3.payload.value) == "16.60"
    assert jan3.payload.available_ts_ns == due_ns
    assert jan3.ts_ns >= jan3.payload.available_ts_ns
    at = events.index(jan3)
    trigger = next(e for e in reversed(events[:at]) if e.channel == channels.EXCHANGE_DATA)
    previous_bar = bars[bars.index(trigger) - 1]
    assert trigger.ts_ns == jan3.ts_ns == due_ns  # the bar closing at 21:15 exactly
    assert previous_bar.ts_ns == due_ns - 60 * NS_PER_S < jan3.payload.available_ts_ns
    assert isinstance(trigger.payload, TickerBatch)
    assert [triples([e.payload]) for e in events[at - 1 : at + 1]] == [
        [("SP500", "2022-01-03", "4796.56")],
        [("VIX", "2022-01-03", "16.60")],
    ]
    assert events[at - 2] is trigger and events[at + 1].channel == channels.EXCHANGE_DATA
    # every value after the first batch is published on the first bar at/after its time
    for e in macro[44:]:
        bar = next(b for b in reversed(events[: events.index(e)]) if b.channel == "exchange_data")
        assert bar.ts_ns == e.ts_ns == e.payload.available_ts_ns

    # the table holds exactly what was published
    assert rows == [as_row(o) for o in published]
    assert health["published"] == 52
    assert health["pending"] == len(expected_from_bundle(ts_ns("2022-12-31 00:00:00"))) - 52
    assert health["latest"] == {
        "SP500": {"date": "2022-01-06", "value": "4696.05"},
        "VIX": {"date": "2022-01-06", "value": "19.61"},
    }
    assert health["stale"] == [] and health["status"] == "ok"

    # a second run on a fresh data directory publishes the identical sequence
    events2, rows2, _ = await run_replay(replay_config(make_config, recording, tmp_path / "b"))

    def fingerprint(evs: list[Event]) -> list[tuple[Any, ...]]:
        return [(e.channel, e.type, e.ts_ns, e.key, e.payload) for e in evs]

    assert fingerprint(events2) == fingerprint(events)
    assert rows2 == rows


async def test_a_series_that_stops_is_flagged_stale_once(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    macro_csv = tmp_path / "vix_stops.csv"
    macro_csv.write_text(
        "observation_date,VIXCLS,SP500\n"
        "2021-12-30,17.33,4778.73\n"
        "2021-12-31,17.22,4766.18\n"
        "2022-01-03,.,4796.56\n"
        "2022-01-04,,4793.54\n"
        "2022-01-05,.,4700.58\n"
        "2022-01-06,.,4696.05\n",
        encoding="utf-8",
    )
    recording = write_recording_slice(tmp_path / "slice.csv", 6000)  # to 2022-01-05 03:01
    config = replay_config(
        make_config, recording, tmp_path / "var", macro={"recording": {"path": str(macro_csv)}}
    )
    chans = (channels.EXCHANGE_DATA, channels.MACRO_DATA, channels.ALERTS)
    async with started_node(config, *chans) as (node, rec):
        await node.run(duration_s=RUN_LIMIT_S, handle_signals=False)
        health = macro_health(node)
        rows = await stored_rows(node)

    # VIX's last value became known 2021-12-31 21:15; 4 days later it is not yet stale
    # (a long weekend), one bar (60 s) after that it is, and it is said once
    [stale_event] = [e for e in rec.events if isinstance(e.payload, MacroSeriesStale)]
    assert stale_event.payload == MacroSeriesStale(
        series="VIX", last_date="2021-12-31", silent_s=4 * 86_400 + 60
    )
    assert stale_event.ts_ns == ts_ns("2022-01-04 21:16:00")
    [alert] = [a for a in rec.payloads(Alert) if a.name == "macro_stale"]
    assert rec.payloads(Alert) == [alert]
    assert alert.severity == "medium"
    assert alert.labels == {"plugin": "macro_sync", "series": "VIX"}
    assert alert.message == (
        "VIX: no new value for 96 h (last 2021-12-31, known since 2021-12-31T21:15:00Z)"
    )

    # nothing invented for the days VIX has no value; SP500 goes on
    published = observations(rec)
    assert triples(published) == [
        ("SP500", "2021-12-30", "4778.73"),
        ("VIX", "2021-12-30", "17.33"),
        ("SP500", "2021-12-31", "4766.18"),
        ("VIX", "2021-12-31", "17.22"),
        ("SP500", "2022-01-03", "4796.56"),
        ("SP500", "2022-01-04", "4793.54"),
    ]
    assert rows == [as_row(o) for o in published]
    assert health["stale"] == ["VIX"]
    assert health["status"] == "degraded"
    assert health["latest"]["VIX"] == {"date": "2021-12-31", "value": "17.22"}
    assert health["pending"] == 2  # SP500 of 01-05 and 01-06: not yet due


# -- restart ---------------------------------------------------------------------------------------


async def test_a_restarted_node_republishes_the_stored_latest_values(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    recording = tmp_path / "growing.csv"
    write_recording_slice(recording, 4500)  # to 2022-01-04 02:01: Jan 3 is known
    config = replay_config(make_config, recording, tmp_path / "var")
    async with started_node(config, channels.MACRO_DATA) as (node, rec):
        await node.run(duration_s=RUN_LIMIT_S, handle_signals=False)
        first_run = observations(rec)
    assert len(first_run) == 46
    assert triples(first_run[-2:]) == [
        ("SP500", "2022-01-03", "4796.56"),
        ("VIX", "2022-01-03", "16.60"),
    ]

    write_recording_slice(recording, 6000)  # the recording grew: to 2022-01-05 03:01
    assert config.node.fresh_start is False
    async with started_node(config, channels.MACRO_DATA) as (node, rec):
        # at start, before any bar: the newest stored value of each series, as stored
        republished = sorted(observations(rec), key=lambda o: o.series)
        assert republished == sorted(first_run[-2:], key=lambda o: o.series)
        # read back in the store's canonical form (16.6): the same number
        assert republished[1].value == D("16.60")
        assert republished[1].available_ts_ns == ts_ns("2022-01-03 21:15:00")
        latest = macro_health(node)["latest"]["VIX"]
        assert (latest["date"], D(latest["value"])) == ("2022-01-03", D("16.60"))

        await node.run(duration_s=RUN_LIMIT_S, handle_signals=False)
        # then only what is new: nothing of December or Jan 3 a second time
        assert triples(observations(rec)[2:]) == [
            ("SP500", "2022-01-04", "4793.54"),
            ("VIX", "2022-01-04", "16.91"),
        ]
        assert macro_health(node)["published"] == 2
        rows = await stored_rows(node)
    assert len(rows) == 48
    assert len({(r["series"], r["date"]) for r in rows}) == 48


# -- FRED over HTTP (a loopback server) ------------------------------------------------------------


class FakeFred:
    """``/fredgraph.csv?id=<ID>`` as FRED serves it: a CSV per series, or an error."""

    def __init__(self) -> None:
        self.answers: dict[str, str | bytes | tuple[int, str]] = {}
        self.requests: dict[str, int] = {}
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/fredgraph.csv", self._csv)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/fredgraph.csv?id={{id}}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _csv(self, request: web.Request) -> web.Response:
        source_id = request.query.get("id", "")
        self.requests[source_id] = self.requests.get(source_id, 0) + 1
        answer = self.answers.get(source_id, (404, "Series does not exist."))
        if isinstance(answer, tuple):
            status, text = answer
            return web.Response(status=status, text=text)
        if isinstance(answer, bytes):
            return web.Response(body=answer, content_type="text/csv", charset="utf-8")
        return web.Response(text=answer, content_type="text/csv")


def fred_csv(column: str, rows: list[tuple[str, str]]) -> str:
    return f"observation_date,{column}\n" + "".join(f"{d},{v}\n" for d, v in rows)


@pytest.fixture
async def fred() -> AsyncIterator[FakeFred]:
    fake = FakeFred()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


def fred_config(
    make_config: MakeConfig, url: str, series: dict[str, str] | None = None, **fred: Any
) -> CorecConfig:
    return make_config(
        {
            "node": {"plugins": ["macro_sync"]},
            "macro_sync": {
                "source": "fred",
                "series": series or {"VIX": "VIXCLS", "SP500": "SP500"},
                "fred": {"url": url, "interval_s": 0.05, "timeout_s": 2, **fred},
            },
        }
    )


async def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
async def running() -> AsyncIterator[Callable[[Node], None]]:
    """``running(node)``: run the node in the background; stopped after the test."""
    tasks: list[tuple[Node, asyncio.Task[str]]] = []

    def start(node: Node) -> None:
        tasks.append((node, asyncio.create_task(node.run(duration_s=60, handle_signals=False))))

    yield start
    for node, task in tasks:
        node.request_shutdown("test over")
        await task


async def test_fred_publishes_the_newest_value_once_and_then_only_newer_dates(
    make_config: MakeConfig, fred: FakeFred, running: Callable[[Node], None]
) -> None:
    fred.answers["VIXCLS"] = fred_csv(
        "VIXCLS", [("2021-12-29", "16.95"), ("2021-12-30", "17.33"), ("2021-12-31", "17.22")]
    )
    # today's row before the close: FRED writes "." until the value exists
    fred.answers["SP500"] = fred_csv(
        "SP500", [("2021-12-30", "4778.73"), ("2021-12-31", "4766.18"), ("2022-01-03", ".")]
    )
    config = fred_config(make_config, fred.url)
    async with started_node(config, channels.MACRO_DATA, channels.SYSTEM, channels.ALERTS) as (
        node,
        rec,
    ):
        assert isinstance(node.clock, SystemClock)
        started_ns = time.time_ns()
        running(node)
        await until(lambda: len(observations(rec)) == 2, "the first values")
        downloaded_ns = time.time_ns()
        await until(lambda: fred.requests["VIXCLS"] >= 5, "more downloads")
        assert triples(observations(rec)) == [
            ("VIX", "2021-12-31", "17.22"),
            ("SP500", "2021-12-31", "4766.18"),
        ]  # the newest only, and once however often it is downloaded
        for o in observations(rec):
            assert started_ns <= o.available_ts_ns <= downloaded_ns  # the download time
        assert observations(rec)[0].source_id == "VIXCLS"

        fred.answers["VIXCLS"] += "2022-01-03,16.60\n"
        seen = fred.requests["VIXCLS"]
        await until(lambda: len(observations(rec)) == 3, "the new VIX")
        [jan3] = observations(rec)[2:]
        assert (jan3.series, jan3.source_id, jan3.date, str(jan3.value)) == (
            "VIX",
            "VIXCLS",
            "2022-01-03",
            "16.60",
        )
        await until(lambda: fred.requests["VIXCLS"] >= seen + 4, "more downloads")
        assert len(observations(rec)) == 3
        events = [e for e in rec.events if e.channel == channels.MACRO_DATA]
        assert [e.key for e in events] == ["VIX:2021-12-31", "SP500:2021-12-31", "VIX:2022-01-03"]
        assert all(e.ts_ns >= e.payload.available_ts_ns for e in events)
        assert rec.payloads(Alert) == [] and rec.payloads(BreakerStateChanged) == []

        health = macro_health(node)
        assert health["status"] == "ok" and health["source"] == "fred"
        assert health["published"] == 3
        assert health["breakers"] == {"VIX": "closed", "SP500": "closed"}
        assert health["latest"] == {
            "VIX": {"date": "2022-01-03", "value": "16.60"},
            "SP500": {"date": "2021-12-31", "value": "4766.18"},
        }
        assert await stored_rows(node) == [as_row(o) for o in observations(rec)]


async def test_fred_server_errors_open_the_series_breaker_and_others_go_on(
    make_config: MakeConfig, fred: FakeFred, running: Callable[[Node], None]
) -> None:
    fred.answers["VIXCLS"] = (500, "Internal Server Error")
    fred.answers["SP500"] = fred_csv("SP500", [("2021-12-31", "4766.18")])
    config = fred_config(
        make_config, fred.url, retry_attempts=1, breaker_failures=2, breaker_reset_s=600
    )
    async with started_node(config, channels.MACRO_DATA, channels.SYSTEM, channels.ALERTS) as (
        node,
        rec,
    ):
        running(node)
        await until(lambda: fred.requests.get("SP500", 0) >= 6, "SP500 downloads")
        breakers = rec.payloads(BreakerStateChanged)
        alerts = [a for a in rec.payloads(Alert) if a.name.startswith("breaker_")]
        health = macro_health(node)

    assert breakers == [
        BreakerStateChanged(
            breaker="macro_sync.VIX", previous="closed", current="open", reason="HTTP 500"
        )
    ]
    [alert] = alerts
    assert (alert.name, alert.severity) == ("breaker_open", "high")
    assert alert.labels == {"plugin": "macro_sync", "breaker": "macro_sync.VIX"}
    assert alert.message == "macro_sync.VIX: breaker closed -> open (HTTP 500)"
    # one request per download (retry_attempts 1); none once the breaker is open
    assert fred.requests["VIXCLS"] == 2
    assert health["breakers"] == {"VIX": "open", "SP500": "closed"}
    assert health["status"] == "degraded"
    assert health["last_error"] == "VIX: HTTP 500"
    assert "VIX" not in health["latest"]
    # SP500 is unaffected: its value published once
    assert triples(observations(rec)) == [("SP500", "2021-12-31", "4766.18")]


async def test_fred_client_errors_fail_at_once_without_retries(
    make_config: MakeConfig, fred: FakeFred, running: Callable[[Node], None]
) -> None:
    fred.answers["VIXCLS"] = (404, "Series does not exist.")
    fred.answers["SP500"] = (503, "Service Unavailable")  # retried: the contrast
    fred.answers["DGS10"] = "<!DOCTYPE html><html>maintenance</html>\n"  # 200, not a CSV
    config = fred_config(
        make_config,
        fred.url,
        series={"VIX": "VIXCLS", "SP500": "SP500", "T10Y": "DGS10"},
        retry_attempts=3,
        breaker_failures=1,
        breaker_reset_s=600,
    )
    async with started_node(config, channels.MACRO_DATA, channels.SYSTEM) as (node, rec):
        running(node)
        await until(lambda: len(rec.payloads(BreakerStateChanged)) == 3, "three open breakers")
        await asyncio.sleep(0.3)  # several more intervals: nothing more is asked
        health = macro_health(node)

    url = fred.url.format(id="VIXCLS")
    reasons = {b.breaker: b.reason for b in rec.payloads(BreakerStateChanged)}
    assert reasons == {
        "macro_sync.VIX": f"{url}: HTTP 404: Series does not exist.",
        "macro_sync.SP500": "HTTP 503",
        "macro_sync.T10Y": (
            f"{fred.url.format(id='DGS10')}: no date column (one of observation_date, DATE, "
            "date) in ['<!DOCTYPE html><html>maintenance</html>']"
        ),
    }
    assert fred.requests == {"VIXCLS": 1, "SP500": 3, "DGS10": 1}
    assert health["breakers"] == {"VIX": "open", "SP500": "open", "T10Y": "open"}
    assert observations(rec) == []


async def test_an_answer_that_is_not_utf8_fails_its_series_only(
    make_config: MakeConfig, fred: FakeFred, running: Callable[[Node], None]
) -> None:
    fred.answers["VIXCLS"] = b"observation_date,VIXCLS\n2022-01-03,\xff\xfe\n"
    fred.answers["SP500"] = fred_csv("SP500", [("2022-01-03", "4796.56")])
    config = fred_config(make_config, fred.url, retry_attempts=1, breaker_failures=1)
    async with started_node(config, channels.MACRO_DATA, channels.SYSTEM) as (node, rec):
        running(node)
        await until(lambda: len(observations(rec)) == 1, "the S&P 500 value")
        await until(lambda: len(rec.payloads(BreakerStateChanged)) == 1, "VIX's breaker")
        health = macro_health(node)

    [sp500] = observations(rec)
    assert (sp500.series, sp500.value) == ("SP500", Decimal("4796.56"))
    [opened] = rec.payloads(BreakerStateChanged)
    assert opened.breaker == "macro_sync.VIX" and "not UTF-8" in opened.reason
    assert health["breakers"] == {"VIX": "open", "SP500": "closed"}
