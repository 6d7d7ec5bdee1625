"""The store on SQLite and PostgreSQL: exact decimals, plugin migrations, upserts, pragmas."""

from __future__ import annotations

import asyncio
import importlib
import threading
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.exc import StatementError

from corec.core.store import DecimalColumn, Store
from corec.core.store.migrate import current_revision, head_revision, upgrade
from corec.core.store.upsert import insert_ignoring_duplicates, upsert

metadata = sa.MetaData()
amounts = sa.Table(
    "amounts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("amount_usd", DecimalColumn()),
)
fills = sa.Table(
    "fills",
    metadata,
    sa.Column("fill_id", sa.String(64), primary_key=True),
    sa.Column("quantity", DecimalColumn(), nullable=False),
    sa.Column("note", sa.String(32), nullable=False),
)

EXACT_VALUES = [
    Decimal("0.000000000000000001"),
    Decimal("12345678901234567890.123456789012345678"),
    Decimal("46377.12345678"),
    Decimal("-0.5"),
    Decimal("0"),
    Decimal("99999999999999999999.999999999999999999"),
]


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    store = Store(db_url, name="test")
    await store.write(metadata.create_all)
    try:
        yield store
    finally:
        await store.dispose()


def plugin_metadata(cls: type) -> sa.MetaData:
    package = cls.__module__.rsplit(".", 1)[0]
    return importlib.import_module(f"{package}.models").metadata


def with_migrations(plugin_classes: dict[str, Any]) -> dict[str, Any]:
    return {name: cls for name, cls in plugin_classes.items() if cls.migrations is not None}


# -- DecimalColumn --------------------------------------------------------------------
async def test_decimal_column_round_trips_exact_values(store: Store) -> None:
    rows = [{"id": n, "amount_usd": value} for n, value in enumerate(EXACT_VALUES)]
    rows.append({"id": 100, "amount_usd": None})
    rows.append({"id": 101, "amount_usd": 7})  # int is exact too
    await store.write(lambda conn: conn.execute(amounts.insert(), rows))
    query = sa.select(amounts.c.id, amounts.c.amount_usd)
    got = dict(await store.read(lambda conn: conn.execute(query).all()))
    for n, value in enumerate(EXACT_VALUES):
        assert isinstance(got[n], Decimal)
        assert got[n] == value, (n, got[n], value)
    assert got[100] is None
    assert got[101] == Decimal(7)
    assert str(got[2]) == "46377.12345678"  # canonical: no NUMERIC(38, 18) padding


async def test_decimal_column_sums_in_the_database_stay_exact(store: Store) -> None:
    tenths = [{"id": n, "amount_usd": Decimal("0.1")} for n in range(3)]
    await store.write(lambda conn: conn.execute(amounts.insert(), tenths))
    query = sa.select(amounts.c.amount_usd)
    rows = await store.read(lambda conn: conn.execute(query).scalars().all())
    assert sum(rows, Decimal(0)) == Decimal("0.3")


@pytest.mark.parametrize("value", [1.5, 0.1, True, "1.5"])
async def test_decimal_column_refuses_non_decimals(store: Store, value: Any) -> None:
    with pytest.raises(StatementError) as caught:
        await store.write(
            lambda conn: conn.execute(amounts.insert(), [{"id": 1, "amount_usd": value}])
        )
    assert isinstance(caught.value.orig, TypeError)
    assert "decimal column needs Decimal" in str(caught.value.orig)
    count = sa.select(sa.func.count()).select_from(amounts)
    assert await store.read(lambda conn: conn.execute(count).scalar()) == 0


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "sNaN"])
async def test_decimal_column_refuses_nan_and_infinity(store: Store, value: str) -> None:
    row = {"id": 1, "amount_usd": Decimal(value)}
    with pytest.raises(StatementError) as caught:
        await store.write(lambda conn: conn.execute(amounts.insert(), [row]))
    assert isinstance(caught.value.orig, ValueError)
    assert "decimal column refuses" in str(caught.value.orig)


def test_decimal_column_bind_directly() -> None:
    column = DecimalColumn()
    sqlite = sa.create_engine("sqlite://").dialect
    with pytest.raises(TypeError, match=r"got float 0\.1"):
        column.process_bind_param(0.1, sqlite)
    with pytest.raises(ValueError, match="refuses NaN"):
        column.process_bind_param(Decimal("NaN"), sqlite)
    assert column.process_bind_param(Decimal("1E-18"), sqlite) == "0.000000000000000001"
    assert column.process_bind_param(None, sqlite) is None


