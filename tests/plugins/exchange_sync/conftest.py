"""Fixtures shared by exchange_sync's tests: the real Redis of this machine and CI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from corec.core.ids import new_id
from corec.plugins.exchange_sync.cache import redis_prefix
from tests.conftest import require_service

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def redis_instance() -> AsyncIterator[str]:
    """A unique instance id whose ``corec:<id>:*`` keys in the real Redis are deleted
    afterwards; skips (laptop) or fails (CI) when Redis is down."""
    import redis.asyncio as redis

    client: Any = redis.Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (redis.RedisError, OSError) as exc:
        await client.aclose()
        require_service("Redis at 127.0.0.1:6379", exc)
    instance_id = f"test-{new_id()}"
    try:
        yield instance_id
    finally:
        keys = [k async for k in client.scan_iter(match=redis_prefix(instance_id) + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
