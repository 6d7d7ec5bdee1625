"""The alert engine on a controllable clock (plain ints): Alertmanager's dispatcher
semantics (dedup, group_wait / group_interval / repeat_interval, resolution,
resolve_timeout, inhibition, silences, acks, routing, restore)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from corec.core.clock import NS_PER_S
from corec.core.notices import Alert, Severity
from corec.plugins.alert_manager.config import DEFAULT_INHIBIT_RULES, RouteConfig
from corec.plugins.alert_manager.engine import AlertEngine
from corec.plugins.alert_manager.routing import Route, build_route
from corec.plugins.alert_manager.types import (
    InhibitRule,
    Matcher,
    Notification,
    Silence,
    fingerprint,
)

S = NS_PER_S
T0 = 1_767_225_600 * S  # 2026-01-01T00:00:00Z
SRC = "test@node-1"

DEFAULT_ROUTE: dict[str, Any] = {
    "receiver": "log",
    "group_by": ["alertname"],
    "group_wait_s": 30,
    "group_interval_s": 300,
    "repeat_interval_s": 3600,
}


def make_engine(
    route: Mapping[str, Any] | None = None,
    *,
    rules: Sequence[InhibitRule] = (),
    send_resolved: Mapping[str, bool] | None = None,
    resolve_timeout_s: float = 300.0,
    first_id: int = 1,
) -> AlertEngine:
    counter = itertools.count(first_id)
    return AlertEngine(
        route=build_route(RouteConfig.model_validate(route or DEFAULT_ROUTE)),
        inhibit_rules=rules,
        resolve_timeout_s=resolve_timeout_s,
        send_resolved=send_resolved or {},
        new_id=lambda: f"id{next(counter):04d}",
    )


def alert(
    name: str,
    severity: Severity = "medium",
    *,
    resolved: bool = False,
    message: str = "",
    **labels: str,
) -> Alert:
    return Alert(
        name=name,
        message=message or f"{name} {labels}",
        severity=severity,
        labels=labels,
        state="resolved" if resolved else "firing",
    )


def run_until(engine: AlertEngine, until_ns: int) -> list[Notification]:
    """Flush at every due tick up to and including ``until_ns`` (the plugin's timer)."""
    out: list[Notification] = []
    while (due := engine.next_flush_ns()) is not None and due <= until_ns:
        out.extend(engine.flush(due))
    return out


def summary(notes: Sequence[Notification]) -> list[tuple[int, str, list[str], list[str]]]:
    """(seconds after T0, receiver, firing alert ids, resolved alert ids)."""
    return [
        (
            (n.created_ts_ns - T0) // S,
            n.receiver,
            [a.alert_id for a in n.firing],
            [a.alert_id for a in n.resolved],
        )
        for n in notes
    ]


# -- deduplication ---------------------------------------------------------------------


def test_duplicates_count_occurrences_and_are_not_renotified() -> None:
    engine = make_engine()
    first = engine.receive(alert("stale_data", exchange="binance"), SRC, T0)
    assert first.new_firing and not first.duplicate and first.muted_by is None
    assert first.instance is not None
    assert first.instance.alert_id == "id0001"
    assert first.instance.fingerprint == fingerprint("stale_data", {"exchange": "binance"})

    again = engine.receive(
        alert("stale_data", "high", message="still stale", exchange="binance"), SRC, T0 + 5 * S
    )
    third = engine.receive(alert("stale_data", "low", exchange="binance"), "other@n2", T0 + 9 * S)
    assert again.duplicate and not again.new_firing
    inst = third.instance
    assert inst is not None
    assert (inst.alert_id, inst.occurrences, inst.updated_ts_ns, inst.starts_ts_ns) == (
        "id0001",
        3,
        T0 + 9 * S,
        T0,
    )
    assert (inst.severity, inst.source, inst.state) == ("low", "other@n2", "firing")
    assert again.instance is not None and again.instance.message == "still stale"
    assert engine.active() == [inst]

    notes = run_until(engine, T0 + 3000 * S)
    assert summary(notes) == [(30, "log", ["id0001"], [])]
    assert notes[0].firing[0].occurrences == 3
    assert notes[0].notification_id == "id0002"
    assert notes[0].group_key == '0:{alertname="stale_data"}'
    assert notes[0].group_labels == {"alertname": "stale_data"}


# -- group_wait, group_interval, repeat_interval ---------------------------------------


def test_group_wait_batches_alerts_into_one_notification() -> None:
    engine = make_engine()
    a = engine.receive(alert("stale_data", "medium", exchange="binance"), SRC, T0).instance
    b = engine.receive(alert("stale_data", "high", exchange="kraken"), SRC, T0 + 10 * S).instance
    assert a is not None and b is not None
    assert engine.next_flush_ns() == T0 + 30 * S
    assert engine.flush(T0 + 29 * S) == []
    notes = engine.flush(T0 + 30 * S)
    assert summary(notes) == [(30, "log", [a.alert_id, b.alert_id], [])]
    assert notes[0].severity == "high"
    assert notes[0].created_ts_ns == T0 + 30 * S
    assert engine.next_flush_ns() == T0 + 330 * S  # next tick: + group_interval


def test_a_change_is_notified_at_the_next_group_interval() -> None:
    engine = make_engine()
    engine.receive(alert("stale_data", exchange="binance"), SRC, T0)
    assert summary(run_until(engine, T0 + 30 * S)) == [(30, "log", ["id0001"], [])]
    late = engine.receive(alert("stale_data", exchange="okx"), SRC, T0 + 100 * S).instance
    assert late is not None and late.alert_id == "id0003"
    assert run_until(engine, T0 + 329 * S) == []
    assert summary(run_until(engine, T0 + 330 * S)) == [(330, "log", ["id0001", "id0003"], [])]
    # no change after that: nothing until the repeat interval (3600 s after 330)
    assert run_until(engine, T0 + 3929 * S) == []
    # another alertname is another group with its own group_wait
    engine.receive(alert("breaker_open", exchange="okx"), SRC, T0 + 1000 * S)
    assert summary(run_until(engine, T0 + 1030 * S)) == [(1030, "log", ["id0005"], [])]


def test_repeat_interval_renotifies_and_acks_suppress_it() -> None:
    engine = make_engine()
    engine.receive(alert("stale_data", exchange="binance"), SRC, T0)  # id0001
    notes = run_until(engine, T0 + 3630 * S)
    assert summary(notes) == [(30, "log", ["id0001"], []), (3630, "log", ["id0001"], [])]

    acked = engine.ack("id0001", "alice", T0 + 4000 * S)
    assert acked.alert_id == "id0001"
    assert engine.acks() == {"id0001": (T0 + 4000 * S, "alice")}
    engine.ack("id0001", "bob", T0 + 4001 * S)  # the first ack stays
    assert engine.acks() == {"id0001": (T0 + 4000 * S, "alice")}
    assert run_until(engine, T0 + 9099 * S) == []  # all acked: no repeat at 7230

    # a new alert is a change: the acked one is part of that notification ...
    engine.receive(alert("stale_data", exchange="kraken"), SRC, T0 + 9100 * S)  # id0004
    notes = run_until(engine, T0 + 9400 * S)
    assert summary(notes) == [(9330, "log", ["id0001", "id0004"], [])]
    # ... but not of the repeat
    assert summary(run_until(engine, T0 + 12930 * S)) == [(12930, "log", ["id0004"], [])]


def test_ack_errors() -> None:
    engine = make_engine(resolve_timeout_s=60)
    engine.receive(alert("stale_data", exchange="binance"), SRC, T0)
    with pytest.raises(KeyError, match="no such active alert"):
        engine.ack("nope", "alice", T0)
    engine.receive(alert("stale_data", resolved=True, exchange="binance"), SRC, T0 + S)
    with pytest.raises(ValueError, match=f"resolved at {T0 + S} ns"):
        engine.ack("id0001", "alice", T0 + 2 * S)
    engine.receive(alert("stale_data", exchange="okx"), SRC, T0 + 10 * S)  # id0002
    assert [a.alert_id for a in engine.expire(T0 + 70 * S)] == ["id0002"]
    with pytest.raises(ValueError, match="expired"):
        engine.ack("id0002", "alice", T0 + 71 * S)


# -- resolution ------------------------------------------------------------------------

FANOUT_ROUTE: dict[str, Any] = {
    **DEFAULT_ROUTE,
    "routes": [
        {"receiver": "chat", "continue": True},
        {"receiver": "email"},
    ],
}


def test_resolved_notifications_go_only_to_receivers_that_want_them() -> None:
    engine = make_engine(FANOUT_ROUTE, send_resolved={"chat": True, "email": False})
    engine.receive(alert("breaker_open", "high", exchange="binance"), SRC, T0)  # id0001
    engine.receive(alert("breaker_open", "critical", exchange="kraken"), SRC, T0 + S)  # id0002
    assert summary(run_until(engine, T0 + 30 * S)) == [
        (30, "chat", ["id0001", "id0002"], []),
        (30, "email", ["id0001", "id0002"], []),
    ]

    resolved = engine.receive(
        alert("breaker_open", resolved=True, message="closed", exchange="kraken"), SRC, T0 + 60 * S
    )
    assert resolved.resolved and resolved.instance is not None
    assert resolved.instance.state == "resolved"
    assert resolved.instance.ends_ts_ns == T0 + 60 * S
    assert resolved.instance.message == "closed"
    assert resolved.instance.severity == "critical"  # the firing's severity stays
    assert [a.alert_id for a in engine.active()] == ["id0001"]

    notes = run_until(engine, T0 + 330 * S)
    assert summary(notes) == [(330, "chat", ["id0001"], ["id0002"])]
    assert notes[0].severity == "high"  # highest among firing

    engine.receive(alert("breaker_open", resolved=True, exchange="binance"), SRC, T0 + 400 * S)
    notes = run_until(engine, T0 + 630 * S)
    assert summary(notes) == [(630, "chat", [], ["id0001"])]
    assert notes[0].severity == "high"  # among resolved when none fire
    assert engine.next_flush_ns() is None  # empty groups are dropped
    assert engine.active() == []


def test_resolved_alert_that_is_not_firing_is_ignored() -> None:
    engine = make_engine()
    got = engine.receive(alert("breaker_open", resolved=True, exchange="binance"), SRC, T0)
    assert got.ignored and got.instance is None
    assert not (got.new_firing or got.duplicate or got.resolved)
    assert engine.active() == [] and engine.next_flush_ns() is None


def test_alert_resolved_within_group_wait_is_never_notified() -> None:
    engine = make_engine(send_resolved={"log": True})
    engine.receive(alert("breaker_open", exchange="binance"), SRC, T0)
    engine.receive(alert("breaker_open", resolved=True, exchange="binance"), SRC, T0 + 10 * S)
    assert run_until(engine, T0 + 10_000 * S) == []
    assert engine.next_flush_ns() is None


def test_refiring_after_resolution_is_a_new_firing() -> None:
    engine = make_engine()
    engine.receive(alert("breaker_open", exchange="binance"), SRC, T0)  # id0001
    run_until(engine, T0 + 30 * S)  # id0002 is the notification
    engine.receive(alert("breaker_open", resolved=True, exchange="binance"), SRC, T0 + 40 * S)
    again = engine.receive(alert("breaker_open", exchange="binance"), SRC, T0 + 50 * S)
    assert again.new_firing and again.instance is not None
    assert again.instance.alert_id == "id0003"
    assert again.instance.occurrences == 1
    # the re-firing replaces the pending resolution in the group
    assert summary(run_until(engine, T0 + 330 * S)) == [(330, "log", ["id0003"], [])]


# -- resolve_timeout -------------------------------------------------------------------


def test_resolve_timeout_expires_silently_then_a_new_firing_gets_a_new_id() -> None:
    engine = make_engine(send_resolved={"log": True}, resolve_timeout_s=300)
    engine.receive(alert("large_withdrawal", member="bob"), SRC, T0)  # id0001
    engine.receive(alert("stale_data", exchange="okx"), SRC, T0 + 50 * S)  # id0002
    engine.receive(alert("large_withdrawal", member="bob"), SRC, T0 + 100 * S)  # repeat
    assert engine.next_expiry_ns() == T0 + 350 * S  # stale_data, received least recently
    assert len(run_until(engine, T0 + 80 * S)) == 2
    assert run_until(engine, T0 + 349 * S) == []  # tick at 330: no change

    assert engine.expire(T0 + 349 * S) == []
    expired = engine.expire(T0 + 400 * S)
    assert [(a.alert_id, a.state, a.occurrences) for a in expired] == [
        ("id0002", "firing", 1),
        ("id0001", "firing", 2),
    ]
    assert engine.active() == [] and engine.next_expiry_ns() is None
    assert run_until(engine, T0 + 10_000 * S) == []  # no resolved notification
    assert engine.next_flush_ns() is None

    back = engine.receive(alert("large_withdrawal", member="bob"), SRC, T0 + 20_000 * S)
    assert back.new_firing and back.instance is not None
    assert back.instance.alert_id == "id0005"
    assert summary(run_until(engine, T0 + 20_030 * S)) == [(20_030, "log", ["id0005"], [])]


# -- inhibition ------------------------------------------------------------------------

RULES = [rule.rule() for rule in DEFAULT_INHIBIT_RULES]


def test_emergency_mode_mutes_medium_and_low_trading_alerts() -> None:
    engine = make_engine({**DEFAULT_ROUTE, "group_by": []}, rules=RULES)
    safe = engine.receive(alert("mode_changed", "high", mode="safe"), SRC, T0)
    assert safe.instance is not None
    not_yet = engine.receive(alert("order_rejected", plugin="trading_execution"), SRC, T0)
    assert not_yet.muted_by is None  # safe mode inhibits nothing

    emergency = engine.receive(alert("mode_changed", "critical", mode="emergency"), SRC, T0 + S)
    assert emergency.muted_by is None
    mode_fp = fingerprint("mode_changed", {"mode": "emergency"})
    medium = engine.receive(
        alert("slippage", "medium", plugin="trading_execution"), SRC, T0 + 2 * S
    )
    low = engine.receive(alert("fill_late", "low", plugin="trading_execution"), SRC, T0 + 2 * S)
    high = engine.receive(alert("loss_limit", "high", plugin="trading_execution"), SRC, T0 + 2 * S)
    other = engine.receive(alert("slow_sync", "medium", plugin="exchange_sync"), SRC, T0 + 2 * S)
    assert medium.muted_by == f"inhibited:{mode_fp}"
    assert low.muted_by == f"inhibited:{mode_fp}"
    assert high.muted_by is None
    assert other.muted_by is None
    assert not_yet.instance is not None
    assert engine.muted_by(not_yet.instance, T0 + 2 * S) == f"inhibited:{mode_fp}"

    ids = {
        r.instance.name: r.instance.alert_id
        for r in (safe, not_yet, emergency, medium, low, high, other)
        if r.instance is not None and r.instance.name != "mode_changed"
    }
    notes = run_until(engine, T0 + 30 * S)
    assert summary(notes) == [
        (30, "log", [safe.instance.alert_id, emergency.instance.alert_id, ids["loss_limit"],
                     ids["slow_sync"]], [])
    ]  # fmt: skip

    # back to normal: the muted ones are no longer muted, a change for the next tick
    engine.receive(alert("mode_changed", resolved=True, mode="emergency"), SRC, T0 + 100 * S)
    notes = run_until(engine, T0 + 330 * S)
    assert summary(notes) == [
        (330, "log", [safe.instance.alert_id, ids["order_rejected"], ids["slippage"],
                      ids["fill_late"], ids["loss_limit"], ids["slow_sync"]],
         [emergency.instance.alert_id])
    ]  # fmt: skip


def test_inhibition_needs_equal_labels_and_never_mutes_itself() -> None:
    engine = make_engine(rules=RULES)
    engine.receive(alert("breaker_open", "high", exchange="binance"), SRC, T0)
    same = engine.receive(alert("stale_data", exchange="binance", symbol="BTC/USDT"), SRC, T0)
    other = engine.receive(alert("stale_data", exchange="kraken"), SRC, T0)
    absent = engine.receive(alert("stale_data", symbol="ETH/USDT"), SRC, T0)
    breaker_fp = fingerprint("breaker_open", {"exchange": "binance"})
    assert same.muted_by == f"inhibited:{breaker_fp}"
    assert other.muted_by is None
    assert absent.muted_by is None  # "" != "binance"

    engine.receive(alert("breaker_open", "high", source_id="x"), SRC, T0)  # no exchange label
    assert absent.instance is not None
    anon_fp = fingerprint("breaker_open", {"source_id": "x"})
    assert engine.muted_by(absent.instance, T0) == f"inhibited:{anon_fp}"  # both absent

    # an alert matching both sides of a rule does not inhibit itself
    selfish = [InhibitRule((Matcher.parse("severity=critical"),), (Matcher.parse("team=ops"),))]
    engine = make_engine(rules=selfish)
    lone = engine.receive(alert("pool_halted", "critical", team="ops"), SRC, T0)
    assert lone.muted_by is None
    assert summary(run_until(engine, T0 + 30 * S)) == [(30, "log", ["id0001"], [])]


# -- silences --------------------------------------------------------------------------


def silence(sid: str, *matchers: str, start_s: int, end_s: int) -> Silence:
    return Silence(
        silence_id=sid,
        matchers=tuple(Matcher.parse(m) for m in matchers),
        starts_ts_ns=T0 + start_s * S,
        ends_ts_ns=T0 + end_s * S,
        created_by="alice",
        comment="maintenance",
    )


def test_silence_time_window_and_regex_matchers() -> None:
    engine = make_engine()
    engine.add_silence(
        silence("s1", "alertname=stale_data", "exchange=~bin.*", start_s=100, end_s=200)
    )
    binance = engine.receive(alert("stale_data", exchange="binance"), SRC, T0).instance
    kraken = engine.receive(alert("stale_data", exchange="kraken"), SRC, T0).instance
    assert binance is not None and kraken is not None
    assert engine.muted_by(binance, T0 + 99 * S) is None  # before
    assert engine.muted_by(binance, T0 + 100 * S) == "silence:s1"  # within (inclusive start)
    assert engine.muted_by(binance, T0 + 199 * S) == "silence:s1"
    assert engine.muted_by(binance, T0 + 200 * S) is None  # after (exclusive end)
    assert engine.muted_by(kraken, T0 + 150 * S) is None  # regex is anchored, other value


def test_silence_at_flush_time_then_unmuted_is_a_change() -> None:
    engine = make_engine({**DEFAULT_ROUTE, "group_interval_s": 60})
    engine.add_silence(silence("s1", "exchange=~bin.*", start_s=0, end_s=100))
    got = engine.receive(alert("stale_data", exchange="binance"), SRC, T0 + 10 * S)
    assert got.muted_by == "silence:s1"
    assert run_until(engine, T0 + 99 * S) == []  # ticks at 40, 100: muted, nothing sent
    assert summary(run_until(engine, T0 + 100 * S)) == [(100, "log", ["id0001"], [])]


def test_expire_silence_early_and_errors() -> None:
    engine = make_engine()
    engine.add_silence(silence("s1", "alertname=stale_data", start_s=0, end_s=3600))
    engine.add_silence(silence("s2", "alertname=stale_data", start_s=500, end_s=600))
    inst = engine.receive(alert("stale_data", exchange="binance"), SRC, T0).instance
    assert inst is not None
    assert engine.muted_by(inst, T0 + 10 * S) == "silence:s1"

    ended = engine.expire_silence("s1", T0 + 20 * S)
    assert ended.expired_ts_ns == T0 + 20 * S
    assert engine.muted_by(inst, T0 + 20 * S) is None
    pending = engine.expire_silence("s2", T0 + 30 * S)  # a pending silence never starts
    assert engine.muted_by(inst, T0 + 550 * S) is None
    assert [s.silence_id for s in engine.silences()] == ["s1", "s2"]
    assert engine.silences()[1] == pending
    with pytest.raises(ValueError, match="already ended"):
        engine.expire_silence("s1", T0 + 40 * S)
    with pytest.raises(KeyError, match="no such silence"):
        engine.expire_silence("s9", T0)
    with pytest.raises(ValueError, match="must be after"):
        engine.add_silence(silence("bad", "a=b", start_s=10, end_s=10))


# -- routing ---------------------------------------------------------------------------

TREE: dict[str, Any] = {
    "receiver": "log",
    "group_by": ["alertname"],
    "group_wait_s": 30,
    "group_interval_s": 300,
    "repeat_interval_s": 3600,
    "routes": [
        {"matchers": ["severity=critical"], "receiver": "pager", "continue": True,
         "group_wait_s": 0},
        {"matchers": ["plugin=capital_pool"], "receiver": "treasurer", "group_by": ["..."],
         "routes": [{"matchers": ["member=~a.*"], "receiver": "alice"}]},
        {"matchers": ["severity=~critical|high"], "receiver": "chat", "repeat_interval_s": 600},
    ],
}  # fmt: skip


def leaves(root: Route, name: str, severity: str, **labels: str) -> list[str]:
    found = root.match({**labels, "alertname": name, "severity": severity, "source": SRC})
    return [f"{r.route_id}:{r.receiver}" for r in found]


def test_routing_tree_first_match_continue_and_inheritance() -> None:
    root = build_route(RouteConfig.model_validate(TREE))
    assert [r.route_id for r in root.walk()] == ["0", "0.0", "0.1", "0.1.0", "0.2"]
    assert leaves(root, "x", "critical") == ["0.0:pager", "0.2:chat"]
    assert leaves(root, "x", "critical", plugin="capital_pool") == ["0.0:pager", "0.1:treasurer"]
    assert leaves(root, "x", "high", plugin="capital_pool", member="ann") == ["0.1.0:alice"]
    assert leaves(root, "x", "high") == ["0.2:chat"]
    assert leaves(root, "x", "medium") == ["0:log"]

    pager, treasurer, alice, chat = (
        root.routes[0],
        root.routes[1],
        root.routes[1].routes[0],
        (root.routes[2]),
    )
    assert (pager.group_wait_ns, pager.group_interval_ns, pager.group_by) == (
        0,
        300 * S,
        ("alertname",),
    )
    assert treasurer.group_by_all and alice.group_by_all and alice.group_wait_ns == 30 * S
    assert (chat.repeat_interval_ns, chat.group_wait_ns) == (600 * S, 30 * S)

    labels = {"plugin": "capital_pool", "alertname": "x", "severity": "high", "source": SRC}
    assert treasurer.group_labels(labels) == dict(sorted(labels.items()))
    assert pager.group_labels({"severity": "critical"}) == {}  # absent labels left out


def test_routing_in_the_engine() -> None:
    engine = make_engine(TREE)
    engine.receive(alert("pool_halted", "critical"), SRC, T0)  # id0001
    engine.receive(alert("big_deposit", "medium", plugin="capital_pool", member="bob"), SRC, T0)
    engine.receive(alert("big_deposit", "medium", plugin="capital_pool", member="carl"), SRC, T0)
    engine.receive(alert("stale_data", "low"), SRC, T0)  # id0004
    notes = run_until(engine, T0 + 30 * S)
    assert summary(notes) == [
        (0, "pager", ["id0001"], []),
        (30, "chat", ["id0001"], []),
        (30, "treasurer", ["id0002"], []),  # "...": one group per label set
        (30, "treasurer", ["id0003"], []),
        (30, "log", ["id0004"], []),
    ]
    assert [n.group_key for n in notes] == [
        '0.0:{alertname="pool_halted"}',
        '0.2:{alertname="pool_halted"}',
        '0.1:{alertname="big_deposit",member="bob",plugin="capital_pool",severity="medium",'
        'source="test@node-1"}',
        '0.1:{alertname="big_deposit",member="carl",plugin="capital_pool",severity="medium",'
        'source="test@node-1"}',
        '0:{alertname="stale_data"}',
    ]
    # chat repeats after its own 600 s (at 630), the others after 3600 s
    assert summary(run_until(engine, T0 + 930 * S)) == [(630, "chat", ["id0001"], [])]


def test_build_route_rejects_root_matchers_and_mixed_group_by_all() -> None:
    with pytest.raises(ValueError, match="root route matches every alert"):
        build_route(RouteConfig(receiver="log", matchers=["a=b"]))
    with pytest.raises(ValueError, match="can't be combined"):
        build_route(RouteConfig(receiver="log", routes=[RouteConfig(group_by=["...", "a"])]))
    with pytest.raises(ValueError, match="needs a receiver"):
        build_route(RouteConfig())


# -- restore ---------------------------------------------------------------------------


def test_restore_keeps_active_alerts_silences_and_acks() -> None:
    before = make_engine(rules=RULES)
    before.add_silence(silence("s1", "exchange=okx", start_s=0, end_s=5000))
    before.receive(alert("stale_data", exchange="binance"), SRC, T0)  # id0001
    before.receive(alert("stale_data", exchange="kraken"), SRC, T0 + S)  # id0002
    before.receive(alert("stale_data", exchange="kraken"), SRC, T0 + 2 * S)
    first = run_until(before, T0 + 30 * S)
    assert summary(first) == [(30, "log", ["id0001", "id0002"], [])]
    before.ack("id0001", "alice", T0 + 40 * S)

    after = make_engine(rules=RULES, first_id=100)
    notified = {a.alert_id: first[0].created_ts_ns for a in first[0].firing}
    after.restore(before.active(), before.silences(), before.acks(), notified=notified)
    assert after.active() == before.active()
    assert after.silences() == before.silences()
    assert after.acks() == {"id0001": (T0 + 40 * S, "alice")}

    # the restart itself notifies nothing; the repeat (3600 s after 30) leaves out the ack
    assert after.next_flush_ns() == T0 + 30 * S  # overdue: evaluate at once
    assert after.flush(T0 + 100 * S) == []
    assert summary(run_until(after, T0 + 3700 * S)) == [(3700, "log", ["id0002"], [])]

    # identity, silences and inhibition sources survive the restart
    dup = after.receive(alert("stale_data", exchange="kraken"), SRC, T0 + 3800 * S)
    assert dup.duplicate and dup.instance is not None
    assert (dup.instance.alert_id, dup.instance.occurrences) == ("id0002", 3)
    okx = after.receive(alert("stale_data", exchange="okx"), SRC, T0 + 3800 * S)
    assert okx.muted_by == "silence:s1"
    after.receive(alert("breaker_open", exchange="kraken"), SRC, T0 + 3800 * S)
    assert after.muted_by(dup.instance, T0 + 3800 * S) == "inhibited:" + fingerprint(
        "breaker_open", {"exchange": "kraken"}
    )


def test_restore_without_notification_log_notifies_again() -> None:
    before = make_engine()
    before.receive(alert("stale_data", exchange="binance"), SRC, T0)
    run_until(before, T0 + 30 * S)
    after = make_engine(first_id=100)
    after.restore(before.active(), [], {"gone": (T0, "bob")})
    assert after.acks() == {}
    assert summary(after.flush(T0 + 500 * S)) == [(500, "log", ["id0001"], [])]