# -- migrations -----------------------------------------------------------------------
async def test_every_plugin_migrates_to_head_matching_its_models(
    db_url: str, plugin_classes: dict[str, Any]
) -> None:
    migrating = with_migrations(plugin_classes)
    assert sorted(migrating) == [
        "alert_manager",
        "capital_pool",
        "daily_settlement",
        "exchange_sync",
        "macro_sync",
        "trading_execution",
        "user_management",
    ]
    stores = {name: Store(db_url, name=name) for name in migrating}
    try:
        for name, cls in migrating.items():  # all in one database, as plugins may share one
            store = stores[name]
            assert await current_revision(store) is None
            head = head_revision(cls.migrations)
            assert head is not None
            assert await upgrade(store, cls.migrations) == head
            assert await current_revision(store) == head

        expected_tables: set[str] = set()
        for name, cls in migrating.items():
            models = plugin_metadata(cls)
            expected_tables |= set(models.tables)
            expected_tables.add(stores[name].version_table)
            own = set(models.tables)

            def diff(sync_conn: Any, own: set[str] = own, models: Any = models) -> list[Any]:
                context = MigrationContext.configure(
                    sync_conn,
                    opts={
                        "compare_type": True,
                        "include_name": lambda n, kind, _parent: kind != "table" or n in own,
                    },
                )
                return compare_metadata(context, models)

            differences = await stores[name].read(diff)
            assert differences == [], f"{name}: models and migrations differ: {differences}"

        tables = await stores["capital_pool"].read(lambda c: set(sa.inspect(c).get_table_names()))
        assert tables == expected_tables  # no stray table from a migration
    finally:
        for store in stores.values():
            await store.dispose()


async def test_upgrade_twice_is_a_no_op(db_url: str, plugin_classes: dict[str, Any]) -> None:
    cls = plugin_classes["capital_pool"]
    models = plugin_metadata(cls)
    store = Store(db_url, name="capital_pool")
    try:
        first = await upgrade(store, cls.migrations)
        members = models.tables["members"]
        await store.write(
            lambda conn: conn.execute(members.insert(), [{"name": "alice", "created_ts_ns": 1}])
        )

        def schema(sync_conn: Any) -> dict[str, list[str]]:
            inspector = sa.inspect(sync_conn)
            return {
                table: sorted(c["name"] for c in inspector.get_columns(table))
                for table in sorted(inspector.get_table_names())
            }

        before = await store.read(schema)
        assert await upgrade(store, cls.migrations) == first
        after = await store.read(schema)
        query = sa.select(members.c.name)
        names = await store.read(lambda conn: conn.execute(query).scalars().all())
        assert after == before
        assert names == ["alice"]
    finally:
        await store.dispose()


# -- insert-or-ignore and upsert ------------------------------------------------------
async def test_insert_ignoring_duplicates_skips_existing_rows(store: Store) -> None:
    stmt = insert_ignoring_duplicates(fills, store.dialect, ["fill_id"])
    first = [
        {"fill_id": "f1", "quantity": Decimal("0.5"), "note": "first"},
        {"fill_id": "f2", "quantity": Decimal("0.25"), "note": "first"},
    ]
    second = [
        {"fill_id": "f2", "quantity": Decimal("9"), "note": "again"},
        {"fill_id": "f3", "quantity": Decimal("0.125"), "note": "new"},
    ]
    await store.write(lambda conn: conn.execute(stmt, first))
    await store.write(lambda conn: conn.execute(stmt, second))
    query = sa.select(fills).order_by(fills.c.fill_id)
    rows = await store.read(lambda conn: conn.execute(query).all())
    assert [tuple(r) for r in rows] == [
        ("f1", Decimal("0.5"), "first"),
        ("f2", Decimal("0.25"), "first"),
        ("f3", Decimal("0.125"), "new"),
    ]


async def test_upsert_updates_the_named_columns(store: Store) -> None:
    stmt = upsert(fills, store.dialect, ["fill_id"], ["quantity"])

    def write(conn: sa.Connection) -> None:
        conn.execute(stmt, [{"fill_id": "f1", "quantity": Decimal("1"), "note": "first"}])
        conn.execute(stmt, [{"fill_id": "f1", "quantity": Decimal("2"), "note": "second"}])

    await store.write(write)
    rows = await store.read(lambda conn: conn.execute(sa.select(fills)).all())
    assert [tuple(r) for r in rows] == [("f1", Decimal("2"), "first")]


def test_upserts_need_a_known_dialect() -> None:
    with pytest.raises(ValueError, match="mysql"):
        insert_ignoring_duplicates(fills, "mysql", ["fill_id"])
    with pytest.raises(ValueError, match="mysql"):
        upsert(fills, "mysql", ["fill_id"], ["quantity"])


