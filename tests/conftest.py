"""Shared fixtures: real services on loopback, fresh databases, configuration helpers.

PostgreSQL tests need the server at ``localhost:5432`` (``COREC_TEST_PG`` overrides
the admin URL). Without it they skip on a laptop, and fail when ``CI=true``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml

import corec.messages  # noqa: F401 - registers every payload type
from corec.core.config import CorecConfig, load_config
from corec.core.ids import new_id
from corec.core.registry import discover_plugins

# A node the tests start serves its API on a free port, never the user's 8000.
os.environ.setdefault("COREC__API__PORT", "0")

PG_ADMIN_DSN = os.environ.get("COREC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
RECORDING = (
    Path(__file__).resolve().parents[1] / "src" / "corec" / "data" / "btc-perp_1m_2022-01.csv"
)
TRADES_RECORDING = RECORDING.with_name("btcusdt_spot_trades_2021-01-08.csv")


def require_service(name: str, error: BaseException) -> None:
    """Skip (laptop) or fail (CI) a test whose service is unreachable."""
    message = f"{name} is not reachable: {type(error).__name__}: {error}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: services are required)")
    pytest.skip(message)


@asynccontextmanager
async def fresh_pg_database() -> AsyncIterator[str]:
    """Create an empty PostgreSQL database, yield its SQLAlchemy URL, drop it after."""
    name = f"corec_test_{new_id().replace('-', '')[-16:]}"
    try:
        admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        require_service("PostgreSQL at localhost:5432", exc)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh, empty PostgreSQL database for one test (its SQLAlchemy URL)."""
    async with fresh_pg_database() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The same test on a SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    async with fresh_pg_database() as url:
        yield url


@pytest.fixture(scope="session")
def plugin_classes() -> dict[str, Any]:
    """The installed plugin classes (entry points)."""
    return discover_plugins()


def write_recording_slice(path: Path, rows: int, *, source: Path = RECORDING) -> Path:
    """Copy the header and the first ``rows`` data rows of a real recording to ``path``."""
    with source.open(encoding="utf-8") as src, path.open("w", encoding="utf-8") as dst:
        for index, line in enumerate(src):
            if index > rows:
                break
            dst.write(line)
    return path


@pytest.fixture
def make_config(tmp_path: Path, plugin_classes: dict[str, Any]) -> Iterator[Any]:
    """``make_config(dict) -> CorecConfig``: write the dict as YAML under ``tmp_path``
    (``node.data_dir`` defaults to ``tmp_path / 'var'``) and load it like the CLI does."""

    def make(data: dict[str, Any], *, env: dict[str, str] | None = None) -> CorecConfig:
        data = {
            **data,
            "node": {"data_dir": str(tmp_path / "var"), **data.get("node", {})},
            "api": {"port": 0, **data.get("api", {})},
        }
        path = tmp_path / "corec.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return load_config(path, {n: c.Config for n, c in plugin_classes.items()}, env=env or {})

    yield make
