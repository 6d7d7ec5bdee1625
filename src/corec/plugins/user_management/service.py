"""Users, roles, passwords and tokens: the one code path of the node's endpoints and the
``corec users`` commands.

:class:`UserService` works on user_management's :class:`~corec.core.store.Store`, one
short transaction per call (the CLI may write while a node runs on the same SQLite
file). Administration (``add_user``, ``set_password``, ``create_api_token``,
``revoke_user``) raises :class:`~corec.core.errors.InvalidInput` subclasses for a bad
value; the endpoints (``authenticate``, ``login``, ``refresh``, ``logout``, ``users``)
return :class:`~corec.core.queries.Refused` instead of raising.

Time: every timestamp here (token expiry, created/revoked times, the failed-login
window) is the *wall clock* (``time.time_ns`` unless a test injects ``wall_ns``), never
the node clock: a node replaying a recording runs on the recording's time, but a token
issued during the demo must still expire 15 minutes of real time later.

Sessions: a login issues an access token and a refresh token sharing a ``session_id``.
A refresh revokes the presented refresh token and issues a new pair in the same
session. A refresh token presented again after it was rotated is taken as stolen: the
whole session is revoked (OAuth 2.0 Security BCP, refresh token reuse detection).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import structlog
from sqlalchemy import Connection, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from corec.core.clock import NS_PER_S
from corec.core.errors import InvalidInput
from corec.core.ids import new_id
from corec.core.queries import MAX_PAGE_LIMIT, Refused, page
from corec.core.store import Store
from corec.messages.user_data import (
    ROLES,
    AuthenticateRequest,
    LoginRequest,
    LogoutRequest,
    Principal,
    RefreshRequest,
    Role,
    TokenPair,
    UserChange,
    UserRow,
    UsersPage,
    UsersRequest,
)
from corec.plugins.user_management import models as m
from corec.plugins.user_management.config import DAY_S, UserManagementConfig
from corec.plugins.user_management.limiter import FailedLoginLimiter
from corec.plugins.user_management.tokens import (
    Passwords,
    TokenKind,
    new_password,
    new_token,
    token_digest,
)

log = structlog.get_logger("corec.user_management")

INITIAL_ADMIN: Final = "admin"
INITIAL_ADMIN_FILE: Final = "initial-admin-password"
MAX_PASSWORD_CHARS: Final = 1024
MAX_LABEL_CHARS: Final = 200
MAX_CACHED: Final = 10_000
_NAME = re.compile(r"[a-z0-9][a-z0-9_.@-]{0,63}")
_NOT_ACCEPTED: Final = "user or password not accepted"


class UnknownUser(InvalidInput):
    """No user has that name."""


class UserExists(InvalidInput):
    """A user with that name exists already (revoked users keep their name)."""


class UserRevoked(InvalidInput):
    """The user is revoked: nothing more can be done for them."""


def check_name(name: str, field: str = "user") -> str:
    """``name`` if it is a valid user (or member) name: 1–64 of lower-case letters,
    digits, ``_ . @ -``, starting with a letter or digit.

    Raises:
        InvalidInput: naming ``field`` and what is expected.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput(
            f"{field} {name!r}: expected 1-64 lower-case letters, digits or _ . @ -, "
            "starting with a letter or digit"
        )
    return name


def check_role(role: str) -> Role:
    """``role`` if it is one of ``admin``, ``member``, ``viewer``.

    Raises:
        InvalidInput: naming the field ``role`` and the roles.
    """
    if role not in ROLES:
        raise InvalidInput(f"role {role!r}: expected one of {', '.join(ROLES)}")
    return role  # type: ignore[return-value]


@dataclass(frozen=True)
class IssuedToken:
    """An API token just made. ``token`` is shown once and never stored.

    Fields:
        token: the bearer token.
        token_id: its public handle (UUIDv7), safe to log and show.
        user: whose it is.
        expires_ts_ns: when it stops working (UTC ns, wall clock); ``None``: never.
    """

    token: str
    token_id: str
    user: str
    expires_ts_ns: int | None

    def __repr__(self) -> str:
        return (
            f"IssuedToken(token='***', token_id={self.token_id!r}, user={self.user!r}, "
            f"expires_ts_ns={self.expires_ts_ns!r})"
        )


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (mode 0600, also when the
    file existed), creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class _Cached:
    principal: Principal
    until_ns: int