# -- the store itself -----------------------------------------------------------------
async def test_write_rolls_back_on_error(store: Store) -> None:
    def fails(conn: sa.Connection) -> None:
        conn.execute(amounts.insert(), [{"id": 1, "amount_usd": Decimal(1)}])
        raise RuntimeError("abort")

    with pytest.raises(RuntimeError, match="abort"):
        await store.write(fails)
    await store.write(
        lambda conn: conn.execute(amounts.insert(), [{"id": 2, "amount_usd": Decimal(2)}])
    )
    ids = await store.read(lambda conn: conn.execute(sa.select(amounts.c.id)).scalars().all())
    assert ids == [2]


async def test_a_disposed_store_refuses_work(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'x.db'}", name="x")
    await store.write(metadata.create_all)
    await store.dispose()
    with pytest.raises(RuntimeError, match="closed"):
        await store.read(lambda conn: conn.execute(sa.select(amounts.c.id)).all())


async def test_sqlite_read_sees_committed_data_without_waiting_for_a_writer(tmp_path: Path) -> None:
    # SQLite only: there a writer holds a file lock for its whole transaction. (On
    # PostgreSQL, MVCC gives the same guarantee, and a work function runs on the event
    # loop, so the blocking trick below cannot be used there.)
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    store, reader = Store(url, name="writer"), Store(url, name="reader")
    await store.write(metadata.create_all)
    count = sa.select(sa.func.count()).select_from(amounts)
    inserted, release = threading.Event(), threading.Event()

    def slow_write(conn: sa.Connection) -> None:
        conn.execute(amounts.insert(), [{"id": 1, "amount_usd": Decimal("1.5")}])
        inserted.set()
        release.wait(5)  # hold the write transaction (and SQLite's write lock) open

    try:
        writing = asyncio.create_task(store.write(slow_write))
        await asyncio.to_thread(inserted.wait, 5)
        # the writer holds its lock: a read must not wait, and sees the last commit
        assert await asyncio.wait_for(reader.read(lambda c: c.execute(count).scalar_one()), 2) == 0
        release.set()
        await writing
        assert await reader.read(lambda c: c.execute(count).scalar_one()) == 1
        value = await reader.read(lambda c: c.execute(sa.select(amounts.c.amount_usd)).scalar_one())
        assert value == Decimal("1.5")
    finally:
        release.set()
        await reader.dispose()
        await store.dispose()


@pytest.mark.parametrize("scheme", ["sqlite", "sqlite+aiosqlite"])
async def test_sqlite_pragmas(tmp_path: Path, scheme: str) -> None:
    store = Store(f"{scheme}:///{tmp_path / 'nested' / 'dir' / 'x.db'}", name="x")
    try:
        assert store.dialect == "sqlite"
        assert (tmp_path / "nested" / "dir").is_dir()  # the folder is created

        def pragmas(conn: sa.Connection) -> dict[str, Any]:
            return {
                pragma: conn.exec_driver_sql(f"PRAGMA {pragma}").scalar()
                for pragma in ("journal_mode", "busy_timeout", "synchronous", "foreign_keys")
            }

        assert await store.write(pragmas) == {
            "journal_mode": "wal",
            "busy_timeout": 10_000,
            "synchronous": 1,  # NORMAL
            "foreign_keys": 1,
        }
    finally:
        await store.dispose()


async def test_sqlite_concurrent_writers_do_not_fail_with_locked(tmp_path: Path) -> None:
    # two stores on one file stand for two processes (a node and the CLI): each has its
    # own thread and connection, so they contend for SQLite's lock for real
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    writers = [Store(url, name="a"), Store(url, name="b")]
    try:

        def setup(conn: sa.Connection) -> None:
            metadata.create_all(conn)
            conn.execute(amounts.insert(), [{"id": 1, "amount_usd": Decimal(0)}])

        await writers[0].write(setup)

        def increment(conn: sa.Connection) -> None:
            # read, then write: a deferred transaction would fail with "database is locked"
            query = sa.select(amounts.c.amount_usd).where(amounts.c.id == 1)
            value = conn.execute(query).scalar_one()
            time.sleep(0.001)
            conn.execute(amounts.update().where(amounts.c.id == 1).values(amount_usd=value + 1))

        await asyncio.gather(*(writers[n % 2].write(increment) for n in range(20)))
        total = await writers[1].read(
            lambda c: c.execute(sa.select(amounts.c.amount_usd)).scalar_one()
        )
        assert total == Decimal(20)
    finally:
        for store in writers:
            await store.dispose()


async def test_store_names_and_redaction() -> None:
    store = Store("postgresql+asyncpg://corec:s3cret@db.example:5432/pool", name="capital_pool")
    try:
        assert store.dialect == "postgresql"
        assert store.version_table == "alembic_version_capital_pool"
        assert store.redacted_url() == "postgresql+asyncpg://corec:***@db.example:5432/pool"
        assert "s3cret" not in store.redacted_url()
    finally:
        await store.dispose()
