"""The REST API's values, end to end: a real node (SQLite and PostgreSQL) replaying a
slice of the recording, asked over HTTP.

The replay runs at full speed from the moment the stack is up, so before
``wait_replayed`` only figures that trading does not move are asserted exactly (units,
contributions, flows); after it the node is quiet and every figure is checked.
"""

from __future__ import annotations

import asyncio
from decimal import ROUND_DOWN, Decimal
from types import SimpleNamespace
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from corec.api.app import create_app
from corec.api.config import ApiConfig
from corec.api.routes.system import config as config_route
from corec.core.logging import redact
from corec.messages.user_data import Principal
from tests.api.conftest import SLICE_ROWS, Stack, stack_config

D = Decimal
UNITS = D("0.00000001")


def _metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition text by (name, sorted labels)."""
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _validation_locs(reply: httpx.Response) -> list[tuple[Any, ...]]:
    assert reply.status_code == 422, (reply.status_code, reply.text)
    return [tuple(error["loc"]) for error in reply.json()["detail"]]


async def _poll(fetch: Any, ready: Any, timeout_s: float = 10) -> Any:
    """``fetch()`` until ``ready(result)`` (the alert manager groups before recording)."""
    result = None
    for _ in range(int(timeout_s * 10)):
        result = await fetch()
        if ready(result):
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"not ready after {timeout_s} s: {result}")


async def test_pool_members_contributions_and_withdrawals(stack: Stack) -> None:
    admin = stack.client("root")

    pool = (await admin.get("/api/v1/pool")).json()
    assert pool["units"] == "1500.00000000"
    assert D(pool["nav_usd"]) > 0 and D(pool["nav_per_unit"]) > 0
    assert pool["phase"] == "growth"

    members = (await admin.get("/api/v1/members")).json()
    assert (members["total"], members["limit"], members["offset"]) == (2, 100, 0)
    assert [
        (m["member"], m["units"], D(m["contributed_usd"]), D(m["withdrawn_usd"]))
        for m in members["items"]
    ] == [("alice", "1000.00000000", D(1000), D(0)), ("bob", "500.00000000", D(500), D(0))]
    for m in members["items"]:
        # pnl = equity + withdrawn + distributed − contributed
        assert D(m["pnl_usd"]) == (
            D(m["equity_usd"])
            + D(m["withdrawn_usd"])
            + D(m["distributed_usd"])
            - D(m["contributed_usd"])
        )
    page = (await admin.get("/api/v1/members?limit=1&offset=1")).json()
    assert (page["total"], [m["member"] for m in page["items"]]) == (2, ["bob"])

    # contributions: paging
    everything = (await admin.get("/api/v1/contributions")).json()
    assert everything["total"] == 2
    assert {
        (f["flow_id"], f["member"], D(f["amount_usd"]), D(f["units"])) for f in everything["items"]
    } == {("seed-alice", "alice", D(1000), D(1000)), ("seed-bob", "bob", D(500), D(500))}
    assert all(
        f["kind"] == "contribution" and f["status"] == "done" and f["nav_per_unit"] == "1.00000000"
        for f in everything["items"]
    )
    first = (await admin.get("/api/v1/contributions?limit=1")).json()
    second = (await admin.get("/api/v1/contributions?limit=1&offset=1")).json()
    beyond = (await admin.get("/api/v1/contributions?limit=1&offset=2")).json()
    assert (first["total"], first["limit"], first["offset"], len(first["items"])) == (2, 1, 0, 1)
    assert (second["total"], second["offset"], len(second["items"])) == (2, 1, 1)
    assert (beyond["total"], beyond["items"]) == (2, [])
    assert first["items"] + second["items"] == everything["items"]
    only_bob = (await admin.get("/api/v1/contributions?member=bob")).json()
    assert [(f["flow_id"], f["member"]) for f in only_bob["items"]] == [("seed-bob", "bob")]
    assert only_bob["total"] == 1
    nobody = await admin.get("/api/v1/contributions?member=nobody")
    assert nobody.status_code == 404, nobody.text
    assert nobody.json() == {"detail": "unknown member 'nobody'", "code": "not_found"}
    for bad in ("limit=0", "limit=1001", "offset=-1", "limit=x", "member=a%20b"):
        locs = _validation_locs(await admin.get(f"/api/v1/contributions?{bad}"))
        assert locs == [("query", bad.split("=")[0])], (bad, locs)

    # a contribution: units at the NAV per unit of the moment, rounded down
    reply = await admin.post(
        "/api/v1/contributions", json={"member": "carol", "amount_usd": "250.50", "id": "c-1"}
    )
    assert reply.status_code == 201, reply.text
    recorded = reply.json()
    assert (recorded["contribution_id"], recorded["member"]) == ("c-1", "carol")
    assert D(recorded["amount_usd"]) == D("250.50")
    nav_per_unit = D(recorded["nav_per_unit"])
    assert nav_per_unit > 0
    units = D(recorded["units"])
    assert units == units.quantize(UNITS) > 0
    # the pool divides by its unrounded NAV per unit; the reply shows it to 8 places, so
    # units × the shown NAV per unit is the amount within one unit of the last place
    assert abs(units * nav_per_unit - D("250.50")) <= units * UNITS + UNITS

    # idempotent by id: the same record, units not issued twice
    again = await admin.post(
        "/api/v1/contributions", json={"member": "carol", "amount_usd": "250.50", "id": "c-1"}
    )
    assert again.status_code == 201, again.text
    assert again.json()["contribution_id"] == "c-1"
    assert D(again.json()["units"]) == D(recorded["units"])
    clash = await admin.post(
        "/api/v1/contributions", json={"member": "carol", "amount_usd": "300", "id": "c-1"}
    )
    assert clash.status_code == 409, clash.text
    assert clash.json()["code"] == "conflict"
    members = (await admin.get("/api/v1/members")).json()
    carol = members["items"][2]
    assert (members["total"], carol["member"]) == (3, "carol")
    assert D(carol["units"]) == D(recorded["units"])
    assert D(carol["contributed_usd"]) == D("250.50")
    pool = (await admin.get("/api/v1/pool")).json()
    assert D(pool["units"]) == 1500 + D(recorded["units"])
    assert (await admin.get("/api/v1/contributions")).json()["total"] == 3

    # below the pool's minimum: the plugin's refusal, naming the field
    reply = await admin.post(
        "/api/v1/contributions", json={"member": "carol", "amount_usd": "99.99"}
    )
    assert reply.status_code == 422, reply.text
    (error,) = reply.json()["detail"]
    assert (error["loc"], error["type"]) == (["body", "amount_usd"], "refused")
    assert "minimum" in error["msg"]

    # malformed amounts: FastAPI's validation, before the plugin is asked
    for amount in ("abc", "-5", "0", "NaN", "-NaN", "sNaN", "Infinity", "1.001", "1e13", "", None):
        reply = await admin.post(
            "/api/v1/contributions", json={"member": "carol", "amount_usd": amount}
        )
        assert _validation_locs(reply) == [("body", "amount_usd")], amount
        assert reply.json()["detail"][0]["type"] != "refused", amount
    for body, field in (
        ({"member": "carol"}, "amount_usd"),
        ({"amount_usd": "200"}, "member"),
        ({"member": "no spaces", "amount_usd": "200"}, "member"),
        ({"member": "carol", "amount_usd": "200", "id": "bad id!"}, "id"),
        ({"member": "carol", "amount_usd": "200", "extra": 1}, "extra"),
    ):
        assert _validation_locs(await admin.post("/api/v1/contributions", json=body)) == [
            ("body", field)
        ], body
    broken = await admin.post(
        "/api/v1/contributions",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert broken.status_code == 422
    assert (await admin.get("/api/v1/contributions")).json()["total"] == 3

    # withdrawals the plugin refuses
    too_much = await admin.post("/api/v1/withdrawals", json={"member": "bob", "amount_usd": "5000"})
    assert too_much.status_code == 409, too_much.text
    assert too_much.json()["code"] == "conflict"
    assert "equity" in too_much.json()["detail"]
    unknown = await admin.post("/api/v1/withdrawals", json={"member": "zed", "amount_usd": "10"})
    assert unknown.status_code == 404, unknown.text
    assert unknown.json() == {"detail": "unknown member 'zed'", "code": "not_found"}
    assert _validation_locs(
        await admin.post("/api/v1/withdrawals", json={"member": "bob", "amount_usd": "-1"})
    ) == [("body", "amount_usd")]
    withdrawals = (await admin.get("/api/v1/withdrawals")).json()
    assert (withdrawals["total"], withdrawals["items"]) == (0, [])

    # a statement (admin may read anyone's)
    reply = await admin.get("/api/v1/members/bob/statement")
    assert reply.status_code == 200, reply.text
    statement = reply.json()
    assert statement["member"] == "bob"
    assert (D(statement["opening_units"]), D(statement["closing_units"])) == (0, 500)
    assert D(statement["contributions_usd"]) == 500
    assert D(statement["withdrawals_usd"]) == D(statement["distributions_usd"]) == 0
    assert D(statement["pnl_usd"]) == D(statement["closing_equity_usd"]) - 500
    assert [(f["flow_id"], D(f["amount_usd"])) for f in statement["flows"]] == [
        ("seed-bob", D(500))
    ]
    assert (await admin.get("/api/v1/members/zed/statement")).status_code == 404
    reversed_dates = await admin.get(
        "/api/v1/members/bob/statement?from_date=2022-01-02&to_date=2022-01-01"
    )
    assert reversed_dates.status_code == 422
    assert _validation_locs(
        await admin.get("/api/v1/members/bob/statement?from_date=2022-13-01")
    ) == [("query", "from_date")]


async def test_trading_market_settlements_alerts_and_metrics_after_the_replay(
    stack: Stack,
) -> None:
    await stack.wait_replayed()
    admin, vic = stack.client("root"), stack.client("vic")

    # trades: newest first, each one's PnL from its prices
    trades = (await vic.get("/api/v1/trades?limit=1000")).json()
    assert trades["total"] > 0
    assert len(trades["items"]) == trades["total"]
    closed = [t["closed_ts_ns"] for t in trades["items"]]
    assert closed == sorted(closed, reverse=True)
    for t in trades["items"]:
        assert (t["strategy"], t["exchange"], t["market"], t["symbol"]) == (
            "sma_cross",
            "ftx",
            "futures",
            "BTC/USD:USD",
        ), t
        assert t["side"] in {"long", "short"}
        assert t["trade_id"] and t["allocation_id"] and t["exit_reason"]
        quantity, entry, exit_ = D(t["quantity"]), D(t["entry_price"]), D(t["exit_price"])
        assert quantity > 0 and entry > 0 and exit_ > 0 and D(t["fees_usd"]) >= 0
        assert t["opened_ts_ns"] <= t["closed_ts_ns"]
        sign = 1 if t["side"] == "long" else -1
        gross = sign * (exit_ - entry) * quantity
        assert D(t["realized_pnl_usd"]) == gross - D(t["fees_usd"]), t
    page = (await vic.get("/api/v1/trades?limit=2&offset=1")).json()
    assert (page["total"], page["limit"], page["offset"]) == (trades["total"], 2, 1)
    assert page["items"] == trades["items"][1:3]
    assert (await vic.get("/api/v1/trades?symbol=ETH/USD:USD")).json()["total"] == 0
    assert (await vic.get("/api/v1/trades?strategy=sma_cross")).json()["total"] == trades["total"]
    newest = trades["items"][0]["closed_ts_ns"]
    recent = (await vic.get(f"/api/v1/trades?from_ts_ns={newest}")).json()
    assert recent["total"] >= 1
    assert all(t["closed_ts_ns"] >= newest for t in recent["items"])

    # positions, and the pool made of them
    positions = (await vic.get("/api/v1/positions")).json()
    assert positions["total"] == len(positions["items"])
    pool = (await vic.get("/api/v1/pool")).json()
    assert pool["units"] == "1500.00000000"
    unrealized = D(0)
    allocated = D(0)
    for p in positions["items"]:
        assert (p["exchange"], p["market"], p["symbol"]) == ("ftx", "futures", "BTC/USD:USD")
        quantity, entry, mark = D(p["quantity"]), D(p["entry_price"]), D(p["mark_price"])
        sign = 1 if p["side"] == "long" else -1
        assert D(p["notional_usd"]) == quantity * mark
        assert D(p["unrealized_pnl_usd"]) == sign * (mark - entry) * quantity - D(
            p["entry_fee_usd"]
        )
        assert (D(p["stop_price"]) - entry) * sign < 0  # the stop is on the losing side
        unrealized += D(p["unrealized_pnl_usd"])
        allocated += D(p["allocation_usd"])
    assert D(pool["unrealized_pnl_usd"]) == unrealized
    assert D(pool["allocated_usd"]) == allocated
    assert D(pool["nav_usd"]) == D(pool["cash_usd"]) + allocated + unrealized
    assert D(pool["nav_per_unit"]) == (D(pool["nav_usd"]) / 1500).quantize(UNITS, ROUND_DOWN)

    # prices: the replayed ticker
    prices = (await vic.get("/api/v1/prices")).json()
    (ticker,) = [
        t
        for t in prices["tickers"]
        if (t["exchange"], t["market"], t["symbol"]) == ("ftx", "futures", "BTC/USD:USD")
    ]
    last = D(ticker["last"])
    assert last > 0 and ticker["exchange_ts_ns"] == prices["as_of_ts_ns"]
    if positions["items"]:
        assert D(positions["items"][0]["mark_price"]) == last
    assert (await vic.get("/api/v1/prices?exchange=binance")).json()["tickers"] == []
    filtered = (await vic.get("/api/v1/prices?market=futures&symbol=BTC/USD:USD")).json()
    assert filtered["tickers"] == [ticker]
    assert _validation_locs(await vic.get("/api/v1/prices?market=options")) == [("query", "market")]
    consolidated = (await vic.get("/api/v1/prices/consolidated")).json()
    (quote,) = [q for q in consolidated["items"] if q["symbol"] == "BTC/USD:USD"]
    assert (quote["pair"], quote["market"]) == ("BTC/USD", "futures")
    assert D(quote["mid"]) == last
    assert [v["exchange"] for v in quote["venues"]] == ["ftx"]
    assert D(quote["gap_bps"]) == 0
    only = (await vic.get("/api/v1/prices/consolidated?symbol=ETH/USD:USD")).json()
    assert only["items"] == []

    # the order book in replay: one level per side from the ticker
    reply = await vic.get(
        "/api/v1/order-book",
        params={"exchange": "ftx", "market": "futures", "symbol": "BTC/USD:USD"},
    )
    assert reply.status_code == 200, reply.text
    book = reply.json()
    assert book["source"] == "ticker"
    assert (book["exchange"], book["market"], book["symbol"]) == ("ftx", "futures", "BTC/USD:USD")
    assert len(book["bids"]) == len(book["asks"]) == 1
    assert D(book["bids"][0]["price"]) == D(ticker["bid"] or ticker["last"])
    assert D(book["asks"][0]["price"]) == D(ticker["ask"] or ticker["last"])
    assert book["exchange_ts_ns"] == ticker["exchange_ts_ns"]
    for params in (
        {"exchange": "ftx", "market": "futures", "symbol": "XXX/USD:USD"},
        {"exchange": "nope", "market": "futures", "symbol": "BTC/USD:USD"},
        {"exchange": "ftx", "market": "spot", "symbol": "BTC/USD:USD"},
    ):
        reply = await vic.get("/api/v1/order-book", params=params)
        assert reply.status_code == 404, (params, reply.text)
        assert reply.json()["code"] == "not_found"

    # settlements: at least one settled day, newest first, NAV = units × NAV per unit
    settlements = (await vic.get("/api/v1/settlements")).json()
    assert settlements["total"] >= 1
    dates = [s["date"] for s in settlements["items"]]
    assert dates == sorted(dates, reverse=True) and dates[-1] == "2021-12-31"
    for s in settlements["items"]:
        assert D(s["units"]) == 1500
        assert abs(D(s["nav_usd"]) - D(s["units"]) * D(s["nav_per_unit"])) < D("0.01")
    history = (await vic.get("/api/v1/pool/nav-history")).json()
    assert [(h["date"], h["nav_usd"]) for h in history["items"]] == [
        (s["date"], s["nav_usd"]) for s in settlements["items"]
    ]
    one_day = await vic.get(f"/api/v1/settlements?from_date={dates[-1]}&to_date={dates[-1]}")
    assert [s["date"] for s in one_day.json()["items"]] == [dates[-1]]
    rows = (await admin.get(f"/api/v1/settlements/members?from_date={dates[-1]}")).json()
    day = [r for r in rows["items"] if r["date"] == dates[-1]]
    assert sorted((r["member"], D(r["units"])) for r in day) == [
        ("alice", D(1000)),
        ("bob", D(500)),
    ]

    # exchanges' health
    exchanges = (await vic.get("/api/v1/exchanges")).json()
    (ftx,) = exchanges["items"]
    assert (ftx["exchange"], ftx["market"], ftx["breaker"]) == ("ftx", "futures", "closed")
    assert ftx["failed_polls"] == 0 and ftx["errors"] == {}
    assert ftx["last_success_ts_ns"] == ticker["exchange_ts_ns"]
    assert (await vic.get("/api/v1/breakers/history")).json()["total"] == 0

    # a withdrawal larger than the free cash waits (202), FIFO, listed as queued
    cash = D(pool["cash_usd"])
    alice_equity = D((await admin.get("/api/v1/members")).json()["items"][0]["equity_usd"])
    # (the replayed slice ends with a position open and less than 900 USD free)
    assert allocated > 0 and cash < D(900) < alice_equity, (cash, alice_equity)
    reply = await admin.post(
        "/api/v1/withdrawals", json={"member": "alice", "amount_usd": "900", "id": "w-big"}
    )
    assert reply.status_code == 202, reply.text
    body = reply.json()
    assert (body["status"], body["recorded"]) == ("queued", None)
    assert (body["queued"]["withdrawal_id"], body["queued"]["member"]) == ("w-big", "alice")
    assert D(body["queued"]["amount_usd"]) == 900 and D(body["queued"]["ahead_usd"]) == 0
    listed = (await admin.get("/api/v1/withdrawals")).json()
    assert [(w["flow_id"], w["status"]) for w in listed["items"]] == [("w-big", "queued")]

    # alerts: acknowledge one
    alerts = (await vic.get("/api/v1/alerts")).json()
    assert alerts["total"] == len(alerts["items"]) >= 1
    starts = [a["starts_ts_ns"] for a in alerts["items"]]
    assert starts == sorted(starts, reverse=True)
    target = alerts["items"][0]
    assert target["acked_by"] is None
    reply = await admin.post(f"/api/v1/alerts/{target['alert_id']}/ack")
    assert reply.status_code == 200, reply.text
    acked = reply.json()
    assert (acked["alert_id"], acked["by"]) == (target["alert_id"], "root")
    listed = (await vic.get("/api/v1/alerts?acked=true")).json()
    assert [(a["alert_id"], a["acked_by"], a["acked_ts_ns"]) for a in listed["items"]] == [
        (target["alert_id"], "root", acked["ts_ns"])
    ]
    assert (await vic.get("/api/v1/alerts?acked=false")).json()["total"] == alerts["total"] - 1
    missing = await admin.post("/api/v1/alerts/no-such-alert/ack")
    assert missing.status_code == 404, missing.text
    assert missing.json()["code"] == "not_found"
    for severity in ("low", "medium", "high", "critical"):
        some = (await vic.get(f"/api/v1/alerts?severity={severity}")).json()
        assert all(a["severity"] == severity for a in some["items"])
    firing = (await vic.get("/api/v1/alerts?state=firing")).json()
    assert all(a["state"] == "firing" for a in firing["items"])

    # silences: create, list, end
    reply = await admin.post(
        "/api/v1/silences",
        json={
            "matchers": ["alertname=daily_loss", "severity=~hi.*"],
            "duration_s": "3600",
            "comment": "looking into it",
        },
    )
    assert reply.status_code == 201, reply.text
    silence = reply.json()
    assert silence["matchers"] == ["alertname=daily_loss", "severity=~hi.*"]
    assert (silence["created_by"], silence["comment"], silence["expired_ts_ns"]) == (
        "root",
        "looking into it",
        None,
    )
    assert silence["ends_ts_ns"] - silence["starts_ts_ns"] == 3600 * 10**9
    active = (await vic.get("/api/v1/silences")).json()
    assert (active["total"], active["items"]) == (1, [silence])
    reply = await admin.delete(f"/api/v1/silences/{silence['silence_id']}")
    assert reply.status_code == 200, reply.text
    ended = reply.json()
    assert ended["silence_id"] == silence["silence_id"] and ended["expired_ts_ns"] is not None
    assert (await vic.get("/api/v1/silences")).json()["total"] == 0
    history_s = (await vic.get("/api/v1/silences?include_expired=true")).json()
    assert [s["silence_id"] for s in history_s["items"]] == [silence["silence_id"]]
    assert (await admin.delete("/api/v1/silences/no-such-silence")).status_code == 404
    for matchers in (["bad"], ["alertname=~("]):
        reply = await admin.post(
            "/api/v1/silences", json={"matchers": matchers, "duration_s": "60"}
        )
        assert reply.status_code == 422, (matchers, reply.text)
        (error,) = reply.json()["detail"]
        assert (error["loc"], error["type"]) == (["body", "matchers"], "refused")
    for body, field in (
        ({"matchers": [], "duration_s": "60"}, "matchers"),
        ({"matchers": ["alertname=x"], "duration_s": "0"}, "duration_s"),
        ({"matchers": ["alertname=x"], "duration_s": "NaN"}, "duration_s"),
    ):
        assert _validation_locs(await admin.post("/api/v1/silences", json=body)) == [
            ("body", field)
        ], body

    # metrics, with the figures the API serves
    assert (await stack.client().get("/metrics")).status_code == 401
    reply = await vic.get("/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    samples = _metrics(reply.text)
    pool_now = (await vic.get("/api/v1/pool")).json()
    assert samples[("corec_pool_nav_usd", ())] == float(D(pool_now["nav_usd"]))
    assert samples[("corec_pool_nav_per_unit", ())] == float(D(pool_now["nav_per_unit"]))
    assert samples[("corec_pool_units", ())] == float(D(pool_now["units"]))
    assert (
        samples[("corec_exchange_breaker_state", (("exchange", "ftx"), ("market", "futures")))] == 0
    )
    assert samples[("corec_events_published_total", (("channel", "exchange_data"),))] >= SLICE_ROWS
    key = (("channel", "market_data"), ("group", "trading_execution"))
    assert (
        samples[("corec_handler_latency_seconds_bucket", (*key, ("le", "+Inf")))]
        == samples[("corec_handler_latency_seconds_count", key)]
    )
    assert samples[("corec_handler_latency_seconds_count", key)] >= SLICE_ROWS
    alert_samples = {
        labels: value for (name, labels), value in samples.items() if name == "corec_alerts_total"
    }
    assert alert_samples, "corec_alerts_total has no sample"
    assert all(dict(labels)["state"] in {"firing", "resolved"} for labels in alert_samples)
    firings = sum(v for labels, v in alert_samples.items() if dict(labels)["state"] == "firing")
    assert firings >= 1
    assert samples[("corec_node_mode", (("mode", "normal"),))] == 1


async def test_mode_events_status_config_and_errors(sqlite_stack: Stack) -> None:
    stack = sqlite_stack
    # The node runs on the replay clock: while bars stream in, a 600 s silence can lapse
    # in replay time before the next alert. With the replay over, the clock stands still.
    await stack.wait_replayed()
    admin, vic = stack.client("root"), stack.client("vic")

    assert (await vic.get("/api/v1/system/mode")).json() == {
        "mode": "normal",
        "mode_since_ts_ns": None,
    }
    for body, field in (
        ({"mode": "panic", "reason": "x"}, "mode"),
        ({"mode": "safe", "reason": ""}, "reason"),
        ({"mode": "safe", "reason": "   "}, "reason"),
        ({"mode": "safe"}, "reason"),
    ):
        assert _validation_locs(await admin.put("/api/v1/system/mode", json=body)) == [
            ("body", field)
        ], body

    reply = await admin.put(
        "/api/v1/system/mode", json={"mode": "safe", "reason": "maintenance window"}
    )
    assert reply.status_code == 200, reply.text
    changed = reply.json()
    assert {k: changed[k] for k in ("previous", "current", "reason", "by")} == {
        "previous": "normal",
        "current": "safe",
        "reason": "maintenance window",
        "by": "root",
    }
    assert (await vic.get("/api/v1/system/mode")).json() == {
        "mode": "safe",
        "mode_since_ts_ns": changed["ts_ns"],
    }

    events = (await vic.get("/api/v1/events/system?event_type=mode_changed")).json()
    assert events["channel"] == "system"
    (event,) = events["items"]
    assert (event["type"], event["channel"]) == ("mode_changed", "system")
    assert event["payload"] == changed
    assert event["source"].startswith("nucleus@")
    latest = (await vic.get("/api/v1/events/system?limit=1")).json()["items"]
    assert [e["id"] for e in latest] == [event["id"]]

    async def mode_alerts() -> list[dict[str, Any]]:
        page = (await vic.get("/api/v1/alerts?name=mode_changed")).json()
        return page["items"]  # type: ignore[no-any-return]

    (alert,) = await _poll(mode_alerts, lambda items: len(items) >= 1)
    assert (alert["name"], alert["labels"], alert["state"]) == (
        "mode_changed",
        {"mode": "safe"},
        "firing",
    )
    assert "safe" in alert["message"] and "maintenance window" in alert["message"]

    status = (await vic.get("/api/v1/system/status")).json()
    assert status["mode"] == "safe" and status["mode_since_ts_ns"] == changed["ts_ns"]
    plugins = {p["name"]: p for p in status["plugins"]}
    assert set(plugins) >= {"api", "user_management", "capital_pool", "trading_execution"}
    assert all(p["state"] == "running" and p["error"] is None for p in plugins.values())
    assert D(status["uptime_s"]) > 0

    samples = _metrics((await vic.get("/metrics")).text)
    assert samples[("corec_node_mode", (("mode", "safe"),))] == 1
    assert samples[("corec_node_mode", (("mode", "normal"),))] == 0

    # a silence mutes the next mode alert
    reply = await admin.post(
        "/api/v1/silences",
        json={"matchers": ["alertname=mode_changed", "mode=normal"], "duration_s": "600"},
    )
    assert reply.status_code == 201, reply.text
    silence_id = reply.json()["silence_id"]
    back = await admin.put("/api/v1/system/mode", json={"mode": "normal", "reason": "done"})
    assert (back.json()["previous"], back.json()["current"]) == ("safe", "normal")
    items = await _poll(mode_alerts, lambda items: len(items) >= 2)
    assert items[0]["labels"] == {"mode": "normal"}
    assert items[0]["muted_by"] == f"silence:{silence_id}"
    assert items[1]["alert_id"] == alert["alert_id"] and items[1]["muted_by"] is None

    # the configuration, secrets hidden
    config = (await admin.get("/api/v1/system/config")).json()
    assert config["node"]["plugins"][0] == "api"
    assert config["api"]["port"] == 0
    assert config["exchange_sync"]["replay"]["symbol"] == "BTC/USD:USD"
    _assert_redacted(config)

    # unknown routes, methods and channels
    for path in ("/api/v1/nope", "/api/v1/pool/nope", "/nope"):
        reply = await admin.get(path)
        assert reply.status_code == 404, path
        assert reply.json() == {"detail": "Not Found"}
    assert (await stack.client().get("/api/v1/nope")).status_code == 404
    assert (await admin.delete("/api/v1/pool")).status_code == 405
    assert _validation_locs(await admin.get("/api/v1/events/nope")) == [("path", "channel")]
    assert _validation_locs(await admin.get("/api/v1/events/system?limit=0")) == [
        ("query", "limit")
    ]
    assert (await stack.client().get("/openapi.json")).json()["info"]["title"] == "CoreC"


SECRET_WORDS = ("password", "secret", "token", "api_key", "apikey", "passphrase", "webhook")


def _assert_redacted(value: Any, path: str = "") -> None:
    """No key named like a secret (ending in one: ``smtp_password``, ``api_key``) with a
    shown value, no URL with a password in it. Settings that only describe a secret
    (``access_token_ttl_s``, ``min_password_chars``) are shown."""
    if isinstance(value, dict):
        for key, item in value.items():
            if any(key.lower().endswith(word) for word in SECRET_WORDS):
                assert item == "***", f"{path}.{key} is shown: {item!r}"
            else:
                _assert_redacted(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _assert_redacted(item, f"{path}[{index}]")
    elif isinstance(value, str) and "://" in value and "@" in value:
        assert ":***@" in value, f"{path}: {value!r}"


async def test_config_route_hides_database_passwords(tmp_path: Any) -> None:
    url = "postgresql+asyncpg://corec:hunter2-db-pw@db.internal:5432/corec"
    cfg = stack_config(tmp_path, {"capital_pool": url, "alert_manager": url})
    request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(config=cfg)))
    shown = await config_route(Principal(user="root", role="admin"), request)  # type: ignore[arg-type]
    assert "hunter2-db-pw" not in repr(shown)
    assert shown["user_management"]["access_token_ttl_s"] == 900  # describes, holds no secret
    assert shown["capital_pool"]["database_url"] == (
        "postgresql+asyncpg://corec:***@db.internal:5432/corec"
    )
    assert shown["alert_manager"]["database_url"] == shown["capital_pool"]["database_url"]
    assert shown["capital_pool"]["min_contribution_usd"] == "100"
    _assert_redacted(shown)

    assert redact(
        {
            "smtp": {"password": "p@ss", "host": "mail", "urls": ["https://u:pw@x/y", "plain"]},
            "api_secret": "s3cr3t",
            "telegram_token": "123:abc",
            "nested": [{"passphrase": "okx"}],
            "count": 3,
        }
    ) == {
        "smtp": {"password": "***", "host": "mail", "urls": ["https://u:***@x/y", "plain"]},
        "api_secret": "***",
        "telegram_token": "***",
        "nested": [{"passphrase": "***"}],
        "count": 3,
    }


def _bare_app() -> Any:
    """The app without a node (enough for its OpenAPI document)."""
    return create_app(
        gateway=None,  # type: ignore[arg-type]
        config=None,  # type: ignore[arg-type]
        settings=ApiConfig(),
        recent=None,  # type: ignore[arg-type]
        hub=None,  # type: ignore[arg-type]
        metrics=None,  # type: ignore[arg-type]
    )


def test_openapi_documents_every_status_a_route_answers() -> None:
    """POST /api/v1/withdrawals answers 202 when the withdrawal is queued (the contract:
    "201 recorded / 202 queued"); the document must say so, or clients generated from it
    (and schemathesis' status_code_conformance) treat 202 as undefined."""
    doc = _bare_app().openapi()
    withdraw = doc["paths"]["/api/v1/withdrawals"]["post"]["responses"]
    assert "201" in withdraw
    assert "202" in withdraw, sorted(withdraw)
    assert doc["paths"]["/api/v1/contributions"]["post"]["responses"]["201"]


def test_openapi_says_metrics_needs_a_token() -> None:
    """``/metrics`` answers 401 without a token (``api.metrics_public`` is off by
    default), but the document declares no security for it."""
    doc = _bare_app().openapi()
    assert doc["paths"]["/metrics"]["get"].get("security") == [{"HTTPBearer": []}]


async def test_a_body_that_is_not_utf8_is_a_documented_client_error() -> None:
    """The app promises "a bad body or parameter is 422"; a JSON body that is not UTF-8
    gets FastAPI's own 400 ("There was an error parsing the body"), which the document
    does not declare (schemathesis' negative run finds it on every route with a body)."""
    app = _bare_app()
    doc = app.openapi()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        for method, path in (
            ("post", "/api/v1/auth/login"),
            ("post", "/api/v1/contributions"),
            ("put", "/api/v1/system/mode"),
        ):
            reply = await client.request(
                method,
                path,
                content=b"\xff\xfe{",
                headers={"Content-Type": "application/json"},
            )
            documented = doc["paths"][path][method]["responses"]
            assert reply.status_code == 422 or str(reply.status_code) in documented, (
                method,
                path,
                reply.status_code,
                reply.text,
                sorted(documented),
            )
