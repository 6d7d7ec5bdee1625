"""Helpers the PostgreSQL benchmarks share: the machine's CPU and scratch databases."""

from __future__ import annotations

import platform
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def with_database(dsn: str, name: str) -> str:
    """``dsn`` (a ``postgresql://`` URI) pointing at database ``name``."""
    base, _, rest = dsn.partition("?")
    head = base.rsplit("/", 1)[0] if base.count("/") > 2 else base
    return f"{head}/{name}" + (f"?{rest}" if rest else "")


@asynccontextmanager
async def scratch_database(admin_dsn: str, label: str) -> AsyncIterator[str]:
    """Create an empty database, yield its libpq URI, drop it after (even on errors)."""
    name = f"corec_bench_{label}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield with_database(admin_dsn, name)
    finally:
        admin = await asyncpg.connect(admin_dsn, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
