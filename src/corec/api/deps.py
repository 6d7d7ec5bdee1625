"""Route dependencies: the caller's identity, role checks, member scoping, paging.

Every route but ``/health``, login and refresh needs ``Authorization: Bearer <token>``
(an API token from ``corec users token`` or an access token from login); the token is
checked by ``user_management.authenticate`` on the bus. Roles (DESIGN.md, issue 6):

- ``admin``: everything;
- ``member``: read-only market and system views, and their own pool records only;
- ``viewer``: read-only market and system views, no personal data.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from corec.api.gateway import Gateway, RefusedError
from corec.core.queries import DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT
from corec.messages import user_data

bearer = HTTPBearer(auto_error=False, description="An API token or a login access token")

UNAUTHORIZED_HEADERS = {"WWW-Authenticate": "Bearer"}


async def gateway(request: Request) -> Gateway:
    """The app's :class:`Gateway` (set by :func:`corec.api.app.create_app`)."""
    return request.app.state.gateway  # type: ignore[no-any-return]


async def authenticate(gw: Gateway, token: str | None) -> user_data.Principal:
    """The principal of ``token``.

    Raises:
        HTTPException: 401 when the token is missing, unknown, revoked or expired.
    """
    if not token:
        raise HTTPException(401, "missing bearer token", headers=UNAUTHORIZED_HEADERS)
    try:
        return await gw.ask(  # type: ignore[no-any-return]
            user_data.AUTHENTICATE,
            user_data.AuthenticateRequest(token=token),
            user_data.Principal,
        )
    except RefusedError as exc:
        raise HTTPException(
            401, "invalid, revoked or expired token", headers=UNAUTHORIZED_HEADERS
        ) from exc


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> user_data.Principal:
    """The caller (401 without a valid bearer token)."""
    token = credentials.credentials if credentials is not None else None
    return await authenticate(request.app.state.gateway, token)


Caller = Annotated[user_data.Principal, Depends(current_principal)]


def require(*roles: str) -> Callable[..., Awaitable[user_data.Principal]]:
    """A dependency admitting only ``roles`` (403 for the others, 401 without a token)."""

    async def check(principal: Caller) -> user_data.Principal:
        if principal.role not in roles:
            raise HTTPException(
                403, f"role {principal.role!r} may not do this (needs {' or '.join(roles)})"
            )
        return principal

    return check


Admin = Annotated[user_data.Principal, Depends(require("admin"))]


def member_scope(principal: user_data.Principal, member: str | None) -> str | None:
    """The member filter a caller may use: an admin any (``None`` = all); a member only
    their own (their name when ``member`` is omitted).

    Raises:
        HTTPException: 403 for a viewer, or a member asking for someone else.
    """
    if principal.role == "admin":
        return member
    if principal.role == "member" and principal.member:
        if member is not None and member != principal.member:
            raise HTTPException(403, "a member may read only their own records")
        return principal.member
    raise HTTPException(403, f"role {principal.role!r} may not read members' records")


Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_LIMIT, description="records per page")]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="records to skip")]
DEFAULT_LIMIT = DEFAULT_PAGE_LIMIT
