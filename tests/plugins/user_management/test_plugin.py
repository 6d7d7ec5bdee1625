"""user_management in a real node: the initial admin, the endpoints over the bus,
``UserChanged`` on ``system`` (also for changes made beside the node), the logs."""

from __future__ import annotations

import asyncio
import logging
import stat
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import structlog

from corec.core import channels
from corec.core.config import CorecConfig
from corec.core.logging import close_logging, configure_logging
from corec.core.nucleus import Node
from corec.core.queries import Refused
from corec.core.store import Store
from corec.messages.user_data import (
    AUTHENTICATE,
    LOGIN,
    LOGOUT,
    REFRESH,
    USERS,
    AuthenticateRequest,
    LoginRequest,
    LogoutRequest,
    Principal,
    RefreshRequest,
    TokenPair,
    UserChanged,
    UsersPage,
    UsersRequest,
)
from corec.plugins.user_management.config import UserManagementConfig
from corec.plugins.user_management.plugin import UserManagementPlugin
from corec.plugins.user_management.service import INITIAL_ADMIN_FILE, UserService
from tests.conftest import fresh_pg_database
from tests.harness import Recorder, started_node

MakeConfig = Callable[..., CorecConfig]
PASSWORD = "correct horse battery staple"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def database_url(request: pytest.FixtureRequest) -> AsyncIterator[str | None]:
    """``None`` (the default SQLite file under data_dir) or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield None
        return
    async with fresh_pg_database() as url:
        yield url


def node_config(make_config: MakeConfig, url: str | None, **section: Any) -> CorecConfig:
    if url is not None:
        section["database_url"] = url
    # a replay clock (at 0) as in the demo: tokens must still live on the wall clock
    return make_config(
        {
            "node": {"plugins": ["user_management"], "clock": "replay"},
            "user_management": {"poll_interval_s": 1, **section},
        }
    )


async def ask(node: Node, endpoint: str, payload: Any) -> Any:
    return await node.bus.request(endpoint, payload, timeout_s=10)


@asynccontextmanager
async def running(node: Node) -> AsyncIterator[None]:
    """The node's spawned tasks (the users watcher) run inside the block."""
    task = asyncio.create_task(node.run(handle_signals=False))
    try:
        yield
    finally:
        node.request_shutdown("test over")
        await asyncio.wait_for(task, timeout=10)


async def changes(rec: Recorder, count: int) -> list[tuple[str, str, str]]:
    """The first ``count`` UserChanged seen on ``system`` (waits up to 5 s)."""
    for _ in range(100):
        seen = [(c.user, c.role, c.change) for c in rec.payloads(UserChanged, channel="system")]
        if len(seen) >= count:
            return seen
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {count} UserChanged, saw {seen}")


@pytest.fixture
def captured_logs(tmp_path: Path) -> Iterator[Path]:
    """Every log record (DEBUG and up) as JSON lines in the returned file, and on stderr."""
    saved = structlog.get_config()
    root = logging.getLogger()
    level = root.level
    path = tmp_path / "logs" / "corec.log"
    configure_logging(level="DEBUG", console_level="DEBUG", file=path)
    try:
        yield path
    finally:
        close_logging()
        structlog.configure(**saved)
        root.setLevel(level)


async def test_the_node_creates_the_admin_and_serves_login_refresh_authenticate_logout(
    make_config: MakeConfig, database_url: str | None, tmp_path: Path
) -> None:
    config = node_config(make_config, database_url)
    async with started_node(config, channels.SYSTEM) as (node, rec):
        file = tmp_path / "var" / INITIAL_ADMIN_FILE
        assert stat.S_IMODE(file.stat().st_mode) == 0o600
        password = file.read_text(encoding="utf-8").strip()
        assert await changes(rec, 1) == [("admin", "admin", "added")]

        refused = await ask(node, LOGIN, LoginRequest(user="admin", password="nope", client="c1"))
        assert isinstance(refused, Refused) and refused.code == "forbidden"
        pair = await ask(node, LOGIN, LoginRequest(user="admin", password=password, client="c1"))
        assert isinstance(pair, TokenPair)
        admin = Principal(user="admin", role="admin", member=None)
        assert pair.principal == admin
        assert await ask(node, AUTHENTICATE, AuthenticateRequest(token=pair.access_token)) == admin
        bad = await ask(node, AUTHENTICATE, AuthenticateRequest(token="corec_at_nope"))
        assert isinstance(bad, Refused) and (bad.code, bad.field) == ("forbidden", "token")

        fresh = await ask(node, REFRESH, RefreshRequest(refresh_token=pair.refresh_token))
        assert isinstance(fresh, TokenPair)
        again = await ask(node, REFRESH, RefreshRequest(refresh_token=pair.refresh_token))
        assert isinstance(again, Refused)  # rotated; and the reuse ended the session
        pair = await ask(node, LOGIN, LoginRequest(user="admin", password=password, client="c1"))

        page = await ask(node, USERS, UsersRequest(limit=10, offset=0))
        assert isinstance(page, UsersPage) and page.total == 1
        [row] = page.items
        assert (row.user, row.role, row.member, row.tokens, row.revoked) == (
            "admin", "admin", None, 2, False,
        )  # fmt: skip

        assert await ask(node, LOGOUT, LogoutRequest(token=pair.access_token)) == admin
        gone = await ask(node, AUTHENTICATE, AuthenticateRequest(token=pair.access_token))
        assert isinstance(gone, Refused)
        health = node.health()["plugins"]["user_management"]
        assert health["logins"] == 2 and health["login_failures"] == 1
        assert health["refreshes"] == 1 and health["refresh_reuse"] == 1
        assert health["logouts"] == 1


