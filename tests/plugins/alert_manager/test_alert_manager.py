"""alert_manager in a real node on a replay clock: dedup, rules, resolution, expiry,
notifications through Apprise to a loopback webhook, silences, dead letters, restart."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from corec.core import channels
from corec.core.clock import NS_PER_S, ReplayClock
from corec.core.config import CorecConfig
from corec.core.errors import ConfigError
from corec.core.events import Payload, make_event
from corec.core.notices import Alert, DeadLetter, Severity
from corec.core.nucleus import Node
from corec.core.registry import discover_plugins
from corec.messages.alert_data import (
    AlertExpired,
    AlertRecorded,
    NotificationAttempted,
    SilenceChanged,
)
from corec.messages.capital_data import WithdrawalRecorded
from corec.messages.exchange_data import Ticker, TickerBatch
from corec.messages.trading_results import TradeClosed
from corec.plugins.alert_manager import models as m
from corec.plugins.alert_manager import plugin as plugin_module
from corec.plugins.alert_manager import records
from corec.plugins.alert_manager.plugin import AlertManagerPlugin, list_alerts, new_silence
from corec.plugins.alert_manager.types import fingerprint
from tests.harness import Recorder, count_rows, started_node

D = Decimal
MakeConfig = Callable[..., CorecConfig]
T0 = 1_767_225_600 * NS_PER_S  # 2026-01-01T00:00:00Z
S = NS_PER_S
HOOK_ENV = "COREC_TEST_ALERT_HOOK_URLS"
HOOK_ROUTE = {
    "receiver": "hook",
    "group_by": ["alertname"],
    "group_wait_s": 10,
    "group_interval_s": 60,
    "repeat_interval_s": 3600,
}


def manager_config(make_config: MakeConfig, **section: Any) -> CorecConfig:
    return make_config(
        {"node": {"plugins": ["alert_manager"], "clock": "replay"}, "alert_manager": section}
    )


async def send(
    node: Node, channel: str, payload: Payload, *, at_ns: int | None = None, source: str = "test@x"
) -> None:
    """Publish ``payload`` with the replay clock moved to ``at_ns`` first."""
    assert isinstance(node.clock, ReplayClock)
    if at_ns is not None:
        node.clock.advance_to(at_ns)
    await node.bus.publish(make_event(channel, payload, source=source, clock=node.clock))


def alert(
    name: str = "price_move",
    severity: Severity = "medium",
    *,
    state: str = "firing",
    resolvable: bool = False,
    **labels: str,
) -> Alert:
    return Alert(
        name=name,
        message=f"{name} {state}",
        severity=severity,
        labels=labels,
        state=state,  # type: ignore[arg-type]
        resolvable=resolvable,
    )


def trade(pnl: str, *, trade_id: str = "t1") -> TradeClosed:
    """A long of 1 unit from 10,000 whose realized PnL is ``pnl`` (no fees)."""
    return TradeClosed(
        trade_id=trade_id,
        allocation_id=f"a-{trade_id}",
        strategy="sma",
        exchange="binance",
        market="spot",
        symbol="BTC/USDT",
        side="long",
        quantity=D(1),
        entry_price=D(10000),
        exit_price=D(10000) + D(pnl),
        fees_usd=D(0),
        realized_pnl_usd=D(pnl),
        opened_ts_ns=T0 - 60 * S,
        closed_ts_ns=T0,
        exit_reason="stop_loss",
    )


def withdrawal(amount: str, withdrawal_id: str = "w1") -> WithdrawalRecorded:
    return WithdrawalRecorded(
        withdrawal_id=withdrawal_id,
        member="alice",
        amount_usd=D(amount),
        units=D(amount),
        nav_per_unit=D(1),
    )


def recorded(rec: Recorder) -> list[AlertRecorded]:
    return rec.payloads(AlertRecorded, channel=channels.ALERT_DATA)


def manager(node: Node) -> AlertManagerPlugin:
    plugin = node.plugin("alert_manager")
    assert isinstance(plugin, AlertManagerPlugin)
    return plugin


async def stored(node: Node) -> list[dict[str, Any]]:
    """Every stored alert row, oldest first (what is written so far)."""
    store = node.store("alert_manager")
    assert store is not None
    return sorted(await list_alerts(store, limit=1000), key=lambda r: (r["first_ts_ns"], r["name"]))


async def stopped_rows(node: Node) -> list[dict[str, Any]]:
    """Stop the node (its plugin writes what it holds) and return the stored rows."""
    await node.stop()
    return await stored(node)


async def eventually(check: Callable[[], Any], *, timeout_s: float = 10.0) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def running_node(
    config: CorecConfig, *channels_: str, start_ns: int = T0
) -> AsyncIterator[tuple[Node, Recorder]]:
    """A started node whose spawned tasks run (the alert manager's timer ticks), its
    replay clock at ``start_ns``; stopped and closed afterwards."""
    node = Node(config, discover_plugins())
    assert isinstance(node.clock, ReplayClock)
    node.clock.advance_to(start_ns)
    recorder = Recorder(node.bus, *channels_)
    runner: asyncio.Task[str] | None = None
    try:
        await node.start()
        runner = asyncio.create_task(node.run(handle_signals=False))
        yield node, recorder
    finally:
        node.request_shutdown("test over")
        if runner is not None:
            await runner
        await node.stop()
        await node.close()


# -- a loopback webhook for Apprise's json:// -----------------------------------------------


@dataclass
class Hook:
    """What the webhook received: (method, path, JSON body) per request."""

    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.method, request.path, await request.json()))
        return web.json_response({"ok": True})


@pytest.fixture
async def hook(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Hook]:
    """An aiohttp server on loopback; ``HOOK_ENV`` holds the receiver's Apprise URL
    (``json://127.0.0.1:PORT/corec/alerts``: Apprise POSTs version/title/message/type)."""
    got = Hook()
    app = web.Application()
    app.router.add_route("*", "/corec/alerts", got.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    monkeypatch.setenv(HOOK_ENV, f"json://127.0.0.1:{port}/corec/alerts")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    try:
        yield got
    finally:
        await runner.cleanup()


def hook_config(make_config: MakeConfig, **section: Any) -> CorecConfig:
    return manager_config(
        make_config,
        receivers=[{"name": "hook", "urls_env": HOOK_ENV}],
        route=HOOK_ROUTE,
        **section,
    )


# -- deduplication ------------------------------------------------------------------------


async def test_the_same_alert_twice_is_one_row_with_two_occurrences(
    make_config: MakeConfig,
) -> None:
    async with started_node(manager_config(make_config), channels.ALERT_DATA) as (node, rec):
        labels = {"exchange": "binance", "symbol": "BTC/USDT"}
        await send(node, channels.ALERTS, alert(**labels), at_ns=T0)
        await send(node, channels.ALERTS, alert("price_move", "high", **labels), at_ns=T0 + 9 * S)

        first, second = recorded(rec)
        assert (first.occurrences, first.deduplicated, first.state) == (1, False, "firing")
        assert (second.occurrences, second.deduplicated, second.state) == (2, True, "firing")
        assert first.alert_id == second.alert_id
        assert first.fingerprint == second.fingerprint == fingerprint("price_move", labels)
        assert (first.severity, second.severity) == ("medium", "high")  # the latest wins
        assert first.labels == labels
        assert first.source == "test@x"
        assert first.muted_by is None
        health = node.health()["plugins"]["alert_manager"]
        assert {k: health[k] for k in ("received", "recorded", "deduplicated", "active")} == {
            "received": 2,
            "recorded": 1,
            "deduplicated": 1,
            "active": 1,
        }

        [row] = await stopped_rows(node)
        assert row["alert_id"] == first.alert_id
        assert row["occurrences"] == 2
        assert row["first_ts_ns"] == T0
        assert row["last_ts_ns"] == T0 + 9 * S
        assert row["name"] == "price_move"
        assert row["severity"] == "high"
        assert row["state"] == "firing"
        assert row["ends_ts_ns"] is None
        assert row["source"] == "test@x"
        assert row["labels"] == labels
        assert row["labels_json"] == json.dumps(labels, sort_keys=True)
        assert row["fingerprint"] == fingerprint("price_move", labels)
        assert row["resolvable"] is False


async def test_rows_are_written_behind_by_the_timer(make_config: MakeConfig) -> None:
    async with running_node(manager_config(make_config)) as (node, _):
        await send(node, channels.ALERTS, alert(symbol="BTC/USDT"), at_ns=T0)
        # the timer writes within its tick (at most TICK_MAX_S of wall time)
        [row] = await eventually(lambda: stored(node))
        assert row["occurrences"] == 1
        await send(node, channels.ALERTS, alert(symbol="BTC/USDT"), at_ns=T0 + S)
        assert plugin_module.WRITE_BEHIND_S * S < S  # the clock moved past the interval

        async def repeated() -> bool:
            return [r["occurrences"] for r in await stored(node)] == [2]

        await eventually(repeated)


async def test_different_labels_are_different_alerts(make_config: MakeConfig) -> None:
    async with started_node(manager_config(make_config), channels.ALERT_DATA) as (node, rec):
        await send(node, channels.ALERTS, alert(symbol="BTC/USDT"), at_ns=T0)
        await send(node, channels.ALERTS, alert(symbol="ETH/USDT"), at_ns=T0 + S)
        await send(
            node, channels.ALERTS, alert(symbol="BTC/USDT", direction="up"), at_ns=T0 + 2 * S
        )
        await send(node, channels.ALERTS, alert("stale_data", symbol="BTC/USDT"), at_ns=T0 + 3 * S)
        # label order does not matter
        await send(
            node, channels.ALERTS, alert(direction="up", symbol="BTC/USDT"), at_ns=T0 + 4 * S
        )
        assert [r.deduplicated for r in recorded(rec)] == [False, False, False, False, True]

        rows = await stopped_rows(node)
        assert [(r["name"], r["labels"], r["occurrences"]) for r in rows] == [
            ("price_move", {"symbol": "BTC/USDT"}, 1),
            ("price_move", {"symbol": "ETH/USDT"}, 1),
            ("price_move", {"direction": "up", "symbol": "BTC/USDT"}, 2),
            ("stale_data", {"symbol": "BTC/USDT"}, 1),
        ]
        assert len({r["fingerprint"] for r in rows}) == 4
        assert len({r["alert_id"] for r in rows}) == 4


# -- the shipped rules, through the bus -----------------------------------------------------


async def test_a_trade_loss_becomes_a_trade_loss_alert(make_config: MakeConfig) -> None:
    async with started_node(manager_config(make_config), channels.ALERT_DATA) as (node, rec):
        await send(
            node, channels.TRADING_RESULTS, trade("-250"), at_ns=T0, source="trading_execution@n"
        )
        await send(node, channels.TRADING_RESULTS, trade("-10", trade_id="t2"), at_ns=T0)

        [loss] = recorded(rec)
        assert loss.name == "trade_loss"
        assert loss.severity == "medium"  # -200 >= -250 > -500
        assert loss.source == "trading_execution@n"
        assert loss.labels == {"strategy": "sma", "symbol": "BTC/USDT", "trade_id": "t1"}
        assert loss.message == (
            "sma lost on long BTC/USDT (binance spot): realized PnL -250.00 USD after 0.00 USD "
            "fees (stop_loss; entry 10000, exit 9750)"
        )
        [row] = await stopped_rows(node)
        assert (row["name"], row["severity"], row["occurrences"]) == ("trade_loss", "medium", 1)


async def test_params_from_the_config_move_the_ladder(make_config: MakeConfig) -> None:
    config = manager_config(make_config, params={"trade_loss_high_usd": 240})
    async with started_node(config, channels.ALERT_DATA) as (node, rec):
        await send(node, channels.TRADING_RESULTS, trade("-250"), at_ns=T0)
        await send(node, channels.TRADING_RESULTS, trade("-239.99", trade_id="t2"), at_ns=T0)
        await send(node, channels.TRADING_RESULTS, trade("-240", trade_id="t3"), at_ns=T0)
        assert [(r.labels["trade_id"], r.severity) for r in recorded(rec)] == [
            ("t1", "high"),  # medium with the shipped 500
            ("t2", "medium"),
            ("t3", "high"),
        ]


def test_params_that_break_a_ladder_fail_config_loading(make_config: MakeConfig) -> None:
    # high at 200 USD would equal medium's 200: the ladder must strictly shrink
    with pytest.raises(ConfigError) as caught:
        manager_config(make_config, params={"trade_loss_high_usd": 200})
    assert "default.yaml:41: severity.levels: with <= thresholds must shrink" in str(caught.value)


async def test_a_large_withdrawal_becomes_an_alert(make_config: MakeConfig) -> None:
    async with started_node(manager_config(make_config), channels.ALERT_DATA) as (node, rec):
        await send(node, channels.CAPITAL_DATA, withdrawal("6000"), at_ns=T0)
        await send(node, channels.CAPITAL_DATA, withdrawal("999.99", "w2"), at_ns=T0)
        [big] = recorded(rec)
        assert big.name == "large_withdrawal"
        assert big.severity == "high"
        assert big.labels == {"member": "alice", "withdrawal_id": "w1"}
        assert big.message == "alice withdrew 6000 USD (6000 units at NAV per unit 1)"
        [row] = await stopped_rows(node)
        assert (row["name"], row["severity"]) == ("large_withdrawal", "high")


# -- resolution and expiry ------------------------------------------------------------------


async def test_a_breaker_that_closes_resolves_its_alert(make_config: MakeConfig) -> None:
    async with started_node(manager_config(make_config), channels.ALERT_DATA) as (node, rec):
        opened = alert("breaker_open", "high", resolvable=True, exchange="binance")
        closed = alert("breaker_open", "high", state="resolved", exchange="binance")
        await send(node, channels.ALERTS, opened, at_ns=T0)
        await send(node, channels.ALERTS, closed, at_ns=T0 + 30 * S)
        # a resolution of what does not fire is ignored: nothing stored, nothing published
        await send(node, channels.ALERTS, closed, at_ns=T0 + 40 * S)

        firing, resolved = recorded(rec)
        assert (firing.state, resolved.state) == ("firing", "resolved")
        assert resolved.alert_id == firing.alert_id
        assert resolved.deduplicated is False
        assert resolved.message == "breaker_open resolved"
        assert manager(node).health().details["resolved"] == 1
        assert manager(node).health().details["active"] == 0

        [row] = await stopped_rows(node)
        assert row["alert_id"] == firing.alert_id
        assert row["state"] == "resolved"
        assert row["ends_ts_ns"] == T0 + 30 * S
        assert row["resolvable"] is True
        assert row["occurrences"] == 1


async def test_a_resolvable_alert_does_not_expire_a_plain_one_does(
    make_config: MakeConfig,
) -> None:
    config = manager_config(make_config, resolve_timeout_s=60)
    async with started_node(config, channels.ALERT_DATA) as (node, rec):
        await send(node, channels.ALERTS, alert("breaker_open", resolvable=True, x="1"), at_ns=T0)
        await send(node, channels.ALERTS, alert("trade_loss", x="1"), at_ns=T0)
        await send(node, channels.ALERTS, alert("price_move", x="1"), at_ns=T0 + 50 * S)
        assert isinstance(node.clock, ReplayClock)
        node.clock.advance_to(T0 + 61 * S)  # trade_loss's timeout passed, price_move's not

        rows = {r["name"]: r for r in await stopped_rows(node)}
        assert rows["breaker_open"]["state"] == "firing"
        assert rows["breaker_open"]["ends_ts_ns"] is None
        assert rows["trade_loss"]["state"] == "expired"
        assert rows["trade_loss"]["ends_ts_ns"] == T0 + 61 * S
        assert rows["price_move"]["state"] == "firing"
        # an expiry is not notified and is no AlertRecorded; it is an AlertExpired
        assert [r.state for r in recorded(rec)] == ["firing"] * 3
        [expired] = rec.payloads(AlertExpired)
        assert (expired.name, expired.ends_ts_ns) == ("trade_loss", T0 + 61 * S)
        assert expired.alert_id == rows["trade_loss"]["alert_id"]


async def test_an_expired_alert_comes_back_as_a_new_firing(make_config: MakeConfig) -> None:
    config = manager_config(make_config, resolve_timeout_s=60)
    async with running_node(config, channels.ALERT_DATA) as (node, rec):
        await send(node, channels.ALERTS, alert(symbol="BTC/USDT"), at_ns=T0)
        assert isinstance(node.clock, ReplayClock)
        node.clock.advance_to(T0 + 60 * S)  # the timer expires it

        async def expired() -> bool:
            return [r["state"] for r in await stored(node)] == ["expired"]

        await eventually(expired)
        await send(node, channels.ALERTS, alert(symbol="BTC/USDT"), at_ns=T0 + 70 * S)
        first, again = recorded(rec)
        assert again.alert_id != first.alert_id
        assert (again.occurrences, again.deduplicated) == (1, False)


# -- notifications, end to end --------------------------------------------------------------


async def test_alerts_of_one_group_arrive_as_one_webhook_call(
    make_config: MakeConfig, hook: Hook
) -> None:
    config = hook_config(make_config)
    async with started_node(config, channels.ALERT_DATA) as (node, rec):
        await send(node, channels.ALERTS, alert(symbol="BTC/USDT"), at_ns=T0)
        await send(node, channels.ALERTS, alert(symbol="ETH/USDT"), at_ns=T0 + 5 * S)
        assert manager(node).notifications == 0  # group_wait (10 s) has not passed
        # the next receipt after group_wait flushes the group
        await send(node, channels.ALERTS, alert("stale_data", exchange="x"), at_ns=T0 + 11 * S)
        assert manager(node).notifications == 1

        def sent() -> list[NotificationAttempted]:
            return [
                a
                for a in rec.payloads(NotificationAttempted, channel=channels.ALERT_DATA)
                if a.outcome == "sent"
            ]

        [attempt] = await eventually(sent)
        [(method, path, body)] = hook.requests
        assert (method, path) == ("POST", "/corec/alerts")
        assert body["title"] == "[MEDIUM] price_move (2 alerts)"
        assert body["type"] == "warning"
        assert body["version"] == "1.0"
        # Apprise's json:// takes any format; the body is rendered.markdown for now (see
        # delivery.body_format_for, whose docstring says text for JSON)
        message = body["message"]
        assert "Firing (2)" in message
        assert message.count("price\\_move firing") + message.count("price_move firing") == 2
        assert "symbol=BTC/USDT" in message and "symbol=ETH/USDT" in message
        assert "since 2026-01-01 00:00:00 UTC" in message
        assert "since 2026-01-01 00:00:05 UTC" in message
        firing = [r for r in recorded(rec) if r.name == "price_move"]
        assert attempt.receiver == "hook"
        assert attempt.attempt == 1
        assert attempt.severity == "medium"
        assert attempt.error is None
        assert sorted(attempt.alert_ids) == sorted(r.alert_id for r in firing)

        store = node.store("alert_manager")
        assert store is not None

        def read(conn: Any) -> tuple[list[Any], list[Any]]:
            notes = conn.execute(select(m.notifications)).mappings().all()
            attempts = conn.execute(select(m.delivery_attempts)).mappings().all()
            return list(notes), list(attempts)

        notes, attempts = await store.read(read)
        [note] = notes
        assert note["notification_id"] == attempt.notification_id
        assert (note["receiver"], note["status"], note["attempts"]) == ("hook", "sent", 1)
        assert note["severity"] == "medium"
        assert note["created_ts_ns"] == T0 + 11 * S
        [row] = attempts
        assert (row["notification_id"], row["receiver"], row["attempt"], row["outcome"]) == (
            attempt.notification_id,
            "hook",
            1,
            "sent",
        )
        assert row["ts_ns"] == T0 + 11 * S
        assert row["error"] is None
        status = await node.status()
        assert status["alerts"]["notifications_pending"] == 0
    assert len(hook.requests) == 1  # stale_data's group was not due yet at the stop


async def test_the_timer_flushes_a_due_group_without_another_alert(
    make_config: MakeConfig, hook: Hook
) -> None:
    async with running_node(hook_config(make_config)) as (node, _):
        await send(node, channels.ALERTS, alert(symbol="BTC/USDT"), at_ns=T0)
        assert isinstance(node.clock, ReplayClock)
        node.clock.advance_to(T0 + 10 * S)
        await eventually(lambda: hook.requests)
        [(_, _, body)] = hook.requests
        assert body["title"] == "[MEDIUM] price_move (1 alert)"


# -- silences ---------------------------------------------------------------------------


async def test_a_silence_written_to_the_store_mutes_once_synced(
    make_config: MakeConfig, hook: Hook
) -> None:
    async with running_node(hook_config(make_config), channels.ALERT_DATA) as (node, rec):
        store = node.store("alert_manager")
        assert store is not None
        plugin = manager(node)
        # what `corec alerts silence --match alertname=price_move --for 1h` stores
        made = new_silence(["alertname=price_move"], 3600, T0, "alice", "maintenance")
        await records.add_silence(store, made, made.starts_ts_ns)
        assert isinstance(node.clock, ReplayClock)
        node.clock.advance_to(T0 + int(plugin_module.SYNC_INTERVAL_S * S))
        await eventually(
            lambda: made.silence_id in {s.silence_id for s in plugin.engine.silences()}
        )

        await send(node, channels.ALERTS, alert(symbol="BTC/USDT"), at_ns=T0 + 3 * S)
        await send(node, channels.ALERTS, alert("stale_data", exchange="x"), at_ns=T0 + 4 * S)
        muted, other = recorded(rec)
        assert muted.muted_by == f"silence:{made.silence_id}"
        assert other.muted_by is None
        assert plugin.health().details["muted"] == 1
        # past price_move's group_wait: the group ticks, everything in it is muted
        await send(node, channels.ALERTS, alert("stale_data", exchange="x"), at_ns=T0 + 13 * S)
        assert await count_rows(store, m.notifications) == 0
        # stale_data's group is due at T0 + 14 s and is not muted
        await send(node, channels.ALERTS, alert("stale_data", exchange="y"), at_ns=T0 + 15 * S)
        await eventually(lambda: hook.requests)
        assert [body["title"] for _, _, body in hook.requests] == ["[MEDIUM] stale_data (2 alerts)"]

        rows = {r["name"]: r for r in await stopped_rows(node)}
        assert rows["price_move"]["muted_by"] == f"silence:{made.silence_id}"
        assert rows["stale_data"]["muted_by"] is None


async def test_plugin_silence_mutes_at_once_and_is_published(make_config: MakeConfig) -> None:
    async with started_node(manager_config(make_config), channels.ALERT_DATA) as (node, rec):
        assert isinstance(node.clock, ReplayClock)
        node.clock.advance_to(T0)
        made = await manager(node).silence(
            ["alertname=price_move", "symbol=~BTC.*"], 600, by="bob", comment="noisy"
        )
        assert (made.starts_ts_ns, made.ends_ts_ns) == (T0, T0 + 600 * S)
        [changed] = rec.payloads(SilenceChanged)
        assert changed == SilenceChanged(
            silence_id=made.silence_id,
            matchers=["alertname=price_move", "symbol=~BTC.*"],
            starts_ts_ns=T0,
            ends_ts_ns=T0 + 600 * S,
            created_by="bob",
            comment="noisy",
        )
        await send(node, channels.ALERTS, alert(symbol="BTC/USDT"), at_ns=T0 + S)
        await send(node, channels.ALERTS, alert(symbol="ETH/USDT"), at_ns=T0 + S)
        await send(node, channels.ALERTS, alert(symbol="BTC/USDT"), at_ns=T0 + 600 * S)
        assert [r.muted_by for r in recorded(rec)] == [f"silence:{made.silence_id}", None, None]
        store = node.store("alert_manager")
        assert store is not None
        [kept] = await records.load_silences(store)
        assert kept == made
        with pytest.raises(ValueError, match="expected LABEL=VALUE"):
            await manager(node).silence(["nonsense"], 60, by="bob")


async def test_a_muted_alert_keeps_its_muted_by_when_it_expires_unwritten(
    make_config: MakeConfig,
) -> None:
    config = manager_config(make_config, resolve_timeout_s=60)
    async with started_node(config) as (node, _):
        assert isinstance(node.clock, ReplayClock)
        node.clock.advance_to(T0)
        made = await manager(node).silence(["alertname=price_move"], 600, by="bob")
        await send(node, channels.ALERTS, alert(symbol="BTC/USDT"), at_ns=T0)
        node.clock.advance_to(T0 + 61 * S)
        [row] = await stopped_rows(node)
        assert row["state"] == "expired"
        assert row["muted_by"] == f"silence:{made.silence_id}"


# -- bad input ----------------------------------------------------------------------------


async def test_an_invalid_payload_on_alerts_goes_to_dead_letter(make_config: MakeConfig) -> None:
    config = manager_config(make_config)
    async with started_node(config, channels.DEAD_LETTER, channels.ALERT_DATA) as (node, rec):
        batch = TickerBatch(
            tickers=(
                Ticker(
                    exchange="binance",
                    market="spot",
                    symbol="BTC/USDT",
                    last=D(1),
                    exchange_ts_ns=T0,
                    received_ts_ns=T0,
                ),
            )
        )
        await send(node, channels.ALERTS, batch, at_ns=T0)
        await send(node, channels.ALERTS, trade("-5000"), at_ns=T0)

        letters = rec.payloads(DeadLetter)
        assert [(d.channel, d.event_type, d.handler, d.error_type) for d in letters] == [
            ("alerts", "ticker_batch", "alert_manager", "InvalidEvent"),
            ("alerts", "trade_closed", "alert_manager", "InvalidEvent"),
        ]
        assert letters[1].error == "alerts carries TradeClosed, expected Alert"
        assert node.health()["bus"]["dead_letters"] == {"alerts": 2}
        assert recorded(rec) == []  # a TradeClosed on alerts is not a rule's input
        assert await stopped_rows(node) == []


# -- restart --------------------------------------------------------------------------------


async def test_a_firing_alert_survives_a_restart(make_config: MakeConfig, db_url: str) -> None:
    config = manager_config(make_config, database_url=db_url)
    async with started_node(config, channels.ALERT_DATA) as (node, rec):
        await send(node, channels.ALERTS, alert(symbol="BTC/USDT"), at_ns=T0)
        await send(node, channels.ALERTS, alert(symbol="BTC/USDT"), at_ns=T0 + 10 * S)
        opened = alert("breaker_open", "high", resolvable=True, exchange="kraken")
        await send(node, channels.ALERTS, opened, at_ns=T0 + 20 * S)
        first, _, breaker = recorded(rec)

    async with running_node(config, channels.ALERT_DATA, start_ns=T0 + 60 * S) as (node, rec):
        assert {a.alert_id for a in manager(node).engine.active()} == {
            first.alert_id,
            breaker.alert_id,
        }
        await send(node, channels.ALERTS, alert(symbol="BTC/USDT"), at_ns=T0 + 70 * S)
        closed = alert("breaker_open", "high", state="resolved", exchange="kraken")
        await send(node, channels.ALERTS, closed, at_ns=T0 + 80 * S)
        again, resolved = recorded(rec)
        assert (again.alert_id, again.occurrences, again.deduplicated) == (
            first.alert_id,
            3,
            True,
        )
        assert (resolved.alert_id, resolved.state) == (breaker.alert_id, "resolved")
        node.request_shutdown("done")
        rows = {r["name"]: r for r in await stopped_rows(node)}
        assert len(rows) == 2
        assert rows["price_move"]["alert_id"] == first.alert_id
        assert rows["price_move"]["occurrences"] == 3
        assert rows["price_move"]["first_ts_ns"] == T0
        assert rows["price_move"]["last_ts_ns"] == T0 + 70 * S
        assert rows["breaker_open"]["state"] == "resolved"
        assert rows["breaker_open"]["ends_ts_ns"] == T0 + 80 * S


async def test_a_repeat_that_says_resolvable_is_kept_across_a_restart(
    make_config: MakeConfig, db_url: str
) -> None:
    config = manager_config(make_config, resolve_timeout_s=60, database_url=db_url)
    async with running_node(config) as (node, _):
        await send(node, channels.ALERTS, alert("breaker_open", exchange="x"), at_ns=T0)
        await eventually(lambda: stored(node))  # the first receipt is written
        repeat = alert("breaker_open", resolvable=True, exchange="x")
        await send(node, channels.ALERTS, repeat, at_ns=T0 + S)
        [row] = await stopped_rows(node)
        assert (row["resolvable"], row["occurrences"]) == (True, 2)

    # long past resolve_timeout_s: still firing, since it waits for its resolution
    async with started_node(config) as (node, _):
        assert isinstance(node.clock, ReplayClock)
        node.clock.advance_to(T0 + 3600 * S)
        [row] = await stopped_rows(node)
        assert (row["state"], row["ends_ts_ns"]) == ("firing", None)


async def test_a_restart_does_not_notify_what_was_notified_before(
    make_config: MakeConfig, hook: Hook, tmp_path: Path
) -> None:
    config = hook_config(make_config)
    async with started_node(config) as (node, _):
        await send(node, channels.ALERTS, alert(symbol="BTC/USDT"), at_ns=T0)
        await send(node, channels.ALERTS, alert("stale_data", exchange="x"), at_ns=T0 + 11 * S)
        await eventually(lambda: hook.requests)

    async with running_node(config, start_ns=T0 + 60 * S) as (node, _):
        store = node.store("alert_manager")
        assert store is not None
        # stale_data (never notified) goes out at once; price_move is not told again
        await eventually(lambda: len(hook.requests) >= 2)
        await send(node, channels.ALERTS, alert("other", exchange="x"), at_ns=T0 + 61 * S)
        await asyncio.sleep(0.3)
        assert [body["title"] for _, _, body in hook.requests] == [
            "[MEDIUM] price_move (1 alert)",
            "[MEDIUM] stale_data (1 alert)",
        ]


# -- configuration ----------------------------------------------------------------------


def test_a_rule_file_with_an_unknown_field_fails_config_loading(
    make_config: MakeConfig, tmp_path: Path
) -> None:
    rules = tmp_path / "my-rules.yaml"
    rules.write_text(
        "rules:\n"
        "  - name: big_trade\n"
        "    channel: trading_results\n"
        "    type: trade_closed\n"
        "    severity: low\n"
        "    colour: red\n"
        "    message: a trade\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        manager_config(make_config, rules_files=[str(rules)])
    text = str(caught.value)
    assert f"{rules}:6:" in text
    assert "unknown key 'colour'" in text


def test_an_unknown_param_fails_config_loading(make_config: MakeConfig) -> None:
    with pytest.raises(ConfigError, match="trade_loss_huge_usd"):
        manager_config(make_config, params={"trade_loss_huge_usd": 1})


# -- status -------------------------------------------------------------------------------


async def test_read_status_counts_by_severity_and_firing(make_config: MakeConfig) -> None:
    config = manager_config(make_config)
    async with started_node(config) as (node, _):
        await send(node, channels.ALERTS, alert("a", "critical"), at_ns=T0)
        await send(node, channels.ALERTS, alert("a", "critical"), at_ns=T0 + S)  # a repeat
        await send(node, channels.ALERTS, alert("b", "high", resolvable=True), at_ns=T0 + S)
        await send(node, channels.ALERTS, alert("c", "high"), at_ns=T0 + S)
        await send(node, channels.ALERTS, alert("d", "low"), at_ns=T0 + S)
        await send(node, channels.ALERTS, alert("b", "high", state="resolved"), at_ns=T0 + 2 * S)
        await node.stop()

        status = await node.status()
        assert status == {
            "alerts": {
                "total": 4,
                "by_severity": {"critical": 1, "high": 2, "medium": 0, "low": 1},
                "firing": 3,
                "notifications_pending": 0,
            }
        }
        store = node.store("alert_manager")
        assert store is not None
        critical = await list_alerts(store, severity="critical")
        assert [(r["name"], r["occurrences"]) for r in critical] == [("a", 2)]
        assert [r["name"] for r in await list_alerts(store, state="resolved")] == ["b"]

    empty = await AlertManagerPlugin.read_status(None, config.sections["alert_manager"])  # type: ignore[arg-type]
    assert empty == {
        "total": 0,
        "by_severity": {"critical": 0, "high": 0, "medium": 0, "low": 0},
        "firing": 0,
        "notifications_pending": 0,
    }


async def test_labels_named_like_log_fields_are_recorded(make_config: MakeConfig) -> None:
    # capital_pool's macro_risk carries a label "state"; it used to clash with the log
    # call's own "state" and send the alert to dead_letter instead of alert_data.
    config = manager_config(make_config)
    async with started_node(config, channels.ALERT_DATA, channels.DEAD_LETTER) as (node, rec):
        labelled = Alert(
            name="macro_risk",
            message="VIX above 20",
            severity="medium",
            labels={"state": "high_vix", "severity": "x", "alert": "y", "source": "z"},
        )
        await send(node, channels.ALERTS, labelled, at_ns=T0)
        assert [(r.name, r.labels["state"]) for r in recorded(rec)] == [("macro_risk", "high_vix")]
        assert rec.payloads(channel=channels.DEAD_LETTER) == []
