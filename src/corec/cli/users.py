"""``corec users``: who may use the API. Add users, set passwords, make API tokens,
revoke, list.

These commands write user_management's database through the plugin's own service
(one short transaction each), next to a running node or without one. A running node
sees a new token at once, and a revocation within ``auth_cache_ttl_s`` (5 s).
Tokens and passwords never go to the log; ``token`` prints only the token on stdout.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import typer
from rich.table import Table

from corec.cli.common import (
    ConfigOption,
    console,
    err_console,
    fail,
    load,
    open_store,
    print_json,
    run_async,
)
from corec.core.clock import format_ts
from corec.core.config import CorecConfig
from corec.core.errors import InvalidInput
from corec.core.plugin import Plugin
from corec.messages.user_data import ROLES
from corec.plugins.capital_pool import repository as pool_repo
from corec.plugins.capital_pool.config import CapitalPoolConfig
from corec.plugins.capital_pool.plugin import CapitalPoolPlugin
from corec.plugins.user_management.config import UserManagementConfig
from corec.plugins.user_management.plugin import UserManagementPlugin
from corec.plugins.user_management.service import UserService, check_name, check_role

app = typer.Typer(
    help="Users of the API: add, password, token, revoke, list.", no_args_is_help=True
)
T = TypeVar("T")
NAME, POOL = UserManagementPlugin.name, CapitalPoolPlugin.name

PasswordStdin = typer.Option(
    False,
    "--password-stdin",
    help="Read the password from stdin (one line; the trailing newline is dropped).",
)


def _read_stdin_password() -> str:
    text = sys.stdin.read()
    password = text.removesuffix("\n").removesuffix("\r")
    if not password:
        fail("--password-stdin: no password on stdin")
    return password


def _prompt_password() -> str:
    if not sys.stdin.isatty():
        fail("no terminal to ask for the password: pass it with --password-stdin")
    first = getpass.getpass("new password: ")
    if getpass.getpass("again: ") != first:
        fail("the two passwords differ; nothing was changed")
    return first


async def _require_member(cfg: CorecConfig, classes: dict[str, type[Plugin]], member: str) -> None:
    """Raise InvalidInput unless ``member`` is a pool member: configured under
    ``capital_pool.members`` or stored in capital_pool's database."""
    section = cfg.sections.get(POOL)
    if not isinstance(section, CapitalPoolConfig):
        raise InvalidInput(
            f"--member {member!r}: cannot check it, the {POOL} plugin is not enabled in {cfg.source}"
        )
    if member in {m.name for m in section.members}:
        return
    store = await open_store(cfg, classes, POOL, migrate=False)
    names: set[str] = set()
    if store is not None:
        try:
            names = {str(row["name"]) for row in await pool_repo.member_rows(store)}
        finally:
            await store.dispose()
    if member not in names:
        raise InvalidInput(
            f"--member {member!r}: no such pool member (see `corec members list`; "
            "`corec members add` registers one)"
        )


def with_user_service(
    config: Path | None,
    command: Callable[[UserService], Awaitable[T]],
    *,
    member: str | None = None,
    migrate: bool = True,
) -> T | None:
    """Run ``command`` on user_management's service over its store (migrated when
    ``migrate``; without it, ``None`` is returned if the store was never created).
    ``member``: first check that this pool member exists (exit 2 if not)."""
    cfg, classes = load(config, log_to_file=migrate)
    section = cfg.sections.get(NAME)
    if not isinstance(section, UserManagementConfig):
        fail(f"the {NAME} plugin is not enabled in {cfg.source}")

    async def work() -> T | None:
        if member is not None:
            await _require_member(cfg, classes, member)
        store = await open_store(cfg, classes, NAME, migrate=migrate)
        if store is None:
            return None
        try:
            return await command(UserService(store, section))
        finally:
            await store.dispose()

    return run_async(work)


def _checked(check: Callable[[str], Any], value: str) -> None:
    try:
        check(value)
    except InvalidInput as exc:
        fail(str(exc))


