"""The nucleus: start order, lifecycle, supervision, shutdown, discovery, clock choice."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest

from corec.core import channels, nucleus
from corec.core.clock import ReplayClock, SystemClock
from corec.core.config import BusSettings, CorecConfig, NodeSettings
from corec.core.errors import BusError, NoResponder, PluginError
from corec.core.events import Event, Payload
from corec.core.notices import Alert, NodeShutdown, PluginStateChanged
from corec.core.nucleus import Node, choose_clock, start_order
from corec.core.plugin import Plugin, PluginConfig, PluginContext
from corec.core.registry import discover_plugins
from corec.messages.capital_data import AllocationRequest

from .bus_contract import allocation_request, ticker_event

Hook = Callable[["FakePlugin", PluginContext], Awaitable[None]]


class FakePlugin(Plugin):
    """A plugin without tables that writes what happens to it into ``journal``."""

    name: ClassVar[str] = "fake"
    journal: ClassVar[list[str]]
    on_start: ClassVar[Hook | None] = None
    on_stop: ClassVar[Callable[[], Awaitable[None]] | None] = None

    async def start(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self.journal.append(f"start:{self.name}")
        if self.on_start is not None:
            await type(self).on_start(self, ctx)  # type: ignore[misc]

    async def stop(self) -> None:
        self.journal.append(f"stop:{self.name}")
        if self.on_stop is not None:
            await type(self).on_stop()  # type: ignore[misc]


def fake(name: str, journal: list[str] | None = None, **attrs: Any) -> type[FakePlugin]:
    """A :class:`FakePlugin` subclass named ``name`` with class attributes ``attrs``."""
    for key in ("on_start", "on_stop"):
        if key in attrs:
            attrs[key] = staticmethod(attrs[key])
    return type(
        f"Fake_{name}",
        (FakePlugin,),
        {"name": name, "journal": [] if journal is None else journal, **attrs},
    )


def node_config(tmp_path: Path, classes: dict[str, type[Plugin]], **node: Any) -> CorecConfig:
    sections = {name: PluginConfig() for name in classes}
    sections.update(node.pop("sections", {}))
    return CorecConfig(
        source="test",
        node=NodeSettings(data_dir=tmp_path / "var", **node),
        bus=BusSettings(),
        sections=sections,
    )


def make_node(tmp_path: Path, *classes: type[Plugin], **node: Any) -> Node:
    by_name = {cls.name: cls for cls in classes}
    return Node(node_config(tmp_path, by_name, **node), by_name)


def record(node: Node, channel: str) -> list[Event]:
    seen: list[Event] = []
    node.bus.subscribe(channel, seen.append, group="test-recorder")
    return seen


def states(events: list[Event]) -> list[tuple[str, str]]:
    return [
        (e.payload.plugin, e.payload.state)
        for e in events
        if isinstance(e.payload, PluginStateChanged)
    ]


@pytest.fixture
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nucleus, "TASK_BACKOFF_BASE_S", 0.001)


# -- start order ----------------------------------------------------------------------
def test_servers_start_before_requesters() -> None:
    server = fake("capital", serves=("capital.allocate",))
    client = fake("trader", requests=("capital.allocate",))
    assert start_order({"trader": client, "capital": server}) == ["capital", "trader"]


def test_consumers_start_before_producers() -> None:
    producer = fake("feed", publishes=(channels.EXCHANGE_DATA,))
    middle = fake("monitor", consumes=(channels.EXCHANGE_DATA,), publishes=(channels.MARKET_DATA,))
    consumer = fake("strategy", consumes=(channels.MARKET_DATA,))
    order = start_order({"feed": producer, "monitor": middle, "strategy": consumer})
    assert order == ["strategy", "monitor", "feed"]


def test_requests_outrank_publish_consume() -> None:
    # trader requests capital's endpoint and publishes what capital consumes: both
    # rules agree; watcher consumes what capital publishes, so it starts first of all
    capital = fake(
        "capital",
        serves=("capital.allocate",),
        consumes=(channels.TRADING_RESULTS,),
        publishes=(channels.CAPITAL_DATA,),
    )
    trader = fake("trader", requests=("capital.allocate",), publishes=(channels.TRADING_RESULTS,))
    watcher = fake("watcher", consumes=(channels.CAPITAL_DATA,))
    order = start_order({"trader": trader, "capital": capital, "watcher": watcher})
    assert order == ["watcher", "capital", "trader"]


def test_publish_consume_cycle_falls_back_to_requests_only() -> None:
    a = fake(
        "a",
        consumes=(channels.MARKET_DATA,),
        publishes=(channels.CAPITAL_DATA,),
        requests=("b.quote",),
    )
    b = fake("b", consumes=(channels.CAPITAL_DATA,), publishes=(channels.MARKET_DATA,))
    b.serves = ("b.quote",)
    assert start_order({"a": a, "b": b}) == ["b", "a"]
    a.requests = ()
    b.serves = ()
    assert sorted(start_order({"a": a, "b": b})) == ["a", "b"]  # a cycle alone is no error


def test_request_nobody_serves() -> None:
    lonely = fake("trader", requests=("capital.allocate",))
    with pytest.raises(PluginError, match=r"'trader' requests 'capital.allocate'.*no enabled"):
        start_order({"trader": lonely})


def test_request_cycle() -> None:
    a = fake("a", serves=("a.ep",), requests=("b.ep",))
    b = fake("b", serves=("b.ep",), requests=("a.ep",))
    with pytest.raises(PluginError, match="cycle"):
        start_order({"a": a, "b": b})


def test_requesting_your_own_endpoint_is_no_dependency() -> None:
    a = fake("a", serves=("a.ep",), requests=("a.ep",))
    assert start_order({"a": a}) == ["a"]


def test_start_order_of_the_installed_plugins(plugin_classes: dict[str, Any]) -> None:
    assert start_order(plugin_classes) == [
        "api",  # consumes every channel, requests nothing: first, so it misses no event
        "alert_manager",
        "capital_pool",
        "user_management",
        "daily_settlement",  # after capital_pool, whose close_day it requests
        "macro_sync",  # before exchange_sync: a replay's exchange_data is its clock
        "trading_execution",
        "market_monitor",
        "exchange_sync",
    ]


# -- lifecycle ------------------------------------------------------------------------
async def test_node_starts_in_order_and_stops_in_reverse(tmp_path: Path) -> None:
    journal: list[str] = []
    server = fake("capital", journal, serves=("capital.allocate",))
    trader = fake("trader", journal, requests=("capital.allocate",))
    feed = fake("feed", journal, publishes=(channels.MARKET_DATA,))
    trader.consumes = (channels.MARKET_DATA,)
    node = make_node(tmp_path, feed, trader, server)
    system = record(node, channels.SYSTEM)

    await node.start()
    assert journal == ["start:capital", "start:trader", "start:feed"]
    assert states(system) == [
        ("capital", "starting"),
        ("capital", "running"),
        ("trader", "starting"),
        ("trader", "running"),
        ("feed", "starting"),
        ("feed", "running"),
    ]
    assert all(e.source == "nucleus@node-1" for e in system)
    assert {n: p["state"] for n, p in node.health()["plugins"].items()} == {
        "capital": "running",
        "trader": "running",
        "feed": "running",
    }
    assert (tmp_path / "var").is_dir()

    del system[:]
    await node.stop()
    await node.close()
    assert journal[3:] == ["stop:feed", "stop:trader", "stop:capital"]
    assert isinstance(system[0].payload, NodeShutdown)
    assert system[0].payload.reason == "stop"
    assert states(system) == [
        ("feed", "stopping"),
        ("feed", "stopped"),
        ("trader", "stopping"),
        ("trader", "stopped"),
        ("capital", "stopping"),
        ("capital", "stopped"),
    ]


async def test_context_publishes_subscribes_and_serves_as_the_plugin(tmp_path: Path) -> None:
    got: list[Event] = []

    async def start_capital(plugin: FakePlugin, ctx: PluginContext) -> None:
        ctx.subscribe(channels.EXCHANGE_DATA, got.append)

        async def allocate(payload: Payload) -> Payload:
            return payload

        ctx.serve("capital.allocate", allocate)

    async def start_trader(plugin: FakePlugin, ctx: PluginContext) -> None:
        await ctx.alert("low_cash", "free cash below 10 USD", severity="high", labels={"a": "b"})
        reply = await ctx.request("capital.allocate", allocation_request())
        assert isinstance(reply, AllocationRequest)
        assert reply.stop_loss_pct == Decimal("2.5")

    capital = fake("capital", serves=("capital.allocate",), on_start=start_capital)
    trader = fake("trader", requests=("capital.allocate",), on_start=start_trader)
    node = make_node(tmp_path, capital, trader, instance_id="pool-a")
    alerts = record(node, channels.ALERTS)
    await node.start()

    (alert_event,) = alerts
    assert alert_event.source == "trader@pool-a"
    assert alert_event.payload == Alert(
        name="low_cash",
        message="free cash below 10 USD",
        severity="high",
        labels={"plugin": "trader", "a": "b"},
    )
    await node.bus.publish(ticker_event(1))
    assert len(got) == 1
    assert node.plugin("capital").ctx.request_timeout_s == 5.0

    capital_ctx = node.plugin("capital").ctx
    capital_ctx.detach()
    # detaching removed the plugin's endpoint and subscription
    with pytest.raises(NoResponder):
        await node.bus.request("capital.allocate", allocation_request(), timeout_s=1)
    await node.bus.publish(ticker_event(2))
    assert len(got) == 1
    await node.stop()
    with pytest.raises(BusError):  # the bus is closed once the node has stopped
        await node.bus.request("capital.allocate", allocation_request(), timeout_s=1)
    await node.close()


async def test_failed_start_stops_the_started_ones(tmp_path: Path) -> None:
    journal: list[str] = []

    async def no_keys(plugin: FakePlugin, ctx: PluginContext) -> None:
        raise RuntimeError("no API keys")

    first = fake("first", journal, serves=("first.ep",))
    broken = fake("broken", journal, serves=("broken.ep",), requests=("first.ep",))
    broken.on_start = staticmethod(no_keys)
    last = fake("last", journal, requests=("broken.ep",))
    node = make_node(tmp_path, last, broken, first)

    with pytest.raises(PluginError, match="plugin 'broken' failed to start: no API keys") as caught:
        await node.start()
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert journal == ["start:first", "start:broken", "stop:first"]
    health = node.health()["plugins"]
    assert health["broken"]["state"] == "failed"
    assert health["broken"]["error"] == "RuntimeError: no API keys"
    assert health["first"]["state"] == "stopped"
    assert health["last"] == {"state": "stopped"}
    await node.close()


async def test_stop_survives_a_failing_or_hanging_plugin(tmp_path: Path) -> None:
    journal: list[str] = []

    async def hang() -> None:
        await asyncio.sleep(30)

    async def fail() -> None:
        raise OSError("disk full")

    a = fake("a", journal, serves=("a.ep",))
    b = fake("b", journal, requests=("a.ep",), serves=("b.ep",), on_stop=hang)
    c = fake("c", journal, requests=("b.ep",), on_stop=fail)
    node = make_node(tmp_path, a, b, c, shutdown_timeout_s=0.05)
    await node.start()
    started = time.monotonic()
    await node.stop()
    assert time.monotonic() - started < 5
    assert journal[3:] == ["stop:c", "stop:b", "stop:a"]
    assert {n: p["state"] for n, p in node.health()["plugins"].items()} == {
        "a": "stopped",
        "b": "stopped",
        "c": "stopped",
    }
    await node.close()


# -- supervision ----------------------------------------------------------------------
def spawning(task: Callable[[], Awaitable[None]], name: str = "poll") -> Hook:
    async def on_start(plugin: FakePlugin, ctx: PluginContext) -> None:
        ctx.spawn(name, task)

    return on_start


async def test_crashing_task_is_restarted_then_given_up(tmp_path: Path, fast_backoff: None) -> None:
    calls = [0]

    async def feed() -> None:
        calls[0] += 1
        raise RuntimeError("feed down")

    node = make_node(tmp_path, fake("feed", on_start=spawning(feed)))
    alerts, system = record(node, channels.ALERTS), record(node, channels.SYSTEM)

    def stop_on_crash(event: Event) -> None:
        if event.payload.name == "plugin_crashed":
            node.request_shutdown("crash seen")

    node.bus.subscribe(channels.ALERTS, stop_on_crash, group="test-stopper")
    await node.start()
    assert await node.run(handle_signals=False) == "crash seen"

    assert calls[0] == nucleus.MAX_TASK_RESTARTS + 1
    names = [(a.payload.name, a.payload.severity) for a in alerts]
    assert names == [("plugin_task_restarted", "high")] * nucleus.MAX_TASK_RESTARTS + [
        ("plugin_crashed", "critical")
    ]
    crashed = alerts[-1].payload
    assert crashed.labels == {"plugin": "feed", "task": "poll"}
    assert "feed.poll failed 6 times" in crashed.message
    assert "RuntimeError: feed down" in crashed.message
    assert alerts[0].payload.message.endswith(f"restart 1 of {nucleus.MAX_TASK_RESTARTS}")
    assert states(system)[-1] == ("feed", "failed")
    assert states(system)[2:4] == [("feed", "restarting"), ("feed", "running")]
    health = node.health()["plugins"]["feed"]
    assert (health["state"], health["status"], health["error"]) == (
        "failed",
        "failed",
        "RuntimeError: feed down",
    )
    await node.stop()
    await node.close()


async def test_a_given_up_plugin_is_stopped(tmp_path: Path, fast_backoff: None) -> None:
    # DESIGN.md: "one that keeps crashing is stopped and alerted on"
    journal: list[str] = []
    got: list[Event] = []

    async def feed() -> None:
        raise RuntimeError("feed down")

    async def start(plugin: FakePlugin, ctx: PluginContext) -> None:
        ctx.subscribe(channels.EXCHANGE_DATA, got.append)
        ctx.spawn("poll", feed)

    node = make_node(tmp_path, fake("feed", journal, on_start=start))
    crashed = asyncio.Event()
    node.bus.subscribe(
        channels.ALERTS,
        lambda e: crashed.set() if e.payload.name == "plugin_crashed" else None,
        group="test-watch",
    )
    await node.start()
    runner = asyncio.create_task(node.run(handle_signals=False))
    await asyncio.wait_for(crashed.wait(), 10)
    await asyncio.sleep(0.01)
    await node.bus.publish(ticker_event(1))  # the failed plugin must not handle it
    node.request_shutdown("test over")
    await runner
    assert journal == ["start:feed", "stop:feed"]
    assert got == []
    await node.stop()
    await node.close()


async def test_task_that_recovers_keeps_running(tmp_path: Path, fast_backoff: None) -> None:
    calls = [0]
    node: Node

    async def flaky() -> None:
        calls[0] += 1
        if calls[0] <= 2:
            raise ConnectionError("reset")
        node.request_shutdown("recovered")

    node = make_node(tmp_path, fake("feed", on_start=spawning(flaky)))
    alerts = record(node, channels.ALERTS)
    await node.start()
    assert await node.run(handle_signals=False) == "recovered"
    assert calls[0] == 3
    assert [a.payload.name for a in alerts] == ["plugin_task_restarted"] * 2
    assert node.health()["plugins"]["feed"]["state"] == "running"
    await node.stop()
    await node.close()


async def test_a_task_that_returns_is_done(tmp_path: Path) -> None:
    calls = [0]

    async def once() -> None:
        calls[0] += 1

    node = make_node(tmp_path, fake("feed", on_start=spawning(once)))
    await node.start()
    assert calls[0] == 0  # tasks start when the node runs
    assert await node.run(duration_s=0.05, handle_signals=False) == "duration elapsed"
    assert calls[0] == 1
    await node.stop()
    await node.close()


async def test_spawn_while_running_starts_at_once(tmp_path: Path) -> None:
    done = asyncio.Event()

    async def late() -> None:
        done.set()

    async def first() -> None:
        plugin = node.plugin("feed")
        plugin.ctx.spawn("late", late)  # type: ignore[attr-defined]
        await asyncio.wait_for(done.wait(), 5)
        node.request_shutdown("late task ran")

    node = make_node(tmp_path, fake("feed", on_start=spawning(first)))
    await node.start()
    assert await node.run(handle_signals=False) == "late task ran"
    await node.stop()
    await node.close()


async def test_stop_cancels_running_tasks(tmp_path: Path) -> None:
    cancelled = asyncio.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    node = make_node(tmp_path, fake("feed", on_start=spawning(forever)))
    await node.start()
    assert await node.run(duration_s=0.02, handle_signals=False) == "duration elapsed"
    await node.stop()
    assert cancelled.is_set()
    await node.close()


# -- run and shutdown -----------------------------------------------------------------
async def test_request_shutdown_returns_the_first_reason(tmp_path: Path) -> None:
    async def finish(plugin: FakePlugin, ctx: PluginContext) -> None:
        async def replay() -> None:
            ctx.request_shutdown("recording btc-perp_1m_2022-01.csv finished")
            ctx.request_shutdown("second reason is ignored")

        ctx.spawn("replay", replay)

    node = make_node(tmp_path, fake("exchange", on_start=finish))
    system = record(node, channels.SYSTEM)
    await node.start()
    reason = await node.run(handle_signals=False)
    assert reason == "recording btc-perp_1m_2022-01.csv finished"
    await node.stop()
    shutdown = [e.payload for e in system if isinstance(e.payload, NodeShutdown)]
    assert shutdown == [NodeShutdown(reason="recording btc-perp_1m_2022-01.csv finished")]
    await node.close()


async def test_run_for_a_duration(tmp_path: Path) -> None:
    node = make_node(tmp_path, fake("idle"))
    await node.start()
    started = time.monotonic()
    assert await node.run(duration_s=0.05) == "duration elapsed"
    assert 0.04 <= time.monotonic() - started < 5
    await node.stop()
    await node.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_real_signal_stops_run_gracefully(tmp_path: Path, sig: signal.Signals) -> None:
    journal: list[str] = []
    fallback: list[int] = []
    # if the node failed to install its handler, this keeps the test process alive
    previous = signal.signal(sig, lambda signum, frame: fallback.append(signum))
    try:

        async def send() -> None:
            await asyncio.sleep(0.01)
            os.kill(os.getpid(), sig)

        node = make_node(tmp_path, fake("feed", journal, on_start=spawning(send)))
        await node.start()
        reason = await asyncio.wait_for(node.run(), 10)
        assert reason == f"signal {sig.name}"
        assert fallback == []
        await node.stop()
        await node.close()
        assert journal == ["start:feed", "stop:feed"]
    finally:
        signal.signal(sig, previous)


# -- data directory, discovery, clock -------------------------------------------------
async def test_fresh_start_removes_the_default_sqlite_files(tmp_path: Path) -> None:
    data = tmp_path / "var"
    data.mkdir()
    doomed = [data / "feed.db", data / "feed.db-wal", data / "feed.db-shm"]
    kept = [data / "keep.txt", data / "ledger.db", data / "other.db"]
    for path in doomed + kept:
        path.write_text("x")
    feed, ledger = fake("feed"), fake("ledger")
    classes = {"feed": feed, "ledger": ledger}
    config = node_config(
        tmp_path,
        classes,
        fresh_start=True,
        sections={"ledger": PluginConfig(database_url=f"sqlite+aiosqlite:///{tmp_path}/l.db")},
    )
    node = Node(config, classes)
    await node.start()
    assert [p.exists() for p in doomed] == [False, False, False]
    assert [p.exists() for p in kept] == [True, True, True]
    await node.stop()
    await node.close()


async def test_without_fresh_start_files_stay(tmp_path: Path) -> None:
    data = tmp_path / "var"
    data.mkdir()
    (data / "feed.db").write_text("x")
    node = make_node(tmp_path, fake("feed"))
    await node.start()
    assert (data / "feed.db").read_text() == "x"
    await node.stop()
    await node.close()


def test_discover_plugins_finds_the_nine() -> None:
    found = discover_plugins()
    assert sorted(found) == [
        "alert_manager",
        "api",
        "capital_pool",
        "daily_settlement",
        "exchange_sync",
        "macro_sync",
        "market_monitor",
        "trading_execution",
        "user_management",
    ]
    assert list(found) == sorted(found)
    for name, cls in found.items():
        assert issubclass(cls, Plugin)
        assert cls.name == name


def test_choose_clock(make_config: Callable[..., CorecConfig], plugin_classes: dict) -> None:
    classes = {"exchange_sync": plugin_classes["exchange_sync"]}
    replay = make_config({"node": {"plugins": ["exchange_sync"], "clock": "auto"}})
    assert replay.sections["exchange_sync"].source == "replay"
    assert isinstance(choose_clock(replay, classes), ReplayClock)

    live = make_config(
        {"node": {"plugins": ["exchange_sync"]}, "exchange_sync": {"source": "ccxt"}}
    )
    assert isinstance(choose_clock(live, classes), SystemClock)

    forced = make_config({"node": {"plugins": ["exchange_sync"], "clock": "system"}})
    assert isinstance(choose_clock(forced, classes), SystemClock)

    none = make_config({"node": {"plugins": [], "clock": "replay"}})
    assert isinstance(choose_clock(none, {}), ReplayClock)


def test_node_uses_the_chosen_clock(
    make_config: Callable[..., CorecConfig], plugin_classes: dict
) -> None:
    config = make_config({"node": {"plugins": ["exchange_sync", "market_monitor"]}})
    node = Node(config, plugin_classes)
    assert isinstance(node.clock, ReplayClock)
    assert node.order == ["market_monitor", "exchange_sync"]
    clock = ReplayClock(7)
    assert Node(config, plugin_classes, clock=clock).clock is clock


async def test_health_reports_bus_counters(tmp_path: Path) -> None:
    node = make_node(tmp_path, fake("feed"))
    await node.start()
    await node.bus.publish(ticker_event(1))
    health = node.health()
    assert health["instance_id"] == "node-1"
    assert health["uptime_s"] >= 0
    assert health["bus"]["published"]["exchange_data"] == 1
    assert health["bus"]["published"]["system"] == 2  # starting, running
    assert health["plugins"]["feed"] == {
        "state": "running",
        "status": "ok",
        "error": None,
    }
    await node.stop()
    await node.close()
