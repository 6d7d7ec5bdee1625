"""``corec alerts`` as a user runs it: list, show, ack, silence, silences, unsilence, on
the alert manager's SQLite file, seeded with the plugin's own records module."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from corec.core.clock import NS_PER_S
from corec.core.store import Store
from corec.core.store.migrate import upgrade
from corec.plugins.alert_manager import records
from corec.plugins.alert_manager.outbox import SENT, AttemptRow, Outbox
from corec.plugins.alert_manager.plugin import AlertManagerPlugin
from corec.plugins.alert_manager.types import AlertInstance, Notification, fingerprint
from tests.cli.test_cli import corec, write_config

T0 = 1_767_225_600 * NS_PER_S  # 2026-01-01T00:00:00Z
S = NS_PER_S


def instance(
    alert_id: str, name: str, severity: str, first_ns: int, **labels: str
) -> AlertInstance:
    return AlertInstance(
        alert_id=alert_id,
        fingerprint=fingerprint(name, labels),
        name=name,
        severity=severity,  # type: ignore[arg-type]
        message=f"{name} happened",
        labels=labels,
        source="test@node-1",
        state="firing",
        starts_ts_ns=first_ns,
        updated_ts_ns=first_ns,
    )


PRICE = instance("a-price", "price_move", "medium", T0, symbol="BTC/USDT", exchange="binance")
BREAKER = instance("a-breaker", "breaker_open", "high", T0 + 60 * S, exchange="kraken")
LOSS = instance("a-loss", "trade_loss", "critical", T0 + 120 * S, trade_id="t1")


async def seed(db: Path) -> None:
    """Three alerts (firing, resolved, expired) and one notification of the first with a
    failed then a successful attempt."""
    store = Store(f"sqlite:///{db}", name="alert_manager")
    try:
        assert AlertManagerPlugin.migrations is not None
        await upgrade(store, AlertManagerPlugin.migrations)
        writer = records.AlertWriter(store)
        writer.record(records.alert_row(PRICE, "firing", None), new=True)
        resolved = replace(BREAKER, state="resolved", ends_ts_ns=T0 + 90 * S, resolvable=True)
        writer.record(records.alert_row(resolved, "resolved", None), new=True)
        expired = {**records.alert_row(LOSS, "expired", None), "ends_ts_ns": T0 + 420 * S}
        writer.record(expired, new=True)
        assert await writer.flush() == 3
        note = Notification(
            notification_id="n-1",
            receiver="hook",
            group_key="{}:{alertname=price_move}",
            group_labels={"alertname": "price_move"},
            severity="medium",
            firing=(PRICE,),
            resolved=(),
            created_ts_ns=T0 + 30 * S,
        )
        attempts = [
            AttemptRow("n-1", "hook", 1, T0 + 30 * S, "failed", error="HTTP 500"),
            AttemptRow("n-1", "hook", 2, T0 + 32 * S, SENT, duration_ms=Decimal("12.5")),
        ]
        assert await Outbox(store).enqueue(note, now_ns=T0 + 30 * S, done=(SENT, attempts))
    finally:
        await store.dispose()


@pytest.fixture
def config(tmp_path: Path) -> str:
    """A config with alert_manager enabled, its SQLite file seeded (see :func:`seed`)."""
    path = write_config(
        tmp_path,
        {"node": {"data_dir": str(tmp_path / "var"), "plugins": ["alert_manager"]}},
    )
    (tmp_path / "var").mkdir()
    asyncio.run(seed(tmp_path / "var" / "alert_manager.db"))
    return str(path)


def run(tmp_path: Path, *args: str) -> Any:
    return corec("alerts", *args, cwd=tmp_path)


def ok_json(tmp_path: Path, *args: str) -> Any:
    result = run(tmp_path, *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def one_line(text: str) -> str:
    return " ".join(text.split())


def ts_ns(iso: str) -> int:
    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * NS_PER_S)


# -- list ---------------------------------------------------------------------------------


def test_list_filters_by_severity_and_state(tmp_path: Path, config: str) -> None:
    rows = ok_json(tmp_path, "list", "--json", "--config", config)
    assert [(r["alert_id"], r["name"], r["severity"], r["state"]) for r in rows] == [
        ("a-loss", "trade_loss", "critical", "expired"),  # newest first
        ("a-breaker", "breaker_open", "high", "resolved"),
        ("a-price", "price_move", "medium", "firing"),
    ]
    price = rows[2]
    assert price["labels"] == {"exchange": "binance", "symbol": "BTC/USDT"}
    assert "labels_json" not in price
    assert price["first_ts"] == "2026-01-01T00:00:00Z"
    assert price["first_ts_ns"] == T0
    assert price["occurrences"] == 1
    assert price["fingerprint"] == fingerprint("price_move", price["labels"])
    assert (price["acked_by"], price["muted_by"], price["ends_ts_ns"]) == (None, None, None)
    assert rows[1]["ends_ts"] == "2026-01-01T00:01:30Z"
    assert rows[1]["resolvable"] is True

    high = ok_json(tmp_path, "list", "--json", "--severity", "high", "--config", config)
    assert [r["alert_id"] for r in high] == ["a-breaker"]
    firing = ok_json(tmp_path, "list", "--json", "--state", "firing", "--config", config)
    assert [r["alert_id"] for r in firing] == ["a-price"]
    none = ok_json(
        tmp_path, "list", "--json", "--severity", "low", "--state", "firing", "--config", config
    )
    assert none == []
    paged = ok_json(tmp_path, "list", "--json", "--limit", "1", "--offset", "1", "--config", config)
    assert [r["alert_id"] for r in paged] == ["a-breaker"]


def test_list_refuses_a_bad_severity_or_state(tmp_path: Path, config: str) -> None:
    bad = run(tmp_path, "list", "--severity", "urgent", "--config", config)
    assert bad.returncode == 2
    assert "--severity must be one of critical, high, medium, low, got 'urgent'" in one_line(
        bad.stderr
    )
    bad = run(tmp_path, "list", "--state", "open", "--config", config)
    assert bad.returncode == 2
    assert "--state must be one of firing, resolved, expired, got 'open'" in one_line(bad.stderr)


def test_list_without_a_database_is_empty(tmp_path: Path) -> None:
    config = write_config(
        tmp_path, {"node": {"data_dir": str(tmp_path / "var"), "plugins": ["alert_manager"]}}
    )
    assert ok_json(tmp_path, "list", "--json", "--config", str(config)) == []


# -- show ---------------------------------------------------------------------------------


def test_show_has_labels_notifications_and_attempts(tmp_path: Path, config: str) -> None:
    shown = ok_json(tmp_path, "show", "a-price", "--json", "--config", config)
    assert shown["alert_id"] == "a-price"
    assert shown["labels"] == {"exchange": "binance", "symbol": "BTC/USDT"}
    assert (shown["state"], shown["severity"], shown["source"]) == (
        "firing",
        "medium",
        "test@node-1",
    )
    [note] = shown["notifications"]
    assert (note["notification_id"], note["receiver"], note["status"]) == ("n-1", "hook", SENT)
    assert note["created_ts"] == "2026-01-01T00:00:30Z"
    assert "payload_json" not in note
    assert [(a["attempt"], a["outcome"], a["error"]) for a in note["attempts"]] == [
        (1, "failed", "HTTP 500"),
        (2, "sent", None),
    ]
    assert note["attempts"][1]["ts"] == "2026-01-01T00:00:32Z"
    assert Decimal(note["attempts"][1]["duration_ms"]) == Decimal("12.5")
    # an alert nothing was sent about
    other = ok_json(tmp_path, "show", "a-loss", "--json", "--config", config)
    assert (other["state"], other["ends_ts"], other["notifications"]) == (
        "expired",
        "2026-01-01T00:07:00Z",
        [],
    )
    text = run(tmp_path, "show", "a-price", "--config", config)
    assert text.returncode == 0, text.stderr
    assert "MEDIUM price_move · firing" in text.stdout
    assert "labels: exchange=binance, symbol=BTC/USDT" in text.stdout


def test_show_an_unknown_id_exits_2(tmp_path: Path, config: str) -> None:
    result = run(tmp_path, "show", "nope", "--json", "--config", config)
    assert result.returncode == 2
    assert "no alert with id 'nope'" in result.stderr
    assert result.stdout == ""


# -- ack ----------------------------------------------------------------------------------


def test_ack_stores_who_and_when_once(tmp_path: Path, config: str) -> None:
    before = time.time_ns()
    result = run(tmp_path, "ack", "a-price", "--by", "alice", "--config", config)
    assert result.returncode == 0, result.stderr
    assert "acknowledged a-price (price_move) by alice at " in one_line(result.stdout)
    shown = ok_json(tmp_path, "show", "a-price", "--json", "--config", config)
    assert shown["acked_by"] == "alice"
    assert before <= shown["acked_ts_ns"] <= time.time_ns()
    # acking again keeps the first ack
    again = run(tmp_path, "ack", "a-price", "--by", "bob", "--config", config)
    assert again.returncode == 0, again.stderr
    assert "by alice" in again.stdout
    listed = ok_json(tmp_path, "list", "--json", "--state", "firing", "--config", config)
    assert [r["acked_by"] for r in listed] == ["alice"]


def test_ack_an_unknown_id_exits_2(tmp_path: Path, config: str) -> None:
    result = run(tmp_path, "ack", "nope", "--by", "alice", "--config", config)
    assert result.returncode == 2
    assert "no alert with id 'nope'" in result.stderr
    assert "Traceback" not in result.stderr


# -- silences -----------------------------------------------------------------------------


def test_silence_list_and_unsilence(tmp_path: Path, config: str) -> None:
    before = time.time_ns()
    made = ok_json(
        tmp_path,
        "silence",
        "--match",
        "alertname=price_move",
        "--match",
        "exchange=~bin.*",
        "--for",
        "2h",
        "--by",
        "alice",
        "--comment",
        "maintenance",
        "--json",
        "--config",
        config,
    )
    after = time.time_ns()
    assert made["matchers"] == ["alertname=price_move", "exchange=~bin.*"]
    assert (made["created_by"], made["comment"]) == ("alice", "maintenance")
    starts, ends = ts_ns(made["starts"]), ts_ns(made["ends"])
    assert before - S <= starts <= after
    assert ends - starts == pytest.approx(2 * 3600 * S, abs=1000)

    listed = ok_json(tmp_path, "silences", "--json", "--config", config)
    assert listed == [
        {
            "silence_id": made["silence_id"],
            "matchers": ["alertname=price_move", "exchange=~bin.*"],
            "starts": made["starts"],
            "ends": made["ends"],
            "active": True,
            "created_by": "alice",
            "comment": "maintenance",
        }
    ]
    ended = run(tmp_path, "unsilence", made["silence_id"], "--config", config)
    assert ended.returncode == 0, ended.stderr
    assert f"silence {made['silence_id']} ended at " in ended.stdout
    assert ok_json(tmp_path, "silences", "--json", "--config", config) == []
    [gone] = ok_json(tmp_path, "silences", "--all", "--json", "--config", config)
    assert gone["silence_id"] == made["silence_id"]
    assert gone["active"] is False
    assert starts <= ts_ns(gone["ends"]) < ends  # ended early
    unknown = run(tmp_path, "unsilence", "nope", "--config", config)
    assert unknown.returncode == 2
    assert "no silence with id 'nope'" in unknown.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--match", "alertname=price_move", "--for", "2x"), "--for '2x': expected a duration"),
        (("--match", "alertname=price_move", "--for", "0m"), "must be positive"),
        (("--match", "price_move", "--for", "2h"), "matcher 'price_move': expected LABEL=VALUE"),
        (("--match", "symbol=~(", "--for", "2h"), "matcher symbol=~'('"),
    ],
)
def test_silence_refuses_bad_input(
    tmp_path: Path, config: str, args: tuple[str, ...], message: str
) -> None:
    result = run(tmp_path, "silence", *args, "--config", config)
    assert result.returncode == 2
    assert message in one_line(result.stderr)
    assert ok_json(tmp_path, "silences", "--all", "--json", "--config", config) == []


def test_a_silence_from_the_cli_is_read_by_the_plugin(tmp_path: Path, config: str) -> None:
    made = ok_json(
        tmp_path, "silence", "--match", "alertname=price_move", "--for", "90s", "--json",
        "--config", config,
    )  # fmt: skip

    async def load() -> list[Any]:
        store = Store(f"sqlite:///{tmp_path / 'var' / 'alert_manager.db'}", name="alert_manager")
        try:
            return await records.load_silences(store, now_ns=time.time_ns())
        finally:
            await store.dispose()

    [silence] = asyncio.run(load())
    assert silence.silence_id == made["silence_id"]
    assert [str(x) for x in silence.matchers] == ["alertname=price_move"]
    assert silence.ends_ts_ns - silence.starts_ts_ns == 90 * S
    assert silence.mutes({"alertname": "price_move"}, time.time_ns())