@app.command()
def add(
    name: str = typer.Argument(..., help="The user's name (lower-case letters, digits, _ . @ -)."),
    role: str = typer.Option(..., "--role", help=f"One of {', '.join(ROLES)}."),
    member: str | None = typer.Option(
        None, "--member", help="The pool member this user is (required for --role member)."
    ),
    password_stdin: bool = PasswordStdin,
    config: Path | None = ConfigOption,
) -> None:
    """Add a user. Without --password-stdin they can only use API tokens (`corec users
    token`) until `corec users password NAME` sets a password."""
    _checked(check_name, name)
    _checked(check_role, role)
    if role == "member" and member is None:
        fail("--member is required for --role member (the pool member this user is)")
    password = _read_stdin_password() if password_stdin else None
    added = with_user_service(
        config,
        lambda service: service.add_user(name, role, member=member, password=password),
        member=member,
    )
    assert added is not None
    linked = f", member {added.member}" if added.member else ""
    login = "password set" if password else "no password yet: API tokens only"
    console.print(f"user {name} added ({added.role}{linked}; {login})", highlight=False)


@app.command()
def password(
    name: str = typer.Argument(..., help="The user."),
    password_stdin: bool = PasswordStdin,
    config: Path | None = ConfigOption,
) -> None:
    """Set or replace a user's password (asked twice on a terminal, or --password-stdin).
    Their API tokens and sessions keep working."""
    _checked(check_name, name)
    secret = _read_stdin_password() if password_stdin else _prompt_password()
    with_user_service(config, lambda service: service.set_password(name, secret))
    console.print(f"password of {name} set", highlight=False)


@app.command()
def token(
    name: str = typer.Argument(..., help="The user."),
    ttl_days: int | None = typer.Option(
        None,
        "--ttl-days",
        min=0,
        help="Days until it expires (default: user_management.api_token_ttl_days, 90); 0: never.",
    ),
    label: str = typer.Option("", "--label", help="What it is for (shown in logs)."),
    config: Path | None = ConfigOption,
) -> None:
    """Make an API token for a user and print it: only the token, on stdout, once (it is
    stored as a hash and cannot be shown again). Use it as `Authorization: Bearer ...`."""
    _checked(check_name, name)
    issued = with_user_service(
        config, lambda service: service.create_api_token(name, ttl_days=ttl_days, label=label)
    )
    assert issued is not None
    until = (
        "never expires"
        if issued.expires_ts_ns is None
        else f"expires {format_ts(issued.expires_ts_ns)}"
    )
    err_console.print(
        f"API token {issued.token_id} for {name} ({until}); shown once, store it now:",
        highlight=False,
    )
    sys.stdout.write(issued.token + "\n")
    sys.stdout.flush()


@app.command()
def revoke(
    name: str = typer.Argument(..., help="The user."),
    config: Path | None = ConfigOption,
) -> None:
    """Revoke a user: no more logins, and every token of theirs stops working (on a
    running node within a few seconds). The name stays taken."""
    _checked(check_name, name)
    revoked = with_user_service(config, lambda service: service.revoke_user(name))
    console.print(f"user {name} revoked ({revoked} working token(s) revoked)", highlight=False)


@app.command("list")
def list_(
    config: Path | None = ConfigOption,
    as_json: bool = typer.Option(False, "--json", help="Print a JSON array."),
) -> None:
    """Every user, newest first: role, pool member, when added, working tokens, revoked."""

    async def rows(service: UserService) -> list[dict[str, Any]]:
        _total, items = await service.list_users()
        return [msgspec.to_builtins(item) for item in items]

    users = with_user_service(config, rows, migrate=False) or []
    if as_json:
        print_json(users)
        return
    table = Table(title=f"{len(users)} user(s), newest first", title_justify="left")
    for column in ("user", "role", "member", "added", "tokens", "revoked"):
        table.add_column(column)
    for row in users:
        table.add_row(
            row["user"],
            row["role"],
            row["member"] or "",
            format_ts(row["created_ts_ns"]),
            str(row["tokens"]),
            "yes" if row["revoked"] else "no",
        )
    console.print(table)
