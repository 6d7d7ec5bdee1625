"""Login, refresh, logout, who am I, users (``/api/v1/auth``, ``/api/v1/users``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from corec.api.deps import DEFAULT_LIMIT, Admin, Caller, Limit, Offset, bearer, gateway
from corec.api.gateway import Gateway
from corec.api.models import ApiModel, builtins, model_of, page_model
from corec.api.routes.common import listing
from corec.messages import user_data

router = APIRouter(tags=["auth"])

TokenPairModel = model_of(user_data.TokenPair)
PrincipalModel = model_of(user_data.Principal)
UsersPageModel = page_model(user_data.UserRow, "UsersListing")


class LoginBody(ApiModel):
    """A user's name and password."""

    user: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1000)


class RefreshBody(ApiModel):
    """A refresh token from login (each is good once: refreshing rotates it)."""

    refresh_token: str = Field(min_length=1, max_length=1000)


@router.post("/auth/login", response_model=TokenPairModel)
async def login(body: LoginBody, request: Request, gw: Annotated[Gateway, Depends(gateway)]) -> Any:
    """Password login: a short-lived access token and a refresh token. Failed logins
    are rate-limited per user and per client address (503 with ``Retry-After``); a
    wrong name or password is 403."""
    client = request.client.host if request.client else "unknown"
    reply = await gw.ask(
        user_data.LOGIN,
        user_data.LoginRequest(user=body.user, password=body.password, client=client),
        user_data.TokenPair,
    )
    return builtins(reply)


@router.post("/auth/refresh", response_model=TokenPairModel)
async def refresh(body: RefreshBody, gw: Annotated[Gateway, Depends(gateway)]) -> Any:
    """A new token pair for a refresh token (which is then spent); 403 if it is not valid."""
    reply = await gw.ask(
        user_data.REFRESH,
        user_data.RefreshRequest(refresh_token=body.refresh_token),
        user_data.TokenPair,
    )
    return builtins(reply)


@router.post("/auth/logout", response_model=PrincipalModel)
async def logout(
    principal: Caller,
    gw: Annotated[Gateway, Depends(gateway)],
    credentials: Annotated[Any, Depends(bearer)],
) -> Any:
    """Revoke the token this request carries."""
    reply = await gw.ask(
        user_data.LOGOUT,
        user_data.LogoutRequest(token=credentials.credentials),
        user_data.Principal,
    )
    return builtins(reply)


@router.get("/auth/me", response_model=PrincipalModel)
async def me(principal: Caller) -> Any:
    """Who the token belongs to: user, role and linked pool member."""
    return builtins(principal)


@router.get("/users", response_model=UsersPageModel)
async def users(
    _: Admin,
    gw: Annotated[Gateway, Depends(gateway)],
    limit: Limit = DEFAULT_LIMIT,
    offset: Offset = 0,
) -> Any:
    """Every user with role, linked member and token count (admin)."""
    reply = await gw.ask(
        user_data.USERS, user_data.UsersRequest(limit=limit, offset=offset), user_data.UsersPage
    )
    return listing(reply, limit, offset)
