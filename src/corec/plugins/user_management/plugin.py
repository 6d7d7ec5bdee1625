"""user_management plugin: who may use the API, with which role.

Serves ``user_management.authenticate``, ``.login``, ``.refresh``, ``.logout`` and
``.users`` (payloads in :mod:`corec.messages.user_data`), all answered by
:class:`~corec.plugins.user_management.service.UserService`, the same code the
``corec users`` commands run. On a first start with no user it creates ``admin`` (see
``initial_admin``). Every ``poll_interval_s`` it publishes the changes to users made
since (by the CLI too) as :class:`~corec.messages.user_data.UserChanged` on ``system``,
and forgets the cached lookups of revoked users.

Token expiry and the failed-login window run on the wall clock, not the node clock
(a replay's clock is the recording's time): see the service module.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from corec.core import channels
from corec.core.events import Payload
from corec.core.plugin import Plugin, PluginContext, PluginHealth
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
    RefreshRequest,
    UserChanged,
    UsersRequest,
)
from corec.plugins.user_management import models as m
from corec.plugins.user_management.config import UserManagementConfig
from corec.plugins.user_management.service import UserService


def _expect(kind: type[Payload], payload: Payload) -> Any:
    if not isinstance(payload, kind):
        raise TypeError(f"expected {kind.__name__}, got {type(payload).__name__}")
    return payload


class UserManagementPlugin(Plugin):
    """Users, roles and tokens for the API (see the module docstring)."""

    name = "user_management"
    Config = UserManagementConfig
    publishes = (channels.SYSTEM,)
    serves = (AUTHENTICATE, LOGIN, REFRESH, LOGOUT, USERS)
    migrations = Path(__file__).parent / "migrations"
    status_key = "users"

    config: UserManagementConfig

    async def start(self, ctx: PluginContext) -> None:
        """Open the service, create the initial admin if there is no user, serve the
        endpoints, publish changes to users on ``system``."""
        assert ctx.store is not None
        self.ctx = ctx
        self.service = UserService(ctx.store, self.config)
        self._published: Counter[str] = Counter()
        self._seq = await self.service.last_change()
        if self.config.initial_admin:
            await self.service.ensure_initial_admin(ctx.config.node.data_dir)
        service = self.service
        ctx.serve(AUTHENTICATE, lambda p: service.authenticate(_expect(AuthenticateRequest, p)))
        ctx.serve(LOGIN, lambda p: service.login(_expect(LoginRequest, p)))
        ctx.serve(REFRESH, lambda p: service.refresh(_expect(RefreshRequest, p)))
        ctx.serve(LOGOUT, lambda p: service.logout(_expect(LogoutRequest, p)))
        ctx.serve(USERS, lambda p: service.users(_expect(UsersRequest, p)))
        await self.publish_changes()
        ctx.spawn("watch_users", self._watch)

    async def publish_changes(self) -> int:
        """Publish every change to users since the last call as ``UserChanged`` on
        ``system``; forget revoked users' cached lookups. Returns how many."""
        changes = await self.service.changes_after(self._seq)
        for seq, user, role, change in changes:
            if change == "revoked":
                self.service.forget_user(user)
            await self.ctx.publish(
                channels.SYSTEM, UserChanged(user=user, role=role, change=change), key=user
            )
            self._published[change] += 1
            self._seq = seq
        return len(changes)

    async def _watch(self) -> None:
        while not await self.ctx.sleep(self.config.poll_interval_s):
            await self.publish_changes()

    def health(self) -> PluginHealth:
        """Counters of authentications, logins, refreshes and logouts; cached lookups;
        keys held by the failed-login limiter; changes published."""
        return PluginHealth(
            details={
                **self.service.counts,
                "cached_lookups": self.service.cached,
                "limited_keys": len(self.service.limiter),
                "changes_published": dict(self._published),
            }
        )

    @classmethod
    async def read_status(  # type: ignore[override]
        cls, store: Store | None, config: UserManagementConfig
    ) -> dict[str, Any] | None:
        """``{"users": n, "revoked": n, "by_role": {role: n}}`` (users not revoked by
        role); ``None`` before the store exists."""
        if store is None:
            return None
        query = select(m.users.c.role, m.users.c.revoked_ts_ns.is_(None), func.count()).group_by(
            m.users.c.role, m.users.c.revoked_ts_ns.is_(None)
        )
        rows = await store.read(lambda conn: conn.execute(query).all())
        by_role: dict[str, int] = {}
        revoked = 0
        for role, active, n in rows:
            if active:
                by_role[role] = by_role.get(role, 0) + int(n)
            else:
                revoked += int(n)
        return {"users": sum(by_role.values()) + revoked, "revoked": revoked, "by_role": by_role}
