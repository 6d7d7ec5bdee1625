"""alert_manager in a real node on a replay clock: dedup, rules, storage, restart."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from corec.core import channels
from corec.core.clock import NS_PER_S, ReplayClock
from corec.core.config import CorecConfig
from corec.core.events import Payload, make_event
from corec.core.notices import Alert, DeadLetter, Severity
from corec.core.nucleus import Node
from corec.core.registry import discover_plugins
from corec.messages.alert_data import AlertRecorded
from corec.messages.capital_data import ContributionRecorded, WithdrawalRecorded
from corec.messages.exchange_data import Ticker, TickerBatch
from corec.messages.trading_results import TradeClosed
from corec.plugins.alert_manager import models as m
from corec.plugins.alert_manager.manager import fingerprint
from corec.plugins.alert_manager.plugin import AlertManagerPlugin, list_alerts
from tests.harness import Recorder, count_rows, started_node

D = Decimal
MakeConfig = Callable[..., CorecConfig]
T0 = 1_767_225_600 * NS_PER_S  # 2026-01-01T00:00:00Z
S = NS_PER_S


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


def alert(name: str = "price_move", severity: Severity = "medium", **labels: str) -> Alert:
    return Alert(name=name, message=f"{name} happened", severity=severity, labels=labels)


async def rows(node: Node) -> list[dict[str, Any]]:
    store = node.store("alert_manager")
    assert store is not None
    return sorted(await list_alerts(store, limit=1000), key=lambda r: r["first_ts_ns"])


def recorded(rec: Recorder) -> list[AlertRecorded]:
    return rec.payloads(AlertRecorded, channel=channels.ALERT_DATA)


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


# -- deduplication ------------------------------------------------------------------------


async def test_same_alert_within_ttl_is_one_row_with_occurrences(make_config: MakeConfig) -> None:
    config = manager_config(make_config, dedup_ttl_s=600)
    async with started_node(config, channels.ALERT_DATA) as (node, rec):
        labels = {"exchange": "binance", "symbol": "BTC/USDT"}
        await send(node, channels.ALERTS, alert(**labels), at_ns=T0)
        await send(node, channels.ALERTS, alert(**labels), at_ns=T0 + 599 * S)

        [row] = await rows(node)
        assert row["occurrences"] == 2
        assert row["first_ts_ns"] == T0
        assert row["last_ts_ns"] == T0 + 599 * S
        assert row["name"] == "price_move"
        assert row["severity"] == "medium"
        assert row["source"] == "test@x"
        assert row["labels"] == labels
        assert row["labels_json"] == json.dumps(labels, sort_keys=True)
        assert row["fingerprint"] == fingerprint("price_move", labels)

        first, second = recorded(rec)
        assert (first.occurrences, first.deduplicated) == (1, False)
        assert (second.occurrences, second.deduplicated) == (2, True)
        assert first.alert_id == second.alert_id == row["alert_id"]
        assert first.fingerprint == row["fingerprint"]
        assert first.labels == labels
        assert first.source == "test@x"
        assert node.health()["plugins"]["alert_manager"] == {
            "state": "running",
            "status": "ok",
            "error": None,
            "received": 2,
            "recorded": 1,
            "deduplicated": 1,
        }


async def test_after_the_ttl_the_same_alert_is_a_new_row(make_config: MakeConfig) -> None:
    config = manager_config(make_config, dedup_ttl_s=600)
    async with started_node(config, channels.ALERT_DATA) as (node, rec):
        await send(node, channels.ALERTS, alert(symbol="BTC/USDT"), at_ns=T0)
        await send(node, channels.ALERTS, alert(symbol="BTC/USDT"), at_ns=T0 + 600 * S)
        await send(node, channels.ALERTS, alert(symbol="BTC/USDT"), at_ns=T0 + 700 * S)

        first, second = await rows(node)
        assert (first["first_ts_ns"], first["occurrences"]) == (T0, 1)
        assert (second["first_ts_ns"], second["occurrences"]) == (T0 + 600 * S, 2)
        assert second["last_ts_ns"] == T0 + 700 * S
        assert first["alert_id"] != second["alert_id"]
        assert first["fingerprint"] == second["fingerprint"]
        assert [r.deduplicated for r in recorded(rec)] == [False, False, True]


async def test_dedup_uses_the_node_clock_not_the_wall_clock(make_config: MakeConfig) -> None:
    config = manager_config(make_config, dedup_ttl_s=1)
    async with started_node(config) as (node, _):
        # the wall clock moves on between these, the replay clock does not
        await send(node, channels.ALERTS, alert(), at_ns=T0)
        await send(node, channels.ALERTS, alert())
        await send(node, channels.ALERTS, alert(), at_ns=T0 + S - 1)
        [row] = await rows(node)
        assert row["occurrences"] == 3


async def test_different_labels_are_separate_rows(make_config: MakeConfig) -> None:
    async with started_node(manager_config(make_config)) as (node, _):
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

        stored = await rows(node)
        assert [(r["name"], r["labels"], r["occurrences"]) for r in stored] == [
            ("price_move", {"symbol": "BTC/USDT"}, 1),
            ("price_move", {"symbol": "ETH/USDT"}, 1),
            ("price_move", {"direction": "up", "symbol": "BTC/USDT"}, 2),
            ("stale_data", {"symbol": "BTC/USDT"}, 1),
        ]
        assert len({r["fingerprint"] for r in stored}) == 4


async def test_severity_overrides_by_name(make_config: MakeConfig) -> None:
    config = manager_config(
        make_config, severity_overrides={"price_move": "critical", "stale_data": "low"}
    )
    async with started_node(config, channels.ALERT_DATA) as (node, rec):
        await send(node, channels.ALERTS, alert("price_move", "medium"), at_ns=T0)
        await send(node, channels.ALERTS, alert("stale_data", "high"), at_ns=T0)
        await send(node, channels.ALERTS, alert("breaker_open", "high"), at_ns=T0)

        assert [(r.name, r.severity) for r in recorded(rec)] == [
            ("price_move", "critical"),
            ("stale_data", "low"),
            ("breaker_open", "high"),
        ]
        assert sorted((r["name"], r["severity"]) for r in await rows(node)) == [
            ("breaker_open", "high"),
            ("price_move", "critical"),
            ("stale_data", "low"),
        ]


# -- rules over trading_results and capital_data ------------------------------------------


@pytest.mark.parametrize(
    ("pnl", "severity"),
    [
        ("-49.99", None),
        ("-50", "low"),
        ("-199.99", "low"),
        ("-200", "medium"),
        ("-499.99999999", "medium"),
        ("-500", "high"),
        ("-1999.99", "high"),
        ("-2000", "critical"),
        ("-9000", "critical"),
        ("0", None),
        ("1500", None),
    ],
)
async def test_trade_loss_severity_at_thresholds(
    make_config: MakeConfig, pnl: str, severity: str | None
) -> None:
    async with started_node(manager_config(make_config), channels.ALERT_DATA) as (node, rec):
        await send(
            node, channels.TRADING_RESULTS, trade(pnl), at_ns=T0, source="trading_execution@n"
        )

        got = recorded(rec)
        if severity is None:
            assert got == []
            assert await rows(node) == []
            return
        [loss] = got
        assert loss.name == "trade_loss"
        assert loss.severity == severity
        assert loss.source == "trading_execution@n"
        assert loss.labels == {"strategy": "sma", "symbol": "BTC/USDT", "trade_id": "t1"}
        cents = D(pnl).copy_negate().quantize(D("0.01"))
        assert loss.message.startswith(f"sma lost {cents} USD on long BTC/USDT (stop_loss;")
        [row] = await rows(node)
        assert row["severity"] == severity


async def test_trade_loss_thresholds_are_configurable(make_config: MakeConfig) -> None:
    config = manager_config(make_config, trade_loss_usd={"high": "10"})
    async with started_node(config, channels.ALERT_DATA) as (node, rec):
        await send(node, channels.TRADING_RESULTS, trade("-9.99"), at_ns=T0)
        await send(node, channels.TRADING_RESULTS, trade("-10", trade_id="t2"), at_ns=T0)
        await send(node, channels.TRADING_RESULTS, trade("-5000", trade_id="t3"), at_ns=T0)
        assert [(r.labels["trade_id"], r.severity) for r in recorded(rec)] == [
            ("t2", "high"),
            ("t3", "high"),
        ]


@pytest.mark.parametrize(
    ("amount", "severity"),
    [("999.99", None), ("1000", "medium"), ("4999.99", "medium"), ("5000", "high"),
     ("20000", "critical")],
)  # fmt: skip
async def test_large_withdrawal(make_config: MakeConfig, amount: str, severity: str | None) -> None:
    async with started_node(manager_config(make_config), channels.ALERT_DATA) as (node, rec):
        await send(node, channels.CAPITAL_DATA, withdrawal(amount), at_ns=T0)
        # a contribution of any size is no alert
        contribution = ContributionRecorded(
            contribution_id="c1",
            member="alice",
            amount_usd=D(50000),
            units=D(50000),
            nav_per_unit=D(1),
        )
        await send(node, channels.CAPITAL_DATA, contribution, at_ns=T0)

        got = recorded(rec)
        if severity is None:
            assert got == []
            return
        [big] = got
        assert big.name == "large_withdrawal"
        assert big.severity == severity
        assert big.labels == {"member": "alice", "withdrawal_id": "w1"}
        assert big.message == f"alice withdrew {amount} USD ({amount} units)"


# -- bad input ------------------------------------------------------------------------------


async def test_invalid_payload_on_alerts_goes_to_dead_letter(make_config: MakeConfig) -> None:
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

        [letter] = rec.payloads(DeadLetter)
        assert letter.channel == channels.ALERTS
        assert letter.handler == "alert_manager"
        assert letter.event_type == "ticker_batch"
        assert letter.error_type == "InvalidEvent"
        assert recorded(rec) == []
        assert await rows(node) == []


# -- restart and status ---------------------------------------------------------------------


async def test_restart_keeps_dedup(make_config: MakeConfig) -> None:
    config = manager_config(make_config, dedup_ttl_s=600)
    async with started_node(config) as (node, _):
        await send(node, channels.ALERTS, alert(symbol="BTC/USDT"), at_ns=T0)
        await send(node, channels.ALERTS, alert(symbol="ETH/USDT"), at_ns=T0 + 100 * S)
        [first, _eth] = await rows(node)

    node = Node(config, discover_plugins())
    assert isinstance(node.clock, ReplayClock)
    node.clock.advance_to(T0 + 550 * S)  # restart within the TTL of both firings
    rec = Recorder(node.bus, channels.ALERT_DATA)
    await node.start()
    try:
        await send(node, channels.ALERTS, alert(symbol="BTC/USDT"), at_ns=T0 + 599 * S)
        stored = await rows(node)
        assert len(stored) == 2
        assert stored[0]["alert_id"] == first["alert_id"]
        assert stored[0]["occurrences"] == 2
        assert stored[0]["last_ts_ns"] == T0 + 599 * S
        [again] = recorded(rec)
        assert (again.alert_id, again.occurrences, again.deduplicated) == (
            first["alert_id"],
            2,
            True,
        )
        # past the BTC firing's TTL: a new row; ETH's firing (T0 + 100 s) still holds
        await send(node, channels.ALERTS, alert(symbol="BTC/USDT"), at_ns=T0 + 600 * S)
        await send(node, channels.ALERTS, alert(symbol="ETH/USDT"), at_ns=T0 + 650 * S)
        stored = await rows(node)
        assert [(r["labels"]["symbol"], r["occurrences"]) for r in stored] == [
            ("BTC/USDT", 2),
            ("ETH/USDT", 2),
            ("BTC/USDT", 1),
        ]
        store = node.store("alert_manager")
        assert store is not None
        assert await count_rows(store, m.alerts) == 3
    finally:
        await node.stop()
        await node.close()


async def test_read_status_counts_rows_by_severity(make_config: MakeConfig) -> None:
    config = manager_config(make_config)
    async with started_node(config) as (node, _):
        await send(node, channels.ALERTS, alert("a", "critical"), at_ns=T0)
        await send(node, channels.ALERTS, alert("a", "critical"), at_ns=T0 + S)  # a repeat
        await send(node, channels.ALERTS, alert("b", "high"), at_ns=T0 + S)
        await send(node, channels.ALERTS, alert("c", "high"), at_ns=T0 + S)
        await send(node, channels.ALERTS, alert("d", "low"), at_ns=T0 + S)

        status = await node.status()
        assert status == {
            "alerts": {
                "total": 4,
                "by_severity": {"critical": 1, "high": 2, "medium": 0, "low": 1},
            }
        }
        store = node.store("alert_manager")
        critical = await list_alerts(store, severity="critical")  # type: ignore[arg-type]
        assert [(r["name"], r["occurrences"]) for r in critical] == [("a", 2)]

    empty = await AlertManagerPlugin.read_status(None, config.sections["alert_manager"])  # type: ignore[arg-type]
    assert empty == {
        "total": 0,
        "by_severity": {"critical": 0, "high": 0, "medium": 0, "low": 0},
    }
