"""UserService on real stores (SQLite file and PostgreSQL): passwords, API tokens,
sessions, revocation, expiry, the failed-login limiter, listing."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from sqlalchemy import select

from corec.core.clock import NS_PER_S
from corec.core.errors import InvalidInput
from corec.core.queries import Refused
from corec.core.store import Store
from corec.messages.user_data import (
    AuthenticateRequest,
    LoginRequest,
    LogoutRequest,
    Principal,
    RefreshRequest,
    TokenPair,
    UsersPage,
    UsersRequest,
)
from corec.plugins.user_management import models as m
from corec.plugins.user_management.config import UserManagementConfig
from corec.plugins.user_management.service import (
    INITIAL_ADMIN_FILE,
    UnknownUser,
    UserExists,
    UserRevoked,
    UserService,
)

from .conftest import WallClock, all_rows

PASSWORD = "correct horse battery staple"
DAY_S = 86_400


def login(user: str = "alice", password: str = PASSWORD, client: str = "10.0.0.1") -> LoginRequest:
    return LoginRequest(user=user, password=password, client=client)


async def auth(service: UserService, token: str) -> Principal | Refused:
    return await service.authenticate(AuthenticateRequest(token=token))


async def signed_in(service: UserService, user: str = "alice") -> TokenPair:
    pair = await service.login(login(user))
    assert isinstance(pair, TokenPair), pair
    return pair


def forbidden(reply: object) -> bool:
    return isinstance(reply, Refused) and reply.code == "forbidden"


# -- passwords and API tokens ----------------------------------------------------------


async def test_passwords_are_stored_as_argon2id_never_in_plaintext(store: Store) -> None:
    service = UserService(store, UserManagementConfig())  # default argon2 parameters
    await service.add_user("alice", "admin", password=PASSWORD)
    await service.set_password("alice", PASSWORD + " two")
    query = select(m.users.c.password_hash).where(m.users.c.name == "alice")
    stored = await store.read(lambda conn: conn.execute(query).scalar_one())
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    everything = repr(await all_rows(store))
    assert PASSWORD not in everything
    assert "battery" not in everything
    assert forbidden(await service.login(login()))
    assert isinstance(await service.login(login(password=PASSWORD + " two")), TokenPair)


async def test_an_api_token_is_shown_once_stored_as_sha256_and_authenticates(
    service: UserService, store: Store, clock: WallClock
) -> None:
    await service.add_user("ci", "viewer")
    issued = await service.create_api_token("ci", label="grafana")
    assert issued.token.startswith("corec_api_") and len(issued.token) >= 50
    assert "***" in repr(issued) and issued.token not in repr(issued)
    rows = await all_rows(store)
    token_row = next(r for r in rows if "token_digest" in r)
    assert token_row["token_digest"] == hashlib.sha256(issued.token.encode()).hexdigest()
    assert token_row["label"] == "grafana"
    assert token_row["expires_ts_ns"] == clock.now + 90 * DAY_S * NS_PER_S  # configured default
    assert issued.token not in repr(rows)
    assert await auth(service, issued.token) == Principal(user="ci", role="viewer", member=None)
    assert forbidden(await auth(service, issued.token + "x"))
    assert forbidden(await auth(service, "corec_api_" + "A" * 43))


async def test_api_token_lifetime_in_days_or_never(service: UserService, clock: WallClock) -> None:
    await service.add_user("ci", "viewer")
    week = await service.create_api_token("ci", ttl_days=7)
    forever = await service.create_api_token("ci", ttl_days=0)
    assert forever.expires_ts_ns is None
    clock.advance(7 * DAY_S - 1)
    assert isinstance(await auth(service, week.token), Principal)
    clock.advance(1)
    assert forbidden(await auth(service, week.token))
    clock.advance(3650 * DAY_S)
    assert isinstance(await auth(service, forever.token), Principal)
    with pytest.raises(InvalidInput, match="ttl_days"):
        await service.create_api_token("ci", ttl_days=-1)


async def test_a_user_without_password_uses_tokens_until_one_is_set(service: UserService) -> None:
    await service.add_user("bot", "viewer")
    assert forbidden(await service.login(login("bot", "")))
    assert forbidden(await service.login(login("bot")))
    token = (await service.create_api_token("bot")).token
    assert isinstance(await auth(service, token), Principal)
    await service.set_password("bot", PASSWORD)
    assert isinstance(await service.login(login("bot")), TokenPair)


# -- users, roles, members -------------------------------------------------------------


async def test_roles_names_and_member_links_are_checked(service: UserService) -> None:
    with pytest.raises(InvalidInput, match="role 'boss'"):
        await service.add_user("alice", "boss")
    with pytest.raises(InvalidInput, match=r"^member: role 'member' needs"):
        await service.add_user("alice", "member")
    with pytest.raises(InvalidInput, match=r"^member 'Bob!'"):
        await service.add_user("alice", "member", member="Bob!")
    with pytest.raises(InvalidInput, match=r"^user 'Alice'"):
        await service.add_user("Alice", "viewer")
    with pytest.raises(InvalidInput, match=r"^password: at least 12 characters needed, got 5"):
        await service.add_user("alice", "viewer", password="short")
    assert await service.list_users() == (0, ())  # nothing was written

    made = await service.add_user("alice", "member", member="alice", password=PASSWORD)
    assert made == Principal(user="alice", role="member", member="alice")
    with pytest.raises(UserExists, match="'alice' exists already"):
        await service.add_user("alice", "viewer")
    pair = await signed_in(service)
    assert pair.principal == made
    assert await auth(service, pair.access_token) == made


async def test_unknown_users_are_refused_clearly(service: UserService) -> None:
    with pytest.raises(UnknownUser, match="no user named 'nobody'"):
        await service.create_api_token("nobody")
    with pytest.raises(UnknownUser):
        await service.set_password("nobody", PASSWORD)
    with pytest.raises(UnknownUser):
        await service.revoke_user("nobody")
    reply = await service.login(login("nobody"))
    assert isinstance(reply, Refused) and reply.code == "forbidden"
    assert reply.message == "user or password not accepted"  # same as a wrong password


async def test_users_are_listed_newest_first_with_working_tokens(
    service: UserService, clock: WallClock
) -> None:
    await service.add_user("alice", "admin", password=PASSWORD)
    clock.advance(1)
    await service.add_user("bob", "member", member="bob")
    clock.advance(1)
    await service.add_user("carol", "viewer")
    await signed_in(service)  # access + refresh
    await service.create_api_token("alice")
    await service.create_api_token("carol")
    await service.revoke_user("carol")

    reply = await service.users(UsersRequest(limit=2, offset=0))
    assert isinstance(reply, UsersPage)
    assert reply.total == 3
    assert [(r.user, r.role, r.member, r.tokens, r.revoked) for r in reply.items] == [
        ("carol", "viewer", None, 0, True),
        ("bob", "member", "bob", 0, False),
    ]
    rest = await service.users(UsersRequest(limit=2, offset=2))
    assert isinstance(rest, UsersPage)
    assert [(r.user, r.tokens, r.created_ts_ns) for r in rest.items] == [
        ("alice", 3, clock.now - 2 * NS_PER_S)
    ]
    clock.advance(900)  # the access token expires
    assert (await service.list_users())[1][2].tokens == 2
    bad = await service.users(UsersRequest(limit=0))
    assert isinstance(bad, Refused) and (bad.code, bad.field) == ("invalid", "limit")
    bad = await service.users(UsersRequest(offset=-1))
    assert isinstance(bad, Refused) and (bad.code, bad.field) == ("invalid", "offset")


# -- revocation, expiry, sessions ------------------------------------------------------


async def test_a_revoked_users_tokens_are_refused_and_login_is_disabled(
    service: UserService, store: Store, clock: WallClock
) -> None:
    await service.add_user("alice", "admin", password=PASSWORD)
    api = (await service.create_api_token("alice")).token
    pair = await signed_in(service)
    assert isinstance(await auth(service, api), Principal)
    assert isinstance(await auth(service, pair.access_token), Principal)

    # revoked by another process (the CLI): the node's cached lookups end within 5 s
    cli = UserService(store, UserManagementConfig(), wall_ns=clock)
    assert await cli.revoke_user("alice") == 3  # api, access, refresh
    clock.advance(4)
    assert isinstance(await auth(service, api), Principal)  # cached (auth_cache_ttl_s = 5)
    clock.advance(1)
    assert forbidden(await auth(service, api))
    assert forbidden(await auth(service, pair.access_token))
    assert forbidden(await service.refresh(RefreshRequest(refresh_token=pair.refresh_token)))
    assert forbidden(await service.login(login()))
    with pytest.raises(UserRevoked):
        await cli.create_api_token("alice")
    with pytest.raises(UserRevoked):
        await cli.set_password("alice", PASSWORD)
    assert await cli.revoke_user("alice") == 0


async def test_a_revocation_through_this_service_is_immediate(service: UserService) -> None:
    await service.add_user("alice", "admin", password=PASSWORD)
    api = (await service.create_api_token("alice")).token
    assert isinstance(await auth(service, api), Principal)
    assert service.cached == 1
    await service.revoke_user("alice")
    assert service.cached == 0
    assert forbidden(await auth(service, api))


async def test_an_access_token_expires_after_its_ttl_on_the_wall_clock(
    service: UserService, clock: WallClock
) -> None:
    await service.add_user("alice", "admin", password=PASSWORD)
    pair = await signed_in(service)
    assert pair.access_expires_ts_ns == clock.now + 900 * NS_PER_S
    assert pair.refresh_expires_ts_ns == clock.now + 7 * DAY_S * NS_PER_S
    clock.advance(899)
    assert isinstance(await auth(service, pair.access_token), Principal)  # and cached
    clock.advance(1)
    assert forbidden(await auth(service, pair.access_token))  # the cache ends with the token
    assert forbidden(await auth(service, pair.refresh_token))  # never a bearer token
    fresh = await service.refresh(RefreshRequest(refresh_token=pair.refresh_token))
    assert isinstance(fresh, TokenPair)
    assert isinstance(await auth(service, fresh.access_token), Principal)
    clock.advance(7 * DAY_S)
    assert forbidden(await service.refresh(RefreshRequest(refresh_token=fresh.refresh_token)))


async def test_refresh_rotates_and_a_reused_refresh_token_ends_the_session(
    service: UserService,
) -> None:
    await service.add_user("alice", "admin", password=PASSWORD)
    first = await signed_in(service)
    other = await signed_in(service)  # another session, untouched
    second = await service.refresh(RefreshRequest(refresh_token=first.refresh_token))
    assert isinstance(second, TokenPair)
    assert second.principal == first.principal
    assert (
        len({first.access_token, first.refresh_token, second.access_token, second.refresh_token})
        == 4
    )
    assert isinstance(await auth(service, second.access_token), Principal)

    reused = await service.refresh(RefreshRequest(refresh_token=first.refresh_token))
    assert isinstance(reused, Refused) and (reused.code, reused.field) == (
        "forbidden",
        "refresh_token",
    )
    assert forbidden(await service.refresh(RefreshRequest(refresh_token=second.refresh_token)))
    assert forbidden(await auth(service, second.access_token))
    assert service.counts["refresh_reuse"] == 1
    assert isinstance(await auth(service, other.access_token), Principal)
    assert isinstance(
        await service.refresh(RefreshRequest(refresh_token=other.refresh_token)), TokenPair
    )


async def test_logout_ends_the_session_or_the_api_token(service: UserService) -> None:
    await service.add_user("alice", "admin", password=PASSWORD)
    api = (await service.create_api_token("alice")).token
    pair = await signed_in(service)
    assert isinstance(await auth(service, pair.access_token), Principal)
    out = await service.logout(LogoutRequest(token=pair.access_token))
    assert out == Principal(user="alice", role="admin")
    assert forbidden(await auth(service, pair.access_token))
    assert forbidden(await service.refresh(RefreshRequest(refresh_token=pair.refresh_token)))
    assert isinstance(await auth(service, api), Principal)
    assert forbidden(await service.logout(LogoutRequest(token=pair.access_token)))
    assert isinstance(await service.logout(LogoutRequest(token=api)), Principal)
    assert forbidden(await auth(service, api))


# -- the failed-login limiter ----------------------------------------------------------


async def test_five_failed_logins_lock_the_user_even_for_the_right_password(
    service: UserService, clock: WallClock
) -> None:
    await service.add_user("alice", "admin", password=PASSWORD)
    for _ in range(5):
        assert forbidden(await service.login(login(password="wrong password!")))
        clock.advance(1)
    sixth = await service.login(login(password="wrong password!"))
    assert isinstance(sixth, Refused)
    assert (sixth.code, sixth.retry_after_s) == ("unavailable", 55)  # first failure + 60 s
    assert "try again in 55 s" in sixth.message
    right = await service.login(login(client="10.9.9.9"))  # right password, other client
    assert isinstance(right, Refused) and right.code == "unavailable"
    clock.advance(54)
    assert isinstance(await service.login(login()), Refused)
    clock.advance(1)
    assert isinstance(await service.login(login()), TokenPair)
    assert service.counts["login_limited"] == 3
    assert service.counts["login_failures"] == 5


async def test_failed_logins_from_one_client_lock_that_client_for_every_user(
    service: UserService, clock: WallClock
) -> None:
    await service.add_user("alice", "admin", password=PASSWORD)
    for name in ("u1", "u2", "u3", "u4", "u5"):
        assert forbidden(await service.login(login(name, client="6.6.6.6")))
    locked = await service.login(login(client="6.6.6.6"))
    assert isinstance(locked, Refused) and (locked.code, locked.retry_after_s) == (
        "unavailable",
        60,
    )
    assert isinstance(await service.login(login(client="10.0.0.1")), TokenPair)


async def test_a_good_login_clears_the_users_failures(service: UserService) -> None:
    await service.add_user("alice", "admin", password=PASSWORD)
    for _ in range(4):
        assert forbidden(await service.login(login(password="wrong password!")))
    await signed_in(service)
    for _ in range(4):
        assert forbidden(await service.login(login(password="wrong password!", client="10.0.0.2")))
    assert isinstance(await service.login(login(client="10.0.0.3")), TokenPair)


# -- the initial admin -----------------------------------------------------------------


async def test_the_initial_admin_gets_a_random_password_in_a_private_file(
    service: UserService, tmp_path: Path
) -> None:
    path = await service.ensure_initial_admin(tmp_path / "var")
    assert path == tmp_path / "var" / INITIAL_ADMIN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    password = path.read_text(encoding="utf-8").strip()
    assert len(password) == 24
    pair = await service.login(login("admin", password))
    assert isinstance(pair, TokenPair) and pair.principal.role == "admin"
    assert await service.ensure_initial_admin(tmp_path / "var") is None
    assert path.read_text(encoding="utf-8").strip() == password
    assert [p.name for p in path.parent.iterdir()] == [INITIAL_ADMIN_FILE]


async def test_no_initial_admin_when_users_exist(service: UserService, tmp_path: Path) -> None:
    await service.add_user("alice", "admin", password=PASSWORD)
    assert await service.ensure_initial_admin(tmp_path) is None
    assert not (tmp_path / INITIAL_ADMIN_FILE).exists()