def _principal(row: Any) -> Principal:
    return Principal(user=row.name, role=row.role, member=row.member)


def _change(conn: Connection, user: str, role: str, change: UserChange, ts_ns: int) -> None:
    conn.execute(
        insert(m.user_changes), {"user_name": user, "role": role, "change": change, "ts_ns": ts_ns}
    )


def _user_for_update(conn: Connection, name: str) -> Any:
    """The user's row, locked until the transaction ends (PostgreSQL; SQLite's
    ``BEGIN IMMEDIATE`` already serializes writers), so a token cannot be issued for a
    user whose revocation commits at the same moment."""
    query = select(m.users).where(m.users.c.name == name).with_for_update()
    return conn.execute(query).first()


def _live(now_ns: int) -> Any:
    """Token rows that work at ``now_ns``: not revoked and not expired."""
    return and_(
        m.tokens.c.revoked_ts_ns.is_(None),
        or_(m.tokens.c.expires_ts_ns.is_(None), m.tokens.c.expires_ts_ns > now_ns),
    )


class UserService:
    """Users, passwords and tokens over user_management's store (see the module docstring).

    Args:
        store: user_management's migrated store.
        config: the plugin's settings (TTLs, limiter, password length).
        wall_ns: the wall clock, UTC ns (tests move it); default ``time.time_ns``.
        passwords: the password hasher (default argon2id parameters).
    """

    def __init__(
        self,
        store: Store,
        config: UserManagementConfig,
        *,
        wall_ns: Callable[[], int] = time.time_ns,
        passwords: Passwords | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self._wall_ns = wall_ns
        self._passwords = passwords or Passwords()
        self._cache: dict[str, _Cached] = {}
        self.limiter = FailedLoginLimiter(config.login_max_failures, config.login_window_s)
        self.counts: Counter[str] = Counter()
        """``authenticated``, ``auth_refused``, ``logins``, ``login_failures``,
        ``login_limited``, ``refreshes``, ``refresh_reuse``, ``logouts``."""

    # -- administration (CLI) ---------------------------------------------------------

    def _check_password(self, password: str) -> None:
        if not isinstance(password, str) or not password.strip():
            raise InvalidInput("password: must not be empty")
        if len(password) < self.config.min_password_chars:
            raise InvalidInput(
                f"password: at least {self.config.min_password_chars} characters needed, "
                f"got {len(password)}"
            )
        if len(password) > MAX_PASSWORD_CHARS:
            raise InvalidInput(f"password: at most {MAX_PASSWORD_CHARS} characters")

    async def _hash(self, password: str | None) -> str | None:
        if password is None:
            return None
        self._check_password(password)
        return await asyncio.to_thread(self._passwords.hash, password)

    async def add_user(
        self, name: str, role: str, *, member: str | None = None, password: str | None = None
    ) -> Principal:
        """Add user ``name`` with ``role``; ``member`` links them to a pool member
        (required for role ``member``; the caller checks that the member exists). With no
        ``password`` the user can only use API tokens until :meth:`set_password`.

        Returns:
            The new user as a :class:`Principal`.

        Raises:
            InvalidInput: a bad name, role, member name or password (the message names
                the field; never quotes the password).
            UserExists: ``name`` is taken (also by a revoked user).
        """
        check_name(name)
        checked_role = check_role(role)
        if member is not None:
            check_name(member, "member")
        elif checked_role == "member":
            raise InvalidInput(f"member: role 'member' needs the pool member that {name} is")
        hashed = await self._hash(password)
        now = self._wall_ns()

        def write(conn: Connection) -> None:
            if conn.execute(select(m.users.c.name).where(m.users.c.name == name)).first():
                raise UserExists(f"user {name!r} exists already (see `corec users list`)")
            conn.execute(
                insert(m.users),
                {
                    "name": name,
                    "role": checked_role,
                    "member": member,
                    "password_hash": hashed,
                    "created_ts_ns": now,
                    "updated_ts_ns": now,
                    "revoked_ts_ns": None,
                },
            )
            _change(conn, name, checked_role, "added", now)

        try:
            await self.store.write(write)
        except IntegrityError as exc:  # added by another writer at the same moment
            raise UserExists(f"user {name!r} exists already (see `corec users list`)") from exc
        log.info(
            "user_added", user=name, role=checked_role, member=member, login=hashed is not None
        )
        return Principal(user=name, role=checked_role, member=member)

    async def set_password(self, name: str, password: str) -> None:
        """Set (or replace) ``name``'s password. Their tokens keep working.

        Raises:
            InvalidInput: a password too short, too long or blank.
            UnknownUser, UserRevoked: no such user, or revoked.
        """
        hashed = await self._hash(password)
        now = self._wall_ns()

        def write(conn: Connection) -> None:
            row = self._usable_user(conn, name)
            conn.execute(
                update(m.users)
                .where(m.users.c.name == name)
                .values(password_hash=hashed, updated_ts_ns=now)
            )
            _change(conn, name, row.role, "password_set", now)

        await self.store.write(write)
        log.info("user_password_set", user=name)

    def _usable_user(self, conn: Connection, name: str) -> Any:
        row = _user_for_update(conn, name)
        if row is None:
            raise UnknownUser(f"no user named {name!r} (see `corec users list`)")
        if row.revoked_ts_ns is not None:
            raise UserRevoked(f"user {name!r} is revoked")
        return row

    async def create_api_token(
        self, name: str, *, ttl_days: int | None = None, label: str = ""
    ) -> IssuedToken:
        """A new API token for ``name``, valid ``ttl_days`` days (``None``: the configured
        ``api_token_ttl_days``; ``0``: never expires). Only its digest is stored.

        Raises:
            InvalidInput: a negative ``ttl_days`` or a label over 200 characters.
            UnknownUser, UserRevoked: no such user, or revoked.
        """
        days = self.config.api_token_ttl_days if ttl_days is None else ttl_days
        if days < 0:
            raise InvalidInput(f"ttl_days: must be >= 0 (0: never expires), got {days}")
        if len(label) > MAX_LABEL_CHARS:
            raise InvalidInput(f"label: at most {MAX_LABEL_CHARS} characters, got {len(label)}")
        now = self._wall_ns()
        expires = None if days == 0 else now + days * DAY_S * NS_PER_S
        token, token_id = new_token("api"), new_id()

        def write(conn: Connection) -> None:
            row = self._usable_user(conn, name)
            self._insert_token(conn, token, token_id, name, "api", label, None, now, expires)
            _change(conn, name, row.role, "token_created", now)

        await self.store.write(write)
        log.info("api_token_created", user=name, id=token_id, label=label, expires_ts_ns=expires)
        return IssuedToken(token=token, token_id=token_id, user=name, expires_ts_ns=expires)

    @staticmethod
    def _insert_token(
        conn: Connection,
        token: str,
        token_id: str,
        user: str,
        kind: TokenKind,
        label: str,
        session_id: str | None,
        now_ns: int,
        expires_ts_ns: int | None,
    ) -> None:
        conn.execute(
            insert(m.tokens),
            {
                "token_digest": token_digest(token),
                "token_id": token_id,
                "user_name": user,
                "kind": kind,
                "label": label,
                "session_id": session_id,
                "created_ts_ns": now_ns,
                "expires_ts_ns": expires_ts_ns,
                "revoked_ts_ns": None,
            },
        )

    async def revoke_user(self, name: str) -> int:
        """Revoke ``name``: no more logins, and every token of theirs stops working (on
        this node at once; on a node running beside the CLI within
        ``auth_cache_ttl_s``). Revoking a revoked user changes nothing.

        Returns:
            How many working tokens were revoked.

        Raises:
            UnknownUser: no such user.
        """
        now = self._wall_ns()

        def write(conn: Connection) -> int:
            row = _user_for_update(conn, name)
            if row is None:
                raise UnknownUser(f"no user named {name!r} (see `corec users list`)")
            if row.revoked_ts_ns is None:
                conn.execute(
                    update(m.users)
                    .where(m.users.c.name == name)
                    .values(revoked_ts_ns=now, updated_ts_ns=now)
                )
                _change(conn, name, row.role, "revoked", now)
            result = conn.execute(
                update(m.tokens)
                .where(m.tokens.c.user_name == name, m.tokens.c.revoked_ts_ns.is_(None))
                .values(revoked_ts_ns=now)
            )
            return int(result.rowcount)

        revoked = await self.store.write(write)
        self.forget_user(name)
        log.info("user_revoked", user=name, revoked_credentials=revoked)
        return revoked

    async def list_users(
        self, limit: int = MAX_PAGE_LIMIT, offset: int = 0
    ) -> tuple[int, tuple[UserRow, ...]]:
        """``(total, page)`` of users, newest first, with their working-token counts.

        Raises:
            ValueError: ``limit`` outside 1..1000 or a negative ``offset``.
        """
        now = self._wall_ns()
        live = (
            select(m.tokens.c.user_name, func.count().label("n"))
            .where(_live(now))
            .group_by(m.tokens.c.user_name)
            .subquery()
        )
        query = (
            select(m.users, func.coalesce(live.c.n, 0).label("tokens"))
            .outerjoin(live, live.c.user_name == m.users.c.name)
            .order_by(m.users.c.created_ts_ns.desc(), m.users.c.name)
        )
        rows = await self.store.read(lambda conn: conn.execute(query).all())
        items = [
            UserRow(
                user=r.name,
                role=r.role,
                member=r.member,
                created_ts_ns=r.created_ts_ns,
                tokens=int(r.tokens),
                revoked=r.revoked_ts_ns is not None,
            )
            for r in rows
        ]
        return page(items, limit, offset)

    async def ensure_initial_admin(self, data_dir: Path) -> Path | None:
        """On a store with no user at all, add ``admin`` (role admin) with a random
        password written to ``<data_dir>/initial-admin-password`` (mode 0600, replaced
        if present); log only that path. Safe when several nodes start at once.

        Returns:
            The password file, or ``None`` when users existed already.

        Raises:
            OSError: the file cannot be written (nothing is stored then).
        """
        count = select(func.count()).select_from(m.users)
        if await self.store.read(lambda conn: conn.execute(count).scalar_one()):
            return None
        password = new_password()
        hashed = await asyncio.to_thread(self._passwords.hash, password)
        path = data_dir / INITIAL_ADMIN_FILE
        partial = path.with_name(f".{INITIAL_ADMIN_FILE}.{os.getpid()}")
        await asyncio.to_thread(_write_private, partial, f"{password}\n")
        now = self._wall_ns()

        def write(conn: Connection) -> bool:
            if conn.execute(count).scalar_one():
                return False
            conn.execute(
                insert(m.users),
                {
                    "name": INITIAL_ADMIN,
                    "role": "admin",
                    "member": None,
                    "password_hash": hashed,
                    "created_ts_ns": now,
                    "updated_ts_ns": now,
                    "revoked_ts_ns": None,
                },
            )
            _change(conn, INITIAL_ADMIN, "admin", "added", now)
            return True

        try:
            created = await self.store.write(write)
        except IntegrityError:  # another node added it first
            created = False
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        if not created:
            partial.unlink(missing_ok=True)
            return None
        os.replace(partial, path)
        log.warning("initial_admin_created", path=str(path))
        return path

    async def last_change(self) -> int:
        """The newest change's sequence number (0 before the first)."""
        query = select(func.coalesce(func.max(m.user_changes.c.seq), 0))
        return int(await self.store.read(lambda conn: conn.execute(query).scalar_one()))

    async def changes_after(self, seq: int) -> list[tuple[int, str, Role, UserChange]]:
        """``(seq, user, role, change)`` of every change after ``seq``, oldest first."""
        query = (
            select(m.user_changes.c.seq, m.user_changes.c.user_name, m.user_changes.c.role)
            .add_columns(m.user_changes.c.change)
            .where(m.user_changes.c.seq > seq)
            .order_by(m.user_changes.c.seq)
        )
        rows = await self.store.read(lambda conn: conn.execute(query).all())
        return [(r.seq, r.user_name, r.role, r.change) for r in rows]

    # -- endpoints ---------------------------------------------------------------------

    def forget_user(self, name: str) -> None:
        """Drop ``name``'s remembered token lookups (their tokens were revoked)."""
        for digest in [d for d, c in self._cache.items() if c.principal.user == name]:
            del self._cache[digest]

    @property
    def cached(self) -> int:
        """How many token lookups are remembered."""
        return len(self._cache)

    def _remember(self, digest: str, principal: Principal, now: int, expires: int | None) -> None:
        ttl_ns = self.config.auth_cache_ttl_s * NS_PER_S
        if ttl_ns == 0:
            return
        if len(self._cache) >= MAX_CACHED:
            self._cache = {d: c for d, c in self._cache.items() if c.until_ns > now}
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
        until = now + ttl_ns if expires is None else min(now + ttl_ns, expires)
        self._cache[digest] = _Cached(principal, until)

    async def _token_row(self, digest: str) -> Any:
        query = (
            select(
                m.tokens.c.kind,
                m.tokens.c.session_id,
                m.tokens.c.expires_ts_ns,
                m.tokens.c.revoked_ts_ns.label("token_revoked_ts_ns"),
                m.users.c.name,
                m.users.c.role,
                m.users.c.member,
                m.users.c.revoked_ts_ns,
            )
            .join(m.users, m.users.c.name == m.tokens.c.user_name)
            .where(m.tokens.c.token_digest == digest)
        )
        return await self.store.read(lambda conn: conn.execute(query).first())

    @staticmethod
    def _works(row: Any, now: int) -> bool:
        return (
            row.token_revoked_ts_ns is None
            and row.revoked_ts_ns is None
            and (row.expires_ts_ns is None or row.expires_ts_ns > now)
        )

    async def authenticate(self, request: AuthenticateRequest) -> Principal | Refused:
        """The :class:`Principal` of an API or access token that works now, else
        ``Refused(forbidden)`` (unknown, revoked, expired, a refresh token, or the user
        revoked). Successes are remembered for ``auth_cache_ttl_s`` (never past the
        token's expiry)."""
        now = self._wall_ns()
        digest = token_digest(request.token)
        hit = self._cache.get(digest)
        if hit is not None:
            if hit.until_ns > now:
                self.counts["authenticated"] += 1
                return hit.principal
            del self._cache[digest]
        row = await self._token_row(digest)
        if row is None or row.kind == "refresh" or not self._works(row, now):
            self.counts["auth_refused"] += 1
            return Refused(code="forbidden", message="token not accepted", field="token")
        principal = _principal(row)
        self._remember(digest, principal, now, row.expires_ts_ns)
        self.counts["authenticated"] += 1
        return principal

    async def login(self, request: LoginRequest) -> TokenPair | Refused:
        """Check ``user``/``password`` and open a session (access + refresh token).

        Refused ``forbidden`` for a wrong password, an unknown or revoked user or one
        without a password (one message for all, so it does not tell which); refused
        ``unavailable`` with ``retry_after_s`` while the user name or the client has
        ``login_max_failures`` failures within ``login_window_s`` (the password is not
        checked then)."""
        now = self._wall_ns()
        keys = (f"user:{request.user[:64]}", f"client:{request.client[:128]}")
        wait_s = self.limiter.retry_after_s(keys, now)
        if wait_s is not None:
            self.counts["login_limited"] += 1
            log.warning(
                "login_rate_limited", user=request.user, client=request.client, retry_after_s=wait_s
            )
            return Refused(
                code="unavailable",
                message=f"too many failed logins; try again in {wait_s} s",
                retry_after_s=wait_s,
            )
        self.limiter.record_failure(keys, now)  # until proven good: concurrent guesses count
        user = None
        if _NAME.fullmatch(request.user):
            query = select(m.users).where(m.users.c.name == request.user)
            user = await self.store.read(lambda conn: conn.execute(query).first())
        encoded = None if user is None or user.revoked_ts_ns is not None else user.password_hash
        password = request.password[: MAX_PASSWORD_CHARS + 1]  # longer ones never match
        good = await asyncio.to_thread(self._passwords.verify, encoded, password)
        label = f"login {request.client}"[:MAX_LABEL_CHARS]
        pair = await self._open_session(request.user, label) if good else None
        if pair is None:
            self.counts["login_failures"] += 1
            reason = (
                "unknown_user"
                if user is None
                else "revoked"
                if user.revoked_ts_ns is not None
                else "no_password"
                if user.password_hash is None
                else "wrong_password"
            )
            log.info("login_failed", user=request.user, client=request.client, reason=reason)
            return Refused(code="forbidden", message=_NOT_ACCEPTED)
        self.limiter.forget(keys[0])
        self.limiter.forget(keys[1], now)
        assert encoded is not None
        if self._passwords.needs_rehash(encoded):
            await self._rehash(request.user, request.password)
        self.counts["logins"] += 1
        log.info("login", user=request.user, client=request.client)
        return pair

    async def _rehash(self, name: str, password: str) -> None:
        hashed = await asyncio.to_thread(self._passwords.hash, password)
        stmt = update(m.users).where(m.users.c.name == name).values(password_hash=hashed)
        await self.store.write(lambda conn: conn.execute(stmt))

    async def _open_session(
        self, name: str, label: str, session_id: str | None = None, rotate: str | None = None
    ) -> TokenPair | None:
        """A new access + refresh token pair for ``name`` in ``session_id`` (a new session
        when ``None``), in one transaction that first revokes the refresh token with
        digest ``rotate``; ``None`` when the user is gone or revoked, or ``rotate`` was
        revoked meanwhile (a concurrent refresh won)."""
        now = self._wall_ns()
        session = session_id or new_id()
        access, refresh = new_token("access"), new_token("refresh")
        access_expires = now + self.config.access_token_ttl_s * NS_PER_S
        refresh_expires = now + self.config.refresh_token_ttl_s * NS_PER_S

        def write(conn: Connection) -> Principal | None:
            row = _user_for_update(conn, name)
            if row is None or row.revoked_ts_ns is not None:
                return None
            if rotate is not None:
                done = conn.execute(
                    update(m.tokens)
                    .where(m.tokens.c.token_digest == rotate, m.tokens.c.revoked_ts_ns.is_(None))
                    .values(revoked_ts_ns=now)
                )
                if done.rowcount != 1:
                    return None
            insert_token = self._insert_token
            insert_token(
                conn, access, new_id(), name, "access", label, session, now, access_expires
            )
            insert_token(
                conn, refresh, new_id(), name, "refresh", label, session, now, refresh_expires
            )
            return _principal(row)

        principal = await self.store.write(write)
        if principal is None:
            return None
        return TokenPair(
            access_token=access,
            access_expires_ts_ns=access_expires,
            refresh_token=refresh,
            refresh_expires_ts_ns=refresh_expires,
            principal=principal,
        )

    async def _revoke(self, digest: str, session_id: str | None, now: int) -> int:
        """Revoke the token ``digest``, or every token of ``session_id`` when given."""
        where = (
            m.tokens.c.session_id == session_id
            if session_id is not None
            else m.tokens.c.token_digest == digest
        )
        stmt = (
            update(m.tokens)
            .where(where, m.tokens.c.revoked_ts_ns.is_(None))
            .values(revoked_ts_ns=now)
        )
        return int(await self.store.write(lambda conn: conn.execute(stmt).rowcount))

    async def refresh(self, request: RefreshRequest) -> TokenPair | Refused:
        """Trade a working refresh token for a new pair (the old one is revoked).

        Refused ``forbidden`` for an unknown, expired or revoked refresh token, or a
        revoked user. A refresh token that was already rotated (or logged out) revokes
        its whole session: someone kept a copy."""
        now = self._wall_ns()
        digest = token_digest(request.refresh_token)
        row = await self._token_row(digest)
        refused = Refused(
            code="forbidden", message="refresh token not accepted", field="refresh_token"
        )
        if row is None or row.kind != "refresh":
            return refused
        if row.token_revoked_ts_ns is not None:
            ended = await self._revoke(digest, row.session_id, now)
            if ended:
                self.counts["refresh_reuse"] += 1
                self.forget_user(row.name)
                log.warning("refresh_reused_session_revoked", user=row.name, session=row.session_id)
            return refused
        if not self._works(row, now):
            return refused
        pair = await self._open_session(row.name, "refresh", row.session_id, rotate=digest)
        if pair is None:
            return refused
        self.counts["refreshes"] += 1
        return pair

    async def logout(self, request: LogoutRequest) -> Principal | Refused:
        """Revoke the presented token: a login's access or refresh token ends its whole
        session, an API token only itself. Refused ``forbidden`` if it does not work."""
        now = self._wall_ns()
        digest = token_digest(request.token)
        row = await self._token_row(digest)
        if row is None or not self._works(row, now):
            return Refused(code="forbidden", message="token not accepted", field="token")
        await self._revoke(digest, row.session_id, now)
        self.forget_user(row.name)
        self.counts["logouts"] += 1
        log.info("logout", user=row.name, session=row.session_id)
        return _principal(row)

    async def users(self, request: UsersRequest) -> UsersPage | Refused:
        """A page of users, newest first; ``Refused(invalid)`` for a bad limit/offset."""
        if not 1 <= request.limit <= MAX_PAGE_LIMIT:
            return Refused(
                code="invalid",
                message=f"limit must be between 1 and {MAX_PAGE_LIMIT}",
                field="limit",
            )
        if request.offset < 0:
            return Refused(code="invalid", message="offset must be >= 0", field="offset")
        total, items = await self.list_users(request.limit, request.offset)
        return UsersPage(total=total, items=items)
