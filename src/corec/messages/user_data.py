"""``user_management``'s request endpoints and its ``system`` notice.

Who may use the API: users with a role (``admin``, ``member``, ``viewer``), signing in
with a password (:data:`LOGIN` → short-lived access token + rotating refresh token) or
presenting a long-lived API token made with ``corec users token``. The API asks
:data:`AUTHENTICATE` on every request and gets the caller's :class:`Principal`.

Refusals are :class:`~corec.core.queries.Refused`: ``forbidden`` for credentials not
accepted (the message never says whether the user exists), ``unavailable`` with
``retry_after_s`` when failed logins are rate-limited, ``invalid`` for a bad page.

Tokens and passwords travel in these payloads; their ``repr`` masks them, so a payload
that ends up in a log line or an error message does not leak them. Timestamps are UTC
nanoseconds of the wall clock (token expiry is real time, also during a replay).
"""

from __future__ import annotations

from typing import ClassVar, Final, Literal

import msgspec

from corec.core.events import Payload
from corec.core.queries import DEFAULT_PAGE_LIMIT
from corec.messages._checks import require_text

AUTHENTICATE: Final = "user_management.authenticate"
"""Request endpoint: :class:`AuthenticateRequest` → :class:`Principal` |
:class:`~corec.core.queries.Refused` (``forbidden``)."""

LOGIN: Final = "user_management.login"
"""Request endpoint: :class:`LoginRequest` → :class:`TokenPair` |
:class:`~corec.core.queries.Refused` (``forbidden``; ``unavailable`` when rate-limited)."""

REFRESH: Final = "user_management.refresh"
"""Request endpoint: :class:`RefreshRequest` → :class:`TokenPair` |
:class:`~corec.core.queries.Refused` (``forbidden``)."""

LOGOUT: Final = "user_management.logout"
"""Request endpoint: :class:`LogoutRequest` → :class:`Principal` |
:class:`~corec.core.queries.Refused` (``forbidden``)."""

USERS: Final = "user_management.users"
"""Request endpoint: :class:`UsersRequest` → :class:`UsersPage` |
:class:`~corec.core.queries.Refused` (``invalid``: bad ``limit``/``offset``)."""

Role = Literal["admin", "member", "viewer"]
"""``admin``: everything; ``member``: the pool's public figures and their own member's
records (``Principal.member``); ``viewer``: read-only, no member records."""

ROLES: Final[tuple[Role, ...]] = ("admin", "member", "viewer")

UserChange = Literal["added", "token_created", "revoked", "password_set"]
"""What happened to a user (:class:`UserChanged`)."""

USER_CHANGES: Final[tuple[UserChange, ...]] = ("added", "token_created", "revoked", "password_set")


def _masked(name: str, **fields: object) -> str:
    shown = ", ".join(f"{k}={v!r}" for k, v in fields.items())
    return f"{name}({shown})"


class Principal(Payload, frozen=True, kw_only=True):
    """Who a token belongs to (reply to ``authenticate`` and ``logout``).

    Fields:
        user: the user's name.
        role: see :data:`Role`.
        member: the pool member this user is (required for role ``member``; an admin may
            be linked to one too; ``None`` otherwise).
    """

    TYPE: ClassVar[str] = "principal"
    user: str
    role: Role
    member: str | None = None

    def __post_init__(self) -> None:
        require_text("user", self.user)
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {self.role!r}")
        if self.role == "member" and not self.member:
            raise ValueError("member is required for role 'member'")


class AuthenticateRequest(Payload, frozen=True, kw_only=True):
    """Whose is this token? (API token or access token; refresh tokens are refused.)

    Fields:
        token: the bearer token as presented.
    """

    TYPE: ClassVar[str] = "authenticate_request"
    token: str

    def __repr__(self) -> str:
        return _masked("AuthenticateRequest", token="***")


class LoginRequest(Payload, frozen=True, kw_only=True):
    """Sign in with a password.

    Fields:
        user: the user's name.
        password: their password, as typed.
        client: the caller's address (e.g. the remote IP), for the failed-login limiter.
    """

    TYPE: ClassVar[str] = "login_request"
    user: str
    password: str
    client: str

    def __repr__(self) -> str:
        return _masked("LoginRequest", user=self.user, password="***", client=self.client)


class TokenPair(Payload, frozen=True, kw_only=True):
    """The tokens of a signed-in session (reply to ``login`` and ``refresh``).

    Fields:
        access_token: bearer token for API calls until ``access_expires_ts_ns``.
        access_expires_ts_ns: when the access token stops working (UTC ns, wall clock).
        refresh_token: trade it for a new pair at ``refresh`` (once: it is rotated).
        refresh_expires_ts_ns: when the refresh token stops working (UTC ns, wall clock).
        principal: who signed in.
    """

    TYPE: ClassVar[str] = "token_pair"
    access_token: str
    access_expires_ts_ns: int
    refresh_token: str
    refresh_expires_ts_ns: int
    principal: Principal

    def __repr__(self) -> str:
        return _masked(
            "TokenPair",
            access_token="***",
            access_expires_ts_ns=self.access_expires_ts_ns,
            refresh_token="***",
            refresh_expires_ts_ns=self.refresh_expires_ts_ns,
            principal=self.principal,
        )


class RefreshRequest(Payload, frozen=True, kw_only=True):
    """Trade a refresh token for a new :class:`TokenPair`; the presented one is revoked.

    Fields:
        refresh_token: the refresh token of the latest pair.
    """

    TYPE: ClassVar[str] = "refresh_request"
    refresh_token: str

    def __repr__(self) -> str:
        return _masked("RefreshRequest", refresh_token="***")


class LogoutRequest(Payload, frozen=True, kw_only=True):
    """Revoke the presented token (a login's access or refresh token ends the whole
    session: both tokens of it; an API token ends only itself).

    Fields:
        token: the bearer token as presented.
    """

    TYPE: ClassVar[str] = "logout_request"
    token: str

    def __repr__(self) -> str:
        return _masked("LogoutRequest", token="***")


class UsersRequest(Payload, frozen=True, kw_only=True):
    """A page of users, newest first.

    Fields:
        limit: at most this many (1..1000).
        offset: skip this many first (≥ 0).
    """

    TYPE: ClassVar[str] = "users_request"
    limit: int = DEFAULT_PAGE_LIMIT
    offset: int = 0


class UserRow(msgspec.Struct, frozen=True, kw_only=True):
    """One user in a :class:`UsersPage`.

    Fields:
        user, role, member: as in :class:`Principal`.
        created_ts_ns: when the user was added (UTC ns, wall clock).
        tokens: how many of their tokens work now (API, access and refresh tokens not
            revoked and not expired).
        revoked: the user is revoked: no login, no token works.
    """

    user: str
    role: Role
    member: str | None
    created_ts_ns: int
    tokens: int
    revoked: bool


class UsersPage(Payload, frozen=True, kw_only=True):
    """Reply to ``users``: ``total`` users, ``items`` the requested page, newest first."""

    TYPE: ClassVar[str] = "users_page"
    total: int
    items: tuple[UserRow, ...]


class UserChanged(Payload, frozen=True, kw_only=True):
    """A user was added, got an API token, was revoked or had their password set
    (published on ``system`` by user_management, also for changes made with the CLI).

    Fields:
        user, role: the user and their role.
        change: see :data:`UserChange`.
    """

    TYPE: ClassVar[str] = "user_changed"
    user: str
    role: Role
    change: UserChange
