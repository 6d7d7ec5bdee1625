"""A plugin's database: one async SQLAlchemy engine per plugin URL.

SQLite (the embedded default) is set up for one writer and many readers without
"database is locked": WAL journal, ``synchronous=NORMAL``, a 10 s busy timeout, and
``BEGIN IMMEDIATE`` for every write transaction (:meth:`Store.begin`), so a writer takes
the lock when it starts instead of failing half-way. Reads (:meth:`Store.read`) use a
deferred ``BEGIN``: a consistent WAL snapshot that never waits for a writer.
PostgreSQL (``postgresql+asyncpg://``) needs nothing special.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SQLITE_BUSY_TIMEOUT_MS = 10_000
READ_ONLY_OPTION = "corec_read_only"


def _setup_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY_OPTION, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


class Store:
    """A plugin's database.

    Args:
        url: SQLAlchemy async URL (``sqlite+aiosqlite:///var/x.db``,
            ``postgresql+asyncpg://user@host/db``). A SQLite file's folder is created.
        name: the owning plugin, used for the Alembic version table.

    Use :meth:`session` for ORM work and :meth:`begin` for Core statements; each is one
    transaction, committed on normal exit and rolled back on error.
    """

    def __init__(self, url: str, *, name: str) -> None:
        self.url = url
        self.name = name
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite" and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        if self.dialect == "sqlite":
            # every transaction ends in COMMIT or ROLLBACK (begin()/session()), so the
            # pool's extra rollback on check-in is one wasted thread hop per transaction
            self.engine: AsyncEngine = create_async_engine(url, pool_reset_on_return=None)
            _setup_sqlite(self.engine)
        else:
            self.engine = create_async_engine(url, pool_pre_ping=True)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def version_table(self) -> str:
        """Alembic's version table for this plugin (plugins may share one database)."""
        return f"alembic_version_{self.name}"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """One ORM session in one transaction (commit on exit, rollback on error)."""
        async with self._sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """One Core connection in one write transaction (commit on exit, rollback on error)."""
        async with self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """One Core connection in a read transaction (a snapshot; takes no write lock)."""
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(**{READ_ONLY_OPTION: True})
            async with conn.begin():
                yield conn

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.engine.dispose()

    def redacted_url(self) -> str:
        """The URL with any password masked, for logs and status."""
        return make_url(self.url).render_as_string(hide_password=True)