async def test_changes_made_beside_the_node_are_published_and_revocations_apply(
    make_config: MakeConfig, database_url: str | None
) -> None:
    config = node_config(make_config, database_url)
    async with started_node(config, channels.SYSTEM) as (node, rec), running(node):
        # the CLI's way: its own store and service on the same database
        beside = Store(config.database_url("user_management"), name="user_management")
        try:
            cli = UserService(beside, UserManagementConfig())
            await cli.add_user("bob", "member", member="bob", password=PASSWORD)
            token = (await cli.create_api_token("bob")).token
            principal = await ask(node, AUTHENTICATE, AuthenticateRequest(token=token))
            assert principal == Principal(user="bob", role="member", member="bob")
            await cli.revoke_user("bob")
        finally:
            await beside.dispose()
        assert (await changes(rec, 4))[1:] == [
            ("bob", "member", "added"),
            ("bob", "member", "token_created"),
            ("bob", "member", "revoked"),
        ]
        # the node forgot bob's cached lookup when it saw the revocation
        refused = await ask(node, AUTHENTICATE, AuthenticateRequest(token=token))
        assert isinstance(refused, Refused) and refused.code == "forbidden"
        assert node.health()["plugins"]["user_management"]["changes_published"] == {
            "added": 2, "token_created": 1, "revoked": 1,
        }  # fmt: skip


async def test_no_initial_admin_when_switched_off(make_config: MakeConfig, tmp_path: Path) -> None:
    config = node_config(make_config, None, initial_admin=False)
    async with started_node(config) as (node, _rec):
        page = await ask(node, USERS, UsersRequest())
        assert isinstance(page, UsersPage) and page.total == 0
    assert not (tmp_path / "var" / INITIAL_ADMIN_FILE).exists()
    status = await read_status(config)
    assert status == {"users": 0, "revoked": 0, "by_role": {}}


async def read_status(config: CorecConfig) -> Any:
    store = Store(config.database_url("user_management"), name="user_management")
    try:
        return await UserManagementPlugin.read_status(store, UserManagementConfig())
    finally:
        await store.dispose()


async def test_logs_never_contain_a_password_or_a_token(
    make_config: MakeConfig, tmp_path: Path, captured_logs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = node_config(make_config, None, login_max_failures=2)
    secrets: list[str] = []
    async with started_node(config) as (node, _rec):
        admin_password = (tmp_path / "var" / INITIAL_ADMIN_FILE).read_text(encoding="utf-8").strip()
        secrets.append(admin_password)
        beside = Store(config.database_url("user_management"), name="user_management")
        try:
            cli = UserService(beside, UserManagementConfig())
            await cli.add_user("carol", "viewer", password=PASSWORD)
            await cli.set_password("carol", PASSWORD + "!")
            issued = await cli.create_api_token("carol", label="dashboard")
            secrets += [PASSWORD, issued.token]
        finally:
            await beside.dispose()
        wrong = "wrong-but-secret-guess"
        for _ in range(3):  # two failures, then rate-limited
            await ask(node, LOGIN, LoginRequest(user="carol", password=wrong, client="c9"))
        secrets.append(wrong)
        pair = await ask(
            node, LOGIN, LoginRequest(user="admin", password=admin_password, client="c1")
        )
        fresh = await ask(node, REFRESH, RefreshRequest(refresh_token=pair.refresh_token))
        await ask(node, REFRESH, RefreshRequest(refresh_token=pair.refresh_token))  # reuse
        await ask(node, AUTHENTICATE, AuthenticateRequest(token=issued.token))
        await ask(node, LOGOUT, LogoutRequest(token=issued.token))
        secrets += [pair.access_token, pair.refresh_token, fresh.access_token, fresh.refresh_token]
    close_logging()

    text = await asyncio.to_thread(captured_logs.read_text, encoding="utf-8")
    text += capsys.readouterr().err
    events = [
        "initial_admin_created",
        "user_added",
        "user_password_set",
        "api_token_created",
        "login_failed",
        "login_rate_limited",
        "refresh_reused_session_revoked",
        "logout",
    ]
    for event in events:
        assert event in text, event
    assert str(tmp_path / "var" / INITIAL_ADMIN_FILE) in text
    for secret in secrets:
        assert secret not in text
    assert "corec_api_" not in text and "corec_at_" not in text and "corec_rt_" not in text
    assert "$argon2" not in text
