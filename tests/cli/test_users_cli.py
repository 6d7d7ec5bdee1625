"""``corec users`` as an operator runs it, on real SQLite files, checked through the
plugin's own service (the node's code path). Refusals run in-process (typer's
CliRunner); the token's stdout and passwords on stdin run as real processes."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from click.testing import Result
from typer.testing import CliRunner

from corec.cli.main import app
from corec.core.logging import close_logging
from corec.core.store import Store
from corec.messages.user_data import AuthenticateRequest, LoginRequest, Principal, TokenPair
from corec.plugins.user_management.config import UserManagementConfig
from corec.plugins.user_management.service import UserService
from tests.cli.test_cli import write_config

PASSWORD = "correct horse battery staple"


runner = CliRunner()


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """In-process commands configure process-wide logging; put it back afterwards."""
    saved = structlog.get_config()
    root = logging.getLogger()
    root_level = root.level
    names = ("aiosqlite", "asyncio", "alembic", "sqlalchemy", "ccxt")
    noisy = {name: logging.getLogger(name).level for name in names}
    try:
        yield
    finally:
        close_logging()
        structlog.configure(**saved)
        root.setLevel(root_level)
        for name, level in noisy.items():
            logging.getLogger(name).setLevel(level)


def cli(tmp_path: Path, *args: str, stdin: str | None = None) -> Result:
    """``corec users ARGS --config corec.yaml`` in this process (typer's CliRunner)."""
    argv = ["users", *args, "--config", str(tmp_path / "corec.yaml")]
    return runner.invoke(app, argv, input=stdin or "")


def users(tmp_path: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m corec users ARGS --config corec.yaml`` in ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COREC")}
    env["COREC__API__PORT"] = "0"  # never the user's 8000
    return subprocess.run(
        [sys.executable, "-m", "corec", "users", *args, "--config", str(tmp_path / "corec.yaml")],
        cwd=tmp_path,
        env=env,
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ok(result: Any) -> Any:
    """``result`` (a process or a CliRunner result) after checking it exited 0."""
    code = result.returncode if hasattr(result, "returncode") else result.exit_code
    assert code == 0, result.stderr
    return result


def refused(result: Any, *needles: str) -> None:
    """Exit 2, nothing on stdout, each needle in the error message."""
    code = result.returncode if hasattr(result, "returncode") else result.exit_code
    assert code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    text = " ".join(result.stderr.split())
    for needle in needles:
        assert needle in text, text


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """user_management and capital_pool, member ``alice`` configured."""
    return write_config(
        tmp_path,
        {
            "node": {
                "data_dir": str(tmp_path / "var"),
                "plugins": ["user_management", "capital_pool"],
            },
            "capital_pool": {"members": [{"name": "alice"}]},
        },
    )


def service_call(tmp_path: Path, call: Any) -> Any:
    """``call(service)`` on the users database the CLI wrote (as the node would)."""

    async def run() -> Any:
        store = Store(
            f"sqlite:///{tmp_path / 'var' / 'user_management.db'}", name="user_management"
        )
        try:
            return await call(UserService(store, UserManagementConfig()))
        finally:
            await store.dispose()

    return asyncio.run(run())


def authenticate(tmp_path: Path, token: str) -> Any:
    return service_call(tmp_path, lambda s: s.authenticate(AuthenticateRequest(token=token)))


def test_add_checks_role_and_pool_member_then_token_prints_only_the_token(
    tmp_path: Path, config: Path
) -> None:
    refused(cli(tmp_path, "add", "eve", "--role", "boss"), "role 'boss'", "admin, member, viewer")
    refused(cli(tmp_path, "add", "eve", "--role", "member"), "--member is required")
    refused(
        cli(tmp_path, "add", "zed", "--role", "member", "--member", "zed"),
        "--member 'zed': no such pool member",
    )
    refused(cli(tmp_path, "add", "Eve", "--role", "viewer"), "user 'Eve'")
    assert not (tmp_path / "var" / "user_management.db").exists()  # nothing was written

    added = ok(cli(tmp_path, "add", "alice", "--role", "member", "--member", "alice"))
    assert "user alice added (member, member alice; no password yet" in added.stdout
    refused(cli(tmp_path, "add", "alice", "--role", "viewer"), "'alice' exists already")

    made = ok(users(tmp_path, "token", "alice", "--ttl-days", "30", "--label", "phone"))
    token = made.stdout.removesuffix("\n")
    assert made.stdout == token + "\n" and token.startswith("corec_api_") and "\n" not in token
    assert "shown once" in made.stderr and token not in made.stderr
    assert authenticate(tmp_path, token) == Principal(user="alice", role="member", member="alice")
    stored = b"".join(p.read_bytes() for p in (tmp_path / "var").glob("user_management.db*"))
    assert token.encode() not in stored
    log = (tmp_path / "var" / "corec.log").read_text(encoding="utf-8")
    assert "api_token_created" in log and token not in log

    refused(cli(tmp_path, "token", "nobody"), "no user named 'nobody'")


def test_a_stored_pool_member_can_be_linked(tmp_path: Path, config: Path) -> None:
    member = subprocess.run(
        [sys.executable, "-m", "corec", "members", "add", "bob", "--config", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert member.returncode == 0, member.stderr
    ok(cli(tmp_path, "add", "bob", "--role", "member", "--member", "bob"))


def test_passwords_come_from_stdin_and_are_never_logged(tmp_path: Path, config: Path) -> None:
    ok(users(tmp_path, "add", "root", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n"))
    login = LoginRequest(user="root", password=PASSWORD, client="test")
    assert isinstance(service_call(tmp_path, lambda s: s.login(login)), TokenPair)

    refused(cli(tmp_path, "password", "root", "--password-stdin", stdin="short\n"), "at least 12")
    refused(cli(tmp_path, "password", "root"), "--password-stdin")  # no terminal to ask on
    refused(cli(tmp_path, "password", "root", "--password-stdin"), "no password on stdin")
    new = "a much longer passphrase"
    ok(users(tmp_path, "password", "root", "--password-stdin", stdin=new + "\n"))
    again = LoginRequest(user="root", password=new, client="test")
    assert isinstance(service_call(tmp_path, lambda s: s.login(again)), TokenPair)

    log = (tmp_path / "var" / "corec.log").read_text(encoding="utf-8")
    assert "user_password_set" in log
    assert PASSWORD not in log and new not in log and "short" not in log


def test_revoke_stops_tokens_and_list_shows_it(tmp_path: Path, config: Path) -> None:
    assert json.loads(ok(cli(tmp_path, "list", "--json")).stdout) == []  # no database yet
    ok(cli(tmp_path, "add", "vic", "--role", "viewer"))
    token = ok(cli(tmp_path, "token", "vic", "--ttl-days", "0")).stdout.strip()
    [row] = json.loads(ok(cli(tmp_path, "list", "--json")).stdout)
    assert {k: row[k] for k in ("user", "role", "member", "tokens", "revoked")} == {
        "user": "vic", "role": "viewer", "member": None, "tokens": 1, "revoked": False,
    }  # fmt: skip

    revoked = ok(cli(tmp_path, "revoke", "vic"))
    assert "user vic revoked (1 working token(s) revoked)" in revoked.stdout
    assert authenticate(tmp_path, token).code == "forbidden"
    table = ok(cli(tmp_path, "list")).stdout
    assert "vic" in table and "yes" in table
    refused(cli(tmp_path, "revoke", "nobody"), "no user named 'nobody'")
    refused(cli(tmp_path, "token", "vic"), "user 'vic' is revoked")


def test_the_plugins_must_be_enabled(tmp_path: Path) -> None:
    write_config(
        tmp_path, {"node": {"data_dir": str(tmp_path / "var"), "plugins": ["capital_pool"]}}
    )
    refused(cli(tmp_path, "list"), "the user_management plugin is not enabled")
    write_config(
        tmp_path, {"node": {"data_dir": str(tmp_path / "var"), "plugins": ["user_management"]}}
    )
    refused(
        cli(tmp_path, "add", "amy", "--role", "member", "--member", "amy"),
        "the capital_pool plugin is not enabled",
    )
