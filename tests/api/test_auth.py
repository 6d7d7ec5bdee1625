"""Who may call what: tokens (401), login, refresh, logout, the failed-login limiter,
roles (403) and member scoping; and no token or password ever reaches the logs."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import structlog

from corec.core.logging import close_logging, configure_logging
from tests.api.conftest import ALICE_PASSWORD, Stack

PUBLIC = {
    ("GET", "/health"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/refresh"),
}
WRONG_PASSWORDS = [f"wrong-password-{n}-zq" for n in range(6)]


@pytest.fixture
def captured_logs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Iterator[Callable[[], str]]:
    """The node's logging as ``corec run`` configures it (DEBUG to a JSON file and to
    stderr); yields a function returning everything logged so far (file, stderr, and
    stdout for anything printed by structlog's default logger)."""
    saved = structlog.get_config()
    root = logging.getLogger()
    root_level = root.level
    noisy = {
        name: logging.getLogger(name).level
        for name in ("aiosqlite", "asyncio", "alembic", "sqlalchemy", "ccxt")
    }
    path = tmp_path / "logs" / "corec.log"
    configure_logging(level="DEBUG", console_level="DEBUG", file=path)
    seen: list[str] = []

    def read() -> str:
        for handler in logging.getLogger().handlers:
            handler.flush()
        out = capsys.readouterr()
        seen.extend([out.out, out.err])
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        return "\n".join([*seen, text])

    try:
        yield read
    finally:
        close_logging()
        structlog.configure(**saved)
        root.setLevel(root_level)
        for name, level in noisy.items():
            logging.getLogger(name).setLevel(level)


def _path_with_params(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def _assert_no_secret(logs: str, secrets: list[str]) -> None:
    assert logs.strip(), "nothing was logged: the capture does not work"
    leaked = [s[:6] + "..." for s in secrets if s and s in logs]
    assert not leaked, f"secrets in the log output: {leaked}"


async def test_every_route_needs_a_valid_token(
    captured_logs: Callable[[], str], sqlite_stack: Stack
) -> None:
    stack = sqlite_stack
    anonymous = stack.client()
    doc = (await anonymous.get("/openapi.json")).json()
    operations = [
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method in {"get", "post", "put", "delete", "patch"}
    ]
    assert len(operations) >= 30, operations
    plain_gets = [p for m, p in operations if m == "GET" and "{" not in p]
    assert "/metrics" in plain_gets and "/api/v1/pool" in plain_gets

    # public routes answer without a token
    assert (await anonymous.get("/health")).json() == {"status": "ok"}

    garbage = stack.client()
    garbage.headers["Authorization"] = "Bearer not-a-real-token-0123456789"
    wrong_scheme = stack.client()
    wrong_scheme.headers["Authorization"] = f"Basic {stack.tokens['root']}"
    checked = []
    for method, path in operations:
        if (method, path) in PUBLIC:
            continue
        url = _path_with_params(path)
        for client, what in (
            (anonymous, "no token"),
            (garbage, "garbage"),
            (wrong_scheme, "basic"),
        ):
            reply = await client.request(method, url)
            assert reply.status_code == 401, (method, path, what, reply.status_code, reply.text)
            assert reply.headers.get("www-authenticate") == "Bearer", (method, path, what)
            assert isinstance(reply.json()["detail"], str), (method, path, what)
        checked.append((method, path))
    assert {("GET", p) for p in plain_gets if p != "/health"} <= set(checked)
    # the same routes work with a token (not a 401 for every request)
    admin = stack.client("root")
    for path in plain_gets:
        reply = await admin.get(path)
        required = [
            p["name"] for p in doc["paths"][path]["get"].get("parameters", []) if p.get("required")
        ]
        if required:  # e.g. the order book: its parameters are checked, not the token
            assert reply.status_code == 422, (path, reply.status_code, reply.text)
            assert sorted(e["loc"][-1] for e in reply.json()["detail"]) == sorted(required)
        else:
            assert reply.status_code == 200, (path, reply.status_code, reply.text)

    _assert_no_secret(captured_logs(), [*stack.tokens.values(), ALICE_PASSWORD])


async def test_login_refresh_logout_and_the_failed_login_limiter(
    captured_logs: Callable[[], str], sqlite_stack: Stack
) -> None:
    stack = sqlite_stack
    anonymous = stack.client()
    secrets: list[str] = [*stack.tokens.values(), ALICE_PASSWORD, *WRONG_PASSWORDS]

    reply = await anonymous.post(
        "/api/v1/auth/login", json={"user": "alice", "password": ALICE_PASSWORD}
    )
    assert reply.status_code == 200, reply.text
    first = reply.json()
    assert first["principal"] == {"user": "alice", "role": "member", "member": "alice"}
    assert first["access_token"] and first["refresh_token"]
    assert first["access_token"] != first["refresh_token"]
    assert first["refresh_expires_ts_ns"] > first["access_expires_ts_ns"] > 0
    secrets += [first["access_token"], first["refresh_token"]]

    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    me = await anonymous.get("/api/v1/auth/me", headers=bearer(first["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json() == {"user": "alice", "role": "member", "member": "alice"}
    # a refresh token is not an access token
    as_access = await anonymous.get("/api/v1/auth/me", headers=bearer(first["refresh_token"]))
    assert as_access.status_code == 401

    # refresh rotates: a new pair, and the old refresh token is spent
    reply = await anonymous.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert reply.status_code == 200, reply.text
    second = reply.json()
    secrets += [second["access_token"], second["refresh_token"]]
    assert second["principal"] == first["principal"]
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    me = await anonymous.get("/api/v1/auth/me", headers=bearer(second["access_token"]))
    assert me.json() == {"user": "alice", "role": "member", "member": "alice"}
    garbage = await anonymous.post("/api/v1/auth/refresh", json={"refresh_token": "nope-nope"})
    assert garbage.status_code == 403
    assert garbage.json()["code"] == "forbidden"
    # the spent refresh token presented again: refused, and the whole session revoked
    again = await anonymous.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert again.status_code == 403, again.text
    assert again.json()["code"] == "forbidden"
    revoked = await anonymous.get("/api/v1/auth/me", headers=bearer(second["access_token"]))
    assert revoked.status_code == 401, revoked.text
    reply = await anonymous.post(
        "/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert reply.status_code == 403, reply.text

    async def login() -> dict[str, Any]:
        reply = await anonymous.post(
            "/api/v1/auth/login", json={"user": "alice", "password": ALICE_PASSWORD}
        )
        assert reply.status_code == 200, reply.text
        pair: dict[str, Any] = reply.json()
        secrets.extend([pair["access_token"], pair["refresh_token"]])
        return pair

    # logout revokes the token it carries (and its session), at once
    third = await login()
    out = await anonymous.post("/api/v1/auth/logout", headers=bearer(third["access_token"]))
    assert out.status_code == 200, out.text
    assert out.json() == {"user": "alice", "role": "member", "member": "alice"}
    after = await anonymous.get("/api/v1/auth/me", headers=bearer(third["access_token"]))
    assert after.status_code == 401, after.text
    reply = await anonymous.post(
        "/api/v1/auth/refresh", json={"refresh_token": third["refresh_token"]}
    )
    assert reply.status_code == 403, reply.text
    # an API token survives another session's logout
    assert (await stack.client("alice").get("/api/v1/auth/me")).status_code == 200
    fourth = await login()

    # bodies are validated before anyone is asked
    for body in ({"user": "alice"}, {"user": "", "password": "x"}, {"password": "x"}):
        bad = await anonymous.post("/api/v1/auth/login", json=body)
        assert bad.status_code == 422, (body, bad.text)

    # wrong passwords: 403 without saying whether the user exists; 5 failures lock
    nobody = await anonymous.post(
        "/api/v1/auth/login", json={"user": "mallory", "password": WRONG_PASSWORDS[0]}
    )
    assert nobody.status_code == 403, nobody.text
    for password in WRONG_PASSWORDS[1:5]:
        wrong = await anonymous.post(
            "/api/v1/auth/login", json={"user": "alice", "password": password}
        )
        assert wrong.status_code == 403, wrong.text
        assert wrong.json() == nobody.json()
        assert wrong.json()["code"] == "forbidden"
    sixth = await anonymous.post(
        "/api/v1/auth/login", json={"user": "alice", "password": WRONG_PASSWORDS[5]}
    )
    assert sixth.status_code == 503, sixth.text
    assert sixth.json()["code"] == "unavailable"
    retry_after = int(sixth.headers["Retry-After"])
    assert 0 < retry_after <= 60
    right = await anonymous.post(
        "/api/v1/auth/login", json={"user": "alice", "password": ALICE_PASSWORD}
    )
    assert right.status_code == 503, right.text
    assert 0 < int(right.headers["Retry-After"]) <= 60
    assert "access_token" not in right.text
    # tokens already issued keep working during a lockout
    still = await anonymous.get("/api/v1/auth/me", headers=bearer(fourth["access_token"]))
    assert still.status_code == 200

    health = stack.node.health()["plugins"]["user_management"]
    assert health["limited_keys"] >= 1

    logs = captured_logs()
    # the capture sees user_management's lines (so a leak would show)
    assert "refresh_reused_session_revoked" in logs and "client=127.0.0.1" in logs
    _assert_no_secret(logs, secrets)


async def test_roles_and_member_scoping(
    captured_logs: Callable[[], str], sqlite_stack: Stack
) -> None:
    stack = sqlite_stack
    vic, alice, root = stack.client("vic"), stack.client("alice"), stack.client("root")

    assert (await vic.get("/api/v1/auth/me")).json() == {
        "user": "vic",
        "role": "viewer",
        "member": None,
    }
    assert (await root.get("/api/v1/auth/me")).json() == {
        "user": "root",
        "role": "admin",
        "member": None,
    }

    # viewer: no personal data, no administration
    forbidden_for_viewer = [
        ("GET", "/api/v1/members", None),
        ("GET", "/api/v1/contributions", None),
        ("GET", "/api/v1/withdrawals", None),
        ("GET", "/api/v1/settlements/members", None),
        ("GET", "/api/v1/members/alice/statement", None),
        ("GET", "/api/v1/users", None),
        ("GET", "/api/v1/system/config", None),
        ("PUT", "/api/v1/system/mode", {"mode": "safe", "reason": "viewer tries"}),
        ("POST", "/api/v1/contributions", {"member": "alice", "amount_usd": "200"}),
        ("POST", "/api/v1/withdrawals", {"member": "alice", "amount_usd": "10"}),
        ("POST", "/api/v1/silences", {"matchers": ["alertname=x"], "duration_s": "60"}),
        ("GET", "/api/v1/events/capital_data", None),
        ("GET", "/api/v1/events/trading_results", None),
    ]
    for method, path, body in forbidden_for_viewer:
        reply = await vic.request(method, path, json=body)
        assert reply.status_code == 403, (method, path, reply.status_code, reply.text)
        assert isinstance(reply.json()["detail"], str)
    for channel in ("market_data", "alert_data", "system"):
        reply = await vic.get(f"/api/v1/events/{channel}")
        assert reply.status_code == 200, (channel, reply.text)
        assert reply.json()["channel"] == channel
    # market and system views are open to the viewer
    for path in ("/api/v1/pool", "/api/v1/system/mode", "/api/v1/alerts", "/api/v1/trades"):
        assert (await vic.get(path)).status_code == 200, path
    assert (await vic.get("/api/v1/system/mode")).json()["mode"] == "normal"

    # member: only their own records
    forbidden_for_member = [
        ("GET", "/api/v1/members/bob/statement", None),
        ("GET", "/api/v1/contributions?member=bob", None),
        ("GET", "/api/v1/withdrawals?member=bob", None),
        ("GET", "/api/v1/settlements/members?member=bob", None),
        ("GET", "/api/v1/users", None),
        ("GET", "/api/v1/system/config", None),
        ("GET", "/api/v1/events/capital_data", None),
        ("PUT", "/api/v1/system/mode", {"mode": "emergency", "reason": "member tries"}),
        ("POST", "/api/v1/contributions", {"member": "alice", "amount_usd": "200"}),
        ("POST", "/api/v1/withdrawals", {"member": "bob", "amount_usd": "10"}),
        ("POST", "/api/v1/alerts/some-alert/ack", None),
    ]
    for method, path, body in forbidden_for_member:
        reply = await alice.request(method, path, json=body)
        assert reply.status_code == 403, (method, path, reply.status_code, reply.text)

    members = (await alice.get("/api/v1/members")).json()
    assert members["total"] == 1
    assert [m["member"] for m in members["items"]] == ["alice"]
    assert Decimal(members["items"][0]["contributed_usd"]) == 1000
    assert members["items"][0]["units"] == "1000.00000000"

    own = (await alice.get("/api/v1/contributions")).json()
    assert own["total"] == 1
    assert [(f["flow_id"], f["member"]) for f in own["items"]] == [("seed-alice", "alice")]
    explicit = (await alice.get("/api/v1/contributions?member=alice")).json()
    assert explicit == own

    reply = await alice.get("/api/v1/members/alice/statement")
    assert reply.status_code == 200, reply.text
    statement = reply.json()
    assert statement["member"] == "alice"
    assert Decimal(statement["opening_units"]) == 0
    assert Decimal(statement["opening_equity_usd"]) == 0
    assert Decimal(statement["closing_units"]) == 1000
    assert Decimal(statement["contributions_usd"]) == 1000
    assert Decimal(statement["withdrawals_usd"]) == 0
    assert Decimal(statement["distributions_usd"]) == 0
    closing = Decimal(statement["closing_equity_usd"])
    assert closing == Decimal(statement["closing_equity_usd"]).quantize(Decimal("0.01"))
    nav_per_unit = Decimal(statement["closing_nav_per_unit"])
    assert abs(closing - 1000 * nav_per_unit) < Decimal("0.01")
    # pnl = closing − opening − contributions + withdrawals + distributions
    assert Decimal(statement["pnl_usd"]) == closing - 1000
    assert [
        (f["flow_id"], f["kind"], Decimal(f["amount_usd"]), Decimal(f["units"]), f["nav_per_unit"])
        for f in statement["flows"]
    ] == [("seed-alice", "contribution", Decimal(1000), Decimal(1000), "1.00000000")]

    # a member may withdraw their own money, not someone else's
    reply = await alice.post(
        "/api/v1/withdrawals", json={"member": "alice", "amount_usd": "10.00", "id": "alice-w1"}
    )
    assert reply.status_code == 201, reply.text
    paid = reply.json()
    assert paid["status"] == "paid" and paid["queued"] is None
    assert paid["recorded"]["member"] == "alice"
    assert Decimal(paid["recorded"]["amount_usd"]) == Decimal(10)
    bob_before = (await root.get("/api/v1/members")).json()["items"][1]
    assert bob_before["member"] == "bob"
    reply = await alice.post("/api/v1/withdrawals", json={"member": "bob", "amount_usd": "10"})
    assert reply.status_code == 403
    bob_after = (await root.get("/api/v1/members")).json()["items"][1]
    assert bob_after["units"] == bob_before["units"] == "500.00000000"
    mine = (await alice.get("/api/v1/withdrawals")).json()
    assert [(w["flow_id"], w["member"], w["status"]) for w in mine["items"]] == [
        ("alice-w1", "alice", "done")
    ]

    # admin sees everyone
    everyone = (await root.get("/api/v1/members")).json()
    assert [m["member"] for m in everyone["items"]] == ["alice", "bob"]
    assert (await root.get("/api/v1/members/bob/statement")).status_code == 200
    assert (await root.get("/api/v1/events/capital_data")).status_code == 200

    _assert_no_secret(captured_logs(), [*stack.tokens.values(), ALICE_PASSWORD])
