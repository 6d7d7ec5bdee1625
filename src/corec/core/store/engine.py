"""A plugin's database: one store per plugin URL, an async API, whole transactions.

Work is written as a plain function of a SQLAlchemy :class:`~sqlalchemy.engine.Connection`
and run as one transaction::

    rows = await store.read(lambda conn: conn.execute(select(t)).all())
    await store.write(lambda conn: conn.execute(insert(t), row))

- **SQLite** (``sqlite:///path`` or ``sqlite+aiosqlite:///path``, the same file either
  way): SQLAlchemy's pysqlite driver on *one dedicated thread per database*, the model
  aiosqlite uses, but a whole transaction runs in the thread per hop instead of each
  statement (about 4× cheaper per transaction here, see ``benchmarks/``). The thread
  is also the one writer of the file inside the process. Against other processes
  (the CLI beside a running node): WAL journal, ``synchronous=NORMAL``, a 10 s busy
  timeout, and ``BEGIN IMMEDIATE`` for writes, so a writer takes the lock when it
  starts instead of failing half-way ("database is locked"); reads use a deferred
  ``BEGIN``, a snapshot that never waits for a writer.
- **PostgreSQL** (``postgresql+asyncpg://``): SQLAlchemy's async engine; the same
  function runs through ``AsyncConnection.run_sync``. Reads are ``REPEATABLE READ``
  snapshots. Pooled connections are not pinged before use (a ping is a round trip on
  every transaction); instead a connection found dead (the server restarted, an idle
  connection was terminated) invalidates the pool, and the transaction runs once more
  on a fresh connection — only when the failure came before COMMIT was sent, so the
  server has rolled it back and nothing of it was written. A failure during COMMIT
  (outcome unknown) is never retried.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from corec.core.errors import StoreError

T = TypeVar("T")
SQLITE_BUSY_TIMEOUT_MS = 10_000
READ_ONLY_OPTION = "corec_read_only"
Work = Callable[[Connection], T]


def _setup_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY_OPTION, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def sqlite_file(url: URL) -> Path | None:
    """The file of a SQLite URL (``None`` for other databases and ``:memory:``)."""
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


class Store:
    """A plugin's database (see the module docstring).

    Args:
        url: SQLAlchemy URL: ``sqlite:///var/x.db``, ``sqlite+aiosqlite:///var/x.db`` or
            ``postgresql+asyncpg://user@host/db``. A SQLite file's folder is created.
        name: the owning plugin, used for the Alembic version table and thread name.

    Raises:
        ValueError: a database other than SQLite or PostgreSQL.
    """

    def __init__(self, url: str, *, name: str) -> None:
        self.url = url
        self.name = name
        parsed = make_url(url)
        self.dialect = parsed.get_backend_name()
        self._sync: Engine | None = None
        self._async: AsyncEngine | None = None
        self._thread: ThreadPoolExecutor | None = None
        if self.dialect == "sqlite":
            path = sqlite_file(parsed)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            # every transaction ends in COMMIT or ROLLBACK, so no reset on check-in
            self._sync = create_engine(
                parsed.set(drivername="sqlite+pysqlite"), pool_reset_on_return=None
            )
            _setup_sqlite(self._sync)
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"corec-db-{name}")
        elif self.dialect == "postgresql":
            # no pool_pre_ping: a dead connection is handled in _run_async (one retry)
            self._async = create_async_engine(parsed.set(drivername="postgresql+asyncpg"))
        else:
            raise ValueError(
                f"{name}: unsupported database {parsed.drivername!r}; use sqlite or postgresql"
            )

    @property
    def version_table(self) -> str:
        """Alembic's version table for this plugin (plugins may share one database)."""
        return f"alembic_version_{self.name}"

    async def write(self, work: Work[T]) -> T:
        """Run ``work(conn)`` in one write transaction; commit, or roll back if it raises.

        ``work`` must act through ``conn`` only: on PostgreSQL it runs a second time, on a
        fresh connection, when the pooled connection turned out to be dead before COMMIT
        was sent (that first transaction was rolled back by the server).

        Raises:
            StoreError: the database cannot be reached or used (unreachable server, file
                that cannot be opened, lock not obtained within the busy timeout).
            Whatever ``work`` raises (e.g. ``sqlalchemy.exc.IntegrityError``), after rollback.
        """
        try:
            if self._sync is not None:
                return await self._in_thread(self._write_sync, work)
            return await self._run_async(work, read_only=False)
        except (OperationalError, InterfaceError, OSError) as exc:
            raise self._unusable(exc) from exc

    async def read(self, work: Work[T]) -> T:
        """Run ``work(conn)`` in one read transaction (a consistent snapshot, no write lock).

        Raises:
            StoreError: the database cannot be reached or used.
        """
        try:
            if self._sync is not None:
                return await self._in_thread(self._read_sync, work)
            return await self._run_async(work, read_only=True)
        except (OperationalError, InterfaceError, OSError) as exc:
            raise self._unusable(exc) from exc

    async def _run_async(self, work: Work[T], *, read_only: bool) -> T:
        """One PostgreSQL transaction; once more on a fresh connection if the first one
        was found dead before COMMIT was sent (see the module docstring)."""
        assert self._async is not None
        for attempt in (1, 2):
            async with self._async.connect() as conn:
                if read_only:
                    conn = await conn.execution_options(isolation_level="REPEATABLE READ")
                trans = await conn.begin()
                try:
                    value = await conn.run_sync(work)
                except BaseException as exc:
                    await trans.rollback()
                    # connection_invalidated: SQLAlchemy saw a disconnect and invalidated
                    # the pool; COMMIT was not sent, so the server rolled it all back
                    if attempt == 1 and isinstance(exc, DBAPIError) and exc.connection_invalidated:
                        continue
                    raise
                await trans.commit()  # never retried: a failure here leaves the outcome unknown
                return value
        raise AssertionError("unreachable")  # pragma: no cover

    def _unusable(self, exc: BaseException) -> StoreError:
        reason = getattr(exc, "orig", None) or exc
        return StoreError(f"{self.name}: cannot use the database {self.redacted_url()}: {reason}")

    def _write_sync(self, work: Work[T]) -> T:
        assert self._sync is not None
        with self._sync.begin() as conn:
            return work(conn)

    def _read_sync(self, work: Work[T]) -> T:
        assert self._sync is not None
        with self._sync.connect() as conn:
            conn = conn.execution_options(**{READ_ONLY_OPTION: True})
            with conn.begin():
                return work(conn)

    async def _in_thread(self, fn: Callable[[Work[T]], T], work: Work[T]) -> T:
        if self._thread is None:
            raise RuntimeError(f"store {self.name!r} is closed")
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, work)

    async def dispose(self) -> None:
        """Close every connection (and the SQLite thread); the store cannot be used after."""
        if self._async is not None:
            await self._async.dispose()
        if self._sync is not None and self._thread is not None:
            thread, self._thread = self._thread, None
            await asyncio.get_running_loop().run_in_executor(thread, self._sync.dispose)
            thread.shutdown(wait=False)

    def redacted_url(self) -> str:
        """The URL with any password masked, for logs and status."""
        return make_url(self.url).render_as_string(hide_password=True)
