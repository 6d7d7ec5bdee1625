"""Fixtures of user_management's tests: a migrated store on SQLite and on PostgreSQL,
and a wall clock the test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from corec.core.clock import NS_PER_S
from corec.core.store import Store
from corec.core.store.migrate import upgrade
from corec.plugins.user_management import models as m
from corec.plugins.user_management.config import UserManagementConfig
from corec.plugins.user_management.plugin import UserManagementPlugin
from corec.plugins.user_management.service import UserService
from corec.plugins.user_management.tokens import Passwords
from tests.conftest import fresh_pg_database

T0 = 1_767_225_600 * NS_PER_S  # 2026-01-01T00:00:00Z


class WallClock:
    """The service's wall clock, moved by the test (UTC ns)."""

    def __init__(self, now_ns: int = T0) -> None:
        self.now = now_ns

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: int) -> None:
        self.now += seconds * NS_PER_S


async def migrated(url: str) -> Store:
    store = Store(url, name=UserManagementPlugin.name)
    assert UserManagementPlugin.migrations is not None
    await upgrade(store, UserManagementPlugin.migrations)
    return store


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """user_management's migrated store: a SQLite file, or a fresh PostgreSQL database
    (skipped when PostgreSQL is absent on a laptop; a failure when CI=true)."""
    if request.param == "sqlite":
        made = await migrated(f"sqlite:///{tmp_path / 'user_management.db'}")
        try:
            yield made
        finally:
            await made.dispose()
        return
    async with fresh_pg_database() as url:
        made = await migrated(url)
        try:
            yield made
        finally:
            await made.dispose()


@pytest.fixture
def clock() -> WallClock:
    return WallClock()


FAST_ARGON2 = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
"""Real argon2id with light parameters, so tests that log in often stay quick (the
default parameters are checked in test_service)."""


@pytest.fixture
def service(store: Store, clock: WallClock) -> UserService:
    return UserService(
        store, UserManagementConfig(), wall_ns=clock, passwords=Passwords(FAST_ARGON2)
    )


async def all_rows(store: Store) -> list[dict[str, Any]]:
    """Every row of every user_management table, as dicts."""

    def read(conn: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for table in (m.users, m.tokens, m.user_changes):
            out += [dict(r) for r in conn.execute(select(table)).mappings()]
        return out

    return await store.read(read)
